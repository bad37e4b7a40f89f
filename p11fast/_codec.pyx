# cython: cdivision=True
# The hot path's codec (see _codec.pxd for each function's contract).
#
# Everything here runs without the GIL inside C_Sign and friends, so it holds no Python
# object, never raises, and reports failure through return values the ABI maps to CKR_*.
# Inputs come from the network or from a PKCS#11 host: every length is checked before a
# byte is read or written.

from libc.stdint cimport SIZE_MAX
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset, strlen

from p11fast._openssl cimport (EVP_Digest, EVP_DigestFinal_ex, EVP_DigestInit_ex,
                               EVP_DigestUpdate, EVP_MD, EVP_MD_CTX, EVP_MD_CTX_free,
                               EVP_MD_CTX_new)

# Constant tables as static const C data: they live in .rodata, need no set-up at import,
# and the tables indexed by hash are in H_* order (H_NONE first).
cdef extern from *:
    """
    static const char P11F_HEX_DIGITS[17] = "0123456789abcdef";
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

    /* RFC 8017 §9.2 note 1: DigestInfo ::= SEQUENCE { AlgorithmIdentifier (with NULL
       parameters), OCTET STRING digest } up to the digest itself. */
    static const unsigned char P11F_DI_MD5[] = {0x30, 0x20, 0x30, 0x0c, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05, 0x05, 0x00, 0x04, 0x10};
    static const unsigned char P11F_DI_SHA1[] = {0x30, 0x21, 0x30, 0x09, 0x06, 0x05,
        0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14};
    static const unsigned char P11F_DI_SHA224[] = {0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09,
        0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04, 0x05, 0x00, 0x04, 0x1c};
    static const unsigned char P11F_DI_SHA256[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09,
        0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
    static const unsigned char P11F_DI_SHA384[] = {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09,
        0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30};
    static const unsigned char P11F_DI_SHA512[] = {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09,
        0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40};

    static const unsigned char *const P11F_DI_PREFIX[7] = {NULL, P11F_DI_MD5,
        P11F_DI_SHA1, P11F_DI_SHA224, P11F_DI_SHA256, P11F_DI_SHA384, P11F_DI_SHA512};
    static const unsigned char P11F_DI_LEN[7] = {0, sizeof P11F_DI_MD5,
        sizeof P11F_DI_SHA1, sizeof P11F_DI_SHA224, sizeof P11F_DI_SHA256,
        sizeof P11F_DI_SHA384, sizeof P11F_DI_SHA512};
    static const unsigned char P11F_HASH_LEN[7] = {0, 16, 20, 28, 32, 48, 64};
    static const char *const P11F_HASH_NAME[7] = {NULL, "MD5", "SHA1", "SHA2-224",
        "SHA2-256", "SHA2-384", "SHA2-512"};
    """
    const char P11F_HEX_DIGITS[17]
    const char P11F_B64_ALPHABET[65]
    const unsigned char P11F_B64_VALUE[256]
    const unsigned char *const P11F_DI_PREFIX[7]
    const unsigned char P11F_DI_LEN[7]
    const unsigned char P11F_HASH_LEN[7]
    const char *const P11F_HASH_NAME[7]


# ---------------------------------------------------------------------------- base64

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


# ---------------------------------------------------------------------------- JSON

# Containers nested inside a member value beyond this depth make the document malformed:
# the validator's stack is fixed-size so that hostile input cannot exhaust anything.
cpdef enum:
    JSON_MAX_DEPTH = 256


cdef inline const char *_skip_ws(const char *p, const char *end) noexcept nogil:
    while p != end and (p[0] == c' ' or p[0] == c'\n' or p[0] == c'\r' or p[0] == c'\t'):
        p += 1
    return p


cdef inline int _hex_value(char ch) noexcept nogil:
    if c'0' <= ch <= c'9':
        return ch - c'0'
    if c'a' <= ch <= c'f':
        return ch - c'a' + 10
    if c'A' <= ch <= c'F':
        return ch - c'A' + 10
    return -1


