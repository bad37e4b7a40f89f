"""nginx as a TLS terminator with its key on the HSM (`engine:pkcs11:` through
libengine-pkcs11-openssl): the master loads the key and forks workers, and each worker signs
handshakes after the engine re-initialises the module in it. The fork case."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess

import pytest

from p11fast.hsm.testing import free_port
from tests.interop.conftest import host_env, key_uri
from tests.interop.test_openssl_engine import self_signed, wait_for_port

WORKERS = 3
REQUESTS = 40


def nginx_conf(directory, port: int, cert, key_id: str) -> str:
    # As root the master would hand workers to `nobody`, who cannot read the module's 0600
    # configuration: keep them as the user running the test.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    temp = {name: directory / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    return (
        user + "daemon off;\n"
        "master_process on;\n"
        f"worker_processes {WORKERS};\n"
        f"pid {directory / 'nginx.pid'};\n"
        f"error_log {directory / 'error.log'} info;\n"
        "env P11FAST_CONFIG_FILE;\n"
        "env OPENSSL_CONF;\n"
        "ssl_engine pkcs11;\n"
        "events { worker_connections 64; }\n"
        "http {\n"
        "  access_log off;\n"
        f"  client_body_temp_path {temp['body']};\n"
        f"  proxy_temp_path {temp['proxy']};\n"
        f"  fastcgi_temp_path {temp['fastcgi']};\n"
        f"  uwsgi_temp_path {temp['uwsgi']};\n"
        f"  scgi_temp_path {temp['scgi']};\n"
        "  server {\n"
        # reuseport: one listening socket per worker, so connections spread over them
        f"    listen 127.0.0.1:{port} ssl reuseport;\n"
        f"    ssl_certificate {cert};\n"
        f'    ssl_certificate_key "engine:pkcs11:{key_uri(key_id)}";\n'
        "    keepalive_timeout 0;\n"
        '    location / { return 200 "$pid"; }\n'
        "  }\n"
        "}\n"
    )


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(child) for child in f.read().split()]
    except OSError:
        return []


@pytest.mark.parametrize("key_id", ["ecp256", "rsa2048"])
def test_forked_workers_serve_tls_with_the_key_the_master_loaded(
    openssl_conf, tls_hsm, tls_api, tmp_path, key_id
):
    cert = tmp_path / "cert.pem"
    self_signed(openssl_conf, tls_hsm.config_path, key_id, cert)
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_conf(tmp_path, port, cert, key_id))
    env = host_env(tls_hsm.config_path)
    env["OPENSSL_CONF"] = openssl_conf
    master = subprocess.Popen(
        ["nginx", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, master)
        answers = []
        for _ in range(REQUESTS):
            answers.append(
                subprocess.run(
                    [
                        "curl",
                        "-sS",
                        "--max-time",
                        "20",
                        "--cacert",
                        str(cert),
                        "--resolve",
                        f"localhost:{port}:127.0.0.1",
                        "-w",
                        " %{http_code}",
                        f"https://localhost:{port}/",
                    ],  # fmt: skip
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
            )
            if answers[-1].returncode != 0:
                break  # a hung or broken worker: one failure tells the story
    finally:
        workers_left = children(master.pid)
        master.send_signal(signal.SIGQUIT)
        try:
            master.wait(30)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait()
        for pid in workers_left:  # a hung worker ignores its master's quit
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    log = (tmp_path / "error.log").read_text()
    failures = [a.stdout + a.stderr for a in answers if a.returncode != 0]
    assert not failures, failures[:3] + [log[-3000:]]
    bodies = [a.stdout.split() for a in answers]
    assert all(status == "200" for _, status in bodies), bodies
    workers = {int(pid) for pid, _ in bodies}
    assert master.pid not in workers
    assert len(workers) >= 2, f"every request went to one worker: {workers}"
