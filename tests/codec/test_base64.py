"""b64_encoded_len / b64_encode / b64_decode against Python's base64."""

import base64
import binascii
import random

import _codec_harness as h
import pytest
from hypothesis import given
from hypothesis import strategies as st

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def reference_decode(s: bytes):
    """What b64_decode must return: canonical standard base64, padding optional."""
    padded = s if s.endswith(b"=") else s + b"=" * (-len(s) % 4)
    try:
        data = binascii.a2b_base64(padded, strict_mode=True)
    except binascii.Error:
        return None
    # strict_mode still accepts non-zero unused bits in the last group and stray padding
    # after a full group ("AAAA="); the codec takes only the canonical encoding, with or
    # without its padding.
    encoded = base64.b64encode(data)
    return data if s in (encoded, encoded.rstrip(b"=")) else None


@pytest.mark.parametrize("n", range(301))
def test_round_trip_every_length(n):
    data = random.Random(n).randbytes(n)
    encoded = base64.b64encode(data)
    assert h.b64_encoded_len(n) == len(encoded)
    assert h.b64_encode(data) == encoded
    assert h.b64_decode(encoded) == data
    assert h.b64_decode(encoded.rstrip(b"=")) == data


@given(st.binary(max_size=2000))
def test_round_trip_random(data):
    encoded = h.b64_encode(data)
    assert encoded == base64.b64encode(data)
    assert h.b64_decode(encoded) == data


@given(
    st.binary(max_size=40) | st.text(alphabet=ALPHABET.decode() + "=", max_size=40).map(str.encode)
)
def test_decode_matches_reference(s):
    expected = reference_decode(s)
    got = h.b64_decode(s)
    assert got == (-1 if expected is None else expected)


@pytest.mark.parametrize(
    "s",
    [
        b"A",  # one character cannot end a group
        b"AAAAA",
        b"QQ=",  # padding that does not complete a group
        b"QQ===",
        b"Q===",
        b"====",
        b"=",
        b"QQ=A",  # padding inside the data
        b"Q=Q=",
        b"QR==",  # non-zero unused bits
        b"QUJ=",
        b"QUJ",  # unpadded, with stray bits
        b"QUJD\n",  # no whitespace is skipped
        b"QU JD",
        b" QUJD",
        b"QUJD\x00",
        b"QU-_",  # URL-safe alphabet is not accepted
        b"QU\xc3\xa9",
        b"QUJD====",
        b"QUJD=",  # padding after a complete group
    ],
)
def test_invalid(s):
    assert h.b64_decode(s) == -1


def test_cap():
    data = bytes(range(100))
    encoded = base64.b64encode(data)
    assert h.b64_decode(encoded, cap=100) == data
    assert h.b64_decode(encoded, cap=99) == -2
    assert h.b64_decode(encoded.rstrip(b"="), cap=99) == -2
    assert h.b64_decode(b"", cap=0) == b""
    assert h.b64_decode(b"QQ==", cap=0) == -2
