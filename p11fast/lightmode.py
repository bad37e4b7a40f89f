"""What light mode's Python writers and C readers share, defined here once.

The ABI (through p11fast/snapshot.py) writes the slot snapshot, the promotion mark and the
presence record; the loader (p11fast/loader/) reads them. loader_build.py renders these values
as p11fast/loader/lightmode.h for the loader, which setup.py also hands to the ABI's Cython
(`cdef extern from`), so no value below is typed twice. The layouts themselves are described
in p11fast/snapshot.py; tests/module/test_snapshot_format.py checks that the C reader accepts
exactly what the Python writer writes.

Only plain values here (int, str, bytes, tuple of str): each becomes a `#define P11F_<NAME>`.
"""

# The directory under $XDG_CACHE_HOME (else ~/.cache) that holds every file below.
CACHE_DIR = "p11fast"
# Set to SWITCH_OFF, turns snapshots off on both sides.
SWITCH = "P11FAST_SNAPSHOT"
SWITCH_OFF = "off"

SNAPSHOT_MAGIC = b"P11FSNAP"
SNAPSHOT_VERSION = 3
# The first bytes of a snapshot's key (what selects its file): the version, so that another
# layout never shares a file name with this one.
SNAPSHOT_KEY_TAG = b"p11fast-snapshot-%d" % SNAPSHOT_VERSION
# The environment variables in a snapshot's key after the uid, the package directory and
# pReserved, in this order.
SNAPSHOT_KEY_VARIABLES = ("P11FAST_CONFIG_FILE", "P11NETHSM_CONFIG_FILE", "HOME")
# A snapshot's file name: this prefix and the key's CRC-32 in 8 hex digits.
SNAPSHOT_PREFIX = "slots-"
# Larger files are not read (nor written).
SNAPSHOT_MAX_BYTES = 1 << 20
# The most slots a configuration may have: the ABI's table size and the reader's limit.
MAX_SLOTS = 64
# The most mechanisms a snapshot may list, offered or allowed by the policy (the module offers
# fewer, and the ABI's policy holds fewer): the reader's limit.
MAX_MECHANISMS = 256
# The longest operator username a snapshot may hold (the configuration refuses longer ones:
# p11fast/pins.py): the reader's limit, which sizes its copy.
MAX_USERNAME_BYTES = 128
# A slot's users in the snapshot, bits of one byte: what the session functions need of the
# configuration (an operator and an administrator named, the operator's password given).
USERS_OPERATOR = 1
USERS_ADMIN = 2
USERS_OPERATOR_IMPLICIT = 4

# Beside the snapshot: <snapshot>.full holds how many processes in a row with this snapshot
# needed Python (one ASCII digit; empty counts as one), and from FULL_MARK_EARLY on the next
# process starts Python in C_Initialize.
FULL_MARK_SUFFIX = ".full"
FULL_MARK_EARLY = 2
# Beside the snapshot: <snapshot>.presence holds the tokens found present, shared by processes.
PRESENCE_SUFFIX = ".presence"
PRESENCE_MAGIC = b"P11FPRES"
PRESENCE_VERSION = 1

# How long a token-presence answer is reused, in one process and (present answers only) across
# processes: C_GetSlotInfo is called often, the HSM state rarely changes.
PRESENCE_TTL_NS = 1_000_000_000
