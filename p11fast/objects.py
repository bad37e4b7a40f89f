"""The PKCS#11 object model: HSM keys as PKCS#11 objects, and the key inventory with its cache.

Each NetHSM key becomes (PKCS#11 v3.0 semantics):

* RSA / EC / Curve25519 keys: a ``CKO_PRIVATE_KEY`` and a ``CKO_PUBLIC_KEY``;
* ``Generic`` keys: a ``CKO_SECRET_KEY`` (``CKK_AES`` when the key holds AES mechanisms and
  is not known to be of another length, else ``CKK_GENERIC_SECRET``);
* plus a ``CKO_CERTIFICATE`` when a certificate is stored with the key.

``CKA_ID`` follows nethsm-pkcs11's mapping (:mod:`p11fast.keyid`); ``CKA_LABEL`` is the key's
NetHSM 5 ``label`` when present and non-empty, else the key ID (as nethsm-pkcs11 does).

Decisions worth knowing (details at the definitions):

* ``CKA_VALUE_LEN`` of secret keys: the NetHSM JSON does not carry the length, so it is
  ``CK_UNAVAILABLE_INFORMATION`` (all ones, the standard's "cannot be given" value) unless the
  ABI told the inventory with :meth:`Inventory.set_value_len` (after ``C_GenerateKey`` /
  ``C_CreateObject``). Templates pinning ``CKA_VALUE_LEN`` only match keys whose length is known.
* ``CKA_SUBJECT`` of key objects is the stored certificate's subject once the certificate has
  been fetched (empty before and without one). Certificates are fetched lazily: a search whose
  template pins ``CKA_CLASS`` to a key class (and does not ask for ``CKA_SUBJECT``) costs no
  certificate request.
* What a key can do (``CKA_ALLOWED_MECHANISMS``, ``CKA_SIGN`` ...) comes from its NetHSM
  mechanisms through :mod:`p11fast.mechanisms`; mechanisms PKCS#11 cannot express
  (``RSA_Signature_PSS_MD5``, ``RSA_Decryption_OAEP_MD5``, ``BIP340_Signature``) give nothing.

Import cost matters (this module is on the way to the first signature): no ``json`` (the
``_json`` C scanner is used directly), no ``re``, ``logging``, ``threading``, ``dataclasses`` or
``cryptography``.
"""

import _thread
from binascii import a2b_base64 as _a2b_base64
from time import monotonic as _monotonic

from p11fast import attrs as A
from p11fast import der
from p11fast import mechanisms as M
from p11fast._codec import JSON_MAX_DEPTH, json_nesting_ok
from p11fast.keyid import cka_id_to_key_id, is_valid_key_id, key_id_to_cka_id

__all__ = ["KeyDataError", "P11Object", "Inventory", "build_objects"]

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


def _http_error(status: int, path: str, instance: str, why: str = ""):
    """The typed P11Error for an unusable answer to GET ``path``: non-2xx statuses go through
    the one HTTP -> CKR mapping (p11fast.errors.from_http), a 2xx answer with an unusable body
    is CKR_DEVICE_ERROR. Imported lazily: only failures pay for it."""
    from p11fast import errors

    context = errors.TOKEN if path == "/keys" or path.startswith("/keys?") else errors.OBJECT
    message = f"GET {path}: {why}" if why else f"GET {path}"
    if 200 <= status < 300:
        return errors.DeviceError(f"{instance}: HTTP {status} during {context}: {message}")
    return errors.from_http(status, context, message, instance)


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


KeyObject = P11Object  # the name docs/architecture.md uses


# --- building objects from NetHSM key JSON ----------------------------------------------------


