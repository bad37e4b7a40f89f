"""One-shot processes (issue 15): what a pkcs11-tool-like process sees, step by step, through a C
host (oneshot_host.c) that prints every return code and output of each PKCS#11 call and whether
an interpreter runs after it.

Two things are pinned here. Whatever a process answers from what an earlier process recorded
(light mode's snapshot today; the recorded inventory of issue 15) is byte-identical to the full
path (`P11FAST_SNAPSHOT=off`): for the normal flows, a wrong PIN, an unknown ID, a key deleted or
created between runs, an absent token, a forked child and four threads; a changed configuration
or environment is noticed. And which calls run without Python: the light flows do today; the
session, login, search, attribute and signing calls do too once an earlier process recorded the
key it finds (the recorded inventory, p11fast/abi/recorded.pxd).

Each test has its own snapshot directory (XDG_CACHE_HOME); the configuration is the session
HSM's at log level Warn (a snapshot is written only by a C_Initialize that logged nothing)
without the operator password, so C_Login checks the PIN with the HSM as pkcs11-tool's does.
"""

from __future__ import annotations

import base64
import os
import re
import struct
import subprocess
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

from p11fast import snapshot
from p11fast.hsm.testing import ADMIN_PASSPHRASE
from tests.hosts import host_env
from tests.module.conftest import OPERATOR_PIN
from tests.module.test_c_host import build_host

EC_ID, RSA_ID = b"ecp256".hex(), b"rsa2048".hex()
DIGEST = bytes(range(1, 33))  # what oneshot_host signs
PLAINTEXT = b"one-shot decryption"
WRONG_PIN = "not-the-operator-pin"
LIGHT = ["init", "info", "slots", "slot", "token", "final"]
SESSION_STEPS = ["open", f"login:{OPERATOR_PIN}"]


def sign_flow(key_id: str, mech: str, pin: str = OPERATOR_PIN) -> list[str]:
    """What `pkcs11-tool --login --sign --id` asks, plus the mechanism list and the key's
    attributes that other one-shot tools read."""
    return ["init", "info", "slots", "slot", "token", "mechs", "open", f"login:{pin}",
            f"find:{key_id}", "attrs", f"sign:{mech}", "logout", "close", "final"]  # fmt: skip


@pytest.fixture(scope="module")
def oneshot_host(tmp_path_factory) -> str:
    return build_host(tmp_path_factory.mktemp("oneshot"), "oneshot_host")


def write_config(hsm, path: Path, **slot_changes) -> str:
    """The HSM's configuration at log level Warn, without the operator password."""
    with open(hsm.config_path) as f:
        cfg = yaml.safe_load(f)
    cfg["log_level"] = "Warn"
    cfg["slots"][0]["operator"].pop("password", None)
    for key, value in slot_changes.items():
        cfg["slots"][0][key] = value
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    # A file changed within the last RACY_SECONDS does not identify its contents: no snapshot.
    time.sleep(snapshot.RACY_SECONDS * 2)
    return str(path)


@pytest.fixture(scope="module")
def config(hsm, api, tmp_path_factory) -> str:
    return write_config(hsm, tmp_path_factory.mktemp("oneshot-cfg") / "warn.conf")


@dataclass
class Run:
    lines: list[str]
    log: str = ""  # the host's stderr: the module's log with log_file "-"

    def python(self) -> list[tuple[str, str]]:
        """(call, "1" when an interpreter ran after it, else "0"), in order."""
        return [(line.split(" rv=", 1)[0], line.rsplit(" py=", 1)[1]) for line in self.lines
                if " py=" in line]  # fmt: skip

    def answers(self) -> list[str]:
        """The lines without the interpreter flag: what the application sees."""
        return [re.sub(r" py=[01]$", "", line) for line in self.lines]


