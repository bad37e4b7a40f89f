"""The snapshot format, one definition on both sides: the loader's C reader (snapshot.c) accepts
exactly what the Python writer (p11fast/snapshot.py) writes, and refuses, rather than misreads,
a snapshot altered in any field.

Snapshots are written here by snapshot.write itself, in this process, with the host's
environment, for several configurations; the C host (light_host.c) then says whether light mode
answered (no interpreter) and with which bytes. An altered snapshot (its CRC made right again,
so that the field's own check is what refuses it) must send C_Initialize to Python, whose
answers are the module's.
"""

from __future__ import annotations

import os
import re
import struct
import sysconfig
import time
from binascii import crc32

import pytest
import yaml
from p11fast._abi import pool_spec

import loader_build
from p11fast import config as p11config
from p11fast import lightmode, snapshot
from p11fast.mechanisms import BY_NAME
from tests.hosts import host_env
from tests.module.test_light_mode import answers, run, step, write_config

CKF_TOKEN_PRESENT = 1
MECHANISM_ENTRY = 8 + 24  # CK_MECHANISM_TYPE as u64, CK_MECHANISM_INFO
SLOT_FLAGS = slice(96, 104)  # CK_SLOT_INFO.flags: after slotDescription[64], manufacturerID[32]


@pytest.fixture(scope="module")
def light_host(tmp_path_factory) -> str:
    from tests.module.test_c_host import build_host

    return build_host(tmp_path_factory.mktemp("format"), "light_host")


def test_the_loaders_header_is_rendered_from_lightmode_py():
    with open(loader_build.HEADER) as f:
        assert f.read() == loader_build.render()


def multi_config(path, hsm, slots: list[dict], **top) -> str:
    """hsm's configuration with `slots`: each a change to a copy of its first slot (None
    removes a key), and `top`'s top-level keys."""
    write_config(path, hsm)
    with open(path) as f:
        cfg = yaml.safe_load(f)
    cfg["slots"] = [{key: value for key, value in {**cfg["slots"][0], **change}.items()
                     if value is not None} for change in slots]  # fmt: skip
    cfg.update(top)
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, allow_unicode=True)
    time.sleep(snapshot.RACY_SECONDS * 2)
    return str(path)


def configurations(hsm) -> dict[str, tuple[list[dict], dict]]:
    """Each: the slots (multi_config's changes) and the top-level keys."""
    with open(hsm.config_path) as f:
        first = yaml.safe_load(f)["slots"][0]
    instance, operator = first["instances"][0], first["operator"]
    nobody = {**instance, "url": "https://127.0.0.1:1/api/v1"}
    longest = {**operator, "username": "n" * lightmode.MAX_USERNAME_BYTES}
    return {
        "one slot": ([{}], {}),
        "three slots": ([{"label": "a"}, {"label": "b"}, {"label": "c"}], {}),
        "two instances": ([{"instances": [nobody, instance]}], {}),
        "unicode label": ([{"label": "Schlüssel ключ 鍵"}], {}),
        "longest label": ([{"label": "L" * 32}], {}),
        "no operator": ([{"label": "a", "operator": None}, {"label": "b"}], {}),
        "longest operator name": ([{"operator": longest}], {}),
        "a policy": ([{}], {"policy": {"allowed_mechanisms": ["CKM_ECDSA", "CKM_SHA256"]}}),
        "an empty policy": ([{}], {"policy": {"allowed_mechanisms": []}}),
    }


CONFIG_NAMES = ["one slot", "three slots", "two instances", "unicode label", "longest label",
                "no operator", "longest operator name", "a policy", "an empty policy"]  # fmt: skip


def hexes(line: dict, prefix: str) -> list[bytes]:
    keys = [k for k in line if re.fullmatch(prefix + r"\d+", k)]
    return [bytes.fromhex(line[k]) for k in sorted(keys, key=lambda k: int(k[len(prefix) :]))]


def users(slot) -> int:
    """The snapshot's USERS_* bits for a slot's configuration, as the ABI records them."""
    operator, admin = slot.operator, slot.administrator
    return ((lightmode.USERS_OPERATOR if operator else 0) | (lightmode.USERS_ADMIN if admin else 0)
            | (lightmode.USERS_OPERATOR_IMPLICIT if operator and operator.password else 0))


def operator_name(slot) -> bytes:
    return slot.operator.username.encode() if slot.operator else b""


def allowed(cfg) -> list[int] | None:
    """The policy's mechanisms as the ABI holds them (set_mechanism_policy)."""
    names = cfg.policy.allowed_mechanisms
    return None if names is None else [BY_NAME[name].type for name in sorted(names)]


