"""The slot snapshot: what lets the loader answer slot, token and mechanism queries without Python.

`pkcs11-tool -L` is one process per listing, and starting the interpreter is most of its time.
So after a C_Initialize that wrote no log line, the ABI records here what C_GetInfo,
C_GetSlotInfo, C_GetTokenInfo, C_GetMechanismList and C_GetMechanismInfo answer (token presence
aside: that is asked of the HSM each time), which users each slot's configuration names and the
operator's username, and the mechanism policy (what the ABI's compiled session and sign
functions need), each slot's transport spec, and everything those were derived from. In a later
process the loader (p11fast/loader/snapshot.c) reads it, checks that every input is unchanged,
and answers those functions itself; the presence check goes through the real transport, loaded
without starting Python. Any other function starts Python as before, and its pools take over the
light mode's connections. Anything that does not match exactly means no snapshot: the loader
starts Python as it always did.

Inputs recorded: the discovery inputs (pReserved, the two config variables, HOME, the uid, the
package directory) as the file's key; the identity (device, inode, size, mtime, ctime) or absence
of every path the configuration depended on and of the loader, ABI and transport binaries; and
whether each `env:` variable is set and non-empty (never its value). No secret is written: the
answers hold labels and flags, the transport spec holds URLs, pins and timeouts.

Written only when the log level is Warn or Error and C_Initialize logged nothing, so a light
mode that logs nothing shows the user exactly what Python would have. `P11FAST_SNAPSHOT=off`
turns both sides off. The constants below come from p11fast/lightmode.py, which the loader gets
as a generated header. The layout (little-endian; blob = u32 length + bytes):

    SNAPSHOT_MAGIC u32 SNAPSHOT_VERSION, sizeof CK_INFO, CK_SLOT_INFO, CK_TOKEN_INFO,
        CK_MECHANISM_INFO
    blob key
    u32 n, n x (blob path, u8 is-regular-file, u64 dev, u64 ino, u64 size, i64 mtime_ns,
                i64 ctime_ns)
    u32 n, n x (blob variable name, u8 non-empty)
    u8 disable_threads, CK_INFO
    u32 n (1 to MAX_SLOTS), n x (CK_SLOT_INFO, CK_TOKEN_INFO, u8 users (USERS_* bits),
        blob the operator's username (UTF-8, at most MAX_USERNAME_BYTES, no NUL; empty when
        the slot has none), blob transport spec)
    u32 m (at most MAX_MECHANISMS), m x (u64 CK_MECHANISM_TYPE, CK_MECHANISM_INFO): the
        mechanisms every slot offers (the policy applied), in C_GetMechanismList's order
    i32 a (-1: the policy allows every mechanism; else 0 to MAX_MECHANISMS), a x u64
        CK_MECHANISM_TYPE: policy.allowed_mechanisms, as the ABI checks them
    u32 CRC-32 of everything before it (a damaged file is not used)

The whole file is at most SNAPSHOT_MAX_BYTES.

Beside it, <snapshot>PRESENCE_SUFFIX shares present answers between processes (light mode's
loader/presence.c, and the ABI through SharedPresence): a process that found a token present
records when, and another using the same snapshot takes that answer as its own until
PRESENCE_TTL_NS after it, instead of asking the HSM. Absent answers are never recorded (a live
absent answer forgets a present one), so a token shown absent always has a live reason. The
record holds no secret, only times; it is 0600, replaced whole, and used only when intact and
naming the snapshot in use by its CRC-32 and length (another configuration, instance list or
build makes another snapshot). Its layout (little-endian):

    PRESENCE_MAGIC u32 PRESENCE_VERSION, u32 the snapshot's CRC-32, u32 its length, u32 n
    n x i64 CLOCK_REALTIME ns when slot i was found present (0: not recorded)
    u32 CRC-32 of everything before it
"""

from __future__ import annotations

import posix  # not os: p11fast.lean
import time
from _struct import Struct, calcsize, pack, unpack_from  # what the struct module re-exports
from binascii import crc32

from p11fast.config import Config, file_identity
from p11fast.lean import dirname, fsencode, getenv, getenvb, path_join, realpath
from p11fast.lightmode import (
    CACHE_DIR,
    MAX_MECHANISMS,
    MAX_SLOTS,
    MAX_USERNAME_BYTES,
    PRESENCE_MAGIC,
    PRESENCE_SUFFIX,
    PRESENCE_TTL_NS,
    PRESENCE_VERSION,
    SNAPSHOT_KEY_TAG,
    SNAPSHOT_KEY_VARIABLES,
    SNAPSHOT_MAGIC,
    SNAPSHOT_MAX_BYTES,
    SNAPSHOT_PREFIX,
    SNAPSHOT_VERSION,
    SWITCH,
    SWITCH_OFF,
)
from p11fast.log import WARN, Logger

