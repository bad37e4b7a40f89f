# The module's lifetime: C_Initialize (the configuration, the log, the pools, the tables) and
# C_Finalize, a forked child's reset, the interpreter the loader started, light mode's
# snapshot.

import sys

from libc.stdlib cimport calloc
from libc.string cimport memcpy, memset

from p11fast._decl.pkcs11 cimport *
from p11fast._decl.posix cimport (
    pthread_cond_broadcast, pthread_cond_init, pthread_mutex_init, pthread_mutex_lock,
    pthread_mutex_unlock,
)


cdef extern from *:
    """
    #include <pthread.h>
    #include <string.h>
    /* Whether zeroed memory is already an initialised default mutex (glibc, musl). */
    static int p11f_zero_mutex_is_initialized(void) {
        static const pthread_mutex_t initializer = PTHREAD_MUTEX_INITIALIZER;
        pthread_mutex_t zero;
        memset(&zero, 0, sizeof zero);
        return memcmp(&zero, &initializer, sizeof zero) == 0;
    }
    """
    bint p11f_zero_mutex_is_initialized() nogil


cdef CK_RV c_initialize_check(call_t *call, CK_VOID_PTR pInitArgs) noexcept nogil:
    """The arguments, then p11f_init_lock, held until initialize_finish."""
    cdef CK_C_INITIALIZE_ARGS *args = <CK_C_INITIALIZE_ARGS *>pInitArgs
    cdef int supplied
    if args != NULL:
        supplied = ((args.CreateMutex != NULL) + (args.DestroyMutex != NULL)
                    + (args.LockMutex != NULL) + (args.UnlockMutex != NULL))
        if supplied != 0 and supplied != 4:
            return CKR_ARGUMENTS_BAD
    pthread_mutex_lock(&p11f_init_lock)
    if p11f_is_initialized():
        pthread_mutex_unlock(&p11f_init_lock)
        return CKR_CRYPTOKI_ALREADY_INITIALIZED
    p11f_set_forked(0)
    # A session a C_OpenSession racing with the last C_Finalize left behind: none survives.
    # Those light mode opened are the application's: they are taken over.
    if not p11f_is_adopting():
        sessions_end()
    return CKR_OK


cdef CK_RV c_initialize(call_t *call, CK_VOID_PTR pInitArgs) except *:
    cdef CK_C_INITIALIZE_ARGS *args = <CK_C_INITIALIZE_ARGS *>pInitArgs
    cdef const char *config_path = NULL
    cdef bint threads = True
    if args != NULL:
        # Mutex callbacks, with or without CKF_OS_LOCKING_OK, are not used: the module's own
        # pthread locks give the same guarantees on every platform it runs on.
        threads = (args.flags & CKF_LIBRARY_CANT_CREATE_OS_THREADS) == 0
        # pReserved carries a configuration path for hosts that cannot set the environment.
        config_path = <const char *>args.pReserved
    return set_up(config_path, threads)


cdef CK_RV c_initialize_finish(call_t *call, CK_RV rv, CK_VOID_PTR pInitArgs) noexcept nogil:
    if rv == CKR_OK:
        p11f_set_initialized(1)
        p11f_set_adopting(0)
    pthread_mutex_unlock(&p11f_init_lock)
    return rv


cdef CK_RV set_up(const char *config_path, bint threads) except *:
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
    global _state
    if len(cfg.slots) > MAX_SLOTS:
        raise ValueError(f"at most {MAX_SLOTS} slots are supported")
    if not tables_init():
        raise MemoryError()
    if not p11f_is_adopting():
        objects_reset()
    g_abi.threads_allowed = threads and not cfg.disable_threads
    pools = [Pool(slot, g_abi.threads_allowed) for slot in cfg.slots]
    g_abi.nslots = len(cfg.slots)
    for i, slot in enumerate(cfg.slots):
        init_slot(&g_abi.slots[i], slot, <Pool>pools[i])
    set_mechanism_policy(cfg.policy)
    _state = ModuleState(cfg, log, pools)
    if p11f_is_adopting():
        adopt_compiled()
    if g_abi.threads_allowed:
        # The pools' background thread is in its first TLS handshake now, which the first
        # request waits for anyway: the object model loads meanwhile, not in the first
        # C_FindObjectsInit. Without that thread it loads on first use.
        _state.load_object_model()
    log.info(f"initialised: {g_abi.nslots} slot(s), threads {'allowed' if g_abi.threads_allowed else 'off'}")
    write_snapshot(cfg, log, config_path)
    return CKR_OK


