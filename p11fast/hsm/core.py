"""The HSM's state and rules, independent of HTTP: lifecycle, users, namespaces, keys,
backup and restore.

Everything lives in memory while Operational and is written through to the store before
a call returns. Private keys and passphrase digests stay sealed under the domain key (the
data key); decrypted key objects are cached per (namespace, id) and dropped whenever that
key changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from p11fast.hsm import nethsm_store, vault
from p11fast.hsm.backup import WRITTEN_FORMAT, BackupFile, Restore
from p11fast.hsm.errors import BadRequest, Conflict, Forbidden, NotFound, PreconditionFailed
from p11fast.hsm.keys import KeyMaterial
from p11fast.hsm.nethsm_store import Contents, KeyEntry
from p11fast.hsm.store import ROLES, KeyRecord, Store, UserRecord

__all__ = ["ROLES", "Caller", "Hsm", "State", "new_id", "usable_by"]

KEY_AAD = b"p11fast-key"
USER_AAD = b"p11fast-user"
BACKUP_KEY_AAD = b"backup-key"
# Set while a restore's entries wait for an unlock: "1" if they seal the backup passphrase
# (format 1), "0" if they hold it clear (format 0).
STAGED_CONFIG_SEALED = "staged_config_sealed"
# What a NetHSM's hardware gives it: kept through a factory reset.
IDENTITY = ("device_id", "config_store_key")


class State(str, Enum):
    UNPROVISIONED = "Unprovisioned"
    LOCKED = "Locked"
    OPERATIONAL = "Operational"


@dataclass(frozen=True)
class Caller:
    user_id: str
    namespace: str
    role: str
    tags: tuple[str, ...]


# A change computed from the current record: the fields to replace (it may raise an ApiError).
Change = Callable[[Any], dict[str, Any]]


def new_id() -> str:
    return secrets.token_hex(10)


class Hsm:
    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        self.store = Store(os.path.join(state_dir, "hsm.sqlite"))
        self.machine_key_path = os.path.join(state_dir, "machine.key")
        self.keys: dict[tuple[str, str], KeyRecord] = {}
        self.users: dict[str, UserRecord] = {}
        self.namespaces: set[str] = set()
        self.users_generation = 0
        self._data_key: bytes | None = None
        self._materials: dict[tuple[str, str], KeyMaterial] = {}
        self._dirty_operations: set[tuple[str, str]] = set()
        self.state = State.UNPROVISIONED
        self._boot()

    # --- lifecycle ----------------------------------------------------------------------
    def _boot(self) -> None:
        if self.store.meta_get("locked_domain_key") is None:
            if self.store.meta_get("unlock_wrapped") is not None:
                raise RuntimeError(
                    f"{self.state_dir} was made by an earlier p11fast (before NetHSM-format "
                    "storage): start from a new state directory"
                )
            self.state = State.UNPROVISIONED
            return
        self.state = State.LOCKED
        sealed = self.store.meta_get("unattended_wrapped")
        if sealed is not None and os.path.exists(self.machine_key_path):
            self._open(vault.unseal(self._machine_key(), sealed, b"unattended"))

    def _open(self, data_key: bytes) -> None:
        self._data_key = data_key
        self.keys = {(k.namespace, k.key_id): k for k in self.store.load_keys()}
        self.users = {u.user_id: _unsealed(u, data_key) for u in self.store.load_users()}
        self.namespaces = self.store.load_namespaces()
        self._materials.clear()
        self.users_generation += 1
        self.state = State.OPERATIONAL

    def provision(self, unlock_passphrase: str, admin_passphrase: str) -> None:
        data_key = os.urandom(vault.KEY_SIZE)
        admin = UserRecord(
            "admin", "", "Administrator", "admin", vault.hash_passphrase(admin_passphrase)
        )
        meta = {**self._identity(), **_unlock_meta(data_key, unlock_passphrase)}
        with self.store.transaction():
            self.store.meta_update(meta)
            self.store.put_user(_sealed(admin, data_key))
        self._open(data_key)

    def unlock(self, passphrase: str) -> None:
        salt, locked = self._unlock_material()
        try:
            data_key = vault.unlock_domain_key(locked, passphrase, salt)
        except vault.SealError as exc:
            raise Forbidden("unlock failed") from exc
        if self.state is not State.LOCKED:
            raise PreconditionFailed("NetHSM is not Locked")
        if self.store.meta_get(STAGED_CONFIG_SEALED) is not None:
            self._import_staged(data_key)
        self._open(data_key)

    def lock(self) -> None:
        self.flush_operations()
        self._data_key = None
        self.keys, self.users, self._materials = {}, {}, {}
        self.users_generation += 1
        self.state = State.LOCKED

    def reboot(self) -> None:
        """As after a power cycle: Locked, or Operational again with unattended boot."""
        self.lock()
        self._boot()

    def factory_reset(self) -> None:
        """Keys, users, namespaces, configuration and the unattended-boot key are erased; the
        HSM is Unprovisioned. The device ID and config store key stay, as a NetHSM's hardware
        keeps them. The store is wiped in one transaction first, so a
        crash afterwards still comes back Unprovisioned."""
        self.lock()
        self.store.wipe(keep=IDENTITY)
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.machine_key_path)
        self.namespaces = set()
        self.state = State.UNPROVISIONED

    def device_id(self) -> str:
        return (self.store.meta_get("device_id") or b"UNKNOWN").decode()

    def _identity(self) -> dict[str, bytes]:
        """This HSM's device ID and config store key (a NetHSM's hardware gives it these),
        made by the first provision or restore."""
        made = {
            "device_id": secrets.token_hex(5).upper().encode(),
            "config_store_key": os.urandom(vault.KEY_SIZE),
        }
        return {name: self.store.meta_get(name) or made[name] for name in IDENTITY}

    def _unlock_material(self) -> tuple[bytes, bytes]:
        """(unlock salt, locked domain key)."""
        return self.store.meta_get("unlock_salt"), self.store.meta_get("locked_domain_key")

    # --- configuration ------------------------------------------------------------------
    def set_unlock_passphrase(self, current: str, new: str) -> None:
        salt, locked = self._unlock_material()
        try:
            data_key = vault.unlock_domain_key(locked, current, salt)
        except vault.SealError as exc:
            # keyfender answers 403 to a wrong current passphrase (hsm.ml, check_unlock_passphrase)
            raise Forbidden("current unlock passphrase is wrong") from exc
        self.store.meta_update(_unlock_meta(data_key, new))

    @property
    def unattended_boot(self) -> bool:
        return self.store.meta_get("unattended_wrapped") is not None

    def set_unattended_boot(self, on: bool) -> None:
        sealed = vault.seal(self._machine_key(), self.data_key(), b"unattended") if on else None
        self.store.meta_set("unattended_wrapped", sealed)

    def _machine_key(self) -> bytes:
        """The key that makes unattended boot possible, kept beside the database."""
        try:
            with open(self.machine_key_path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            key = os.urandom(vault.KEY_SIZE)
            fd = os.open(self.machine_key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(key)
                f.flush()
                os.fsync(f.fileno())
            return key

    def backup_key(self) -> tuple[bytes, bytes]:
        """(salt, key) that backups are encrypted with; 412 until a backup passphrase is set."""
        salt, sealed = self.store.meta_get("backup_salt"), self.store.meta_get("backup_key")
        if salt is None or sealed is None:
            raise PreconditionFailed("backup passphrase is not set")
        return salt, vault.unseal(self.data_key(), sealed, BACKUP_KEY_AAD)

    def set_backup_passphrase(self, current: str, new: str) -> None:
        if self.store.meta_get("backup_key") is not None:
            salt, key = self.backup_key()
            if vault.passphrase_key(current, salt) != key:
                raise Forbidden("current backup passphrase is wrong")
        elif current:  # keyfender: 403 as for a wrong one (hsm.ml, check_backup_passphrase)
            raise Forbidden("no backup passphrase is set: currentPassphrase must be empty")
        salt = os.urandom(vault.SALT_SIZE)
        sealed = vault.seal(self.data_key(), vault.passphrase_key(new, salt), BACKUP_KEY_AAD)
        self.store.meta_update({"backup_salt": salt, "backup_key": sealed})

    def setting(self, name: str, default: dict) -> dict:
        """A JSON configuration value (network, logging) kept with the HSM's configuration."""
        raw = self.store.meta_get(f"setting:{name}")
        return default if raw is None else json.loads(raw)

    def set_setting(self, name: str, value: dict) -> None:
        self.store.meta_set(f"setting:{name}", json.dumps(value).encode())

    def data_key(self) -> bytes:
        if self._data_key is None:
            raise PreconditionFailed("NetHSM is not Operational")
        return self._data_key

    # --- namespaces ---------------------------------------------------------------------
    def add_namespace(self, namespace: str) -> None:
        if namespace in self.namespaces:
            raise BadRequest(f"namespace {namespace} already exists")
        self.store.add_namespace(namespace)
        self.namespaces.add(namespace)

    def delete_namespace(self, namespace: str) -> None:
        if namespace not in self.namespaces:
            raise NotFound(f"namespace {namespace} not found")
        self.store.delete_namespace(namespace)
        self.namespaces.discard(namespace)
        for ref in [ref for ref in self.keys if ref[0] == namespace]:
            self._forget_key(ref)

    # --- users --------------------------------------------------------------------------
    def user(self, user_id: str) -> UserRecord:
        # A lock while the request waited for its body: the device is not Operational any
        # more, which is what the answer must say (412), not that the user is unknown.
        self.data_key()
        try:
            return self.users[user_id]
        except KeyError:
            raise NotFound(f"user {user_id} not found") from None

    def add_user(self, user: UserRecord) -> None:
        if user.user_id in self.users:
            raise Conflict(f"user {user.user_id} already exists")
        self.store.put_user(_sealed(user, self.data_key()))
        self.users[user.user_id] = user

    def update_user(self, user_id: str, change: Change) -> UserRecord:
        """Apply `change` to the user as it is now, or 404 if it is gone. Callers compute
        slow parts (a passphrase hash) first: between the look-up and the write nothing else
        runs, so a concurrent delete or update is never undone."""
        self.data_key()
        current = self.user(user_id)
        updated = replace(current, **change(current))
        self.store.put_user(_sealed(updated, self.data_key()))
        self.users[user_id] = updated
        self.users_generation += 1
        return updated

    def delete_user(self, user_id: str) -> None:
        self.user(user_id)
        self.store.delete_user(user_id)
        del self.users[user_id]
        self.users_generation += 1

    # --- keys ---------------------------------------------------------------------------
    def key(self, namespace: str, key_id: str) -> KeyRecord:
        self.data_key()  # locked meanwhile: 412, as in user()
        try:
            return self.keys[(namespace, key_id)]
        except KeyError:
            raise NotFound(f"key {key_id} not found") from None

    def unused_key_id(self, namespace: str) -> str:
        while (key_id := new_id()) and (namespace, key_id) in self.keys:
            pass
        return key_id

    def add_key(
        self,
        namespace: str,
        key_id: str,
        material: KeyMaterial,
        mechanisms: list[str],
        tags: list[str],
        label: str,
    ) -> KeyRecord:
        if (namespace, key_id) in self.keys:
            raise Conflict(f"key {key_id} already exists")
        if namespace and namespace not in self.namespaces:
            # deleted while the key was being generated or read
            raise Forbidden(f"namespace {namespace} does not exist")
        entry = KeyEntry(namespace, key_id, material, mechanisms, tags, label)
        record = _key_record(entry, self.data_key())
        self.store.put_key(record)
        self.keys[(namespace, key_id)] = record
        self._materials[(namespace, key_id)] = material
        return record

    def update_key(self, namespace: str, key_id: str, change: Change) -> KeyRecord:
        """Apply a metadata change (label, tags, certificate) to the key as it is now, or 404
        if it was deleted or moved meanwhile; atomic like `update_user`. The record is
        replaced, not mutated, so a backup being encoded in a thread sees it whole."""
        self.data_key()
        current = self.key(namespace, key_id)
        updated = replace(current, **change(current))
        self.store.put_key(updated)
        self.keys[(namespace, key_id)] = updated
        return updated

    def delete_key(self, namespace: str, key_id: str) -> None:
        self.key(namespace, key_id)
        self.store.delete_key(namespace, key_id)
        self._forget_key((namespace, key_id))

    def move_key(self, namespace: str, key_id: str, new_key_id: str) -> None:
        record = self.key(namespace, key_id)
        if (namespace, new_key_id) in self.keys:
            raise Conflict(f"key {new_key_id} already exists")
        self.flush_operations()
        moved = KeyRecord(**{**record.__dict__, "key_id": new_key_id})
        with self.store.transaction():
            self.store.put_key(moved)
            self.store.delete_key(namespace, key_id)
        self._forget_key((namespace, key_id))
        self.keys[(namespace, new_key_id)] = moved

    def _forget_key(self, ref: tuple[str, str]) -> None:
        self.keys.pop(ref, None)
        self._materials.pop(ref, None)
        self._dirty_operations.discard(ref)

    def material(self, record: KeyRecord) -> KeyMaterial:
        ref = (record.namespace, record.key_id)
        material = self._materials.get(ref)
        if material is None:
            raw = vault.unseal(self.data_key(), record.sealed_private, KEY_AAD)
            material = KeyMaterial.deserialize(record.type, raw)
            self._materials[ref] = material
        return material

    def count_operation(self, record: KeyRecord) -> None:
        # Counted in memory and flushed in batches: an fsync per signature would cap
        # throughput at the disk's flush rate. Counted on the current record: a label
        # change during an RSA operation replaced the one the operation started with.
        ref = (record.namespace, record.key_id)
        current = self.keys.get(ref)
        if current is not None:
            current.operations += 1
            self._dirty_operations.add(ref)

    def flush_operations(self) -> None:
        if not self._dirty_operations:
            return
        counts = [(self.keys[r].operations, *r) for r in self._dirty_operations if r in self.keys]
        self._dirty_operations.clear()
        self.store.save_operations(counts)

    def total_operations(self) -> int:
        return sum(k.operations for k in self.keys.values())

    # --- backup and restore -------------------------------------------------------------
    def backup_file(self, tls_cert: bytes, tls_key: bytes) -> tuple[BackupFile, bytes]:
        """This HSM as a NetHSM backup (keyfender `System.backup`: the device's whole store)
        and the key to encrypt it with; 412 until a backup passphrase is set."""
        backup_salt, backup_key = self.backup_key()
        data_key = self.data_key()
        device_id = self.device_id()
        config_store_key = self.store.meta_get("config_store_key")
        unlock_salt, locked = self._unlock_material()
        entries = {nethsm_store.INITIALIZED: b""}
        entries |= nethsm_store.config_entries(data_key, backup_salt, backup_key)
        entries |= nethsm_store.local_entries(
            device_id, config_store_key, unlock_salt, locked, tls_cert, tls_key
        )
        entries |= nethsm_store.store_entries(self._contents(), data_key)
        backup = BackupFile(
            WRITTEN_FORMAT, backup_salt, locked, entries, device_id, config_store_key
        )
        return backup, backup_key

    def _contents(self) -> Contents:
        self.flush_operations()
        keys = [_key_entry(record, self.material(record)) for record in self.keys.values()]
        return Contents(list(self.users.values()), keys, set(self.namespaces))

    def restore(self, restore: Restore, operational: bool) -> None:
        """keyfender's rule (`System.restore`): a backup locked with this HSM's domain key
        and unlock passphrase replaces users, keys and namespaces at once, and the HSM stays
        Operational. Any other backup brings its unlock passphrase and domain key, and its
        records wait, the HSM Locked, for the unlock with that passphrase that decrypts
        them. The device ID and TLS certificate stay this HSM's; unattended boot goes off
        (it held the old domain key) and so does the backup passphrase (sealed under the old
        domain key) until that unlock takes the backup's."""
        same_lock = (restore.unlock_salt, restore.locked_domain_key) == self._unlock_material()
        if operational and same_lock:
            data_key = self.data_key()
            contents = nethsm_store.read_stores(restore.entries, data_key)
            self.store.replace_contents(*_records(contents, data_key), {})
            self._open(data_key)
            return
        meta = {
            **self._identity(),
            "unlock_salt": restore.unlock_salt,
            "locked_domain_key": restore.locked_domain_key,
            STAGED_CONFIG_SEALED: b"1" if restore.sealed_config else b"0",
            "unattended_wrapped": None,
            "backup_salt": None,
            "backup_key": None,
        }
        self.store.stage_restore(restore.entries, meta)
        self.lock()

    def _import_staged(self, data_key: bytes) -> None:
        """Decrypt a restored backup's records with its domain key, now unlocked."""
        staged = self.store.load_staged()
        sealed = self.store.meta_get(STAGED_CONFIG_SEALED) == b"1"
        meta: dict[str, bytes | None] = {STAGED_CONFIG_SEALED: None}
        passphrase = nethsm_store.read_backup_config(staged, data_key, sealed)
        if passphrase is not None:
            meta["backup_salt"] = passphrase[0]
            meta["backup_key"] = vault.seal(data_key, passphrase[1], BACKUP_KEY_AAD)
        contents = nethsm_store.read_stores(staged, data_key)
        self.store.replace_contents(*_records(contents, data_key), meta)


