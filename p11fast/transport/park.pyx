# park: the parked list (contract in park.pxd).

from libc.stdlib cimport free
from libc.string cimport memcmp

from p11fast._decl.posix cimport pthread_mutex_lock, pthread_mutex_unlock

# Handles of p11f_transport_open, until released; guarded by g_tp_lock. No initialiser: see
# pool.pxd.
cdef tp_light *g_light


cdef void _park_link(tp_light *h) noexcept nogil:
    global g_light
    pthread_mutex_lock(&g_tp_lock)
    h.next = g_light
    g_light = h
    pthread_mutex_unlock(&g_tp_lock)


cdef bint _park_unlink(tp_light *h) noexcept nogil:
    cdef tp_light **link
    cdef bint found
    pthread_mutex_lock(&g_tp_lock)
    link = &g_light
    while link[0] != NULL and link[0] != h:
        link = &link[0].next
    found = link[0] != NULL
    if found:
        link[0] = h.next
    pthread_mutex_unlock(&g_tp_lock)
    return found


cdef tp_pool *_park_pool_ref(tp_light *h) noexcept nogil:
    cdef tp_pool *pool
    pthread_mutex_lock(&g_tp_lock)
    pool = h.pool
    if pool != NULL:
        _pool_ref(pool)  # under g_tp_lock, so the adopter's close cannot free it first
    pthread_mutex_unlock(&g_tp_lock)
    return pool


cdef tp_pool *_adopt(const unsigned char *spec, size_t n, int threads_allowed) noexcept nogil:
    """A parked pool built from this very blob with the same threads flag, now the caller's;
    NULL when there is none. A pool a forked child inherited is closed, never adopted."""
    cdef tp_light *h
    cdef tp_pool *pool = NULL
    pthread_mutex_lock(&g_tp_lock)
    h = g_light
    while h != NULL:
        if not h.adopted and h.pool != NULL and not tp_load(&h.pool.closed) \
                and h.threads_allowed == (threads_allowed != 0) and h.spec_len == n \
                and memcmp(h.spec, spec, n) == 0:
            h.adopted = True
            free(h.spec)
            h.spec = NULL
            pool = h.pool
            break
        h = h.next
    pthread_mutex_unlock(&g_tp_lock)
    return pool


cdef void _park_forget(tp_pool *pool) noexcept nogil:
    """pool is being closed by its adopter: no handle may reach it any more."""
    cdef tp_light *h = g_light
    while h != NULL:
        if h.pool == pool:
            h.pool = NULL
        h = h.next


cdef void _park_after_fork_child() noexcept nogil:
    # Light-mode handles stay valid (the loader may still release them): a parked pool, closed
    # and forked by pool's after-fork, is still the handle's to free, which
    # p11f_transport_release does without touching the parent's connections. An adopted one
    # belongs to its Pool, whose close no longer takes g_tp_lock (forked): the handle lets go of it
    # now.
    cdef tp_light *h = g_light
    while h != NULL:
        if h.adopted:
            h.pool = NULL
        h = h.next
