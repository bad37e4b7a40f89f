# health: rotation, health checks and the background thread (contract in health.pxd).

from p11fast._decl.curl cimport *
from p11fast._decl.posix cimport (
    pthread_cond_init, pthread_cond_signal, pthread_cond_t, pthread_cond_wait, pthread_create,
    pthread_join, pthread_mutex_init, pthread_mutex_lock, pthread_mutex_t, pthread_mutex_unlock,
    pthread_t,
)

cdef enum:
    INLINE_CHECKS_MAX = 3        # per request, without threads (Nitrokey's formula)

# The background thread's state, guarded by g_tp_lock (pool) unless said otherwise. No
# initialisers: Cython would assign them in the module's init function, which runs when Python
# first imports us, maybe after light mode started the thread (C zeroes these statics;
# _bg_init sets the rest up).
cdef pthread_cond_t g_probe_cond      # the thread sleeps on it while nothing is down
cdef int g_probe_started
cdef int g_probe_failed               # no thread (pthread_create failed, or the process is
                                      # exiting): fall back to inline checks
cdef pthread_t g_bg_thread            # the background thread while g_probe_started
cdef int g_bg_kick_lost               # a kick came while it was ending: _bg_stop starts another
cdef pthread_mutex_t g_bg_join_lock   # serialises _bg_stop; the thread itself never takes it
cdef CURLM *g_probe_multi


cdef void _bg_init() noexcept nogil:
    """Process-wide set-up, once (lifetime.pyx)."""
    pthread_mutex_init(&g_bg_join_lock, NULL)
    pthread_cond_init(&g_probe_cond, NULL)


# ---------------------------------------------------------------- rotation and checks

cdef tp_conn *_probe_conn(tp_instance *inst) noexcept nogil:
    # Only the thread that won inst.probing gets here, so creation needs no lock.
    if inst.probe == NULL:
        inst.probe = _conn_new(inst, CONN_PROBE)
    return inst.probe


cdef bint _operational(tp_conn *probe, CURLcode rc) noexcept nogil:
    """Whether a finished health check found the instance Operational: /health/ready answers
    200 then, 412 when it is Locked or Unprovisioned (keyfender `handler_health.ml`), which
    serves no key operation and so stays out of rotation."""
    cdef long status = 0
    return rc == CURLE_OK and curl_easy_getinfo(probe.easy, CURLINFO_RESPONSE_CODE, &status) \
        == CURLE_OK and status == 200


cdef bint _claim_check(tp_instance *inst, long long now) noexcept nogil:
    """Whether the caller may health-check inst now (then it owns inst.probing)."""
    if tp_load(&inst.up) or now - tp_load_ll(&inst.last_check_ms) < HEALTH_INTERVAL_MS:
        return False
    if not tp_cas(&inst.probing, 0, 1):
        return False
    tp_store_ll(&inst.last_check_ms, now)
    return True


cdef void _mark_up(tp_instance *inst) noexcept nogil:
    tp_store(&inst.up, 1)


cdef void _mark_down(tp_instance *inst) noexcept nogil:
    if tp_swap(&inst.up, 0) and inst.pool.threads_allowed:
        _bg_kick()


cdef void _inline_checks(tp_pool *pool) noexcept nogil:
    """Without a probe thread: re-check up to INLINE_CHECKS_MAX down instances, 1 s each."""
    cdef int i
    cdef int checks = 0
    cdef long long now = tp_now_ms()
    cdef tp_instance *inst
    cdef tp_conn *c
    for i in range(pool.ninstances):
        if checks == INLINE_CHECKS_MAX:
            return
        inst = &pool.instances[i]
        if not _claim_check(inst, now):
            continue
        checks += 1
        tp_count(&pool.n_health_checks)
        c = _probe_conn(inst)
        if c != NULL and _operational(c, curl_easy_perform(c.easy)):
            _mark_up(inst)
        tp_store(&inst.probing, 0)


# ---------------------------------------------------------------- the thread's lifetime

cdef void _bg_kick() noexcept nogil:
    """An instance went down or wants a connection set up: wake the background thread, starting
    it on first use. Only live pools need it: with none registered nothing starts."""
    global g_probe_multi, g_probe_started, g_probe_failed, g_bg_kick_lost
    pthread_mutex_lock(&g_tp_lock)
    if _bg_stopping():
        g_bg_kick_lost = 1
        pthread_mutex_unlock(&g_tp_lock)
        return
    if not g_probe_started and not g_probe_failed and g_registry != NULL:
        g_probe_multi = curl_multi_init()
        if g_probe_multi != NULL and pthread_create(&g_bg_thread, NULL, _bg_main, NULL) == 0:
            g_probe_started = 1
        else:
            g_probe_failed = 1
    pthread_cond_signal(&g_probe_cond)
    if g_probe_started:
        curl_multi_wakeup(g_probe_multi)  # in case it is polling probe sockets
    pthread_mutex_unlock(&g_tp_lock)


