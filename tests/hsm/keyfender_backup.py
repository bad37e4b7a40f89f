"""A NetHSM backup in clear, opened the way keyfender's own offline tool opens one
(`src/keyfender/bin/decrypt_backup.py`), written here independently of `p11fast.hsm`: the
outer layer by Nitrokey's SDK (`nethsm.backup`), the stores by their documented scheme.

    unlock key   = scrypt(unlock passphrase, unlock salt, N=16384, r=8, p=16)
    domain key   = AES-GCM-open(unlock key, locked domain key, aad="passphrase")
    store key    = SHA-256(domain key || "auth_store" | "key_store" | "namespace_store"
                            | "config_store")
    entry value  = AES-GCM-open(store key, value, aad=entry name)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nethsm.backup import EncryptedBackup

STORES = {
    "/authentication/": "auth_store",
    "/key/": "key_store",
    "/namespace/": "namespace_store",
    "/config/backup-": "config_store",
}


@dataclass
class OpenBackup:
    version: int
    device_id: str
    config_store_key: bytes
    locked_domain_key: bytes
    entries: dict[str, bytes]  # as in the file: store values still sealed
    # store, backup-passphrase, unlock-salt and (format 1) certificate values in clear
    clear: dict[str, bytes]


def open_backup(data: bytes, backup_passphrase: str, unlock_passphrase: str) -> OpenBackup:
    backup = EncryptedBackup.parse(data).decrypt(backup_passphrase)
    entries = backup.data
    device_id = (backup.backup_device_id or b"").decode()
    if backup.version == 0:
        unlock_salt = entries["/config/unlock-salt"]
    else:
        unlock_salt = _local(backup.backup_config_store_key, entries, device_id, "unlock-salt")
    unlock_key = hashlib.scrypt(
        unlock_passphrase.encode(), salt=unlock_salt, n=16384, r=8, p=16, maxmem=2**27, dklen=32
    )
    domain_key = _open(unlock_key, backup.domain_key, "passphrase")
    clear = {"unlock-salt": unlock_salt}
    if backup.version > 0:
        cert_chain = _local(backup.backup_config_store_key, entries, device_id, "certificate")
        clear["certificate"] = cert_chain
    for name, value in entries.items():
        for prefix, store in STORES.items():
            sealed = backup.version > 0 or not prefix.startswith("/config/")
            if name.startswith(prefix):
                store_key = hashlib.sha256(domain_key + store.encode()).digest()
                clear[name] = _open(store_key, value, name) if sealed else value
    return OpenBackup(
        backup.version,
        device_id,
        backup.backup_config_store_key or b"",
        backup.domain_key,
        entries,
        clear,
    )


def record(value: bytes) -> dict:
    """A yojson record: its strings are raw bytes, so read as Latin-1."""
    return json.loads(value.decode("latin-1"))


def certificates(chain: bytes) -> list[bytes]:
    """A configuration store's `certificate` value: each DER certificate, server first,
    after its 4-byte big-endian length (keyfender `config_store.ml`)."""
    ders = []
    while chain:
        length = int.from_bytes(chain[:4], "big")
        ders.append(chain[4 : 4 + length])
        chain = chain[4 + length :]
    return ders


def _local(config_store_key: bytes, entries: dict[str, bytes], device_id: str, name: str) -> bytes:
    """A device's early configuration value, sealed under its config store key."""
    path = f"/local/{device_id}/config/{name}"
    return _open(config_store_key, entries[path], path)


def _open(key: bytes, blob: bytes, aad: str) -> bytes:
    return AESGCM(key).decrypt(blob[:12], blob[12:], aad.encode())
