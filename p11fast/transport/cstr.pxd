# cstr: the two C-string helpers the pieces share — a copy cut to a buffer (error texts,
# details, header lines) and a malloc'd, NUL-terminated copy of bytes (URLs, paths).
#
# Contract: _copy_str always terminates dst (size >= 1) and takes NULL for "". _dup returns
# NULL when out of memory; the caller frees. Both are nogil and lock-free.
# uses:

cdef void _copy_str(char *dst, size_t size, const char *src) noexcept nogil
cdef char *_dup(const unsigned char *p, size_t n) noexcept nogil
