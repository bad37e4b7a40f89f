"""What p11fast knows about mechanisms: the one table everything else is derived from.

* ``PKCS11``: every PKCS#11 mechanism the module offers, in the order ``C_GetMechanismList``
  lists them, with its ``C_GetMechanismInfo`` answer. Its names are what
  ``policy.allowed_mechanisms`` may list.
* ``NETHSM``: every NetHSM key mechanism in the API's order (``KeyMechanism`` of the NetHSM
  API), which is also the order of the bits the ABI keeps per key (``object_t.nethsm_mechs``):
  the key type it belongs to, the operation it allows, its ``mode`` in that operation's request,
  and the PKCS#11 mechanisms it gives a key (``CKA_ALLOWED_MECHANISMS``, ``CKA_SIGN`` ...).
* ``GENERATORS``: the key generation mechanisms and the key type each makes; the key sizes.

The compiled ABI takes its tables from here: ``mechanisms_build.py`` (beside ``setup.py``)
writes them into ``p11fast/_mechanisms.pxi`` at build time.

On the C_Initialize path (the configuration checks policy names against it, the object model
builds keys from it): plain data, nothing imported but ``attrs``.
"""

from p11fast import attrs as A

# The operations a NetHSM key mechanism allows, each a request of the NetHSM API.
SIGN = "sign"
DECRYPT = "decrypt"
ENCRYPT = "encrypt"
OPERATIONS = (SIGN, DECRYPT, ENCRYPT)

# What a NetHSM key mechanism belongs to: the NetHSM key types RSA, Curve25519 and Generic, and
# EC for every elliptic curve type (EC_P256 ... BrainpoolP512).
RSA = "RSA"
EC = "EC"
EDWARDS = "Curve25519"
GENERIC = "Generic"

# Key sizes in CK_MECHANISM_INFO's units: bits, except AES keys (bytes), as the standard counts
# for each mechanism.
RSA_BITS = (1024, 8192)
EC_BITS = (256, 521)
EDWARDS_BITS = (256, 256)
AES_BYTES = (16, 32)
AES_LENGTHS = (16, 24, 32)  # the AES key lengths within AES_BYTES
GENERIC_BITS = (128, 8192)  # a NetHSM's Generic keys (keyfender `generate_generic`)
NO_KEY = (0, 0)


def family(key_type: str) -> str:
    """The family of a NetHSM key type: RSA, Curve25519, Generic, else EC."""
    return key_type if key_type in (RSA, EDWARDS, GENERIC) else EC


class Mechanism:
    """A PKCS#11 mechanism the module offers, with its CK_MECHANISM_INFO."""

    __slots__ = ("name", "type", "min_key", "max_key", "flags")

    def __init__(self, name: str, sizes: tuple[int, int], flags: int) -> None:
        self.name = name
        self.type: int = getattr(A, name)
        self.min_key, self.max_key = sizes
        self.flags = flags

    def __repr__(self) -> str:
        return f"Mechanism({self.name})"


# CKF_HW marks work the HSM performs.
_SIGNS = A.CKF_HW | A.CKF_SIGN | A.CKF_VERIFY
_CRYPTS = A.CKF_HW | A.CKF_ENCRYPT | A.CKF_DECRYPT
_CURVES = A.CKF_EC_F_P | A.CKF_EC_NAMEDCURVE | A.CKF_EC_UNCOMPRESS

