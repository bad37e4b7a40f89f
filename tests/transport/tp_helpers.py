"""Loopback servers and configs for the transport tests."""

import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


# ---------------------------------------------------------------- configs


def instance(url, **kw):
    spec = dict(
        url=url,
        max_idle_connections=None,
        sha256_fingerprints=(),
        danger_insecure_cert=False,
        cacert=None,
    )
    spec.update(kw)
    return SimpleNamespace(**spec)


def slot(*instances, retries=0, delay=0, timeout=5, keepalive=None, max_idle_duration=None):
    return SimpleNamespace(
        label="test",
        instances=list(instances),
        retries=SimpleNamespace(count=retries, delay_seconds=delay),
        timeout_seconds=timeout,
        tcp_keepalive=keepalive,
        connections_max_idle_duration=max_idle_duration,
    )


def free_port() -> int:
    """A loopback port nobody listens on (connections to it are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settle(pool, limit=10.0) -> None:
    """Waits (bounded) until the pool's background thread has no connection set-up to do."""
    end = time.monotonic() + limit
    while pool.stats()["background_setups_pending"] and time.monotonic() < end:
        time.sleep(0.005)


def wait_for(predicate, limit=10.0) -> bool:
    """Polls predicate until true or the (generous) limit: for what servers count on their own
    threads after the client moved on (accepts, closes)."""
    end = time.monotonic() + limit
    while not predicate() and time.monotonic() < end:
        time.sleep(0.005)
    return predicate()


# ---------------------------------------------------------------- servers


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _handle(self):
        srv = self.server
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with srv.lock:
            srv.requests.append((self.command, self.path, dict(self.headers), body))
            if self.path.endswith("/health/alive"):
                status = 412 if srv.state == "Operational" else 200
            elif srv.statuses:
                status = srv.statuses.pop(0)
            elif self.path.endswith("/health/ready"):
                status = 200 if srv.state == "Operational" else 412
            else:
                status = srv.default_status
        if srv.delay:
            time.sleep(srv.delay)
        out = json.dumps({"method": self.command, "path": self.path, "port": srv.port}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def finish(self):
        super().finish()
        with self.server.lock:
            self.server.closed += 1  # the client closed the connection (or the server stopped)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    """HTTP/1.1 keep-alive server that counts connections and records requests."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port=0, tls=None):
        super().__init__(("127.0.0.1", port), _Handler)
        self.port = self.server_address[1]
        self.tls = tls
        self.lock = threading.Lock()
        self.connections = 0  # accepted
        self.closed = 0  # ended
        self.sockets = []
        self.requests = []
        self.statuses = []  # statuses for the next requests but /health/alive, then
        self.default_status = 200  # for API requests, and for /health/* what NetHSM answers
        self.state = "Operational"  # in this state (keyfender `handler_health.ml`)
        self.delay = 0.0
        self.handshake_delays = []  # of the next connections, before their TLS handshake
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def get_request(self):
        sock, addr = super().get_request()
        with self.lock:
            self.connections += 1
            self.sockets.append(sock)
        if self.tls is not None:
            # handshake in the handler thread, so a failing client cannot block accept()
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def finish_request(self, request, client_address):
        with self.lock:
            delay = self.handshake_delays.pop(0) if self.handshake_delays else 0.0
        time.sleep(delay)
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        pass  # clients that abort handshakes or connections are part of the tests

    def api_requests(self):
        with self.lock:
            return [r for r in self.requests if "/health/" not in r[1]]

    def health_requests(self):
        with self.lock:
            return [r for r in self.requests if "/health/" in r[1]]

    def url(self):
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/api/v1"

    def stop(self):
        """Stops listening and cuts every open connection, like a dying HSM."""
        self.shutdown()
        self.server_close()
        with self.lock:
            for sock in self.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class StallServer:
    """Accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def url(self):
        return f"http://127.0.0.1:{self.port}/api/v1"

    def stop(self):
        self.sock.close()
        for c in self.accepted:
            c.close()


class HangUpServer:
    """Reads a request and closes the connection without a response (libcurl: empty reply)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests = 0  # API requests; health checks are counted apart
        self.lock = threading.Lock()
        self.health_checks = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            # a thread per connection: the pool's warm-up connection stays idle, sending nothing
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                try:
                    chunk = conn.recv(4096)
                except OSError:
                    return
                if not chunk:
                    break
                data += chunk
            with self.lock:
                if b"/health/" in data.split(b"\r\n", 1)[0]:
                    self.health_checks += 1
                elif data:
                    self.requests += 1

    def url(self):
        return f"http://127.0.0.1:{self.port}/api/v1"

    def stop(self):
        self.sock.close()
