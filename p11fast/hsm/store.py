"""SQLite persistence. Every mutating call commits before it returns, so whatever the API
acknowledged survives a kill -9 (WAL journal, synchronous=FULL)."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS namespaces (id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, namespace TEXT NOT NULL, role TEXT NOT NULL, real_name TEXT NOT NULL,
    passphrase_hash BLOB NOT NULL, tags TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keys (
    namespace TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL, mechanisms TEXT NOT NULL,
    tags TEXT NOT NULL, label TEXT NOT NULL, public TEXT, sealed_private BLOB NOT NULL,
    cert BLOB, cert_type TEXT, operations INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, id));
CREATE TABLE IF NOT EXISTS staged (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""
ROLES = ("Administrator", "Operator", "Metrics", "Backup")


@dataclass
class KeyRecord:
    namespace: str
    key_id: str
    type: str
    mechanisms: list[str]
    tags: list[str]
    label: str
    public: dict | None
    sealed_private: bytes
    cert: bytes | None = None
    cert_type: str | None = None
    operations: int = 0

    def to_row(self) -> tuple:
        public = None if self.public is None else json.dumps(self.public)
        return (
            self.namespace, self.key_id, self.type, json.dumps(self.mechanisms),
            json.dumps(self.tags), self.label, public, self.sealed_private, self.cert,
            self.cert_type, self.operations,
        )  # fmt: skip

    @classmethod
    def from_row(cls, row: tuple) -> KeyRecord:
        ns, key_id, type_, mechs, tags, label, public, sealed, cert, cert_type, ops = row
        return cls(
            ns, key_id, type_, json.loads(mechs), json.loads(tags), label,
            None if public is None else json.loads(public), sealed, cert, cert_type, ops,
        )  # fmt: skip


@dataclass
class UserRecord:
    user_id: str
    namespace: str
    role: str
    real_name: str
    passphrase_hash: bytes
    tags: list[str] = field(default_factory=list)

    def to_row(self) -> tuple:
        return (
            self.user_id, self.namespace, self.role, self.real_name, self.passphrase_hash,
            json.dumps(self.tags),
        )  # fmt: skip

    @classmethod
    def from_row(cls, row: tuple) -> UserRecord:
        user_id, ns, role, real_name, pw_hash, tags = row
        return cls(user_id, ns, role, real_name, pw_hash, json.loads(tags))


def _make_private(path: str) -> None:
    """The database holds passphrase hashes and sealed keys: owner-only, whatever the umask.
    SQLite creates its -wal and -shm files with the database file's mode."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (path, path + "-wal", path + "-shm"):
        if os.path.exists(name):
            os.chmod(name, 0o600)


INSERT_KEY = "INSERT OR REPLACE INTO keys VALUES (?,?,?,?,?,?,?,?,?,?,?)"
KEY_COLUMNS = (
    "namespace, id, type, mechanisms, tags, label, public, sealed_private, cert, cert_type, "
    "operations"
)


class Store:
    def __init__(self, path: str) -> None:
        _make_private(path)
        # One connection shared by the event loop and executor threads, serialised by a lock.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._db.in_transaction:
                yield self._db
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # meta
    def meta_get(self, name: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else bytes(row[0])

    def meta_set(self, name: str, value: bytes | None) -> None:
        self.meta_update({name: value})

    def meta_update(self, changes: dict[str, bytes | None]) -> None:
        """Set (None: delete) several values in one transaction."""
        with self.transaction() as db:
            _change_meta(db, changes)

    def meta_all(self) -> dict[str, bytes]:
        with self._lock:
            return {n: bytes(v) for n, v in self._db.execute("SELECT name, value FROM meta")}

    # keys
    def load_keys(self) -> list[KeyRecord]:
        with self._lock:
            rows = self._db.execute(f"SELECT {KEY_COLUMNS} FROM keys").fetchall()
        return [KeyRecord.from_row(r) for r in rows]

    def put_key(self, record: KeyRecord) -> None:
        with self.transaction() as db:
            db.execute(INSERT_KEY, record.to_row())

    def delete_key(self, namespace: str, key_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM keys WHERE namespace = ? AND id = ?", (namespace, key_id))

    def save_operations(self, counts: list[tuple[int, str, str]]) -> None:
        with self.transaction() as db:
            db.executemany("UPDATE keys SET operations = ? WHERE namespace = ? AND id = ?", counts)

    # users
    def load_users(self) -> list[UserRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM users").fetchall()
        return [UserRecord.from_row(r) for r in rows]

    def put_user(self, user: UserRecord) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO users VALUES (?,?,?,?,?,?)", user.to_row())

    def delete_user(self, user_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM users WHERE id = ?", (user_id,))

    # namespaces
    def load_namespaces(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT id FROM namespaces")}

    def add_namespace(self, namespace: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO namespaces VALUES (?)", (namespace,))

    def delete_namespace(self, namespace: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM namespaces WHERE id = ?", (namespace,))
            db.execute("DELETE FROM keys WHERE namespace = ?", (namespace,))

    # restore
    def load_staged(self) -> dict[str, bytes]:
        with self._lock:
            return {n: bytes(v) for n, v in self._db.execute("SELECT name, value FROM staged")}

    def stage_restore(self, entries: dict[str, bytes], meta: dict[str, bytes | None]) -> None:
        """Empty the key store and keep a restored backup's entries until the unlock that can
        decrypt them, with `meta` changes (None deletes), in one transaction."""
        with self.transaction() as db:
            _clear_contents(db)
            db.executemany("INSERT INTO staged VALUES (?, ?)", list(entries.items()))
            _change_meta(db, meta)

    def wipe(self, keep: tuple[str, ...]) -> None:
        """Factory reset: every table emptied in one transaction, but the meta values named
        in `keep`."""
        with self.transaction() as db:
            _clear_contents(db)
            marks = ",".join("?" * len(keep))
            db.execute(f"DELETE FROM meta WHERE name NOT IN ({marks})", keep)

    def replace_contents(
        self,
        keys: list[KeyRecord],
        users: list[UserRecord],
        namespaces: set[str],
        meta: dict[str, bytes | None],
    ) -> None:
        """Swap in a key store, with `meta` changes (None deletes), in one transaction; a
        staged restore is consumed by it."""
        with self.transaction() as db:
            _clear_contents(db)
            db.executemany(INSERT_KEY, [k.to_row() for k in keys])
            db.executemany("INSERT INTO users VALUES (?,?,?,?,?,?)", [u.to_row() for u in users])
            db.executemany("INSERT INTO namespaces VALUES (?)", [(n,) for n in namespaces])
            _change_meta(db, meta)


def _clear_contents(db: sqlite3.Connection) -> None:
    for table in ("keys", "users", "namespaces", "staged"):
        db.execute(f"DELETE FROM {table}")


def _change_meta(db: sqlite3.Connection, meta: dict[str, bytes | None]) -> None:
    for name, value in meta.items():
        if value is None:
            db.execute("DELETE FROM meta WHERE name = ?", (name,))
        else:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))
