"""The key inventory of one slot: the HSM's keys as PKCS#11 objects, cached per key ID.

Certificates are fetched lazily: a search whose template pins ``CKA_CLASS`` to a key class (and
does not ask for ``CKA_SUBJECT``) costs no certificate request. On the way to the first
signature, so as light to import as :mod:`p11fast.model.objects`.
"""

import _thread
from time import monotonic as _monotonic

from p11fast import attrs as A
from p11fast import der
from p11fast.keyid import cka_id_to_key_id, is_valid_key_id
from p11fast.lean import parse_json
from p11fast.model.objects import KeyDataError, P11Object, build_objects


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


_UNKNOWN = object()  # certificate not fetched yet
_KEY_CLASSES = (A.CKO_PRIVATE_KEY, A.CKO_PUBLIC_KEY, A.CKO_SECRET_KEY)
_OUR_CLASSES = (*_KEY_CLASSES, A.CKO_CERTIFICATE)
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def label_listing(items) -> list[str]:
    """The key IDs a GET /keys?label= answer (parsed) lists, as the search by label reads it."""
    return [it["id"] for it in (items if isinstance(items, list) else ())
            if isinstance(it, dict) and isinstance(it.get("id"), str)
            and is_valid_key_id(it["id"])]  # fmt: skip


def _pct(s: str) -> str:
    return "".join(chr(c) if c in _UNRESERVED else f"%{c:02X}" for c in s.encode("utf-8"))


class _Entry:
    __slots__ = ("key_id", "data", "raw", "fetched", "cert", "cert_answer", "objs")

    def __init__(self, key_id: str, data: dict, raw: bytes, fetched: float):
        self.key_id = key_id
        self.data = data
        self.raw = raw  # the HSM's answer, as the recorded inventory keeps it
        self.fetched = fetched
        self.cert = _UNKNOWN  # DER bytes, None (no certificate) or _UNKNOWN
        self.cert_answer = None  # (status, body) the certificate was known from
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
        # (label, status, body) of the latest search by label's GET /keys?label=, None when it
        # did not ask: what the recorded inventory replays (p11fast/abi/recorded.pxd).
        self._label_answer: tuple[str, int, bytes] | None = None
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
        entry = _Entry(key_id, self._key_data(path, body), bytes(body), self._clock())
        self._entries[key_id] = entry
        return entry

    def _key_data(self, path: str, body: bytes) -> dict:
        data = self._json(200, path, body)
        if not isinstance(data, dict):
            raise self._error(200, path, "key is not a JSON object")
        return data

    def _fetch_cert(self, entry: _Entry) -> None:
        path = "/keys/" + entry.key_id + "/cert"
        status, body = self._get(path)
        self._take_cert(entry, path, status, body)

    def _take_cert(self, entry: _Entry, path: str, status: int, body: bytes) -> None:
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
        entry.cert_answer = (status, bytes(body))
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
        self._label_answer = None
        entries: dict[str, _Entry] = {}
        if is_valid_key_id(text):  # a key without label has its ID as CKA_LABEL
            entry = self._ensure(text, need_cert)
            if entry is not None:
                entries[text] = entry
        if self.label_query is not False:
            self._ask_label(text, need_cert, entries)
        out: list[P11Object] = []
        for entry in entries.values():
            out.extend(self._objects_of(entry))
        return out

    def _ask_label(self, text: str, need_cert: bool, entries: dict) -> None:
        """GET /keys?label= into ``entries``; learns whether the HSM filters by label (an
        answer listing keys of other labels ignored the query)."""
        path = "/keys?label=" + _pct(text)
        status, body = self._get(path)
        self._label_answer = (text, status, bytes(body))
        if status != 200:
            self.label_query = False
            return
        ids = label_listing(self._json(status, path, body))
        filtered = True
        for kid in ids:
            entry = self._ensure(kid, need_cert)
            if entry is not None:
                entries[kid] = entry
                filtered = filtered and entry.data.get("label") == text
        if ids:
            self.label_query = filtered

    def label_answer(self, label: str) -> tuple[int, bytes] | None:
        """(status, body) of GET /keys?label= in the latest search, when it was for this label
        and asked (it does not once this inventory knows the HSM ignores the query)."""
        answer = self._label_answer
        return answer[1:] if answer is not None and answer[0] == label else None

    def answer(self, key_id: str) -> bytes | None:
        """The HSM's answer the cached key was built from; None when the key is not cached
        (after a search by its ID: the HSM has no such key)."""
        entry = self._entries.get(key_id)
        return entry.raw if entry is not None else None

    def cert_answer(self, key_id: str) -> tuple[int, bytes] | None:
        """(status, body) of the cached key's GET /keys/{id}/cert; None when its certificate
        is not known (not fetched, or the key not cached)."""
        entry = self._entries.get(key_id)
        return entry.cert_answer if entry is not None else None

    def adopt(self, key_id: str, body: bytes, fetched: float,
              cert: tuple[int, bytes] | None = None) -> list[P11Object]:
        """A key's answer fetched before this inventory existed (light mode's compiled search,
        at `fetched` on this inventory's clock), with its certificate's (status, body) when
        that search fetched it, cached as if this inventory had fetched them then; its
        objects."""
        path = "/keys/" + key_id
        data = self._key_data(path, body)
        with self._lock:
            entry = _Entry(key_id, data, bytes(body), fetched)
            if cert is not None:
                self._take_cert(entry, path + "/cert", *cert)
            self._entries[key_id] = entry
            return self._objects_of(entry)

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
