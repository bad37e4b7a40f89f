# General, slot and token functions.

cdef extern from *:
    """
    #include <pthread.h>
    #include <string.h>
    static pthread_mutex_t p11f_init_lock = PTHREAD_MUTEX_INITIALIZER;
    /* Whether zeroed memory is already an initialised default mutex (glibc, musl). */
    static int p11f_zero_mutex_is_initialized(void) {
        static const pthread_mutex_t initializer = PTHREAD_MUTEX_INITIALIZER;
        pthread_mutex_t zero;
        memset(&zero, 0, sizeof zero);
        return memcmp(&zero, &initializer, sizeof zero) == 0;
    }
    """
    pthread_mutex_t p11f_init_lock
    bint p11f_zero_mutex_is_initialized() nogil

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec *ts)
    enum: CLOCK_REALTIME

cdef extern from "<stdlib.h>" nogil:
    void *calloc(size_t n, size_t size)

cdef extern from "p11fast/loader/lightmode.h":  # from p11fast/lightmode.py
    enum: P11F_PRESENCE_TTL_NS
# How long a token-presence answer is reused: C_GetSlotInfo is called often, the HSM state rarely changes.
PRESENCE_TTL = P11F_PRESENCE_TTL_NS / 1e9
# Slots whose absent token was logged at Warn. Once per slot and process: at the default level
# nothing else says why `pkcs11-tool -L` shows an empty slot, and more would flood a server's
# log while the HSM is away (later absences are logged at Info).
_absence_warned = set()
_ABSENCE_HINTS = {
    412: " (the HSM is not Operational: unlock it)",
    404: " (does the url end in /api/v1?)",
}


cdef CK_RV C_Initialize(CK_VOID_PTR pInitArgs) noexcept nogil:
    cdef CK_C_INITIALIZE_ARGS *args = <CK_C_INITIALIZE_ARGS *>pInitArgs
    cdef int supplied, i
    cdef const char *config_path = NULL
    cdef bint threads = True
    cdef CK_RV rv
    if args != NULL:
        supplied = ((args.CreateMutex != NULL) + (args.DestroyMutex != NULL)
                    + (args.LockMutex != NULL) + (args.UnlockMutex != NULL))
        if supplied != 0 and supplied != 4:
            return CKR_ARGUMENTS_BAD
        # Mutex callbacks, with or without CKF_OS_LOCKING_OK, are not used: the module's own
        # pthread locks give the same guarantees on every platform it runs on.
        threads = (args.flags & CKF_LIBRARY_CANT_CREATE_OS_THREADS) == 0
        # pReserved carries a configuration path for hosts that cannot set the environment.
        config_path = <const char *>args.pReserved
    pthread_mutex_lock(&p11f_init_lock)
    if p11f_is_initialized():
        pthread_mutex_unlock(&p11f_init_lock)
        return CKR_CRYPTOKI_ALREADY_INITIALIZED
    p11f_set_forked(0)
    if g_sessions != NULL:
        # A session a C_OpenSession racing with the last C_Finalize left behind: none survives.
        for i in range(g_sessions_used):
            if g_sessions[i].handle == 0:
                continue
            pthread_mutex_lock(&g_sessions[i].lock)
            if g_sessions[i].handle != 0:
                session_ops_reset(&g_sessions[i], False)
                g_sessions[i].handle = 0
            pthread_mutex_unlock(&g_sessions[i].lock)
    with gil:
        try:
            rv = initialize(config_path, threads)
        except BaseException as exc:
            rv = rv_for(exc, b"C_Initialize")
    if rv == CKR_OK:
        p11f_set_initialized(1)
    pthread_mutex_unlock(&p11f_init_lock)
    return rv


# What a NetHSM takes as a passphrase (p11fast.pins), advertised in CK_TOKEN_INFO. The longest
# username the configuration accepts with the longest PIN must fit the credential buffers: a
# passphrase the HSM took can then always be sent afterwards.
from p11fast.pins import PIN_MAX_BYTES, PIN_MIN_BYTES, USERNAME_MAX_BYTES

