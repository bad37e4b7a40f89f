"""Light mode: pool_spec blobs, the exported p11f_transport_* entry points, adoption by Pool."""

import ctypes
import json
import os
import shutil
import struct
import subprocess
import sys
import sysconfig
import textwrap
from types import SimpleNamespace

import pytest
from p11fast._abi import Pool, pool_spec
from tp_helpers import ROOT, free_port, instance, settle, slot, wait_for

from p11fast import _abi

ENTRY_POINTS = ("p11f_transport_open", "p11f_transport_get", "p11f_transport_release")


class Light:
    """ctypes view of the entry points; handles still open at the end are released."""

    def __init__(self):
        # The extension Python imported: dlopen hands back that same, already loaded, library.
        lib = ctypes.CDLL(_abi.__file__)
        self._open = lib.p11f_transport_open
        self._open.restype = ctypes.c_void_p
        self._open.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
        self._get = lib.p11f_transport_get
        self._get.restype = ctypes.c_int
        self._get.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_long),
                              ctypes.c_char_p, ctypes.c_size_t]
        self._release = lib.p11f_transport_release
        self._release.restype = None
        self._release.argtypes = [ctypes.c_void_p]
        self.handles = []

    def open(self, blob, threads_allowed=True):
        handle = self._open(blob, len(blob), int(threads_allowed))
        if handle:
            self.handles.append(handle)
        return handle

    def get(self, handle, path="/health/ready"):
        return self.get_why(handle, path)[:2]

    def get_why(self, handle, path="/health/ready"):
        status = ctypes.c_long(-1)
        why = ctypes.create_string_buffer(256)
        rc = self._get(handle, path.encode(), ctypes.byref(status), why, len(why))
        return rc, status.value, why.value.decode()

    def release(self, handle):
        self.handles.remove(handle)
        self._release(handle)


@pytest.fixture
def light():
    lt = Light()
    yield lt
    for handle in list(lt.handles):
        lt.release(handle)


def _every_setting(tls_cert):
    pin = tls_cert[2]
    hex_pin = ":".join(f"{b:02x}" for b in pin)
    return slot(
        instance(
            f"http://127.0.0.1:{free_port()}/api/v1/",
            max_idle_connections=3,
            danger_insecure_cert=True,
            cacert=tls_cert[0],
        ),
        instance(f"https://user@127.0.0.1:{free_port()}/x", sha256_fingerprints=(pin, hex_pin)),
        retries=3,
        delay=0.25,
        timeout=7,
        keepalive=SimpleNamespace(time_seconds=30, interval_seconds=5, retries=4),
        max_idle_duration=90,
    )


def test_pool_spec_carries_every_setting_into_the_pool(tls_cert, pools):
    config = _every_setting(tls_cert)
    stats = pools(config, threads_allowed=False).stats()
    assert stats["settings"] == {
        "threads_allowed": False,
        "retries": 3,
        "delay_ms": 250,
        "timeout_ms": 7000,
        "slow_timeout_ms": 7000,
        "connect_timeout_ms": 5000,
        "tcp_keepalive": (30, 5, 4),
        "max_age_seconds": 90,
    }
    first, second = stats["instances"]
    assert first["url"] == config.instances[0].url.rstrip("/")
    assert (first["max_connections"], first["danger_insecure_cert"]) == (3, True)
    assert (first["cacert"], first["sha256_fingerprints"], first["framing"]) == (
        tls_cert[0],
        [],
        True,
    )
    assert second["url"] == config.instances[1].url
    assert (second["max_connections"], second["danger_insecure_cert"]) == (16, False)
    assert second["sha256_fingerprints"] == [tls_cert[2], tls_cert[2]]
    assert (second["cacert"], second["framing"]) == (None, False)  # userinfo: libcurl's job


def test_pool_spec_refuses_what_pool_refuses():
    with pytest.raises(ValueError, match="no instance"):
        pool_spec(slot())
    with pytest.raises(ValueError, match="32-byte"):
        pool_spec(slot(instance("http://127.0.0.1:1/api/v1", sha256_fingerprints=(b"short",))))


