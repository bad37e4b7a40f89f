# pool: the registry, a pool's memory, and the cap on each instance's connections (contract in
# pool.pxd).
#
# The hot path borrows an idle handle of the chosen instance under the instance's mutex (a few
# pointer moves), does the exchange on the calling thread with no lock held, and gives the
# handle back. Nitrokey's reconnect storm came from opening extra connections beyond its pool
# and closing them on return: here callers beyond the cap wait instead.

from libc.stdlib cimport free

from p11fast._decl.curl cimport CURLE_OK
from p11fast._decl.posix cimport (
    pthread_cond_destroy, pthread_cond_signal, pthread_cond_t, pthread_cond_wait,
    pthread_mutex_destroy, pthread_mutex_lock, pthread_mutex_t, pthread_mutex_unlock,
)

cdef extern from * nogil:
    """
    #include <errno.h>
    #include <pthread.h>
    #include <time.h>

    /* Waiters' conditions use the monotonic clock: a wall-clock jump must not cut or stretch a
       wait bounded by the request timeout. */
    static inline int tp_cond_init_mono(pthread_cond_t *c) {
        pthread_condattr_t a;
        int rc;
        pthread_condattr_init(&a);
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        rc = pthread_cond_init(c, &a);
        pthread_condattr_destroy(&a);
        return rc;
    }

    /* 1 when deadline_ms (tp_now_ms's clock) passed, else 0 (woken, maybe spuriously). */
    static inline int tp_cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, long long deadline_ms) {
        struct timespec t = {deadline_ms / 1000, (deadline_ms % 1000) * 1000000L};
        return pthread_cond_timedwait(c, m, &t) == ETIMEDOUT;
    }
    """
    int tp_cond_init_mono(pthread_cond_t *c)
    bint tp_cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, long long deadline_ms)


# ---------------------------------------------------------------- handles under the cap

cdef void _release_slot(tp_instance *inst) noexcept nogil:
    """A handle of inst is gone (or was never made): its slot under the cap goes to the oldest
    waiter, who opens a handle of its own kind, or is freed. Caller holds inst.lock."""
    cdef tp_waiter *w = inst.wait_head
    if w == NULL:
        inst.nconns -= 1
        return
    inst.wait_head = w.next
    if inst.wait_head == NULL:
        inst.wait_tail = NULL
    w.slot = 1
    pthread_cond_signal(&w.cond)  # under the lock: w (on its owner's stack) is still there


cdef tp_conn *_open(tp_instance *inst, int kind) noexcept nogil:
    """A new handle in a slot the caller holds under the cap; NULL (slot released) on failure."""
    cdef tp_conn *c = _conn_new(inst, kind)
    if c == NULL:
        pthread_mutex_lock(&inst.lock)
        _release_slot(inst)
        pthread_mutex_unlock(&inst.lock)
    return c


cdef tp_conn *_convert(tp_instance *inst, tp_conn *c, int kind) noexcept nogil:
    """c is idle but of the other kind and the cap is reached: close it, open one of `kind` in
    its slot. Happens only when full transfers and framed requests compete at the cap."""
    pthread_mutex_lock(&inst.lock)
    _conn_unlink(inst, c)
    pthread_mutex_unlock(&inst.lock)
    _conn_free(c)
    tp_count(&inst.pool.n_converted)
    return _open(inst, kind)