PKCS11: tuple[Mechanism, ...] = (
    Mechanism("CKM_RSA_PKCS", RSA_BITS, _SIGNS | _CRYPTS),
    Mechanism("CKM_RSA_X_509", RSA_BITS, _CRYPTS),
    Mechanism("CKM_RSA_PKCS_OAEP", RSA_BITS, _CRYPTS),
    Mechanism("CKM_SHA1_RSA_PKCS", RSA_BITS, _SIGNS),
    Mechanism("CKM_SHA224_RSA_PKCS", RSA_BITS, _SIGNS),
    Mechanism("CKM_SHA256_RSA_PKCS", RSA_BITS, _SIGNS),
    Mechanism("CKM_SHA384_RSA_PKCS", RSA_BITS, _SIGNS),
    Mechanism("CKM_SHA512_RSA_PKCS", RSA_BITS, _SIGNS),
    Mechanism("CKM_RSA_PKCS_PSS", RSA_BITS, _SIGNS),
    Mechanism("CKM_SHA1_RSA_PKCS_PSS", RSA_BITS, _SIGNS),
    Mechanism("CKM_SHA224_RSA_PKCS_PSS", RSA_BITS, _SIGNS),
    Mechanism("CKM_SHA256_RSA_PKCS_PSS", RSA_BITS, _SIGNS),
    Mechanism("CKM_SHA384_RSA_PKCS_PSS", RSA_BITS, _SIGNS),
    Mechanism("CKM_SHA512_RSA_PKCS_PSS", RSA_BITS, _SIGNS),
    Mechanism("CKM_ECDSA", EC_BITS, _SIGNS | _CURVES),
    Mechanism("CKM_ECDSA_SHA1", EC_BITS, _SIGNS | _CURVES),
    Mechanism("CKM_ECDSA_SHA224", EC_BITS, _SIGNS | _CURVES),
    Mechanism("CKM_ECDSA_SHA256", EC_BITS, _SIGNS | _CURVES),
    Mechanism("CKM_ECDSA_SHA384", EC_BITS, _SIGNS | _CURVES),
    Mechanism("CKM_ECDSA_SHA512", EC_BITS, _SIGNS | _CURVES),
    Mechanism("CKM_EDDSA", EDWARDS_BITS, _SIGNS),
    # ECB and CMAC are built on the HSM's CBC, so they are hardware mechanisms too.
    Mechanism("CKM_AES_CBC", AES_BYTES, _CRYPTS),
    Mechanism("CKM_AES_CBC_PAD", AES_BYTES, _CRYPTS),
    Mechanism("CKM_AES_ECB", AES_BYTES, _CRYPTS),
    Mechanism("CKM_AES_CMAC", AES_BYTES, _SIGNS),
    Mechanism("CKM_AES_CMAC_GENERAL", AES_BYTES, _SIGNS),
    Mechanism("CKM_RSA_PKCS_KEY_PAIR_GEN", RSA_BITS, A.CKF_HW | A.CKF_GENERATE_KEY_PAIR),
    Mechanism("CKM_EC_KEY_PAIR_GEN", EC_BITS, A.CKF_HW | A.CKF_GENERATE_KEY_PAIR | _CURVES),
    Mechanism("CKM_EC_EDWARDS_KEY_PAIR_GEN", EDWARDS_BITS, A.CKF_HW | A.CKF_GENERATE_KEY_PAIR),
    Mechanism("CKM_AES_KEY_GEN", AES_BYTES, A.CKF_HW | A.CKF_GENERATE),
    Mechanism("CKM_GENERIC_SECRET_KEY_GEN", GENERIC_BITS, A.CKF_HW | A.CKF_GENERATE),
    # Digests are computed locally.
    Mechanism("CKM_SHA_1", NO_KEY, A.CKF_DIGEST),
    Mechanism("CKM_SHA224", NO_KEY, A.CKF_DIGEST),
    Mechanism("CKM_SHA256", NO_KEY, A.CKF_DIGEST),
    Mechanism("CKM_SHA384", NO_KEY, A.CKF_DIGEST),
    Mechanism("CKM_SHA512", NO_KEY, A.CKF_DIGEST),
)

BY_NAME: dict[str, Mechanism] = {m.name: m for m in PKCS11}
NAMES = frozenset(BY_NAME)


