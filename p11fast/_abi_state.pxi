# Module state: the C tables, the cold-path Python state, and the one error template.

from libc.stdio cimport snprintf

cdef extern from *:
    """
    #include <stdatomic.h>
    static atomic_int p11f_initialized;
    static inline int p11f_is_initialized(void) { return atomic_load(&p11f_initialized); }
    static inline void p11f_set_initialized(int v) { atomic_store(&p11f_initialized, v); }
    /* A forked child of an initialised parent that has not called C_Initialize yet. */
    static atomic_int p11f_forked;
    static inline int p11f_is_forked(void) { return atomic_load(&p11f_forked); }
    static inline void p11f_set_forked(int v) { atomic_store(&p11f_forked, v); }
    """
    bint p11f_is_initialized() nogil
    void p11f_set_initialized(int v) nogil
    bint p11f_is_forked() nogil
    void p11f_set_forked(int v) nogil

cdef slot_t g_slots[MAX_SLOTS]
cdef int g_nslots = 0
cdef session_t *g_sessions = NULL
# Entries below this were handed out at least once. Scans stop here: the table is 16 MB of
# calloc'd pages, and reading every entry would fault all of them in (~2 ms of a one-shot
# pkcs11-tool run). Only grows, under g_lock; a scan without g_lock may miss a session opened
# meanwhile, as if it had been opened after the scan.
cdef int g_sessions_used = 0
cdef object_t *g_objects = NULL
cdef CK_ULONG g_nobjects = 0            # entries handed out at least once (entry 0 is never used)
cdef unsigned int *g_free_objects = NULL    # freed entries, reused once all were handed out
cdef CK_ULONG g_nfree_objects = 0
# Guards handle allocation, the object table and the session table's free/used transitions.
# Never held across network I/O.
cdef pthread_mutex_t g_lock
# Wakes C_WaitForSlotEvent on C_Finalize.
cdef pthread_cond_t g_event
cdef bint g_threads_allowed = True

class ModuleState:
    """What the cold path keeps between calls: config, logger, per-slot pools and inventories.

    The object model is imported on first use, or by C_Initialize while the warm-up's TLS
    handshake runs (initialize)."""

    def __init__(self, config, log, pools):
        self.config = config
        self.log = log
        self.pools = pools
        self.handle_of = {}       # (slot, key_id, cls) -> object handle
        self.objects = {}         # object handle -> P11Object
        self.finds = {}           # session handle -> list of object handles still to return
        self.presence = {}        # slot -> (monotonic time, present)
        self.reported = {}        # slot -> presence last reported by C_WaitForSlotEvent
        self.shared_presence = None  # p11fast.snapshot.SharedPresence, with a snapshot
        self.admins = {}          # slot -> p11fast.admin.client.Admin, made on first use
        self.aliases = {}         # enable_set_attribute_value: name given -> real key ID
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
        self.inventories  # each property imports and builds on first access
        self.session_objects


_state = None

# policy.allowed_mechanisms as C data, so the nogil Init functions check it without Python.
# g_nallowed < 0: every mechanism is allowed.
cdef enum:
    MAX_POLICY_MECHANISMS = 64
cdef CK_MECHANISM_TYPE g_allowed_mechs[MAX_POLICY_MECHANISMS]
cdef int g_nallowed = -1


cdef void set_mechanism_policy(policy) except *:
    """Called by C_Initialize: the configuration's allowed mechanisms into g_allowed_mechs."""
    global g_nallowed
    g_nallowed = -1
    if policy.allowed_mechanisms is None:
        return
    from p11fast.mechanisms import BY_NAME

    names = sorted(policy.allowed_mechanisms)
    if len(names) > MAX_POLICY_MECHANISMS:
        raise ValueError(f"policy.allowed_mechanisms: at most {MAX_POLICY_MECHANISMS} names")
    for i, name in enumerate(names):
        g_allowed_mechs[i] = BY_NAME[name].type
    g_nallowed = len(names)


cdef bint mechanism_allowed(CK_MECHANISM_TYPE m) noexcept nogil:
    cdef int i
    if g_nallowed < 0:
        return True
    for i in range(g_nallowed):
        if g_allowed_mechs[i] == m:
            return True
    return False


