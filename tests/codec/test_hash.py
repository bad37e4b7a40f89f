"""hash_* against hashlib; DigestInfo prefixes against RFC 8017 and cryptography."""

import hashlib
import random

import _codec_harness as h
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given
from hypothesis import strategies as st

NAMES = ["md5", "sha1", "sha224", "sha256", "sha384", "sha512"]
LENGTHS = [0, 1, 55, 56, 63, 64, 65, 127, 128, 129, 1000, 100_000]

# RFC 8017 §9.2, note 1, verbatim.
RFC8017_PREFIX = {
    "md5": "30 20 30 0c 06 08 2a 86 48 86 f7 0d 02 05 05 00 04 10",
    "sha1": "30 21 30 09 06 05 2b 0e 03 02 1a 05 00 04 14",
    "sha224": "30 2d 30 0d 06 09 60 86 48 01 65 03 04 02 04 05 00 04 1c",
    "sha256": "30 31 30 0d 06 09 60 86 48 01 65 03 04 02 01 05 00 04 20",
    "sha384": "30 41 30 0d 06 09 60 86 48 01 65 03 04 02 02 05 00 04 30",
    "sha512": "30 51 30 0d 06 09 60 86 48 01 65 03 04 02 03 05 00 04 40",
}
CRYPTOGRAPHY_HASH = {
    "md5": hashes.MD5,
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


@pytest.mark.parametrize("name", NAMES)
def test_hash_len(name):
    assert h.hash_len(h.H[name]) == hashlib.new(name).digest_size
    assert h.hash_len(h.H[name]) <= h.HASH_MAX_LEN


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", LENGTHS)
def test_oneshot(name, n):
    data = random.Random(n).randbytes(n)
    assert h.hash_oneshot(h.H[name], data) == hashlib.new(name, data).digest()


@pytest.mark.parametrize("name", NAMES)
@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 3000), max_size=8))
def test_multipart(name, data, cuts):
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    chunks = [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    assert h.hash_multi(h.H[name], chunks) == hashlib.new(name, data).digest()


def test_multipart_no_update():
    assert h.hash_multi(h.H["sha256"], []) == hashlib.sha256().digest()


@pytest.mark.parametrize("bad", [h.H["none"], 7, -1, 1 << 30])
def test_unknown_hash(bad):
    assert h.hash_len(bad) == 0
    assert h.digestinfo_prefix(bad) is None
    assert h.hash_oneshot(bad, b"abc") == -1
    assert h.hash_multi(bad, [b"abc"]) == -1


@pytest.mark.parametrize("name", NAMES)
def test_context_lifecycle(name):
    after_free, after_final = h.hash_lifecycle(h.H[name])
    assert after_free == (-1, -1)
    assert after_final == (-1, -1)


@pytest.mark.parametrize("name", NAMES)
def test_digestinfo_prefix_is_rfc8017(name):
    prefix = h.digestinfo_prefix(h.H[name])
    assert prefix == bytes.fromhex(RFC8017_PREFIX[name])
    # The outer SEQUENCE and the OCTET STRING lengths cover the digest that follows.
    assert prefix[1] == len(prefix) - 2 + h.hash_len(h.H[name])
    assert prefix[-1] == h.hash_len(h.H[name])


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


@pytest.mark.parametrize("name", NAMES)
def test_digestinfo_matches_cryptography_pkcs1v15(name, rsa_key):
    """Recovers the encoded message of a real PKCS#1 v1.5 signature with the public key:
    EM = 00 01 FF..FF 00 || DigestInfo must end in our prefix || our hash."""
    message = b"p11fast DigestInfo check"
    try:
        signature = rsa_key.sign(message, padding.PKCS1v15(), CRYPTOGRAPHY_HASH[name]())
    except Exception as exc:  # MD5 may be disabled by the OpenSSL configuration
        pytest.skip(f"cryptography cannot sign with {name}: {exc}")
    numbers = rsa_key.public_key().public_numbers()
    k = (numbers.n.bit_length() + 7) // 8
    em = pow(int.from_bytes(signature, "big"), numbers.e, numbers.n).to_bytes(k, "big")
    digest_info = h.digestinfo_prefix(h.H[name]) + h.hash_oneshot(h.H[name], message)
    assert em == b"\x00\x01" + b"\xff" * (k - 3 - len(digest_info)) + b"\x00" + digest_info
