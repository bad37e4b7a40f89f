"""HSM keys as PKCS#11 objects: the objects one NetHSM key becomes, and their attributes.

Each NetHSM key becomes (PKCS#11 v3.0 semantics):

* RSA / EC / Curve25519 keys: a ``CKO_PRIVATE_KEY`` and a ``CKO_PUBLIC_KEY``;
* ``Generic`` keys: a ``CKO_SECRET_KEY`` (``CKK_AES`` when the key holds AES mechanisms and
  is not known to be of another length, else ``CKK_GENERIC_SECRET``);
* plus a ``CKO_CERTIFICATE`` when a certificate is stored with the key.

``CKA_ID`` follows nethsm-pkcs11's mapping (:mod:`p11fast.keyid`); ``CKA_LABEL`` is the key's
NetHSM 5 ``label`` when present and non-empty, else the key ID (as nethsm-pkcs11 does). What a
key can do (``CKA_ALLOWED_MECHANISMS``, ``CKA_SIGN``, ``CKA_DECRYPT`` ...) comes from its NetHSM
mechanisms through :mod:`p11fast.mechanisms`; mechanisms PKCS#11 cannot express
(``RSA_Signature_PSS_MD5``, ``RSA_Decryption_OAEP_MD5``, ``BIP340_Signature``) give nothing.

* ``CKA_VALUE_LEN`` of secret keys: the NetHSM JSON does not carry the length, so it is
  ``CK_UNAVAILABLE_INFORMATION`` (all ones, the standard's "cannot be given" value) unless the
  length is known (``Inventory.set_value_len`` after ``C_GenerateKey`` / ``C_CreateObject``).
  Templates pinning ``CKA_VALUE_LEN`` only match keys whose length is known.
* ``CKA_SUBJECT`` of key objects is the stored certificate's subject once the certificate has
  been fetched (empty before and without one).

On the way to the first signature: no ``json``, ``re``, ``logging``, ``threading``,
``dataclasses`` or ``cryptography``.
"""

from binascii import a2b_base64 as _a2b_base64

from p11fast import attrs as A
from p11fast import der
from p11fast import mechanisms as M
from p11fast.keyid import key_id_to_cka_id

_EC_TYPES = frozenset(
    ("EC_P256", "EC_P384", "EC_P521", "EC_P256K1", "BrainpoolP256", "BrainpoolP384",
     "BrainpoolP512", "Curve25519")
)
_RSA_SENSITIVE = frozenset(
    (A.CKA_PRIVATE_EXPONENT, A.CKA_PRIME_1, A.CKA_PRIME_2, A.CKA_EXPONENT_1, A.CKA_EXPONENT_2,
     A.CKA_COEFFICIENT)
)
_VALUE_SENSITIVE = frozenset((A.CKA_VALUE,))
_NONE = frozenset()

_T, _F = A.TRUE, A.FALSE
_EMPTY = b""


class KeyDataError(ValueError):
    """A key's JSON lacks what its type needs (e.g. an RSA key without modulus)."""


class P11Object:
    """One PKCS#11 object derived from the HSM (immutable by convention)."""

    __slots__ = ("cls", "key_id", "key_type", "mechanisms", "bits", "attrs", "sensitive")

    def __init__(self, cls: int, key_id: str, key_type: str, mechanisms: frozenset, bits: int,
                 attrs: dict, sensitive: frozenset = _NONE):
        self.cls = cls
        self.key_id = key_id
        self.key_type = key_type
        self.mechanisms = mechanisms
        self.bits = bits
        self.attrs = attrs
        self.sensitive = sensitive

    def matches(self, template) -> bool:
        """Every (type, encoded value) equals the object's; a type the object lacks (or holds
        only as a sensitive value) -> False. CK_BBOOL values compare as booleans."""
        attrs = self.attrs
        for t, v in template:
            have = attrs.get(t)
            if have is None:
                return False
            if have != v:
                if t in A.BOOL_ATTRS and len(v) == 1:
                    if (v[0] != 0) == (have != _F):
                        continue
                return False
        return True

    def __repr__(self) -> str:
        return (f"P11Object(cls={self.cls}, key_id={self.key_id!r}, key_type={self.key_type!r}, "
                f"bits={self.bits})")