class NetHSMMechanism:
    """A NetHSM key mechanism: the family of keys that hold it, the operation it allows, its
    ``mode`` in that operation's request (``hash``: the hash the mode names, for the PKCS#11
    parameters that select it), and the PKCS#11 mechanisms it gives a key."""

    __slots__ = ("name", "family", "operation", "mode", "hash", "pkcs11")

    def __init__(self, name: str, family: str, operation: str, mode: str,
                 pkcs11: tuple[str, ...] = (), hash: str | None = None) -> None:
        self.name = name
        self.family = family
        self.operation = operation
        self.mode = mode
        self.hash = hash
        self.pkcs11: tuple[int, ...] = tuple(getattr(A, n) for n in pkcs11)

    def __repr__(self) -> str:
        return f"NetHSMMechanism({self.name})"


# Hash-and-sign mechanisms hash locally and send the HSM the digest.
_RSA_PKCS_SIGN = ("CKM_RSA_PKCS", "CKM_SHA1_RSA_PKCS", "CKM_SHA224_RSA_PKCS",
                  "CKM_SHA256_RSA_PKCS", "CKM_SHA384_RSA_PKCS", "CKM_SHA512_RSA_PKCS")
_ECDSA = ("CKM_ECDSA", "CKM_ECDSA_SHA1", "CKM_ECDSA_SHA224", "CKM_ECDSA_SHA256",
          "CKM_ECDSA_SHA384", "CKM_ECDSA_SHA512")
_AES = ("CKM_AES_CBC", "CKM_AES_CBC_PAD", "CKM_AES_ECB")
_N = NetHSMMechanism

# MD5 variants: PKCS#11 has no MGF1 with MD5, so no PKCS#11 mechanism reaches them; BIP340 has
# no PKCS#11 mechanism at all. They are listed for the bit order and the modes.
NETHSM: tuple[NetHSMMechanism, ...] = (
    _N("RSA_Decryption_RAW", RSA, DECRYPT, "RAW", ("CKM_RSA_X_509",)),
    _N("RSA_Decryption_PKCS1", RSA, DECRYPT, "PKCS1", ("CKM_RSA_PKCS",)),
    _N("RSA_Decryption_OAEP_MD5", RSA, DECRYPT, "OAEP_MD5", (), "MD5"),
    _N("RSA_Decryption_OAEP_SHA1", RSA, DECRYPT, "OAEP_SHA1", ("CKM_RSA_PKCS_OAEP",), "SHA1"),
    _N("RSA_Decryption_OAEP_SHA224", RSA, DECRYPT, "OAEP_SHA224", ("CKM_RSA_PKCS_OAEP",),
       "SHA224"),
    _N("RSA_Decryption_OAEP_SHA256", RSA, DECRYPT, "OAEP_SHA256", ("CKM_RSA_PKCS_OAEP",),
       "SHA256"),
    _N("RSA_Decryption_OAEP_SHA384", RSA, DECRYPT, "OAEP_SHA384", ("CKM_RSA_PKCS_OAEP",),
       "SHA384"),
    _N("RSA_Decryption_OAEP_SHA512", RSA, DECRYPT, "OAEP_SHA512", ("CKM_RSA_PKCS_OAEP",),
       "SHA512"),
    _N("RSA_Signature_PKCS1", RSA, SIGN, "PKCS1", _RSA_PKCS_SIGN),
    _N("RSA_Signature_PSS_MD5", RSA, SIGN, "PSS_MD5", (), "MD5"),
    _N("RSA_Signature_PSS_SHA1", RSA, SIGN, "PSS_SHA1",
       ("CKM_RSA_PKCS_PSS", "CKM_SHA1_RSA_PKCS_PSS"), "SHA1"),
    _N("RSA_Signature_PSS_SHA224", RSA, SIGN, "PSS_SHA224",
       ("CKM_RSA_PKCS_PSS", "CKM_SHA224_RSA_PKCS_PSS"), "SHA224"),
    _N("RSA_Signature_PSS_SHA256", RSA, SIGN, "PSS_SHA256",
       ("CKM_RSA_PKCS_PSS", "CKM_SHA256_RSA_PKCS_PSS"), "SHA256"),
    _N("RSA_Signature_PSS_SHA384", RSA, SIGN, "PSS_SHA384",
       ("CKM_RSA_PKCS_PSS", "CKM_SHA384_RSA_PKCS_PSS"), "SHA384"),
    _N("RSA_Signature_PSS_SHA512", RSA, SIGN, "PSS_SHA512",
       ("CKM_RSA_PKCS_PSS", "CKM_SHA512_RSA_PKCS_PSS"), "SHA512"),
    _N("EdDSA_Signature", EDWARDS, SIGN, "EdDSA", ("CKM_EDDSA",)),
    _N("ECDSA_Signature", EC, SIGN, "ECDSA", _ECDSA),
    _N("BIP340_Signature", EC, SIGN, "BIP340"),  # secp256k1 Schnorr signatures
    # CMAC is computed from the HSM's CBC encryption (RFC 4493), ECB from CBC under a zero IV.
    _N("AES_Encryption_CBC", GENERIC, ENCRYPT, "AES_CBC",
       (*_AES, "CKM_AES_CMAC", "CKM_AES_CMAC_GENERAL")),
    _N("AES_Decryption_CBC", GENERIC, DECRYPT, "AES_CBC", _AES),
)