def _unlock_meta(data_key: bytes, passphrase: str) -> dict[str, bytes]:
    salt = os.urandom(vault.SALT_SIZE)
    return {
        "unlock_salt": salt,
        "locked_domain_key": vault.lock_domain_key(data_key, passphrase, salt),
    }


def _sealed(user: UserRecord, data_key: bytes) -> UserRecord:
    return replace(user, passphrase_hash=vault.seal(data_key, user.passphrase_hash, USER_AAD))


def _unsealed(user: UserRecord, data_key: bytes) -> UserRecord:
    return replace(user, passphrase_hash=vault.unseal(data_key, user.passphrase_hash, USER_AAD))


def _key_entry(record: KeyRecord, material: KeyMaterial) -> KeyEntry:
    return KeyEntry(
        record.namespace, record.key_id, material, record.mechanisms, record.tags, record.label,
        record.cert, record.cert_type, record.operations,
    )  # fmt: skip


def _key_record(entry: KeyEntry, data_key: bytes) -> KeyRecord:
    material = entry.material
    return KeyRecord(
        entry.namespace, entry.key_id, material.type, sorted(set(entry.mechanisms)), entry.tags,
        entry.label, material.public_json(), vault.seal(data_key, material.serialize(), KEY_AAD),
        entry.cert, entry.cert_type, entry.operations,
    )  # fmt: skip


def _records(
    contents: Contents, data_key: bytes
) -> tuple[list[KeyRecord], list[UserRecord], set[str]]:
    """Restored contents as rows, their secrets sealed under `data_key`."""
    keys = [_key_record(entry, data_key) for entry in contents.keys]
    users = [_sealed(u, data_key) for u in contents.users]
    return keys, users, contents.namespaces


def usable_by(record: KeyRecord, caller: Caller) -> bool:
    """Tag restrictions: a tagged key serves only operators holding one of its tags."""
    return not record.tags or bool(set(record.tags) & set(caller.tags))
