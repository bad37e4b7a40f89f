"""Template rules: what an application's template asks the HSM for, and what it refuses.

The ABI (``p11fast/abi/manage.pyx``) reads the application's template into
``[(CKA_*, bytes)]`` and hands it here; this module decides what the HSM key is (type, length,
mechanisms, ID, label) and raises typed :mod:`p11fast.errors` exceptions for everything it
refuses. It sends nothing: :mod:`p11fast.admin.client` makes the requests.

Decisions (docs/objects.md has the user-facing version):

* **Mechanisms** come from the usage attributes: ``CKA_SIGN`` (private/secret key) or
  ``CKA_VERIFY`` (public key) → the key type's signature mechanisms (AES: CBC encryption, on
  which CMAC is built); ``CKA_DECRYPT``/``CKA_UNWRAP`` (private/secret) or
  ``CKA_ENCRYPT``/``CKA_WRAP`` (public) → the decryption mechanisms; ``CKA_ENCRYPT``/
  ``CKA_WRAP`` on an AES key → AES-CBC encryption. A template that sets none of them gets
  everything the key type can do. Usages the type cannot serve (``CKA_DECRYPT`` on an EC key —
  pkcs11-tool always sets it) are ignored; a template left with no mechanism is inconsistent.
* **Key ID**: from ``CKA_ID`` (Nitrokey's mapping, :mod:`p11fast.keyid`); without one, the
  label when it is a valid key ID (as nethsm-pkcs11 does); otherwise a random ID chosen here —
  never by the HSM, so that a request retried after a lost answer meets its own key (409)
  instead of creating a second one. That 409 on an ID we chose, for a key of the requested
  type, is success.
* **Label**: ``CKA_LABEL`` goes to the key's ``label`` field.
* Only the administrator may create, change or delete keys: the client sends every request
  with the administrator's credentials, and without them the error says so.
"""

from __future__ import annotations

import os
from binascii import b2a_base64

from p11fast import attrs as A
from p11fast import der
from p11fast import mechanisms as M
from p11fast.errors import (
    AttributeReadOnly,
    AttributeTypeInvalid,
    AttributeValueInvalid,
    CurveNotSupported,
    KeySizeRange,
    MechanismInvalid,
    MechanismParamInvalid,
    TemplateIncomplete,
    TemplateInconsistent,
)
from p11fast.keyid import cka_id_to_key_id, is_reserved, is_valid_key_id

KNOWN_ATTRIBUTES = frozenset(v for k, v in vars(A).items() if k.startswith("CKA_"))
F4 = 65537  # the one public exponent the HSM generates RSA keys with


# --- reading templates ------------------------------------------------------------------------


def read(template: list) -> dict:
    """The template as {CKA_*: bytes}. Unknown types → CKR_ATTRIBUTE_TYPE_INVALID; a type given
    twice with different values → CKR_TEMPLATE_INCONSISTENT."""
    out: dict[int, bytes] = {}
    for kind, value in template:
        if kind not in KNOWN_ATTRIBUTES:
            raise AttributeTypeInvalid(f"attribute type 0x{kind:x} is not supported")
        if out.setdefault(kind, bytes(value)) != value:
            raise TemplateInconsistent(f"attribute 0x{kind:x} given twice with different values")
    return out


def flag(t: dict, kind: int) -> bool | None:
    value = t.get(kind)
    if value is None:
        return None
    if len(value) != 1:
        raise AttributeValueInvalid(f"attribute 0x{kind:x} is a CK_BBOOL")
    return value != A.FALSE


def ulong(t: dict, kind: int) -> int | None:
    value = t.get(kind)
    if value is None:
        return None
    try:
        return A.to_ulong(value)
    except ValueError:
        raise AttributeValueInvalid(f"attribute 0x{kind:x} is a CK_ULONG") from None


def token(t: dict) -> bool:
    """CKA_TOKEN, FALSE by default as the standard says."""
    return bool(flag(t, A.CKA_TOKEN))


def _expect(t: dict, kind: int, want: int, what: str) -> None:
    have = ulong(t, kind)
    if have is not None and have != want:
        raise TemplateInconsistent(f"{what}: attribute 0x{kind:x} is 0x{have:x}, not 0x{want:x}")


