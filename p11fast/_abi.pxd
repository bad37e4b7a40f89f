# p11fast._abi: the declarations of its pieces (p11fast/abi/, each .pxd headed by what the
# piece owns, its contract and what it uses), in dependency order. Nothing outside the ABI
# cimports from here: the loader takes its capsules (entry.pxd).

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
include "abi/find.pxd"
include "abi/manage.pxd"
include "abi/pins.pxd"
include "abi/login.pxd"
include "abi/lifetime.pxd"
include "abi/unsupported.pxd"
include "abi/entry.pxd"