cdef int _wait(tp_instance *inst, int kind, tp_conn **out, bint for_setup) noexcept nogil:
    """Every handle is busy and the cap is reached, or (for_setup) the background thread is
    connecting one: wait, FIFO, for one to be given back (or a slot to be freed), at most the
    request timeout. A set-up is itself bounded by that timeout and began before this wait,
    so its waiter allows it twice that: the set-up's own outcome, not this wait's, decides.
    Caller holds inst.lock; released on return.
    TP_OK (out set, or NULL after a failed open: TP_ERR_NOMEM), TP_ERR_TIMEOUT, TP_ERR_CLOSED."""
    cdef tp_pool *pool = inst.pool
    cdef tp_waiter w
    cdef tp_waiter *p
    cdef long long limit = pool.timeout_ms * (2 if for_setup else 1)
    cdef long long deadline = tp_now_ms() + limit if limit > 0 else 0
    cdef bint expired = False
    out[0] = NULL
    if tp_load(&pool.closed):  # read under inst.lock: _pool_close wakes waiters under it
        pthread_mutex_unlock(&inst.lock)
        return TP_ERR_CLOSED
    tp_cond_init_mono(&w.cond)
    w.conn = NULL
    w.slot = 0
    w.closed = 0
    w.next = NULL
    if inst.wait_tail != NULL:
        inst.wait_tail.next = &w
    else:
        inst.wait_head = &w
    inst.wait_tail = &w
    tp_count(&pool.n_waits)
    while w.conn == NULL and not w.slot and not w.closed and not expired:
        if deadline:
            expired = tp_cond_wait_until(&w.cond, &inst.lock, deadline)
        else:
            pthread_cond_wait(&w.cond, &inst.lock)
    if w.conn == NULL and not w.slot and not w.closed:
        # timed out, still queued: leave the queue
        if inst.wait_head == &w:
            inst.wait_head = w.next
            p = NULL
        else:
            p = inst.wait_head
            while p.next != &w:
                p = p.next
            p.next = w.next
        if inst.wait_tail == &w:
            inst.wait_tail = p
    pthread_mutex_unlock(&inst.lock)
    pthread_cond_destroy(&w.cond)
    if w.conn != NULL:
        out[0] = w.conn if w.conn.framed == kind else _convert(inst, w.conn, kind)
    elif w.slot:
        out[0] = _open(inst, kind)
    elif w.closed:
        return TP_ERR_CLOSED
    else:
        return TP_ERR_TIMEOUT
    return TP_OK if out[0] != NULL else TP_ERR_NOMEM


cdef int _borrow(tp_instance *inst, int kind, tp_conn **out) noexcept nogil:
    """An idle handle of `kind`; else a new one while under the cap; else an idle one of the
    other kind, reopened as `kind`; else wait (_wait). TP_OK or TP_ERR_*."""
    cdef tp_conn *c
    pthread_mutex_lock(&inst.lock)
    c = inst.free_list[kind]
    if c != NULL:
        inst.free_list[kind] = c.next_free
        pthread_mutex_unlock(&inst.lock)
        out[0] = c
        return TP_OK
    if inst.nconns < inst.cap:
        if kind == CONN_FRAMED and _waiters_fewer_than(inst, inst.bg_connecting):
            # A connection the background thread is setting up is ready sooner than one made
            # from scratch, and a one-shot process pays for one TLS handshake, not two.
            return _wait(inst, kind, out, True)
        inst.nconns += 1
        pthread_mutex_unlock(&inst.lock)
        out[0] = _open(inst, kind)
        return TP_OK if out[0] != NULL else TP_ERR_NOMEM
    c = inst.free_list[1 - kind]
    if c != NULL:
        inst.free_list[1 - kind] = c.next_free
        pthread_mutex_unlock(&inst.lock)
        out[0] = _convert(inst, c, kind)
        return TP_OK if out[0] != NULL else TP_ERR_NOMEM
    return _wait(inst, kind, out, False)


cdef void _borrow_failed(int err, char *detail, size_t size) noexcept nogil:
    """The reason a _borrow failed, for the caller's log line; the instance did nothing wrong
    (it is not marked down: another instance may take the call)."""
    if err == TP_ERR_TIMEOUT:
        _copy_str(detail, size, b"every connection to this instance stayed busy for the whole "
                                b"timeout (max_idle_connections caps them)")
    elif err == TP_ERR_NOMEM:
        _copy_str(detail, size, b"cannot set up a libcurl handle")


cdef bint _waiters_fewer_than(tp_instance *inst, int n) noexcept nogil:
    """Caller holds inst.lock."""
    cdef tp_waiter *w = inst.wait_head
    while w != NULL and n > 0:
        n -= 1
        w = w.next
    return n > 0


cdef bint _give_back(tp_instance *inst, tp_conn *c) noexcept nogil:
    """Hands c to the oldest waiter (False), or puts it on its idle list (True)."""
    cdef tp_waiter *w
    pthread_mutex_lock(&inst.lock)
    if c.bg_setup:
        c.bg_setup = 0
        inst.bg_connecting -= 1
    w = inst.wait_head
    if w == NULL:
        c.setup_rc = CURLE_OK  # a later caller connects afresh
    if w != NULL:
        inst.wait_head = w.next
        if inst.wait_head == NULL:
            inst.wait_tail = NULL
        w.conn = c
        pthread_cond_signal(&w.cond)  # under the lock: w (on its owner's stack) is still there
        pthread_mutex_unlock(&inst.lock)
        return False
    c.next_free = inst.free_list[c.framed]
    inst.free_list[c.framed] = c
    pthread_mutex_unlock(&inst.lock)
    return True


