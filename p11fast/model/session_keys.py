"""The IDs of HSM session keys: private and secret keys behind session objects.

A session key lives on the HSM under a reserved ID, ``p11fastsession-<host>-<pid>-<start>-
<random>``, and is deleted when its session closes or the module finalizes. The ID names the
process (host, pid and its start time) so that a later module can tell keys left behind by a
killed process from those of one still running.
"""

from __future__ import annotations

import os

from p11fast.keyid import SESSION_PREFIX


def _process_start(pid: int) -> str | None:
    """The start time of a process in clock ticks since boot (Linux), None if it is gone.

    With the pid it identifies a process even after the pid has been reused."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    return stat[stat.rindex(b")") + 2 :].split()[19].decode()


def _host_tag() -> str:
    import zlib

    return f"{zlib.crc32(os.uname().nodename.encode()):08x}"


def process_tag() -> str:
    """``<host>-<pid>-<start>``: the part of a session key ID that names this process."""
    pid = os.getpid()
    return f"{_host_tag()}-{pid}-{_process_start(pid) or 0}"


def new_session_key_id() -> str:
    return f"{SESSION_PREFIX}-{process_tag()}-{os.urandom(6).hex()}"


def is_stale(key_id: str) -> bool:
    """A session key of a process of this host that no longer runs. Keys of other hosts are
    never stale here: their processes cannot be checked from this machine."""
    parts = key_id[len(SESSION_PREFIX) + 1 :].split("-")
    if len(parts) != 4 or parts[0] != _host_tag() or not parts[1].isdigit():
        return False
    return _process_start(int(parts[1])) != parts[2] and parts[2] != "0"
