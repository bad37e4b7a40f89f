"""json_get_string / json_get_number / json_escape / json_unescape against Python's json."""

import json

import _codec_harness as h
import pytest
from hypothesis import given
from hypothesis import strategies as st

SIG = (
    "MEUCIQDx3h5Gf/8+Kq2Zr0yS1n4qgE5bQh4vWcVJ7zq1r6T5xQIgQ2a9c3ZR1m0p8L4o"
    "+Kf7d2sWb1n4jX0y6eTz5vA3k2E="
)
MISSING, MALFORMED = -1, -2


def get(doc, key=b"signature"):
    return h.json_get_string(doc.encode() if isinstance(doc, str) else doc, key)


@pytest.mark.parametrize(
    "doc",
    [
        '{"signature":"%s"}' % SIG,
        '{"signature": "%s"}\n' % SIG,
        '  {\r\n\t"signature" :\t"%s" \r\n}  ' % SIG,
        '{"id":"k1","signature":"%s","meta":{"signature":"no"}}' % SIG,
        '{"meta":{"signature":"no","list":[1,2,{"signature":"no"}]},"signature":"%s"}' % SIG,
        '{"a":[],"b":{},"c":[[[]]],"d":-0.5e+10,"e":true,"f":false,"g":null,"signature":"%s"}'
        % SIG,
        '{"note":"\\"signature\\":\\"no\\"","signature":"%s"}' % SIG,
        '{"x":"\\\\","signature":"%s"}' % SIG,
        '{"sign\\u0061ture":"%s"}' % SIG,
        '{"\\u0073\\u0069\\u0067\\u006e\\u0061\\u0074\\u0075\\u0072\\u0065":"%s"}' % SIG,
    ],
)
def test_finds_signature(doc):
    rc, value, offset = get(doc)
    assert rc == 0 and value == SIG.encode()
    assert doc.encode()[offset : offset + len(value)] == value  # points into the document


def test_raw_content_is_returned_escaped():
    doc = b'{"message":"a\\"b\\\\c\\/d\\u00e9"}'
    rc, value, _ = get(doc, b"message")
    assert rc == 0 and value == b'a\\"b\\\\c\\/d\\u00e9'
    assert h.json_unescape(value, 100) == 'a"b\\c/d\u00e9'.encode()


def test_empty_string_value():
    assert get('{"signature":""}')[:2] == (0, b"")


@pytest.mark.parametrize(
    "doc",
    [
        "{}",
        '{"other":"x"}',
        '{"meta":{"signature":"x"}}',  # nested object
        '{"list":["signature","x"]}',  # inside an array
        '{"note":"signature"}',  # as a value
        '{"note":"{\\"signature\\":\\"x\\"}"}',  # inside another string
        '{"signature ":"x"}',
        '{"Signature":"x"}',
        '{"signatures":"x"}',
        '{"signature":123}',  # not a string
        '{"signature":null}',
        '{"signature":{"value":"x"}}',
        '{"signature":["x"]}',
        '{"signature":true}',
    ],
)
def test_absent_or_not_a_string(doc):
    assert get(doc)[0] == MISSING


@pytest.mark.parametrize(
    "doc",
    [
        b"",
        b"   ",
        b'"signature"',
        b'["signature","x"]',
        b"null",
        b'{"signature":"x"}{"signature":"y"}',  # two documents
        b'{"signature":"x"} x',
        b'{"signature":"x",}',  # trailing comma
        b'{,"signature":"x"}',
        b'{"signature" "x"}',
        b'{"signature":"x" "a":1}',
        b'{signature:"x"}',
        b"{'signature':'x'}",
        b'{"signature":"x\ny"}',  # raw control character
        b'{"signature":"\\x"}',  # bad escape
        b'{"signature":"\\u12G4"}',
        b'{"signature":"x","a":01}',  # bad numbers
        b'{"signature":"x","a":1.}',
        b'{"signature":"x","a":.5}',
        b'{"signature":"x","a":1e}',
        b'{"signature":"x","a":-}',
        b'{"signature":"x","a":+1}',
        b'{"signature":"x","a":NaN}',
        b'{"signature":"x","a":tru}',
        b'{"signature":"x","a":[1,]}',
        b'{"signature":"x","a":[1 2]}',
        b'{"signature":"x","a":{"b"}}',
        b'{"signature":"x","a":{"b":1,}}',
        b'{"signature":"x","a":[}',
        b'{"signature":"x","a":{]}',
        b'{"signature":"x","a":[1]]}',
        b'{"signature":"x","signature":"y"}',  # duplicate key: ambiguous
        b'{"signature":"x","sign\\u0061ture":1}',
    ],
)
def test_malformed(doc):
    assert get(doc)[0] == MALFORMED


@pytest.mark.parametrize(
    "doc",
    [
        '{"signature":"%s"}' % SIG,
        '{"key":{"a":[1,2.5,"x\\"y"],"b":null},"signature":"%s","tail":[true,false]}' % SIG,
    ],
)
def test_every_truncation_is_malformed(doc):
    data = doc.encode()
    for cut in range(len(data)):
        assert get(data[:cut])[0] == MALFORMED, data[:cut]


def test_nesting_limit():
    deep = lambda d: '{"signature":"x","a":%s}' % ("[" * d + "]" * d)  # noqa: E731
    assert get(deep(256))[0] == 0
    assert get(deep(257))[0] == MALFORMED
    assert get(deep(100_000))[0] == MALFORMED  # no recursion, no crash


# Random JSON documents (unique keys) checked against Python's parser.
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
values = st.recursive(
    scalars,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=20,
)
keys = st.sampled_from(
    ["signature", "sig", "signature2", "", "é", "\u2028", "\U0001f600"]
) | st.text(max_size=6)