cdef void _wake_waiters(tp_instance *inst) noexcept nogil:
    """The pool is closed: every waiter of inst returns TP_ERR_CLOSED."""
    cdef tp_waiter *w
    pthread_mutex_lock(&inst.lock)
    w = inst.wait_head
    inst.wait_head = NULL
    inst.wait_tail = NULL
    while w != NULL:
        w.closed = 1
        pthread_cond_signal(&w.cond)
        w = w.next  # read before unlocking: the waiter leaves only after we release the lock
    pthread_mutex_unlock(&inst.lock)


# ---------------------------------------------------------------- pool lifetime and the registry

cdef void _pool_ref(tp_pool *pool) noexcept nogil:
    tp_refs_add(&pool.refs, 1)


cdef void _pool_unref(tp_pool *pool) noexcept nogil:
    if tp_refs_add(&pool.refs, -1) == 0:
        _pool_free(pool)


cdef void _pool_free(tp_pool *pool) noexcept nogil:
    # In a forked child the handles are leaked on purpose: curl_easy_cleanup would send TLS
    # close_notify through a socket the parent still uses (its fds were closed already by
    # tp_after_fork_child, and their numbers may have been reused since).
    cdef int i
    cdef tp_instance *inst
    cdef tp_conn *c
    cdef tp_conn *nxt
    for i in range(pool.ninstances):
        inst = &pool.instances[i]
        if not pool.forked:
            c = inst.all_list
            while c != NULL:
                nxt = c.next_all
                _conn_free(c)
                c = nxt
            if inst.probe != NULL:
                _conn_free(inst.probe)
        pthread_mutex_destroy(&inst.lock)
        free(inst.url)
        free(inst.origin_path)
        free(inst.host_line)
        free(inst.pins)
        free(inst.cacert)
    free(pool.instances)
    free(pool)


cdef void _pool_register(tp_pool *pool) noexcept nogil:
    global g_registry
    pthread_mutex_lock(&g_tp_lock)
    pool.reg_next = g_registry
    if g_registry != NULL:
        g_registry.reg_prev = pool
    g_registry = pool
    pool.registered = 1
    pthread_mutex_unlock(&g_tp_lock)


cdef void _pool_unregister(tp_pool *pool) noexcept nogil:
    """Off the registry, if it is on it. Caller holds g_tp_lock."""
    global g_registry
    if pool.registered:
        pool.registered = 0
        if pool.reg_prev != NULL:
            pool.reg_prev.reg_next = pool.reg_next
        else:
            g_registry = pool.reg_next
        if pool.reg_next != NULL:
            pool.reg_next.reg_prev = pool.reg_prev


# ---------------------------------------------------------------- fork (fork.pyx)

cdef void _pool_lock_all() noexcept nogil:
    """g_tp_lock, then every live pool's instance locks: before fork(), so none is held by a
    thread that will not exist in the child, and the lists they guard are consistent when the
    child walks them."""
    cdef tp_pool *pool
    cdef int i
    pthread_mutex_lock(&g_tp_lock)
    pool = g_registry
    while pool != NULL:
        for i in range(pool.ninstances):
            pthread_mutex_lock(&pool.instances[i].lock)
        pool = pool.reg_next


cdef void _pool_unlock_all() noexcept nogil:
    """Releases what _pool_lock_all took."""
    cdef tp_pool *pool = g_registry
    cdef int i
    while pool != NULL:
        for i in range(pool.ninstances):
            pthread_mutex_unlock(&pool.instances[i].lock)
        pool = pool.reg_next
    pthread_mutex_unlock(&g_tp_lock)


cdef void _pool_after_fork_child() noexcept nogil:
    """In a forked child (its only thread): every inherited pool is closed and off the registry,
    its handles abandoned, not cleaned up (_pool_free), and the child's copies of their sockets
    closed without a byte sent on them: the parent still uses the connections."""
    global g_registry
    cdef tp_pool *pool = g_registry
    cdef tp_pool *nxt
    cdef tp_instance *inst
    cdef tp_conn *c
    cdef int i
    while pool != NULL:
        nxt = pool.reg_next
        tp_store(&pool.closed, 1)
        pool.forked = 1
        pool.registered = 0
        for i in range(pool.ninstances):
            inst = &pool.instances[i]
            # Waiters were threads of the parent: their conditions must never be signalled here.
            inst.wait_head = NULL
            inst.wait_tail = NULL
            c = inst.all_list
            while c != NULL:
                _forget_fds(c)
                c = c.next_all
            if inst.probe != NULL:
                _forget_fds(inst.probe)
        pool = nxt
    g_registry = NULL