cdef bint _bg_failed() noexcept nogil:
    """Whether no background thread can run (none could start, or the process is exiting):
    then requests check down instances themselves (_inline_checks)."""
    return g_probe_failed


cdef bint _bg_started() noexcept nogil:
    """Whether the background thread runs. Caller holds g_tp_lock."""
    return g_probe_started


cdef bint _bg_halt(bint always) noexcept nogil:
    """Under g_bg_join_lock: ends the background thread and returns once it is gone, always or
    only when no live pool is left. A set-up or probe in progress is aborted (_bg_abort: at its
    next step, within a second). No thread starts again until _bg_resume (kicks meanwhile are
    noted). True when one was running. Never called by the thread itself."""
    global g_probe_started, g_probe_multi
    cdef pthread_t tid
    cdef bint joining
    pthread_mutex_lock(&g_tp_lock)
    joining = g_probe_started and (always or g_registry == NULL)
    if joining or always:
        _bg_set_stopping(1)
    if joining:
        tid = g_bg_thread
        pthread_cond_signal(&g_probe_cond)
        curl_multi_wakeup(g_probe_multi)  # the thread frees it only after seeing the stop
    pthread_mutex_unlock(&g_tp_lock)
    if joining:
        pthread_join(tid, NULL)
        pthread_mutex_lock(&g_tp_lock)
        g_probe_started = 0
        g_probe_multi = NULL
        pthread_mutex_unlock(&g_tp_lock)
    return joining


cdef void _bg_resume(bint restart) noexcept nogil:
    """Under g_bg_join_lock, after _bg_halt: threads may start again. One does now when
    `restart` or a kick was turned away meanwhile, and a live pool is left to serve."""
    global g_bg_kick_lost
    pthread_mutex_lock(&g_tp_lock)
    _bg_set_stopping(0)
    restart = (restart or g_bg_kick_lost) and g_registry != NULL
    g_bg_kick_lost = 0
    pthread_mutex_unlock(&g_tp_lock)
    if restart:
        _bg_kick()


cdef void _bg_stop(bint for_good) noexcept nogil:
    """The background thread ends: when the last pool closes (C_Finalize), and at process exit
    (for_good: none starts again, down instances are re-checked inline)."""
    global g_probe_failed
    pthread_mutex_lock(&g_bg_join_lock)
    if for_good:
        pthread_mutex_lock(&g_tp_lock)
        g_probe_failed = 1
        pthread_mutex_unlock(&g_tp_lock)
    _bg_halt(for_good)
    _bg_resume(False)
    pthread_mutex_unlock(&g_bg_join_lock)


cdef void _at_exit() noexcept nogil:
    # The process exits with pools still open (no C_Finalize): the thread must not be inside
    # libcurl or OpenSSL while OpenSSL's own exit handler frees their state.
    _bg_stop(True)


cdef bint _bg_fork_prepare() noexcept nogil:
    """Before fork(): ends the background thread (it may hold libcurl's or OpenSSL's locks,
    which a child's own connections would then wait for forever) and keeps its join lock until
    _bg_fork_parent, or the child's _bg_after_fork_child. True when one was running."""
    pthread_mutex_lock(&g_bg_join_lock)
    return _bg_halt(True)


cdef void _bg_fork_parent(bint restart) noexcept nogil:
    """After fork(), in the parent: threads may start again, one at once when `restart`."""
    _bg_resume(restart)
    pthread_mutex_unlock(&g_bg_join_lock)


cdef void _bg_after_fork_child(bint released) noexcept nogil:
    """In a forked child: the thread does not exist here; its multi handle is abandoned like
    the handles (pool). The prepare handler holds the join lock: there is nothing to join.
    released: the fork handlers' locks were just released (the first call in this child)."""
    global g_probe_multi, g_probe_failed, g_probe_started, g_bg_kick_lost
    if released:
        pthread_cond_init(&g_probe_cond, NULL)  # its waiter (the thread) is gone
    g_probe_multi = NULL
    g_probe_failed = 0
    g_probe_started = 0
    _bg_set_stopping(0)
    g_bg_kick_lost = 0
    pthread_mutex_init(&g_bg_join_lock, NULL)


# ---------------------------------------------------------------- background connection set-up
# libcurl cannot hand a connection made inside one multi handle to another easy handle's
# curl_easy_send/recv (removing a CONNECT_ONLY handle from a multi handle closes its connection),
# so the background thread sets a framed handle up with that handle's own connect, between two
# turns of its multi loop. A set-up is bounded by the request timeout; probes in flight meanwhile
# are finished on the next turn (their own 1 s timeouts still apply).

cdef tp_instance *_setup_claim() noexcept nogil:
    """Under g_tp_lock: an instance of a live pool that wants a set-up, its pool referenced for the
    caller; NULL when there is none."""
    cdef tp_pool *pool = g_registry
    cdef tp_instance *inst
    cdef int i
    while pool != NULL:
        if pool.threads_allowed and not tp_load(&pool.closed):
            for i in range(pool.ninstances):
                inst = &pool.instances[i]
                if tp_load(&inst.setup_wanted):
                    tp_store(&inst.setting_up, 1)
                    tp_store(&inst.setup_wanted, 0)
                    _pool_ref(pool)
                    return inst
        pool = pool.reg_next
    return NULL


