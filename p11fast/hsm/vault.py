"""Secrets at rest: scrypt-derived keys, AES-GCM sealing, passphrase hashes.

A sealed blob is nonce (12 bytes) || ciphertext || tag, the layout NetHSM backups use too.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_SIZE = 12
KEY_SIZE = 32
SALT_SIZE = 16
# 16 MiB and ~50 ms per derivation: paid once per unlock or first login, never per request.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


class SealError(Exception):
    """A sealed blob did not authenticate: wrong key or tampered data."""


def derive_key(passphrase: str, salt: bytes, n: int = SCRYPT_N, p: int = SCRYPT_P) -> bytes:
    return hashlib.scrypt(
        passphrase.encode(), salt=salt, n=n, r=SCRYPT_R, p=p, maxmem=2**26, dklen=KEY_SIZE
    )


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_SIZE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def unseal(key: bytes, blob: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], aad)
    except (InvalidTag, ValueError) as exc:
        raise SealError("authentication failed") from exc


@dataclass(frozen=True)
class WrappedKey:
    """A data key sealed under a key derived from a passphrase."""

    salt: bytes
    blob: bytes

    def to_bytes(self) -> bytes:
        return self.salt + self.blob

    @classmethod
    def from_bytes(cls, raw: bytes) -> WrappedKey:
        return cls(raw[:SALT_SIZE], raw[SALT_SIZE:])

    @classmethod
    def wrap(cls, passphrase: str, data_key: bytes) -> WrappedKey:
        salt = os.urandom(SALT_SIZE)
        return cls(salt, seal(derive_key(passphrase, salt), data_key, b"data-key"))

    def unwrap(self, passphrase: str) -> bytes:
        return unseal(derive_key(passphrase, self.salt), self.blob, b"data-key")


def hash_passphrase(passphrase: str) -> bytes:
    salt = os.urandom(SALT_SIZE)
    return salt + derive_key(passphrase, salt)


def check_passphrase(passphrase: str, stored: bytes) -> bool:
    return hmac.compare_digest(derive_key(passphrase, stored[:SALT_SIZE]), stored[SALT_SIZE:])
