"""p11fast.snapshot and what config.load records for it (the loader's side: test_light_mode)."""

import os
import time

import pytest

from p11fast import config, log, snapshot

CONFIG = """\
slots:
  - label: S
    operator: {username: operator, password: "env:P11FAST_TEST_PASSWORD"}
    instances:
      - url: https://hsm.example/api/v1
"""
BINARIES = ("libp11fast.so", "_abi.so")


@pytest.fixture
def settled_config(tmp_path, monkeypatch):
    """A config file, and stand-ins for the binaries, older than RACY_SECONDS (their ctime
    cannot be set back, so this waits), found through P11FAST_CONFIG_FILE."""
    path = tmp_path / "p11fast.conf"
    path.write_text(CONFIG)
    for name in BINARIES:
        (tmp_path / name).write_bytes(name.encode())
    time.sleep(snapshot.RACY_SECONDS * 2)
    monkeypatch.setenv("P11FAST_CONFIG_FILE", str(path))
    monkeypatch.setenv("P11FAST_TEST_PASSWORD", "secret-value")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(snapshot.SWITCH, raising=False)
    return path


MECHANISMS = [(0x1, b"m" * 24), (0x1041, b"n" * 24)]  # CKM_RSA_PKCS, CKM_ECDSA
SLOTS = [(b"s" * 104, b"t" * 208, 1, b"operator", b"spec")]


def write(cfg, tmp_path):
    binaries = [str(tmp_path / name) for name in BINARIES[1:]]  # the ABI's own list
    snapshot.write(cfg, None, b"i" * 88, SLOTS, MECHANISMS, None, binaries)
    directory = tmp_path / "cache" / "p11fast"
    return sorted(directory.iterdir()) if directory.exists() else []


def test_load_records_the_config_file_and_the_env_variables(settled_config):
    cfg = config.load()
    assert cfg.examined == ((str(settled_config), config.file_identity(str(settled_config))),)
    assert cfg.env_names == ("P11FAST_TEST_PASSWORD",)


