# wbuf: request bodies (contract in wbuf.pxd).

from libc.stdint cimport SIZE_MAX
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, strlen


cdef void wbuf_init(wbuf *b) noexcept nogil:
    b.data = b.inline_
    b.len = 0
    b.cap = sizeof(b.inline_)


cdef int _wbuf_reserve(wbuf *b, size_t extra) noexcept nogil:
    """Makes room for extra more bytes; 0 ok, -1 out of memory (b unchanged)."""
    cdef size_t need, cap
    cdef char *data
    if extra <= b.cap - b.len:
        return 0
    if extra > SIZE_MAX - b.len:
        return -1
    need = b.len + extra
    # Doubling keeps appends amortised O(1) for bodies built piece by piece.
    cap = b.cap * 2 if b.cap <= SIZE_MAX // 2 else need
    if cap < need:
        cap = need
    if b.data == b.inline_:
        data = <char *>malloc(cap)
        if data == NULL:
            return -1
        memcpy(data, b.data, b.len)
    else:
        data = <char *>realloc(b.data, cap)
        if data == NULL:
            return -1
    b.data = data
    b.cap = cap
    return 0


cdef int wbuf_put(wbuf *b, const char *s, size_t n) noexcept nogil:
    # memcpy's arguments must be valid pointers even for n == 0, and callers pass NULL.
    if n == 0:
        return 0
    if _wbuf_reserve(b, n) != 0:
        return -1
    memcpy(b.data + b.len, s, n)
    b.len += n
    return 0


cdef int wbuf_puts(wbuf *b, const char *s) noexcept nogil:
    return wbuf_put(b, s, strlen(s))


cdef int wbuf_put_b64(wbuf *b, const unsigned char *s, size_t n) noexcept nogil:
    # Beyond this, b64_encoded_len(n) overflows.
    if n > SIZE_MAX // 4 * 3:
        return -1
    if _wbuf_reserve(b, b64_encoded_len(n)) != 0:
        return -1
    b.len += b64_encode(s, n, b.data + b.len)
    return 0


cdef void wbuf_free(wbuf *b) noexcept nogil:
    if b.data != b.inline_:
        free(b.data)
    wbuf_init(b)