def python_write(monkeypatch, module_path: str, config: str, cache: str, full: dict,
                 edit=lambda info, slots: (info, slots)) -> str:  # fmt: skip
    """Writes the snapshot of `config` with snapshot.write as the module would, from the full
    module's answers `full` (passed through `edit`), in the host's environment; its path."""
    for name, value in host_env(config, XDG_CACHE_HOME=cache).items():
        monkeypatch.setenv(name, value)
    for name in list(os.environ):
        if name.startswith(("P11FAST_", "P11NETHSM_")) and name != "P11FAST_CONFIG_FILE":
            monkeypatch.delenv(name)
    cfg = p11config.load()
    info = bytes.fromhex(full["info"])
    slots = []
    for i, (slot, token) in enumerate(zip(hexes(full, "slot"), hexes(full, "token"), strict=True)):
        flags = struct.unpack("<Q", slot[SLOT_FLAGS])[0] & ~CKF_TOKEN_PRESENT
        slot = slot[:96] + struct.pack("<Q", flags) + slot[104:]
        slots.append((slot, token, users(cfg.slots[i]), operator_name(cfg.slots[i]),
                      pool_spec(cfg.slots[i])))
    raw = bytes.fromhex(full.get("mechanisms", ""))  # none offered: an empty policy
    mechanisms = [(struct.unpack_from("<Q", raw, at)[0], raw[at + 8 : at + MECHANISM_ENTRY])
                  for at in range(0, len(raw), MECHANISM_ENTRY)]  # fmt: skip
    info, slots = edit(info, slots)
    package = os.path.dirname(os.path.realpath(module_path))
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    snapshot.write(cfg, None, info, slots, mechanisms, allowed(cfg),
                   [os.path.join(package, f"_abi{suffix}")])
    k = snapshot.key(package, None)
    path = os.path.join(snapshot.directory(), snapshot.file_name(k))
    assert os.path.exists(path)
    return path


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_light_mode_answers_from_what_the_python_writer_wrote(
    name, light_host, module_path, hsm, api, tmp_path, monkeypatch
):
    slots, top = configurations(hsm)[name]
    config = multi_config(tmp_path / "c.conf", hsm, slots, **top)
    cache = str(tmp_path / "cache")
    full = step(run(light_host, module_path, config, cache, "list", P11FAST_SNAPSHOT="off"), "list")
    assert full["present"] == full["count"]
    python_write(monkeypatch, module_path, config, cache, full)
    light = run(light_host, module_path, config, cache, "list")
    assert step(light, "init")["python"] == "0"
    assert step(light, "list")["python"] == "0"
    assert answers(step(light, "list")) == answers(full)


def test_light_mode_returns_the_written_bytes_exactly(
    light_host, module_path, hsm, api, tmp_path, monkeypatch
):
    """Every byte of the answers is the writer's: fields filled to their last byte, UTF-8 that
    ends exactly at a field's end, bytes no module would write."""
    config = multi_config(tmp_path / "c.conf", hsm, [{"label": "x"}, {"label": "y"}])
    cache = str(tmp_path / "cache")
    full = step(run(light_host, module_path, config, cache, "list", P11FAST_SNAPSHOT="off"), "list")
    label = "é".encode() * 16  # 32 bytes, no padding

    def edit(info, slots):
        info = info[:2] + b"M" * 32 + info[34:48] + "ключ".encode() * 4 + info[80:]
        return info, [(bytes([0x80 + i]) * 64 + slot[64:], label + token[32:], *rest)
                      for i, (slot, token, *rest) in enumerate(slots)]  # fmt: skip

    python_write(monkeypatch, module_path, config, cache, full, edit)
    light = step(run(light_host, module_path, config, cache, "list"), "list")
    assert light["python"] == "0"
    info = bytes.fromhex(light["info"])
    assert info[2:34] == b"M" * 32 and info[48:80] == "ключ".encode() * 4
    for i, (slot, token) in enumerate(
        zip(hexes(light, "slot"), hexes(light, "token"), strict=True)
    ):
        assert slot[:64] == bytes([0x80 + i]) * 64
        assert token[:32] == label
        assert token[32:] == hexes(full, "token")[i][32:]


# ---------------------------------------------------------------- altered snapshots


def fields(data: bytes) -> dict[str, int]:
    """Where each part of a snapshot begins (the layout in p11fast/snapshot.py)."""
    at = {"version": 8, "sizes": 12, "key": 28}
    p = 28 + 4 + struct.unpack_from("<I", data, 28)[0]
    at["files"] = p
    n, p = struct.unpack_from("<I", data, p)[0], p + 4
    for _ in range(n):
        at.setdefault("file_path", p)
        p += 4 + struct.unpack_from("<I", data, p)[0]
        at.setdefault("file_identity", p)
        p += 41
    at["variables"] = p
    n, p = struct.unpack_from("<I", data, p)[0], p + 4
    for _ in range(n):
        p += 4 + struct.unpack_from("<I", data, p)[0] + 1
    at["disable_threads"], at["info"] = p, p + 1
    at["nslots"] = p + 1 + struct.unpack_from("<I", data, 12)[0]
    at["slots"] = at["nslots"] + 4
    at["users"] = at["slots"] + sum(struct.unpack_from("<II", data, 16))
    at["operator"] = at["users"] + 1
    at["spec"] = at["operator"] + 4 + struct.unpack_from("<I", data, at["operator"])[0]
    at["mechanisms"] = at["spec"] + 4 + struct.unpack_from("<I", data, at["spec"])[0]
    n = struct.unpack_from("<I", data, at["mechanisms"])[0]
    at["policy"] = at["mechanisms"] + 4 + n * MECHANISM_ENTRY
    at["crc"] = len(data) - 4
    return at