def _check_secret_storage(t: dict, what: str) -> None:
    """An HSM key is always sensitive and never extractable: a template asking otherwise
    cannot be honoured."""
    if flag(t, A.CKA_SENSITIVE) is False:
        raise TemplateInconsistent(f"{what}: CKA_SENSITIVE=FALSE; HSM keys are always sensitive")
    if flag(t, A.CKA_EXTRACTABLE):
        raise TemplateInconsistent(f"{what}: CKA_EXTRACTABLE=TRUE; HSM keys never leave the HSM")


# What a NetHSM key can be asked to be: (attribute, the one value the key has). A template asking
# for another value is refused (CKR_ATTRIBUTE_VALUE_INVALID: a valid attribute with a value the
# token cannot honour) instead of creating a key that silently lacks it. The public key of a pair
# is not destroyable on its own (it goes with its private key), so its template may say either.
_FIXED_FLAGS = (
    (A.CKA_ALWAYS_AUTHENTICATE, False, "the HSM has no per-operation authentication"),
    (A.CKA_WRAP_WITH_TRUSTED, False, "the HSM does not wrap keys"),
    (A.CKA_COPYABLE, False, "an HSM key cannot be duplicated"),
    (A.CKA_MODIFIABLE, True, "the administrator can always change an HSM key's label and ID"),
    (A.CKA_DESTROYABLE, True, "an HSM key can always be deleted by the administrator"),
)


def _check_honourable(t: dict, what: str, public: bool = False) -> None:
    for kind, value, why in _FIXED_FLAGS:
        if public and kind == A.CKA_DESTROYABLE:
            continue
        if flag(t, kind) not in (None, value):
            raise AttributeValueInvalid(f"{what}: attribute 0x{kind:x} must be {value}: {why}")
    for kind in (A.CKA_START_DATE, A.CKA_END_DATE):
        if t.get(kind):
            raise AttributeValueInvalid(f"{what}: attribute 0x{kind:x}: the HSM keeps no key dates")


# --- what to create ---------------------------------------------------------------------------


class KeySpec:
    """A key to create on the HSM."""

    __slots__ = ("key_type", "length", "mechanisms", "key_id", "label", "chosen", "token",
                 "cka_id", "value_len")

    def __init__(self, key_type: str, mechanisms: list[str], *, length: int | None = None,
                 label: str | None = None, token: bool = True, cka_id: bytes | None = None,
                 value_len: int | None = None):
        self.key_type = key_type
        self.length = length
        self.mechanisms = mechanisms
        self.label = label
        self.token = token
        self.cka_id = cka_id
        self.value_len = value_len
        self.key_id = ""
        self.chosen = False  # the module picked the ID: a 409 for it is our own retried request

    def place(self, session_key_id: str | None) -> None:
        """Decides the key ID: ``session_key_id`` for a session key, else from CKA_ID, the
        label, or chosen at random."""
        if session_key_id is not None:
            self.key_id, self.chosen = session_key_id, True
        elif self.cka_id is not None:
            self.key_id = key_id_for(self.cka_id)
        elif self.label and is_valid_key_id(self.label) and not is_reserved(self.label):
            self.key_id = self.label
        else:
            self.key_id, self.chosen = os.urandom(10).hex(), True

    def request(self, private: dict | None = None) -> tuple[str, str, dict]:
        """(method, path, JSON body) of the request that generates the key (``private``
        None) or imports it with the NetHSM ``private`` object (import_spec's)."""
        body: dict = {"type": self.key_type, "mechanisms": self.mechanisms}
        if private is None:
            body["id"] = self.key_id
            if self.length is not None:
                body["length"] = self.length
            method, path = "POST", "/keys/generate"
        else:
            body["private"] = private
            method, path = "PUT", "/keys/" + self.key_id
        if self.label:
            body["label"] = self.label
        return method, path, body


def key_id_for(cka_id: bytes) -> str:
    """The key ID of a CKA_ID the application gives (create, rename, certificate)."""
    try:
        key_id = cka_id_to_key_id(cka_id)
    except ValueError as e:
        raise AttributeValueInvalid(f"CKA_ID: {e}") from None
    if is_reserved(key_id):
        raise AttributeValueInvalid(f"key ID {key_id!r} is reserved for the module")
    return key_id


