"""p11fast.lean: records, JSON and `os` without the standard modules that cost a cold start."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from p11fast import lean, snapshot
from p11fast.lean import Record, parse_json, to_json

REPO = Path(__file__).resolve().parents[2]


def test_parse_json():
    assert parse_json(b' {"a": [1, 2.5, "\\u00e9", null, true]}\n') == {
        "a": [1, 2.5, "é", None, True]}
    for bad in [b"", b"{", b"[1] x", b"[NaN]", b'"a\x01"']:
        with pytest.raises(ValueError):
            parse_json(bad)


# Python's JSON scanner recurses once per level; a host that raised its recursion limit (or a
# Python whose C recursion limit is high) on a thread with a small stack crashed on this.
DEEP_JSON_HOST = """
import sys, threading
from p11fast.lean import parse_json
sys.setrecursionlimit(1_000_000)
threading.stack_size(512 * 1024)
def run():
    try:
        parse_json(b"[" * 200_000 + b"]" * 200_000)
    except ValueError as e:
        print(e)
thread = threading.Thread(target=run)
thread.start()
thread.join()
"""


def test_json_nested_beyond_the_bound_is_refused_before_parsing():
    done = subprocess.run([sys.executable, "-c", DEEP_JSON_HOST], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "arrays or objects nested deeper than 256 levels"


def test_json_nested_up_to_the_bound_and_brackets_in_strings_are_parsed():
    assert parse_json(b"[" * 256 + b"]" * 256) is not None
    assert parse_json(b'{"a": "' + b"[" * 1000 + b'\\""}') == {"a": "[" * 1000 + '"'}


def test_to_json_writes_what_json_reads_back_in_ascii():
    import json

    value = {"type": "RSA", "mechanisms": ["RSA_Signature_PKCS1"], "length": 2048,
             "label": "schlüssel \"1\"\n", "private": {"primeP": "AQAB"}, "empty": []}
    encoded = to_json(value)
    assert encoded.isascii()
    assert json.loads(encoded) == value


@pytest.mark.parametrize("value", [True, None, {"length": False}, ["a", None]])
def test_to_json_refuses_values_no_request_body_holds(value):
    with pytest.raises(TypeError):
        to_json(value)


class Point(Record):
    x: int
    y: int = 0


def test_record_fields_take_their_class_defaults_and_missing_ones_are_refused():
    assert Point(x=1) == Point(x=1, y=0)
    assert repr(Point(x=1)) == "Point(x=1, y=0)"
    with pytest.raises(TypeError, match="missing field 'x'"):
        Point(y=2)


def test_record_replace_is_a_changed_copy_and_records_hash_by_value():
    p = Point(x=1)
    assert p.replace(y=5) == Point(x=1, y=5) and p == Point(x=1)
    assert {Point(x=1), Point(x=1, y=0)} == {p}
    with pytest.raises(AttributeError):
        del p.x


# --- os --------------------------------------------------------------------------------------


def test_getenv_is_os_environ_including_what_the_process_set_since_it_started(monkeypatch):
    monkeypatch.setenv("P11FAST_LEAN_TEST", "wert\u00e9")
    monkeypatch.delenv("P11FAST_LEAN_ABSENT", raising=False)
    assert lean.getenv("P11FAST_LEAN_TEST") == "wert\u00e9"
    assert lean.getenvb(b"P11FAST_LEAN_TEST") == "wert\u00e9".encode()
    assert lean.getenv("P11FAST_LEAN_ABSENT") is None
    assert lean.getenvb(b"P11FAST_LEAN_ABSENT") is None


# Before anything imports os, the environment comes from posix.environ: with a value that is
# not UTF-8 too, which os.environ holds as surrogate escapes.
WITHOUT_OS = r"""
import sys
from p11fast import lean, snapshot
assert "os" not in sys.modules
print(ascii(lean.getenv("P11FAST_LEAN_TEST")), lean.getenvb(b"P11FAST_LEAN_TEST"),
      lean.getenv("P11FAST_LEAN_ABSENT"))
import os
print(ascii(os.environ.get("P11FAST_LEAN_TEST")), os.environb.get(b"P11FAST_LEAN_TEST"),
      os.environ.get("P11FAST_LEAN_ABSENT"))
