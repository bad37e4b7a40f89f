"""The HSM's state and rules, independent of HTTP: lifecycle, users, namespaces, keys.

Everything lives in memory while Operational and is written through to the store before
a call returns. Private keys stay sealed under the data key; decrypted key objects are
cached per (namespace, id) and dropped whenever that key changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass
from enum import Enum

from p11fast.hsm import vault
from p11fast.hsm.errors import BadRequest, Conflict, Forbidden, NotFound, PreconditionFailed
from p11fast.hsm.keys import KeyMaterial
from p11fast.hsm.store import KeyRecord, Store, UserRecord

ROLES = ("Administrator", "Operator", "Metrics", "Backup")
KEY_AAD = b"p11fast-key"
BACKUP_KEY_AAD = b"backup-key"
# scrypt cost of the backup key: the parameters NetHSM backups are encrypted with
BACKUP_SCRYPT_N, BACKUP_SCRYPT_P = 16384, 16


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
        if self.store.meta_get("unlock_wrapped") is None:
            self.state = State.UNPROVISIONED
            return
        self.state = State.LOCKED
        sealed = self.store.meta_get("unattended_wrapped")
        if sealed is not None and os.path.exists(self.machine_key_path):
            self._open(vault.unseal(self._machine_key(), sealed, b"unattended"))

    def _open(self, data_key: bytes) -> None:
        self._data_key = data_key
        self.keys = {(k.namespace, k.key_id): k for k in self.store.load_keys()}
        self.users = {u.user_id: u for u in self.store.load_users()}
        self.namespaces = self.store.load_namespaces()
        self._materials.clear()
        self.users_generation += 1
        self.state = State.OPERATIONAL

    def provision(self, unlock_passphrase: str, admin_passphrase: str) -> None:
        data_key = os.urandom(vault.KEY_SIZE)
        admin = UserRecord(
            "admin", "", "Administrator", "admin", vault.hash_passphrase(admin_passphrase)
        )
        wrapped = vault.WrappedKey.wrap(unlock_passphrase, data_key)
        with self.store.transaction():
            self.store.meta_set("device_id", secrets.token_hex(5).upper().encode())
            self.store.put_user(admin)
            self.store.meta_set("unlock_wrapped", wrapped.to_bytes())
        self._open(data_key)

    def unlock(self, passphrase: str) -> None:
        wrapped = vault.WrappedKey.from_bytes(self.store.meta_get("unlock_wrapped"))
        try:
            data_key = wrapped.unwrap(passphrase)
        except vault.SealError as exc:
            raise Forbidden("unlock failed") from exc
        if self.state is not State.LOCKED:
            raise PreconditionFailed("NetHSM is not Locked")
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
        """Keys, users, namespaces, configuration and the unattended-boot key are erased;
        the HSM is Unprovisioned. The store is wiped in one transaction first, so a crash
        afterwards still comes back Unprovisioned."""
        self.lock()
        self.store.wipe()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.machine_key_path)
        self.namespaces = set()
        self.state = State.UNPROVISIONED

    def device_id(self) -> str:
        return (self.store.meta_get("device_id") or b"UNKNOWN").decode()

    # --- configuration ------------------------------------------------------------------
    def set_unlock_passphrase(self, current: str, new: str) -> None:
        wrapped = vault.WrappedKey.from_bytes(self.store.meta_get("unlock_wrapped"))
        try:
            data_key = wrapped.unwrap(current)
        except vault.SealError as exc:
            # keyfender answers 403 to a wrong current passphrase (hsm.ml, check_unlock_passphrase)
            raise Forbidden("current unlock passphrase is wrong") from exc
        self.store.meta_set("unlock_wrapped", vault.WrappedKey.wrap(new, data_key).to_bytes())

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
            if derive_backup_key(current, salt) != key:
                raise Forbidden("current backup passphrase is wrong")
        elif current:  # keyfender: 403 as for a wrong one (hsm.ml, check_backup_passphrase)
            raise Forbidden("no backup passphrase is set: currentPassphrase must be empty")
        salt = os.urandom(vault.SALT_SIZE)
        sealed = vault.seal(self.data_key(), derive_backup_key(new, salt), BACKUP_KEY_AAD)
        with self.store.transaction():
            self.store.meta_set("backup_salt", salt)
            self.store.meta_set("backup_key", sealed)

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
        try:
            return self.users[user_id]
        except KeyError:
            raise NotFound(f"user {user_id} not found") from None

    def add_user(self, user: UserRecord) -> None:
        if user.user_id in self.users:
            raise Conflict(f"user {user.user_id} already exists")
        self.store.put_user(user)
        self.users[user.user_id] = user

    def update_user(self, user: UserRecord) -> None:
        self.store.put_user(user)
        self.users[user.user_id] = user
        self.users_generation += 1

    def delete_user(self, user_id: str) -> None:
        self.user(user_id)
        self.store.delete_user(user_id)
        del self.users[user_id]
        self.users_generation += 1

    # --- keys ---------------------------------------------------------------------------
    def key(self, namespace: str, key_id: str) -> KeyRecord:
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
        record = KeyRecord(
            namespace, key_id, material.type, sorted(set(mechanisms)), tags, label,
            material.public_json(), vault.seal(self.data_key(), material.serialize(), KEY_AAD),
        )  # fmt: skip
        self.store.put_key(record)
        self.keys[(namespace, key_id)] = record
        self._materials[(namespace, key_id)] = material
        return record

    def save_key(self, record: KeyRecord) -> None:
        """Persist a metadata change (label, tags, certificate) of an existing key."""
        self.store.put_key(record)

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
        # throughput at the disk's flush rate.
        record.operations += 1
        self._dirty_operations.add((record.namespace, record.key_id))

    def flush_operations(self) -> None:
        if not self._dirty_operations:
            return
        counts = [(self.keys[r].operations, *r) for r in self._dirty_operations if r in self.keys]
        self._dirty_operations.clear()
        self.store.save_operations(counts)

    def total_operations(self) -> int:
        return sum(k.operations for k in self.keys.values())

    # --- restore ------------------------------------------------------------------------
    def reseal_keys(self, keys: list[KeyRecord], old_data_key: bytes) -> list[KeyRecord]:
        """Move restored private keys from the backup's data key to ours."""
        resealed = []
        for record in keys:
            raw = vault.unseal(old_data_key, record.sealed_private, KEY_AAD)
            sealed = vault.seal(self.data_key(), raw, KEY_AAD)
            resealed.append(KeyRecord(**{**record.__dict__, "sealed_private": sealed}))
        return resealed

    def replace_contents(
        self,
        keys: list[KeyRecord],
        users: list[UserRecord],
        namespaces: set[str],
        meta: dict[str, bytes] | None,
    ) -> None:
        """Install a restored store. With `meta` (a restore while Unprovisioned) the
        configuration comes back too and the HSM waits Locked for its unlock passphrase."""
        self.store.replace_contents(keys, users, namespaces, meta)
        if meta is None:
            self._open(self.data_key())
        else:
            self.lock()


def derive_backup_key(passphrase: str, salt: bytes) -> bytes:
    return vault.derive_key(passphrase, salt, n=BACKUP_SCRYPT_N, p=BACKUP_SCRYPT_P)


def usable_by(record: KeyRecord, caller: Caller) -> bool:
    """Tag restrictions: a tagged key serves only operators holding one of its tags."""
    return not record.tags or bool(set(record.tags) & set(caller.tags))
