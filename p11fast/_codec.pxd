# p11fast._codec: the hot path's encoders and decoders, all C-level and GIL-free — the
# declarations of its pieces (p11fast/codec/, each .pxd headed by what the piece owns, its
# contract and what it uses), in dependency order.
#
# Other Cython modules use these with `from p11fast._codec cimport ...`; the functions reach
# them through Cython's C-API capsule (`__pyx_capi__`), so importing the module once (with the
# GIL, at the importer's module init) is all the set-up there is. Nothing here touches a
# Python object or allocates except wbuf (malloc) and hashing (OpenSSL). Every function states
# its error values: failures are return values the ABI maps to CKR_*, never exceptions.

include "codec/base64.pxd"
include "codec/json.pxd"
include "codec/ecdsa.pxd"
include "codec/hash.pxd"
include "codec/wbuf.pxd"
