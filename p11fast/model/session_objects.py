"""Session objects (CKA_TOKEN=FALSE): what each session created, for as long as it is open.

Two kinds, both owned by the session that created them and visible to every session of the
application while that session is open (PKCS#11 v3.0 §4.4):

* module-held objects — public keys, certificates and data objects. The HSM cannot hold them
  on their own, so they live here as :class:`P11Object` with a synthetic key ID (``~`` + a
  number: ``~`` never occurs in a NetHSM key ID, so these never collide with HSM objects);
* HSM session keys — private and secret keys created on the HSM under a reserved ID
  (:mod:`p11fast.model.session_keys`). They appear with ``CKA_TOKEN=FALSE`` and with the
  CKA_ID the application gave.
"""

from __future__ import annotations

from p11fast import attrs as A
from p11fast import der
from p11fast import mechanisms as M
from p11fast.errors import AttributeValueInvalid, TemplateIncomplete
from p11fast.model.objects import P11Object

_COMMON = {
    A.CKA_TOKEN: A.FALSE,
    A.CKA_PRIVATE: A.FALSE,
    A.CKA_MODIFIABLE: A.TRUE,
    A.CKA_COPYABLE: A.FALSE,
    A.CKA_DESTROYABLE: A.TRUE,
    A.CKA_LABEL: b"",
}
_DEFAULTS = {
    A.CKO_DATA: {A.CKA_APPLICATION: b"", A.CKA_OBJECT_ID: b"", A.CKA_VALUE: b""},
    A.CKO_CERTIFICATE: {
        A.CKA_ID: b"",
        A.CKA_TRUSTED: A.FALSE,
        A.CKA_START_DATE: b"",
        A.CKA_END_DATE: b"",
        A.CKA_CERTIFICATE_CATEGORY: A.ulong(A.CK_CERTIFICATE_CATEGORY_UNSPECIFIED),
    },
    A.CKO_PUBLIC_KEY: {
        A.CKA_ID: b"",
        A.CKA_SUBJECT: b"",
        A.CKA_START_DATE: b"",
        A.CKA_END_DATE: b"",
        # CKA_VERIFY: verification is done by the module (locally), so a created public key
        # verifies unless the template says otherwise.
        A.CKA_LOCAL: A.FALSE,
        A.CKA_DERIVE: A.FALSE,
        A.CKA_VERIFY: A.TRUE,
        A.CKA_VERIFY_RECOVER: A.FALSE,
        A.CKA_ENCRYPT: A.FALSE,
        A.CKA_WRAP: A.FALSE,
        A.CKA_TRUSTED: A.FALSE,
        A.CKA_KEY_GEN_MECHANISM: A.ulong(A.CK_UNAVAILABLE_INFORMATION),
    },
}
HELD_CLASSES = frozenset(_DEFAULTS)


def _required(attrs: dict, kind: int, what: str) -> bytes:
    value = attrs.get(kind)
    if value is None:
        raise TemplateIncomplete(f"a session {what} needs attribute 0x{kind:x}")
    return value


def _certificate(attrs: dict) -> None:
    cert_type = attrs.get(A.CKA_CERTIFICATE_TYPE, A.ulong(A.CKC_X_509))
    if cert_type != A.ulong(A.CKC_X_509):
        raise AttributeValueInvalid("only X.509 certificates (CKC_X_509) are supported")
    attrs[A.CKA_CERTIFICATE_TYPE] = cert_type
    value = _required(attrs, A.CKA_VALUE, "certificate")
    try:
        fields = der.certificate_fields(value)
    except der.DERError as e:
        raise AttributeValueInvalid(f"CKA_VALUE is not a DER X.509 certificate: {e}") from None
    attrs.setdefault(A.CKA_SUBJECT, fields.subject)
    attrs.setdefault(A.CKA_ISSUER, fields.issuer)
    attrs.setdefault(A.CKA_SERIAL_NUMBER, fields.serial)
    attrs.setdefault(A.CKA_PUBLIC_KEY_INFO, fields.spki)


def _ec_point(value: bytes, key_type: str) -> bytes:
    """The raw public point of CKA_EC_POINT, given DER-wrapped (an OCTET STRING, as the
    standard says) or raw (as some applications send it; OpenSC accepts both)."""
    raw_len = 32 if key_type == "Curve25519" else 1 + 2 * der.field_len(key_type)
    if len(value) == raw_len and (key_type == "Curve25519" or value[0] == 4):
        return value
    try:
        tag, start, end = der.read_tlv(value)
    except der.DERError:
        tag, start, end = 0, 0, 0
    if tag == 0x04 and end == len(value) and end - start == raw_len:
        return value[start:end]
    raise AttributeValueInvalid(f"CKA_EC_POINT is no {key_type} public key")


def _verifies(key_type: str) -> frozenset:
    """The NetHSM mechanisms a verifying public key of ``key_type`` stands for: the ABI checks
    a verification against them as against an HSM key's."""
    return frozenset(M.usable(key_type, M.SIGN))


