"""A zero-cost NetHSM backend: nginx answering every request the module sends with a canned body.

What the module sends on the benchmark path (read from `p11fast/abi/`, `objects.py`,
`p11fast/transport/`): `GET /health/ready` (token present), `GET /health/alive` (pool probes),
`GET /keys` (C_Login check, listing), `GET /keys?label=` (find by label), `GET /keys/{id}`,
`GET /keys/{id}/cert` (404: no certificate), `POST /keys/{id}/sign` and `/decrypt`. Anything
else gets a 404 JSON error, so a new request on the hot path shows up as errors, not as silently
fast numbers.

Two keys, made with openssl so every attribute the module derives is valid: `bench` (EC_P256,
ECDSA) and `benchrsa` (RSA 2048, PKCS#1 sign and decrypt). The canned signatures are real
signatures by these keys over a fixed digest (valid DER for ECDSA, modulus-long for RSA). No
`label` field in the key JSON: CKA_LABEL is the key ID, as on NetHSM < 5.

nginx runs unprivileged in the foreground from a temporary prefix (`-p`), TLS with a
self-signed P-256 certificate whose SHA-256 fingerprint the generated p11fast configuration
pins. `worker_processes` defaults to 2, one per core of the benchmark machine: one worker caps
the backend at one core, which the wrk floor at 8+ connections exceeds; more than the cores
only adds context switches. Keep-alive is effectively unlimited (`keepalive_requests`
1,000,000, 300 s idle), `access_log off`. `/bench-status` is nginx's stub_status: its
"accepts" counter is the number of connections the backend accepted, a server-side cross-check
of the connections p11load counts.

Standalone: `python3 benchmarks/nginx_backend.py [--port P] [--workers W]` runs it in the
foreground and prints the p11fast configuration path.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

NGINX = "/usr/sbin/nginx"
EC_KEY, RSA_KEY = "bench", "benchrsa"
DIGEST = bytes(range(1, 33))  # the 32-byte "digest" wrk posts and the canned signatures sign
OPERATOR, OPERATOR_PASSWORD = "operator", "benchbench"


@dataclass
class Backend:
    directory: str
    port: int
    fingerprint: str
    config_path: str  # p11fast configuration pinning the certificate
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/api/v1"

    def accepted(self) -> int:
        """nginx's count of accepted connections so far (stub_status over plain TLS)."""
        import ssl

        # Loopback to the nginx we just started; the certificate is our own self-signed one.
        ctx = ssl._create_unverified_context()
        with urllib.request.urlopen(f"https://127.0.0.1:{self.port}/bench-status",
                                    context=ctx, timeout=5) as r:
            lines = r.read().decode().splitlines()
        # "Active connections: N" / "server accepts handled requests" / " A H R"
        return int(lines[2].split()[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _openssl(*args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], input=data, capture_output=True,
                          check=True).stdout


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _make_keys(d: str) -> dict[str, str]:
    """Keys, certificate and the canned JSON bodies (name -> body)."""
    tls_key, tls_cert = os.path.join(d, "tls.key"), os.path.join(d, "tls.crt")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", tls_key, "-out", tls_cert, "-days", "30", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1")
    ec_key, rsa_key = os.path.join(d, "ec.key"), os.path.join(d, "rsa.key")
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", ec_key)
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", rsa_key)

    spki = _openssl("pkey", "-in", ec_key, "-pubout", "-outform", "DER")
    point = spki[-65:]  # a P-256 SPKI ends with the 65-byte uncompressed point
    assert point[0] == 4
    ec_sig = _openssl("pkeyutl", "-sign", "-inkey", ec_key, data=DIGEST)
    modulus = bytes.fromhex(
        _openssl("rsa", "-in", rsa_key, "-noout", "-modulus").decode().split("=", 1)[1].strip())
    rsa_sig = _openssl("pkeyutl", "-sign", "-inkey", rsa_key, data=DIGEST)
    with open(os.path.join(d, "rsa.ct"), "wb") as f:  # a ciphertext for p11load --input
        f.write(_openssl("pkeyutl", "-encrypt", "-inkey", rsa_key, data=DIGEST))

    restrictions = {"tags": []}
    return {
        "keys": json.dumps([{"id": EC_KEY}, {"id": RSA_KEY}]),
        EC_KEY: json.dumps({"type": "EC_P256", "mechanisms": ["ECDSA_Signature"],
                            "restrictions": restrictions, "operations": 0,
                            "public": {"data": _b64(point)}}),
        EC_KEY + "/sign": json.dumps({"signature": _b64(ec_sig)}),
        RSA_KEY: json.dumps({"type": "RSA",
                             "mechanisms": ["RSA_Signature_PKCS1", "RSA_Decryption_PKCS1"],
                             "restrictions": restrictions, "operations": 0,
                             "public": {"modulus": _b64(modulus), "publicExponent": "AQAB"}}),
        RSA_KEY + "/sign": json.dumps({"signature": _b64(rsa_sig)}),
        RSA_KEY + "/decrypt": json.dumps({"decrypted": _b64(DIGEST)}),
    }


