# The mechanism tables, generated from p11fast/mechanisms.py (see mechanisms.pxd).

from p11fast._decl.pkcs11 cimport *

include "../_mechanisms.pxi"
