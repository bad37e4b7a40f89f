# cython: language_level=3
"""The compiled core: the PKCS#11 ABI (every C_* entry point of the v2.40 list and the 3.0
interface), the codec and the transport, as one extension.

Made of pieces, each a same-named .pyx/.pxd pair in p11fast/codec/, p11fast/transport/ or
p11fast/abi/ whose .pxd says what the piece owns, its contract and which pieces it uses. This
file includes them in dependency order, _abi.pxd their declarations; every call between them
is a C call within this one shared object. Where C_Sign goes: the loader calls the function
table (abi/entry, generated from include/pkcs11f.h), whose C_Sign checks initialisation and
runs sign (abi/sign.pxd): the session (abi/sessions), the output-buffer rule (abi/ops), what
the HSM signs (abi/sign), the request body (codec/wbuf) and the request on the calling thread
(abi/ops: hsm_call, through transport/request's tp_request).
"""

include "codec/base64.pyx"
include "codec/json.pyx"
include "codec/ecdsa.pyx"
include "codec/hash.pyx"
include "codec/wbuf.pyx"

include "transport/cstr.pyx"
include "transport/conn.pyx"
include "transport/http1.pyx"
include "transport/transfer.pyx"
include "transport/pool.pyx"
include "transport/health.pyx"
include "transport/spec.pyx"
include "transport/park.pyx"
include "transport/request.pyx"
include "transport/fork.pyx"
include "transport/lifetime.pyx"
include "transport/capi.pyx"
include "transport/api.pyx"

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
include "abi/recorded.pyx"
include "abi/recording.pyx"
include "abi/find.pyx"
include "abi/manage.pyx"
include "abi/pins.pyx"
include "abi/login.pyx"
include "abi/lifetime.pyx"
include "abi/compiled.pyx"
include "abi/unsupported.pyx"
include "abi/entry.pyx"