cdef int _hex4(const char *p, const char *end) noexcept nogil:
    """The value of the four hex digits at p, or -1."""
    cdef int v = 0, i, d
    if end - p < 4:
        return -1
    for i in range(4):
        d = _hex_value(p[i])
        if d < 0:
            return -1
        v = (v << 4) | d
    return v


cdef const char *_scan_string(const char *p, const char *end, bint *escaped) noexcept nogil:
    """p is just past an opening quote. Returns the closing quote, or NULL if the string
    is unterminated or not valid JSON. *escaped tells whether it holds any escape."""
    cdef unsigned char ch
    escaped[0] = False
    while p != end:
        ch = <unsigned char>p[0]
        if ch == c'"':
            return p
        if ch < 0x20:
            return NULL
        if ch == c'\\':
            escaped[0] = True
            p += 1
            if p == end:
                return NULL
            if p[0] == c'u':
                if _hex4(p + 1, end) < 0:
                    return NULL
                p += 4
            elif p[0] not in b'"\\/bfnrt':
                return NULL
        p += 1
    return NULL


cdef const char *_skip_number(const char *p, const char *end) noexcept nogil:
    """RFC 8259 §6: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?; NULL if malformed."""
    cdef const char *digits
    if p != end and p[0] == c'-':
        p += 1
    if p == end or not (c'0' <= p[0] <= c'9'):
        return NULL
    if p[0] == c'0':
        p += 1
    else:
        while p != end and c'0' <= p[0] <= c'9':
            p += 1
    if p != end and p[0] == c'.':
        p += 1
        digits = p
        while p != end and c'0' <= p[0] <= c'9':
            p += 1
        if p == digits:
            return NULL
    if p != end and (p[0] == c'e' or p[0] == c'E'):
        p += 1
        if p != end and (p[0] == c'+' or p[0] == c'-'):
            p += 1
        digits = p
        while p != end and c'0' <= p[0] <= c'9':
            p += 1
        if p == digits:
            return NULL
    return p


cdef inline const char *_skip_literal(const char *p, const char *end, const char *word,
                                      size_t n) noexcept nogil:
    if <size_t>(end - p) < n or memcmp(p, word, n) != 0:
        return NULL
    return p + n


cdef const char *_member_name(const char *p, const char *end, const char **name,
                              size_t *name_len, bint *escaped) noexcept nogil:
    """Reads `ws "name" ws :` and returns the position after the colon, or NULL."""
    cdef const char *close
    p = _skip_ws(p, end)
    if p == end or p[0] != c'"':
        return NULL
    close = _scan_string(p + 1, end, escaped)
    if close == NULL:
        return NULL
    name[0] = p + 1
    name_len[0] = <size_t>(close - p - 1)
    p = _skip_ws(close + 1, end)
    if p == end or p[0] != c':':
        return NULL
    return p + 1


cdef inline char _closer(char opener) noexcept nogil:
    return c'}' if opener == c'{' else c']'


cdef const char *_skip_value(const char *p, const char *end) noexcept nogil:
    """Validates one JSON value starting at p (after optional whitespace) and returns the
    position just past it, or NULL. Iterative, with an explicit stack of open containers,
    so nesting costs no C stack."""
    cdef char stack[JSON_MAX_DEPTH]
    cdef int depth = 0
    cdef const char *name
    cdef size_t name_len
    cdef bint escaped
    cdef char ch
    while True:
        # A value is expected at p.
        p = _skip_ws(p, end)
        if p == end:
            return NULL
        ch = p[0]
        if ch == c'{' or ch == c'[':
            if depth == JSON_MAX_DEPTH:
                return NULL
            p = _skip_ws(p + 1, end)
            if p != end and p[0] == _closer(ch):
                p += 1
            else:
                stack[depth] = ch
                depth += 1
                if ch == c'{':
                    p = _member_name(p, end, &name, &name_len, &escaped)
                    if p == NULL:
                        return NULL
                continue
        elif ch == c'"':
            p = _scan_string(p + 1, end, &escaped)
            if p != NULL:
                p += 1
        elif ch == c'-' or c'0' <= ch <= c'9':
            p = _skip_number(p, end)
        elif ch == c't':
            p = _skip_literal(p, end, "true", 4)
        elif ch == c'f':
            p = _skip_literal(p, end, "false", 5)
        elif ch == c'n':
            p = _skip_literal(p, end, "null", 4)
        else:
            return NULL
        if p == NULL:
            return NULL
        # A value ended at p: close the containers it completes, then expect the next one.
        while depth:
            p = _skip_ws(p, end)
            if p == end:
                return NULL
            if p[0] == c',':
                p += 1
                if stack[depth - 1] == c'{':
                    p = _member_name(p, end, &name, &name_len, &escaped)
                    if p == NULL:
                        return NULL
                break
            if p[0] != _closer(stack[depth - 1]):
                return NULL
            depth -= 1
            p += 1
        if depth == 0:
            return p


