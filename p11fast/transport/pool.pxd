# pool: the process's live pools and the connections of each instance — the registry, a pool's
# references and its memory, the connection cap, borrowing a handle, the FIFO of callers
# waiting for one, giving it back — and the one process-wide lock.
#
# Connection cap: `max_idle_connections` caps the connections (libcurl handles) open to one
# instance, busy or idle (Nitrokey: "maximum number of connections in the pool"; default 16,
# spec.pyx). A caller that finds none idle opens one while under the cap, else waits, FIFO, on
# its own condition variable until a handle is given back (direct hand-off to the oldest
# waiter: no barging, no thundering herd), at most the request timeout. So a steady load with
# more threads than the cap keeps exactly the cap's connections open and opens or closes none.
# Framed and full handles share the cap: at the cap an idle handle of the other kind is closed
# to open the wanted kind (stats: connections_converted). Health-check handles are not counted.
#
# Contract: _borrow returns TP_OK (*out set), TP_ERR_TIMEOUT (every connection stayed busy for
# the whole timeout: the instance is not at fault), TP_ERR_CLOSED (the pool was closed: waiters
# are woken, _wake_waiters) or TP_ERR_NOMEM; _borrow_failed writes the reason of the first
# and the last. _give_back returns True when the handle went idle,
# False when a waiter took it. A pool's memory lives while it has references (_pool_ref: its
# owner, each request in flight, each probe in flight); the last _pool_unref frees it.
# Locking: g_tp_lock guards the registry, the parked list (park) and the background thread's
# state (health); inst.lock guards an instance's lists, counts and waiters. Where both are
# held, g_tp_lock comes first. Neither is held during I/O or while waiting for anything but
# the other.
# uses: types, sync, cstr, conn

from p11fast._decl.posix cimport pthread_mutex_t

# No initialisers: Cython would assign them in the module's init function, which runs only when
# Python imports the module, possibly after light mode used it (lifetime.pyx sets them up).
cdef pthread_mutex_t g_tp_lock
cdef tp_pool *g_registry          # live pools, linked by reg_next / reg_prev

cdef int _borrow(tp_instance *inst, int kind, tp_conn **out) noexcept nogil
cdef void _borrow_failed(int err, char *detail, size_t size) noexcept nogil
cdef bint _give_back(tp_instance *inst, tp_conn *c) noexcept nogil
cdef void _wake_waiters(tp_instance *inst) noexcept nogil
cdef void _pool_ref(tp_pool *pool) noexcept nogil
cdef void _pool_unref(tp_pool *pool) noexcept nogil
cdef void _pool_free(tp_pool *pool) noexcept nogil
cdef void _pool_register(tp_pool *pool) noexcept nogil
cdef void _pool_unregister(tp_pool *pool) noexcept nogil
cdef void _pool_lock_all() noexcept nogil
cdef void _pool_unlock_all() noexcept nogil
cdef void _pool_after_fork_child() noexcept nogil
