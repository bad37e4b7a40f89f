"""Light mode: slot and token queries answered from the snapshot, without starting Python.

Each test has its own snapshot directory (XDG_CACHE_HOME) and its own copy of the HSM's
configuration at log level Warn, since a snapshot is written only by a C_Initialize that
logged nothing. The C host (light_host.c) reports whether an interpreter runs after each step.
"""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest
import yaml

from p11fast import snapshot
from p11fast.hsm.testing import running_hsm
from tests.hosts import host_env
from tests.module.conftest import OPERATOR_PIN
from tests.module.test_c_host import build_host

TOKEN_NOT_PRESENT = "0xe0"
NOT_INITIALIZED = "0x190"


@pytest.fixture(scope="module")
def light_host(tmp_path_factory) -> str:
    return build_host(tmp_path_factory.mktemp("light"), "light_host")


def write_config(path, hsm, log_file: str | None = None, **changes) -> str:
    with open(hsm.config_path) as f:
        cfg = yaml.safe_load(f)
    cfg["log_level"] = "Warn"
    if log_file is not None:
        cfg["log_file"] = log_file
    for key, value in changes.items():
        cfg["slots"][0][key] = value
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    os.chmod(path, 0o600)
    # A file changed within the last RACY_SECONDS is not trusted to identify its contents, so
    # no snapshot would be written yet.
    time.sleep(snapshot.RACY_SECONDS * 2)
    return str(path)


@pytest.fixture
def config(hsm, api, tmp_path) -> str:
    return write_config(tmp_path / "warn.conf", hsm)


@pytest.fixture
def cache(tmp_path) -> str:
    return str(tmp_path / "cache")