cdef const char *_unescape_next(const char *p, const char *end, char *out,
                                size_t *out_len) noexcept nogil:
    """Decodes the character of JSON string content at p (p < end) into out (UTF-8, up to
    4 bytes). Returns the position after it, or NULL for a bad escape, an unpaired
    surrogate, or a byte that must have been escaped."""
    cdef unsigned char ch = <unsigned char>p[0]
    cdef long cp
    cdef int low
    if ch != c'\\':
        if ch < 0x20 or ch == c'"':
            return NULL
        out[0] = p[0]
        out_len[0] = 1
        return p + 1
    if end - p < 2:
        return NULL
    out_len[0] = 1
    ch = <unsigned char>p[1]
    if ch == c'"' or ch == c'\\' or ch == c'/':
        out[0] = <char>ch
    elif ch == c'b':
        out[0] = c'\b'
    elif ch == c'f':
        out[0] = c'\f'
    elif ch == c'n':
        out[0] = c'\n'
    elif ch == c'r':
        out[0] = c'\r'
    elif ch == c't':
        out[0] = c'\t'
    elif ch == c'u':
        cp = _hex4(p + 2, end)
        if cp < 0 or 0xDC00 <= cp <= 0xDFFF:
            return NULL
        p += 6
        if 0xD800 <= cp <= 0xDBFF:
            # A high surrogate means nothing without the low one right after it.
            if end - p < 6 or p[0] != c'\\' or p[1] != c'u':
                return NULL
            low = _hex4(p + 2, end)
            if not (0xDC00 <= low <= 0xDFFF):
                return NULL
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00)
            p += 6
        if cp < 0x80:
            out[0] = <char>cp
        elif cp < 0x800:
            out[0] = <char>(0xC0 | (cp >> 6))
            out[1] = <char>(0x80 | (cp & 0x3F))
            out_len[0] = 2
        elif cp < 0x10000:
            out[0] = <char>(0xE0 | (cp >> 12))
            out[1] = <char>(0x80 | ((cp >> 6) & 0x3F))
            out[2] = <char>(0x80 | (cp & 0x3F))
            out_len[0] = 3
        else:
            out[0] = <char>(0xF0 | (cp >> 18))
            out[1] = <char>(0x80 | ((cp >> 12) & 0x3F))
            out[2] = <char>(0x80 | ((cp >> 6) & 0x3F))
            out[3] = <char>(0x80 | (cp & 0x3F))
            out_len[0] = 4
        return p
    else:
        return NULL
    return p + 2


cdef bint _name_equals(const char *name, size_t name_len, bint escaped, const char *key,
                       size_t key_len) noexcept nogil:
    """Whether the raw member name equals key once its escapes are decoded."""
    cdef const char *end = name + name_len
    cdef char unit[4]
    cdef size_t m, i = 0
    if not escaped:
        return name_len == key_len and memcmp(name, key, key_len) == 0
    while name != end:
        name = _unescape_next(name, end, unit, &m)
        if name == NULL or m > key_len - i or memcmp(unit, key + i, m) != 0:
            return False
        i += m
    return i == key_len