class _Key:
    """What every object of one NetHSM key shares."""

    __slots__ = ("key_id", "key_type", "mechanisms", "label", "cka_id", "allowed", "signs",
                 "decrypts", "encrypts", "subject")

    def __init__(self, key_id: str, data: dict, subject: bytes) -> None:
        mechanisms = data.get("mechanisms") or ()
        if not isinstance(mechanisms, (list, tuple)):
            raise KeyDataError("mechanisms is not a list")
        label = data.get("label")
        self.key_id = key_id
        self.key_type = data.get("type")
        self.mechanisms = frozenset(m for m in mechanisms if isinstance(m, str))
        self.label = label.encode("utf-8") if isinstance(label, str) and label else key_id.encode()
        self.cka_id = key_id_to_cka_id(key_id)
        self.allowed = A.ulong_array(M.allowed_mechanisms(self.mechanisms))
        self.signs = M.serves(self.mechanisms, M.SIGN)
        self.decrypts = M.serves(self.mechanisms, M.DECRYPT)
        self.encrypts = M.serves(self.mechanisms, M.ENCRYPT)
        self.subject = subject

    def object(self, cls: int, bits: int, attrs: dict, sensitive: frozenset = _NONE) -> P11Object:
        return P11Object(cls, self.key_id, self.key_type, self.mechanisms, bits, attrs, sensitive)


def build_objects(key_id: str, data: dict, cert: bytes | None = None,
                  value_len: int | None = None) -> list[P11Object]:
    """The PKCS#11 objects of one NetHSM key.

    ``data`` is the parsed ``GET /keys/{id}`` JSON (PublicKey schema), ``cert`` the stored
    certificate as DER (None: none or not fetched), ``value_len`` the secret key length in bytes
    when known. Raises KeyDataError when the JSON lacks what the key type needs; a certificate
    that does not parse yields no certificate object.
    """
    fields = _certificate_fields(cert)
    key = _Key(key_id, data, fields.subject if fields is not None else _EMPTY)
    if key.key_type == "RSA":
        objs = _rsa_objects(key, _public(data))
    elif key.key_type in _EC_TYPES:
        objs = _ec_objects(key, _public(data))
    elif key.key_type == "Generic":
        objs = [_secret_object(key, value_len)]
    else:
        raise KeyDataError(f"unsupported key type {key.key_type!r}")
    if fields is not None:
        objs.append(_certificate_object(key, cert, fields))
    return objs


def _certificate_fields(cert: bytes | None) -> der.CertFields | None:
    if cert is None:
        return None
    try:
        return der.certificate_fields(cert)
    except der.DERError:
        return None


def _public(data: dict) -> dict | None:
    public = data.get("public")
    if public is None:
        public = data.get("key")  # pre-2.0 NetHSM API name of the field
    if public is not None and not isinstance(public, dict):
        raise KeyDataError("public is not an object")
    return public


