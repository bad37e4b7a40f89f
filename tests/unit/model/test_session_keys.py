"""p11fast.model.session_keys: session key IDs name their process, so a later module can tell
the keys of a process that died from those of one still running."""

import os
import subprocess

from p11fast.keyid import SESSION_PREFIX, is_reserved, is_valid_key_id
from p11fast.model import session_keys


def test_a_session_key_id_is_a_reserved_key_id_naming_this_process():
    key_id = session_keys.new_session_key_id()
    assert is_valid_key_id(key_id) and is_reserved(key_id)
    assert key_id.startswith(f"{SESSION_PREFIX}-{session_keys.process_tag()}-")
    assert key_id != session_keys.new_session_key_id()


def test_keys_of_this_running_process_are_not_stale():
    assert not session_keys.is_stale(session_keys.new_session_key_id())


def test_keys_of_a_process_that_ended_are_stale():
    host = session_keys.process_tag().split("-")[0]
    child = subprocess.Popen(["sleep", "60"])
    try:
        with open(f"/proc/{child.pid}/stat") as f:
            stat = f.read()
        start = stat[stat.rindex(")") + 2 :].split()[19]  # field 22: start time in ticks
        key_id = f"{SESSION_PREFIX}-{host}-{child.pid}-{start}-ab"
        assert not session_keys.is_stale(key_id)
    finally:
        child.kill()
        child.wait()
    assert session_keys.is_stale(key_id)


def test_keys_of_a_pid_now_used_by_another_process_are_stale():
    host, pid, start = session_keys.process_tag().split("-")
    assert pid == str(os.getpid())
    assert session_keys.is_stale(f"{SESSION_PREFIX}-{host}-{pid}-{int(start) + 1}-ab")


def test_keys_this_host_cannot_judge_are_never_stale():
    host, pid, _ = session_keys.process_tag().split("-")
    other_host = f"{(int(host, 16) + 1) % 2**32:08x}"
    assert not session_keys.is_stale(f"{SESSION_PREFIX}-{other_host}-1-1-ab")
    assert not session_keys.is_stale(f"{SESSION_PREFIX}-{host}-{pid}-0-ab")  # start unknown
    assert not session_keys.is_stale(f"{SESSION_PREFIX}-{host}-x-1-ab")
    assert not session_keys.is_stale(f"{SESSION_PREFIX}-{host}-1-1")