"""


def test_getenv_before_os_is_imported_is_what_os_environ_then_holds():
    env = {k: v for k, v in os.environ.items() if k != "P11FAST_LEAN_ABSENT"}
    env = {os.fsencode(k): os.fsencode(v) for k, v in env.items()}
    env[b"P11FAST_LEAN_TEST"] = b"caf\xc3\xa9 \xff"
    done = subprocess.run([sys.executable, "-S", "-c", WITHOUT_OS], cwd=REPO, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lean_line, os_line = done.stdout.splitlines()
    assert lean_line == os_line
    assert lean_line.endswith(" b'caf\\xc3\\xa9 \\xff' None")


@pytest.mark.parametrize("path", ["/a/b", "relative/name", "/etc/p11fast/p11fast.conf", "\u00e9"])
def test_fsencode_and_fsdecode_are_os_s(path):
    assert lean.fsencode(path) == os.fsencode(path)
    assert lean.fsdecode(os.fsencode(path)) == path


@pytest.mark.parametrize("head", ["", "/", "/home/u", "/home/u/", "rel", "rel//"])
def test_path_join_of_a_relative_tail_is_os_path_join(head):
    assert lean.path_join(head, ".cache") == os.path.join(head, ".cache")


@pytest.mark.parametrize("path", ["", "/", "//", "a", "/a", "/a/", "/a//b", "a/b/c", "//a//b//"])
def test_dirname_is_os_path_dirname(path):
    assert lean.dirname(path) == os.path.dirname(path)


def test_realpath_resolves_links_as_os_path_realpath(tmp_path, monkeypatch):
    (tmp_path / "real" / "deep").mkdir(parents=True)
    target = tmp_path / "real" / "deep" / "file.so"
    target.write_bytes(b"")
    (tmp_path / "abs").symlink_to(tmp_path / "real")  # absolute link to a directory
    (tmp_path / "real" / "up").symlink_to("deep/..")  # relative link holding ..
    (tmp_path / "real" / "deep" / "link.so").symlink_to("file.so")  # relative link to a file
    (tmp_path / "chain").symlink_to("abs/up")  # a link to a link
    monkeypatch.chdir(tmp_path / "real")
    for path in [str(target), f"{tmp_path}/abs/deep/link.so", f"{tmp_path}/chain/deep/link.so",
                 f"{tmp_path}/./abs/../abs/deep//file.so", "deep/link.so", "../chain/deep"]:
        assert lean.realpath(path) == os.path.realpath(path), path


# What C_Initialize does in Python with a settled snapshot, as a one-shot process runs it.
COLD_PATH = r"""
import sys
import p11fast._abi
from p11fast import config, log, snapshot
from p11fast._abi import pool_spec
from p11fast.model.inventory import Inventory
cfg = config.load()
logger = log.setup(cfg)
assert snapshot.wanted(cfg, logger)
slots = [(b"s" * 104, b"t" * 208, 1, b"operator", pool_spec(cfg.slots[0]))]
for _ in range(2):  # the first writes the file, the second finds it unchanged
    record = snapshot.write(cfg, None, b"i" * 88, slots, [(1, b"m" * 24)], None, [sys.argv[1]])
record.note(0, True)
print("os" in sys.modules)
"""


def test_the_cold_path_does_without_os_once_the_snapshot_exists(tmp_path):
    conf = tmp_path / "p11fast.conf"
    conf.write_text("slots:\n  - label: S\n"
                    "    operator: {username: operator, password: 'env:P11FAST_TEST_PASSWORD'}\n"
                    "    instances:\n"
                    "      - {url: 'https://hsm.example/api/v1', cacert: '" + str(conf) + "'}\n")
    time.sleep(snapshot.RACY_SECONDS * 2)  # a file changed this recently is not recorded
    env = {**os.environ, "P11FAST_CONFIG_FILE": str(conf), "XDG_CACHE_HOME": str(tmp_path),
           "P11FAST_TEST_PASSWORD": "secret-value"}
    env.pop("P11FAST_SNAPSHOT", None)
    (tmp_path / "p11fast").mkdir(mode=0o700)
    done = subprocess.run([sys.executable, "-S", "-c", COLD_PATH, str(conf)], cwd=REPO, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False"]