def _public_key(attrs: dict) -> tuple[str, int, frozenset]:
    """Completes a public key's attributes; returns its NetHSM key type, size in bits and the
    NetHSM mechanisms its local use stands for (the signature ones when it verifies)."""
    ckk = A.to_ulong(_required(attrs, A.CKA_KEY_TYPE, "public key"))
    verify = attrs.get(A.CKA_VERIFY) == A.TRUE
    if ckk == A.CKK_RSA:
        n = _required(attrs, A.CKA_MODULUS, "RSA public key").lstrip(b"\x00")
        e = _required(attrs, A.CKA_PUBLIC_EXPONENT, "RSA public key").lstrip(b"\x00")
        if not n or not e:
            raise AttributeValueInvalid("zero RSA modulus or exponent")
        bits = int.from_bytes(n, "big").bit_length()
        attrs.setdefault(A.CKA_MODULUS_BITS, A.ulong(bits))
        attrs.setdefault(A.CKA_PUBLIC_KEY_INFO, der.rsa_spki(n, e))
        return "RSA", bits, _verifies("RSA") if verify else frozenset()
    if ckk in (A.CKK_EC, A.CKK_EC_EDWARDS):
        params = _required(attrs, A.CKA_EC_PARAMS, "EC public key")
        point = _required(attrs, A.CKA_EC_POINT, "EC public key")
        key_type = der.key_type_for_ec_params(params)
        if key_type is None or (key_type == "Curve25519") != (ckk == A.CKK_EC_EDWARDS):
            raise AttributeValueInvalid("CKA_EC_PARAMS names no curve of this key type")
        attrs.setdefault(A.CKA_PUBLIC_KEY_INFO, der.ec_spki(key_type, _ec_point(point, key_type)))
        return key_type, der.field_bits(key_type), _verifies(key_type) if verify else frozenset()
    raise AttributeValueInvalid(f"session public keys of key type 0x{ckk:x} are not supported")


def held_object(key_id: str, cls: int, template: dict) -> P11Object:
    """A module-held session object of class ``cls`` from the application's template (already
    checked for unknown attribute types): the standard's defaults, then the template."""
    attrs = {A.CKA_CLASS: A.ulong(cls), **_COMMON, **_DEFAULTS[cls], **template}
    attrs[A.CKA_UNIQUE_ID] = key_id.encode()
    key_type, bits, mechanisms = "", 0, frozenset()
    if cls == A.CKO_CERTIFICATE:
        _certificate(attrs)
    elif cls == A.CKO_PUBLIC_KEY:
        key_type, bits, mechanisms = _public_key(attrs)
    return P11Object(cls, key_id, key_type, mechanisms, bits, attrs)


def as_session_object(obj: P11Object, cka_id: bytes | None) -> P11Object:
    """An HSM key's object as the session object it stands for."""
    attrs = {**obj.attrs, A.CKA_TOKEN: A.FALSE}
    if cka_id is not None:
        attrs[A.CKA_ID] = cka_id
    return P11Object(
        obj.cls, obj.key_id, obj.key_type, obj.mechanisms, obj.bits, attrs, obj.sensitive
    )


# --- the store --------------------------------------------------------------------------------


class _Owned:
    __slots__ = ("session", "slot", "held", "cka_id")

    def __init__(self, session: int, slot: int, held: P11Object | None, cka_id: bytes | None):
        self.session = session
        self.slot = slot
        self.held = held  # the object itself, or None for an HSM session key
        self.cka_id = cka_id  # the CKA_ID an HSM session key shows


class SessionObjects:
    """Session objects by key ID (synthetic for module-held ones, the HSM's for session keys).
    Called with the GIL held, which serialises every change."""

    def __init__(self) -> None:
        self._owned: dict[str, _Owned] = {}
        self._next = 0

    def new_held_id(self) -> str:
        self._next += 1
        return f"~{self._next}"

    def hold(self, session: int, slot: int, obj: P11Object) -> None:
        self._owned[obj.key_id] = _Owned(session, slot, obj, None)

    def add_hsm_key(self, session: int, slot: int, key_id: str, cka_id: bytes | None) -> None:
        self._owned[key_id] = _Owned(session, slot, None, cka_id)

    def owns(self, key_id: str) -> bool:
        return key_id in self._owned

    def is_hsm_key(self, key_id: str) -> bool:
        return self._owned[key_id].held is None

    def cka_id(self, key_id: str) -> bytes | None:
        return self._owned[key_id].cka_id

    def set_cka_id(self, key_id: str, cka_id: bytes) -> None:
        self._owned[key_id].cka_id = cka_id

    def objects(self, slot: int, inventory) -> list[P11Object]:
        """Every session object of the slot; HSM session keys come from ``inventory``."""
        out = []
        for key_id, owned in list(self._owned.items()):
            if owned.slot != slot:
                continue
            if owned.held is not None:
                out.append(owned.held)
            else:
                out.extend(
                    as_session_object(o, owned.cka_id)
                    for o in inventory.get(key_id, with_cert=False)
                )
        return out

    def forget(self, key_id: str) -> None:
        self._owned.pop(key_id, None)

    def owned_by(self, session: int | None, slot: int) -> list[tuple[str, int, bool]]:
        """(key ID, slot, is an HSM key) of every object of ``session`` (None: of every
        session) in ``slot`` (-1: in every slot)."""
        return [
            (key_id, o.slot, o.held is None)
            for key_id, o in self._owned.items()
            if (session is None or o.session == session) and slot in (-1, o.slot)
        ]
