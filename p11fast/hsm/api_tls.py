"""/config/tls: the HTTPS key and certificate, its CSR, key generation and the cluster CA
(keyfender `src/keyfender/handler_config.ml` and `hsm.ml`, Config)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from p11fast.hsm import csr, tls
from p11fast.hsm.core import Caller, Hsm
from p11fast.hsm.errors import NotFound, PreconditionFailed, UnsupportedMediaType
from p11fast.hsm.routing import (
    ADMIN,
    OPERATIONAL,
    PEM,
    ROOT_ADMIN,
    Rule,
    endpoint,
    in_thread,
    json_body,
    no_content,
    pem_response,
    read_body,
)

ROOT_ADMIN_PEM = Rule(OPERATIONAL, ADMIN, root_only=True, provides=(PEM,))
CLUSTER_CA = "cluster_ca"  # meta entry: travels with the configuration, like on NetHSM


class TlsApi:
    def __init__(self, hsm: Hsm, reload_tls: Callable[[], None]) -> None:
        self.hsm = hsm
        self.reload_tls = reload_tls

    @endpoint("GET", "/config/tls/public.pem", ROOT_ADMIN_PEM)
    async def public_pem(self, request: web.Request, caller: Caller) -> web.Response:
        return pem_response(tls.public_key_pem(self.hsm.state_dir))

    @endpoint("GET", "/config/tls/cert.pem", ROOT_ADMIN_PEM)
    async def cert_pem(self, request: web.Request, caller: Caller) -> web.Response:
        return pem_response(tls.certificate_pem(self.hsm.state_dir))

    @endpoint("PUT", "/config/tls/cert.pem", ROOT_ADMIN)
    async def set_cert_pem(self, request: web.Request, caller: Caller) -> web.Response:
        pem = await _read_pem(request)
        cluster_ca = self.hsm.store.meta_get(CLUSTER_CA)
        await in_thread(tls.replace_certificate, self.hsm.state_dir, pem, cluster_ca)
        self.reload_tls()
        return _created(request)

    @endpoint("POST", "/config/tls/csr.pem", ROOT_ADMIN_PEM)
    async def csr_pem(self, request: web.Request, caller: Caller) -> web.Response:
        dn = csr.read_dn(await json_body(request))
        return pem_response(await in_thread(tls.csr_pem, self.hsm.state_dir, dn))

    @endpoint("POST", "/config/tls/generate", ROOT_ADMIN)
    async def generate(self, request: web.Request, caller: Caller) -> web.Response:
        body = await json_body(request)
        key_type = body.string("type")
        length = body.integer("length", False)
        body.done()
        if self.hsm.store.meta_get(CLUSTER_CA) is not None:
            raise PreconditionFailed("cannot generate a TLS key: a cluster CA is set")
        await in_thread(tls.generate, self.hsm.state_dir, key_type, length)
        self.reload_tls()
        return no_content()

    @endpoint("GET", "/config/tls/cluster-ca.pem", ROOT_ADMIN_PEM)
    async def cluster_ca(self, request: web.Request, caller: Caller) -> web.Response:
        pem = self.hsm.store.meta_get(CLUSTER_CA)
        if pem is None:
            raise NotFound("no cluster CA has been set")
        return pem_response(pem)

    @endpoint("PUT", "/config/tls/cluster-ca.pem", ROOT_ADMIN)
    async def set_cluster_ca(self, request: web.Request, caller: Caller) -> web.Response:
        pem = await _read_pem(request)
        checked = await in_thread(tls.check_cluster_ca, self.hsm.state_dir, pem)
        self.hsm.store.meta_set(CLUSTER_CA, checked)
        return _created(request)


async def _read_pem(request: web.Request) -> bytes:
    # keyfender accepts only this content type for these PUTs (webmachine answers 415)
    if request.content_type != PEM:
        raise UnsupportedMediaType(f"content type must be {PEM}")
    return await read_body(request)


def _created(request: web.Request) -> web.Response:
    # webmachine answers a PUT that sets Location with 201 Created
    return web.Response(status=201, headers={"Location": request.path})
