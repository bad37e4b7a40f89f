# fork: what fork() does to the transport. Before it, the background thread is stopped (it
# must not hold an OpenSSL lock the child inherits) and every transport lock is taken, so none
# is held by a thread that will not exist in the child; the parent then releases them and
# starts the thread again. In a forked child every pool is closed (TP_ERR_CLOSED) and its
# inherited sockets are closed without any TLS close_notify, so the parent's connections stay
# intact (pool); the easy handles are leaked on purpose (cleaning them up would write into the
# parent's TLS streams). Pools already closed but still finishing a request at fork time are
# not in the registry: their sockets stay open in the child until it exits (they are CLOEXEC,
# so an exec'd program does not inherit them).
#
# Contract: the handlers are registered once per process (lifetime.pyx), with pthread_atfork,
# or run by the loader from its own handlers (capi: p11f_transport_fork_*). tp_after_fork_child
# runs in the child's only thread and is idempotent, so calling it again from the ABI's own
# after-fork hook is harmless. No entry point may be called from an atfork handler other
# than these (g_tp_lock may still be held there).
# uses: pool, park, health

cdef void tp_after_fork_child() noexcept nogil
cdef void _atfork_prepare() noexcept nogil
cdef void _atfork_parent() noexcept nogil
cdef void _atfork_child() noexcept nogil