cdef inline bint has_parameter(const CK_MECHANISM *m) noexcept nogil:
    """Whether a mechanism that takes no parameter got one: CKR_MECHANISM_PARAM_INVALID then.
    A length means one even with a NULL pointer (the application believes it passed
    something); a pointer with length 0 carries nothing, as from hosts that always pass one."""
    return m.ulParameterLen != 0


cdef CK_RV policy_check_mechanism(const char *where, CK_MECHANISM_TYPE m) noexcept nogil:
    """The one policy check of every C_*Init and key generation: CKR_MECHANISM_INVALID and a
    log line naming the policy for a mechanism the configuration does not allow."""
    if mechanism_allowed(m):
        return CKR_OK
    log_error(where, b"refused by the configuration's policy.allowed_mechanisms; mechanism", m)
    return CKR_MECHANISM_INVALID


cdef CK_RV rv_for(exc, const char *where) noexcept:
    """The error template: an exception from the cold path becomes its CKR and one log line.
    `where` is the C_* function (or what it was doing for one): no answer from the HSM means
    what p11fast.errors.from_transport says for that function."""
    from p11fast.errors import P11Error, TransportError, from_transport

    cdef CK_RV rv = CKR_GENERAL_ERROR
    if isinstance(exc, TransportError):
        exc = from_transport(exc, where.decode())
    if isinstance(exc, P11Error):
        rv = exc.ckr
    elif isinstance(exc, MemoryError):
        rv = CKR_HOST_MEMORY
    if not p11f_is_initialized() and strcmp(where, b"C_Initialize") != 0:
        # The call lost a race with C_Finalize in another thread (credentials, pools and
        # inventories went while it ran): say so rather than what the teardown made it see.
        rv = CKR_CRYPTOKI_NOT_INITIALIZED
    try:
        message = f"{where.decode()}: {exc}" if str(exc) else f"{where.decode()}: {type(exc).__name__}"
        if _state is not None:
            log = _state.log
        else:
            # Not sys.stderr: its buffer has a lock, which a thread writing there at fork()
            # leaves held in the child, where the next line would wait for it forever.
            from p11fast.log import stderr_logger

            log = stderr_logger()
        if rv == CKR_GENERAL_ERROR:
            log.error(message)
        else:
            log.warn(message)
    except BaseException:
        pass
    return rv


# Failures seen while this thread holds a session lock wait here until the lock is released:
# taking the GIL under a session lock could deadlock with a host thread that holds the GIL and
# waits for that session. `where` and `what` are string literals, so keeping pointers is safe.
cdef extern from *:
    """
    typedef struct { const char *where; const char *what; long detail; char text[400]; } p11f_failure;
    enum { P11F_PENDING_MAX = 4 };
    static __thread int p11f_session_locks;
    static __thread int p11f_npending;
    static __thread p11f_failure p11f_pending[P11F_PENDING_MAX];
    """
    ctypedef struct p11f_failure:
        const char *where
        const char *what
        long detail
        char text[400]
    enum: P11F_PENDING_MAX
    int p11f_session_locks
    int p11f_npending
    p11f_failure p11f_pending[4]


cdef void emit_failure(const char *where, const char *what, long detail,
                       const char *text=NULL) noexcept nogil:
    with gil:
        try:
            if _state is not None:
                if text != NULL and text[0] != 0:
                    _state.log.warn(f"{where.decode()}: {text.decode(errors='replace')}")
                else:
                    _state.log.warn(f"{where.decode()}: {what.decode()} ({detail})")
        except BaseException:
            pass


cdef void log_error(const char *where, const char *what, long detail) noexcept nogil:
    """One log line from the nogil path, written once no session lock is held."""
    global p11f_npending
    if p11f_session_locks == 0:
        emit_failure(where, what, detail)
    elif p11f_npending < P11F_PENDING_MAX:
        p11f_pending[p11f_npending].where = where
        p11f_pending[p11f_npending].what = what
        p11f_pending[p11f_npending].detail = detail
        p11f_pending[p11f_npending].text[0] = 0
        p11f_npending += 1


cdef void log_text(const char *where, const char *text) noexcept nogil:
    """log_error for a message made at run time: copied if it has to wait for the lock."""
    global p11f_npending
    if p11f_session_locks == 0:
        emit_failure(where, b"", 0, text)
    elif p11f_npending < P11F_PENDING_MAX:
        p11f_pending[p11f_npending].where = where
        p11f_pending[p11f_npending].what = b""
        p11f_pending[p11f_npending].detail = 0
        snprintf(p11f_pending[p11f_npending].text, sizeof(p11f_pending[0].text), b"%s", text)
        p11f_npending += 1