if len(basic_auth("u" * USERNAME_MAX_BYTES, "p" * PIN_MAX_BYTES)) >= AUTH_MAX:
    raise ImportError(f"AUTH_MAX ({AUTH_MAX}) cannot hold the longest credentials")
cdef CK_ULONG g_pin_min = PIN_MIN_BYTES
cdef CK_ULONG g_pin_max = PIN_MAX_BYTES


cdef void set_auth(char *dst, bytes header) except *:
    cdef size_t n = len(header)
    if n >= AUTH_MAX:
        raise ValueError("credentials too long")
    memcpy(dst, <const char *>header, n)
    dst[n] = 0


cdef CK_RV initialize(const char *config_path, bint threads) except *:
    from p11fast import config as config_module
    from p11fast import log as log_module

    cfg = config_module.load(config_path.decode() if config_path != NULL else None)
    log = log_module.setup(cfg)
    try:
        return start(cfg, log, config_path, threads)
    except BaseException:
        # Every failed C_Initialize would otherwise leave its log file or socket open.
        if _state is not None and _state.log is log:
            finalize_state()  # the pools too
        else:
            log.close()
        raise


cdef CK_RV start(cfg, log, const char *config_path, bint threads) except *:
    """What C_Initialize sets up once the configuration is read and the log is open."""
    global _state, g_sessions, g_objects, g_nobjects, g_nslots, g_threads_allowed
    global g_free_objects, g_nfree_objects
    if len(cfg.slots) > MAX_SLOTS:
        raise ValueError(f"at most {MAX_SLOTS} slots are supported")
    if g_sessions == NULL:
        g_sessions = <session_t *>calloc(MAX_SESSIONS, sizeof(session_t))
        g_objects = <object_t *>calloc(MAX_OBJECTS, sizeof(object_t))
        g_free_objects = <unsigned int *>calloc(MAX_OBJECTS, sizeof(unsigned int))
        if g_sessions == NULL or g_objects == NULL or g_free_objects == NULL:
            raise MemoryError()
        # The session table is 16 MB; writing a mutex into every entry would fault in all of
        # it on each start (~4000 page faults, several ms of a one-shot pkcs11-tool run).
        # calloc's zeroed pages are untouched until a session uses them.
        if not p11f_zero_mutex_is_initialized():
            for i in range(MAX_SESSIONS):
                pthread_mutex_init(&g_sessions[i].lock, NULL)
        for i in range(MAX_SLOTS):
            pthread_mutex_init(&g_slots[i].lock, NULL)
        pthread_mutex_init(&g_lock, NULL)
        pthread_cond_init(&g_event, NULL)
    g_threads_allowed = threads and not cfg.disable_threads
    pools = [Pool(slot, g_threads_allowed) for slot in cfg.slots]
    g_nobjects = 1
    g_nfree_objects = 0
    g_nslots = len(cfg.slots)
    for i, slot in enumerate(cfg.slots):
        init_slot(&g_slots[i], slot, <Pool>pools[i])
    set_mechanism_policy(cfg.policy)
    _state = ModuleState(cfg, log, pools)
    if g_threads_allowed:
        # The pools' background thread is in its first TLS handshake now, which the first
        # request waits for anyway: the object model loads meanwhile, not in the first
        # C_FindObjectsInit. Without that thread it loads on first use.
        _state.load_object_model()
    log.info(f"initialised: {g_nslots} slot(s), threads {'allowed' if g_threads_allowed else 'off'}")
    write_snapshot(cfg, log, config_path)
    return CKR_OK


