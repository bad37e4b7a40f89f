# The mechanism tables, generated from p11fast/mechanisms.py (see mechanisms.pxd).

from p11fast._decl.pkcs11 cimport *
from p11fast._codec cimport H_MD5, H_NONE, H_SHA1, H_SHA224, H_SHA256, H_SHA384, H_SHA512

include "../_mechanisms.pxi"
