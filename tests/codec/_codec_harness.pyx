# Test-only wrappers around the codec's functions in p11fast._abi. Compiled by build_codec.py,
# never shipped.
#
# It reaches the codec with `cimport`, through the extension's C-API export, so the functions
# are the very ones the ABI calls. Output buffers are allocated to the exact capacity passed
# in, followed by a guard zone that is checked after each call: a write past `cap` fails the
# test.

from libc.stdlib cimport free, malloc
from libc.string cimport memset

from p11fast cimport _abi as C

H = {
    "none": C.H_NONE, "md5": C.H_MD5, "sha1": C.H_SHA1, "sha224": C.H_SHA224,
    "sha256": C.H_SHA256, "sha384": C.H_SHA384, "sha512": C.H_SHA512,
}
HASH_MAX_LEN = C.HASH_MAX_LEN
WBUF_INLINE = sizeof((<C.wbuf *>NULL).inline_)

cdef enum:
    GUARD = 64


cdef unsigned char *_alloc(size_t cap) except NULL:
    cdef unsigned char *p = <unsigned char *>malloc(cap + GUARD)
    if p == NULL:
        raise MemoryError
    memset(p, 0xA5, cap + GUARD)
    return p


cdef bytes _take(unsigned char *p, size_t cap, Py_ssize_t rc):
    """Frees p after checking its guard zone; returns p[:rc] (or None when rc < 0)."""
    cdef size_t i
    try:
        for i in range(cap, cap + GUARD):
            if p[i] != 0xA5:
                raise AssertionError(f"write past cap at offset {i} (cap {cap})")
        return (<char *>p)[:rc] if rc >= 0 else None
    finally:
        free(p)


def b64_encoded_len(size_t n):
    return C.b64_encoded_len(n)


def b64_encode(bytes data):
    cdef size_t n = len(data)
    cdef size_t cap = C.b64_encoded_len(n)
    cdef unsigned char *out = _alloc(cap)
    cdef size_t rc = C.b64_encode(<const unsigned char *><const char *>data, n, <char *>out)
    return _take(out, cap, rc)


def b64_decode(bytes src, cap=None):
    """Returns the decoded bytes, or the negative error code."""
    cdef size_t n = len(src)
    cdef size_t c = n if cap is None else cap
    cdef unsigned char *out = _alloc(c)
    cdef Py_ssize_t rc = C.b64_decode(src, n, out, c)
    data = _take(out, c, rc)
    return data if rc >= 0 else rc


def json_get_string(bytes doc, bytes key):
    """Returns (rc, value, offset of value in doc); value and offset are None unless rc == 0."""
    cdef const char *base = doc
    cdef const char *value = NULL
    cdef size_t value_len = 0
    cdef int rc = C.json_get_string(base, len(doc), key, &value, &value_len)
    if rc != 0:
        return rc, None, None
    return rc, value[:value_len], value - base


def json_get_number(bytes doc, bytes key):
    """As json_get_string, for a number member."""
    cdef const char *base = doc
    cdef const char *value = NULL
    cdef size_t value_len = 0
    cdef int rc = C.json_get_number(base, len(doc), key, &value, &value_len)
    if rc != 0:
        return rc, None, None
    return rc, value[:value_len], value - base


def json_escape(bytes src, size_t cap):
    cdef unsigned char *out = _alloc(cap)
    cdef Py_ssize_t rc = C.json_escape(src, len(src), <char *>out, cap)
    data = _take(out, cap, rc)
    return data if rc >= 0 else rc


def json_unescape(bytes src, size_t cap):
    cdef unsigned char *out = _alloc(cap)
    cdef Py_ssize_t rc = C.json_unescape(src, len(src), <char *>out, cap)
    data = _take(out, cap, rc)
    return data if rc >= 0 else rc


def ecdsa_der_to_raw(bytes der, size_t field_len):
    cdef size_t cap = 2 * field_len
    cdef unsigned char *out = _alloc(cap)
    cdef Py_ssize_t rc = C.ecdsa_der_to_raw(<const unsigned char *><const char *>der,
                                            len(der), field_len, out)
    data = _take(out, cap, rc)
    return data if rc >= 0 else rc


