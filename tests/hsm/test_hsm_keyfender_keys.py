"""Key rules where the software HSM follows the real NetHSM (keyfender) rather than the spec:
ECDSA digest sizes, Generic key lengths and imports without mechanisms."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from hsm_client import ADMIN, OPERATOR, Client


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def generate(client: Client, key_id: str, key_type: str, mechanisms: list[str], **extra) -> int:
    body = {"type": key_type, "mechanisms": mechanisms, "id": key_id, **extra}
    return client.post("/keys/generate", json=body, auth=ADMIN).status_code


def sign(client: Client, key_id: str, digest: bytes):
    body = {"mode": "ECDSA", "message": b64(digest)}
    return client.post(f"/keys/{key_id}/sign", json=body, auth=OPERATOR)


@pytest.mark.parametrize("length", [32, 48, 65, 66])
def test_p521_ecdsa_refuses_a_digest_that_is_not_64_bytes(client: Client, length: int) -> None:
    key_id = f"kf521len{length}"
    assert generate(client, key_id, "EC_P521", ["ECDSA_Signature"]) == 201
    assert sign(client, key_id, os.urandom(length)).status_code == 400


def test_p521_ecdsa_signs_a_sha512_digest_as_ecdsa_with_sha512(client: Client) -> None:
    assert generate(client, "kf521", "EC_P521", ["ECDSA_Signature"]) == 201
    message = b"a message hashed by the client"
    digest = hashes.Hash(hashes.SHA512())
    digest.update(message)
    response = sign(client, "kf521", digest.finalize())
    assert response.status_code == 200, response.text
    public = serialization.load_pem_public_key(
        client.get("/keys/kf521/public.pem", auth=OPERATOR).content
    )
    signature = base64.b64decode(response.json()["signature"])
    public.verify(signature, message, ec.ECDSA(hashes.SHA512()))


@pytest.mark.parametrize("bits", [128, 129, 512, 8192])
def test_generic_keys_of_128_to_8192_bits_are_generated(client: Client, bits: int) -> None:
    mechanisms = ["AES_Encryption_CBC", "AES_Decryption_CBC"]
    assert generate(client, f"kfgeneric{bits}", "Generic", mechanisms, length=bits) == 201
    key = client.get(f"/keys/kfgeneric{bits}", auth=ADMIN).json()
    assert (key["type"], sorted(key["mechanisms"])) == ("Generic", sorted(mechanisms))


def test_generic_key_that_is_no_aes_key_cannot_encrypt(client: Client) -> None:
    assert generate(client, "kfgen512", "Generic", ["AES_Encryption_CBC"], length=512) == 201
    body = {"mode": "AES_CBC", "message": b64(bytes(16)), "iv": b64(bytes(16))}
    assert client.post("/keys/kfgen512/encrypt", json=body, auth=OPERATOR).status_code == 400


@pytest.mark.parametrize("bits", [127, 8193])
def test_generic_keys_outside_128_to_8192_bits_are_refused(client: Client, bits: int) -> None:
    assert generate(client, f"kfbad{bits}", "Generic", ["AES_Encryption_CBC"], length=bits) == 400


def test_import_without_mechanisms_is_stored_and_usable_for_nothing(client: Client) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    body = {"type": "EC_P256", "mechanisms": [], "private": {"data": b64(scalar)}}
    assert client.put("/keys/kfnomech", json=body, auth=ADMIN).status_code == 204
    assert client.get("/keys/kfnomech", auth=ADMIN).json()["mechanisms"] == []
    assert sign(client, "kfnomech", bytes(32)).status_code == 400


def test_generation_without_mechanisms_is_refused(client: Client) -> None:
    assert generate(client, "kfgennomech", "EC_P256", []) == 400


def test_p256_signature_is_over_the_digest_as_a_number(client: Client) -> None:
    assert generate(client, "kf256", "EC_P256", ["ECDSA_Signature"]) == 201
    digest = os.urandom(32)
    response = sign(client, "kf256", digest)
    public = serialization.load_pem_public_key(
        client.get("/keys/kf256/public.pem", auth=OPERATOR).content
    )
    signature = base64.b64decode(response.json()["signature"])
    public.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
