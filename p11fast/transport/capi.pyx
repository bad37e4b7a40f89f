# capi: the loader's entry points (contract in capi.pxd, declarations in capi.h).
#
# The Cython functions below are static; the C block at the end defines the exported names
# (capi.h gives them default visibility, the build hides every other symbol) and calls them.

from libc.stdio cimport snprintf
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy


cdef int _light_init "tp_light_init"() noexcept nogil:
    return _global_init_for_loader()


cdef void _fork_prepare "tp_fork_prepare"() noexcept nogil:
    _atfork_prepare()


cdef void _fork_parent "tp_fork_parent"() noexcept nogil:
    _atfork_parent()


cdef void _fork_child "tp_fork_child"() noexcept nogil:
    _atfork_child()


cdef void *_light_open "tp_light_open"(const unsigned char *spec, size_t n,
                                       int threads_allowed) noexcept nogil:
    cdef tp_light *h
    cdef tp_pool *pool
    cdef int failed
    if not _global_init():
        return NULL
    h = <tp_light *>calloc(1, sizeof(tp_light))
    if h == NULL:
        return NULL
    h.spec = <unsigned char *>malloc(n if n else 1)
    pool = _pool_from_spec(spec, n, threads_allowed, &failed) if h.spec != NULL else NULL
    if pool == NULL:
        free(h.spec)
        free(h)
        return NULL
    memcpy(h.spec, spec, n)
    h.spec_len = n
    h.threads_allowed = threads_allowed != 0
    h.pool = pool
    _park_link(h)
    return h


cdef int _light_get "tp_light_get"(void *handle, const char *path, long *status, char *why,
                                   size_t why_size) noexcept nogil:
    cdef tp_light *h = <tp_light *>handle
    cdef tp_pool *pool
    cdef tp_buf out
    cdef tp_result res
    cdef int rc
    status[0] = 0
    if why_size > 0:
        why[0] = 0
    if not _global_init():
        return TP_ERR_CLOSED
    pool = _park_pool_ref(h)
    if pool == NULL:
        return TP_ERR_CLOSED
    out.data = NULL
    out.len = 0
    out.cap = 0
    rc = tp_request(pool, TP_GET, path, NULL, NULL, 0, NULL, &out, &res)
    tp_buf_free(&out)
    _light_why(pool, &res, why, why_size)
    _pool_unref(pool)
    status[0] = res.status
    return rc


cdef void _light_why(tp_pool *pool, tp_result *res, char *why, size_t size) noexcept nogil:
    """What a log line about the answer needs: the URL of the instance that answered, or
    `<instance URL>: <reason>` when none did (the text TransportError carries)."""
    cdef const char *url = tp_instance_url(pool, res.instance)
    cdef const char *reason = res.detail
    if reason[0] == 0:
        reason = b"no answer"
    if size == 0:
        return
    if url == NULL:
        url = b"no instance"
    if res.error == TP_OK:
        snprintf(why, size, b"%s", url)
    else:
        snprintf(why, size, b"%s: %s", url, reason)


cdef void _light_release "tp_light_release"(void *handle) noexcept nogil:
    cdef tp_light *h = <tp_light *>handle
    if not _global_init():
        return
    if not _park_unlink(h):
        return  # not a live handle: never ours to free
    if not h.adopted and h.pool != NULL:
        _pool_close(h.pool)  # still parked: the handle owned it
    free(h.spec)
    free(h)


cdef extern from *:
    """
    static int tp_light_init(void);
    static void *tp_light_open(const unsigned char *spec, size_t len, int threads_allowed);
    static int tp_light_get(void *handle, const char *path, long *status, char *why,
                            size_t why_size);
    static void tp_light_release(void *handle);
    static void tp_fork_prepare(void);
    static void tp_fork_parent(void);
    static void tp_fork_child(void);

    int p11f_transport_init(void) {
        return tp_light_init();
    }
    void p11f_transport_fork_prepare(void) {
        tp_fork_prepare();
    }
    void p11f_transport_fork_parent(void) {
        tp_fork_parent();
    }
    void p11f_transport_fork_child(void) {
        tp_fork_child();
    }
    void *p11f_transport_open(const unsigned char *spec, size_t len, int threads_allowed) {
        return tp_light_open(spec, len, threads_allowed);
    }
    int p11f_transport_get(void *handle, const char *path, long *status, char *why,
                           size_t why_size) {
        return tp_light_get(handle, path, status, why, why_size);
    }
    void p11f_transport_release(void *handle) {
        tp_light_release(handle);
    }
    """