cdef void init_slot(slot_t *s, slot, Pool pool) except *:
    s.pool = pool.ptr
    s.login_user = -1
    s.sessions = 0
    s.rw_sessions = 0
    s.has_operator = slot.operator is not None
    s.has_admin = slot.administrator is not None
    s.operator_implicit = s.has_operator and slot.operator.password is not None
    memset(s.op_auth_config, 0, AUTH_MAX)
    memset(s.so_auth_config, 0, AUTH_MAX)
    if s.operator_implicit:
        set_auth(s.op_auth_config, basic_auth(slot.operator.username, slot.operator.password))
    if s.has_admin and slot.administrator.password is not None:
        set_auth(s.so_auth_config, basic_auth(slot.administrator.username, slot.administrator.password))
    memcpy(s.op_auth, s.op_auth_config, AUTH_MAX)
    memcpy(s.so_auth, s.so_auth_config, AUTH_MAX)


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
    cdef slot_t *s = &g_slots[slot_index]
    cdef bytes header = None
    pthread_mutex_lock(&s.lock)
    if not admin and s.op_auth[0] != 0:
        header = s.op_auth
    elif s.so_auth[0] != 0:
        header = s.so_auth
    pthread_mutex_unlock(&s.lock)
    return header


cdef CK_RV C_Finalize(CK_VOID_PTR pReserved) noexcept nogil:
    global g_nfree_objects
    cdef int i
    cdef CK_RV rv
    if pReserved != NULL:
        return CKR_ARGUMENTS_BAD
    pthread_mutex_lock(&p11f_init_lock)
    if not p11f_is_initialized():
        # A forked child ending what it inherited (python-pkcs11's lib.reinitialize() does
        # this): nothing is left to release, reset_after_fork dropped it.
        rv = CKR_OK if p11f_is_forked() else CKR_CRYPTOKI_NOT_INITIALIZED
        p11f_set_forked(0)
        pthread_mutex_unlock(&p11f_init_lock)
        return rv
    p11f_set_initialized(0)
    pthread_mutex_lock(&g_lock)
    pthread_cond_broadcast(&g_event)
    pthread_mutex_unlock(&g_lock)
    with gil:
        # While the credentials and pools still exist: session keys leave the HSM.
        release_session_objects(None, -1)
    for i in range(g_sessions_used):
        if g_sessions[i].handle == 0:
            continue  # as C_CloseAllSessions: no lock taken for an entry not in use
        pthread_mutex_lock(&g_sessions[i].lock)
        if g_sessions[i].handle != 0:
            session_ops_reset(&g_sessions[i], False)
            g_sessions[i].handle = 0
        pthread_mutex_unlock(&g_sessions[i].lock)
    pthread_mutex_lock(&g_lock)
    # Only entries below g_nobjects were ever written: clearing all MAX_OBJECTS (13 MB) would
    # fault in every page of the table, ~13% of a one-shot `pkcs11-tool -L`.
    memset(g_objects, 0, g_nobjects * sizeof(object_t))
    g_nfree_objects = 0
    pthread_mutex_unlock(&g_lock)
    with gil:
        finalize_state()
    pthread_mutex_unlock(&p11f_init_lock)
    return CKR_OK


cdef void finalize_state() noexcept:
    global _state
    cdef int i
    state = _state
    _state = None
    for i in range(g_nslots):
        g_slots[i].pool = NULL
        memset(g_slots[i].op_auth, 0, AUTH_MAX)
        memset(g_slots[i].so_auth, 0, AUTH_MAX)
        memset(g_slots[i].op_auth_config, 0, AUTH_MAX)
        memset(g_slots[i].so_auth_config, 0, AUTH_MAX)
    if state is None:
        return
    try:
        for pool in state.pools:
            pool.close()
        state.log.info("finalised")
    except BaseException as exc:
        rv_for(exc, b"C_Finalize")
    state.log.close()