def sealed(body: bytes) -> bytes:
    return body + struct.pack("<I", crc32(body))


def alterations(data: bytes) -> dict[str, bytes]:
    at, body = fields(data), data[:-4]

    def put(offset: int, value: bytes) -> bytes:
        return sealed(body[:offset] + value + body[offset + len(value) :])

    def u32(offset: int, delta: int) -> bytes:
        return put(offset, struct.pack("<I", struct.unpack_from("<I", body, offset)[0] + delta))

    def operator(name: bytes) -> bytes:
        return sealed(body[: at["operator"]] + struct.pack("<I", len(name)) + name
                      + body[at["spec"] :])  # fmt: skip

    spec_len = struct.unpack_from("<I", body, at["spec"])[0]
    operator_len = struct.unpack_from("<I", body, at["operator"])[0]
    longest_name = lightmode.MAX_USERNAME_BYTES
    return {
        "truncated in a slot": sealed(body[: at["slots"] + 10]),
        "truncated before the checksum": data[:-2],
        "one byte more": sealed(body + b"\0"),
        "wrong magic": put(0, b"P11FSNAQ"),
        "next version": u32(at["version"], 1),
        "other CK_INFO size": u32(at["sizes"], 8),
        "other CK_TOKEN_INFO size": u32(at["sizes"] + 8, -8),
        "other CK_MECHANISM_INFO size": u32(at["sizes"] + 12, 8),
        "changed key": put(at["key"] + 4, bytes([body[at["key"] + 4] ^ 1])),
        "changed config identity": u32(at["file_identity"] + 1 + 24, 1),
        "config said absent": put(at["file_identity"], b"\0"),
        "one variable more": u32(at["variables"], 1),
        "no slot": put(at["nslots"], struct.pack("<I", 0)),
        "more slots than written": u32(at["nslots"], 1),
        "over MAX_SLOTS": put(at["nslots"], struct.pack("<I", lightmode.MAX_SLOTS + 1)),
        "operator name longer than the file":
            put(at["operator"], struct.pack("<I", operator_len + 100000)),
        "operator name over MAX_USERNAME_BYTES": operator(b"n" * (longest_name + 1)),
        "operator name with a NUL": operator(b"oper\0tor"),
        "spec longer than the file": put(at["spec"], struct.pack("<I", spec_len + 1000)),
        "more mechanisms than written": u32(at["mechanisms"], 1),
        "fewer mechanisms than written": u32(at["mechanisms"], -1),
        "over MAX_MECHANISMS": put(at["mechanisms"],
                                   struct.pack("<I", lightmode.MAX_MECHANISMS + 1)),  # fmt: skip
        "no policy count": sealed(body[: at["policy"]]),
        "policy below -1": put(at["policy"], struct.pack("<i", -2)),
        "policy of one more than written": u32(at["policy"], 1),
        "policy of one fewer than written": u32(at["policy"], -1),
        "policy allowing all, then a list": put(at["policy"], struct.pack("<i", -1)),
        "policy over MAX_MECHANISMS": put(at["policy"],
                                          struct.pack("<i", lightmode.MAX_MECHANISMS + 1)),
        "bad checksum": body + struct.pack("<I", crc32(body) ^ 1),
    }


def test_an_altered_snapshot_is_refused_never_misread(
    light_host, module_path, hsm, api, tmp_path, monkeypatch
):
    config = multi_config(tmp_path / "c.conf", hsm, [{}],
                          policy={"allowed_mechanisms": ["CKM_ECDSA", "CKM_SHA256"]})
    cache = str(tmp_path / "cache")
    full = step(run(light_host, module_path, config, cache, "list", P11FAST_SNAPSHOT="off"), "list")
    path = python_write(monkeypatch, module_path, config, cache, full)
    with open(path, "rb") as f:
        good = f.read()
    at = fields(good)  # the test's reading of the layout, checked against itself
    mechanisms = struct.unpack_from("<I", good, at["mechanisms"])[0]
    assert struct.unpack_from("<I", good, at["nslots"])[0] == 1
    assert good[at["operator"] + 4 : at["spec"]] == operator_name(p11config.load().slots[0]) != b""
    assert mechanisms == int(full["mechs_count"]) > 0
    assert struct.unpack_from("<i", good, at["policy"])[0] == 2
    assert at["policy"] + 4 + 2 * 8 == at["crc"]
    assert step(run(light_host, module_path, config, cache, "list"), "init")["python"] == "0"
    for what, altered in alterations(good).items():
        with open(path, "wb") as f:
            f.write(altered)
        report = run(light_host, module_path, config, cache, "list")
        assert (what, step(report, "init")["python"]) == (what, "1")
        assert (what, answers(step(report, "list"))) == (what, answers(full))
