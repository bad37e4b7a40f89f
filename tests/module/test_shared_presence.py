"""Token presence shared between processes: a present answer one process got from the HSM is
taken by the next process with the same snapshot for the rest of PRESENCE_TTL (light mode:
p11fast/loader/presence.c; the ABI: p11fast.snapshot.SharedPresence), so a `pkcs11-tool -L`
loop does not open a TLS connection and ask GET /health/ready once per process.

The HSM is reached through a TCP proxy that counts connections: a process that takes the
shared answer connects to nothing. Each test has its own snapshot directory.
"""

from __future__ import annotations

import os
import struct
import subprocess
import time
from binascii import crc32
from dataclasses import dataclass

import pytest
import yaml

from p11fast import lightmode
from tests.hosts import host_env
from tests.module.test_light_mode import answers, run, snapshot_path, step, write_config
from tests.reliability.netutil import TcpProxy

TTL = lightmode.PRESENCE_TTL_NS / 1e9
NOBODY = "https://127.0.0.1:1/api/v1"


@pytest.fixture(scope="module")
def light_host(tmp_path_factory) -> str:
    from tests.module.test_c_host import build_host

    return build_host(tmp_path_factory.mktemp("presence"), "light_host")


@pytest.fixture
def proxy(hsm):
    front = TcpProxy(hsm.port)
    yield front
    front.close()


def proxied_config(path, hsm, url: str, **changes) -> str:
    with open(hsm.config_path) as f:
        instance = yaml.safe_load(f)["slots"][0]["instances"][0]
    retries = {"count": 0, "delay_seconds": 0}
    return write_config(path, hsm, instances=[{**instance, "url": url}], retries=retries, **changes)


@pytest.fixture
def config(hsm, api, proxy, tmp_path) -> str:
    return proxied_config(tmp_path / "p.conf", hsm, f"https://127.0.0.1:{proxy.port}/api/v1")


@pytest.fixture
def cache(tmp_path) -> str:
    return str(tmp_path / "cache")


def record_path(cache: str) -> str:
    return snapshot_path(cache) + lightmode.PRESENCE_SUFFIX


def recorded(cache: str) -> list[int]:
    """The record's times per slot (the layout in p11fast/snapshot.py)."""
    with open(record_path(cache), "rb") as f:
        data = f.read()
    head = len(lightmode.PRESENCE_MAGIC) + 16
    n = struct.unpack_from("<I", data, head - 4)[0]
    return list(struct.unpack_from(f"<{n}q", data, head))


def listing(light_host, module_path, config, cache) -> dict:
    report = run(light_host, module_path, config, cache, "list")
    line = step(report, "list")
    assert step(report, "init")["python"] == "0" and line["python"] == "0", report
    return line


def settled(light_host, module_path, config, cache) -> None:
    """A snapshot written, and no fresh presence answer recorded."""
    run(light_host, module_path, config, cache, "list")
    time.sleep(TTL * 1.2)


@dataclass
class Pair:
    """Two listings, the second within PRESENCE_TTL of the first's live check."""

    first: dict
    second: dict
    checked_at: int  # the first's recorded time
    connections: int  # accepted by the proxy before the second


def two_listings_within_the_ttl(light_host, module_path, config, cache, proxy) -> Pair:
    settled(light_host, module_path, config, cache)
    for _ in range(5):  # a pair that ran within one TTL (a loaded machine may need more)
        first = listing(light_host, module_path, config, cache)
        (checked_at,) = recorded(cache)
        connections = proxy.accepted
        second = listing(light_host, module_path, config, cache)
        if time.time_ns() - checked_at < lightmode.PRESENCE_TTL_NS:
            return Pair(first, second, checked_at, connections)
        time.sleep(TTL * 1.2)
    pytest.fail("no two listings ran within one PRESENCE_TTL")


def test_a_listing_within_the_ttl_of_another_connects_to_nothing(
    light_host, module_path, config, cache, proxy
):
    pair = two_listings_within_the_ttl(light_host, module_path, config, cache, proxy)
    assert pair.connections > 0
    assert proxy.accepted == pair.connections
    assert pair.second["present"] == "1"
    assert answers(pair.second) == answers(pair.first)
    assert recorded(cache) == [pair.checked_at]  # taken, not written again


def test_a_listing_that_takes_the_shared_answer_loads_neither_libpython_nor_the_abi(
    light_host, module_path, config, cache, proxy
):
    pair = two_listings_within_the_ttl(light_host, module_path, config, cache, proxy)
    assert pair.first["loaded"] == "libpython,abi"  # it asked the HSM live
    assert pair.second["loaded"] == "none"
    assert pair.second["present"] == "1"


def test_after_the_ttl_a_listing_asks_the_hsm_again(light_host, module_path, config, cache, proxy):
    settled(light_host, module_path, config, cache)
    listing(light_host, module_path, config, cache)
    (before,) = recorded(cache)
    connections = proxy.accepted
    time.sleep(TTL * 1.2)
    assert listing(light_host, module_path, config, cache)["present"] == "1"
    assert proxy.accepted > connections
    (after,) = recorded(cache)
    assert after > before


def test_an_absent_token_is_not_recorded(light_host, module_path, hsm, api, tmp_path, cache):
    config = proxied_config(tmp_path / "absent.conf", hsm, NOBODY)
    run(light_host, module_path, config, cache, "list")
    report = run(light_host, module_path, config, cache, "list")
    assert step(report, "init")["python"] == "0"
    assert step(report, "list")["present"] == "0"
    assert not os.path.exists(record_path(cache))