class Host:
    def __init__(self, exe: str, module: str, config: str, cache: str):
        self.exe, self.module, self.config, self.cache = exe, module, config, cache

    def run(self, steps: list[str], full: bool = False, **env: str) -> Run:
        extra = {"XDG_CACHE_HOME": self.cache, **env}
        if full:
            extra["P11FAST_SNAPSHOT"] = "off"
        done = subprocess.run([self.exe, self.module, *steps], env=host_env(self.config, **extra),
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        return Run(done.stdout.splitlines(), done.stderr)

    def light_and_full(self, steps: list[str], previous: list[list[str]] | None = None,
                       **env: str) -> tuple[Run, Run]:  # fmt: skip
        """The flow after earlier processes recorded what they could (`previous`, by default the
        same flow once), and the same flow on the full path."""
        for earlier in previous or [steps]:
            self.run(earlier, **env)
        return self.run(steps, **env), self.run(steps, full=True, **env)


@pytest.fixture(scope="module")
def ciphertext(api) -> str:
    """PLAINTEXT for the RSA key, PKCS#1 v1.5, in hex: what the decrypt step decrypts."""
    key = serialization.load_pem_public_key(api.public_pem("rsa2048"))
    return key.encrypt(PLAINTEXT, padding.PKCS1v15()).hex()


@pytest.fixture
def host(oneshot_host, module_path, config, tmp_path) -> Host:
    return Host(oneshot_host, module_path, config, str(tmp_path / "cache"))


def ecdsa_checked(run: Run, public_pem: bytes) -> list[str]:
    """The answers with each ECDSA signature (random) replaced by whether it verifies."""
    key = serialization.load_pem_public_key(public_pem)

    def check(m: re.Match) -> str:
        raw = bytes.fromhex(m.group(1))
        r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        try:
            key.verify(utils.encode_dss_signature(r, s), DIGEST,
                       ec.ECDSA(utils.Prehashed(hashes.SHA256())))  # fmt: skip
        except Exception:  # noqa: BLE001 - any failure is "does not verify"
            return "signature=INVALID"
        return "signature=verified"

    return [re.sub(r"signature=([0-9a-f]{128})\b", check, line) for line in run.answers()]


def thread_blocks(run: Run) -> tuple[list[str], list[tuple[str, ...]]]:
    """The main thread's answers, and each thread's without its session handle: which thread
    gets which handle, and whether a thread's session reuses the entry of one already closed
    (a handle of the next generation), is a race."""
    main, threads = [], {}
    for line in run.answers():
        m = re.match(r"(t\d+) (.*)", line)
        if m:
            answer = re.sub(r"session=\d+", "session=", m.group(2))
            threads.setdefault(m.group(1), []).append(answer)
        else:
            main.append(line)
    return main, sorted(tuple(block) for block in threads.values())


# -- (a) which calls run without an interpreter -----------------------------------------------


def test_a_light_flow_after_a_light_flow_runs_without_an_interpreter(host):
    host.run(LIGHT)
    second = host.run(LIGHT)
    assert second.python()[-1][0] == "C_Finalize"
    assert {py for _call, py in second.python()} == {"0"}, second.lines


def test_the_mechanism_list_and_infos_after_a_listing_run_without_an_interpreter(host):
    """`pkcs11-tool -M`: the mechanisms come from the snapshot, as the slots do."""
    flow = ["init", "slots", "token", "mechs", "final"]
    host.run(flow)
    second = host.run(flow)
    assert any(name.startswith("C_GetMechanismInfo") for name, _py in second.python())
    assert {py for _call, py in second.python()} == {"0"}, second.lines
    assert second.answers() == host.run(flow, full=True).answers()


def test_sessions_opened_and_closed_after_a_listing_run_without_an_interpreter(host):
    """`p11tool --list-tokens` opens and closes a session per token: the ABI's own session
    functions run, compiled, on its own table (and the token's session counts are theirs)."""
    flow = ["init", "slots", "token", "open", "token", "close", "open", "token", "final"]
    host.run(flow)
    second = host.run(flow)
    assert [name for name, _py in second.python()].count("C_OpenSession") == 2
    assert {py for _call, py in second.python()} == {"0"}, second.lines
    assert second.answers() == host.run(flow, full=True).answers()


# The calls a one-shot `pkcs11-tool --sign` makes run without starting Python after an earlier
# process made them. Each case is the flow up to that step.
ONE_SHOT_STEPS = {
    "login": (SESSION_STEPS, "C_Login"),
    "find by id": ([*SESSION_STEPS, f"find:{EC_ID}"], "C_FindObjects"),
    # A key without a label has its ID as CKA_LABEL: GET /keys/{label}, then GET /keys?label=.
    "find by label": ([*SESSION_STEPS, "label:ecp256"], "C_FindObjects"),
    "find by id and label": ([*SESSION_STEPS, f"idlabel:{EC_ID}:ecp256"], "C_FindObjects"),
    "ECDSA sign by label": ([*SESSION_STEPS, "label:ecp256", "sign:ecdsa"], "C_Sign"),
    "attributes": ([*SESSION_STEPS, f"find:{EC_ID}", "attrs"], "C_GetAttributeValue"),
    "ECDSA sign": ([*SESSION_STEPS, f"find:{EC_ID}", "sign:ecdsa"], "C_Sign"),
    "RSA sign": ([*SESSION_STEPS, f"find:{RSA_ID}", "sign:rsa"], "C_Sign"),
    "logout and close": ([*SESSION_STEPS, "logout", "close"], "C_CloseSession"),
    "finalize after signing": ([*SESSION_STEPS, f"find:{EC_ID}", "sign:ecdsa", "close"],
                               "C_Finalize"),  # fmt: skip
    "RSA decrypt": ([*SESSION_STEPS, f"find:{RSA_ID}", "decrypt:{ciphertext}"], "C_Decrypt"),
}


@pytest.mark.parametrize("case", ONE_SHOT_STEPS)
def test_a_one_shot_flow_after_the_same_flow_runs_without_an_interpreter(host, ciphertext, case):
    steps, call = ONE_SHOT_STEPS[case]
    flow = ["init", "slots", "token", *(s.format(ciphertext=ciphertext) for s in steps), "final"]
    host.run(flow)
    second = host.run(flow)
    assert any(name.startswith(call) for name, _py in second.python()), second.lines
    assert [(name, py) for name, py in second.python() if py != "0"] == [], second.lines


# -- (b) the answers are the full path's answers ----------------------------------------------


# What ran before decides the path today: after a listing or one signing process, light mode
# answers and then promotes; after two signing processes, the `.full` mark starts Python in
# C_Initialize.
PREVIOUS = {"listing": lambda flow: [LIGHT], "same flow": lambda flow: [flow],
            "same flow twice": lambda flow: [flow, flow]}  # fmt: skip


@pytest.mark.parametrize("previous", PREVIOUS)
def test_an_ecdsa_sign_flow_answers_as_the_full_path(host, api, previous):
    flow = sign_flow(EC_ID, "ecdsa")
    light, full = host.light_and_full(flow, PREVIOUS[previous](flow))
    pem = api.public_pem("ecp256")
    assert ecdsa_checked(light, pem) == ecdsa_checked(full, pem)
    assert "signature=verified" in "\n".join(ecdsa_checked(light, pem))


@pytest.mark.parametrize("previous", PREVIOUS)
def test_an_rsa_sign_flow_answers_as_the_full_path_byte_for_byte(host, previous):
    flow = sign_flow(RSA_ID, "rsa")
    light, full = host.light_and_full(flow, PREVIOUS[previous](flow))
    assert light.answers() == full.answers()
    assert re.search(r"^C_Sign rv=0x0 len=256 signature=", "\n".join(light.answers()), re.M)


def test_an_rsa_decryption_answers_as_the_full_path_byte_for_byte(host, ciphertext):
    flow = ["init", "slots", *SESSION_STEPS, f"find:{RSA_ID}", f"decrypt:{ciphertext}", "close",
            "final"]  # fmt: skip
    light, full = host.light_and_full(flow)
    assert light.answers() == full.answers()
    assert f"C_Decrypt rv=0x0 len={len(PLAINTEXT)} plaintext={PLAINTEXT.hex()}" in light.answers()


def test_a_wrong_pin_is_refused_as_on_the_full_path(host):
    flow = sign_flow(RSA_ID, "rsa", pin=WRONG_PIN)
    light, full = host.light_and_full(flow, previous=[sign_flow(RSA_ID, "rsa")])
    assert light.answers() == full.answers()
    assert "C_Login rv=0xa0" in light.answers()  # CKR_PIN_INCORRECT


def test_an_unknown_id_finds_nothing_as_on_the_full_path(host):
    flow = sign_flow(b"no-such-key".hex(), "ecdsa")
    light, full = host.light_and_full(flow, previous=[sign_flow(EC_ID, "ecdsa")])
    assert light.answers() == full.answers()
    assert "C_FindObjects rv=0x0 count=0" in light.answers()


def test_a_key_deleted_since_the_last_run_is_gone_as_on_the_full_path(host, api):
    key = api.generate("RSA", ["RSA_Signature_PKCS1"], "oneshotdeleted", 2048)
    try:
        flow = sign_flow(key.encode().hex(), "rsa")
        recorded = host.run(flow)
        assert "C_FindObjects rv=0x0 count=1 handles=" in " ".join(recorded.answers())
    finally:
        api.delete(key)
    light, full = host.run(flow), host.run(flow, full=True)
    assert light.answers() == full.answers()
    assert "C_FindObjects rv=0x0 count=0" in light.answers()


def test_a_key_created_since_the_last_run_is_found_as_on_the_full_path(host, api):
    flow = sign_flow(b"oneshotcreated".hex(), "rsa")
    assert "C_FindObjects rv=0x0 count=0" in host.run(flow).answers()
    key = api.generate("RSA", ["RSA_Signature_PKCS1"], "oneshotcreated", 2048)
    try:
        light, full = host.run(flow), host.run(flow, full=True)
    finally:
        api.delete(key)
    assert light.answers() == full.answers()
    assert re.search(r"^C_Sign rv=0x0 len=256 signature=", "\n".join(light.answers()), re.M)


def test_a_key_changed_since_the_last_run_is_read_again_as_on_the_full_path(host, api):
    """The HSM's answer for the key differs from the recorded one (a tag restriction added):
    the search is the cold path's, which sees what the HSM says now."""
    key = api.generate("RSA", ["RSA_Signature_PKCS1"], "oneshotchanged", 2048)
    try:
        flow = sign_flow(key.encode().hex(), "rsa")
        host.run(flow)
        api.expect(204, "PUT", f"/keys/{key}/restrictions/tags/elsewhere")
        light, full = host.run(flow), host.run(flow, full=True)
    finally:
        api.delete(key)
    assert light.answers() == full.answers()
    assert dict(light.python())["C_FindObjectsInit"] == "1", light.lines


def label_sign_flow(label: str) -> list[str]:
    """`pkcs11-tool --login --sign --label`."""
    return ["init", "slots", "token", *SESSION_STEPS, f"label:{label}", "attrs", "sign:rsa",
            "close", "final"]  # fmt: skip


@pytest.fixture
def labelled(api):
    """Two RSA keys, the first labelled "oneshot team", the second unlabelled; deleted after."""
    keys = [api.generate("RSA", ["RSA_Signature_PKCS1"], f"oneshotlbl{i}", 2048) for i in (1, 2)]
    api.expect(204, "PUT", f"/keys/{keys[0]}/label", {"label": "oneshot team"})
    try:
        yield keys
    finally:
        for key in keys:
            api.delete(key)


def test_a_label_search_signs_without_an_interpreter_as_the_full_path(host, labelled):
    """The label needs percent-encoding in GET /keys?label=, which the compiled search sends."""
    flow = label_sign_flow("oneshot team")
    light, full = host.light_and_full(flow)
    assert {py for _call, py in light.python()} == {"0"}, light.lines
    assert light.answers() == full.answers()
    assert "C_FindObjects rv=0x0 count=1 handles=" in " ".join(light.answers())


def test_an_unknown_label_finds_nothing_without_an_interpreter_as_the_full_path(host):
    flow = ["init", "slots", *SESSION_STEPS, "label:nosuchlabel", "close", "final"]
    light, full = host.light_and_full(flow)
    assert {py for _call, py in light.python()} == {"0"}, light.lines
    assert light.answers() == full.answers()
    assert "C_FindObjects rv=0x0 count=0" in light.answers()


def test_a_key_labelled_since_the_last_run_is_found_as_on_the_full_path(host, api, labelled):
    flow = label_sign_flow("oneshot team")
    host.run(flow)
    api.expect(204, "PUT", f"/keys/{labelled[1]}/label", {"label": "oneshot team"})
    light, full = host.run(flow), host.run(flow, full=True)
    assert light.answers() == full.answers()
    assert "C_FindObjects rv=0x0 count=2 handles=" in " ".join(light.answers())
    assert dict(light.python())["C_FindObjectsInit"] == "1", light.lines


def test_a_key_relabelled_since_the_last_run_is_not_found_as_on_the_full_path(host, api,
                                                                               labelled):
    flow = label_sign_flow("oneshot team")
    host.run(flow)
    api.expect(204, "PUT", f"/keys/{labelled[0]}/label", {"label": "elsewhere"})
    light, full = host.run(flow), host.run(flow, full=True)
    assert light.answers() == full.answers()
    assert "C_FindObjects rv=0x0 count=0" in light.answers()


def certificate_pem(api, key_id: str, name: str) -> bytes:
    """A certificate for the HSM key (signed by a throwaway key: only its bytes matter)."""
    from tests.module.test_certificate_storage import self_signed_for

    return self_signed_for(api, key_id, name).public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def certified(api):
    """An EC key with a certificate stored; deleted after."""
    key = api.generate("EC_P256", ["ECDSA_Signature"], "oneshotcert")
    api.expect(201, "PUT", f"/keys/{key}/cert", certificate_pem(api, key, "first"),
               content_type="application/x-pem-file")  # fmt: skip
    try:
        yield key
    finally:
        api.delete(key)


def cert_flow(key_id: str, *then: str) -> list[str]:
    """`pkcs11-tool --login --read-object --type cert --id`, then more steps."""
    return ["init", "slots", *SESSION_STEPS, f"cert:{key_id.encode().hex()}", "attrs", *then,
            "close", "final"]  # fmt: skip


def searches_with_python(run: Run) -> list[str]:
    return [py for name, py in run.python() if name == "C_FindObjectsInit"]


def test_a_certificate_is_read_without_an_interpreter_as_the_full_path(host, certified):
    light, full = host.light_and_full(cert_flow(certified))
    assert {py for _call, py in light.python()} == {"0"}, light.lines
    assert light.answers() == full.answers()
    assert "C_FindObjects rv=0x0 count=1 handles=" in " ".join(light.answers())


def test_a_key_without_a_certificate_has_none_without_an_interpreter(host):
    flow = ["init", "slots", *SESSION_STEPS, f"cert:{EC_ID}", "close", "final"]
    light, full = host.light_and_full(flow)
    assert {py for _call, py in light.python()} == {"0"}, light.lines
    assert light.answers() == full.answers()
    assert "C_FindObjects rv=0x0 count=0" in light.answers()


def test_a_key_found_after_its_certificate_has_its_subject_as_on_the_full_path(host,
                                                                             certified):
    """Once the certificate is known the key's objects carry its subject: the second search
    is the cold path's."""
    light, full = host.light_and_full(cert_flow(certified, f"find:{certified.encode().hex()}",
                                                "attrs"))  # fmt: skip
    assert light.answers() == full.answers()
    assert searches_with_python(light) == ["0", "1"], light.lines


def test_a_certificate_found_after_its_key_answers_as_on_the_full_path(host, certified):
    flow = ["init", "slots", *SESSION_STEPS, f"find:{certified.encode().hex()}", "attrs",
            f"cert:{certified.encode().hex()}", "attrs", "close", "final"]  # fmt: skip
    light, full = host.light_and_full(flow)
    assert light.answers() == full.answers()
    assert searches_with_python(light) == ["0", "1"], light.lines


def test_a_certificate_replaced_since_the_last_run_is_read_again_as_on_the_full_path(
        host, api, certified):  # fmt: skip
    flow = cert_flow(certified)
    host.run(flow)
    api.expect(204, "DELETE", f"/keys/{certified}/cert")
    api.expect(201, "PUT", f"/keys/{certified}/cert", certificate_pem(api, certified, "second"),
               content_type="application/x-pem-file")  # fmt: skip
    light, full = host.run(flow), host.run(flow, full=True)
    assert light.answers() == full.answers()
    assert searches_with_python(light) == ["1"], light.lines


def test_a_signature_needs_no_interpreter_though_every_one_changes_the_keys_answer(host):
    """Each signature counts in the key's `operations`, which the record leaves out: the third
    process still finds the key recorded by the first."""
    flow = ["init", "slots", *SESSION_STEPS, f"find:{RSA_ID}", "sign:rsa", "close", "final"]
    runs = [host.run(flow) for _ in range(3)]
    assert [py for _call, py in runs[2].python()] == ["0"] * len(runs[2].python()), runs[2].lines
    assert runs[2].answers() == host.run(flow, full=True).answers()


def test_a_damaged_record_is_not_used_and_is_written_again(host):
    flow = ["init", "slots", *SESSION_STEPS, f"find:{EC_ID}", "sign:ecdsa", "close", "final"]
    host.run(flow)
    (record,) = Path(host.cache).rglob(f"*.key-0-{EC_ID}")
    data = bytearray(record.read_bytes())
    data[len(data) // 2] ^= 1
    record.write_bytes(bytes(data))
    damaged = host.run(flow)
    assert dict(damaged.python())["C_FindObjectsInit"] == "1", damaged.lines
    again = host.run(flow)
    assert {py for _call, py in again.python()} == {"0"}, again.lines
    assert [re.sub(r"signature=\w+", "", a) for a in damaged.answers()] == \
        [re.sub(r"signature=\w+", "", a) for a in again.answers()]


def test_a_record_naming_no_valid_key_id_is_not_used(host):
    """The key ID goes into a request path: one that is not a NetHSM key ID (here with a query
    the HSM ignores, so its answer is the recorded one), though intact and checksummed, is a
    record not to use."""
    flow = ["init", "slots", *SESSION_STEPS, f"find:{EC_ID}", "close", "final"]
    host.run(flow)
    (record,) = Path(host.cache).rglob(f"*.key-0-{EC_ID}")
    key_id = struct.pack("<I", len(b"ecp256")) + b"ecp256"
    data = record.read_bytes()[:-4].replace(key_id, struct.pack("<I", 8) + b"ecp256?x", 1)
    record.write_bytes(data + struct.pack("<I", zlib.crc32(data)))
    edited = host.run(flow)
    assert dict(edited.python())["C_FindObjectsInit"] == "1", edited.lines
    assert edited.answers() == host.run(flow, full=True).answers()


def test_a_failure_before_python_starts_is_logged_once_it_has(oneshot_host, module_path, hsm,
                                                              tmp_path):
    """Light mode logs nothing itself: a call whose failure the module logs (here the policy
    refusing a mechanism at C_SignInit) answers as the full path, then Python starts and
    writes the line."""
    with open(hsm.config_path) as f:
        cfg = yaml.safe_load(f)
    cfg.update(log_level="Warn", log_file="-",
               policy={"allowed_mechanisms": ["CKM_RSA_PKCS", "CKM_SHA256_RSA_PKCS"]})
    cfg["slots"][0]["operator"].pop("password", None)
    path = tmp_path / "policy.conf"
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    time.sleep(snapshot.RACY_SECONDS * 2)
    host = Host(oneshot_host, module_path, str(path), str(tmp_path / "cache"))
    flow = ["init", "slots", *SESSION_STEPS, f"find:{EC_ID}", "sign:ecdsa", "close", "final"]
    light, full = host.light_and_full(flow)
    calls = dict(light.python())
    assert calls["C_FindObjectsInit"] == "0" and calls["C_SignInit"] == "1", light.lines
    assert "C_SignInit rv=0x70" in light.answers()  # CKR_MECHANISM_INVALID
    assert light.answers() == full.answers()
    assert light.log.count("allowed_mechanisms") == full.log.count("allowed_mechanisms") == 1


def test_an_absent_token_is_reported_as_on_the_full_path(
    oneshot_host, module_path, hsm, tmp_path
):
    with open(hsm.config_path) as f:
        instance = yaml.safe_load(f)["slots"][0]["instances"][0]
    config = write_config(hsm, tmp_path / "absent.conf",
                          instances=[{**instance, "url": "https://127.0.0.1:1/api/v1"}],
                          retries={"count": 0, "delay_seconds": 0})  # fmt: skip
    host = Host(oneshot_host, module_path, config, str(tmp_path / "cache"))
    light, full = host.light_and_full(sign_flow(EC_ID, "ecdsa"))
    assert light.answers() == full.answers()
    assert "C_OpenSession rv=0xe0 session=0" in light.answers()  # CKR_TOKEN_NOT_PRESENT


def test_a_forked_child_answers_as_on_the_full_path(host):
    # The child calls before its own C_Initialize (not initialised), then signs; the parent's
    # state is untouched by the child's.
    flow = ["init", "slots", "token", "fork", "info", "init", "slots", "token", *SESSION_STEPS,
            f"find:{RSA_ID}", "sign:rsa", "close", "final", "parent", "token", "open",
            "close", "final"]  # fmt: skip
    light, full = host.light_and_full(flow)
    assert light.answers() == full.answers()
    assert "child C_GetInfo rv=0x190" in light.answers()  # CKR_CRYPTOKI_NOT_INITIALIZED
    assert "child_exit status=0" in light.answers()
    assert re.search(r"^child C_Sign rv=0x0 len=256", "\n".join(light.answers()), re.M)


def test_a_child_forked_with_a_session_open_starts_without_it(host):
    """The parent's sessions are in the ABI's table, opened by light mode's compiled code: the
    child's C_Initialize starts from none, and the parent's stays open."""
    flow = ["init", "slots", "token", "open", "fork", "init", "slots", "token", "open", "token",
            "close", "final", "parent", "token", "close", "token", "final"]  # fmt: skip
    light, full = host.light_and_full(flow)
    assert light.answers() == full.answers()
    assert "child_exit status=0" in light.answers()
    assert {py for _call, py in light.python()} == {"0"}, light.lines


def test_four_threads_signing_answer_as_on_the_full_path(host):
    flow = ["init", "slots", *SESSION_STEPS, "threads:4", "open", f"find:{RSA_ID}", "attrs",
            "sign:rsa", "close", "join", "logout", "close", "final"]  # fmt: skip
    light, full = host.light_and_full(flow)
    assert thread_blocks(light) == thread_blocks(full)
    main, threads = thread_blocks(light)
    assert len(threads) == 4
    assert all(any(line.startswith("C_Sign rv=0x0 len=256") for line in t) for t in threads)


# -- (c) a changed configuration or environment is noticed ------------------------------------


def test_a_changed_config_file_is_read_again(oneshot_host, module_path, hsm, tmp_path):
    path = tmp_path / "changing.conf"
    host = Host(oneshot_host, module_path, write_config(hsm, path), str(tmp_path / "cache"))
    flow = sign_flow(RSA_ID, "rsa")
    before = host.light_and_full(flow)[0]
    write_config(hsm, path, label="relabelled")
    after, full = host.run(flow), host.run(flow, full=True)
    assert after.answers() == full.answers()
    assert after.answers() != before.answers()
    assert b"relabelled".hex() in " ".join(after.answers())


def test_an_emptied_password_variable_is_noticed(oneshot_host, module_path, hsm, tmp_path):
    config = write_config(hsm, tmp_path / "env.conf",
                          operator={"username": "operator",
                                    "password": "env:ONESHOT_OPERATOR_PASSWORD"})  # fmt: skip
    host = Host(oneshot_host, module_path, config, str(tmp_path / "cache"))
    flow = sign_flow(RSA_ID, "rsa")
    set_ = host.light_and_full(flow, ONESHOT_OPERATOR_PASSWORD=OPERATOR_PIN)[0]
    after = host.run(flow, ONESHOT_OPERATOR_PASSWORD="")
    full = host.run(flow, full=True, ONESHOT_OPERATOR_PASSWORD="")
    assert after.answers() == full.answers()
    # With the password in the environment no login is required; without, it is.
    assert token_flags(after) & CKF_LOGIN_REQUIRED
    assert not token_flags(set_) & CKF_LOGIN_REQUIRED


CKF_LOGIN_REQUIRED = 0x4


def token_flags(run: Run) -> int:
    """CK_TOKEN_INFO.flags (after label, manufacturerID, model, serialNumber: offset 96)."""
    line = next(line for line in run.answers() if line.startswith("C_GetTokenInfo rv=0x0"))
    raw = bytes.fromhex(re.search(r"token=([0-9a-f]+)", line).group(1))
    return int.from_bytes(raw[96:104], "little")


# -- (d) nothing recorded holds a secret ------------------------------------------------------


def test_no_recorded_file_holds_a_pin_or_passphrase(host, api):
    for pin in (OPERATOR_PIN, WRONG_PIN):
        for key_id, mech in ((EC_ID, "ecdsa"), (RSA_ID, "rsa")):
            host.run(sign_flow(key_id, mech, pin))
    files = [p for p in Path(host.cache).rglob("*") if p.is_file()]
    assert files, "nothing was recorded"
    secrets = [
        form
        for secret in (OPERATOR_PIN, WRONG_PIN, ADMIN_PASSPHRASE)
        for form in (secret.encode(), secret.encode().hex().encode(),
                     base64.b64encode(f"operator:{secret}".encode()),
                     base64.b64encode(secret.encode()))  # fmt: skip
    ]
    for path in files:
        data = path.read_bytes()
        assert [s for s in secrets if s in data] == [], path
        assert os.stat(path).st_mode & 0o077 == 0, path
