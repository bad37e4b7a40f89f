"""Secrets at rest, in NetHSM's own constructions (keyfender `crypto.ml`, `hsm.ml`), so that a
NetHSM backup's secrets are ours as they are and ours are a NetHSM's:

- a passphrase becomes a key by scrypt (N=16384, r=8, p=16, 32 bytes): the unlock passphrase
  with the unlock salt, the backup passphrase with the backup salt;
- the domain key (the key everything else is sealed under) is stored "locked": sealed under
  the unlock passphrase's key with associated data `passphrase`;
- the key, user and namespace stores each have a key derived from the domain key;
- a user passphrase is stored as salt (16 bytes) || HMAC-SHA256(salt, passphrase).

A sealed blob is nonce (12 bytes) || AES-256-GCM ciphertext || tag (16 bytes).
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_SIZE = 12
TAG_SIZE = 16
KEY_SIZE = 32
SALT_SIZE = 16
# ~0.6 s per derivation on a 2-core VM: paid per unlock, passphrase change and backup/restore.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 16384, 8, 16
DOMAIN_KEY_AAD = b"passphrase"


class SealError(Exception):
    """A sealed blob did not authenticate: wrong key or tampered data."""


def passphrase_key(passphrase: str, salt: bytes) -> bytes:
    return hashlib.scrypt(
        passphrase.encode(),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=2**27,
        dklen=KEY_SIZE,
    )


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_SIZE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def unseal(key: bytes, blob: bytes, aad: bytes) -> bytes:
    # keyfender refuses blobs without at least one byte of ciphertext, and so do we
    if len(blob) <= NONCE_SIZE + TAG_SIZE:
        raise SealError("sealed data is too short")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], aad)
    except (InvalidTag, ValueError) as exc:
        raise SealError("authentication failed") from exc


def lock_domain_key(domain_key: bytes, passphrase: str, salt: bytes) -> bytes:
    return seal(passphrase_key(passphrase, salt), domain_key, DOMAIN_KEY_AAD)


def unlock_domain_key(locked: bytes, passphrase: str, salt: bytes) -> bytes:
    return unseal(passphrase_key(passphrase, salt), locked, DOMAIN_KEY_AAD)


def store_key(domain_key: bytes, store: str) -> bytes:
    """The key of one of keyfender's stores (`auth_store`, `key_store`, ...)."""
    return hashlib.sha256(domain_key + store.encode()).digest()


def hash_passphrase(passphrase: str) -> bytes:
    salt = os.urandom(SALT_SIZE)
    return salt + hmac.digest(salt, passphrase.encode(), hashlib.sha256)


def check_passphrase(passphrase: str, stored: bytes) -> bool:
    salt, digest = stored[:SALT_SIZE], stored[SALT_SIZE:]
    return hmac.compare_digest(hmac.digest(salt, passphrase.encode(), hashlib.sha256), digest)
