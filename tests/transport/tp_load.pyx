# cython: language_level=3
"""Load driver for the transport alone: N pthreads call tp_request in a loop, no GIL, no Python
object per request. Built and run by load.py (a benchmark: it prints numbers, asserts nothing)."""

from libc.stdlib cimport calloc, free
from p11fast._abi cimport Pool, TP_OK, TP_POST, tp_buf, tp_buf_free, tp_request, tp_result

cdef extern from "<pthread.h>" nogil:
    ctypedef unsigned long pthread_t
    int pthread_create(pthread_t *t, const void *attr, void *(*start)(void *) noexcept nogil,
                       void *arg)
    int pthread_join(pthread_t t, void **ret)

cdef extern from * nogil:
    """
    #include <time.h>
    static double tl_now(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return t.tv_sec + t.tv_nsec * 1e-9;
    }
    """
    double tl_now()


cdef struct worker:
    void *pool
    const char *path
    const char *auth
    const char *body
    size_t body_len
    long count          # requests to send (fixed mode) or 0 (timed mode)
    double until        # timed mode: stop at this monotonic time
    long done
    long errors


cdef void *_run(void *arg) noexcept nogil:
    cdef worker *w = <worker *>arg
    cdef tp_buf out
    cdef tp_result res
    out.data = NULL
    out.len = 0
    out.cap = 0
    while True:
        if w.count:
            if w.done + w.errors >= w.count:
                break
        elif (w.done & 63) == 0 and tl_now() >= w.until:
            break
        tp_request(<tp_pool_p>w.pool, TP_POST, w.path, w.auth, w.body, w.body_len,
                   "application/json", &out, &res)
        if res.error == TP_OK and res.status == 200:
            w.done += 1
        else:
            w.errors += 1
        tp_buf_free(&out)  # as hsm_sign does: one response buffer per call
    return NULL


from p11fast._abi cimport tp_pool
ctypedef tp_pool *tp_pool_p


def run(Pool pool, int threads, double seconds=0, long count=0,
        bytes path=b"/keys/k1/sign", bytes auth=b"Authorization: Basic b3BlcmF0b3I6c2VjcmV0",
        bytes body=b'{"mode":"ECDSA","message":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}'):
    """-> (ok, errors, seconds). Timed mode (seconds) or fixed mode (count per thread)."""
    cdef worker *ws = <worker *>calloc(threads, sizeof(worker))
    cdef pthread_t *ts = <pthread_t *>calloc(threads, sizeof(pthread_t))
    cdef double t0, t1
    cdef int i
    for i in range(threads):
        ws[i].pool = pool.ptr
        ws[i].path = path
        ws[i].auth = auth
        ws[i].body = body
        ws[i].body_len = len(body)
        ws[i].count = count
    with nogil:
        t0 = tl_now()
        for i in range(threads):
            ws[i].until = t0 + seconds
            pthread_create(&ts[i], NULL, _run, &ws[i])
        for i in range(threads):
            pthread_join(ts[i], NULL)
        t1 = tl_now()
    ok = sum(ws[i].done for i in range(threads))
    errors = sum(ws[i].errors for i in range(threads))
    free(ws)
    free(ts)
    return ok, errors, t1 - t0
