"""ecdsa_der_to_raw / ecdsa_raw_to_der against cryptography's DSS signature helpers."""

import _codec_harness as h
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from hypothesis import given
from hypothesis import strategies as st

CURVES = [(ec.SECP256R1(), 32), (ec.SECP384R1(), 48), (ec.SECP521R1(), 66)]


def raw(r: int, s: int, field_len: int) -> bytes:
    return r.to_bytes(field_len, "big") + s.to_bytes(field_len, "big")


def der_len(n: int) -> bytes:
    return (
        bytes([n])
        if n < 0x80
        else bytes([0x80 | ((n.bit_length() + 7) // 8)])
        + n.to_bytes((n.bit_length() + 7) // 8, "big")
    )


def tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + der_len(len(body)) + body


def der_int(v: int) -> bytes:
    return tlv(0x02, v.to_bytes(v.bit_length() // 8 + 1, "big"))


@pytest.mark.parametrize("curve, field_len", CURVES, ids=lambda c: getattr(c, "name", ""))
def test_real_signatures(curve, field_len):
    key = ec.generate_private_key(curve)
    for i in range(40):
        der = key.sign(b"message %d" % i, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        assert h.ecdsa_der_to_raw(der, field_len) == raw(r, s, field_len)
        assert h.ecdsa_raw_to_der(raw(r, s, field_len), len(der)) == der
        assert h.ecdsa_raw_to_der(raw(r, s, field_len), len(der) - 1) == -2
        # One byte short of field_len must be refused unless r and s happen to fit.
        short = h.ecdsa_der_to_raw(der, field_len - 1)
        if max(r, s).bit_length() > 8 * (field_len - 1):
            assert short == -1


@given(
    st.sampled_from([1, 20, 32, 48, 66, 100, 200]).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(0, 256**n - 1), st.integers(0, 256**n - 1))
    )
)
def test_round_trip_any_integers(case):
    field_len, r, s = case
    der = h.ecdsa_raw_to_der(raw(r, s, field_len), 2 * field_len + 16)
    assert der == encode_dss_signature(r, s)
    assert h.ecdsa_der_to_raw(der, field_len) == raw(r, s, field_len)


def test_edge_values():
    for r, s in [(0, 0), (1, 0x80), (0x7F, 0xFF), (2**255, 2**256 - 1)]:
        der = encode_dss_signature(r, s)
        assert h.ecdsa_der_to_raw(der, 32) == raw(r, s, 32)
        assert h.ecdsa_raw_to_der(raw(r, s, 32), 80) == der


def test_raw_to_der_bad_length():
    assert h.ecdsa_raw_to_der(b"", 80) == -1
    assert h.ecdsa_raw_to_der(b"\x01" * 63, 80) == -1


R, S = 0xC0FFEE << 200, 0x1234
GOOD = tlv(0x30, der_int(R) + der_int(S))


@pytest.mark.parametrize(
    "der",
    [
        b"",
        b"\x30",
        b"\x30\x00",
        bytes([0x31]) + GOOD[1:],  # not a SEQUENCE
        GOOD + b"\x00",  # trailing bytes
        GOOD[:1] + bytes([GOOD[1] + 1]) + GOOD[2:] + b"\x02",  # sequence longer than contents
        GOOD[:1] + bytes([GOOD[1] - 1]) + GOOD[2:-1],  # sequence shorter than contents
        b"\x30\x81" + GOOD[1:],  # long form for a short length
        b"\x30\x82\x00" + GOOD[1:],
        b"\x30\x80" + GOOD[2:] + b"\x00\x00",  # BER indefinite length
        tlv(0x30, der_int(R)),  # s missing
        tlv(0x30, der_int(R) + der_int(S) + der_int(1)),  # a third INTEGER
        tlv(0x30, tlv(0x03, der_int(R)[2:]) + der_int(S)),  # r not an INTEGER
        tlv(0x30, b"\x02\x00" + der_int(S)),  # empty INTEGER
        tlv(0x30, b"\x02\x01\x80" + der_int(S)),  # negative r
        tlv(0x30, der_int(R) + b"\x02\x02\xff\x01"),  # negative s
        tlv(0x30, b"\x02\x02\x00\x01" + der_int(S)),  # leading zero not needed
        tlv(0x30, b"\x02\x03\x00\x00\x81" + der_int(S)),  # two leading zeros
        tlv(0x30, der_int(2**256) + der_int(S)),  # r longer than 32 bytes
        tlv(0x30, der_int(R) + tlv(0x02, b"\x01" * 33)),  # s longer than 32 bytes
        tlv(0x30, der_int(R) + b"\x02\x21" + b"\x01" * 8),  # INTEGER past the end
        b"\x30\x85\x00\x00\x00\x00\x08" + der_int(1) + der_int(1),  # 5 length bytes
    ],
)
def test_malformed(der):
    assert h.ecdsa_der_to_raw(der, 32) == -1


def test_every_truncation_rejected():
    der = tlv(0x30, der_int(2**520 + 5) + der_int(2**519 + 7))  # P-521 sized, long form
    assert der[1] == 0x81
    assert h.ecdsa_der_to_raw(der, 66) == raw(2**520 + 5, 2**519 + 7, 66)
    for cut in range(len(der)):
        assert h.ecdsa_der_to_raw(der[:cut], 66) == -1


def test_zero_field_len():
    assert h.ecdsa_der_to_raw(GOOD, 0) == -1


def test_long_form_lengths_written_minimally():
    # Halves of 200 bytes: INTEGER lengths 0x81 xx, SEQUENCE length 0x82 xx xx.
    r = s = 2**1599 + 1
    der = h.ecdsa_raw_to_der(raw(r, s, 200), 500)
    assert der == encode_dss_signature(r, s) and der[1] == 0x82
