# The module's state: the C struct g_abi (state.pxd), the cold path's Python state, and each
# slot's credentials.

from libc.string cimport memcpy

from p11fast._decl.pkcs11 cimport CK_MECHANISM_TYPE, CK_ULONG
from p11fast._decl.posix cimport pthread_mutex_lock, pthread_mutex_unlock

# What a NetHSM takes as a passphrase, advertised in CK_TOKEN_INFO. The longest username the
# configuration accepts with the longest PIN must fit the credential buffers: a passphrase the
# HSM took can then always be sent afterwards.
from p11fast.pins import PIN_MAX_BYTES, PIN_MIN_BYTES, USERNAME_MAX_BYTES

if len(basic_auth("u" * USERNAME_MAX_BYTES, "p" * PIN_MAX_BYTES)) >= AUTH_MAX:
    raise ImportError(f"AUTH_MAX ({AUTH_MAX}) cannot hold the longest credentials")
g_abi.pin_min = PIN_MIN_BYTES
g_abi.pin_max = PIN_MAX_BYTES
g_abi.threads_allowed = True
g_abi.nallowed = -1


class ModuleState:
    """What the cold path keeps between calls: config, logger, per-slot pools and inventories.
    Which handle names which object is the C table's (objects), not kept here.

    The object model is imported on first use, or by C_Initialize while the warm-up's TLS
    handshake runs (lifetime)."""

    def __init__(self, config, log, pools):
        self.config = config
        self.log = log
        self.pools = pools
        self.finds = {}           # session handle -> list of object handles still to return
        self.presence = {}        # slot -> (monotonic time, present)
        self.reported = {}        # slot -> presence last reported by C_WaitForSlotEvent
        self.shared_presence = None  # p11fast.snapshot.SharedPresence, with a snapshot
        self.admins = {}          # slot -> p11fast.admin.client.Admin, made on first use
        self.aliases = {}         # enable_set_attribute_value: name given -> real key ID
        self.recorded = set()     # (slot, RECORD_BY_*, value) searches recorded (recorded)
        self._inventories = None
        self._session_objects = None

    @property
    def inventories(self):
        if self._inventories is None:
            from p11fast.model.inventory import Inventory

            made = [Inventory(make_request(i, pool), slot.label)
                    for i, (slot, pool) in enumerate(zip(self.config.slots, self.pools))]
            if self._inventories is None:  # the import may have let another thread in first
                self._inventories = made
        return self._inventories

    @property
    def session_objects(self):
        if self._session_objects is None:
            from p11fast.model.session_objects import SessionObjects

            made = SessionObjects()
            if self._session_objects is None:
                self._session_objects = made
        return self._session_objects

    def has_session_objects(self) -> bool:
        return self._session_objects is not None

    def load_object_model(self) -> None:
        # The property imports and builds on first access. Session objects are not loaded: the
        # first one made loads their model, and searches skip them until then.
        self.inventories


_state = None


def make_request(int slot_index, Pool pool):
    """The cold path's HTTP call for one slot, with the credentials the token holds now."""

    def request(str method, str path, bytes body=None, bint admin=False, str content_type=None):
        from p11fast.errors import UserNotLoggedIn

        header = current_auth(slot_index, admin)
        if header is None:
            raise UserNotLoggedIn("no credentials: log in, or set a password in the config")
        if body is not None and content_type is None:
            content_type = "application/json"
        status, data, _ = pool.call(method, path, body, header, content_type)
        return status, data

    return request


cdef object current_auth(int slot_index, bint admin):
    cdef slot_t *s = &g_abi.slots[slot_index]
    cdef bytes header = None
    pthread_mutex_lock(&s.lock)
    if not admin and s.op_auth[0] != 0:
        header = s.op_auth
    elif s.so_auth[0] != 0:
        header = s.so_auth
    pthread_mutex_unlock(&s.lock)
    return header


cdef void set_auth(char *dst, bytes header) except *:
    cdef size_t n = len(header)
    if n >= AUTH_MAX:
        raise ValueError("credentials too long")
    memcpy(dst, <const char *>header, n)
    dst[n] = 0


cdef void set_mechanism_policy(policy) except *:
    """Called by C_Initialize: the configuration's allowed mechanisms into g_abi.allowed_mechs."""
    g_abi.nallowed = -1
    if policy.allowed_mechanisms is None:
        return
    from p11fast.mechanisms import BY_NAME

    names = sorted(policy.allowed_mechanisms)
    if len(names) > MAX_POLICY_MECHANISMS:
        raise ValueError(f"policy.allowed_mechanisms: at most {MAX_POLICY_MECHANISMS} names")
    for i, name in enumerate(names):
        g_abi.allowed_mechs[i] = BY_NAME[name].type
    g_abi.nallowed = len(names)


cdef bint mechanism_allowed(CK_MECHANISM_TYPE m) noexcept nogil:
    cdef int i
    if g_abi.nallowed < 0:
        return True
    for i in range(g_abi.nallowed):
        if g_abi.allowed_mechs[i] == m:
            return True
    return False
