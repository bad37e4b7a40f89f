# ecdsa: ECDSA signatures between the two forms PKCS#11 and the HSM use — r || s (PKCS#11, each
# half the field length) and the DER SEQUENCE { INTEGER r, INTEGER s } (NetHSM, OpenSSL).
#
# Contract: nogil, no allocation, no Python object; strict DER only (the HSM's answer is
# parsed, never trusted). ecdsa_raw_to_der says -1 for n 0 or odd and -2 for a too small cap,
# like the codec's other writers.
# uses:

# DER SEQUENCE { INTEGER r, INTEGER s } -> r || s, each left-padded to field_len.
# Returns 2 * field_len, or -1 if the DER is not strict (non-minimal lengths or integers,
# negative integers, trailing bytes) or r or s is longer than field_len (out is then
# partly written).
cdef Py_ssize_t ecdsa_der_to_raw(const unsigned char *der, size_t n, size_t field_len,
                                 unsigned char *out) noexcept nogil
# r || s (n even, halves of equal length) -> DER. Returns the DER length, -1 if n is 0 or
# odd, -2 if cap is too small.
cdef Py_ssize_t ecdsa_raw_to_der(const unsigned char *raw, size_t n,
                                 unsigned char *out, size_t cap) noexcept nogil