cdef bint tables_init() noexcept nogil:
    """The session and object tables and the locks, at the first start (C_Initialize's or light
    mode's); False for no memory."""
    cdef int i
    if g_abi.sessions != NULL:
        return objects_alloc()
    g_abi.sessions = <session_t *>calloc(MAX_SESSIONS, sizeof(session_t))
    if g_abi.sessions == NULL:
        return False
    # The session table is 16 MB; writing a mutex into every entry would fault in all of it on
    # each start (~4000 page faults, several ms of a one-shot pkcs11-tool run). calloc's zeroed
    # pages are untouched until a session uses them.
    if not p11f_zero_mutex_is_initialized():
        for i in range(MAX_SESSIONS):
            pthread_mutex_init(&g_abi.sessions[i].lock, NULL)
    for i in range(MAX_SLOTS):
        pthread_mutex_init(&g_abi.slots[i].lock, NULL)
    pthread_mutex_init(&g_abi.lock, NULL)
    pthread_cond_init(&g_abi.event, NULL)
    return objects_alloc()


cdef void init_slot(slot_t *s, slot, Pool pool) except *:
    # Light mode's sessions, and the operator's login, are taken over (adopt_compiled).
    cdef bint logged_in = p11f_is_adopting() and s.login_user == CKU_USER
    s.pool = pool.ptr
    if not p11f_is_adopting():
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
    if not logged_in:
        s.login_user = -1
        memcpy(s.op_auth, s.op_auth_config, AUTH_MAX)
    memcpy(s.so_auth, s.so_auth_config, AUTH_MAX)


cdef void adopt_compiled() except *:
    """At promotion, once the slots and _state are set up: what light mode's compiled calls did
    becomes the cold path's — the operator's login (its passphrase kept out of the logs), the
    objects and their handles, the searches not finished, the lines that waited for Python.
    Light mode's pool references go: the slots' pools adopted the same pools."""
    from binascii import a2b_base64

    from p11fast.log import register_secret

    cdef int i
    cdef CK_ULONG j
    cdef bytes header
    cdef session_t *s
    for i in range(g_abi.nslots):
        if g_abi.slots[i].light_pool != NULL:
            _pool_unref(g_abi.slots[i].light_pool)
            g_abi.slots[i].light_pool = NULL
        header = g_abi.slots[i].op_auth
        if g_abi.slots[i].login_user == CKU_USER and header.startswith(BASIC_PREFIX):
            username, _, password = a2b_base64(header[len(BASIC_PREFIX):]).decode(
                "utf-8", "replace").partition(":")
            register_secret(password, username)
    records_adopt()
    for i in range(g_abi.sessions_used):
        s = &g_abi.sessions[i]
        if s.handle != 0 and s.finding:
            _state.finds[s.handle] = [s.found[j] for j in range(s.nfound)]
            s.finding = False
            s.nfound = 0
    p11f_set_adopting(0)
    failures_write()


cdef CK_RV c_finalize(CK_VOID_PTR pReserved) noexcept nogil:
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
    pthread_mutex_lock(&g_abi.lock)
    pthread_cond_broadcast(&g_abi.event)
    pthread_mutex_unlock(&g_abi.lock)
    # What needs the GIL here never raises: nothing for the error template to do.
    with gil:
        # While the credentials and pools still exist: session keys leave the HSM.
        release_session_objects(None, -1)
    sessions_end()
    with gil:
        objects_clear()
        finalize_state()
    pthread_mutex_unlock(&p11f_init_lock)
    return CKR_OK


