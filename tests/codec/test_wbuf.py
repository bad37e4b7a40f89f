"""wbuf: inline storage, growth to the heap, base64 appends, idempotent free."""

import base64
import json
import random

import _codec_harness as h


def test_inline_size_matches_contract():
    assert h.WBUF_INLINE == 512


def test_small_body_stays_inline():
    message = bytes(range(32))
    data, on_heap, cap = h.wbuf_build(
        [("str", b'{"mode":"ECDSA","message":"'), ("b64", message), ("raw", b'"}')]
    )
    assert not on_heap and cap == 512
    assert json.loads(data) == {"mode": "ECDSA", "message": base64.b64encode(message).decode()}


def test_exactly_full_stays_inline():
    data, on_heap, cap = h.wbuf_build([("raw", b"x" * 500), ("raw", b"y" * 12)])
    assert data == b"x" * 500 + b"y" * 12
    assert not on_heap and cap == 512


def test_one_past_inline_moves_to_heap():
    data, on_heap, cap = h.wbuf_build([("raw", b"x" * 512), ("raw", b"y")])
    assert data == b"x" * 512 + b"y"
    assert on_heap and cap >= 513


def test_base64_crossing_the_inline_boundary():
    message = random.Random(1).randbytes(1000)
    data, on_heap, _ = h.wbuf_build([("raw", b"p" * 300), ("b64", message)])
    assert data == b"p" * 300 + base64.b64encode(message)
    assert on_heap


def test_many_appends_grow_repeatedly():
    rng = random.Random(2)
    pieces, expected = [], b""
    for i in range(400):
        kind = ("raw", "str", "b64")[i % 3]
        chunk = rng.randbytes(rng.randrange(0, 90))
        if kind == "str":
            chunk = chunk.replace(b"\0", b"")
        pieces.append((kind, chunk))
        expected += base64.b64encode(chunk) if kind == "b64" else chunk
    data, on_heap, cap = h.wbuf_build(pieces)
    assert data == expected
    assert on_heap and cap >= len(expected)


def test_large_single_append():
    blob = random.Random(3).randbytes(1 << 20)
    data, on_heap, _ = h.wbuf_build([("raw", b"{"), ("b64", blob), ("raw", b"}")])
    assert data == b"{" + base64.b64encode(blob) + b"}"
    assert on_heap


def test_empty_put_with_null_pointer():
    assert h.wbuf_put_null_empty() == (0, 0)


def test_empty_buffer():
    assert h.wbuf_build([]) == (b"", False, 512)
