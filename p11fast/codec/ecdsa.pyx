# ecdsa: DER <-> raw ECDSA signatures (contract in ecdsa.pxd).

from libc.stdint cimport SIZE_MAX
from libc.string cimport memcpy, memset


cdef const unsigned char *_der_header(const unsigned char *p, const unsigned char *end,
                                      unsigned char tag, size_t *length) noexcept nogil:
    """Reads tag and a minimally encoded DER length at p. Returns the start of the
    contents, which are known to fit before end, or NULL."""
    cdef size_t n, k
    if end - p < 2 or p[0] != tag:
        return NULL
    n = p[1]
    p += 2
    if n & 0x80:
        k = n & 0x7F
        # 0x80 is BER's indefinite length; more than 4 length bytes cannot fit anything.
        if k == 0 or k > 4 or <size_t>(end - p) < k or p[0] == 0:
            return NULL
        n = 0
        while k:
            n = (n << 8) | p[0]
            p += 1
            k -= 1
        if n < 0x80:
            return NULL
    if n > <size_t>(end - p):
        return NULL
    length[0] = n
    return p


cdef const unsigned char *_der_uint(const unsigned char *p, const unsigned char *end,
                                    size_t field_len, unsigned char *out) noexcept nogil:
    """Reads a non-negative DER INTEGER into out, left-padded to field_len bytes.
    Returns the position after it, or NULL."""
    cdef size_t n
    p = _der_header(p, end, 0x02, &n)
    if p == NULL or n == 0 or p[0] & 0x80:
        return NULL
    if p[0] == 0 and n > 1:
        # DER allows a leading zero only to keep a set top bit from reading as negative.
        if not p[1] & 0x80:
            return NULL
        p += 1
        n -= 1
    if n > field_len:
        return NULL
    memset(out, 0, field_len - n)
    memcpy(out + field_len - n, p, n)
    return p + n


cdef Py_ssize_t ecdsa_der_to_raw(const unsigned char *der, size_t n, size_t field_len,
                                 unsigned char *out) noexcept nogil:
    cdef const unsigned char *end = der + n
    cdef const unsigned char *p
    cdef size_t body
    if field_len == 0 or field_len > <size_t>(SIZE_MAX // 4):
        return -1
    p = _der_header(der, end, 0x30, &body)
    if p == NULL or p + body != end:
        return -1
    p = _der_uint(p, end, field_len, out)
    if p == NULL:
        return -1
    p = _der_uint(p, end, field_len, out + field_len)
    if p != end:
        return -1
    return <Py_ssize_t>(2 * field_len)


cdef inline size_t _der_len_size(size_t n) noexcept nogil:
    """Bytes the DER encoding of length n takes."""
    cdef size_t k = 1
    if n < 0x80:
        return 1
    while n:
        n >>= 8
        k += 1
    return k


cdef unsigned char *_der_put_header(unsigned char *o, unsigned char tag, size_t n) noexcept nogil:
    cdef size_t k = _der_len_size(n) - 1
    o[0] = tag
    if k == 0:
        o[1] = <unsigned char>n
        return o + 2
    o[1] = <unsigned char>(0x80 | k)
    o += 2
    while k:
        k -= 1
        o[0] = <unsigned char>(n >> (8 * k))
        o += 1
    return o


cdef unsigned char *_der_put_uint(unsigned char *o, const unsigned char *v, size_t n,
                                  bint pad) noexcept nogil:
    o = _der_put_header(o, 0x02, n + pad)
    if pad:
        o[0] = 0
        o += 1
    memcpy(o, v, n)
    return o + n


cdef Py_ssize_t ecdsa_raw_to_der(const unsigned char *raw, size_t n,
                                 unsigned char *out, size_t cap) noexcept nogil:
    cdef const unsigned char *r = raw
    cdef const unsigned char *s
    cdef size_t rn, sn, body, total
    cdef bint rpad, spad
    # The size limit keeps the length arithmetic below from overflowing.
    if n == 0 or n % 2 or n > <size_t>(SIZE_MAX // 4):
        return -1
    rn = sn = n // 2
    s = raw + rn
    # Minimal INTEGERs: drop leading zero bytes (keeping one for zero), then add one back
    # where the top bit is set so the value stays positive.
    while rn > 1 and r[0] == 0:
        r += 1
        rn -= 1
    while sn > 1 and s[0] == 0:
        s += 1
        sn -= 1
    rpad = r[0] >= 0x80
    spad = s[0] >= 0x80
    body = (1 + _der_len_size(rn + rpad) + rn + rpad) + (1 + _der_len_size(sn + spad) + sn + spad)
    total = 1 + _der_len_size(body) + body
    if total > cap:
        return -2
    out = _der_put_header(out, 0x30, body)
    out = _der_put_uint(out, r, rn, rpad)
    _der_put_uint(out, s, sn, spad)
    return <Py_ssize_t>total
