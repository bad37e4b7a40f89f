"""PKCS#11 constants used by the object model and the mechanism table, and attribute value
encoding.

Every attribute value of a :class:`p11fast.model.objects.P11Object` is stored already encoded
as the bytes the C ABI copies into the caller's buffer:

* ``CK_ULONG`` (classes, key types, lengths, mechanism types): native-endian unsigned of the
  platform's ``unsigned long`` size (8 bytes on LP64 Linux/macOS, i.e. ``struct "=Q"``),
* ``CK_BBOOL``: ``b"\\x01"`` / ``b"\\x00"``,
* byte arrays and UTF-8 strings: as is.

Values are the standard's (PKCS#11 v3.0, ``pkcs11t.h``); the unit test
``test_constants_match_header`` checks each against ``include/pkcs11t.h``.
This module imports nothing but builtins: it is on the path to the first signature.
"""

import sys as _sys
from _struct import calcsize as _calcsize

ULONG_SIZE = _calcsize("@L")  # sizeof(CK_ULONG)
_BYTEORDER = _sys.byteorder


def ulong(v: int) -> bytes:
    """Encode a CK_ULONG."""
    return v.to_bytes(ULONG_SIZE, _BYTEORDER)


def ulong_array(values) -> bytes:
    """Encode a CK_ULONG array (e.g. CKA_ALLOWED_MECHANISMS)."""
    return b"".join([v.to_bytes(ULONG_SIZE, _BYTEORDER) for v in values])


def to_ulong(b: bytes) -> int:
    """Decode a CK_ULONG (inverse of :func:`ulong`); raises ValueError on a wrong length."""
    if len(b) != ULONG_SIZE:
        raise ValueError(f"CK_ULONG must be {ULONG_SIZE} bytes, got {len(b)}")
    return int.from_bytes(b, _BYTEORDER)


TRUE = b"\x01"
FALSE = b"\x00"


def bbool(v: bool) -> bytes:
    """Encode a CK_BBOOL."""
    return TRUE if v else FALSE


CK_UNAVAILABLE_INFORMATION = (1 << (8 * ULONG_SIZE)) - 1  # ~0UL
CKF_ARRAY_ATTRIBUTE = 0x40000000

# Mechanism flags (CK_MECHANISM_INFO.flags)
CKF_HW = 0x1
CKF_ENCRYPT = 0x100
CKF_DECRYPT = 0x200
CKF_DIGEST = 0x400
CKF_SIGN = 0x800
CKF_VERIFY = 0x2000
CKF_GENERATE = 0x8000
CKF_GENERATE_KEY_PAIR = 0x10000
CKF_EC_F_P = 0x100000
CKF_EC_NAMEDCURVE = 0x800000
CKF_EC_UNCOMPRESS = 0x1000000

# Object classes
CKO_DATA = 0x0
CKO_CERTIFICATE = 0x1
CKO_PUBLIC_KEY = 0x2
CKO_PRIVATE_KEY = 0x3
CKO_SECRET_KEY = 0x4

# Key types
CKK_RSA = 0x0
CKK_EC = 0x3
CKK_GENERIC_SECRET = 0x10
CKK_AES = 0x1F
CKK_EC_EDWARDS = 0x40

# Certificate types and categories
CKC_X_509 = 0x0
CK_CERTIFICATE_CATEGORY_UNSPECIFIED = 0x0

# Attributes
CKA_CLASS = 0x0
CKA_TOKEN = 0x1
CKA_PRIVATE = 0x2
CKA_LABEL = 0x3
CKA_UNIQUE_ID = 0x4
CKA_APPLICATION = 0x10
CKA_VALUE = 0x11
CKA_OBJECT_ID = 0x12
CKA_CERTIFICATE_TYPE = 0x80
CKA_ISSUER = 0x81
CKA_SERIAL_NUMBER = 0x82
CKA_TRUSTED = 0x86
CKA_CERTIFICATE_CATEGORY = 0x87
CKA_JAVA_MIDP_SECURITY_DOMAIN = 0x88
CKA_URL = 0x89
CKA_HASH_OF_SUBJECT_PUBLIC_KEY = 0x8A
CKA_HASH_OF_ISSUER_PUBLIC_KEY = 0x8B
CKA_CHECK_VALUE = 0x90
CKA_KEY_TYPE = 0x100
CKA_SUBJECT = 0x101
CKA_ID = 0x102
CKA_SENSITIVE = 0x103
CKA_ENCRYPT = 0x104
CKA_DECRYPT = 0x105
CKA_WRAP = 0x106
CKA_UNWRAP = 0x107
CKA_SIGN = 0x108
CKA_SIGN_RECOVER = 0x109
CKA_VERIFY = 0x10A
CKA_VERIFY_RECOVER = 0x10B
CKA_DERIVE = 0x10C
CKA_START_DATE = 0x110
CKA_END_DATE = 0x111
CKA_MODULUS = 0x120
CKA_MODULUS_BITS = 0x121
CKA_PUBLIC_EXPONENT = 0x122
CKA_PRIVATE_EXPONENT = 0x123
CKA_PRIME_1 = 0x124
CKA_PRIME_2 = 0x125
CKA_EXPONENT_1 = 0x126
CKA_EXPONENT_2 = 0x127
CKA_COEFFICIENT = 0x128
CKA_PUBLIC_KEY_INFO = 0x129
CKA_VALUE_LEN = 0x161
CKA_EXTRACTABLE = 0x162
CKA_LOCAL = 0x163
CKA_NEVER_EXTRACTABLE = 0x164
CKA_ALWAYS_SENSITIVE = 0x165
CKA_KEY_GEN_MECHANISM = 0x166
CKA_MODIFIABLE = 0x170
CKA_COPYABLE = 0x171
CKA_DESTROYABLE = 0x172
CKA_EC_PARAMS = 0x180
CKA_EC_POINT = 0x181
CKA_ALWAYS_AUTHENTICATE = 0x202
CKA_WRAP_WITH_TRUSTED = 0x210
CKA_ALLOWED_MECHANISMS = CKF_ARRAY_ATTRIBUTE | 0x600