cdef void reset_after_fork() noexcept nogil:
    """pthread_atfork child handler (the loader registers it), in every host: a forked child
    inherits locks that may be held and connections the parent still uses. It starts from
    nothing, as if C_Finalize had run, and must call C_Initialize (a C_Finalize before that ends
    the inherited initialisation, CKR_OK). C only: the interpreter may not be consistent yet
    (os.fork runs PyOS_AfterFork_Child after this). Idempotent."""
    global g_sessions, g_objects, g_nfree_objects
    cdef int i
    tp_after_fork_child()
    # A child that neither finalised nor initialised passes the inherited state on.
    p11f_set_forked(p11f_is_initialized() or p11f_is_forked())
    p11f_set_initialized(0)
    pthread_mutex_init(&p11f_init_lock, NULL)
    pthread_mutex_init(&g_lock, NULL)
    pthread_cond_init(&g_event, NULL)
    if g_sessions != NULL:
        # Only entries below g_sessions_used were ever locked.
        for i in range(g_sessions_used):
            pthread_mutex_init(&g_sessions[i].lock, NULL)
            session_ops_reset(&g_sessions[i], True)
            g_sessions[i].handle = 0
        memset(g_objects, 0, g_nobjects * sizeof(object_t))  # (see C_Finalize)
        g_nfree_objects = 0
    for i in range(MAX_SLOTS):
        pthread_mutex_init(&g_slots[i].lock, NULL)
        g_slots[i].pool = NULL


cdef void take_own_interpreter() noexcept:
    """Called by the loader, under the GIL, when the interpreter is the one it started: nothing
    but this module runs in it, so the module owns what a Python host would (sys.stdout and
    sys.stderr, with no lock a fork could leave held)."""
    try:
        from p11fast import log

        log.own_stdio()
    except BaseException as exc:
        rv_for(exc, b"C_Initialize")


def forget_state_after_fork():
    """os.register_at_fork hook: runs once the child's interpreter is consistent (after
    os.fork's PyOS_AfterFork_Child, or the loader's, which runs the same hooks). The C reset
    comes first, whichever child handler ran before: dropping the state closes its pools."""
    global _state
    reset_after_fork()
    _state = None


cdef CK_RV C_GetInfo(CK_INFO *pInfo) noexcept nogil:
    if not p11f_is_initialized():
        return CKR_CRYPTOKI_NOT_INITIALIZED
    if pInfo == NULL:
        return CKR_ARGUMENTS_BAD
    with gil:
        fill_info(pInfo)
    return CKR_OK


cdef void fill_info(CK_INFO *pInfo) noexcept:
    # The version of the list C_GetFunctionList hands out; the 3.0 interface is offered by
    # C_GetInterface.
    pInfo.cryptokiVersion.major = 2
    pInfo.cryptokiVersion.minor = 40
    pad_copy(pInfo.manufacturerID, 32, "p11fast")
    pInfo.flags = 0
    pad_copy(pInfo.libraryDescription, 32, "p11fast PKCS#11 for NetHSM")
    pInfo.libraryVersion.major = 0
    pInfo.libraryVersion.minor = 1


cdef bint slot_present(int slot, bint shared_ok=True) except -1:
    """Token present = an instance answers and is Operational (GET /health/ready is 200), or
    did for another process less than PRESENCE_TTL ago (shared_ok)."""
    import time

    now = time.monotonic()
    cached = _state.presence.get(slot)
    if cached is not None and now - cached[0] < PRESENCE_TTL:
        return cached[1]
    shared = _state.shared_presence
    age = shared.age(slot) if shared is not None and shared_ok else None
    if age is not None:  # p11fast/snapshot.py
        _state.presence[slot] = (now - age, True)
        _state.reported.setdefault(slot, True)
        return True
    try:
        status, _, _ = _state.pools[slot].call("GET", "/health/ready")
        present = status == 200
        if not present:
            report_absent(slot, status, _instances_of(slot))
    except Exception as exc:
        url = getattr(exc, "instance_url", None)
        report_absent(slot, 0, f"{url}: {exc.message}" if url else str(exc))
        present = False
    _state.presence[slot] = (now, present)
    if shared is not None:
        shared.note(slot, present)
    # The first presence the application could see is what C_WaitForSlotEvent counts from: a
    # token arriving after C_GetSlotList showed it absent is an event, not the baseline.
    _state.reported.setdefault(slot, present)
    return present


