"""/keys endpoints: inventory, generation, import, certificates and key operations."""

from __future__ import annotations

from aiohttp import web

from p11fast.hsm import csr
from p11fast.hsm.core import Caller, Hsm, usable_by
from p11fast.hsm.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    UnsupportedMediaType,
)
from p11fast.hsm.keys import (
    ALL_MECHANISMS,
    DECRYPT_MODES,
    ENCRYPT_MODES,
    KEY_TYPES,
    SIGN_MODES,
    KeyMaterial,
    b64encode,
)
from p11fast.hsm.routing import (
    ADMIN,
    ADMIN_OR_OPERATOR,
    MAX_JSON_BODY,
    OPERATIONAL,
    OPERATOR,
    PEM,
    Rule,
    created,
    endpoint,
    in_thread,
    json_body,
    json_response,
    no_content,
    pem_response,
    read_body,
    read_form,
)
from p11fast.hsm.store import KeyRecord
from p11fast.hsm.validate import (
    Body,
    adding_tag,
    check_id,
    check_label,
    check_tags,
    parse_json,
    removing_tag,
)

CERT_TYPES = (
    "application/x-pem-file",
    "application/x-x509-ca-cert",
    "application/pgp-keys",
    "application/octet-stream",
)
MAX_CERT = 1 << 20
# A KeyID never ends in '*': such a path is the prefix listing. One path string for all
# methods of the key, so they form one resource.
KEY_PATH = "/keys/{KeyID:[^/]*[^/*]}"
PRIVATE_FIELDS = ("primeP", "primeQ", "publicExponent", "data")
READ = Rule(OPERATIONAL, ADMIN_OR_OPERATOR)
READ_PEM = Rule(OPERATIONAL, ADMIN_OR_OPERATOR, provides=(PEM,))
READ_CERT = Rule(OPERATIONAL, ADMIN_OR_OPERATOR, provides=CERT_TYPES)
WRITE = Rule(OPERATIONAL, ADMIN)
USE = Rule(OPERATIONAL, OPERATOR)


def key_json(record: KeyRecord) -> dict:
    data = {
        "mechanisms": record.mechanisms,
        "type": record.type,
        "restrictions": {"tags": record.tags} if record.tags else {},
        "operations": record.operations,
        "label": record.label,
    }
    if record.public is not None:
        data["public"] = record.public
    return data


def _key_id(request: web.Request) -> str:
    return check_id(request.match_info["KeyID"], "key ID")