@given(
    doc=st.dictionaries(keys, values, max_size=6),
    key=st.sampled_from(["signature", "sig", "é", "\U0001f600", ""]),
    ensure_ascii=st.booleans(),
    indent=st.sampled_from([None, 0, 2, "\t"]),
)
def test_against_python_json(doc, key, ensure_ascii, indent):
    text = json.dumps(doc, ensure_ascii=ensure_ascii, indent=indent).encode()
    rc, value, _ = h.json_get_string(text, key.encode())
    if isinstance(doc.get(key), str):
        assert rc == 0
        assert json.loads(b'"' + value + b'"') == doc[key]
        assert h.json_unescape(value, len(value)) == doc[key].encode("utf-8", "surrogatepass")
    else:
        assert rc == MISSING


def _python_verdict(text: bytes, key: str):
    """-2/-1/value as json_get_string must see it, using Python's json as the reference."""
    seen = []

    def pairs(items):
        seen.append([k for k, _ in items])
        return dict(items)

    def reject(_):
        raise ValueError

    try:
        doc = json.loads(text, object_pairs_hook=pairs, parse_constant=reject)
    except (ValueError, RecursionError):
        return MALFORMED
    if not isinstance(doc, dict) or seen[-1].count(key) > 1:
        return MALFORMED
    return doc[key] if isinstance(doc.get(key), str) else MISSING


BASE = b'{"a":[1,-2.5e3,{"signature":"n"}],"signature":"MEUC\\"x\\u00e9","b":{"c":null,"d":true}}'
ASCII = [bytes([c]) for c in range(0x20, 0x7F)] + [b"\t", b"\n", b"\x01"]


@given(
    edits=st.lists(
        st.tuples(
            st.sampled_from(["insert", "delete", "replace"]),
            st.integers(0, len(BASE)),
            st.sampled_from(ASCII),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_mutations_against_python_json(edits):
    text = bytearray(BASE)
    for op, pos, ch in edits:
        pos = min(pos, len(text))
        if op == "insert":
            text[pos:pos] = ch
        elif pos < len(text):
            text[pos : pos + 1] = ch if op == "replace" else b""
    text = bytes(text)
    expected = _python_verdict(text, "signature")
    rc, value, _ = h.json_get_string(text, b"signature")
    if isinstance(expected, str):
        assert rc == 0 and json.loads(b'"' + value + b'"') == expected
    else:
        assert rc == expected, text


# --- json_escape / json_unescape


@pytest.mark.parametrize(
    "raw, escaped",
    [
        (b"", b""),
        (b"plain", b"plain"),
        (b'"', b'\\"'),
        (b"\\", b"\\\\"),
        (b"/", b"/"),
        (b"\b\f\n\r\t", b"\\b\\f\\n\\r\\t"),
        (b"\x00\x01\x1f", b"\\u0000\\u0001\\u001f"),
        (b"\x7f", b"\x7f"),
        ("é€😀".encode(), "é€😀".encode()),
    ],
)
def test_escape_table(raw, escaped):
    assert h.json_escape(raw, len(escaped)) == escaped
    if escaped:
        assert h.json_escape(raw, len(escaped) - 1) == -1
    assert h.json_unescape(escaped, len(raw)) == raw


@given(st.text())
def test_escape_is_json(text):
    raw = text.encode("utf-8", "surrogatepass")
    escaped = h.json_escape(raw, 6 * len(raw))
    assert json.loads(b'"' + escaped + b'"') == text


@given(st.binary())
def test_escape_unescape_round_trip(raw):
    escaped = h.json_escape(raw, 6 * len(raw))
    assert h.json_unescape(escaped, len(raw)) == raw


@given(st.text())
def test_unescape_python_ascii_output(text):
    escaped = json.dumps(text, ensure_ascii=True)[1:-1].encode()
    try:
        expected = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates have no UTF-8 form
        assert h.json_unescape(escaped, 4 * len(escaped)) == -1
    else:
        assert h.json_unescape(escaped, len(expected)) == expected
        if expected:
            assert h.json_unescape(escaped, len(expected) - 1) == -2


@pytest.mark.parametrize(
    "bad",
    [
        b"\\",
        b"\\x",
        b"\\u12",
        b"\\u12g4",
        b'"',
        b"\n",
        b"\\ud800",
        b"\\ud800x",
        b"\\ud800\\u0041",
        b"\\udc00",
    ],
)
def test_unescape_rejects(bad):
    assert h.json_unescape(bad, 64) == -1


@pytest.mark.parametrize(
    ("doc", "value"),
    [
        ('{"operations":242}', b"242"),
        ('{"a":{"operations":1},"operations" : -0.5e+10 ,"b":[1]}', b"-0.5e+10"),
        ('{"operati\\u006fns":0}', b"0"),
    ],
)
def test_finds_a_top_level_number(doc, value):
    rc, found, offset = h.json_get_number(doc.encode(), b"operations")
    assert (rc, found) == (0, value)
    assert doc.encode()[offset : offset + len(value)] == value


@pytest.mark.parametrize(
    ("doc", "rc"),
    [
        ('{"operations":"242"}', MISSING),
        ('{"operations":[1]}', MISSING),
        ('{"operations":null}', MISSING),
        ('{"a":{"operations":1}}', MISSING),
        ('{"operations":1,"operations":2}', MALFORMED),
        ('{"operations":1', MALFORMED),
        ('{"operations":01}', MALFORMED),
    ],
)
def test_a_number_member_that_is_absent_or_not_a_number_is_not_found(doc, rc):
    assert h.json_get_number(doc.encode(), b"operations")[0] == rc