cdef void report_absent(int slot, long status, str why) except *:
    """Logs why slot's token is absent: `why` names the instance that answered with `status`,
    or (status 0) is the transport's `<instance URL>: <reason>`."""
    if status:
        why = f"{why} answered GET /health/ready with HTTP {status}{_ABSENCE_HINTS.get(status, '')}"
    message = f"slot {slot} ({_state.config.slots[slot].label}): token not present: {why}"
    if slot in _absence_warned:
        _state.log.info(message)
    else:
        _absence_warned.add(slot)
        _state.log.warn(message)


cdef str _instances_of(int slot):
    """The instance a presence answer came from: the transport's call does not say which."""
    urls = [instance.url for instance in _state.config.slots[slot].instances]
    return urls[0] if len(urls) == 1 else f"one of {', '.join(urls)}"


cdef void seed_presence_from_light(int slot, int present, double checked_at, long status,
                                   const char *why) noexcept nogil:
    """A presence answer light mode gave (loader/light.c), handed over when it starts the ABI:
    it is what C_WaitForSlotEvent counts from, and is reused for PRESENCE_TTL like one of ours;
    an absent token is logged as if this process had found it (light mode logs nothing).
    `checked_at` is CLOCK_MONOTONIC, time.monotonic()'s clock; `status` and `why` are
    p11f_transport_get's (_transport.pxd)."""
    with gil:
        if _state is None or slot < 0 or slot >= g_nslots:
            return
        _state.presence[slot] = (checked_at, bool(present))
        _state.reported.setdefault(slot, bool(present))
        if not present:
            try:
                report_absent(slot, status, why.decode("utf-8", "replace") if why else "?")
            except Exception:
                pass  # a log line cannot be written: the answer stands


cdef CK_RV C_GetSlotList(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList,
                         CK_ULONG_PTR pulCount) noexcept nogil:
    cdef CK_ULONG n = 0
    cdef CK_SLOT_ID ids[MAX_SLOTS]
    cdef int i
    if not p11f_is_initialized():
        return CKR_CRYPTOKI_NOT_INITIALIZED
    if pulCount == NULL:
        return CKR_ARGUMENTS_BAD
    with gil:
        try:
            for i in range(g_nslots):
                if not tokenPresent or slot_present(i):
                    ids[n] = i
                    n += 1
        except BaseException as exc:
            return rv_for(exc, b"C_GetSlotList")
    if pSlotList == NULL:
        pulCount[0] = n
        return CKR_OK
    if pulCount[0] < n:
        pulCount[0] = n
        return CKR_BUFFER_TOO_SMALL
    memcpy(pSlotList, ids, n * sizeof(CK_SLOT_ID))
    pulCount[0] = n
    return CKR_OK


cdef CK_RV C_GetSlotInfo(CK_SLOT_ID slotID, CK_SLOT_INFO *pInfo) noexcept nogil:
    if not p11f_is_initialized():
        return CKR_CRYPTOKI_NOT_INITIALIZED
    if slotID >= <CK_ULONG>g_nslots:
        return CKR_SLOT_ID_INVALID
    if pInfo == NULL:
        return CKR_ARGUMENTS_BAD
    with gil:
        try:
            fill_slot_info(slotID, pInfo)
            if slot_present(slotID):
                pInfo.flags |= CKF_TOKEN_PRESENT
        except BaseException as exc:
            return rv_for(exc, b"C_GetSlotInfo")
    return CKR_OK


cdef void fill_slot_info(CK_SLOT_ID slotID, CK_SLOT_INFO *pInfo) except *:
    """Everything but CKF_TOKEN_PRESENT."""
    slot = _state.config.slots[slotID]
    pad_copy(pInfo.slotDescription, 64, slot.description or slot.label)
    pad_copy(pInfo.manufacturerID, 32, "p11fast")
    pInfo.flags = CKF_HW_SLOT | CKF_REMOVABLE_DEVICE
    pInfo.hardwareVersion.major = 0
    pInfo.hardwareVersion.minor = 1
    pInfo.firmwareVersion.major = 0
    pInfo.firmwareVersion.minor = 1