class KeysApi:
    def __init__(self, hsm: Hsm) -> None:
        self.hsm = hsm

    # --- inventory ----------------------------------------------------------------------
    @endpoint("GET", "/keys", READ)
    async def list_keys(self, request: web.Request, caller: Caller) -> web.Response:
        return json_response(self._list(request, caller, ""))

    @endpoint("GET", "/keys/{KeyPrefix:[^/]*}*", READ)
    async def list_prefix(self, request: web.Request, caller: Caller) -> web.Response:
        prefix = request.match_info["KeyPrefix"]
        if prefix:
            check_id(prefix, "key prefix")
        return json_response(self._list(request, caller, prefix))

    def _list(self, request: web.Request, caller: Caller, prefix: str) -> list[dict]:
        only_usable = "filter" in request.query
        label = request.query.get("label")
        ids = [
            record.key_id
            for (namespace, key_id), record in self.hsm.keys.items()
            if namespace == caller.namespace
            and key_id.startswith(prefix)
            and (label is None or record.label == label)
            and (not only_usable or usable_by(record, caller))
        ]
        return [{"id": key_id} for key_id in sorted(ids)]

    @endpoint("GET", KEY_PATH, READ)
    async def get_key(self, request: web.Request, caller: Caller) -> web.Response:
        return json_response(key_json(self.hsm.key(caller.namespace, _key_id(request))))

    @endpoint("GET", "/keys/{KeyID}/public.pem", READ_PEM)
    async def public_pem(self, request: web.Request, caller: Caller) -> web.Response:
        record = self.hsm.key(caller.namespace, _key_id(request))
        return pem_response(self.hsm.material(record).public_pem())

    @endpoint("POST", "/keys/{KeyID}/csr.pem", READ_PEM)
    async def csr(self, request: web.Request, caller: Caller) -> web.Response:
        record = self.hsm.key(caller.namespace, _key_id(request))
        dn = csr.read_dn(await json_body(request))
        material = self.hsm.material(record)
        return pem_response(await in_thread(material.csr_pem, dn))

    # --- creation -----------------------------------------------------------------------
    @endpoint("POST", "/keys/generate", WRITE)
    async def generate(self, request: web.Request, caller: Caller) -> web.Response:
        body = await json_body(request)
        mechanisms = _mechanisms(body)
        key_type = body.enum("type", KEY_TYPES)
        length = body.integer("length", False)
        key_id = body.string("id", False)
        tags = _restriction_tags(body)
        label = check_label(body.string("label", False) or "")
        body.done()
        if key_id:
            check_id(key_id, "key ID")
            self._check_free(caller.namespace, key_id)
        material = await in_thread(KeyMaterial.generate, key_type, length)
        material.check_for_mechanisms(mechanisms)
        key_id = key_id or self.hsm.unused_key_id(caller.namespace)
        self.hsm.add_key(caller.namespace, key_id, material, mechanisms, tags, label)
        return created("keys", key_id)

    @endpoint("POST", "/keys", WRITE)
    async def import_new(self, request: web.Request, caller: Caller) -> web.Response:
        key_id = self.hsm.unused_key_id(caller.namespace)
        await self._import(request, caller, key_id)
        return created("keys", key_id)

    @endpoint("PUT", KEY_PATH, WRITE)
    async def import_at(self, request: web.Request, caller: Caller) -> web.Response:
        key_id = _key_id(request)
        self._check_free(caller.namespace, key_id)
        await self._import(request, caller, key_id)
        return no_content()

    async def _import(self, request: web.Request, caller: Caller, key_id: str) -> None:
        if request.content_type == "multipart/form-data":
            material, args = await _read_pem_import(request)
        else:
            args = await json_body(request)
            key_type = args.enum("type", KEY_TYPES)
            private = _private_fields(args)
            material = await in_thread(KeyMaterial.from_json, key_type, private)
        mechanisms = _mechanisms(args)
        tags = _restriction_tags(args)
        label = check_label(args.string("label", False) or "")
        args.done()
        material.check_for_mechanisms(mechanisms, imported=True)
        self.hsm.add_key(caller.namespace, key_id, material, mechanisms, tags, label)

    def _check_free(self, namespace: str, key_id: str) -> None:
        if (namespace, key_id) in self.hsm.keys:
            raise Conflict(f"key {key_id} already exists")

    # --- changes ------------------------------------------------------------------------
    @endpoint("DELETE", KEY_PATH, WRITE)
    async def delete(self, request: web.Request, caller: Caller) -> web.Response:
        self.hsm.delete_key(caller.namespace, _key_id(request))
        return no_content()

    @endpoint("POST", "/keys/{KeyID}/move", WRITE)
    async def move(self, request: web.Request, caller: Caller) -> web.Response:
        key_id = _key_id(request)
        body = await json_body(request)
        new_id = check_id(body.string("newId"), "newId")
        body.done()
        self.hsm.move_key(caller.namespace, key_id, new_id)
        return json_response({"id": new_id})

    @endpoint("PUT", "/keys/{KeyID}/label", WRITE)
    async def set_label(self, request: web.Request, caller: Caller) -> web.Response:
        key_id = _key_id(request)
        self.hsm.key(caller.namespace, key_id)
        body = await json_body(request)
        label = check_label(body.string("label"))
        body.done()
        self.hsm.update_key(caller.namespace, key_id, lambda current: {"label": label})
        return no_content()

    @endpoint("DELETE", "/keys/{KeyID}/label", WRITE)
    async def delete_label(self, request: web.Request, caller: Caller) -> web.Response:
        self.hsm.update_key(caller.namespace, _key_id(request), lambda current: {"label": ""})
        return no_content()

    @endpoint("PUT", "/keys/{KeyID}/restrictions/tags/{Tag}", WRITE)
    async def add_tag(self, request: web.Request, caller: Caller) -> web.Response:
        change = adding_tag(request.match_info["Tag"])
        self.hsm.update_key(caller.namespace, _key_id(request), change)
        return no_content()

    @endpoint("DELETE", "/keys/{KeyID}/restrictions/tags/{Tag}", WRITE)
    async def delete_tag(self, request: web.Request, caller: Caller) -> web.Response:
        change = removing_tag(request.match_info["Tag"])
        self.hsm.update_key(caller.namespace, _key_id(request), change)
        return no_content()

    # --- certificates -------------------------------------------------------------------
    @endpoint("GET", "/keys/{KeyID}/cert", READ_CERT)
    async def get_cert(self, request: web.Request, caller: Caller) -> web.Response:
        record = self.hsm.key(caller.namespace, _key_id(request))
        if record.cert is None:
            raise NotFound("no certificate stored for this key")
        return web.Response(body=record.cert, headers={"Content-Type": record.cert_type})

    @endpoint("PUT", "/keys/{KeyID}/cert", WRITE)
    async def put_cert(self, request: web.Request, caller: Caller) -> web.Response:
        # keyfender checks the content type first (webmachine's known_content_type; no header
        # is 415), then that the key exists; it stores the bytes as they come, even none.
        if "Content-Type" not in request.headers or request.content_type not in CERT_TYPES:
            raise UnsupportedMediaType(f"content type must be one of {', '.join(CERT_TYPES)}")
        key_id = _key_id(request)
        _check_no_cert(self.hsm.key(caller.namespace, key_id))
        data = await read_body(request, MAX_CERT)

        def attach(current: KeyRecord) -> dict:
            _check_no_cert(current)  # checked again: another upload may have won meanwhile
            return {"cert": data, "cert_type": request.content_type}

        self.hsm.update_key(caller.namespace, key_id, attach)
        return no_content(201)

    @endpoint("DELETE", "/keys/{KeyID}/cert", WRITE)
    async def delete_cert(self, request: web.Request, caller: Caller) -> web.Response:
        def detach(current: KeyRecord) -> dict:
            if current.cert is None:
                raise NotFound("no certificate stored for this key")
            return {"cert": None, "cert_type": None}

        self.hsm.update_key(caller.namespace, _key_id(request), detach)
        return no_content()

    # --- operations ---------------------------------------------------------------------
    @endpoint("POST", "/keys/{KeyID}/sign", USE)
    async def sign(self, request: web.Request, caller: Caller) -> web.Response:
        key_id = _key_id(request)
        body = await json_body(request)
        mode = body.enum("mode", SIGN_MODES)
        message = body.base64("message")
        body.done()
        record, material = self._use(caller, key_id, SIGN_MODES[mode])
        if material.type == "RSA":
            signature = await in_thread(material.sign, mode, message)
        else:
            # EC and EdDSA signatures cost tens of microseconds: a thread hop costs more.
            signature = material.sign(mode, message)
        self.hsm.count_operation(record)
        return json_response({"signature": b64encode(signature)})

    @endpoint("POST", "/keys/{KeyID}/decrypt", USE)
    async def decrypt(self, request: web.Request, caller: Caller) -> web.Response:
        key_id = _key_id(request)
        body = await json_body(request)
        mode = body.enum("mode", DECRYPT_MODES)
        data = body.base64("encrypted")
        iv = body.base64("iv", False)
        body.done()
        record, material = self._use(caller, key_id, DECRYPT_MODES[mode])
        if material.type == "RSA":
            plain = await in_thread(material.decrypt, mode, data, iv)
        else:
            plain = material.decrypt(mode, data, iv)
        self.hsm.count_operation(record)
        return json_response({"decrypted": b64encode(plain)})

    @endpoint("POST", "/keys/{KeyID}/encrypt", USE)
    async def encrypt(self, request: web.Request, caller: Caller) -> web.Response:
        key_id = _key_id(request)
        body = await json_body(request)
        mode = body.enum("mode", ENCRYPT_MODES)
        data = body.base64("message")
        iv = body.base64("iv", False)
        body.done()
        record, material = self._use(caller, key_id, ENCRYPT_MODES[mode])
        encrypted, iv = material.encrypt(mode, data, iv)
        self.hsm.count_operation(record)
        return json_response({"encrypted": b64encode(encrypted), "iv": b64encode(iv)})

    def _use(self, caller: Caller, key_id: str, mechanism: str) -> tuple[KeyRecord, KeyMaterial]:
        record = self.hsm.key(caller.namespace, key_id)
        if not usable_by(record, caller):
            raise Forbidden("the key's tag restrictions do not allow this user")
        if mechanism not in record.mechanisms:
            raise BadRequest(f"the key does not allow mechanism {mechanism}")
        return record, self.hsm.material(record)


