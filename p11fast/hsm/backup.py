"""Backup files in NetHSM's framing (version 1), readable by `nethsm.backup`:

    "_NETHSM_BACKUP_" 0x01 | salt | version | domain key | device id | config store key |
    item... | 00 00 00 "_NETHSM_BACKUP_END_"

Every field is a 3-byte big-endian length and its bytes; all but the salt are AES-GCM
sealed (nonce || ciphertext || tag) under scrypt(backup passphrase, salt, 16384, 8, 16)
with the field's name as associated data. An item holds length-prefixed name then value.
Our domain key is the data key that seals private keys, and so is the config store key.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from p11fast.hsm import vault
from p11fast.hsm.core import derive_backup_key
from p11fast.hsm.errors import BadRequest
from p11fast.hsm.store import KeyRecord, UserRecord

HEADER = b"_NETHSM_BACKUP_"
VERSION = 1
TRAILER = b"\x00\x00\x00_NETHSM_BACKUP_END_"
# Host-specific: the unattended-boot copy of the data key is sealed under this machine's key.
LOCAL_META = ("unattended_wrapped",)


@dataclass
class BackupContents:
    domain_key: bytes
    device_id: bytes
    meta: dict[str, bytes]
    namespaces: set[str]
    users: list[UserRecord]
    keys: list[KeyRecord]


def encode(contents: BackupContents, salt: bytes, key: bytes) -> bytes:
    out = [HEADER, bytes([VERSION]), _field(salt)]
    out.append(_field(vault.seal(key, bytes([VERSION]), b"backup-version")))
    out.append(_field(vault.seal(key, contents.domain_key, b"domain-key")))
    out.append(_field(vault.seal(key, contents.device_id, b"backup-device-id")))
    out.append(_field(vault.seal(key, contents.domain_key, b"backup-config-store-key")))
    for name, value in _items(contents):
        out.append(_field(vault.seal(key, _field(name.encode()) + value, b"backup")))
    out.append(TRAILER)
    return b"".join(out)


def decode(data: bytes, passphrase: str) -> BackupContents:
    if not data.startswith(HEADER) or len(data) <= len(HEADER):
        raise BadRequest("not a NetHSM backup")
    if data[len(HEADER)] != VERSION or not data.endswith(TRAILER):
        raise BadRequest("unsupported backup version or truncated backup")
    reader = _Reader(memoryview(data)[len(HEADER) + 1 : -len(TRAILER)])
    salt = reader.field()
    key = derive_backup_key(passphrase, salt)
    try:
        if vault.unseal(key, reader.field(), b"backup-version") != bytes([VERSION]):
            raise BadRequest("backup version mismatch")
        domain_key = vault.unseal(key, reader.field(), b"domain-key")
        device_id = vault.unseal(key, reader.field(), b"backup-device-id")
        reader.field()  # the config store key equals the domain key here
        items = []
        while not reader.empty():
            item = _Reader(memoryview(vault.unseal(key, reader.field(), b"backup")))
            items.append((item.field().decode(), item.rest()))
    except vault.SealError as exc:
        raise BadRequest("wrong backup passphrase or corrupted backup") from exc
    return _contents(domain_key, device_id, items)


def _items(contents: BackupContents) -> list[tuple[str, bytes]]:
    items = [(f"/config/{n}", v) for n, v in contents.meta.items() if n not in LOCAL_META]
    items += [(f"/namespaces/{n}", b"") for n in sorted(contents.namespaces)]
    for user in contents.users:
        record = {**user.__dict__, "passphrase_hash": _b64(user.passphrase_hash)}
        items.append((f"/users/{user.user_id}", json.dumps(record).encode()))
    for key in contents.keys:
        record = {**key.__dict__, "sealed_private": _b64(key.sealed_private)}
        record["cert"] = None if key.cert is None else _b64(key.cert)
        items.append((f"/keys/{key.namespace}/{key.key_id}", json.dumps(record).encode()))
    return items


def _contents(domain_key: bytes, device_id: bytes, items: list) -> BackupContents:
    contents = BackupContents(domain_key, device_id, {}, set(), [], [])
    try:
        for name, value in items:
            kind, _, rest = name[1:].partition("/")
            if kind == "config":
                contents.meta[rest] = value
            elif kind == "namespaces":
                contents.namespaces.add(rest)
            elif kind == "users":
                record = json.loads(value)
                record["passphrase_hash"] = base64.b64decode(record["passphrase_hash"])
                contents.users.append(UserRecord(**record))
            elif kind == "keys":
                record = json.loads(value)
                record["sealed_private"] = base64.b64decode(record["sealed_private"])
                record["cert"] = record["cert"] and base64.b64decode(record["cert"])
                contents.keys.append(KeyRecord(**record))
    except (ValueError, TypeError, KeyError) as exc:
        raise BadRequest("backup contents are malformed") from exc
    return contents


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _field(data: bytes) -> bytes:
    if len(data) >= 1 << 24:
        raise BadRequest("backup item too large")
    return len(data).to_bytes(3, "big") + data


class _Reader:
    def __init__(self, view: memoryview) -> None:
        self._view = view

    def field(self) -> bytes:
        if len(self._view) < 3:
            raise BadRequest("truncated backup")
        size = int.from_bytes(self._view[:3], "big")
        if len(self._view) < 3 + size:
            raise BadRequest("truncated backup")
        data, self._view = self._view[3 : 3 + size].tobytes(), self._view[3 + size :]
        return data

    def rest(self) -> bytes:
        return self._view.tobytes()

    def empty(self) -> bool:
        return not self._view
