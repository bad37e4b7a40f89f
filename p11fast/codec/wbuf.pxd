# wbuf: the write buffer request bodies are built in — inline storage first, the heap when it
# is full.
#
# Contract: nogil, no Python object. `data` points into the struct while inline, so a wbuf
# must not be copied or moved after wbuf_init. The appenders return 0, or -1 when out of
# memory (the buffer is then unchanged). The field is `inline_` because `inline` is a Cython
# keyword.
# uses: base64

cdef struct wbuf:
    char *data      # inline_ or a malloc'd block
    size_t len
    size_t cap
    char inline_[512]

cdef void wbuf_init(wbuf *b) noexcept nogil
cdef int wbuf_put(wbuf *b, const char *s, size_t n) noexcept nogil
cdef int wbuf_puts(wbuf *b, const char *s) noexcept nogil
# Appends the padded base64 encoding of s.
cdef int wbuf_put_b64(wbuf *b, const unsigned char *s, size_t n) noexcept nogil
# Frees heap storage and leaves b empty and initialised; safe to call repeatedly.
cdef void wbuf_free(wbuf *b) noexcept nogil