cdef CK_RV C_GetTokenInfo(CK_SLOT_ID slotID, CK_TOKEN_INFO *pInfo) noexcept nogil:
    if not p11f_is_initialized():
        return CKR_CRYPTOKI_NOT_INITIALIZED
    if slotID >= <CK_ULONG>g_nslots:
        return CKR_SLOT_ID_INVALID
    if pInfo == NULL:
        return CKR_ARGUMENTS_BAD
    with gil:
        try:
            if not slot_present(slotID):
                return CKR_TOKEN_NOT_PRESENT
            fill_token_text(slotID, pInfo)
        except BaseException as exc:
            return rv_for(exc, b"C_GetTokenInfo")
    fill_token_numbers(slotID, pInfo)
    return CKR_OK


cdef void fill_token_text(CK_SLOT_ID slotID, CK_TOKEN_INFO *pInfo) except *:
    # What identifies a token lives in p11fast.uri, which `p11fast check` builds URIs from.
    from p11fast import uri

    slot = _state.config.slots[slotID]
    pad_copy(pInfo.label, 32, slot.label)
    pad_copy(pInfo.manufacturerID, 32, uri.TOKEN_MANUFACTURER)
    pad_copy(pInfo.model, 16, uri.TOKEN_MODEL)
    pad_copy(pInfo.serialNumber, 16, uri.token_serial(slotID))


cdef void fill_token_numbers(CK_SLOT_ID slotID, CK_TOKEN_INFO *pInfo) noexcept nogil:
    """Flags, counts and versions: without the GIL, since the counts are read under g_lock."""
    cdef slot_t *s = &g_slots[slotID]
    pInfo.flags = CKF_RNG | CKF_TOKEN_INITIALIZED
    if s.has_operator:
        # No operator in the configuration: no normal user whose PIN could be used.
        pInfo.flags |= CKF_USER_PIN_INITIALIZED
    if not s.operator_implicit:
        pInfo.flags |= CKF_LOGIN_REQUIRED
    pthread_mutex_lock(&g_lock)
    pInfo.ulSessionCount = s.sessions
    pInfo.ulRwSessionCount = s.rw_sessions
    pthread_mutex_unlock(&g_lock)
    pInfo.ulMaxSessionCount = MAX_SESSIONS
    pInfo.ulMaxRwSessionCount = MAX_SESSIONS
    pInfo.ulMaxPinLen = g_pin_max
    pInfo.ulMinPinLen = g_pin_min
    pInfo.ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION
    pInfo.ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION
    pInfo.ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION
    pInfo.ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION
    pInfo.hardwareVersion.major = 0
    pInfo.hardwareVersion.minor = 1
    pInfo.firmwareVersion.major = 0
    pInfo.firmwareVersion.minor = 1
    memset(pInfo.utcTime, b' ', 16)


cdef void write_snapshot(cfg, log, const char *config_path) except *:
    """What C_GetInfo, C_GetSlotInfo and C_GetTokenInfo answer, for the loader's light mode."""
    from p11fast import snapshot

    cdef CK_INFO info
    cdef CK_SLOT_INFO slot_info
    cdef CK_TOKEN_INFO token_info
    cdef int i
    if not snapshot.wanted(cfg, log):
        return
    # Padding included: what the stack held before (auth headers were built on it) must not
    # reach the file.
    memset(&info, 0, sizeof(info))
    memset(&slot_info, 0, sizeof(slot_info))
    memset(&token_info, 0, sizeof(token_info))
    fill_info(&info)
    slots = []
    for i in range(g_nslots):
        fill_slot_info(i, &slot_info)
        fill_token_text(i, &token_info)
        with nogil:
            fill_token_numbers(i, &token_info)
        slots.append(((<char *>&slot_info)[:sizeof(slot_info)],
                      (<char *>&token_info)[:sizeof(token_info)],
                      pool_spec(cfg.slots[i])))
    _state.shared_presence = snapshot.write(
        cfg,
        config_path if config_path != NULL else None,
        (<char *>&info)[:sizeof(info)],
        slots,
        [sys.modules["p11fast._abi"].__file__, sys.modules["p11fast._transport"].__file__],
    )


