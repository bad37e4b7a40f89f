# cython: language_level=3
"""The PKCS#11 ABI: every C_* entry point of the v2.40 list and the 3.0 interface.

One extension made of pieces, each a same-named .pyx/.pxd pair in p11fast/abi/ whose .pxd
says what the piece owns, its contract and which pieces it uses. This file includes them in
dependency order, _abi.pxd their declarations. Where C_Sign goes: the loader calls the
function table (entry, generated from include/pkcs11f.h), whose C_Sign checks initialisation
and runs sign (sign.pxd): the session (sessions), the output-buffer rule (ops), what the HSM
signs (sign) and the request on the calling thread (ops: hsm_call, through the transport).
"""

include "abi/state.pyx"
include "abi/errors.pyx"
include "abi/sessions.pyx"
include "abi/mechanisms.pyx"
include "abi/objects.pyx"
include "abi/ops.pyx"
include "abi/crypt.pyx"
include "abi/sign.pyx"
include "abi/verify.pyx"
include "abi/digest.pyx"
include "abi/slots.pyx"
include "abi/find.pyx"
include "abi/manage.pyx"
include "abi/pins.pyx"
include "abi/login.pyx"
include "abi/lifetime.pyx"
include "abi/unsupported.pyx"
include "abi/entry.pyx"