def test_malformed_spec_blobs_are_refused(tls_cert, light):
    blob = pool_spec(_every_setting(tls_cert))
    head, inst = 60, 20  # fixed sizes of the header and of an instance record

    def patched(offset, fmt, value):
        b = bytearray(blob)
        struct.pack_into(fmt, b, offset, value)
        return bytes(b)

    bad = [blob[:n] for n in range(len(blob))]  # every truncation, the empty blob included
    bad += [
        blob + b"\0",  # trailing byte
        b"X" + blob[1:],  # magic
        patched(4, "<H", 2),  # version
        patched(6, "<H", 2),  # unknown header flag
        patched(8, "<I", 0),  # no instance
        patched(8, "<I", 3),  # more instances than there are
        patched(8, "<I", 0xFFFFFFFF),  # more than could ever fit
        patched(12, "<i", -1),  # retries
        patched(head, "<i", 0),  # max connections
        patched(head + 4, "<I", 4),  # unknown instance flag
        patched(head + 8, "<I", 0xFFFFFFFF),  # fingerprints beyond the blob
        patched(head + 12, "<I", 0xFFFFFFFF),  # URL beyond the blob
        patched(head + 16, "<I", 0xFFFFFFFF),  # cacert beyond the blob
        patched(head + inst + 5, "<B", 0),  # NUL inside the URL
        patched(6, "<H", 0),  # keepalive values without the keepalive flag
    ]
    for malformed in bad:
        assert light.open(malformed, False) is None, malformed
    assert light.open(blob, False) is not None


def test_open_get_then_pool_adopts_the_one_connection(servers, tls_context, tls_cert, light):
    srv = servers(tls=tls_context)
    srv.statuses = [503]
    config = slot(instance(srv.url(), sha256_fingerprints=(tls_cert[2],)))
    handle = light.open(pool_spec(config))
    assert light.get(handle) == (_abi.OK, 503)
    ((method, path, headers, _),) = srv.requests
    assert (method, path, "Authorization" in headers) == ("GET", "/api/v1/health/ready", False)
    pool = Pool(config, True)
    try:
        settle(pool)
        assert pool.stats()["connections_opened"] == 1
        assert pool.call("GET", "/info")[0] == 200
        light.release(handle)  # adopted: the Pool owns it now
        assert pool.call("GET", "/info")[0] == 200
        assert not pool.stats()["closed"]
    finally:
        pool.close()
    assert srv.connections == 1  # TLS: one handshake in all


def test_get_after_the_adopter_closed_the_pool_reports_closed(servers, light):
    srv = servers()
    config = slot(instance(srv.url()))
    handle = light.open(pool_spec(config))
    pool = Pool(config, True)
    pool.close()
    assert light.get(handle) == (_abi.ERR_CLOSED, 0)


@pytest.mark.parametrize("change", ["settings", "threads"])
def test_a_different_pool_does_not_adopt(servers, light, pools, change):
    srv = servers()
    config = slot(instance(srv.url()))
    light.open(pool_spec(config), threads_allowed=True)
    other = slot(instance(srv.url()), timeout=6) if change == "settings" else config
    pool = pools(other, threads_allowed=change == "settings")
    assert pool.call("GET", "/info")[0] == 200
    assert pool.stats()["connections_opened"] == 1
    assert wait_for(lambda: srv.connections == 2)  # its own, besides the parked pool's


def test_get_names_the_instance_that_answered_or_why_none_did(servers, light):
    srv = servers()
    srv.statuses = [412]
    answered = light.open(pool_spec(slot(instance(srv.url()))))
    assert light.get_why(answered) == (_abi.OK, 412, srv.url().rstrip("/"))
    nobody = f"http://127.0.0.1:{free_port()}/api/v1"
    refused = light.open(pool_spec(slot(instance(nobody))))
    rc, status, why = light.get_why(refused)
    assert (rc, status) == (_abi.ERR_CONNECT, 0)
    assert why.startswith(f"{nobody}: ") and "onnect" in why.split(": ", 1)[1], why


def test_release_closes_a_parked_pool(servers, light):
    srv = servers()
    handle = light.open(pool_spec(slot(instance(srv.url()))))
    assert light.get(handle) == (_abi.OK, 200)
    assert srv.closed == 0
    light.release(handle)
    assert wait_for(lambda: srv.closed == 1)


def test_entry_points_are_exported():
    nm = shutil.which("nm")
    assert nm is not None, "binutils' nm is needed for this test"
    out = subprocess.check_output([nm, "-D", "--defined-only", _abi.__file__], text=True)
    exported = {line.split()[-1] for line in out.splitlines() if line.strip()}
    assert set(ENTRY_POINTS) <= exported


