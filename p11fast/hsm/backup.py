"""NetHSM backup files, formats 0 and 1 (keyfender `hsm.ml`, `System.backup`/`restore`; the
`nethsm` SDK's `nethsm.backup` reads them too):

    "_NETHSM_BACKUP_" format (1 byte) | salt | format' | locked domain key |
    [format 1: device ID | config store key] | entry... | [format 1: 00 00 00 "_NETHSM_BACKUP_END_"]

Every field is a 3-byte big-endian length and its bytes. All but the salt are sealed under
scrypt(backup passphrase, salt) with associated data `backup-version`, `domain-key`,
`backup-device-id`, `backup-config-store-key`, and `backup` for an entry (a length-prefixed
name, then the value as the device keeps it in its store). We write format 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from p11fast.hsm import nethsm_store, vault
from p11fast.hsm.errors import BadRequest

HEADER = b"_NETHSM_BACKUP_"
TRAILER = b"\x00\x00\x00_NETHSM_BACKUP_END_"
FORMATS = (0, 1)
WRITTEN_FORMAT = 1
LOCKED_DOMAIN_KEY_SIZE = vault.NONCE_SIZE + vault.KEY_SIZE + vault.TAG_SIZE
MAX_FIELD = (1 << 24) - 1


@dataclass
class BackupFile:
    format: int
    salt: bytes
    locked_domain_key: bytes
    entries: dict[str, bytes]
    device_id: str = ""
    config_store_key: bytes = b""


@dataclass
class Restore:
    """What a restore installs: the backup's unlock material and the entries that are
    decrypted at the unlock that proves its unlock passphrase."""

    unlock_salt: bytes
    locked_domain_key: bytes
    entries: dict[str, bytes] = field(default_factory=dict)
    sealed_config: bool = True


def encode(backup: BackupFile, key: bytes) -> bytes:
    version = bytes([WRITTEN_FORMAT])
    out = [HEADER, version, _field(backup.salt)]
    out.append(_field(vault.seal(key, version, b"backup-version")))
    out.append(_field(vault.seal(key, backup.locked_domain_key, b"domain-key")))
    out.append(_field(vault.seal(key, backup.device_id.encode(), b"backup-device-id")))
    out.append(_field(vault.seal(key, backup.config_store_key, b"backup-config-store-key")))
    for name, value in backup.entries.items():
        out.append(_field(vault.seal(key, _field(name.encode()) + value, b"backup")))
    out.append(TRAILER)
    return b"".join(out)


def decode(data: bytes, passphrase: str) -> BackupFile:
    """The whole file, checked to its last byte: any damage or a wrong passphrase is a 400."""
    if not data.startswith(HEADER) or len(data) == len(HEADER):
        raise BadRequest("not a NetHSM backup file")
    form = data[len(HEADER)]
    if form not in FORMATS:
        raise BadRequest(f"backup format {form} is not supported (only 0 and 1)")
    body = memoryview(data)[len(HEADER) + 1 :]
    if form == 1:
        if not data.endswith(TRAILER):
            raise BadRequest("the backup is truncated (no end marker)")
        body = body[: -len(TRAILER)]
    reader = _Reader(body)
    salt = reader.field()
    key = vault.passphrase_key(passphrase, salt)
    if _open(key, reader.field(), b"backup-version") != bytes([form]):
        raise BadRequest("backup format mismatch")
    backup = BackupFile(form, salt, _open(key, reader.field(), b"domain-key"), {})
    if form == 1:
        backup.device_id = _text(_open(key, reader.field(), b"backup-device-id"))
        backup.config_store_key = _open(key, reader.field(), b"backup-config-store-key")
    while not reader.empty():
        entry = _Reader(memoryview(_open(key, reader.field(), b"backup")))
        name = _text(entry.field())
        if name in backup.entries:
            raise BadRequest(f"backup entry {name[:160]!r} appears twice")
        backup.entries[name] = entry.rest()
    return backup


def restore_of(backup: BackupFile) -> Restore:
    """What of `backup` a restore takes; 400 if the backup cannot be restored here."""
    if len(backup.locked_domain_key) != LOCKED_DOMAIN_KEY_SIZE:
        raise BadRequest("the backup's domain key has an unexpected size")
    sealed = backup.format > 0
    salt = nethsm_store.unlock_salt(
        backup.entries, backup.device_id, backup.config_store_key if sealed else None
    )
    restore = Restore(salt, backup.locked_domain_key, sealed_config=sealed)
    for name, value in backup.entries.items():
        if nethsm_store.store_of(name) is not None:
            nethsm_store.check_entry_name(name)
            restore.entries[name] = value
        elif name in nethsm_store.BACKUP_CONFIG:
            restore.entries[name] = value
    return restore


def _open(key: bytes, blob: bytes, aad: bytes) -> bytes:
    try:
        return vault.unseal(key, blob, aad)
    except vault.SealError as exc:
        raise BadRequest(
            f"cannot decrypt the backup's {aad.decode()}: wrong passphrase or damaged backup"
        ) from exc


def _text(data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise BadRequest("backup names are not UTF-8") from exc


def _field(data: bytes) -> bytes:
    if len(data) > MAX_FIELD:
        raise BadRequest("backup entry too large")
    return len(data).to_bytes(3, "big") + data


class _Reader:
    def __init__(self, view: memoryview) -> None:
        self._view = view

    def field(self) -> bytes:
        if len(self._view) < 3:
            raise BadRequest("the backup is truncated")
        size = int.from_bytes(self._view[:3], "big")
        if len(self._view) < 3 + size:
            raise BadRequest("the backup is truncated")
        data, self._view = self._view[3 : 3 + size].tobytes(), self._view[3 + size :]
        return data

    def rest(self) -> bytes:
        return self._view.tobytes()

    def empty(self) -> bool:
        return not self._view
