# park: pools the loader's light mode opened before Python started (p11f_transport_open), each
# behind a handle (tp_light), until the loader releases it or Python's Pool adopts the pool.
#
# Ownership: the parked list owns a parked pool until a Pool adopts it or the opener releases
# it. Pool(slot_config, threads_allowed) adopts (_adopt) a parked pool whose
# pool_spec(slot_config) is byte-identical and whose threads flag is the same: it takes it as
# its own (handles, open connection, registration and a background set-up maybe still in
# progress), opening nothing. The handle stays valid until released either way, so get and
# release after adoption, after the adopter's close or in a forked child are safe: closing an
# adopted pool cuts its handle's link (_park_forget), and so does a fork
# (_park_after_fork_child). In a forked child parked pools are closed like every pool (pool),
# never adopted; releasing frees them without touching the parent's connections.
#
# Contract: _park_link, _park_unlink, _park_pool_ref and _adopt take g_tp_lock (pool)
# themselves; _park_forget needs it held. _park_unlink returns False for a handle not on the list (unknown
# or released). _park_pool_ref returns the handle's pool with a reference for the caller, or
# NULL once the pool is gone. _adopt returns NULL when nothing matches.
# uses: types, sync, pool

cdef struct tp_light:         # a p11f_transport_open handle
    tp_pool *pool             # NULL once the pool's adopter closed it
    bint adopted              # a Pool owns the pool; until then (parked) this handle does
    int threads_allowed
    unsigned char *spec       # the pool_spec blob the pool was built from, while parked
    size_t spec_len
    tp_light *next

cdef void _park_link(tp_light *h) noexcept nogil
cdef bint _park_unlink(tp_light *h) noexcept nogil
cdef tp_pool *_park_pool_ref(tp_light *h) noexcept nogil
cdef tp_pool *_adopt(const unsigned char *spec, size_t n, int threads_allowed) noexcept nogil
cdef void _park_forget(tp_pool *pool) noexcept nogil
cdef void _park_after_fork_child() noexcept nogil
