# fork: the fork handlers (contract in fork.pxd).

# Set from prepare to parent or child, by the forking thread only.
cdef int g_fork_locked                # our prepare handler holds g_tp_lock and instance locks
cdef bint g_fork_halted               # it ended the background thread (the parent restarts it)


cdef void tp_after_fork_child() noexcept nogil:
    # Runs in the child's only thread: from our child handler, and again when the ABI's
    # after-fork hook calls it (then the registry is already empty). The locks our prepare
    # handler took are released first (once).
    cdef bint released = _atfork_release()
    _pool_after_fork_child()
    _park_after_fork_child()
    _bg_after_fork_child(released)


cdef void _atfork_prepare() noexcept nogil:
    # The background thread ends first: inside libcurl or OpenSSL it may hold their locks
    # (OpenSSL's random generator's, say), which a child's own connections would then wait for
    # forever. Then every lock the transport has.
    global g_fork_locked, g_fork_halted
    g_fork_halted = _bg_fork_prepare()
    _pool_lock_all()
    g_fork_locked = 1


cdef bint _atfork_release() noexcept nogil:
    # Idempotent: in a child, tp_after_fork_child may run more than once (ours, then the
    # ABI's reset, which calls it too).
    global g_fork_locked
    if not g_fork_locked:
        return False
    g_fork_locked = 0
    _pool_unlock_all()
    return True


cdef void _atfork_parent() noexcept nogil:
    _atfork_release()
    _bg_fork_parent(g_fork_halted)


cdef void _atfork_child() noexcept nogil:
    tp_after_fork_child()