def test_an_absent_answer_forgets_a_present_one(
    light_host, module_path, config, cache, proxy, tmp_path
):
    settled(light_host, module_path, config, cache)
    listing(light_host, module_path, config, cache)
    assert recorded(cache)[0] > 0
    proxy.upstream_port = 1  # the HSM is gone: connections are cut at once
    proxy.drop_all()
    time.sleep(TTL * 1.2)
    report = run(light_host, module_path, config, cache, "list")
    assert step(report, "list")["present"] == "0"
    assert recorded(cache) == [0]


def test_the_record_is_private_and_holds_only_times(light_host, module_path, hsm, config, cache):
    settled(light_host, module_path, config, cache)
    listing(light_host, module_path, config, cache)
    path = record_path(cache)
    assert os.stat(path).st_mode & 0o777 == 0o600
    with open(path, "rb") as f:
        data = f.read()
    # magic, version, snapshot CRC-32 and length, slot count, one time, CRC-32: nothing else
    assert len(data) == len(lightmode.PRESENCE_MAGIC) + 16 + 8 + 4
    assert data.startswith(lightmode.PRESENCE_MAGIC)
    with open(hsm.config_path) as f:
        slot = yaml.safe_load(f)["slots"][0]
    for user in ("operator", "administrator"):
        assert slot[user]["password"].encode() not in data


def test_a_changed_configuration_ignores_an_old_record(
    light_host, module_path, hsm, config, cache, proxy
):
    """The instance list changes to one that does not answer: a record of the old snapshot,
    fresh or not, must not make the token present."""
    settled(light_host, module_path, config, cache)
    for _ in range(5):
        listing(light_host, module_path, config, cache)
        (checked_at,) = recorded(cache)
        old_record = record_path(cache)
        proxied_config(config, hsm, NOBODY)  # same file, new contents
        full = step(run(light_host, module_path, config, cache, "list"), "list")
        light = step(run(light_host, module_path, config, cache, "list"), "list")
        if time.time_ns() - checked_at < lightmode.PRESENCE_TTL_NS:
            break
        proxied_config(config, hsm, f"https://127.0.0.1:{proxy.port}/api/v1")
        settled(light_host, module_path, config, cache)
    else:
        pytest.fail("the changed configuration was not read within one PRESENCE_TTL")
    assert (full["present"], light["present"]) == ("0", "0")
    assert os.path.exists(old_record)  # there, and ignored


@pytest.mark.parametrize("damage", ["truncated", "byte flipped", "world-writable", "future"])
def test_a_damaged_record_is_ignored(damage, light_host, module_path, config, cache, proxy):
    settled(light_host, module_path, config, cache)
    listing(light_host, module_path, config, cache)
    path = record_path(cache)
    with open(path, "rb") as f:
        data = f.read()
    head = len(lightmode.PRESENCE_MAGIC) + 16
    if damage == "truncated":
        data = data[:-3]
    elif damage == "byte flipped":
        data = data[:head] + bytes([data[head] ^ 1]) + data[head + 1 :]
    elif damage == "future":  # a time ahead of the clock, its CRC made right
        body = data[:head] + struct.pack("<q", time.time_ns() + 3600 * 10**9)
        data = body + struct.pack("<I", crc32(body))
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o666 if damage == "world-writable" else 0o600)
    connections = proxy.accepted
    assert listing(light_host, module_path, config, cache)["present"] == "1"
    assert proxy.accepted > connections


def test_a_process_that_starts_python_takes_the_shared_answer_too(
    light_host, module_path, config, cache, proxy
):
    """The ABI reads the same record: a process promoted at C_Initialize (the mark a signing
    process leaves) answers presence without asking, within the TTL of a light listing."""
    settled(light_host, module_path, config, cache)
    for _ in range(5):
        # the mark, so the next process promotes at once
        mark = snapshot_path(cache) + lightmode.FULL_MARK_SUFFIX
        listing(light_host, module_path, config, cache)
        (checked_at,) = recorded(cache)
        with open(mark, "w") as f:
            f.write(str(lightmode.FULL_MARK_EARLY))
        report = run(light_host, module_path, config, cache, "list")
        if time.time_ns() - checked_at < lightmode.PRESENCE_TTL_NS:
            break
        time.sleep(TTL * 1.2)
    else:
        pytest.fail("no two listings ran within one PRESENCE_TTL")
    assert step(report, "init")["python"] == "1"
    assert step(report, "list")["present"] == "1"
    assert recorded(cache) == [checked_at]  # taken, not asked again and written


def test_the_light_mode_takes_what_the_full_module_recorded(
    light_host, module_path, config, cache, proxy
):
    """pkcs11-tool through the full module (no snapshot yet, so Python) records what it found,
    and a light listing within the TTL takes it: the Python writer, the C reader."""
    for _ in range(5):
        done = subprocess.run(
            ["pkcs11-tool", "--module", module_path, "-L"],
            env=host_env(config, XDG_CACHE_HOME=cache), capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        (checked_at,) = recorded(cache)
        connections = proxy.accepted
        light = listing(light_host, module_path, config, cache)
        if time.time_ns() - checked_at < lightmode.PRESENCE_TTL_NS:
            break
        os.unlink(snapshot_path(cache))  # Python again
        time.sleep(TTL * 1.2)
    else:
        pytest.fail("no two listings ran within one PRESENCE_TTL")
    assert checked_at > 0
    assert light["present"] == "1"
    assert proxy.accepted == connections
