"""The aiohttp application and the server loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import json
import logging
import os
import signal
import sys

from aiohttp import web

from p11fast.hsm import tls
from p11fast.hsm.api_keys import KeysApi
from p11fast.hsm.api_platform import Platform, PlatformApi
from p11fast.hsm.api_system import UNIMPLEMENTED, SystemApi, not_implemented
from p11fast.hsm.api_tls import TlsApi
from p11fast.hsm.api_users import NamespacesApi, UsersApi
from p11fast.hsm.auth import Authenticator
from p11fast.hsm.core import Hsm
from p11fast.hsm.dispatch import build_resources
from p11fast.hsm.errors import ApiError
from p11fast.hsm.listener import Limits, Listener
from p11fast.hsm.routing import API_PREFIX, BODY_TIMEOUT

log = logging.getLogger("p11fast.hsm")

FLUSH_INTERVAL = 2.0
MAX_REQUEST = 256 << 20  # a restore upload; JSON bodies have their own 1 MiB limit
KEEPALIVE_TIMEOUT = 75.0  # idle authenticated connections (aiohttp's run_app default)


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    if status == 304:
        return web.Response(status=304)
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="NetHSM"'
    return web.Response(
        status=status,
        body=json.dumps({"message": message}).encode(),
        content_type="application/json",
        headers=headers,
    )


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    """The one place where typed errors become HTTP responses with a JSON body."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.message, exc.headers())
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason)
    except Exception:
        # The path only: queries and bodies may carry passphrases.
        log.exception("internal error on %s %s", request.method, request.path)
        return error_response(500, "internal error")


def build_app(hsm: Hsm, connections: Listener, platform: Platform) -> web.Application:
    authenticator = Authenticator(hsm, on_verified=connections.trust)
    app = web.Application(
        middlewares=[connections.middleware, error_middleware], client_max_size=MAX_REQUEST
    )
    app[BODY_TIMEOUT] = connections.limits.body_timeout
    lifecycle = asyncio.Lock()
    apis = [
        KeysApi(hsm), UsersApi(hsm), NamespacesApi(hsm),
        SystemApi(hsm, authenticator, lifecycle), TlsApi(hsm, platform.reload_tls),
        PlatformApi(hsm, platform, lifecycle),
    ]  # fmt: skip
    routes = [
        (verb, path, rule, method)
        for api in apis
        for _, method in inspect.getmembers(api, inspect.ismethod)
        for verb, path, rule in getattr(method, "routes", ())
    ]
    routes += [(verb, path, rule, not_implemented) for verb, path, rule in UNIMPLEMENTED]
    resources = build_resources(routes, lambda: hsm.state, authenticator.authenticate)
    for path, resource in resources.items():
        app.router.add_route("*", API_PREFIX + path, resource)
    return app


async def _flush_periodically(hsm: Hsm) -> None:
    while True:
        await asyncio.sleep(FLUSH_INTERVAL)
        hsm.flush_operations()


async def serve(state_dir: str, host: str, port: int, use_tls: bool, limits: Limits) -> None:
    hsm = Hsm(state_dir)
    fingerprint = tls.ensure_certificate(state_dir)
    loop = asyncio.get_running_loop()
    loop.set_default_executor(
        concurrent.futures.ThreadPoolExecutor(max_workers=max(4, 2 * (os.cpu_count() or 1)))
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # One context: the listener's handshakes use it, and a new TLS key or certificate is
    # loaded into it, so connections accepted afterwards see the new one.
    context = tls.server_context(state_dir) if use_tls else None

    def reload_tls() -> None:
        if context is not None:
            tls.load_into(context, state_dir)

    listener = Listener(limits, context)
    platform = Platform(stop=stop.set, reload_tls=reload_tls)
    runner = web.AppRunner(
        build_app(hsm, listener, platform),
        access_log=None,
        handle_signals=False,
        keepalive_timeout=KEEPALIVE_TIMEOUT,
    )
    await runner.setup()
    real_port = await listener.start(runner.server, host, port)
    flusher = asyncio.create_task(_flush_periodically(hsm))
    scheme = "https" if use_tls else "http"
    sys.stdout.write(f"TLS certificate SHA-256 fingerprint: {fingerprint}\n")
    sys.stdout.write(f"state: {hsm.state.value}\n")
    sys.stdout.write(f"p11fast-hsm listening on {scheme}://{host}:{real_port}\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        await listener.close()
        await runner.cleanup()
        hsm.flush_operations()
        hsm.store.close()