def _label(*templates: dict) -> str | None:
    for t in templates:
        if A.CKA_LABEL in t:
            try:
                return t[A.CKA_LABEL].decode("utf-8")
            except UnicodeDecodeError:
                raise AttributeValueInvalid("CKA_LABEL is not UTF-8") from None
    return None


def _cka_id(*templates: dict) -> bytes | None:
    """The CKA_ID the templates give; an empty one is none given (python-pkcs11 sends b"" for a
    key generated without an ID), so the key gets an ID as if the attribute were absent."""
    ids = {t[A.CKA_ID] for t in templates if t.get(A.CKA_ID)}
    if len(ids) > 1:
        raise TemplateInconsistent("CKA_ID differs between the public and private templates")
    return ids.pop() if ids else None


def _mechanisms(key_type: str, sign: bool | None, decrypt: bool | None,
                encrypt: bool | None) -> list[str]:
    """NetHSM mechanisms for the usages asked for (None = not mentioned)."""
    if sign is None and decrypt is None and encrypt is None:
        return M.usable(key_type)
    operations = set()
    if sign:
        # A secret key signs CMACs, which are AES-CBC encryption on the HSM.
        operations.add(M.ENCRYPT if M.family(key_type) == M.GENERIC else M.SIGN)
    if decrypt:
        operations.add(M.DECRYPT)
    if encrypt:
        operations.add(M.ENCRYPT)
    wanted = [name for name in M.usable(key_type)
              if M.NETHSM_BY_NAME[name].operation in operations]
    if not wanted:
        raise TemplateInconsistent(f"the template allows no operation a {key_type} key supports")
    return wanted


def _any(*values: bool | None) -> bool | None:
    """TRUE if any is TRUE, FALSE if some are FALSE and none TRUE, None if none is given."""
    given = [v for v in values if v is not None]
    return any(given) if given else None


def _generator(mechanism: int, has_parameter: bool) -> tuple[int, str | None]:
    if mechanism not in M.GENERATORS:
        raise MechanismInvalid(f"mechanism 0x{mechanism:x} does not generate keys here")
    if has_parameter:
        raise MechanismParamInvalid("key generation mechanisms take no parameter")
    return M.GENERATORS[mechanism]


def key_pair_spec(mechanism: int, has_parameter: bool, pub: dict, priv: dict) -> KeySpec:
    ckk, key_type = _generator(mechanism, has_parameter)
    if ckk in (A.CKK_AES, A.CKK_GENERIC_SECRET):
        raise MechanismInvalid("C_GenerateKeyPair needs a key pair mechanism")
    _expect(pub, A.CKA_CLASS, A.CKO_PUBLIC_KEY, "public template")
    _expect(priv, A.CKA_CLASS, A.CKO_PRIVATE_KEY, "private template")
    _expect(pub, A.CKA_KEY_TYPE, ckk, "public template")
    _expect(priv, A.CKA_KEY_TYPE, ckk, "private template")
    _check_secret_storage(priv, "private template")
    _check_honourable(pub, "public template", public=True)
    _check_honourable(priv, "private template")
    length = None
    if ckk == A.CKK_RSA:
        length = _rsa_bits(pub, priv)
    else:
        key_type = _curve(ckk, pub.get(A.CKA_EC_PARAMS, priv.get(A.CKA_EC_PARAMS)), key_type)
    mechanisms = _mechanisms(
        key_type,
        sign=_any(flag(priv, A.CKA_SIGN), flag(pub, A.CKA_VERIFY)),
        decrypt=_any(flag(priv, A.CKA_DECRYPT), flag(priv, A.CKA_UNWRAP),
                     flag(pub, A.CKA_ENCRYPT), flag(pub, A.CKA_WRAP)),
        encrypt=None,
    )
    return KeySpec(key_type, mechanisms, length=length, label=_label(priv, pub),
                   token=token(priv), cka_id=_cka_id(pub, priv))