cdef void _setup(tp_instance *inst) noexcept nogil:
    """On the background thread: connects inst's idle framed handles that have no connection.
    A caller finding no idle handle waits for one being connected here (_borrow) rather than
    open another; idle ones still unconnected it may borrow and connect itself."""
    cdef tp_pool *pool = inst.pool
    cdef tp_conn *c
    cdef tp_conn *prev
    cdef CURLcode rc
    while tp_load(&inst.up) and not tp_load(&pool.closed) and not _bg_stopping():
        pthread_mutex_lock(&inst.lock)
        prev = NULL
        c = inst.free_list[CONN_FRAMED]
        while c != NULL and c.sock >= 0:
            prev = c
            c = c.next_free
        if c != NULL:
            if prev != NULL:
                prev.next_free = c.next_free
            else:
                inst.free_list[CONN_FRAMED] = c.next_free
            c.bg_setup = 1
            inst.bg_connecting += 1
        pthread_mutex_unlock(&inst.lock)
        if c == NULL:
            break
        rc = _fr_connect(c)
        if rc == CURLE_OK:
            c.last_used_ms = tp_now_ms()
            tp_count(&pool.n_background_setups)
        # Aborted (the thread was stopped) is no failure of the instance: a caller waiting for
        # this handle connects it itself.
        c.setup_rc = CURLE_OK if rc == CURLE_ABORTED_BY_CALLBACK else rc
        _give_back(inst, c)
        if rc != CURLE_OK:
            break  # the next request finds out why and marks the instance down
    tp_store(&inst.setting_up, 0)


cdef int _probe_scan(CURLM *multi, int *pending) noexcept nogil:
    """Under g_tp_lock: start a check of every down instance that is due. Returns how many."""
    cdef tp_pool *pool = g_registry
    cdef tp_instance *inst
    cdef tp_conn *c
    cdef long long now = tp_now_ms()
    cdef int i
    cdef int added = 0
    pending[0] = 0
    while pool != NULL:
        if pool.threads_allowed and not tp_load(&pool.closed):
            for i in range(pool.ninstances):
                inst = &pool.instances[i]
                if tp_load(&inst.up):
                    continue
                pending[0] += 1
                if not _claim_check(inst, now):
                    continue
                c = _probe_conn(inst)
                if c == NULL or curl_multi_add_handle(multi, c.easy) != CURLM_OK:
                    tp_store(&inst.probing, 0)
                    continue
                _pool_ref(pool)  # the pool outlives its in-flight probe even if closed
                tp_count(&pool.n_health_checks)
                added += 1
        pool = pool.reg_next
    return added


cdef void *_bg_main(void *arg) noexcept nogil:
    cdef CURLM *multi = g_probe_multi
    cdef CURLMsg *msg
    cdef tp_conn *c
    cdef void *priv
    cdef int active = 0
    cdef int pending = 0
    cdef int running = 0
    cdef int left = 0
    cdef tp_instance *inst
    cdef tp_pool *pool
    pthread_mutex_lock(&g_tp_lock)
    while True:
        if _bg_stopping():
            if active == 0:
                break
            inst = NULL  # ending: no new work; the probes in flight end (aborted) first
        else:
            inst = _setup_claim()
        if inst != NULL:
            pool = inst.pool
            pthread_mutex_unlock(&g_tp_lock)
            _setup(inst)
            _pool_unref(pool)
            pthread_mutex_lock(&g_tp_lock)
            continue
        if not _bg_stopping():
            active += _probe_scan(multi, &pending)
        if active == 0 and pending == 0:
            pthread_cond_wait(&g_probe_cond, &g_tp_lock)
            continue
        pthread_mutex_unlock(&g_tp_lock)
        curl_multi_perform(multi, &running)
        msg = curl_multi_info_read(multi, &left)
        while msg != NULL:
            if msg.msg == CURLMSG_DONE:
                curl_easy_getinfo(msg.easy_handle, CURLINFO_PRIVATE, &priv)
                c = <tp_conn *>priv
                curl_multi_remove_handle(multi, msg.easy_handle)
                if _operational(c, msg.data.result):
                    _mark_up(c.inst)
                tp_store(&c.inst.probing, 0)
                active -= 1
                _pool_unref(c.inst.pool)
            msg = curl_multi_info_read(multi, &left)
        # Waits for probe sockets, or sleeps when only not-yet-due instances are down.
        if active or not _bg_stopping():
            curl_multi_poll(multi, NULL, 0, 250, NULL)
        pthread_mutex_lock(&g_tp_lock)
    pthread_mutex_unlock(&g_tp_lock)
    curl_multi_cleanup(multi)
    return NULL