def test_search_path_discovery_records_every_candidate_even_absent(monkeypatch, tmp_path):
    monkeypatch.delenv("P11FAST_CONFIG_FILE", raising=False)
    monkeypatch.delenv("P11NETHSM_CONFIG_FILE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    os.makedirs(tmp_path / ".config" / "p11fast")
    plain = CONFIG.replace("env:P11FAST_TEST_PASSWORD", "pw")
    (tmp_path / ".config" / "p11fast" / "p11fast.conf").write_text(plain)
    cfg = config.load()
    paths = [path for path, _ in cfg.examined]
    assert paths[: len(config.SEARCH_PATH)] == [os.path.expanduser(p) for p in config.SEARCH_PATH]
    assert len(paths) == len(config.SEARCH_PATH + config.NITROKEY_SEARCH_PATH)


def test_a_silent_warn_initialisation_wants_a_snapshot(settled_config):
    assert snapshot.wanted(config.load(), log.Logger(log.WARN, []))


def test_an_info_level_wants_no_snapshot(settled_config):
    assert not snapshot.wanted(config.load(), log.Logger(log.INFO, []))


def test_an_initialisation_that_logged_wants_no_snapshot(settled_config):
    logger = log.Logger(log.WARN, [])
    logger.warn("something the user must see")
    assert not snapshot.wanted(config.load(), logger)


def test_the_switch_turns_snapshots_off(settled_config, monkeypatch):
    monkeypatch.setenv(snapshot.SWITCH, "off")
    assert not snapshot.wanted(config.load(), log.Logger(log.WARN, []))


def test_a_snapshot_is_written_0600_without_the_password(settled_config, tmp_path):
    (path,) = write(config.load(), tmp_path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert b"secret-value" not in path.read_bytes()
    assert path.read_bytes().startswith(snapshot.SNAPSHOT_MAGIC)


def test_a_config_changed_this_instant_writes_no_snapshot(settled_config, tmp_path):
    settled_config.write_text(CONFIG + "\n")
    assert write(config.load(), tmp_path) == []


def test_an_unchanged_snapshot_is_not_rewritten(settled_config, tmp_path):
    (path,) = write(config.load(), tmp_path)
    before = path.stat()
    write(config.load(), tmp_path)
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_mechanism_info_of_another_size_writes_no_snapshot(settled_config, tmp_path):
    binaries = [str(tmp_path / name) for name in BINARIES[1:]]
    written = snapshot.write(config.load(), None, b"i" * 88, SLOTS, [(0x1, b"m" * 16)], None,
                             binaries)  # fmt: skip
    assert written is None
    assert not (tmp_path / "cache" / "p11fast").exists()


def test_an_operator_username_longer_than_the_reader_holds_writes_no_snapshot(
    settled_config, tmp_path
):
    binaries = [str(tmp_path / name) for name in BINARIES[1:]]
    slot = (b"s" * 104, b"t" * 208, 1, b"u" * (snapshot.MAX_USERNAME_BYTES + 1), b"spec")
    written = snapshot.write(config.load(), None, b"i" * 88, [slot], MECHANISMS, None, binaries)
    assert written is None
    assert not (tmp_path / "cache" / "p11fast").exists()


def test_a_policy_longer_than_the_reader_holds_writes_no_snapshot(settled_config, tmp_path):
    binaries = [str(tmp_path / name) for name in BINARIES[1:]]
    allowed = [0x1] * (snapshot.MAX_MECHANISMS + 1)
    written = snapshot.write(config.load(), None, b"i" * 88, SLOTS, MECHANISMS, allowed, binaries)
    assert written is None
    assert not (tmp_path / "cache" / "p11fast").exists()


def test_the_file_name_is_the_crc32_of_the_key():
    assert snapshot.file_name(b"") == "slots-00000000"
    assert snapshot.file_name(b"123456789") == "slots-cbf43926"  # the CRC-32 check value


# ---------------------------------------------------------------- the shared presence record


def shared(tmp_path, data: bytes = b"snapshot-bytes", nslots: int = 2):
    return snapshot.SharedPresence(str(tmp_path / "slots-1"), data, nslots)


def test_write_returns_the_record_of_the_snapshot_it_wrote(settled_config, tmp_path):
    binaries = [str(tmp_path / name) for name in BINARIES[1:]]
    record = snapshot.write(config.load(), None, b"i" * 88, SLOTS, MECHANISMS, None, binaries)
    (path,) = (tmp_path / "cache" / "p11fast").iterdir()
    assert record.path == str(path) + snapshot.PRESENCE_SUFFIX


def test_a_present_answer_is_shared_for_the_ttl(tmp_path):
    record = shared(tmp_path)
    record.note(1, True)
    assert shared(tmp_path).age(0) is None
    assert 0 <= shared(tmp_path).age(1) < snapshot.PRESENCE_TTL_NS / 1e9
    assert os.stat(record.path).st_mode & 0o777 == 0o600


def test_an_absent_answer_is_not_shared_and_forgets_a_present_one(tmp_path):
    record = shared(tmp_path)
    record.note(0, False)
    assert not os.path.exists(record.path)
    record.note(0, True)
    record.note(0, False)
    assert shared(tmp_path).age(0) is None


def test_the_record_of_another_snapshot_is_ignored(tmp_path):
    shared(tmp_path).note(0, True)
    assert shared(tmp_path, b"another-snapshot").age(0) is None
    assert shared(tmp_path, nslots=3).age(0) is None


def test_an_old_record_is_ignored(tmp_path, monkeypatch):
    shared(tmp_path).note(0, True)
    later = time.time_ns() + snapshot.PRESENCE_TTL_NS
    monkeypatch.setattr(snapshot.time, "time_ns", lambda: later)
    assert shared(tmp_path).age(0) is None


def test_a_snapshot_holds_every_username_the_configuration_accepts():
    from p11fast import lightmode, pins

    assert lightmode.MAX_USERNAME_BYTES == pins.USERNAME_MAX_BYTES
