# base64 (contract in base64.pxd).

# The tables as static const C data: they live in .rodata and need no set-up at import.
cdef extern from *:
    """
    static const char P11F_B64_ALPHABET[65] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    /* Sextet value of each byte; 0xFF for bytes outside the alphabet. */
    static const unsigned char P11F_B64_VALUE[256] = {
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,  62, 255, 255, 255,  63,
         52,  53,  54,  55,  56,  57,  58,  59,  60,  61, 255, 255, 255, 255, 255, 255,
        255,   0,   1,   2,   3,   4,   5,   6,   7,   8,   9,  10,  11,  12,  13,  14,
         15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25, 255, 255, 255, 255, 255,
        255,  26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,
         41,  42,  43,  44,  45,  46,  47,  48,  49,  50,  51, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    };
    """
    const char P11F_B64_ALPHABET[65]
    const unsigned char P11F_B64_VALUE[256]


cdef size_t b64_encoded_len(size_t n) noexcept nogil:
    return (n + 2) // 3 * 4


cdef size_t b64_encode(const unsigned char *src, size_t n, char *dst) noexcept nogil:
    cdef char *o = dst
    cdef const unsigned char *end = src + n
    cdef unsigned int v
    while end - src >= 3:
        v = (<unsigned int>src[0] << 16) | (<unsigned int>src[1] << 8) | src[2]
        o[0] = P11F_B64_ALPHABET[v >> 18]
        o[1] = P11F_B64_ALPHABET[(v >> 12) & 63]
        o[2] = P11F_B64_ALPHABET[(v >> 6) & 63]
        o[3] = P11F_B64_ALPHABET[v & 63]
        src += 3
        o += 4
    if src != end:
        v = <unsigned int>src[0] << 16
        if end - src == 2:
            v |= <unsigned int>src[1] << 8
        o[0] = P11F_B64_ALPHABET[v >> 18]
        o[1] = P11F_B64_ALPHABET[(v >> 12) & 63]
        o[2] = P11F_B64_ALPHABET[(v >> 6) & 63] if end - src == 2 else c'='
        o[3] = c'='
        o += 4
    return <size_t>(o - dst)


cdef Py_ssize_t b64_decode(const char *src, size_t n, unsigned char *dst, size_t cap) noexcept nogil:
    cdef size_t pad = 0
    cdef size_t rem, out_len
    cdef unsigned int a, b, c, d
    cdef const char *end
    # Padding may only complete the last group of four; strip it and decode as unpadded.
    if n and src[n - 1] == c'=':
        if n % 4:
            return -1
        pad = 2 if src[n - 2] == c'=' else 1
        n -= pad
    rem = n % 4
    # One character carries 6 bits, less than a byte: no encoder ends a group that way.
    if rem == 1:
        return -1
    out_len = n // 4 * 3 + (rem - 1 if rem else 0)
    if out_len > cap:
        return -2
    end = src + (n - rem)
    while src != end:
        a = P11F_B64_VALUE[<unsigned char>src[0]]
        b = P11F_B64_VALUE[<unsigned char>src[1]]
        c = P11F_B64_VALUE[<unsigned char>src[2]]
        d = P11F_B64_VALUE[<unsigned char>src[3]]
        # Invalid characters map to 0xFF, the only values with bit 7 set.
        if (a | b | c | d) & 0x80:
            return -1
        a = (a << 18) | (b << 12) | (c << 6) | d
        dst[0] = <unsigned char>(a >> 16)
        dst[1] = <unsigned char>(a >> 8)
        dst[2] = <unsigned char>a
        src += 4
        dst += 3
    if rem:
        a = P11F_B64_VALUE[<unsigned char>src[0]]
        b = P11F_B64_VALUE[<unsigned char>src[1]]
        c = P11F_B64_VALUE[<unsigned char>src[2]] if rem == 3 else 0
        if (a | b | c) & 0x80:
            return -1
        # The bits past the last whole byte must be zero: otherwise two different strings
        # would decode to the same bytes (RFC 4648 §3.5).
        if (c & 0x03) if rem == 3 else (b & 0x0F):
            return -1
        a = (a << 18) | (b << 12) | (c << 6)
        dst[0] = <unsigned char>(a >> 16)
        if rem == 3:
            dst[1] = <unsigned char>(a >> 8)
    return <Py_ssize_t>out_len