def _nginx_string(body: str) -> str:
    """A JSON body as an nginx single-quoted string (JSON has no single quotes to escape)."""
    assert "'" not in body and "\\" not in body
    return "'" + body + "'"


def _write_nginx_conf(d: str, port: int, workers: int, bodies: dict[str, str]) -> str:
    api = "/api/v1"
    canned = [
        (f"{api}/health/ready", 200, ""),
        (f"{api}/health/alive", 200, ""),
        (f"{api}/keys", 200, bodies["keys"]),
        (f"{api}/keys/{EC_KEY}", 200, bodies[EC_KEY]),
        (f"{api}/keys/{EC_KEY}/cert", 404, '{"message":"no certificate"}'),
        (f"{api}/keys/{EC_KEY}/sign", 200, bodies[EC_KEY + "/sign"]),
        (f"{api}/keys/{RSA_KEY}", 200, bodies[RSA_KEY]),
        (f"{api}/keys/{RSA_KEY}/cert", 404, '{"message":"no certificate"}'),
        (f"{api}/keys/{RSA_KEY}/sign", 200, bodies[RSA_KEY + "/sign"]),
        (f"{api}/keys/{RSA_KEY}/decrypt", 200, bodies[RSA_KEY + "/decrypt"]),
    ]
    locations = "\n".join(
        f"        location = {path} {{ return {status} {_nginx_string(body)}; }}"
        for path, status, body in canned
    )
    temp = os.path.join(d, "temp")
    os.makedirs(temp, exist_ok=True)
    conf = f"""# generated by benchmarks/nginx_backend.py
worker_processes {workers};
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type application/json;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {d}/tls.crt;
        ssl_certificate_key {d}/tls.key;
{locations}
        location = /bench-status {{ stub_status; }}
        location / {{ return 404 '{{"message":"not canned by the benchmark backend"}}'; }}
    }}
}}
"""
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


def _write_p11fast_conf(d: str, url: str, fingerprint: str) -> str:
    path = os.path.join(d, "p11fast.conf")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(f"""log_level: Warn
slots:
  - label: bench
    operator: {{username: {OPERATOR}, password: {OPERATOR_PASSWORD}}}
    instances:
      - url: "{url}"
        sha256_fingerprints: ["{fingerprint}"]
""")
    return path


def _wait_for_port(port: int, process: subprocess.Popen, log: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            with open(log) as f:
                raise RuntimeError(f"nginx exited ({process.returncode}): {f.read()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nginx did not listen on {port}")


@contextmanager
def nginx_backend(directory: str | None = None, port: int = 0,
                  workers: int = 2) -> Iterator[Backend]:
    with tempfile.TemporaryDirectory(prefix="p11bench-nginx-") as tmp:
        d = os.path.abspath(directory or tmp)
        os.makedirs(d, exist_ok=True)
        port = port or free_port()
        bodies = _make_keys(d)
        conf = _write_nginx_conf(d, port, workers, bodies)
        fingerprint = _openssl("x509", "-in", os.path.join(d, "tls.crt"), "-noout",
                               "-fingerprint", "-sha256").decode().strip().split("=", 1)[1]
        process = subprocess.Popen([NGINX, "-p", d, "-c", conf, "-e", f"{d}/error.log"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_for_port(port, process, f"{d}/error.log")
            backend = Backend(d, port, fingerprint, "", process)
            backend.config_path = _write_p11fast_conf(d, backend.url, fingerprint)
            yield backend
        finally:
            process.terminate()
            process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dir", help="keep the generated files here (default: a temp dir)")
    args = parser.parse_args()
    with nginx_backend(args.dir, args.port, args.workers) as b:
        print(f"nginx backend on {b.url}\nP11FAST_CONFIG_FILE={b.config_path}\n"
              f"sha256 fingerprint {b.fingerprint}\nCtrl-C stops it", flush=True)
        try:
            b.process.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
