# cython: cdivision=True
# The hot path's codec: its pieces (p11fast/codec/), in dependency order; each function's
# contract is in its piece's .pxd.
#
# Everything here runs without the GIL inside C_Sign and friends, so it holds no Python
# object, never raises, and reports failure through return values the ABI maps to CKR_*.
# Inputs come from the network or from a PKCS#11 host: every length is checked before a
# byte is read or written.

include "codec/base64.pyx"
include "codec/json.pyx"
include "codec/ecdsa.pyx"
include "codec/hash.pyx"
include "codec/wbuf.pyx"