# Mechanisms
CKM_RSA_PKCS_KEY_PAIR_GEN = 0x0
CKM_RSA_PKCS = 0x1
CKM_RSA_X_509 = 0x3
CKM_SHA1_RSA_PKCS = 0x6
CKM_RSA_PKCS_OAEP = 0x9
CKM_RSA_PKCS_PSS = 0xD
CKM_SHA1_RSA_PKCS_PSS = 0xE
CKM_SHA256_RSA_PKCS = 0x40
CKM_SHA384_RSA_PKCS = 0x41
CKM_SHA512_RSA_PKCS = 0x42
CKM_SHA256_RSA_PKCS_PSS = 0x43
CKM_SHA384_RSA_PKCS_PSS = 0x44
CKM_SHA512_RSA_PKCS_PSS = 0x45
CKM_SHA224_RSA_PKCS = 0x46
CKM_SHA224_RSA_PKCS_PSS = 0x47
CKM_SHA_1 = 0x220
CKM_SHA256 = 0x250
CKM_SHA224 = 0x255
CKM_SHA384 = 0x260
CKM_SHA512 = 0x270
CKM_GENERIC_SECRET_KEY_GEN = 0x350
CKM_EC_KEY_PAIR_GEN = 0x1040
CKM_ECDSA = 0x1041
CKM_ECDSA_SHA1 = 0x1042
CKM_ECDSA_SHA224 = 0x1043
CKM_ECDSA_SHA256 = 0x1044
CKM_ECDSA_SHA384 = 0x1045
CKM_ECDSA_SHA512 = 0x1046
CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055
CKM_EDDSA = 0x1057
CKM_AES_KEY_GEN = 0x1080
CKM_AES_ECB = 0x1081
CKM_AES_CBC = 0x1082
CKM_AES_CBC_PAD = 0x1085
CKM_AES_CMAC_GENERAL = 0x108B
CKM_AES_CMAC = 0x108A

# Attributes whose value is a CK_BBOOL (template matching compares these as booleans).
BOOL_ATTRS = frozenset(
    (
        CKA_TOKEN, CKA_PRIVATE, CKA_TRUSTED, CKA_SENSITIVE, CKA_ENCRYPT, CKA_DECRYPT, CKA_WRAP,
        CKA_UNWRAP, CKA_SIGN, CKA_SIGN_RECOVER, CKA_VERIFY, CKA_VERIFY_RECOVER, CKA_DERIVE,
        CKA_EXTRACTABLE, CKA_LOCAL, CKA_NEVER_EXTRACTABLE, CKA_ALWAYS_SENSITIVE, CKA_MODIFIABLE,
        CKA_COPYABLE, CKA_DESTROYABLE, CKA_ALWAYS_AUTHENTICATE, CKA_WRAP_WITH_TRUSTED,
    )
)
# Attributes whose value is a CK_ULONG: a template value of another length is
# CKR_ATTRIBUTE_VALUE_INVALID (read_template), as a CK_BBOOL of a length other than 1 is.
ULONG_ATTRS = frozenset(
    (
        CKA_CLASS, CKA_CERTIFICATE_TYPE, CKA_CERTIFICATE_CATEGORY, CKA_JAVA_MIDP_SECURITY_DOMAIN,
        CKA_KEY_TYPE, CKA_MODULUS_BITS, CKA_VALUE_LEN, CKA_KEY_GEN_MECHANISM,
    )
)
