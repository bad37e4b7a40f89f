"""Object management on the HSM: template rules (`templates`) and the administrator's
requests (`client`). Empty on purpose: the ABI imports what each call needs."""
