"""p11fast.lean: records and JSON without the standard modules that cost a cold start."""

import subprocess
import sys
from pathlib import Path

import pytest

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