cdef const char *transport_error_name(int error) noexcept nogil:
    if error == TP_ERR_CONNECT:
        return b"connect"
    if error == TP_ERR_TIMEOUT:
        return b"timeout"
    if error == TP_ERR_TLS:
        return b"tls"
    if error == TP_ERR_NOMEM:
        return b"out of memory"
    if error == TP_ERR_CLOSED:
        return b"closed"
    return b"?"


cdef void log_request_failure(const char *where, tp_pool *pool, tp_result *res,
                              const char *body, size_t body_len) noexcept nogil:
    """The one log line of a failed HSM request on the compiled paths: which instance, and why
    (the HSM's own message for an HTTP refusal, libcurl's reason when nothing answered)."""
    cdef char text[400]
    cdef char message[201]
    cdef const char *value
    cdef size_t value_len
    cdef Py_ssize_t n = 0
    cdef const char *url = tp_instance_url(pool, res.instance)
    if url == NULL:
        url = b"no instance"
    if res.error != TP_OK:
        snprintf(text, sizeof(text), b"no HSM instance answered (%s, %d attempt(s)); last %s: %s",
                 transport_error_name(res.error), res.attempts, url, res.detail)
    else:
        if body != NULL and json_get_string(body, body_len, "message", &value, &value_len) == 0:
            n = json_unescape(value, value_len, message, sizeof(message) - 1)
        message[n if n > 0 else 0] = 0
        snprintf(text, sizeof(text), b"%s: HTTP %ld: %s", url, res.status, message)
    log_text(where, text)


# What a request was doing, for ckr_for_http (the contexts of p11fast.errors.from_http).
cdef enum:
    HTTP_SIGN = 0
    HTTP_DECRYPT = 1
    HTTP_ENCRYPT = 2
    HTTP_OTHER = 3


cpdef CK_RV ckr_for_http(long status, int context) noexcept nogil:
    """HSM status → CKR for the compiled paths: the table of p11fast.errors.from_http for the
    contexts the compiled paths have (tests/unit/test_http_mapping.py checks both agree)."""
    cdef bint key_use = context != HTTP_OTHER
    if status == 400:
        return (CKR_ENCRYPTED_DATA_INVALID if context == HTTP_DECRYPT
                else CKR_DATA_LEN_RANGE if key_use else CKR_ARGUMENTS_BAD)
    if status == 401:
        return CKR_USER_NOT_LOGGED_IN
    if status == 403:
        return CKR_KEY_FUNCTION_NOT_PERMITTED if key_use else CKR_USER_NOT_LOGGED_IN
    if status == 404:
        return CKR_KEY_HANDLE_INVALID if key_use else CKR_OBJECT_HANDLE_INVALID
    if status == 412:
        return CKR_TOKEN_NOT_PRESENT
    if status == 409:
        return CKR_FUNCTION_FAILED
    if status == 413:
        return CKR_DATA_LEN_RANGE
    return CKR_DEVICE_ERROR


cdef session_t *session_lock(CK_SESSION_HANDLE h) noexcept nogil:
    """The session for `h`, locked; NULL if the handle is not an open session.

    The table never moves, so the lookup needs no global lock: the per-session lock plus the
    handle check under it are enough."""
    global p11f_session_locks
    cdef CK_ULONG index = h & ((1 << HANDLE_INDEX_BITS) - 1)
    cdef session_t *s
    if g_sessions == NULL or h == 0 or index >= MAX_SESSIONS:
        return NULL
    s = &g_sessions[index]
    pthread_mutex_lock(&s.lock)
    if s.handle != h:
        pthread_mutex_unlock(&s.lock)
        return NULL
    p11f_session_locks += 1
    return s


cdef void session_unlock(session_t *s) noexcept nogil:
    global p11f_session_locks, p11f_npending
    cdef int i
    pthread_mutex_unlock(&s.lock)
    p11f_session_locks -= 1
    if p11f_session_locks == 0 and p11f_npending:
        for i in range(p11f_npending):
            emit_failure(p11f_pending[i].where, p11f_pending[i].what, p11f_pending[i].detail,
                         p11f_pending[i].text)
        p11f_npending = 0