_HOST = r"""
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

/* A loader in light mode: libpython loaded, never initialised, then the ABI's extension. */
int main(int argc, char **argv) {
    static unsigned char spec[65536];
    FILE *f = fopen(argv[3], "rb");
    size_t n = fread(spec, 1, sizeof spec, f);
    void *py = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
    void *tp = py ? dlopen(argv[2], RTLD_NOW) : NULL;
    if (!tp) { fprintf(stderr, "%s\n", dlerror()); return 2; }
    int (*initialized)(void) = (int (*)(void))dlsym(py, "Py_IsInitialized");
    void *(*open_)(const unsigned char *, size_t, int) =
        (void *(*)(const unsigned char *, size_t, int))dlsym(tp, "p11f_transport_open");
    int (*get)(void *, const char *, long *, char *, size_t) =
        (int (*)(void *, const char *, long *, char *, size_t))dlsym(tp, "p11f_transport_get");
    void (*release)(void *) = (void (*)(void *))dlsym(tp, "p11f_transport_release");
    if (!open_ || !get || !release) { fprintf(stderr, "missing entry point\n"); return 3; }
    void *h = open_(spec, n, atoi(argv[4]));
    long status = -1;
    int rc = h ? get(h, "/health/ready", &status, NULL, 0) : -1;
    release(h);
    printf("%d %ld %d\n", rc, status, initialized());
    return 0;
}
"""


@pytest.mark.parametrize("threads_allowed", [True, False])
def test_entry_points_work_without_an_initialised_python(servers, tmp_path, threads_allowed):
    config_var = sysconfig.get_config_var
    libpython = os.path.join(config_var("LIBDIR"), config_var("LDLIBRARY"))
    assert os.path.exists(libpython), "needs a Python built with --enable-shared"
    srv = servers()
    srv.statuses = [404]
    (tmp_path / "host.c").write_text(_HOST)
    (tmp_path / "spec").write_bytes(pool_spec(slot(instance(srv.url()))))
    host = tmp_path / "host"
    subprocess.check_call(["cc", "-o", str(host), str(tmp_path / "host.c"), "-ldl"])
    out = subprocess.run(
        [host, libpython, _abi.__file__, tmp_path / "spec", str(int(threads_allowed))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(_abi.OK), "404", "0"]  # and Python never started
    assert wait_for(lambda: srv.closed == 1)  # release closed the parked pool's connection


_CHILD = textwrap.dedent(
    """
    import ctypes, json, os, sys
    from types import SimpleNamespace as NS

    url, blob_hex, so = json.loads(sys.argv[1])
    blob = bytes.fromhex(blob_hex)
    lib = ctypes.CDLL(so)  # the extension, loaded without its module init running
    lib.p11f_transport_open.restype = ctypes.c_void_p
    lib.p11f_transport_open.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
    lib.p11f_transport_get.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                       ctypes.POINTER(ctypes.c_long), ctypes.c_char_p,
                                       ctypes.c_size_t]
    handle = lib.p11f_transport_open(blob, len(blob), 1)
    status = ctypes.c_long()
    rc = lib.p11f_transport_get(handle, b"/health/ready", ctypes.byref(status), None, 0)

    from p11fast import _abi  # its module init runs only now

    inst = NS(url=url, max_idle_connections=None, sha256_fingerprints=(),
              danger_insecure_cert=False, cacert=None)
    cfg = NS(label="t", instances=[inst], retries=NS(count=0, delay_seconds=0),
             timeout_seconds=5, tcp_keepalive=None, connections_max_idle_duration=None)
    pool = _abi.Pool(cfg, True)
    opened = pool.stats()["connections_opened"]
    pid = os.fork()
    if pid == 0:  # the registry still knows the adopted pool: the child gets it closed
        try:
            pool.call("GET", "/info")
            code = 1
        except _abi.TransportError as e:
            code = 0 if e.error_code == _abi.ERR_CLOSED else 2
        os._exit(code)
    _, child = os.waitpid(pid, 0)
    print(json.dumps({"get": [rc, status.value], "opened": opened,
                      "child": os.waitstatus_to_exitcode(child),
                      "status": pool.call("GET", "/info")[0]}), flush=True)
    """
)


def test_module_import_after_light_mode_keeps_its_state(servers):
    srv = servers()
    config = slot(instance(srv.url()))
    args = json.dumps([srv.url(), pool_spec(config).hex(), _abi.__file__])
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, args],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=ROOT),
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result == {"get": [_abi.OK, 200], "opened": 1, "child": 0, "status": 200}
    assert srv.connections == 1
