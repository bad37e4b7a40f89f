"""CKA_ID <-> NetHSM key ID mapping, compatible with Nitrokey's nethsm-pkcs11."""

import os

import pytest

from p11fast.keyid import cka_id_to_key_id, is_valid_key_id, key_id_to_cka_id

# Nitrokey's own compatibility table (nethsm-pkcs11 test script for encoded IDs):
# NetHSM key ID -> CKA_ID (hex)
NITROKEY_TABLE = [
    ("0---FF", "ff"),  # encoded ID (trivial case)
    ("0---2D6B6579", "2d6b6579"),  # encoded ID: b"-key" is not a valid key ID
    ("0---F", "302d2d2d46"),  # odd number of hex digits: not encoded
    ("0---FK", "302d2d2d464b"),  # bad hex character: not encoded
    ("0---6B", "302d2d2d3642"),  # b"k" would not need encoding: not encoded
    ("p11-test", "7031312d74657374"),  # plain valid key ID
]


@pytest.mark.parametrize(("key_id", "cka_hex"), NITROKEY_TABLE)
def test_nitrokey_table_key_id_to_cka_id(key_id, cka_hex):
    assert key_id_to_cka_id(key_id) == bytes.fromhex(cka_hex)


@pytest.mark.parametrize(("key_id", "cka_hex"), NITROKEY_TABLE)
def test_nitrokey_table_cka_id_to_key_id(key_id, cka_hex):
    # Part 2 of Nitrokey's script: a key created with that CKA_ID gets that NetHSM ID.
    assert cka_id_to_key_id(bytes.fromhex(cka_hex)) == key_id


def test_non_id_bytes_are_hex_encoded_upper_case():
    assert cka_id_to_key_id(b"\x01\x02") == "0---0102"
    assert cka_id_to_key_id(b"\xde\xad\xbe\xef") == "0---DEADBEEF"
    assert cka_id_to_key_id(b"my key") == "0---6D79206B6579"  # space is not allowed
    assert cka_id_to_key_id("schlüssel".encode()) == "0---7363686CC3BC7373656C"
    assert key_id_to_cka_id("0---0102") == b"\x01\x02"
    assert key_id_to_cka_id("0---DEADBEEF") == b"\xde\xad\xbe\xef"


def test_lower_case_hex_is_not_decoded():
    # cka_id_to_key_id(b"\xff") is "0---FF"; "0---ff" is a different key whose CKA_ID is itself.
    assert key_id_to_cka_id("0---ff") == b"0---ff"
    assert key_id_to_cka_id("0---") == b"0---"


def test_valid_ids_are_used_as_is():
    for s in ["a", "A", "0", "key1", "my.key_2-x", "Z" * 128, "0---"]:
        assert cka_id_to_key_id(s.encode()) == s
        assert key_id_to_cka_id(s) == s.encode()


def test_is_valid_key_id():
    assert is_valid_key_id("a")
    assert is_valid_key_id("a" * 128)
    assert is_valid_key_id("9_.-")
    assert not is_valid_key_id("")
    assert not is_valid_key_id("a" * 129)
    assert not is_valid_key_id("-a")
    assert not is_valid_key_id("_a")
    assert not is_valid_key_id(".a")
    assert not is_valid_key_id("a b")
    assert not is_valid_key_id("a/b")
    assert not is_valid_key_id("ä")
    assert not is_valid_key_id("a\n")


def test_errors():
    with pytest.raises(ValueError):
        cka_id_to_key_id(b"")
    with pytest.raises(ValueError):
        cka_id_to_key_id(b"\x00" * 63)  # 4 + 126 > 128 characters
    assert cka_id_to_key_id(b"\x00" * 62) == "0---" + "00" * 62
    with pytest.raises(ValueError):
        cka_id_to_key_id(b"a" * 129)  # valid characters, too long


def test_quirk_valid_id_that_spells_an_encoding():
    # Kept from nethsm-pkcs11: b"0---FF" is a valid key ID and stored as is; that key ID
    # reads back as the CKA_ID b"\xff".
    assert cka_id_to_key_id(b"0---FF") == "0---FF"
    assert key_id_to_cka_id("0---FF") == b"\xff"


def test_round_trips():
    samples = [os.urandom(n) for n in range(1, 63) for _ in range(5)]
    samples += [b"\x01\x02", b"-x", b"_", b" ", b"\x00", b"a b", b"k", b"0---6B"]
    for cka in samples:
        kid = cka_id_to_key_id(cka)
        assert is_valid_key_id(kid)
        # key ID -> CKA_ID -> key ID always round-trips
        assert cka_id_to_key_id(key_id_to_cka_id(kid)) == kid
        if not (cka.startswith(b"0---") and key_id_to_cka_id(cka.decode()) != cka):
            assert key_id_to_cka_id(kid) == cka


def test_mapping_is_injective_on_key_ids():
    ids = ["0---FF", "0---ff", "0---F", "0---2D6B6579", "-key", "0---6B", "k", "0---00", "x"]
    ids = [i for i in ids if is_valid_key_id(i)]
    ckas = [key_id_to_cka_id(i) for i in ids]
    assert len(set(ckas)) == len(ids)
