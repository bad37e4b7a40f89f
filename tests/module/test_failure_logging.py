"""A failure on the hot path gets its CKR and one log line naming the reason."""

from __future__ import annotations

import os

import yaml

from tests.module.conftest import OPERATOR_PIN, run_python

SIGN_WITH_DELETED_KEY = r"""
import sys
import PyKCS11
from tests.hsm_api import HsmApi

lib = PyKCS11.PyKCS11Lib()
lib.load(sys.argv[1])
session = lib.openSession(lib.getSlotList(tokenPresent=True)[0])
session.login(sys.argv[2])
key = session.findObjects([(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY),
                           (PyKCS11.CKA_LABEL, "doomed")])[0]
HsmApi(sys.argv[3], "admin", "adminadmin1").delete("doomed")
try:
    session.sign(key, b"x" * 32, PyKCS11.Mechanism(PyKCS11.CKM_ECDSA, None))
except PyKCS11.PyKCS11Error as e:
    print(PyKCS11.CKR[e.value])
"""


def test_sign_with_a_key_deleted_on_the_hsm_fails_with_one_log_line(
    module_path, login_config, hsm, api, tmp_path
):
    api.generate("EC_P256", ["ECDSA_Signature"], "doomed")
    log_file = tmp_path / "p11fast.log"
    with open(login_config) as f:
        cfg = yaml.safe_load(f)
    cfg.update(log_file=str(log_file), log_level="Info")
    config = tmp_path / "p11fast.conf"
    config.write_text(yaml.safe_dump(cfg))
    os.chmod(config, 0o600)
    done = run_python(SIGN_WITH_DELETED_KEY, str(config), module_path, OPERATOR_PIN, hsm.url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "CKR_KEY_HANDLE_INVALID"
    lines = [line for line in log_file.read_text().splitlines() if "C_Sign" in line]
    assert len(lines) == 1
    assert "HTTP 404" in lines[0] and hsm.url in lines[0]  # the status, and which instance
