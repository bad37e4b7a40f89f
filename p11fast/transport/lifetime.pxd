# lifetime: when things start and end — the process-wide set-up, exactly once, by whichever
# comes first (the module's import or a light-mode entry point, then without an initialised
# Python), and the one constructor and the one close of pools.
#
# Why once, and without module-level initialisers: the loader's light mode may use the
# library before Python imports it (or without Python ever starting), and the module's
# import must then reset nothing. So process-wide state is zeroed C statics set up by
# _global_init (one pthread_once), never assigned by the module's init function.
#
# Contract: _global_init returns False when libcurl cannot start (nothing else can then
# work). _global_init_for_loader is the same set-up for the loader, which then runs the fork
# handlers from its own pthread_atfork handlers: 1; 0 when the module's import came first and
# registered its own handlers (the loader must not run them as well); -1 when libcurl cannot
# start. _pool_from_spec builds a pool from a pool_spec() blob (spec: _spec_pool, same NULL
# and *failed), registers it and, with threads, has the background thread connect it at once.
# _pool_close is the owner's close: no new requests, waiters fail with TP_ERR_CLOSED, requests
# in flight finish; the last reference frees the memory, and closing the last live pool ends
# the background thread (joined). Both any thread, no lock held.
# uses: types, sync, pool, spec, park, health, fork

cdef bint _global_init() noexcept nogil
cdef int _global_init_for_loader() noexcept nogil
cdef tp_pool *_pool_from_spec(const unsigned char *spec, size_t n, int threads_allowed,
                              int *failed) noexcept nogil
cdef void _pool_close(tp_pool *pool) noexcept nogil