def _check_no_cert(record: KeyRecord) -> None:
    if record.cert is not None:
        raise Conflict("a certificate is already stored for this key")


def _mechanisms(body: Body) -> list[str]:
    mechanisms = body.strings("mechanisms")
    for mechanism in mechanisms:
        if mechanism not in ALL_MECHANISMS:
            raise BadRequest(f"unknown mechanism {mechanism[:64]!r}")
    return mechanisms


def _private_fields(body: Body) -> dict:
    """The `private` object of a JSON import: keyfender decodes it strictly (every field a
    string, no others) before looking at the key type (keyfender `src/keyfender/json.ml`)."""
    private = body.obj("private")
    fields = {name: private.string(name, False) for name in PRIVATE_FIELDS}
    private.done()
    return {name: value for name, value in fields.items() if value is not None}


def _restriction_tags(body: Body) -> list[str]:
    restrictions = body.obj("restrictions", False)
    if restrictions is None:
        return []
    tags = restrictions.strings("tags", False) or []
    restrictions.done()
    return check_tags(tags)


async def _read_pem_import(request: web.Request) -> tuple[KeyMaterial, Body]:
    """multipart/form-data with parts `arguments` (JSON) and `key_file` (PEM)."""
    parts = await read_form(request, ("arguments", "key_file"), MAX_JSON_BODY)
    arguments = Body(parse_json(parts["arguments"]), "arguments")
    return await in_thread(KeyMaterial.from_pem, parts["key_file"]), arguments