def _b64(value, what: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise KeyDataError(f"missing {what}")
    try:
        return _a2b_base64(value)
    except ValueError as e:
        raise KeyDataError(f"bad base64 in {what}: {e}") from None


def _check_value(cert: bytes) -> bytes:
    """CKA_CHECK_VALUE of a certificate: the first 3 bytes of its SHA-1 (imported only when a
    certificate exists)."""
    try:
        from _sha1 import sha1
    except ImportError:  # pragma: no cover - CPython without the builtin module
        from hashlib import sha1
    return sha1(cert).digest()[:3]


def build_objects(key_id: str, data: dict, cert: bytes | None = None,
                  value_len: int | None = None) -> list[P11Object]:
    """The PKCS#11 objects of one NetHSM key.

    ``data`` is the parsed ``GET /keys/{id}`` JSON (PublicKey schema), ``cert`` the stored
    certificate as DER (None: none or not fetched), ``value_len`` the secret key length in bytes
    when known. Raises KeyDataError when the JSON lacks what the key type needs; a certificate
    that does not parse yields no certificate object.
    """
    key_type = data.get("type")
    mechs = data.get("mechanisms") or ()
    if not isinstance(mechs, (list, tuple)):
        raise KeyDataError("mechanisms is not a list")
    mechanisms = frozenset(m for m in mechs if isinstance(m, str))
    public = data.get("public")
    if public is None:
        public = data.get("key")  # pre-2.0 NetHSM API name of the field
    if public is not None and not isinstance(public, dict):
        raise KeyDataError("public is not an object")
    label = data.get("label")
    label_b = label.encode("utf-8") if isinstance(label, str) and label else key_id.encode()
    cka_id = key_id_to_cka_id(key_id)

    allowed = M.allowed_mechanisms(mechanisms)
    can_sign = M.serves(mechanisms, M.SIGN)
    can_decrypt = M.serves(mechanisms, M.DECRYPT)
    can_encrypt = M.serves(mechanisms, M.ENCRYPT)

    fields = None
    if cert is not None:
        try:
            fields = der.certificate_fields(cert)
        except der.DERError:
            fields = None
    subject = fields.subject if fields is not None else _EMPTY

    def storage(cls: int, private: bool, modifiable: bool, kind: str) -> dict:
        return {
            A.CKA_CLASS: A.ulong(cls),
            A.CKA_TOKEN: _T,
            A.CKA_PRIVATE: A.bbool(private),
            A.CKA_MODIFIABLE: A.bbool(modifiable),
            A.CKA_COPYABLE: _F,
            A.CKA_DESTROYABLE: _T,
            A.CKA_LABEL: label_b,
            A.CKA_UNIQUE_ID: f"{key_id}:{kind}".encode(),  # ':' never occurs in key IDs
        }

    def key_common(cls: int, ckk: int, kind: str) -> dict:
        d = storage(cls, cls != A.CKO_PUBLIC_KEY, True, kind)
        if cls == A.CKO_PUBLIC_KEY:
            # goes with its private key: C_DestroyObject says CKR_ACTION_PROHIBITED
            d[A.CKA_DESTROYABLE] = _F
        d[A.CKA_KEY_TYPE] = A.ulong(ckk)
        d[A.CKA_ID] = cka_id
        d[A.CKA_START_DATE] = _EMPTY
        d[A.CKA_END_DATE] = _EMPTY
        d[A.CKA_DERIVE] = _F
        d[A.CKA_LOCAL] = _F  # the HSM does not say whether it generated the key
        d[A.CKA_KEY_GEN_MECHANISM] = A.ulong(A.CK_UNAVAILABLE_INFORMATION)
        d[A.CKA_ALLOWED_MECHANISMS] = A.ulong_array(allowed)
        return d

    def private_common(d: dict) -> dict:
        d[A.CKA_SUBJECT] = subject
        d[A.CKA_SENSITIVE] = _T
        d[A.CKA_EXTRACTABLE] = _F
        d[A.CKA_ALWAYS_SENSITIVE] = _T
        d[A.CKA_NEVER_EXTRACTABLE] = _T
        d[A.CKA_SIGN] = A.bbool(can_sign)
        d[A.CKA_SIGN_RECOVER] = _F
        d[A.CKA_ALWAYS_AUTHENTICATE] = _F
        d[A.CKA_WRAP_WITH_TRUSTED] = _F
        return d

    def public_common(d: dict) -> dict:
        d[A.CKA_SUBJECT] = subject
        d[A.CKA_VERIFY] = A.bbool(can_sign)
        d[A.CKA_VERIFY_RECOVER] = _F
        d[A.CKA_TRUSTED] = _F
        return d

    objs: list[P11Object] = []
    if key_type == "RSA":
        if public is None:
            raise KeyDataError("RSA key without public data")
        n = _b64(public.get("modulus"), "modulus").lstrip(b"\x00")
        e = _b64(public.get("publicExponent"), "publicExponent").lstrip(b"\x00")
        if not n or not e:
            raise KeyDataError("zero RSA modulus or exponent")
        bits = int.from_bytes(n, "big").bit_length()
        spki = der.rsa_spki(n, e)
        rsa = {
            A.CKA_MODULUS: n,
            A.CKA_PUBLIC_EXPONENT: e,
            A.CKA_MODULUS_BITS: A.ulong(bits),
            A.CKA_PUBLIC_KEY_INFO: spki,
        }
        priv = private_common(key_common(A.CKO_PRIVATE_KEY, A.CKK_RSA, "private"))
        priv[A.CKA_DECRYPT] = A.bbool(can_decrypt)
        priv[A.CKA_UNWRAP] = A.bbool(can_decrypt)
        priv.update(rsa)
        pub = public_common(key_common(A.CKO_PUBLIC_KEY, A.CKK_RSA, "public"))
        pub[A.CKA_ENCRYPT] = A.bbool(can_decrypt)  # encryption with the public key, locally
        pub[A.CKA_WRAP] = A.bbool(can_decrypt)
        pub.update(rsa)
        objs.append(P11Object(A.CKO_PRIVATE_KEY, key_id, key_type, mechanisms, bits, priv,
                              _RSA_SENSITIVE))
        objs.append(P11Object(A.CKO_PUBLIC_KEY, key_id, key_type, mechanisms, bits, pub))
    elif key_type in _EC_TYPES:
        if public is None:
            raise KeyDataError(f"{key_type} key without public data")
        point = _b64(public.get("data"), "data")
        flen = der.field_len(key_type)
        if key_type == "Curve25519":
            ckk = A.CKK_EC_EDWARDS
            if len(point) != 32:
                raise KeyDataError(f"Ed25519 public key of {len(point)} bytes")
        else:
            ckk = A.CKK_EC
            if len(point) != 1 + 2 * flen or point[0] != 4:
                raise KeyDataError(f"{key_type} public key is not an uncompressed point")
        bits = der.field_bits(key_type)
        ec = {
            A.CKA_EC_PARAMS: der.ec_params_for_key_type(key_type),
            A.CKA_EC_POINT: der.octet_string(point),
            A.CKA_PUBLIC_KEY_INFO: der.ec_spki(key_type, point),
        }
        priv = private_common(key_common(A.CKO_PRIVATE_KEY, ckk, "private"))
        priv[A.CKA_DECRYPT] = _F
        priv[A.CKA_UNWRAP] = _F
        priv.update(ec)
        pub = public_common(key_common(A.CKO_PUBLIC_KEY, ckk, "public"))
        pub[A.CKA_ENCRYPT] = _F
        pub[A.CKA_WRAP] = _F
        pub.update(ec)
        objs.append(P11Object(A.CKO_PRIVATE_KEY, key_id, key_type, mechanisms, bits, priv,
                              _VALUE_SENSITIVE))
        objs.append(P11Object(A.CKO_PUBLIC_KEY, key_id, key_type, mechanisms, bits, pub))
    elif key_type == "Generic":
        # A Generic key is an AES key when it holds AES mechanisms, unless its length is known
        # not to be one: a NetHSM generates Generic keys of 16 to 1024 bytes and requires a
        # mechanism (AES, the only one there is) even for those.
        is_aes = (any(m.startswith("AES_") for m in mechanisms)
                  and value_len in (None, *M.AES_LENGTHS))
        sec = key_common(A.CKO_SECRET_KEY, A.CKK_AES if is_aes else A.CKK_GENERIC_SECRET,
                         "secret")
        can_encrypt, can_decrypt = can_encrypt and is_aes, can_decrypt and is_aes
        mac = can_encrypt  # CMAC is built on the HSM's AES-CBC encryption
        sec.update({
            A.CKA_SENSITIVE: _T,
            A.CKA_EXTRACTABLE: _F,
            A.CKA_ALWAYS_SENSITIVE: _T,
            A.CKA_NEVER_EXTRACTABLE: _T,
            A.CKA_ENCRYPT: A.bbool(can_encrypt),
            A.CKA_DECRYPT: A.bbool(can_decrypt),
            A.CKA_SIGN: A.bbool(mac),
            A.CKA_VERIFY: A.bbool(mac),
            A.CKA_WRAP: _F,
            A.CKA_UNWRAP: _F,
            A.CKA_WRAP_WITH_TRUSTED: _F,
            A.CKA_TRUSTED: _F,
            A.CKA_VALUE_LEN: A.ulong(
                value_len if value_len is not None else A.CK_UNAVAILABLE_INFORMATION),
        })
        bits = value_len * 8 if value_len is not None else 0
        objs.append(P11Object(A.CKO_SECRET_KEY, key_id, key_type, mechanisms, bits, sec,
                              _VALUE_SENSITIVE))
    else:
        raise KeyDataError(f"unsupported key type {key_type!r}")

    if fields is not None:
        c = storage(A.CKO_CERTIFICATE, False, False, "certificate")
        c.update({
            A.CKA_ID: cka_id,
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
        objs.append(P11Object(A.CKO_CERTIFICATE, key_id, key_type, frozenset(), 0, c))
    return objs


# --- JSON without importing json (json pulls re: ~6 ms of a 16 ms budget) ---------------------

try:
    from _json import make_scanner as _make_scanner
except ImportError:  # pragma: no cover - CPython always has _json
    _make_scanner = None


def _bad_constant(name):
    raise ValueError(f"invalid JSON constant {name}")


class _ScanContext:
    __slots__ = ()
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_bad_constant)
    memo = None


def parse_json(body: bytes):
    """Parse a JSON document (raises ValueError)."""
    body = bytes(body)
    if not json_nesting_ok(body):
        raise ValueError(f"arrays or objects nested deeper than {JSON_MAX_DEPTH} levels")
    text = body.decode("utf-8").strip(" \t\r\n")
    if _make_scanner is None:  # pragma: no cover
        import json

        return json.loads(text)
    try:
        value, end = _make_scanner(_ScanContext())(text, 0)
    except StopIteration:
        raise ValueError("not a JSON document") from None
    except ValueError:
        raise
    except Exception as e:  # pragma: no cover - defensive: the scanner raises ValueError
        raise ValueError(str(e)) from None
    if end != len(text):
        raise ValueError("extra data after the JSON document")
    return value


# --- the inventory ----------------------------------------------------------------------------

_UNKNOWN = object()  # certificate not fetched yet
_KEY_CLASSES = (A.CKO_PRIVATE_KEY, A.CKO_PUBLIC_KEY, A.CKO_SECRET_KEY)
_OUR_CLASSES = (*_KEY_CLASSES, A.CKO_CERTIFICATE)
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _pct(s: str) -> str:
    return "".join(chr(c) if c in _UNRESERVED else f"%{c:02X}" for c in s.encode("utf-8"))


class _Entry:
    __slots__ = ("key_id", "data", "fetched", "cert", "objs")

    def __init__(self, key_id: str, data: dict, fetched: float):
        self.key_id = key_id
        self.data = data
        self.fetched = fetched
        self.cert = _UNKNOWN  # DER bytes, None (no certificate) or _UNKNOWN
        self.objs = None  # built lazily


class Inventory:
    """The keys of one slot as PKCS#11 objects, cached per key ID.

    ``request(method, path, body, admin) -> (status, body)`` is the slot's transport (path
    relative to ``/api/v1``); whatever it raises propagates. Unexpected HTTP statuses raise the
    :mod:`p11fast.errors` exception ``from_http`` gives (401 on the listing ->
    UserNotLoggedIn, 5xx -> DeviceError, ...); a 200 with an unusable body -> DeviceError.

    Cache: one entry per key ID holding the key's JSON and (once fetched) its certificate;
    entries older than ``max_age`` seconds are fetched again when used. :meth:`refresh` costs
    one listing plus one request per new or expired key (two with certificates) and drops
    keys that left the listing. Thread-safe: network fetches and cache updates are serialised
    by one lock (concurrent callers share one refresh instead of repeating it);
    :meth:`objects` reads without it.
    """

    def __init__(self, request, slot_label: str = "", *, max_age: float = 60.0, clock=None):
        self._request = request
        self.slot_label = slot_label
        self.max_age = max_age
        self._clock = clock or _monotonic
        self._entries: dict[str, _Entry] = {}
        self._value_len: dict[str, int] = {}
        self._lock = _thread.RLock()
        # Does GET /keys?label= filter? None: unknown; False: the HSM ignores/refuses it
        # (before NetHSM 5 keys have no label, and CKA_LABEL is the key ID).
        self.label_query = None
        self.errors: dict[str, str] = {}  # key ID -> why it yields no objects

    # -- network ------------------------------------------------------------------------------

    def _error(self, status: int, path: str, why: str = ""):
        return _http_error(status, path, self.slot_label or "HSM", why)

    def _get(self, path: str) -> tuple[int, bytes]:
        return self._request("GET", path, None, False)

    def _json(self, status: int, path: str, body: bytes):
        try:
            return parse_json(body)
        except ValueError as e:
            raise self._error(status, path, f"invalid JSON: {e}") from None

    def _list(self, path: str) -> list[str]:
        status, body = self._get(path)
        if status != 200:
            raise self._error(status, path)
        items = self._json(status, path, body)
        if not isinstance(items, list):
            raise self._error(status, path, "key list is not an array")
        ids = []
        for it in items:
            kid = it.get("id") if isinstance(it, dict) else None
            if not isinstance(kid, str) or not is_valid_key_id(kid):
                raise self._error(status, path, f"bad key list item {it!r}")
            ids.append(kid)
        return ids

    def _drop(self, key_id: str) -> None:
        self._entries.pop(key_id, None)
        self._value_len.pop(key_id, None)
        self.errors.pop(key_id, None)

    def _fetch_key(self, key_id: str) -> _Entry | None:
        path = "/keys/" + key_id
        status, body = self._get(path)
        if status == 404:
            self._drop(key_id)
            return None
        if status != 200:
            raise self._error(status, path)
        data = self._json(status, path, body)
        if not isinstance(data, dict):
            raise self._error(status, path, "key is not a JSON object")
        entry = _Entry(key_id, data, self._clock())
        self._entries[key_id] = entry
        return entry

    def _fetch_cert(self, entry: _Entry) -> None:
        path = "/keys/" + entry.key_id + "/cert"
        status, body = self._get(path)
        if status == 404:
            entry.cert = None
        elif status == 200:
            try:
                entry.cert = der.pem_to_der(body)
            except der.DERError as e:
                entry.cert = None
                self.errors[entry.key_id] = f"certificate not usable: {e}"
        else:
            raise self._error(status, path)
        entry.objs = None

    def _ensure(self, key_id: str, with_cert: bool) -> _Entry | None:
        """The fresh cache entry of a key (fetched when missing or expired), None if the HSM
        has no such key. Caller holds the lock."""
        entry = self._entries.get(key_id)
        if entry is None or self._clock() - entry.fetched > self.max_age:
            entry = self._fetch_key(key_id)
            if entry is None:
                return None
        if with_cert and entry.cert is _UNKNOWN:
            self._fetch_cert(entry)
        return entry

    def _objects_of(self, entry: _Entry) -> list[P11Object]:
        objs = entry.objs
        if objs is None:
            cert = entry.cert if entry.cert is not _UNKNOWN else None
            try:
                objs = build_objects(entry.key_id, entry.data, cert,
                                     self._value_len.get(entry.key_id))
            except KeyDataError as e:
                self.errors[entry.key_id] = str(e)
                objs = []
            entry.objs = objs
        return objs

    # -- public API ---------------------------------------------------------------------------

    def refresh(self, with_certs: bool = True) -> None:
        """GET /keys, drop keys no longer listed, fetch keys not cached (or expired) and, with
        ``with_certs``, the certificates not yet known."""
        with self._lock:
            ids = self._list("/keys")
            listed = set(ids)
            for kid in [k for k in self._entries if k not in listed]:
                self._drop(kid)
            for kid in [k for k in self._value_len if k not in listed]:
                del self._value_len[kid]
            for kid in ids:
                self._ensure(kid, with_certs)

    def objects(self) -> list[P11Object]:
        """All objects in the cache (call refresh first for fresh state). Certificates not
        fetched yet are missing."""
        out: list[P11Object] = []
        for entry in list(self._entries.values()):
            out.extend(self._objects_of(entry))
        return out

    def get(self, key_id: str, with_cert: bool = True) -> list[P11Object]:
        """The objects of one key, fetched on a cache miss or expiry (no such key -> [])."""
        if not is_valid_key_id(key_id):
            return []
        with self._lock:
            entry = self._ensure(key_id, with_cert)
            return self._objects_of(entry) if entry is not None else []

    def find(self, template) -> list[P11Object]:
        """The objects matching ``template`` ([(CKA_*, encoded value)]).

        A template pinning CKA_ID resolves to one key ID: one GET /keys/{id} (none when cached
        and fresh). A template pinning CKA_LABEL asks for the key whose ID is the label and for
        GET /keys?label= (NetHSM 5). Otherwise: refresh, then filter. The certificate of a key
        is fetched only when the template could match a certificate (CKA_CLASS absent or
        CKO_CERTIFICATE) or asks for CKA_SUBJECT.
        """
        pinned = {}
        for t, v in template:
            pinned.setdefault(t, bytes(v))
        cls_v = pinned.get(A.CKA_CLASS)
        cls = None
        if cls_v is not None:
            if len(cls_v) != A.ULONG_SIZE:
                return []
            cls = A.to_ulong(cls_v)
            if cls not in _OUR_CLASSES:
                return []
        need_cert = cls is None or cls == A.CKO_CERTIFICATE or A.CKA_SUBJECT in pinned

        with self._lock:
            if A.CKA_ID in pinned:
                try:
                    kid = cka_id_to_key_id(pinned[A.CKA_ID])
                except ValueError:
                    return []
                entry = self._ensure(kid, need_cert)
                candidates = self._objects_of(entry) if entry is not None else []
            elif A.CKA_LABEL in pinned:
                candidates = self._by_label(pinned[A.CKA_LABEL], need_cert)
            else:
                self.refresh(need_cert)
                candidates = self.objects()
        return [o for o in candidates if o.matches(template)]

    def _by_label(self, label: bytes, need_cert: bool) -> list[P11Object]:
        try:
            text = label.decode("utf-8")
        except UnicodeDecodeError:
            return []
        if not text:
            return []
        entries: dict[str, _Entry] = {}
        if is_valid_key_id(text):  # a key without label has its ID as CKA_LABEL
            entry = self._ensure(text, need_cert)
            if entry is not None:
                entries[text] = entry
        if self.label_query is not False:
            path = "/keys?label=" + _pct(text)
            status, body = self._get(path)
            if status != 200:
                self.label_query = False
            else:
                ids = []
                items = self._json(status, path, body)
                if isinstance(items, list):
                    for it in items:
                        kid = it.get("id") if isinstance(it, dict) else None
                        if isinstance(kid, str) and is_valid_key_id(kid):
                            ids.append(kid)
                filtered = True
                for kid in ids:
                    entry = self._ensure(kid, need_cert)
                    if entry is None:
                        continue
                    entries[kid] = entry
                    if entry.data.get("label") != text:
                        filtered = False
                if ids:
                    self.label_query = filtered
        out: list[P11Object] = []
        for entry in entries.values():
            out.extend(self._objects_of(entry))
        return out

    def invalidate(self, key_id: str | None = None) -> None:
        """Forget one key (or everything): the next use fetches it again. Also forgets a
        length given with set_value_len (call set_value_len after invalidating)."""
        with self._lock:
            if key_id is None:
                self._entries.clear()
                self._value_len.clear()
                self.errors.clear()
            else:
                self._drop(key_id)

    def set_value_len(self, key_id: str, nbytes: int) -> None:
        """Tell the inventory a secret key's length (known after C_GenerateKey or an import):
        CKA_VALUE_LEN and ``bits`` use it until the key leaves the HSM's listing."""
        with self._lock:
            self._value_len[key_id] = int(nbytes)
            entry = self._entries.get(key_id)
            if entry is not None:
                entry.objs = None
