# json: string members of JSON documents (contract in json.pxd).

from libc.string cimport memcmp, memcpy, strlen

cdef extern from *:
    """
    static const char P11F_HEX_DIGITS[17] = "0123456789abcdef";
    """
    const char P11F_HEX_DIGITS[17]


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


cdef int _find_member(const char *json, size_t n, const char *key, const char **value,
                      size_t *value_len, bint *is_string) noexcept nogil:
    """json_get_string's walk for a member of any type: *value is its text as the document
    has it, a string's without the quotes (*is_string)."""
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
                    is_string[0] = True
                p = close + 1
            else:
                close = _skip_value(p, end)
                if close == NULL:
                    return -2
                if match:
                    found = p
                    found_len = <size_t>(close - p)
                    is_string[0] = False
                p = close
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


cdef int json_get_string(const char *json, size_t n, const char *key,
                         const char **value, size_t *value_len) noexcept nogil:
    cdef bint is_string = False
    cdef int rc = _find_member(json, n, key, value, value_len, &is_string)
    if rc == 0 and not is_string:
        return -1
    return rc


cdef int json_get_number(const char *json, size_t n, const char *key,
                         const char **value, size_t *value_len) noexcept nogil:
    cdef bint is_string = False
    cdef int rc = _find_member(json, n, key, value, value_len, &is_string)
    if rc == 0 and (is_string or not (value[0][0] == c'-' or c'0' <= value[0][0] <= c'9')):
        return -1
    return rc


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
