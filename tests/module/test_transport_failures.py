"""No answer from the HSM: what each function returns is p11fast.errors.from_transport's
(PKCS#11 v3.0 §5.1): a question about the token without a session gets
CKR_TOKEN_NOT_PRESENT, a function with a session CKR_DEVICE_ERROR (its session stays valid),
the slot list shows the token absent; the transport out of memory is CKR_HOST_MEMORY."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

from p11fast import ckr
from p11fast.hsm.testing import running_hsm
from tests.hosts import host_env
from tests.module.conftest import OPERATOR_PIN

WHILE_STOPPED = r"""
import json, sys, time
import PyKCS11

def rv(call):
    try:
        call()
        return 0
    except PyKCS11.PyKCS11Error as e:
        return e.value

lib = PyKCS11.PyKCS11Lib()
lib.load(sys.argv[1])
session = lib.openSession(0)
session.login(sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()
time.sleep(1.2)  # past the presence answer's reuse (PRESENCE_TTL)
print(json.dumps({
    "slot_present": bool(lib.getSlotInfo(0).flags & PyKCS11.CKF_TOKEN_PRESENT),
    "C_GetTokenInfo": rv(lambda: lib.getTokenInfo(0)),
    "C_OpenSession": rv(lambda: lib.openSession(0)),
    "C_FindObjectsInit": rv(lambda: session.findObjects([])),
    "C_GenerateRandom": rv(lambda: session.generateRandom(16)),
    "C_GetSessionInfo": rv(lambda: session.getSessionInfo()),
}), flush=True)
"""


def test_while_no_instance_answers_token_questions_and_session_calls_get_their_codes(
    module_path, tmp_path
):
    log_file = tmp_path / "p11fast.log"
    with running_hsm(str(tmp_path / "hsm")) as hsm:
        with open(hsm.config_path) as f:
            cfg = yaml.safe_load(f)
        cfg.update(log_file=str(log_file), log_level="Info")
        config = tmp_path / "p11fast.conf"
        config.write_text(yaml.safe_dump(cfg))
        os.chmod(config, 0o600)
        host = subprocess.Popen(
            [sys.executable, "-c", WHILE_STOPPED, module_path, OPERATOR_PIN],
            env=host_env(str(config)), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        try:
            assert host.stdout.readline().strip() == "ready", host.stderr.read()
            hsm.stop()
            out, err = host.communicate("go\n", timeout=120)
        finally:
            host.kill()
        assert host.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == {
        "slot_present": False,
        "C_GetTokenInfo": ckr.CKR_TOKEN_NOT_PRESENT,
        "C_OpenSession": ckr.CKR_TOKEN_NOT_PRESENT,
        "C_FindObjectsInit": ckr.CKR_DEVICE_ERROR,
        "C_GenerateRandom": ckr.CKR_DEVICE_ERROR,
        "C_GetSessionInfo": 0,  # the session outlives the outage
    }
    log = log_file.read_text()
    for function in ("C_FindObjectsInit", "C_GenerateRandom"):
        (line,) = [line for line in log.splitlines() if f"{function}: " in line]
        assert f"{function}: {hsm.url}: no answer (connect): " in line, line


# Makes every libcurl handle fail to set up, as when memory runs out.
NO_HANDLES = "void *curl_easy_init(void) { return 0; }\n"


def test_initialize_without_memory_for_a_connection_is_host_memory(module_path, hsm, tmp_path):
    source = tmp_path / "no_handles.c"
    source.write_text(NO_HANDLES)
    shim = tmp_path / "no_handles.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(shim), str(source)], check=True)
    done = subprocess.run(
        ["pkcs11-tool", "--module", module_path, "-L"],
        env=host_env(hsm.config_path, LD_PRELOAD=str(shim), P11FAST_SNAPSHOT="off"),
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode != 0
    assert "C_Initialize failed" in done.stderr and "CKR_HOST_MEMORY" in done.stderr, done.stderr
    assert "no answer (out of memory): cannot set up a libcurl handle" in done.stderr