def json_nesting_ok(bytes document):
    """Whether no array or object in `document` nests deeper than JSON_MAX_DEPTH (brackets
    inside strings do not count; nothing else is validated). Python's JSON scanner recurses
    once per level on the calling thread's stack, which a host may have made small: the cold
    path asks this before parsing what an HSM sent."""
    cdef const char *p = document
    cdef const char *end = p + len(document)
    cdef int depth = 0
    cdef bint in_string = False
    cdef char ch
    while p < end:
        ch = p[0]
        if in_string:
            if ch == c'\\':
                p += 1  # the escaped character, whatever it is
            elif ch == c'"':
                in_string = False
        elif ch == c'"':
            in_string = True
        elif ch == c'[' or ch == c'{':
            depth += 1
            if depth > JSON_MAX_DEPTH:
                return False
        elif ch == c']' or ch == c'}':
            depth -= 1
        p += 1
    return True


cdef int json_get_string(const char *json, size_t n, const char *key,
                         const char **value, size_t *value_len) noexcept nogil:
    cdef const char *end = json + n
    cdef const char *p
    cdef const char *name
    cdef const char *close
    cdef const char *found = NULL
    cdef size_t name_len, found_len = 0
    cdef size_t key_len = strlen(key)
    cdef bint escaped, match, seen = False
    p = _skip_ws(json, end)
    if p == end or p[0] != c'{':
        return -2
    p = _skip_ws(p + 1, end)
    if p != end and p[0] == c'}':
        p += 1
    else:
        while True:
            p = _member_name(p, end, &name, &name_len, &escaped)
            if p == NULL:
                return -2
            match = _name_equals(name, name_len, escaped, key, key_len)
            # A second copy of the key makes the document ambiguous (parsers disagree on
            # which one wins), so it is refused rather than resolved.
            if match and seen:
                return -2
            seen = seen or match
            p = _skip_ws(p, end)
            if p != end and p[0] == c'"':
                close = _scan_string(p + 1, end, &escaped)
                if close == NULL:
                    return -2
                if match:
                    found = p + 1
                    found_len = <size_t>(close - found)
                p = close + 1
            else:
                p = _skip_value(p, end)
                if p == NULL:
                    return -2
            p = _skip_ws(p, end)
            if p == end:
                return -2
            if p[0] == c'}':
                p += 1
                break
            if p[0] != c',':
                return -2
            p += 1
    # Validated to the end, so a truncated or concatenated response is never half-used.
    if _skip_ws(p, end) != end:
        return -2
    if found == NULL:
        return -1
    value[0] = found
    value_len[0] = found_len
    return 0


cdef Py_ssize_t json_escape(const char *src, size_t n, char *dst, size_t cap) noexcept nogil:
    cdef const char *end = src + n
    cdef size_t o = 0, need
    cdef unsigned char ch
    cdef char esc
    while src != end:
        ch = <unsigned char>src[0]
        src += 1
        esc = 0
        if ch == c'"' or ch == c'\\':
            esc = <char>ch
        elif ch == c'\b':
            esc = c'b'
        elif ch == c'\f':
            esc = c'f'
        elif ch == c'\n':
            esc = c'n'
        elif ch == c'\r':
            esc = c'r'
        elif ch == c'\t':
            esc = c't'
        need = 1 if ch >= 0x20 and not esc else (2 if esc else 6)
        if need > cap - o:
            return -1
        if need == 1:
            dst[o] = <char>ch
        elif need == 2:
            dst[o] = c'\\'
            dst[o + 1] = esc
        else:
            dst[o] = c'\\'
            dst[o + 1] = c'u'
            dst[o + 2] = c'0'
            dst[o + 3] = c'0'
            dst[o + 4] = P11F_HEX_DIGITS[ch >> 4]
            dst[o + 5] = P11F_HEX_DIGITS[ch & 15]
        o += need
    return <Py_ssize_t>o


