# spec: the pool_spec blob — everything a pool takes from a slot config, as bytes. Python
# encodes it (pool_spec(slot_config), layout in its docstring); C decodes it into a new pool
# (_spec_pool), for Pool() and for the loader's light mode alike (p11f_transport_open), so both
# build pools with the same code. It owns the defaults of what a config may leave unset.
#
# Timeouts are never infinite: timeout_seconds, or by default DEFAULT_TIMEOUT_MS for requests
# that may be resent and DEFAULT_SLOW_TIMEOUT_MS for the others; connecting (TCP and TLS) at
# most CONNECT_TIMEOUT_MS of that. max_idle_connections defaults to DEFAULT_CAP,
# connections_max_idle_duration to no limit.
#
# Contract: pool_spec raises what Pool() raises for a config it cannot use (ValueError: no
# instance, a bad fingerprint, a NUL in a string). _spec_pool reads nothing outside
# spec[0:n] and returns a pool with one reference, not registered, or NULL: a malformed blob
# or no memory (*failed = -1), or instance *failed's libcurl handle cannot be set up.
# Any thread, no lock held.
# uses: types, cstr, conn, http1, pool, health

cdef enum:
    PIN_LEN = 32                 # a sha256_fingerprints entry: a SHA-256 digest
    # timeout_seconds unset. Nitrokey's default is no timeout, with which one hung instance
    # stops the whole slot. Requests that may be resent fail over after it, so it is what a
    # stalled instance costs the calls already waiting on it: ample for a signature queued on
    # a busy HSM, short enough to be a pause. Others (key generation: a large RSA key may take
    # long) get more, since a timeout there leaves the outcome unknown.
    DEFAULT_TIMEOUT_MS = 10000
    DEFAULT_SLOW_TIMEOUT_MS = 60000

cdef tp_pool *_spec_pool(const unsigned char *spec, size_t n, int threads_allowed,
                         int *failed) noexcept nogil
