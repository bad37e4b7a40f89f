# api: the Python surface (contract in api.pxd).

from p11fast.errors import TRANSPORT_FAILURES, TransportError
from p11fast.lean import fsdecode  # os's, without importing os

# A request that got no HTTP response raises p11fast.errors.TransportError, error_code one of:
OK = TP_OK
ERR_CONNECT = TP_ERR_CONNECT
ERR_TIMEOUT = TP_ERR_TIMEOUT
ERR_TLS = TP_ERR_TLS
ERR_NOMEM = TP_ERR_NOMEM
ERR_CLOSED = TP_ERR_CLOSED
DEFAULT_TIMEOUT_SECONDS = DEFAULT_TIMEOUT_MS / 1000  # timeout_seconds unset (spec.pxd)
DEFAULT_SLOW_TIMEOUT_SECONDS = DEFAULT_SLOW_TIMEOUT_MS / 1000
ERROR_NAMES = TRANSPORT_FAILURES
_METHODS = {"GET": TP_GET, "POST": TP_POST, "PUT": TP_PUT, "DELETE": TP_DELETE}


def basic_auth(str username, str password):
    """The Authorization header line (bytes) that Pool.call sends for these credentials."""
    from binascii import b2a_base64

    return b"Authorization: Basic " + b2a_base64(f"{username}:{password}".encode(), newline=False)


cdef class Pool:
    """A slot's connection pool (api.pxd; each piece's contract in p11fast/transport/*.pxd)."""

    def __init__(self, slot_config, bint threads_allowed=True):
        if self.ptr != NULL:
            raise RuntimeError("Pool already initialised")
        cdef bytes spec = pool_spec(slot_config)
        cdef const unsigned char *p = spec
        cdef size_t n = len(spec)
        cdef int failed = -1
        cdef tp_pool *pool
        with nogil:
            # a pool the loader's light mode opened with this very config, else a new one
            pool = _adopt(p, n, threads_allowed)
            if pool == NULL:
                pool = _pool_from_spec(p, n, threads_allowed, &failed)
        if pool == NULL:
            if failed >= 0:
                url = list(slot_config.instances)[failed].url
                raise TransportError(TP_ERR_NOMEM, url, "cannot set up a libcurl handle")
            raise MemoryError()  # the blob is pool_spec's own: only memory can be missing
        self.ptr = pool

    def call(self, str method, str path, bytes body=None, bytes auth_header=None,
             str content_type=None):
        """One request with retries and failover -> (status, body, content_type)."""
        cdef int m = _METHODS.get(method.upper(), -1)
        if m < 0:
            raise ValueError(f"unsupported HTTP method {method!r}")
        cdef bytes bpath = path.encode("ascii")
        cdef bytes bct = content_type.encode("ascii") if content_type is not None else None
        cdef const char *c_path = bpath
        cdef const char *c_auth = NULL
        cdef const char *c_body = NULL
        cdef size_t body_len = 0
        cdef const char *c_ct = NULL
        if auth_header is not None:
            c_auth = auth_header
        if body is not None:
            c_body = body
            body_len = len(body)
        if bct is not None:
            c_ct = bct
        cdef tp_pool *pool = self.ptr
        cdef tp_buf out
        cdef tp_result res
        cdef const char *url
        cdef int rc
        if pool == NULL:
            raise TransportError(TP_ERR_CLOSED, None, "pool closed")
        out.data = NULL
        out.len = 0
        out.cap = 0
        _pool_ref(pool)  # under the GIL, so a concurrent close() cannot free it first
        with nogil:
            rc = tp_request(pool, m, c_path, c_auth, c_body, body_len, c_ct, &out, &res)
        try:
            if rc != TP_OK:
                url = tp_instance_url(pool, res.instance)
                raise TransportError(rc, url.decode() if url != NULL else None,
                                     res.detail.decode("utf-8", "replace") or ERROR_NAMES[rc])
            data = out.data[:out.len] if out.len else b""
            return res.status, data, res.content_type.decode("latin-1")
        finally:
            tp_buf_free(&out)
            with nogil:
                _pool_unref(pool)

    def stats(self):
        cdef tp_pool *pool = self.ptr
        if pool == NULL:
            return {"closed": True, "instances": []}
        return {
            "closed": bool(tp_load(&pool.closed)),
            "connections_opened": tp_read(&pool.n_connections_opened),
            "connections_converted": tp_read(&pool.n_converted),
            "connection_waits": tp_read(&pool.n_waits),
            "background_setups": tp_read(&pool.n_background_setups),
            "background_setups_pending": sum(
                tp_load(&pool.instances[i].setup_wanted) or tp_load(&pool.instances[i].setting_up)
                for i in range(pool.ninstances)
            ),
            "requests": tp_read(&pool.n_requests),
            "retries": tp_read(&pool.n_retries),
            "failovers": tp_read(&pool.n_failovers),
            "health_checks": tp_read(&pool.n_health_checks),
            "framing_fallbacks": tp_read(&pool.n_fallbacks),
            "settings": {
                "threads_allowed": bool(pool.threads_allowed),
                "retries": pool.retries,
                "delay_ms": pool.delay_ms,
                "timeout_ms": pool.timeout_ms,
                "slow_timeout_ms": pool.slow_timeout_ms,
                "connect_timeout_ms": pool.connect_timeout_ms,
                "tcp_keepalive": (pool.keepidle, pool.keepintvl, pool.keepcnt)
                if pool.keepalive else None,
                "max_age_seconds": pool.maxage_conn,
            },
            "instances": [_instance_stats(&pool.instances[i]) for i in range(pool.ninstances)],
        }

    def close(self):
        """Idempotent. Requests in flight finish; later ones fail with ERR_CLOSED."""
        cdef tp_pool *pool = self.ptr
        self.ptr = NULL
        if pool != NULL:
            with nogil:
                _pool_close(pool)

    def __dealloc__(self):
        cdef tp_pool *pool = self.ptr
        self.ptr = NULL
        if pool != NULL:
            with nogil:
                _pool_close(pool)


cdef dict _instance_stats(tp_instance *inst):
    return {
        "url": inst.url.decode(),
        "up": bool(tp_load(&inst.up)),
        "in_flight": tp_load(&inst.inflight),
        "max_connections": inst.cap,
        "danger_insecure_cert": bool(inst.insecure),
        "sha256_fingerprints": [inst.pins[PIN_LEN * i:PIN_LEN * (i + 1)]
                                for i in range(inst.npins)],
        "cacert": fsdecode(inst.cacert) if inst.cacert != NULL else None,
        "framing": bool(inst.framing),
    }


# Usually a no-op: the light mode may have done it before Python started.
if not _global_init():
    raise ImportError("libcurl failed to initialise")
