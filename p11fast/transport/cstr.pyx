# cstr: bounded and duplicating C-string copies (contract in cstr.pxd).

from libc.stdlib cimport malloc
from libc.string cimport memcpy, strlen


cdef void _copy_str(char *dst, size_t size, const char *src) noexcept nogil:
    cdef size_t n = strlen(src) if src != NULL else 0
    if n >= size:
        n = size - 1
    memcpy(dst, src, n)
    dst[n] = 0


cdef char *_dup(const unsigned char *p, size_t n) noexcept nogil:
    cdef char *d = <char *>malloc(n + 1)
    if d != NULL:
        memcpy(d, p, n)
        d[n] = 0
    return d
