"""What would fail in the module fails before the HSM is asked to change anything: a PIN no
NetHSM passphrase can be is refused before it is sent, and a change that cannot complete leaves
the HSM as it was."""

from __future__ import annotations

import pytest

from p11fast import ckr
from p11fast.hsm.testing import ADMIN_PASSPHRASE
from p11fast.pins import PIN_MAX_BYTES, PIN_MIN_BYTES, USERNAME_MAX_BYTES
from tests.hsm_api import HsmApi
from tests.module.test_manage import pykcs11
from tests.reliability.conftest import cluster, write_config

# pykcs11's bodies open their own session in the token's slot `slot`
RW_SESSION = "session = lib.openSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)\n"

PASSPHRASE = "the-current-passphrase"


@pytest.fixture(scope="module")
def hsm(key_state, tmp_path_factory):
    with cluster(key_state, tmp_path_factory.mktemp("local"), 1) as hsms:
        yield hsms


@pytest.fixture
def operator(hsm, request) -> str:
    """An Operator of its own for each test: a test that fails must not lock the others out."""
    name = "op" + str(abs(hash(request.node.name)))[:12]
    hsm.api(0).expect(201, "PUT", f"/users/{name}",
                      {"realName": name, "role": "Operator", "passphrase": PASSPHRASE})
    yield name
    hsm.api(0).request("DELETE", f"/users/{name}")


def config_for(hsm, directory, username: str) -> str:
    """A configuration whose operator has no password (C_Login supplies it)."""
    path = write_config(directory / "c.conf", [hsm.instances[0].url], hsm.fingerprint)
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("username: operator", f"username: {username}"))
    return path


def passphrase_works(hsm, username: str, passphrase: str) -> bool:
    return HsmApi(hsm.instances[0].url, username, passphrase).request("GET", "/keys")[0] == 200


def test_token_info_advertises_what_a_nethsm_passphrase_can_be(
    module_path, hsm, operator, tmp_path
):
    out = pykcs11(module_path, config_for(hsm, tmp_path, operator), """
info = lib.getTokenInfo(slot)
out["pin lengths"] = [info.ulMinPinLen, info.ulMaxPinLen]
""")
    assert out["pin lengths"] == [PIN_MIN_BYTES, PIN_MAX_BYTES] == [10, 200]


NEW_PINS = {"500 bytes": b"x" * 500, "201 bytes": b"x" * (PIN_MAX_BYTES + 1), "9 bytes": b"x" * 9,
            "not UTF-8": b"\xff" * 20}


@pytest.mark.parametrize("new_pin", NEW_PINS.values(), ids=NEW_PINS.keys())
def test_set_pin_refuses_a_new_pin_before_the_hsm_changes(
    module_path, hsm, operator, tmp_path, new_pin
):
    out = pykcs11(module_path, config_for(hsm, tmp_path, operator), RW_SESSION + f"""
session.login({PASSPHRASE!r})
out["set"] = ckr(lambda: session.setPin({PASSPHRASE!r}, {new_pin!r}))
""")
    assert out["set"] == (ckr.CKR_PIN_INVALID if new_pin == b"\xff" * 20
                          else ckr.CKR_PIN_LEN_RANGE)
    assert passphrase_works(hsm, operator, PASSPHRASE)


def test_init_pin_refuses_a_new_pin_before_the_hsm_changes(module_path, hsm, operator, tmp_path):
    out = pykcs11(module_path, config_for(hsm, tmp_path, operator), RW_SESSION + f"""
session.login({ADMIN_PASSPHRASE!r}, CKU_SO)
out["init"] = ckr(lambda: session.initPin("x" * 500))
""")
    assert out["init"] == ckr.CKR_PIN_LEN_RANGE
    assert passphrase_works(hsm, operator, PASSPHRASE)


def test_login_with_a_pin_no_passphrase_can_be_is_refused_without_asking_the_hsm(
    module_path, hsm, operator, tmp_path
):
    # A refused login makes the HSM answer 429 to that user for a second: the right PIN right
    # after works only if the wrong ones never reached it.
    out = pykcs11(module_path, config_for(hsm, tmp_path, operator), RW_SESSION + f"""
out["long"] = ckr(lambda: session.login("x" * 500))
out["short"] = ckr(lambda: session.login("x" * 9))
out["right"] = ckr(lambda: session.login({PASSPHRASE!r}))
""")
    assert out == {"long": ckr.CKR_PIN_INCORRECT, "short": ckr.CKR_PIN_INCORRECT, "right": 0}


def test_the_longest_username_with_the_longest_pin_works_end_to_end(
    module_path, hsm, tmp_path
):
    name = "u" * USERNAME_MAX_BYTES
    longest = "p" * PIN_MAX_BYTES
    hsm.api(0).expect(201, "PUT", f"/users/{name}",
                      {"realName": "longest", "role": "Operator", "passphrase": PASSPHRASE})
    config = config_for(hsm, tmp_path, name)
    try:
        changed = pykcs11(module_path, config, RW_SESSION + f"""
session.login({PASSPHRASE!r})
out["set"] = ckr(lambda: session.setPin({PASSPHRASE!r}, {longest!r}))
out["keys"] = len(session.findObjects([(CKA_CLASS, CKO_PRIVATE_KEY)]))
""")
        assert changed["set"] == 0 and changed["keys"] > 0
        assert passphrase_works(hsm, name, longest)
        again = pykcs11(module_path, config, RW_SESSION + f"""
out["login"] = ckr(lambda: session.login({longest!r}))
out["keys"] = len(session.findObjects([(CKA_CLASS, CKO_PRIVATE_KEY)]))
""")
        assert again == {"login": 0, "keys": changed["keys"]}
    finally:
        hsm.api(0).request("DELETE", f"/users/{name}")


def test_a_rename_refused_by_the_module_leaves_the_label_on_the_hsm(module_path, hsm, tmp_path):
    hsm.api(0).generate("EC_P256", ["ECDSA_Signature"], "renamed", label="before")
    config = write_config(tmp_path / "c.conf", [hsm.instances[0].url], hsm.fingerprint)
    try:
        out = pykcs11(module_path, config, RW_SESSION + f"""
session.login({ADMIN_PASSPHRASE!r}, CKU_SO)
[key] = session.findObjects([(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_LABEL, "before")])
# 63 bytes that are no valid key ID: too long for the CKA_ID encoding
out["set"] = ckr(lambda: session.setAttributeValue(key, [(CKA_LABEL, "after"),
                                                        (CKA_ID, bytes(range(63)))]))
""")
        assert out["set"] == ckr.CKR_ATTRIBUTE_VALUE_INVALID
        assert hsm.api(0).key("renamed")["label"] == "before"
    finally:
        hsm.api(0).delete("renamed")