# File times come from a coarse clock: a file changed again within the same tick keeps its
# identity. A file changed this recently is not trusted to identify its contents.
RACY_SECONDS = 0.1
_IDENTITY = Struct("<BQQQqq")
# sizeof(CK_MECHANISM_INFO): three CK_ULONG, which is C's unsigned long ("L" in native mode).
_MECHANISM_INFO_SIZE = calcsize("@3L")


def directory() -> str | None:
    """$XDG_CACHE_HOME/p11fast, else ~/.cache/p11fast (the loader computes the same)."""
    base = getenv("XDG_CACHE_HOME") or ""
    if not base.startswith("/"):
        home = getenv("HOME")
        if not home:
            return None
        base = path_join(home, ".cache")
    return path_join(base, CACHE_DIR)


def key(package_dir: str, reserved: bytes | None) -> bytes:
    """The discovery inputs, as the loader builds them: what selects the file."""
    variables = [getenvb(name.encode()) for name in SNAPSHOT_KEY_VARIABLES]
    values = [str(posix.getuid()).encode(), fsencode(package_dir), reserved, *variables]
    return (
        SNAPSHOT_KEY_TAG
        + b"\0"
        + b"".join(b"-\0" if value is None else b"=" + value + b"\0" for value in values)
    )


def file_name(key: bytes) -> str:
    """CRC-32 of the key, which the loader computes the same way (the key inside the file is
    compared in full, so a collision costs only a rewrite)."""
    return f"{SNAPSHOT_PREFIX}{crc32(key):08x}"


def wanted(config: Config, log: Logger) -> bool:
    return getenv(SWITCH) != SWITCH_OFF and log.level >= WARN and log.emitted == 0


def write(config: Config, reserved: bytes | None, info: bytes,
          slots: list[tuple[bytes, bytes, int, bytes, bytes]],
          mechanisms: list[tuple[int, bytes]], allowed: list[int] | None,
          binaries: list[str]) -> SharedPresence | None:  # fmt: skip
    """Records the answers and their inputs; a failure only costs the next process time.
    `slots`: (CK_SLOT_INFO, CK_TOKEN_INFO, users, operator's username, transport spec) of each
    slot. `mechanisms`: (CK_MECHANISM_TYPE, CK_MECHANISM_INFO's bytes) as C_GetMechanismList
    and C_GetMechanismInfo answer. `allowed`: the policy's mechanisms, None when it allows all.
    Returns the presence record that goes with the snapshot now on disk, if one is."""
    where = directory()
    if where is None or not 0 < len(slots) <= MAX_SLOTS or len(mechanisms) > MAX_MECHANISMS:
        return None
    if any(len(mechanism_info) != _MECHANISM_INFO_SIZE for _, mechanism_info in mechanisms):
        return None
    if allowed is not None and len(allowed) > MAX_MECHANISMS:
        return None
    if any(len(name) > MAX_USERNAME_BYTES or b"\0" in name for _, _, _, name, _ in slots):
        return None
    package_dir = dirname(realpath(binaries[0]))
    binaries = [path_join(package_dir, "libp11fast.so"), *binaries]
    examined = list(config.examined) + [(path, file_identity(path)) for path in binaries]
    if _racy(examined):
        return None
    k = key(package_dir, reserved)
    data = _encode(config, k, examined, info, slots, mechanisms, allowed)
    if len(data) > SNAPSHOT_MAX_BYTES:
        return None
    path = path_join(where, file_name(k))
    try:
        replace_file(path, data)
    except OSError:
        return None
    return SharedPresence(path, data, len(slots))


