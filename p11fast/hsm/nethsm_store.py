"""A NetHSM's key-value store, entry by entry, and its conversion to and from our records
(keyfender `hsm.ml`, `encrypted_store.ml`, `config_store.ml`, `version.ml`).

A backup carries the device's whole store:

    /authentication/.version, /authentication/<user>   users ("ns~id" in a namespace)
    /key/.version, /key/<id>, /key/.<ns>/<id>            keys
    /namespace/.version, /namespace/<ns>                namespaces
    /config/version                                     "1" (format 1) or "0" (format 0), clear
    /config/backup-salt, /config/backup-key             the backup passphrase, as salt and key
    /config/unlock-salt, ...                            format 0: the configuration, in clear
    /local/<device>/config/unlock-salt, ...             format 1: one device's configuration
    /local/<device>/domain-key/attended                 the locked domain key, under a device key

Each store's values are sealed under SHA-256(domain key || store name) with the entry's name
as associated data; format 1 seals the global configuration the same way (store
`config_store`) and a device's own configuration under that device's config store key.
Records are JSON written by OCaml's yojson, whose strings are raw bytes: a binary salt
appears as escaped and 8-bit characters, so JSON text is read and written as Latin-1 here
and each string turned back into the bytes it stands for.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from p11fast.hsm import vault
from p11fast.hsm.errors import BadRequest
from p11fast.hsm.keys import ALL_MECHANISMS, KeyMaterial
from p11fast.hsm.store import ROLES, UserRecord
from p11fast.hsm.validate import check_id, split_user_id

log = logging.getLogger("p11fast.hsm")

STORE_VERSION = b"0"  # Version.Current of the authentication, key and namespace stores
CONFIG_VERSION = b"1"
VERSION_ENTRY = ".version"
# store directory -> the name its key is derived with
STORES = {"authentication": "auth_store", "key": "key_store", "namespace": "namespace_store"}
BACKUP_CONFIG = ("/config/backup-salt", "/config/backup-key")
INITIALIZED = "/.initialized"


@dataclass
class KeyEntry:
    namespace: str
    key_id: str
    material: KeyMaterial
    mechanisms: list[str]
    tags: list[str]
    label: str = ""
    cert: bytes | None = None
    cert_type: str | None = None
    operations: int = 0


@dataclass
class Contents:
    """Users (`passphrase_hash` in the vault's form), keys and namespaces."""

    users: list[UserRecord] = field(default_factory=list)
    keys: list[KeyEntry] = field(default_factory=list)
    namespaces: set[str] = field(default_factory=set)


class UnusableEntry(ValueError):
    """An entry this HSM cannot take over (unknown key type or mechanism, malformed)."""


# --- entry names -----------------------------------------------------------------------------
def user_path(user_id: str) -> str:
    return f"/authentication/{user_id}"


def key_path(namespace: str, key_id: str) -> str:
    return f"/key/.{namespace}/{key_id}" if namespace else f"/key/{key_id}"


def namespace_path(namespace: str) -> str:
    return f"/namespace/{namespace}"


def local_path(device_id: str, name: str) -> str:
    return f"/local/{device_id}/config/{name}"


def store_of(name: str) -> str | None:
    """The store directory an entry belongs to, or None for configuration and the like."""
    directory = name[1:].split("/", 1)[0]
    return directory if directory in STORES and name.count("/") >= 2 else None


def check_entry_name(name: str) -> None:
    """400 unless a store entry's name maps onto a user, key or namespace ID we accept."""
    parts = name[1:].split("/")
    if parts[-1] == VERSION_ENTRY and len(parts) == 2:
        return
    try:
        if parts[0] == "authentication" and len(parts) == 2:
            split_user_id(parts[1])
        elif parts[0] == "namespace" and len(parts) == 2:
            check_id(parts[1], "namespace")
        elif parts[0] == "key" and len(parts) == 2:
            check_id(parts[1], "key ID")
        elif parts[0] == "key" and len(parts) == 3 and parts[1].startswith("."):
            check_id(parts[1][1:], "namespace")
            check_id(parts[2], "key ID")
        else:
            raise BadRequest("unexpected name")
    except BadRequest as exc:
        raise BadRequest(f"backup entry {name[:160]!r} is not a user, key or namespace") from exc


def unlock_salt(entries: dict[str, bytes], device_id: str, config_store_key: bytes | None) -> bytes:
    """The unlock salt a backup's domain key is locked with. Format 1 keeps it in the backup
    device's configuration, sealed under its config store key; format 0 (no config store
    key) in /config/unlock-salt, in clear. 400 if it is missing."""
    if config_store_key is None:
        salt = entries.get("/config/unlock-salt")
    else:
        name = local_path(device_id, "unlock-salt")
        try:
            salt = vault.unseal(config_store_key, entries[name], name.encode())
        except (KeyError, vault.SealError):
            salt = None
    if salt is None or len(salt) != vault.SALT_SIZE:
        raise BadRequest("the backup has no readable unlock salt")
    return salt


# --- writing -----------------------------------------------------------------------------
def store_entries(contents: Contents, domain_key: bytes) -> dict[str, bytes]:
    """The sealed /authentication, /key and /namespace entries holding `contents`."""
    plain = {f"/{directory}/{VERSION_ENTRY}": STORE_VERSION for directory in STORES}
    for user in contents.users:
        plain[user_path(user.user_id)] = _encode_user(user)
    for entry in contents.keys:
        plain[key_path(entry.namespace, entry.key_id)] = _encode_key(entry)
    for namespace in contents.namespaces:
        plain[namespace_path(namespace)] = _dumps(_latin(namespace.encode()))
    keys = {directory: vault.store_key(domain_key, name) for directory, name in STORES.items()}
    return {
        name: vault.seal(keys[store_of(name)], value, name.encode())
        for name, value in plain.items()
    }


def config_entries(domain_key: bytes, backup_salt: bytes, backup_key: bytes) -> dict[str, bytes]:
    """Format 1's global configuration: the version and the backup passphrase."""
    config_key = vault.store_key(domain_key, "config_store")
    entries = {"/config/version": CONFIG_VERSION}
    for name, value in zip(BACKUP_CONFIG, (backup_salt, backup_key), strict=True):
        entries[name] = vault.seal(config_key, value, name.encode())
    return entries


def local_entries(
    device_id: str,
    config_store_key: bytes,
    unlock_salt: bytes,
    locked_domain_key: bytes,
    tls_cert: bytes,
    tls_key: bytes,
) -> dict[str, bytes]:
    """Format 1's entries of one device: what a NetHSM needs to boot after restoring them
    (unlock salt, TLS certificate chain and key), and the device's copy of the locked domain
    key. That copy is sealed under the device's own key, which only its hardware has: ours
    is a random key nobody keeps, so a NetHSM finds it unreadable and writes its own, as
    for a backup from another device (keyfender `System.restore`)."""
    chain = x509.load_pem_x509_certificates(tls_cert)
    ders = [cert.public_bytes(serialization.Encoding.DER) for cert in chain]
    values = {
        "unlock-salt": unlock_salt,
        # the chain, server certificate first, each DER after its length (config_store.ml)
        "certificate": b"".join(len(der).to_bytes(4, "big") + der for der in ders),
        "private-key": tls_key,
    }
    entries = {
        local_path(device_id, name): vault.seal(
            config_store_key, value, local_path(device_id, name).encode()
        )
        for name, value in values.items()
    }
    domain_key_path = f"/local/{device_id}/domain-key/attended"
    unreadable = vault.seal(os.urandom(vault.KEY_SIZE), locked_domain_key, b"domain-key")
    entries[domain_key_path] = unreadable
    return entries


def _encode_user(user: UserRecord) -> bytes:
    salt, digest = user.passphrase_hash[: vault.SALT_SIZE], user.passphrase_hash[vault.SALT_SIZE :]
    return _dumps(
        {
            "name": _text(user.real_name),
            "salt": _latin(salt),
            "digest": _latin(digest),
            "role": user.role,
            "tags": [_text(tag) for tag in user.tags],
        }
    )


def _encode_key(entry: KeyEntry) -> bytes:
    material = entry.material
    if material.type == "Generic":
        private = {"raw": base64.b64encode(material.private).decode()}
    else:
        pem = material.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        private = {"PEM": pem.decode()}
    cert = None if entry.cert is None else [_text(entry.cert_type or ""), _latin(entry.cert)]
    record = {
        # keyfender lists a key's mechanisms in the order its `mechanism` type declares them
        "mechanisms": sorted(entry.mechanisms, key=ALL_MECHANISMS.index),
        "priv": private,
        "cert": cert,
        "operations": entry.operations,
        # yojson leaves out a field that has its default value (no tags)
        "restrictions": {"tags": [_text(t) for t in entry.tags]} if entry.tags else {},
    }
    if entry.label:
        record["label"] = _text(entry.label)
    return _dumps(record)


# --- reading -----------------------------------------------------------------------------
def read_stores(entries: dict[str, bytes], domain_key: bytes) -> Contents:
    """Decrypt and convert the store entries. An entry this HSM cannot take over is logged
    (by name) and left out; so is a whole store of a version we do not know."""
    contents = Contents()
    for name, plain in _decrypted(entries, domain_key):
        try:
            _add_entry(contents, name, plain)
        except UnusableEntry as exc:
            log.warning("restore: left out %s: %s", name, exc)
    return contents


def read_backup_config(
    entries: dict[str, bytes], domain_key: bytes, sealed: bool
) -> tuple[bytes, bytes] | None:
    """(salt, key) of the backup passphrase, if the backup has one; format 0 keeps them clear."""
    if not all(name in entries for name in BACKUP_CONFIG):
        return None
    config_key = vault.store_key(domain_key, "config_store")
    try:
        salt, key = (
            vault.unseal(config_key, entries[n], n.encode()) if sealed else entries[n]
            for n in BACKUP_CONFIG
        )
    except vault.SealError:
        log.warning("restore: left out the backup passphrase: it does not decrypt")
        return None
    return salt, key


def _decrypted(entries: dict[str, bytes], domain_key: bytes) -> Iterator[tuple[str, bytes]]:
    by_store: dict[str, list[str]] = {}
    for name in entries:
        directory = store_of(name)
        if directory is not None:
            by_store.setdefault(directory, []).append(name)
    for directory, names in sorted(by_store.items()):
        key = vault.store_key(domain_key, STORES[directory])
        plain = {}
        for name in sorted(names):
            try:
                plain[name] = vault.unseal(key, entries[name], name.encode())
            except vault.SealError:
                log.warning("restore: left out %s: it does not decrypt", name)
        version = plain.pop(f"/{directory}/{VERSION_ENTRY}", STORE_VERSION)
        if version != STORE_VERSION:
            log.warning("restore: left out the %s store: version %r", directory, version[:8])
            continue
        yield from plain.items()


def _add_entry(contents: Contents, name: str, plain: bytes) -> None:
    parts = name[1:].split("/")
    try:
        record = json.loads(plain.decode("latin-1"))
        if parts[0] == "authentication":
            contents.users.append(_decode_user(parts[1], record))
        elif parts[0] == "namespace":
            if _bytes(record).decode() != parts[1]:
                raise UnusableEntry("the entry names another namespace")
            contents.namespaces.add(parts[1])
        else:
            namespace = parts[1][1:] if len(parts) == 3 else ""
            contents.keys.append(_decode_key(namespace, parts[-1], record))
    except (ValueError, TypeError, KeyError, AttributeError, BadRequest) as exc:
        raise UnusableEntry(str(exc)[:200] or type(exc).__name__) from None


def _decode_user(user_id: str, record: dict) -> UserRecord:
    namespace, _ = split_user_id(user_id)
    salt, digest = _bytes(record["salt"]), _bytes(record["digest"])
    if len(salt) != vault.SALT_SIZE or len(digest) != vault.KEY_SIZE:
        raise UnusableEntry("passphrase salt or digest has an unexpected size")
    if record["role"] not in ROLES:
        raise UnusableEntry(f"unknown role {str(record['role'])[:32]!r}")
    tags = _tags(record.get("tags", []))
    name = _bytes(record["name"]).decode()
    return UserRecord(user_id, namespace, record["role"], name, salt + digest, tags)


def _decode_key(namespace: str, key_id: str, record: dict) -> KeyEntry:
    mechanisms = [_bytes(m).decode() for m in record["mechanisms"]]
    unknown = [m for m in mechanisms if m not in ALL_MECHANISMS]
    if unknown or not mechanisms:
        raise UnusableEntry(f"mechanisms not supported here: {unknown[:4]}")
    private = record["priv"]
    if set(private) == {"raw"}:
        material = KeyMaterial("Generic", _b64(private["raw"]))
    elif set(private) == {"PEM"}:
        material = KeyMaterial.from_pem(_bytes(private["PEM"]))
    else:
        raise UnusableEntry(f"private key format {sorted(private)[:2]} not supported here")
    tags = _tags(record["restrictions"].get("tags", []))
    cert, cert_type = None, None
    if record["cert"] is not None:
        cert_type, data = record["cert"]
        cert, cert_type = _bytes(data), _bytes(cert_type).decode()
    label = _bytes(record.get("label", "")).decode()
    operations = record["operations"]
    if not isinstance(operations, int) or operations < 0:
        raise UnusableEntry("operations is not a count")
    return KeyEntry(
        namespace, key_id, material, mechanisms, tags, label, cert, cert_type, operations
    )


def _tags(values: list) -> list[str]:
    return sorted({check_id(_bytes(tag).decode(), "tag") for tag in values})


# --- yojson strings --------------------------------------------------------------------
def _dumps(value: object) -> bytes:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # yojson escapes DEL too; json.dumps never writes a raw DEL outside a string
    return text.replace("\x7f", "\\u007f").encode("latin-1")


def _latin(data: bytes) -> str:
    """Bytes as the JSON string yojson writes for them."""
    return data.decode("latin-1")


def _text(text: str) -> str:
    return _latin(text.encode())


def _bytes(value: object) -> bytes:
    if not isinstance(value, str):
        raise UnusableEntry("expected a string")
    return value.encode("latin-1")  # a character above U+00FF raises: not yojson's writing


def _b64(value: object) -> bytes:
    try:
        return base64.b64decode(_bytes(value), validate=True)
    except binascii.Error as exc:
        raise UnusableEntry("raw key is not base64") from exc
