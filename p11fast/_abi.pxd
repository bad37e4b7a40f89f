# p11fast._abi: the declarations of its pieces (p11fast/codec/, p11fast/transport/,
# p11fast/abi/, each .pxd headed by what the piece owns, its contract and what it uses), in
# dependency order. Nothing outside the extension cimports from here but the test harnesses
# (tests/codec/, tests/transport/): the loader takes the ABI's capsules (abi/entry.pxd) and
# the transport's exported C functions (transport/capi.h).
#
# The codec's pieces run without the GIL inside C_Sign and friends: they hold no Python object,
# allocate only in wbuf (malloc) and hashing (OpenSSL), and report failure through return
# values the ABI maps to CKR_*, never exceptions. Their inputs come from the network or from a
# PKCS#11 host: every length is checked before a byte is read or written.

include "codec/base64.pxd"
include "codec/json.pxd"
include "codec/ecdsa.pxd"
include "codec/hash.pxd"
include "codec/wbuf.pxd"

include "transport/types.pxd"
include "transport/sync.pxd"
include "transport/cstr.pxd"
include "transport/conn.pxd"
include "transport/http1.pxd"
include "transport/transfer.pxd"
include "transport/pool.pxd"
include "transport/health.pxd"
include "transport/spec.pxd"
include "transport/park.pxd"
include "transport/request.pxd"
include "transport/fork.pxd"
include "transport/lifetime.pxd"
include "transport/capi.pxd"
include "transport/api.pxd"

include "abi/state.pxd"
include "abi/errors.pxd"
include "abi/sessions.pxd"
include "abi/mechanisms.pxd"
include "abi/objects.pxd"
include "abi/ops.pxd"
include "abi/crypt.pxd"
include "abi/sign.pxd"
include "abi/verify.pxd"
include "abi/digest.pxd"
include "abi/slots.pxd"
include "abi/recorded.pxd"
include "abi/recording.pxd"
include "abi/find.pxd"
include "abi/manage.pxd"
include "abi/pins.pxd"
include "abi/login.pxd"
include "abi/lifetime.pxd"
include "abi/compiled.pxd"
include "abi/unsupported.pxd"
include "abi/entry.pxd"
