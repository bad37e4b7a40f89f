"""Loopback network pieces the reliability tests put between the module and the HSM."""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class TcpProxy:
    """A TCP proxy in front of one instance (TLS passes through untouched).

    mode "pass" forwards; "stall" accepts connections and reads what arrives but never answers
    and never forwards — an instance that is up at the TCP level and hung above it.
    `drop_all()` cuts every current connection, as a NAT or firewall that forgets idle flows.
    `accepted` counts connections."""

    def __init__(self, upstream_port: int | None, mode: str = "pass") -> None:
        self.upstream_port = upstream_port
        self.mode = mode
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                self._conns.append(client)
            if self.mode == "stall":
                threading.Thread(target=self._swallow, args=(client,), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _swallow(self, sock: socket.socket) -> None:
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if self.mode == "stall":
                    continue  # a hung peer: bytes go in, nothing comes out
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def drop_all(self) -> int:
        """Closes every proxied connection; returns how many sockets were cut."""
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        return len(conns)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.drop_all()


SIGN_PATH = re.compile(r"^/api/v1/keys/[^/]+/sign$")


class StatusInjector:
    """Plain-HTTP NetHSM fronts that forward everything to a real (HTTPS) instance, except
    `POST /keys/{id}/sign`, which answers `sign_status` when that is set.

    `fronts` servers share the setting: a slot listing all of them has that many instances
    that fail alike. `sign_requests` counts sign requests that reached any front."""

    def __init__(self, upstream_port: int, fronts: int = 1) -> None:
        self.upstream_port = upstream_port
        self.sign_status: int | None = None
        self.sign_requests = 0
        # (method, path regex) -> how many more of those requests are executed by the HSM and
        # then answered with nothing: the connection closes where the response should come.
        self.lose: dict[tuple[str, str], int] = {}
        self.lost: list[str] = []
        self.seen: list[str] = []
        self._lock = threading.Lock()
        injector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if self.command == "POST" and SIGN_PATH.match(self.path):
                    with injector._lock:
                        injector.sign_requests += 1
                    status = injector.sign_status
                    if status is not None:
                        message = json.dumps({"message": f"injected status {status}"})
                        self._answer(status, message.encode(), "application/json")
                        return
                conn = http.client.HTTPSConnection(
                    "127.0.0.1",
                    injector.upstream_port,
                    context=ssl._create_unverified_context(),
                    timeout=30,
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, body, headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                injector.seen.append(f"{self.command} {self.path} {resp.status}")
                if self._lose_answer():
                    return
                self._answer(resp.status, data, resp.getheader("Content-Type"))

            def _lose_answer(self) -> bool:
                with injector._lock:
                    for (method, pattern), left in injector.lose.items():
                        if left and method == self.command and re.match(pattern, self.path):
                            injector.lose[(method, pattern)] = left - 1
                            injector.lost.append(f"{self.command} {self.path}")
                            break
                    else:
                        return False
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return True

            def _answer(self, status: int, data: bytes, content_type: str | None) -> None:
                self.send_response(status)
                if content_type:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.servers = []
        for _ in range(fronts):
            server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.servers.append(server)

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{s.server_address[1]}/api/v1" for s in self.servers]

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