def _rsa_bits(pub: dict, priv: dict) -> int:
    bits = ulong(pub, A.CKA_MODULUS_BITS)
    if bits is None:
        bits = ulong(priv, A.CKA_MODULUS_BITS)
    if bits is None:
        raise TemplateIncomplete("RSA key generation needs CKA_MODULUS_BITS")
    low, high = M.RSA_BITS
    if not low <= bits <= high:
        raise KeySizeRange(f"RSA keys are {low} to {high} bits, not {bits}")
    exponent = pub.get(A.CKA_PUBLIC_EXPONENT)
    if exponent is not None and int.from_bytes(exponent, "big") != F4:
        raise AttributeValueInvalid("the HSM generates RSA keys with public exponent 65537 only")
    return bits


def _curve(ckk: int, params: bytes | None, fixed: str | None) -> str:
    """The NetHSM key type of an EC or Edwards key from CKA_EC_PARAMS."""
    if params is None:
        if fixed is None:
            raise TemplateIncomplete("EC key generation needs CKA_EC_PARAMS")
        return fixed
    key_type = der.key_type_for_ec_params(params)
    if key_type is None:
        raise CurveNotSupported("CKA_EC_PARAMS names a curve the HSM does not support")
    if (key_type == "Curve25519") != (ckk == A.CKK_EC_EDWARDS):
        raise TemplateInconsistent(f"CKA_EC_PARAMS ({key_type}) does not fit the mechanism")
    return key_type


def secret_key_spec(mechanism: int, has_parameter: bool, t: dict) -> KeySpec:
    ckk, key_type = _generator(mechanism, has_parameter)
    if ckk not in (A.CKK_AES, A.CKK_GENERIC_SECRET):
        raise MechanismInvalid("C_GenerateKey needs a secret key mechanism")
    _expect(t, A.CKA_CLASS, A.CKO_SECRET_KEY, "template")
    _expect(t, A.CKA_KEY_TYPE, ckk, "template")
    _check_secret_storage(t, "template")
    _check_honourable(t, "template")
    nbytes = ulong(t, A.CKA_VALUE_LEN)
    if nbytes is None:
        raise TemplateIncomplete("secret key generation needs CKA_VALUE_LEN")
    _check_secret_length(ckk, nbytes)
    return KeySpec(key_type, _secret_mechanisms(t), length=8 * nbytes, label=_label(t),
                   token=token(t), cka_id=_cka_id(t), value_len=nbytes)


def _check_secret_length(ckk: int, nbytes: int) -> None:
    if ckk == A.CKK_AES and nbytes not in M.AES_LENGTHS:
        raise KeySizeRange(f"AES keys are 16, 24 or 32 bytes, not {nbytes}")
    low, high = M.GENERIC_BITS[0] // 8, M.GENERIC_BITS[1] // 8
    if not low <= nbytes <= high:
        raise KeySizeRange(f"secret keys on the HSM are {low} to {high} bytes, not {nbytes}")


def _secret_mechanisms(t: dict) -> list[str]:
    if flag(t, A.CKA_SIGN) and flag(t, A.CKA_ENCRYPT) is False:
        # CMAC is AES-CBC encryption on the HSM (AES_Encryption_CBC): a key that signs encrypts
        raise TemplateInconsistent("CKA_SIGN=TRUE with CKA_ENCRYPT=FALSE: an AES key that "
                                   "computes CMACs on the HSM can also encrypt")
    return _mechanisms(
        "Generic",
        sign=_any(flag(t, A.CKA_SIGN), flag(t, A.CKA_VERIFY)),
        decrypt=_any(flag(t, A.CKA_DECRYPT), flag(t, A.CKA_UNWRAP)),
        encrypt=_any(flag(t, A.CKA_ENCRYPT), flag(t, A.CKA_WRAP)),
    )


def _b64(data: bytes) -> str:
    return b2a_base64(data, newline=False).decode("ascii")


def _need(t: dict, kind: int, what: str) -> bytes:
    value = t.get(kind)
    if not value:
        raise TemplateIncomplete(f"{what} needs attribute 0x{kind:x}")
    return value