cdef Py_ssize_t json_unescape(const char *src, size_t n, char *dst, size_t cap) noexcept nogil:
    cdef const char *end = src + n
    cdef char unit[4]
    cdef size_t m, o = 0
    while src != end:
        src = _unescape_next(src, end, unit, &m)
        if src == NULL:
            return -1
        if m > cap - o:
            return -2
        memcpy(dst + o, unit, m)
        o += m
    return <Py_ssize_t>o


# ---------------------------------------------------------------------------- ECDSA DER

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


# ---------------------------------------------------------------------------- hashing

# Fetched together on the first use of any hash, and never freed: the module is never
# unloaded. Not at import: a run that hashes nothing (listing tokens, raw ECDSA) then never
# initialises OpenSSL here, which in a wheel with static dependencies is a copy of its own.
# NULL where the loaded providers lack the algorithm (MD5 under FIPS), which turns that hash
# into a clean failure.
cdef extern from *:
    """
    #include <pthread.h>
    static EVP_MD *p11f_md[7];
    static pthread_once_t p11f_md_once = PTHREAD_ONCE_INIT;

    static void p11f_md_fetch_all(void)
    {
        for (int h = 1; h < 7; h++)
            p11f_md[h] = EVP_MD_fetch(NULL, P11F_HASH_NAME[h], NULL);
    }

    static const EVP_MD *p11f_md_get(int h)
    {
        pthread_once(&p11f_md_once, p11f_md_fetch_all);
        return p11f_md[h];
    }
    """
    const EVP_MD *p11f_md_get(int h) nogil


cdef inline const EVP_MD *_md(int h) noexcept nogil:
    if h < H_MD5 or h > H_SHA512:
        return NULL
    return p11f_md_get(h)


cdef const void *hash_md(int h) noexcept nogil:
    return _md(h)


cdef size_t hash_len(int h) noexcept nogil:
    if h < H_MD5 or h > H_SHA512:
        return 0
    return P11F_HASH_LEN[h]


cdef const unsigned char *digestinfo_prefix(int h, size_t *prefix_len) noexcept nogil:
    if h < H_MD5 or h > H_SHA512:
        prefix_len[0] = 0
        return NULL
    prefix_len[0] = P11F_DI_LEN[h]
    return P11F_DI_PREFIX[h]


cdef int hash_oneshot(int h, const unsigned char *data, size_t n, unsigned char *out) noexcept nogil:
    cdef const EVP_MD *md = _md(h)
    if md == NULL or EVP_Digest(data, n, out, NULL, md, NULL) != 1:
        return -1
    return 0


cdef int hash_init(hash_ctx *c, int h) noexcept nogil:
    cdef const EVP_MD *md = _md(h)
    cdef EVP_MD_CTX *ctx
    c.md_ctx = NULL
    c.h = h
    if md == NULL:
        return -1
    ctx = EVP_MD_CTX_new()
    if ctx == NULL:
        return -1
    if EVP_DigestInit_ex(ctx, md, NULL) != 1:
        EVP_MD_CTX_free(ctx)
        return -1
    c.md_ctx = ctx
    return 0


cdef int hash_update(hash_ctx *c, const unsigned char *data, size_t n) noexcept nogil:
    if c.md_ctx == NULL or EVP_DigestUpdate(<EVP_MD_CTX *>c.md_ctx, data, n) != 1:
        return -1
    return 0


cdef int hash_final(hash_ctx *c, unsigned char *out) noexcept nogil:
    cdef int ok
    if c.md_ctx == NULL:
        return -1
    ok = EVP_DigestFinal_ex(<EVP_MD_CTX *>c.md_ctx, out, NULL)
    hash_free(c)
    return 0 if ok == 1 else -1


cdef void hash_free(hash_ctx *c) noexcept nogil:
    EVP_MD_CTX_free(<EVP_MD_CTX *>c.md_ctx)
    c.md_ctx = NULL


# ---------------------------------------------------------------------------- wbuf

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