def run(exe: str, module_path: str, config: str, cache: str, *args: str, **env: str) -> list[dict]:
    done = subprocess.run(
        [exe, module_path, *args],
        env=host_env(config, XDG_CACHE_HOME=cache, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return [dict(re.findall(r"(\w+)=(\S+)", line)) for line in done.stdout.splitlines()]


def snapshot_path(cache: str) -> str:
    """The one snapshot in cache (the presence record and the mark sit beside it)."""
    directory = os.path.join(cache, snapshot.CACHE_DIR)
    (name,) = [n for n in os.listdir(directory) if n.startswith(snapshot.SNAPSHOT_PREFIX)
               and "." not in n]  # fmt: skip
    return os.path.join(directory, name)


def step(report: list[dict], name: str) -> dict:
    return next(line for line in report if line.get("step") == name)


def answers(line: dict) -> dict:
    return {k: v for k, v in line.items() if k not in ("step", "python", "loaded")}


def test_a_second_listing_runs_without_python(light_host, module_path, config, cache):
    first = run(light_host, module_path, config, cache, "list")
    second = run(light_host, module_path, config, cache, "list")
    assert step(first, "list")["python"] == "1"
    assert step(second, "init")["python"] == "0"
    assert step(second, "list")["python"] == "0"
    assert step(second, "finalize")["rv"] == "0x0"


def test_the_configuration_the_hsm_writes_gets_listings_without_python(
    light_host, module_path, hsm, cache
):
    """`p11fast hsm init`/`dev` write the configuration users start from (README)."""
    fresh = os.stat(hsm.config_path).st_mtime + snapshot.RACY_SECONDS * 2 - time.time()
    time.sleep(max(fresh, 0))
    run(light_host, module_path, hsm.config_path, cache, "list")
    second = run(light_host, module_path, hsm.config_path, cache, "list")
    assert step(second, "list")["python"] == "0"


def test_light_answers_are_the_modules_answers(light_host, module_path, config, cache):
    full = run(light_host, module_path, config, cache, "list", P11FAST_SNAPSHOT="off")
    run(light_host, module_path, config, cache, "list")
    light = run(light_host, module_path, config, cache, "list")
    assert step(light, "list")["python"] == "0"
    assert step(light, "list")["present"] == "1"
    assert answers(step(light, "list")) == answers(step(full, "list"))


def test_pkcs11_tool_lists_the_same_slots_in_light_mode(module_path, config, cache):
    def listing(**env: str) -> str:
        done = subprocess.run(["pkcs11-tool", "--module", module_path, "-L"],
                              env=host_env(config, XDG_CACHE_HOME=cache, **env),
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    full = listing(P11FAST_SNAPSHOT="off")
    listing()
    assert os.listdir(os.path.join(cache, "p11fast"))
    assert listing() == full


def test_an_edited_config_is_read_again(light_host, module_path, hsm, config, cache):
    run(light_host, module_path, config, cache, "list")
    write_config(config, hsm, label="renamed")
    after = step(run(light_host, module_path, config, cache, "list"), "list")
    assert after["python"] == "1"
    assert b"renamed".hex() in after["token0"]


def test_a_config_named_in_preserved_has_its_own_snapshot(
    light_host, module_path, hsm, config, tmp_path, cache
):
    other = write_config(tmp_path / "other.conf", hsm, label="other")
    for _ in range(2):
        mine = step(run(light_host, module_path, config, cache, "list"), "list")
        theirs = step(run(light_host, module_path, config, cache, "list",
                          LIGHT_HOST_RESERVED=other), "list")  # fmt: skip
    assert (mine["python"], theirs["python"]) == ("0", "0")
    assert b"other".hex() in theirs["token0"]
    assert b"other".hex() not in mine["token0"]


def test_an_info_log_level_writes_no_snapshot(light_host, module_path, hsm, tmp_path, cache):
    config = write_config(tmp_path / "info.conf", hsm)
    with open(config) as f:
        text = f.read().replace("log_level: Warn", "log_level: Info")
    with open(config, "w") as f:
        f.write(text)
    time.sleep(snapshot.RACY_SECONDS * 2)
    run(light_host, module_path, config, cache, "list")
    assert step(run(light_host, module_path, config, cache, "list"), "list")["python"] == "1"
    assert not os.path.exists(os.path.join(cache, "p11fast"))


def test_a_garbled_snapshot_is_not_used(light_host, module_path, config, cache):
    run(light_host, module_path, config, cache, "list")
    path = snapshot_path(cache)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 7)
    after = step(run(light_host, module_path, config, cache, "list"), "list")
    assert after["python"] == "1"
    assert after["present"] == "1"


def test_a_snapshot_with_any_byte_changed_is_not_used(light_host, module_path, config, cache):
    full = answers(step(run(light_host, module_path, config, cache, "list"), "list"))
    path = snapshot_path(cache)
    with open(path, "rb") as f:
        good = f.read()
    for offset in range(0, len(good), max(1, len(good) // 12)):
        with open(path, "wb") as f:
            f.write(good[:offset] + bytes([good[offset] ^ 0x5A]) + good[offset + 1 :])
        after = step(run(light_host, module_path, config, cache, "list"), "list")
        assert (offset, after["python"]) == (offset, "1")
        assert answers(after) == full


def test_the_snapshot_is_private_and_holds_no_password(light_host, module_path, hsm, config, cache):
    run(light_host, module_path, config, cache, "list")
    path = snapshot_path(cache)
    assert os.stat(path).st_mode & 0o777 == 0o600
    with open(hsm.config_path) as f:
        slot = yaml.safe_load(f)["slots"][0]
    with open(path, "rb") as f:
        data = f.read()
    for user in ("operator", "administrator"):
        assert slot[user]["password"].encode() not in data


def absent_config(hsm, tmp_path, **changes) -> str:
    with open(hsm.config_path) as f:
        instance = yaml.safe_load(f)["slots"][0]["instances"][0]
    nobody = {**instance, "url": "https://127.0.0.1:1/api/v1"}
    return write_config(tmp_path / "absent.conf", hsm, instances=[nobody],
                        retries={"count": 0, "delay_seconds": 0}, **changes)  # fmt: skip


def test_an_absent_token_is_absent_in_light_mode(light_host, module_path, hsm, tmp_path, cache):
    config = absent_config(hsm, tmp_path)
    full = step(run(light_host, module_path, config, cache, "list"), "list")
    light = run(light_host, module_path, config, cache, "list")
    assert step(light, "init")["python"] == "0"
    assert step(light, "list")["present"] == "0"
    assert step(light, "list")["token0_rv"] == TOKEN_NOT_PRESENT
    assert answers(step(light, "list")) == answers(full)


def test_a_light_process_that_finds_the_token_absent_says_why(
    light_host, module_path, hsm, tmp_path, cache
):
    log_file = tmp_path / "p11fast.log"
    config = absent_config(hsm, tmp_path, log_file=str(log_file))
    run(light_host, module_path, config, cache, "list")
    # The snapshot holds the log file's identity from before the first process wrote to it.
    log_file.unlink()
    light = run(light_host, module_path, config, cache, "list")
    # Light mode answered, then started Python so that the module could log the reason.
    assert step(light, "init")["python"] == "0"
    assert step(light, "list")["python"] == "1"
    (line,) = log_file.read_text().splitlines()
    assert line.split(": ", 1)[1].startswith(
        "WARN slot 0 (p11fast-dev): token not present: https://127.0.0.1:1/api/v1: "
    ), line


def test_signing_after_a_light_listing_starts_python(light_host, module_path, config, cache):
    run(light_host, module_path, config, cache, "list")
    report = run(light_host, module_path, config, cache, "sign", OPERATOR_PIN, "ecp256")
    assert step(report, "list")["python"] == "0"
    assert step(report, "sign") == {"step": "sign", "rv": "0x0", "python": "1"}
    assert step(report, "finalize")["rv"] == "0x0"


def test_after_two_processes_that_needed_python_the_next_starts_it_at_initialize(
    light_host, module_path, config, cache
):
    full = answers(step(run(light_host, module_path, config, cache, "list"), "list"))
    for _ in range(2):
        run(light_host, module_path, config, cache, "random")
    early = run(light_host, module_path, config, cache, "list")
    assert step(early, "init")["python"] == "1"
    assert answers(step(early, "list")) == full
    # That process needed nothing but light answers: the one after it is light again.
    assert step(run(light_host, module_path, config, cache, "list"), "init")["python"] == "0"


def test_a_listing_after_one_signing_process_stays_light(light_host, module_path, config, cache):
    """Listings and signatures alternating: each listing without Python, not promoted early
    because the process before it signed."""
    run(light_host, module_path, config, cache, "list")
    for _ in range(2):
        run(light_host, module_path, config, cache, "sign", OPERATOR_PIN, "ecp256")
        listing = run(light_host, module_path, config, cache, "list")
        assert step(listing, "init")["python"] == "0"
        assert step(listing, "list")["python"] == "0"


def test_a_process_started_early_that_needs_python_keeps_the_next_one_early(
    light_host, module_path, config, cache
):
    run(light_host, module_path, config, cache, "list")
    inits = []
    for _ in range(3):
        report = run(light_host, module_path, config, cache, "random")
        assert step(report, "random")["rv"] == "0x0"
        inits.append(step(report, "init")["python"])
    assert inits == ["0", "0", "1"]
    assert step(run(light_host, module_path, config, cache, "list"), "init")["python"] == "1"


def test_a_signing_loop_starts_python_in_its_first_process_only(
    light_host, module_path, config, cache
):
    """The first signing process records the key it finds; the next ones find it compiled, so
    none of them counts towards the mark."""
    run(light_host, module_path, config, cache, "list")
    reports = [run(light_host, module_path, config, cache, "sign", OPERATOR_PIN, "ecp256")
               for _ in range(3)]  # fmt: skip
    assert [step(r, "sign")["rv"] for r in reports] == ["0x0"] * 3
    assert [(step(r, "init")["python"], step(r, "sign")["python"]) for r in reports] == [
        ("0", "1"), ("0", "0"), ("0", "0")]


def test_a_token_gone_after_a_light_answer_is_a_slot_event(light_host, module_path, tmp_path):
    cache = str(tmp_path / "cache")
    with running_hsm(str(tmp_path / "hsm")) as hsm:
        config = write_config(tmp_path / "event.conf", hsm)
        run(light_host, module_path, config, cache, "list")
        host = subprocess.Popen(
            [light_host, module_path, "event"],
            env=host_env(config, XDG_CACHE_HOME=cache),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            host.stdout.readline()  # init
            seen = dict(re.findall(r"(\w+)=(\S+)", host.stdout.readline()))
            hsm.stop()
            out, err = host.communicate("go\n", timeout=60)
        finally:
            host.kill()
    assert (seen["present"], seen["python"]) == ("1", "0")
    event = dict(re.findall(r"(\w+)=(\S+)", out.splitlines()[0]))
    assert event == {"step": "event", "rv": "0x0", "slot": "0", "python": "1"}, err


def test_a_forked_child_initialises_again_in_light_mode(light_host, module_path, config, cache):
    run(light_host, module_path, config, cache, "list")
    report = run(light_host, module_path, config, cache, "fork")
    assert step(report, "child_before")["list_rv"] == NOT_INITIALIZED
    assert step(report, "child_init")["rv"] == "0x0"
    assert step(report, "child_after")["python"] == "0"
    assert step(report, "child_after")["present"] == "1"
    assert step(report, "child_exit")["status"] == "0"
    assert step(report, "parent")["present"] == "1"


def test_queries_racing_the_start_of_python_all_succeed(light_host, module_path, config, cache):
    run(light_host, module_path, config, cache, "list")
    report = run(light_host, module_path, config, cache, "race", "4")
    assert step(report, "init")["python"] == "0"
    assert step(report, "race") == {"step": "race", "rv": "0x0", "python": "1"}