def ecdsa_raw_to_der(bytes raw, size_t cap):
    cdef unsigned char *out = _alloc(cap)
    cdef Py_ssize_t rc = C.ecdsa_raw_to_der(<const unsigned char *><const char *>raw,
                                            len(raw), out, cap)
    data = _take(out, cap, rc)
    return data if rc >= 0 else rc


def hash_len(int h):
    return C.hash_len(h)


def digestinfo_prefix(int h):
    cdef size_t n = 12345
    cdef const unsigned char *p = C.digestinfo_prefix(h, &n)
    if p == NULL:
        assert n == 0
        return None
    return (<const char *>p)[:n]


def hash_oneshot(int h, bytes data):
    cdef unsigned char out[C.HASH_MAX_LEN]
    cdef int rc = C.hash_oneshot(h, <const unsigned char *><const char *>data, len(data), out)
    return (<char *>out)[:C.hash_len(h)] if rc == 0 else rc


def hash_multi(int h, chunks):
    """init, one update per chunk, final. Returns the digest or the first failing rc."""
    cdef unsigned char out[C.HASH_MAX_LEN]
    cdef C.hash_ctx ctx
    cdef int rc = C.hash_init(&ctx, h)
    if rc != 0:
        assert ctx.md_ctx == NULL
        return rc
    for chunk in chunks:
        rc = C.hash_update(&ctx, <const unsigned char *><const char *>chunk, len(chunk))
        if rc != 0:
            C.hash_free(&ctx)
            return rc
    rc = C.hash_final(&ctx, out)
    assert ctx.md_ctx == NULL
    return (<char *>out)[:C.hash_len(h)] if rc == 0 else rc


def hash_lifecycle(int h):
    """Abandoned and finished contexts: returns the rc of each step that must fail."""
    cdef unsigned char out[C.HASH_MAX_LEN]
    cdef C.hash_ctx ctx
    memset(&ctx, 0, sizeof(ctx))
    C.hash_free(&ctx)                       # zeroed context
    assert C.hash_init(&ctx, h) == 0
    assert C.hash_update(&ctx, <const unsigned char *>b"abc", 3) == 0
    C.hash_free(&ctx)                       # abandoned mid-operation
    C.hash_free(&ctx)                       # twice
    after_free = C.hash_update(&ctx, <const unsigned char *>b"abc", 3), C.hash_final(&ctx, out)
    assert C.hash_init(&ctx, h) == 0
    assert C.hash_final(&ctx, out) == 0
    after_final = C.hash_update(&ctx, <const unsigned char *>b"abc", 3), C.hash_final(&ctx, out)
    C.hash_free(&ctx)
    return after_free, after_final


def wbuf_build(pieces):
    """Appends each ("raw" | "str" | "b64", bytes) piece; returns (contents, on_heap, cap)
    and frees the buffer (twice, which must be harmless)."""
    cdef C.wbuf b
    C.wbuf_init(&b)
    try:
        for kind, data in pieces:
            if kind == "raw":
                rc = C.wbuf_put(&b, data, len(data))
            elif kind == "str":
                rc = C.wbuf_puts(&b, data)
            elif kind == "b64":
                rc = C.wbuf_put_b64(&b, <const unsigned char *><const char *>data, len(data))
            else:
                raise ValueError(kind)
            assert rc == 0
        assert b.len <= b.cap
        return b.data[:b.len], b.data != b.inline_, b.cap
    finally:
        C.wbuf_free(&b)
        assert b.data == b.inline_ and b.len == 0
        C.wbuf_free(&b)


def wbuf_put_null_empty():
    """A zero-length put with a NULL pointer is a no-op."""
    cdef C.wbuf b
    C.wbuf_init(&b)
    rc = C.wbuf_put(&b, NULL, 0)
    n = b.len
    C.wbuf_free(&b)
    return rc, n