NETHSM_BY_NAME: dict[str, NetHSMMechanism] = {m.name: m for m in NETHSM}


def allowed_mechanisms(names) -> list[int]:
    """The PKCS#11 mechanisms, sorted, that a key holding the NetHSM mechanisms ``names``
    offers: its CKA_ALLOWED_MECHANISMS. Names the table does not know offer nothing."""
    offered = set()
    for name in names:
        mechanism = NETHSM_BY_NAME.get(name)
        if mechanism is not None:
            offered.update(mechanism.pkcs11)
    return sorted(offered)


def serves(names, operation: str) -> bool:
    """Whether a key holding the NetHSM mechanisms ``names`` can do ``operation`` through some
    PKCS#11 mechanism (its CKA_SIGN, CKA_DECRYPT, ...)."""
    for name in names:
        mechanism = NETHSM_BY_NAME.get(name)
        if mechanism is not None and mechanism.operation == operation and mechanism.pkcs11:
            return True
    return False


def usable(key_type: str, operation: str | None = None) -> list[str]:
    """The NetHSM mechanisms a key of NetHSM type ``key_type`` can hold that some PKCS#11
    mechanism reaches, for ``operation`` (None: for any), in table order."""
    wanted = family(key_type)
    return [m.name for m in NETHSM
            if m.family == wanted and m.pkcs11 and operation in (None, m.operation)]


def modes(operation: str) -> list[NetHSMMechanism]:
    """The NetHSM mechanisms of ``operation`` in table order: their modes are the API's
    SignMode, DecryptMode or EncryptMode values, and a mode's index is the C side's
    ``MODE_*``, ``DMODE_*`` or ``EMODE_*`` constant."""
    return [m for m in NETHSM if m.operation == operation]


# Key generation: mechanism -> (the PKCS#11 key type it makes, the NetHSM key type; None where
# the template's CKA_EC_PARAMS decides).
GENERATORS: dict[int, tuple[int, str | None]] = {
    A.CKM_RSA_PKCS_KEY_PAIR_GEN: (A.CKK_RSA, RSA),
    A.CKM_EC_KEY_PAIR_GEN: (A.CKK_EC, None),
    A.CKM_EC_EDWARDS_KEY_PAIR_GEN: (A.CKK_EC_EDWARDS, EDWARDS),
    # Not a generation mechanism in the standard, but GnuTLS's `p11tool --generate-privkey
    # ed25519` asks for it and nethsm-pkcs11 generates with it (mechanism.rs: EdDsa's key type).
    A.CKM_EDDSA: (A.CKK_EC_EDWARDS, EDWARDS),
    A.CKM_AES_KEY_GEN: (A.CKK_AES, GENERIC),
    A.CKM_GENERIC_SECRET_KEY_GEN: (A.CKK_GENERIC_SECRET, GENERIC),
}