def import_spec(cls: int, t: dict) -> tuple[KeySpec, dict]:
    """A private or secret key to import: the spec and the NetHSM ``private`` object."""
    ckk = ulong(t, A.CKA_KEY_TYPE)
    if ckk is None:
        raise TemplateIncomplete("key import needs CKA_KEY_TYPE")
    _check_secret_storage(t, "template")
    _check_honourable(t, "template")
    value_len = None
    if cls == A.CKO_SECRET_KEY:
        if ckk not in (A.CKK_AES, A.CKK_GENERIC_SECRET):
            raise TemplateInconsistent(f"secret keys of key type 0x{ckk:x} are not supported")
        value = _need(t, A.CKA_VALUE, "a secret key")
        _check_secret_length(ckk, len(value))
        key_type, private, value_len = "Generic", {"data": _b64(value)}, len(value)
        mechanisms = _secret_mechanisms(t)
    else:
        key_type, private = _private_material(ckk, t)
        mechanisms = _mechanisms(key_type, sign=flag(t, A.CKA_SIGN),
                                 decrypt=_any(flag(t, A.CKA_DECRYPT), flag(t, A.CKA_UNWRAP)),
                                 encrypt=None)
    spec = KeySpec(key_type, mechanisms, label=_label(t), token=token(t), cka_id=_cka_id(t),
                   value_len=value_len)
    return spec, private


def _private_material(ckk: int, t: dict) -> tuple[str, dict]:
    if ckk == A.CKK_RSA:
        return "RSA", {
            "primeP": _b64(_need(t, A.CKA_PRIME_1, "an RSA private key")),
            "primeQ": _b64(_need(t, A.CKA_PRIME_2, "an RSA private key")),
            "publicExponent": _b64(_need(t, A.CKA_PUBLIC_EXPONENT, "an RSA private key")),
        }
    if ckk not in (A.CKK_EC, A.CKK_EC_EDWARDS):
        raise TemplateInconsistent(f"private keys of key type 0x{ckk:x} are not supported")
    edwards = "Curve25519" if ckk == A.CKK_EC_EDWARDS else None
    key_type = _curve(ckk, t.get(A.CKA_EC_PARAMS), edwards)
    value = _need(t, A.CKA_VALUE, "an EC private key")
    # The HSM wants the scalar at the curve's full length.
    size = der.field_len(key_type)
    if len(value) > size:
        raise AttributeValueInvalid(f"CKA_VALUE is longer than a {key_type} private key")
    return key_type, {"data": _b64(value.rjust(size, b"\x00"))}


# --- certificates and attribute changes -------------------------------------------------------


def certificate_target(t: dict, aliases: dict) -> tuple[str, bytes, str | None]:
    """(key ID, DER, CKA_LABEL or None) of a token certificate to store with its key.
    ``aliases`` maps names given through C_SetAttributeValue in the enable_set_attribute_value
    mode to real key IDs."""
    cert_type = ulong(t, A.CKA_CERTIFICATE_TYPE)
    if cert_type not in (None, A.CKC_X_509):
        raise AttributeValueInvalid("only X.509 certificates (CKC_X_509) are supported")
    value = _need(t, A.CKA_VALUE, "a certificate")
    try:
        der.certificate_fields(value)
    except der.DERError as e:
        raise AttributeValueInvalid(f"CKA_VALUE is not a DER X.509 certificate: {e}") from None
    name = _cka_id(t)
    if name is None:
        raise TemplateIncomplete("a token certificate needs the CKA_ID of the key it belongs to")
    key_id = key_id_for(name)
    return aliases.get(key_id, key_id), value, _label(t)


# What C_SetAttributeValue may change: on HSM keys the label and the ID (a rename); on objects
# the module holds, also what describes them without changing what they are.
HSM_MUTABLE = frozenset((A.CKA_LABEL, A.CKA_ID))
HELD_MUTABLE = HSM_MUTABLE | frozenset((
    A.CKA_APPLICATION, A.CKA_OBJECT_ID, A.CKA_SUBJECT, A.CKA_START_DATE, A.CKA_END_DATE,
    A.CKA_VERIFY, A.CKA_ENCRYPT, A.CKA_WRAP, A.CKA_TRUSTED, A.CKA_URL,
))


def changes(current: dict, template: list, mutable: frozenset) -> dict:
    """The attributes ``template`` changes; setting one that cannot change to a new value
    → CKR_ATTRIBUTE_READ_ONLY (to its current value is harmless)."""
    out = {}
    for kind, value in read(template).items():
        if current.get(kind) == value:
            continue
        if kind not in mutable:
            raise AttributeReadOnly(f"attribute 0x{kind:x} cannot be changed")
        out[kind] = value
    if A.CKA_LABEL in out:
        _label(out)
    return out