def _b64(value, what: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise KeyDataError(f"missing {what}")
    try:
        return _a2b_base64(value)
    except ValueError as e:
        raise KeyDataError(f"bad base64 in {what}: {e}") from None


# --- the attributes objects share -------------------------------------------------------------


def _storage(key: _Key, cls: int, private: bool, modifiable: bool, kind: str) -> dict:
    return {
        A.CKA_CLASS: A.ulong(cls),
        A.CKA_TOKEN: _T,
        A.CKA_PRIVATE: A.bbool(private),
        A.CKA_MODIFIABLE: A.bbool(modifiable),
        A.CKA_COPYABLE: _F,
        A.CKA_DESTROYABLE: _T,
        A.CKA_LABEL: key.label,
        A.CKA_UNIQUE_ID: f"{key.key_id}:{kind}".encode(),  # ':' never occurs in key IDs
    }


def _key_attrs(key: _Key, cls: int, ckk: int, kind: str) -> dict:
    d = _storage(key, cls, cls != A.CKO_PUBLIC_KEY, True, kind)
    if cls == A.CKO_PUBLIC_KEY:
        # goes with its private key: C_DestroyObject says CKR_ACTION_PROHIBITED
        d[A.CKA_DESTROYABLE] = _F
    d[A.CKA_KEY_TYPE] = A.ulong(ckk)
    d[A.CKA_ID] = key.cka_id
    d[A.CKA_START_DATE] = _EMPTY
    d[A.CKA_END_DATE] = _EMPTY
    d[A.CKA_DERIVE] = _F
    d[A.CKA_LOCAL] = _F  # the HSM does not say whether it generated the key
    d[A.CKA_KEY_GEN_MECHANISM] = A.ulong(A.CK_UNAVAILABLE_INFORMATION)
    d[A.CKA_ALLOWED_MECHANISMS] = key.allowed
    return d


def _private_attrs(key: _Key, ckk: int, decrypts: bool, values: dict) -> dict:
    d = _key_attrs(key, A.CKO_PRIVATE_KEY, ckk, "private")
    d[A.CKA_SUBJECT] = key.subject
    d[A.CKA_SENSITIVE] = _T
    d[A.CKA_EXTRACTABLE] = _F
    d[A.CKA_ALWAYS_SENSITIVE] = _T
    d[A.CKA_NEVER_EXTRACTABLE] = _T
    d[A.CKA_SIGN] = A.bbool(key.signs)
    d[A.CKA_SIGN_RECOVER] = _F
    d[A.CKA_ALWAYS_AUTHENTICATE] = _F
    d[A.CKA_WRAP_WITH_TRUSTED] = _F
    d[A.CKA_DECRYPT] = A.bbool(decrypts)
    d[A.CKA_UNWRAP] = A.bbool(decrypts)
    d.update(values)
    return d


def _public_attrs(key: _Key, ckk: int, encrypts: bool, values: dict) -> dict:
    d = _key_attrs(key, A.CKO_PUBLIC_KEY, ckk, "public")
    d[A.CKA_SUBJECT] = key.subject
    d[A.CKA_VERIFY] = A.bbool(key.signs)
    d[A.CKA_VERIFY_RECOVER] = _F
    d[A.CKA_TRUSTED] = _F
    d[A.CKA_ENCRYPT] = A.bbool(encrypts)
    d[A.CKA_WRAP] = A.bbool(encrypts)
    d.update(values)
    return d


# --- per key type -----------------------------------------------------------------------------


def _rsa_objects(key: _Key, public: dict | None) -> list[P11Object]:
    if public is None:
        raise KeyDataError("RSA key without public data")
    n = _b64(public.get("modulus"), "modulus").lstrip(b"\x00")
    e = _b64(public.get("publicExponent"), "publicExponent").lstrip(b"\x00")
    if not n or not e:
        raise KeyDataError("zero RSA modulus or exponent")
    bits = int.from_bytes(n, "big").bit_length()
    values = {
        A.CKA_MODULUS: n,
        A.CKA_PUBLIC_EXPONENT: e,
        A.CKA_MODULUS_BITS: A.ulong(bits),
        A.CKA_PUBLIC_KEY_INFO: der.rsa_spki(n, e),
    }
    # The public key encrypts (locally) what the private key decrypts on the HSM.
    return [
        key.object(A.CKO_PRIVATE_KEY, bits,
                   _private_attrs(key, A.CKK_RSA, key.decrypts, values), _RSA_SENSITIVE),
        key.object(A.CKO_PUBLIC_KEY, bits, _public_attrs(key, A.CKK_RSA, key.decrypts, values)),
    ]


def _ec_objects(key: _Key, public: dict | None) -> list[P11Object]:
    key_type = key.key_type
    if public is None:
        raise KeyDataError(f"{key_type} key without public data")
    point = _b64(public.get("data"), "data")
    if key_type == "Curve25519":
        ckk = A.CKK_EC_EDWARDS
        if len(point) != 32:
            raise KeyDataError(f"Ed25519 public key of {len(point)} bytes")
    else:
        ckk = A.CKK_EC
        if len(point) != 1 + 2 * der.field_len(key_type) or point[0] != 4:
            raise KeyDataError(f"{key_type} public key is not an uncompressed point")
    bits = der.field_bits(key_type)
    values = {
        A.CKA_EC_PARAMS: der.ec_params_for_key_type(key_type),
        A.CKA_EC_POINT: der.octet_string(point),
        A.CKA_PUBLIC_KEY_INFO: der.ec_spki(key_type, point),
    }
    return [
        key.object(A.CKO_PRIVATE_KEY, bits, _private_attrs(key, ckk, False, values),
                   _VALUE_SENSITIVE),
        key.object(A.CKO_PUBLIC_KEY, bits, _public_attrs(key, ckk, False, values)),
    ]


def _secret_object(key: _Key, value_len: int | None) -> P11Object:
    # A Generic key is an AES key when it holds AES mechanisms, unless its length is known not
    # to be one: a NetHSM generates Generic keys of 16 to 1024 bytes and requires a mechanism
    # (AES, the only one there is) even for those.
    is_aes = (any(m.startswith("AES_") for m in key.mechanisms)
              and value_len in (None, *M.AES_LENGTHS))
    encrypts, decrypts = key.encrypts and is_aes, key.decrypts and is_aes
    d = _key_attrs(key, A.CKO_SECRET_KEY, A.CKK_AES if is_aes else A.CKK_GENERIC_SECRET,
                   "secret")
    d.update({
        A.CKA_SENSITIVE: _T,
        A.CKA_EXTRACTABLE: _F,
        A.CKA_ALWAYS_SENSITIVE: _T,
        A.CKA_NEVER_EXTRACTABLE: _T,
        A.CKA_ENCRYPT: A.bbool(encrypts),
        A.CKA_DECRYPT: A.bbool(decrypts),
        # CMAC is built on the HSM's AES-CBC encryption
        A.CKA_SIGN: A.bbool(encrypts),
        A.CKA_VERIFY: A.bbool(encrypts),
        A.CKA_WRAP: _F,
        A.CKA_UNWRAP: _F,
        A.CKA_WRAP_WITH_TRUSTED: _F,
        A.CKA_TRUSTED: _F,
        A.CKA_VALUE_LEN: A.ulong(
            value_len if value_len is not None else A.CK_UNAVAILABLE_INFORMATION),
    })
    bits = value_len * 8 if value_len is not None else 0
    return key.object(A.CKO_SECRET_KEY, bits, d, _VALUE_SENSITIVE)


def _certificate_object(key: _Key, cert: bytes, fields: der.CertFields) -> P11Object:
    d = _storage(key, A.CKO_CERTIFICATE, False, False, "certificate")
    d.update({
        A.CKA_ID: key.cka_id,
        A.CKA_CERTIFICATE_TYPE: A.ulong(A.CKC_X_509),
        A.CKA_TRUSTED: _F,
        A.CKA_CERTIFICATE_CATEGORY: A.ulong(A.CK_CERTIFICATE_CATEGORY_UNSPECIFIED),
        A.CKA_CHECK_VALUE: _check_value(cert),
        A.CKA_START_DATE: _EMPTY,
        A.CKA_END_DATE: _EMPTY,
        A.CKA_PUBLIC_KEY_INFO: fields.spki,
        A.CKA_SUBJECT: fields.subject,
        A.CKA_ISSUER: fields.issuer,
        A.CKA_SERIAL_NUMBER: fields.serial,
        A.CKA_VALUE: bytes(cert),
        A.CKA_URL: _EMPTY,
        A.CKA_HASH_OF_SUBJECT_PUBLIC_KEY: _EMPTY,
        A.CKA_HASH_OF_ISSUER_PUBLIC_KEY: _EMPTY,
        A.CKA_JAVA_MIDP_SECURITY_DOMAIN: A.ulong(0),
    })
    return P11Object(A.CKO_CERTIFICATE, key.key_id, key.key_type, frozenset(), 0, d)


def _check_value(cert: bytes) -> bytes:
    """CKA_CHECK_VALUE of a certificate: the first 3 bytes of its SHA-1 (imported only when a
    certificate exists)."""
    try:
        from _sha1 import sha1
    except ImportError:  # pragma: no cover - CPython without the builtin module
        from hashlib import sha1
    return sha1(cert).digest()[:3]