cdef bint session_open(CK_SESSION_HANDLE h, int *slot_index) noexcept nogil:
    cdef session_t *s = session_lock(h)
    if s == NULL:
        return False
    if slot_index != NULL:
        slot_index[0] = s.slot
    session_unlock(s)
    return True


cdef CK_OBJECT_HANDLE object_alloc() noexcept nogil:
    """A free entry's handle, 0 if the table is full; the caller holds g_lock. Handles carry the
    entry's generation like session handles, so a destroyed object's handle stays invalid."""
    global g_nobjects, g_nfree_objects
    cdef CK_ULONG index
    if g_nobjects < MAX_OBJECTS:
        index = g_nobjects
        g_nobjects += 1
    elif g_nfree_objects:
        g_nfree_objects -= 1
        index = g_free_objects[g_nfree_objects]
    else:
        return 0
    return (g_objects[index].generation << HANDLE_INDEX_BITS) | index


cdef void object_release(CK_OBJECT_HANDLE h) noexcept nogil:
    """Frees the entry of handle h (nothing if h is stale) for object_alloc to hand out again."""
    global g_nfree_objects
    cdef CK_ULONG index = h & ((1 << HANDLE_INDEX_BITS) - 1)
    cdef CK_ULONG generation
    pthread_mutex_lock(&g_lock)
    if h != 0 and index < MAX_OBJECTS and g_objects[index].handle == h:
        generation = g_objects[index].generation + 1
        memset(&g_objects[index], 0, sizeof(object_t))
        g_objects[index].generation = generation
        g_free_objects[g_nfree_objects] = <unsigned int>index
        g_nfree_objects += 1
    pthread_mutex_unlock(&g_lock)


cdef bint object_copy(CK_OBJECT_HANDLE h, object_t *out) noexcept nogil:
    cdef CK_ULONG index = h & ((1 << HANDLE_INDEX_BITS) - 1)
    cdef bint found = False
    if h == 0 or g_objects == NULL:
        return False
    pthread_mutex_lock(&g_lock)
    if index < MAX_OBJECTS and g_objects[index].handle == h:
        memcpy(out, &g_objects[index], sizeof(object_t))
        found = True
    pthread_mutex_unlock(&g_lock)
    return found


cdef void op_reset(op_t *op) noexcept nogil:
    if op.active:
        hash_free(&op.hctx)
        wbuf_free(&op.acc)
        free(op.pending)
        EVP_PKEY_free(<EVP_PKEY *>op.pkey)
    memset(op, 0, sizeof(op_t))


cdef void session_ops_reset(session_t *s, bint forget) noexcept nogil:
    """Ends every operation of a session. In a forked child (`forget`) the state is dropped
    without freeing: it may be half-built by a parent thread that no longer exists."""
    cdef op_t *ops[5]
    ops[0] = &s.sign
    ops[1] = &s.digest
    ops[2] = &s.verify
    ops[3] = &s.decrypt
    ops[4] = &s.encrypt
    for op in ops:
        if forget:
            memset(op, 0, sizeof(op_t))
        else:
            op_reset(op)


cdef bint slot_user_logged_in(slot_t *slot) noexcept nogil:
    return slot.login_user == CKU_USER or (slot.operator_implicit and slot.login_user != CKU_SO)


cdef CK_STATE session_state(session_t *s) noexcept nogil:
    cdef slot_t *slot = &g_slots[s.slot]
    cdef bint rw = (s.flags & CKF_RW_SESSION) != 0
    if slot.login_user == CKU_SO:
        return CKS_RW_SO_FUNCTIONS
    if slot_user_logged_in(slot):
        return CKS_RW_USER_FUNCTIONS if rw else CKS_RO_USER_FUNCTIONS
    return CKS_RW_PUBLIC_SESSION if rw else CKS_RO_PUBLIC_SESSION


cdef void pad_copy(CK_UTF8CHAR *dst, size_t size, text) noexcept:
    """Space-padded, not NUL-terminated, as CK_INFO and friends require."""
    cdef bytes raw = text.encode("utf-8")[:size]
    memset(dst, b' ', size)
    memcpy(dst, <const char *>raw, len(raw))