cdef void finalize_state() noexcept:
    global _state
    cdef int i
    state = _state
    _state = None
    for i in range(g_abi.nslots):
        g_abi.slots[i].pool = NULL
        memset(g_abi.slots[i].op_auth, 0, AUTH_MAX)
        memset(g_abi.slots[i].so_auth, 0, AUTH_MAX)
        memset(g_abi.slots[i].op_auth_config, 0, AUTH_MAX)
        memset(g_abi.slots[i].so_auth_config, 0, AUTH_MAX)
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
    cdef int i
    tp_after_fork_child()
    # A child that neither finalised nor initialised passes the inherited state on.
    p11f_set_forked(p11f_is_initialized() or p11f_is_forked())
    p11f_set_initialized(0)
    p11f_set_adopting(0)
    pthread_mutex_init(&p11f_init_lock, NULL)
    pthread_mutex_init(&g_abi.lock, NULL)
    pthread_cond_init(&g_abi.event, NULL)
    if g_abi.sessions != NULL:
        # Only entries below sessions_used were ever locked.
        for i in range(g_abi.sessions_used):
            pthread_mutex_init(&g_abi.sessions[i].lock, NULL)
            session_ops_reset(&g_abi.sessions[i], True)
            g_abi.sessions[i].handle = 0
    objects_drop()
    for i in range(MAX_SLOTS):
        pthread_mutex_init(&g_abi.slots[i].lock, NULL)
        g_abi.slots[i].pool = NULL
        g_abi.slots[i].light_pool = NULL  # the parent's reference, not released
    records_drop()
    refusal_forget()


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


cdef list offered_mechanisms():
    """(type, CK_MECHANISM_INFO's bytes) of what C_GetMechanismList and C_GetMechanismInfo
    answer for every slot, from those very functions; None if they did not answer."""
    cdef CK_MECHANISM_TYPE types[MECHANISM_COUNT]
    cdef CK_MECHANISM_INFO mechanism_info
    cdef CK_ULONG n = MECHANISM_COUNT, i
    if c_get_mechanism_list(0, types, &n) != CKR_OK:
        return None
    offered = []
    for i in range(n):
        memset(&mechanism_info, 0, sizeof(mechanism_info))
        if c_get_mechanism_info(0, types[i], &mechanism_info) != CKR_OK:
            return None
        offered.append((types[i], (<char *>&mechanism_info)[:sizeof(mechanism_info)]))
    return offered


cdef void write_snapshot(cfg, log, const char *config_path) except *:
    """What C_GetInfo, C_GetSlotInfo, C_GetTokenInfo, C_GetMechanismList and
    C_GetMechanismInfo answer, and what the compiled session and sign functions need, for the
    loader's light mode."""
    from p11fast import snapshot

    cdef CK_INFO info
    cdef CK_SLOT_INFO slot_info
    cdef CK_TOKEN_INFO token_info
    cdef int i
    if not snapshot.wanted(cfg, log):
        return
    mechanisms = offered_mechanisms()
    if mechanisms is None:
        return
    # Padding included: what the stack held before (auth headers were built on it) must not
    # reach the file.
    memset(&info, 0, sizeof(info))
    memset(&slot_info, 0, sizeof(slot_info))
    memset(&token_info, 0, sizeof(token_info))
    fill_info(&info)
    slots = []
    for i in range(g_abi.nslots):
        fill_slot_info(i, &slot_info)
        fill_token_text(i, &token_info)
        with nogil:
            fill_token_numbers(i, &token_info)
        # As with no session open: sessions light mode opened and this start took over are not
        # the next process's (light mode adds its own, live).
        token_info.ulSessionCount = 0
        token_info.ulRwSessionCount = 0
        operator = cfg.slots[i].operator
        slots.append(((<char *>&slot_info)[:sizeof(slot_info)],
                      (<char *>&token_info)[:sizeof(token_info)],
                      slot_users(&g_abi.slots[i]),
                      operator.username.encode() if operator is not None else b"",
                      pool_spec(cfg.slots[i])))
    # As set_mechanism_policy left it: the types the ABI checks, not the configured names.
    allowed = None
    if g_abi.nallowed >= 0:
        allowed = [g_abi.allowed_mechs[i] for i in range(g_abi.nallowed)]
    _state.shared_presence = snapshot.write(
        cfg,
        config_path if config_path != NULL else None,
        (<char *>&info)[:sizeof(info)],
        slots,
        mechanisms,
        allowed,
        [sys.modules["p11fast._abi"].__file__],
    )