class SharedPresence:
    """The presence record of one snapshot (the layout above), for the ABI's slot_present."""

    _HEAD = Struct(f"<{len(PRESENCE_MAGIC)}sIIII")

    def __init__(self, snapshot_path: str, snapshot: bytes, nslots: int) -> None:
        self.path = snapshot_path + PRESENCE_SUFFIX
        # What names the snapshot, for the records beside it (this one, the recorded keys').
        self.snapshot_path = snapshot_path
        self.snapshot_crc = unpack_from("<I", snapshot, len(snapshot) - 4)[0]
        self.snapshot_len = len(snapshot)
        self._head = self._HEAD.pack(PRESENCE_MAGIC, PRESENCE_VERSION, self.snapshot_crc,
                                     self.snapshot_len, nslots)
        self._times = Struct(f"<{nslots}q")
        self._nslots = nslots

    def age(self, slot: int) -> float | None:
        """Seconds since another process found slot's token present, if less than the TTL."""
        times = self._load()
        if times is None or not times[slot]:
            return None
        age = time.time_ns() - times[slot]
        return age / 1e9 if 0 <= age < PRESENCE_TTL_NS else None

    def note(self, slot: int, present: bool) -> None:
        """A live answer: present is recorded as of now, absent forgets a present one."""
        times = self._load()
        if times is None:
            if not present:
                return
            times = [0] * self._nslots
        elif not present and not times[slot]:
            return
        times[slot] = time.time_ns() if present else 0
        data = self._head + self._times.pack(*times)
        try:
            replace_file(self.path, data + pack("<I", crc32(data)))
        except OSError:
            pass

    def _load(self) -> list[int] | None:
        size = len(self._head) + self._times.size + 4
        try:
            fd = posix.open(self.path, posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_CLOEXEC)
        except OSError:
            return None
        with open(fd, "rb") as f:
            st = posix.fstat(fd)
            if st.st_uid != posix.getuid() or st.st_mode & 0o022 or st.st_size != size:
                return None
            data = f.read(size + 1)
        if len(data) != size or not data.startswith(self._head):
            return None
        if unpack_from("<I", data, size - 4)[0] != crc32(data[:-4]):
            return None
        return list(self._times.unpack_from(data, len(self._head)))


def _racy(examined: list) -> bool:
    now = time.time_ns()
    return any(identity is not None and now - max(identity[3], identity[4]) < RACY_SECONDS * 1e9
               for _, identity in examined)  # fmt: skip


def _blob(data: bytes) -> bytes:
    return pack("<I", len(data)) + data


def _encode(config: Config, k: bytes, examined: list, info: bytes,
            slots: list[tuple[bytes, bytes, int, bytes, bytes]],
            mechanisms: list[tuple[int, bytes]], allowed: list[int] | None) -> bytes:  # fmt: skip
    slot_size, token_size = len(slots[0][0]), len(slots[0][1])
    sizes = pack("<IIIII", SNAPSHOT_VERSION, len(info), slot_size, token_size,
                 _MECHANISM_INFO_SIZE)  # fmt: skip
    out = [SNAPSHOT_MAGIC, sizes, _blob(k)]
    out.append(pack("<I", len(examined)))
    for path, identity in examined:
        out.append(_blob(fsencode(path)))
        out.append(_IDENTITY.pack(identity is not None, *(identity or (0, 0, 0, 0, 0))))
    out.append(pack("<I", len(config.env_names)))
    for name in config.env_names:
        out.append(_blob(fsencode(name)) + bytes([bool(getenv(name))]))
    out.append(bytes([config.disable_threads]) + info + pack("<I", len(slots)))
    for slot_info, token_info, users, operator, spec in slots:
        out.append(slot_info + token_info + bytes([users]) + _blob(operator) + _blob(spec))
    out.append(pack("<I", len(mechanisms)))
    out.extend(pack("<Q", kind) + mechanism_info for kind, mechanism_info in mechanisms)
    out.append(pack("<i", -1 if allowed is None else len(allowed)))
    out.extend(pack("<Q", kind) for kind in allowed or ())
    data = b"".join(out)
    return data + pack("<I", crc32(data))


def replace_file(path: str, data: bytes) -> None:
    """Atomically, 0600, and not at all when the file already holds `data`."""
    try:
        with open(path, "rb") as f:
            if f.read(len(data) + 1) == data:
                return
    except OSError:
        pass
    temporary = f"{path}.{posix.getpid()}.tmp"
    flags = posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC | posix.O_NOFOLLOW
    try:
        fd = posix.open(temporary, flags, 0o600)
    except FileNotFoundError:
        import os  # the first write only: makedirs is all of os this needs

        os.makedirs(dirname(path), mode=0o700, exist_ok=True)
        fd = posix.open(temporary, flags, 0o600)
    with open(fd, "wb") as f:
        f.write(data)
    posix.replace(temporary, path)
