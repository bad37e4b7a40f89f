"""Backup and restore: backups written by real NetHSMs (formats 0 and 1) and by us, restored
into Unprovisioned and Operational software HSMs running as processes, checked through
Nitrokey's `nethsm` SDK, raw HTTP, and keyfender's own decryption scheme."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from hsm_client import ADMIN, OPERATOR, Client, error_message
from keyfender_backup import open_backup, record
from nethsm import Authentication, Base64, NetHSM, Role, SignMode
from nethsm.backup import EncryptedBackup

from p11fast.hsm import backup as backup_file
from p11fast.hsm.testing import UNLOCK_PASSPHRASE, HsmProcess, running_hsm

DATA = Path(__file__).parent / "data" / "nethsm-backups"
REAL = ["v0.bin", "v1.bin"]
# The passphrases the real backups were made with (data/nethsm-backups/README.md).
REAL_UNLOCK, BACKUP_PW = "unlockunlock", "backupbackup"
REAL_USERS = {
    "admin": ("adminadmin", Role.ADMINISTRATOR),
    "backup": ("backupbackup", Role.BACKUP),
    "operator": ("operatoroperator", Role.OPERATOR),
}
SYSTEM_TIME = "2025-06-01T12:00:00Z"


def real(name: str = "v1.bin") -> bytes:
    return (DATA / name).read_bytes()


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[HsmProcess]:
    """An Unprovisioned HSM."""
    with running_hsm(tmp_path / "fresh", init=False) as hsm:
        yield hsm


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[HsmProcess]:
    """An Operational HSM (admin, operator, unattended boot) holding one key, `local1`."""
    with running_hsm(tmp_path / "dev") as hsm:
        generate(Client(hsm), "local1", "EC_P256", ["ECDSA_Signature"])
        yield hsm


class Restored(NamedTuple):
    hsm: HsmProcess
    backup: str


@pytest.fixture(scope="module", params=REAL)
def restored(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[Restored]:
    """An HSM restored from a real backup (each format) and unlocked with its passphrase."""
    with running_hsm(tmp_path_factory.mktemp("restored"), init=False) as hsm:
        restored_real(hsm, request.param)
        yield Restored(hsm, request.param)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Iterator[Client]:
    """An HSM restored from the real format 1 backup, unlocked, and otherwise untouched."""
    with running_hsm(tmp_path_factory.mktemp("pristine"), init=False) as hsm:
        yield restored_real(hsm)


def generate(
    client: Client, key_id: str, key_type: str, mechanisms: list[str], auth=ADMIN, **extra
) -> None:
    body = {"mechanisms": mechanisms, "type": key_type, "id": key_id, **extra}
    response = client.post("/keys/generate", json=body, auth=auth)
    assert response.status_code == 201, response.text


def restore(
    client: Client,
    data: bytes,
    passphrase: str = BACKUP_PW,
    auth: tuple[str, str] | None = None,
    system_time: str = SYSTEM_TIME,
) -> requests.Response:
    arguments = json.dumps({"backupPassphrase": passphrase, "systemTime": system_time})
    files = {
        "arguments": (None, arguments, "application/json"),
        "backup_file": ("backup.bin", data, "application/octet-stream"),
    }
    return client.post("/system/restore", files=files, auth=auth)


def state(client: Client) -> str:
    return client.get("/health/state").json()["state"]


def wait_out_unlock_delay() -> None:
    """A failed unlock makes the next one within a second a 429 (keyfender rate_limit.ml)."""
    time.sleep(1.1)


def unlock(client: Client, passphrase: str) -> requests.Response:
    return client.post("/unlock", json={"passphrase": passphrase})


def sdk(hsm: HsmProcess, user: str, passphrase: str) -> NetHSM:
    return NetHSM(hsm.host_port, Authentication(user, passphrase), verify_tls=False)


def restored_real(hsm: HsmProcess, name: str = "v1.bin") -> Client:
    """`hsm` (Unprovisioned) after restoring a real backup and unlocking it."""
    client = Client(hsm)
    assert restore(client, real(name)).status_code == 204
    assert unlock(client, REAL_UNLOCK).status_code == 204
    return client


def ids(response: requests.Response, field: str) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(item[field] for item in response.json())


# --- real NetHSM backups into an Unprovisioned HSM -------------------------------------------
@pytest.mark.parametrize("name", REAL)
def test_a_real_backup_waits_locked_for_its_unlock_passphrase(fresh: HsmProcess, name: str) -> None:
    client = Client(fresh)
    assert restore(client, real(name)).status_code == 204
    assert state(client) == "Locked"
    assert unlock(client, "not-the-unlock-passphrase").status_code == 403
    assert state(client) == "Locked"
    wait_out_unlock_delay()
    assert unlock(client, REAL_UNLOCK).status_code == 204
    assert state(client) == "Operational"


def test_users_of_a_real_backup_log_in_with_their_passphrases(restored: Restored) -> None:
    client = Client(restored.hsm)
    admin = sdk(restored.hsm, "admin", REAL_USERS["admin"][0])
    assert sorted(admin.list_users()) == sorted(REAL_USERS)
    for user_id, (passphrase, role) in REAL_USERS.items():
        assert admin.get_user(user_id).role == role
        # checked against the digest the NetHSM stored; the role decides what comes next
        assert client.get("/keys", auth=(user_id, passphrase)).status_code != 401
        assert client.get("/keys", auth=(user_id, passphrase + "x")).status_code == 401


def test_the_key_of_a_real_backup_is_listed_and_signs(restored: Restored) -> None:
    operator = sdk(restored.hsm, "operator", REAL_USERS["operator"][0])
    assert operator.list_keys() == ["mykey"]
    key = operator.get_key("mykey")
    assert (key.type.value, [m.value for m in key.mechanisms]) == (
        "Curve25519",
        ["EdDSA_Signature"],
    )
    # the key is the one in the backup, as keyfender's own decryption reads it
    clear = open_backup(real(restored.backup), BACKUP_PW, REAL_UNLOCK).clear
    pem = record(clear["/key/mykey"])["priv"]
    private = serialization.load_pem_private_key(pem["PEM"].encode(), None)
    public = private.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert key.public_key.data.decode() == raw
    signature = operator.sign("mykey", Base64.encode(b"signed by a restored key"), SignMode.EDDSA)
    public.verify(signature.decode(), b"signed by a restored key")


def test_a_restored_real_backup_keeps_its_backup_passphrase(restored: Restored) -> None:
    data = sdk(restored.hsm, "backup", REAL_USERS["backup"][0]).backup()
    assert "/key/mykey" in EncryptedBackup.parse(data).decrypt(BACKUP_PW).data


# --- real NetHSM backups into an Operational HSM ----------------------------------------------
def test_a_real_backup_replaces_an_operational_hsms_users_and_keys_once_unlocked(
    dev: HsmProcess,
) -> None:
    client = Client(dev)
    assert restore(client, real(), auth=ADMIN).status_code == 204
    # the backup brought its own domain key: it waits for the backup's unlock passphrase
    assert state(client) == "Locked"
    assert unlock(client, REAL_UNLOCK).status_code == 204
    admin = ("admin", REAL_USERS["admin"][0])
    assert ids(client.get("/users", auth=admin), "user") == sorted(REAL_USERS)
    assert ids(client.get("/keys", auth=admin), "id") == ["mykey"]
    assert client.get("/keys", auth=ADMIN).status_code == 401


def test_a_real_backup_leaves_an_operational_hsms_device_id_and_tls_certificate(
    dev: HsmProcess,
) -> None:
    client = Client(dev)
    device_id = client.get("/system/info", auth=ADMIN).json()["deviceId"]
    certificate = client.get("/config/tls/cert.pem", auth=ADMIN).content
    restore(client, real(), auth=ADMIN)
    unlock(client, REAL_UNLOCK)
    admin = ("admin", REAL_USERS["admin"][0])
    assert client.get("/system/info", auth=admin).json()["deviceId"] == device_id
    assert client.get("/config/tls/cert.pem", auth=admin).content == certificate


def test_restoring_another_domain_key_turns_unattended_boot_off(dev: HsmProcess) -> None:
    client = Client(dev)
    restore(client, real(), auth=ADMIN)
    dev.kill()
    dev.start()
    assert state(client) == "Locked"
    unlock(client, REAL_UNLOCK)
    response = client.get("/config/unattended-boot", auth=("admin", REAL_USERS["admin"][0]))
    assert response.json() == {"status": "off"}


# --- our own backups ----------------------------------------------------------------------
SOURCE_UNLOCK = "source-unlock-passphrase"
NS_ADMIN = ("ns1~admin1", "ns1~admin1-passphrase")
BACKUP_USER = ("backup1", "backup1-passphrase")


class Source(NamedTuple):
    client: Client
    backup: bytes
    inventory: dict


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Iterator[Source]:
    """An HSM holding every kind of record, with its own unlock passphrase, and its backup."""
    with running_hsm(tmp_path_factory.mktemp("source")) as hsm:
        client = Client(hsm)
        change = {"newPassphrase": SOURCE_UNLOCK, "currentPassphrase": UNLOCK_PASSPHRASE}
        assert client.put("/config/unlock-passphrase", json=change, auth=ADMIN).ok
        populate(client)
        data = client.post("/system/backup", auth=BACKUP_USER).content
        yield Source(client, data, inventory(client))


def populate(client: Client) -> None:
    """Every kind of record a backup carries: keys of each family with tags, a label and a
    binary certificate, users of each role with tags, a namespace with its admin and key."""
    passphrase = {"newPassphrase": BACKUP_PW, "currentPassphrase": ""}
    assert client.put("/config/backup-passphrase", json=passphrase, auth=ADMIN).ok
    roles = {"backup1": "Backup", "metrics1": "Metrics", "ns1~admin1": "Administrator"}
    for user_id, role in roles.items():
        body = {"realName": f"Ms {user_id} ✓", "role": role, "passphrase": f"{user_id}-passphrase"}
        assert client.put(f"/users/{user_id}", json=body, auth=ADMIN).status_code == 201
    assert client.put("/namespaces/ns1", auth=ADMIN).status_code == 204
    assert client.put("/users/operator/tags/blue", auth=ADMIN).status_code == 204
    generate(client, "rsa1", "RSA", ["RSA_Signature_PKCS1", "RSA_Decryption_OAEP_SHA256"],
             length=2048, restrictions={"tags": ["blue"]}, label="my rsa ✓")  # fmt: skip
    certificate = bytes(range(256)) * 2
    headers = {"Content-Type": "application/octet-stream"}
    assert client.put("/keys/rsa1/cert", data=certificate, headers=headers, auth=ADMIN).ok
    generate(client, "ec1", "EC_P384", ["ECDSA_Signature"])
    generate(client, "ed1", "Curve25519", ["EdDSA_Signature"])
    generate(client, "aes1", "Generic", ["AES_Encryption_CBC", "AES_Decryption_CBC"], length=256)
    generate(client, "nskey", "BrainpoolP256", ["ECDSA_Signature"], auth=NS_ADMIN)
    sign = {"mode": "ECDSA", "message": base64.b64encode(b"\1" * 48).decode()}
    assert client.post("/keys/ec1/sign", json=sign, auth=OPERATOR).ok  # operations = 1


def inventory(client: Client) -> dict:
    """Everything a client can read of users, keys and namespaces."""
    result = {"namespaces": client.get("/namespaces", auth=ADMIN).json()}
    for who, auth in (("root", ADMIN), ("ns1", NS_ADMIN)):
        for key_id in ids(client.get("/keys", auth=auth), "id"):
            result[f"key {who} {key_id}"] = client.get(f"/keys/{key_id}", auth=auth).json()
    cert = client.get("/keys/rsa1/cert", auth=ADMIN)
    result["cert"] = (cert.headers["Content-Type"], cert.content)
    for user_id in ids(client.get("/users", auth=ADMIN), "user"):
        user = client.get(f"/users/{user_id}", auth=ADMIN).json()
        tags = client.get(f"/users/{user_id}/tags", auth=ADMIN)
        result[f"user {user_id}"] = (user, tags.json() if tags.ok else None)
    return result


def test_our_backup_brings_every_record_into_a_fresh_hsm(source: Source, fresh: HsmProcess) -> None:
    target = Client(fresh)
    assert restore(target, source.backup).status_code == 204
    assert unlock(target, SOURCE_UNLOCK).status_code == 204
    assert inventory(target) == source.inventory


def test_private_keys_of_our_backup_work_in_the_hsm_it_is_restored_into(
    source: Source, fresh: HsmProcess
) -> None:
    target = Client(fresh)
    restore(target, source.backup)
    unlock(target, SOURCE_UNLOCK)
    message = b"restored from our own backup"

    def public(key_id: str):
        pem = source.client.get(f"/keys/{key_id}/public.pem", auth=ADMIN).content
        return serialization.load_pem_public_key(pem)

    def use(key_id: str, operation: str, **body) -> bytes:
        response = target.post(f"/keys/{key_id}/{operation}", json=body, auth=OPERATOR)
        assert response.status_code == 200, response.text
        return base64.b64decode(next(iter(response.json().values())))

    digest = base64.b64encode(hashlib.sha384(message).digest()).decode()
    signature = use("ec1", "sign", mode="ECDSA", message=digest)
    public("ec1").verify(signature, message, ec.ECDSA(hashes.SHA384()))
    signature = use("ed1", "sign", mode="EdDSA", message=base64.b64encode(message).decode())
    public("ed1").verify(signature, message)
    oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
    secret = base64.b64encode(public("rsa1").encrypt(message, oaep)).decode()
    assert use("rsa1", "decrypt", mode="OAEP_SHA256", encrypted=secret) == message
    iv = base64.b64encode(os.urandom(16)).decode()
    plain = base64.b64encode(message.ljust(32)).decode()
    encrypt = {"mode": "AES_CBC", "message": plain, "iv": iv}
    encrypted = source.client.post("/keys/aes1/encrypt", json=encrypt, auth=OPERATOR).json()
    decrypted = use("aes1", "decrypt", mode="AES_CBC", encrypted=encrypted["encrypted"], iv=iv)
    assert decrypted == message.ljust(32)


def test_our_backup_restored_into_its_own_operational_hsm_applies_at_once(dev: HsmProcess) -> None:
    client = Client(dev)
    passphrase = {"newPassphrase": BACKUP_PW, "currentPassphrase": ""}
    assert client.put("/config/backup-passphrase", json=passphrase, auth=ADMIN).ok
    body = {"realName": "Bob", "role": "Backup", "passphrase": BACKUP_USER[1]}
    assert client.put("/users/backup1", json=body, auth=ADMIN).status_code == 201
    data = client.post("/system/backup", auth=BACKUP_USER).content
    assert client.delete("/keys/local1", auth=ADMIN).status_code == 204
    generate(client, "later", "EC_P256", ["ECDSA_Signature"])
    assert restore(client, data, auth=ADMIN).status_code == 204
    assert state(client) == "Operational"
    assert ids(client.get("/keys", auth=ADMIN), "id") == ["local1"]
    assert ids(client.get("/users", auth=ADMIN), "user") == ["admin", "backup1", "operator"]
    assert client.get("/config/unattended-boot", auth=ADMIN).json() == {"status": "on"}


def test_our_backup_restored_into_another_operational_hsm_needs_the_sources_unlock_passphrase(
    source: Source, dev: HsmProcess
) -> None:
    target = Client(dev)
    assert restore(target, source.backup, auth=ADMIN).status_code == 204
    assert unlock(target, UNLOCK_PASSPHRASE).status_code == 403
    wait_out_unlock_delay()
    assert unlock(target, SOURCE_UNLOCK).status_code == 204
    assert "local1" not in ids(target.get("/keys", auth=ADMIN), "id")


# --- the format is keyfender's --------------------------------------------------------------
def pattern(name: str, device_id: str) -> str:
    """An entry name with its device ID and its user, key or namespace ID generalised."""
    parts = name.replace(device_id, "DEVICE").split("/")
    if parts[1] in ("authentication", "key", "namespace") and parts[-1] != ".version":
        parts[-1] = "ID"
    return "/".join(parts)


def test_our_backup_has_the_entries_of_a_real_nethsm_backup(pristine: Client) -> None:
    ours = pristine.post("/system/backup", auth=("backup", "backupbackup")).content
    theirs = open_backup(real(), BACKUP_PW, REAL_UNLOCK)
    mine = open_backup(ours, BACKUP_PW, REAL_UNLOCK)
    assert mine.version == 1
    our_names = {pattern(n, mine.device_id) for n in mine.entries}
    their_names = {pattern(n, theirs.device_id) for n in theirs.entries}
    # network and clock offset have no meaning for a software HSM: a NetHSM keeps its own
    assert their_names - our_names == {
        "/local/DEVICE/config/ip-config",
        "/local/DEVICE/config/time-offset",
    }
    assert our_names <= their_names


def test_records_we_write_are_those_the_nethsm_wrote(pristine: Client) -> None:
    """Restored from a real backup and backed up again, every user, key, namespace and
    backup-passphrase record decrypts to the bytes the real NetHSM had written."""
    ours = pristine.post("/system/backup", auth=("backup", "backupbackup")).content
    theirs = open_backup(real(), BACKUP_PW, REAL_UNLOCK).clear
    mine = open_backup(ours, BACKUP_PW, REAL_UNLOCK).clear
    shared = {
        n for n in theirs if n.startswith(("/authentication/", "/key/", "/namespace/", "/config/"))
    }
    assert shared == {
        n for n in mine if n.startswith(("/authentication/", "/key/", "/namespace/", "/config/"))
    }
    assert {n: mine[n] for n in shared} == {n: theirs[n] for n in shared}
    assert mine["unlock-salt"] == theirs["unlock-salt"]


# --- damaged backups: 400, nothing changed ------------------------------------------------
def rewritten(change) -> bytes:
    """v1.bin decrypted, changed by `change(BackupFile)`, and encrypted again."""
    backup = backup_file.decode(real(), BACKUP_PW)
    change(backup)
    key = hashlib.scrypt(BACKUP_PW.encode(), salt=backup.salt, n=16384, r=8, p=16, maxmem=2**27)
    return backup_file.encode(backup, key[:32])


def garbled() -> bytes:
    data = bytearray(real())
    data[len(data) // 2] ^= 0x40
    return bytes(data)


DAMAGE = {
    "truncated": lambda: (real()[: len(real()) - 100], BACKUP_PW, SYSTEM_TIME),
    "garbled": lambda: (garbled(), BACKUP_PW, SYSTEM_TIME),
    "wrong passphrase": lambda: (real(), "wrong-backup-passphrase", SYSTEM_TIME),
    "not a backup": lambda: (b"PK\3\4 not a NetHSM backup", BACKUP_PW, SYSTEM_TIME),
    "format 2": lambda: (b"_NETHSM_BACKUP_\2" + real()[16:], BACKUP_PW, SYSTEM_TIME),
    "bad system time": lambda: (real(), BACKUP_PW, "yesterday"),
    "no unlock salt": lambda: (
        rewritten(lambda b: b.entries.pop("/local/0000000000/config/unlock-salt")),
        BACKUP_PW,
        SYSTEM_TIME,
    ),
    "invalid key ID": lambda: (
        rewritten(lambda b: b.entries.update({"/key/no~such!id": b.entries["/key/mykey"]})),
        BACKUP_PW,
        SYSTEM_TIME,
    ),
    "short domain key": lambda: (
        rewritten(lambda b: setattr(b, "locked_domain_key", b.locked_domain_key[:40])),
        BACKUP_PW,
        SYSTEM_TIME,
    ),
}


@functools.cache
def damaged(kind: str) -> tuple[bytes, str, str]:
    """(backup, passphrase, systemTime) of a restore request that cannot apply."""
    return DAMAGE[kind]()


@pytest.fixture(scope="module", params=["Unprovisioned", "Operational"])
def target(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[HsmProcess]:
    """An HSM in each state a restore is allowed in (Operational: admin, operator, `local1`)."""
    operational = request.param == "Operational"
    with running_hsm(tmp_path_factory.mktemp("target"), init=operational) as hsm:
        if operational:
            generate(Client(hsm), "local1", "EC_P256", ["ECDSA_Signature"])
        yield hsm


def database(hsm: HsmProcess) -> dict[str, list]:
    """Every row the HSM keeps, table by table."""
    with sqlite3.connect(f"file:{hsm.state_dir}/hsm.sqlite?mode=ro", uri=True) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {table: sorted(db.execute(f"SELECT * FROM {table}")) for table in tables}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_backup_that_cannot_apply_answers_400_and_changes_nothing(
    target: HsmProcess, damage: str
) -> None:
    client = Client(target)
    before, state_before = database(target), state(client)
    data, passphrase, system_time = damaged(damage)
    auth = ADMIN if state_before == "Operational" else None
    response = restore(client, data, passphrase, auth=auth, system_time=system_time)
    assert response.status_code == 400
    assert error_message(response)
    assert state(client) == state_before
    assert database(target) == before


# --- crashes ------------------------------------------------------------------------------
def test_a_restore_waiting_for_its_unlock_survives_kill_9(fresh: HsmProcess) -> None:
    client = Client(fresh)
    restore(client, real())
    fresh.kill()
    fresh.start()
    assert state(client) == "Locked"
    assert unlock(client, REAL_UNLOCK).status_code == 204
    assert ids(client.get("/keys", auth=("admin", "adminadmin")), "id") == ["mykey"]


def test_a_restore_killed_at_any_moment_leaves_the_old_store_or_the_new_one(
    dev: HsmProcess,
) -> None:
    """Kill -9 ever later into a restore until one gets through: every kill before that
    must leave this HSM untouched, the first after it the whole backup."""
    client = Client(dev)
    delay = 0.05
    while not _killed_after_commit(dev, client, delay):
        delay *= 2
        assert delay < 30, "a restore did not complete within 30 s"


def _killed_after_commit(hsm: HsmProcess, client: Client, delay: float) -> bool:
    threading.Thread(target=_restore_quietly, args=(client,), daemon=True).start()
    threading.Event().wait(delay)
    hsm.kill()
    hsm.start()
    if state(client) == "Operational":  # killed before the commit: unattended, untouched
        assert ids(client.get("/keys", auth=ADMIN), "id") == ["local1"]
        assert ids(client.get("/users", auth=ADMIN), "user") == ["admin", "operator"]
        return False
    assert state(client) == "Locked"  # after it: the whole backup, behind its passphrase
    assert unlock(client, REAL_UNLOCK).status_code == 204
    admin = ("admin", "adminadmin")
    assert ids(client.get("/keys", auth=admin), "id") == ["mykey"]
    assert ids(client.get("/users", auth=admin), "user") == sorted(REAL_USERS)
    return True


def _restore_quietly(client: Client) -> None:
    try:
        restore(client, real(), auth=ADMIN)
    except requests.RequestException:
        pass  # killed mid-request


# --- storage ------------------------------------------------------------------------------
def test_passphrase_digests_are_sealed_at_rest(dev: HsmProcess) -> None:
    with sqlite3.connect(f"file:{dev.state_dir}/hsm.sqlite?mode=ro", uri=True) as db:
        (stored,) = db.execute("SELECT passphrase_hash FROM users WHERE id = 'operator'").fetchone()
    passphrase = OPERATOR[1].encode()
    digests = {
        hmac.digest(stored[i : i + 16], passphrase, "sha256") for i in range(len(stored) - 15)
    }
    assert not any(digest in stored for digest in digests)


def test_a_state_directory_from_before_nethsm_storage_is_refused(tmp_path: Path) -> None:
    state_dir = tmp_path / "old"
    state_dir.mkdir()
    with sqlite3.connect(state_dir / "hsm.sqlite") as db:
        db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('unlock_wrapped', x'00')")
    with pytest.raises(RuntimeError, match="earlier p11fast"):
        with running_hsm(state_dir, init=False):
            pass