cdef CK_RV C_GetMechanismList(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList,
                              CK_ULONG_PTR pulCount) noexcept nogil:
    if not p11f_is_initialized():
        return CKR_CRYPTOKI_NOT_INITIALIZED
    if slotID >= <CK_ULONG>g_nslots:
        return CKR_SLOT_ID_INVALID
    if pulCount == NULL:
        return CKR_ARGUMENTS_BAD
    return mechanism_list(pMechanismList, pulCount)


cdef CK_RV mechanism_list(CK_MECHANISM_TYPE_PTR out, CK_ULONG_PTR count) noexcept nogil:
    """What the module offers (p11f_mechanism_types) and the policy allows."""
    cdef CK_MECHANISM_TYPE offered[MECHANISM_COUNT]
    cdef CK_ULONG n = 0
    cdef int i
    for i in range(MECHANISM_COUNT):
        if mechanism_allowed(p11f_mechanism_types[i]):
            offered[n] = p11f_mechanism_types[i]
            n += 1
    if out == NULL:
        count[0] = n
        return CKR_OK
    if count[0] < n:
        count[0] = n
        return CKR_BUFFER_TOO_SMALL
    memcpy(out, offered, n * sizeof(CK_MECHANISM_TYPE))
    count[0] = n
    return CKR_OK


cdef CK_RV C_GetMechanismInfo(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type,
                              CK_MECHANISM_INFO_PTR pInfo) noexcept nogil:
    cdef int i
    if not p11f_is_initialized():
        return CKR_CRYPTOKI_NOT_INITIALIZED
    if slotID >= <CK_ULONG>g_nslots:
        return CKR_SLOT_ID_INVALID
    if pInfo == NULL:
        return CKR_ARGUMENTS_BAD
    for i in range(MECHANISM_COUNT):
        if p11f_mechanism_types[i] == type and mechanism_allowed(type):
            pInfo[0] = p11f_mechanism_infos[i]
            return CKR_OK
    return CKR_MECHANISM_INVALID


cdef int slot_event() except -2:
    """The first slot whose presence changed since it was last reported, or -1."""
    cdef int i
    for i in range(g_nslots):
        _state.presence.pop(i, None)
        present = slot_present(i, False)
        before = _state.reported.get(i)
        _state.reported[i] = present
        if before is not None and before != present:
            return i
    return -1


cdef CK_RV C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR pSlot, CK_VOID_PTR pReserved) noexcept nogil:
    cdef int found
    cdef timespec deadline
    if not p11f_is_initialized():
        return CKR_CRYPTOKI_NOT_INITIALIZED
    if pSlot == NULL or pReserved != NULL:
        return CKR_ARGUMENTS_BAD
    while True:
        with gil:
            if _state is None:
                return CKR_CRYPTOKI_NOT_INITIALIZED
            try:
                found = slot_event()
            except BaseException as exc:
                return rv_for(exc, b"C_WaitForSlotEvent")
        if not p11f_is_initialized():
            # C_Finalize ran meanwhile: what slot_event saw may be the pools going away
            return CKR_CRYPTOKI_NOT_INITIALIZED
        if found >= 0:
            pSlot[0] = found
            return CKR_OK
        if flags & CKF_DONT_BLOCK:
            return CKR_NO_EVENT
        clock_gettime(CLOCK_REALTIME, &deadline)
        deadline.tv_sec += 1
        pthread_mutex_lock(&g_lock)
        if p11f_is_initialized():
            pthread_cond_timedwait(&g_event, &g_lock, &deadline)
        pthread_mutex_unlock(&g_lock)
        if not p11f_is_initialized():
            return CKR_CRYPTOKI_NOT_INITIALIZED
