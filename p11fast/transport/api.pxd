# api: the transport's Python surface (in p11fast._abi) — Pool (a slot's pool: call, stats, close),
# pool_spec (spec), basic_auth and the ERR_* codes of the p11fast.errors.TransportError it
# raises — and the module's import, which sets the process up (lifetime) unless light mode
# already did.
#
# Contract:
#   Pool(slot_config, threads_allowed=True) adopts a parked pool (park) built from the same
#   config and flag, else builds one; raises ValueError (pool_spec), TransportError(ERR_NOMEM)
#   naming the instance whose libcurl handle cannot be set up, or MemoryError.
#   Pool.call(method, path, body=None, auth_header=None, content_type=None)
#       -> (status, body, content_type); TransportError when no instance answered (never
#       carries secrets). Holds the pool (a reference) for the call: a concurrent close is safe.
#   Pool.stats() -> dict; Pool.close() is idempotent (requests in flight finish, later ones
#   fail with ERR_CLOSED). Other Cython modules read Pool.ptr only while holding the Pool.
# uses: types, sync, pool, spec, park, lifetime, request

cdef class Pool:
    cdef tp_pool *ptr
