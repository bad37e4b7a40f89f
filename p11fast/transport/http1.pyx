# http1: framed HTTP/1.1 exchanges (contract in http1.pxd).
#
# Why frame at all: a full libcurl transfer spends most of its time on per-request work (header
# formatting, allocation, URL and proxy handling): ~31k/s against ~50k/s for this at 8 threads
# (docs/design.md, Performance).

from libc.errno cimport EINTR, errno
from libc.stdlib cimport malloc, realloc
from libc.string cimport memchr, memcmp, memcpy, strlen
from posix.strings cimport strncasecmp

from p11fast._decl.curl cimport *
from p11fast._decl.posix cimport POLLIN, POLLOUT, poll, pollfd

cdef enum:
    FR_STALE = -2                # the connection failed before any response byte
    FR_REQ = 4096                # framed request head (and a body that fits) built on the stack

cdef struct fr_head:          # what the framing needs from a response head
    long status
    long long content_length  # -1: none
    bint chunked              # any Transfer-Encoding
    bint close                # Connection: close, or HTTP/1.0 without keep-alive
    const char *ctype         # Content-Type value inside the receive buffer (not terminated)
    size_t ctype_len


# ---------------------------------------------------------------- the connection

cdef void _fr_close(tp_conn *c) noexcept nogil:
    # libcurl has no call that closes one handle's connection: the handle goes with it (this
    # also sends TLS close_notify), and _fr_connect makes a new one. Rare: failures, server
    # closes, idle age.
    if c.easy != NULL:
        curl_easy_cleanup(c.easy)  # _close_socket forgets the fd
        c.easy = NULL
    c.sock = -1


cdef CURLcode _fr_connect(tp_conn *c) noexcept nogil:
    cdef curl_socket_t sock = CURL_SOCKET_BAD
    cdef CURLcode rc
    if c.sock >= 0:
        return CURLE_OK
    if c.setup_rc != CURLE_OK:
        # The caller waited for the background set-up of this handle, which failed (its error
        # is still in errbuf): trying again at once would double the time to the error against
        # an HSM that never answers.
        rc = <CURLcode>c.setup_rc
        c.setup_rc = CURLE_OK
        return rc
    if c.easy == NULL:
        c.easy = curl_easy_init()
        if c.easy == NULL \
                or _configure(c, c.inst.pool.timeout_ms, c.inst.pool.connect_timeout_ms) \
                or _fr_setup(c):
            return CURLE_OUT_OF_MEMORY
    c.errbuf[0] = 0
    c.pin_mismatch = 0
    rc = curl_easy_perform(c.easy)
    if rc != CURLE_OK:
        return rc
    if curl_easy_getinfo(c.easy, CURLINFO_ACTIVESOCKET, &sock) != CURLE_OK or sock == CURL_SOCKET_BAD:
        _fr_close(c)
        return CURLE_COULDNT_CONNECT
    c.sock = sock
    return CURLE_OK


cdef CURLcode _fr_wait(tp_conn *c, short events, long long deadline) noexcept nogil:
    """Waits until the socket is ready or the request's deadline (0 = none) passes."""
    cdef pollfd p
    cdef long long left = -1
    cdef int r
    p.fd = c.sock
    p.events = events
    p.revents = 0
    if deadline:
        left = deadline - tp_now_ms()
        if left <= 0:
            _copy_str(c.errbuf, sizeof(c.errbuf), b"timed out waiting for the HSM's response")
            return CURLE_OPERATION_TIMEDOUT
    r = poll(&p, 1, <int>left)
    if r == 0:
        _copy_str(c.errbuf, sizeof(c.errbuf), b"timed out waiting for the HSM's response")
        return CURLE_OPERATION_TIMEDOUT
    if r < 0 and errno != EINTR:
        return CURLE_RECV_ERROR
    return CURLE_OK


cdef CURLcode _fr_send(tp_conn *c, const char *p, size_t n, long long deadline) noexcept nogil:
    cdef size_t sent
    cdef CURLcode rc
    while n:
        sent = 0
        rc = curl_easy_send(c.easy, p, n, &sent)
        if rc == CURLE_AGAIN:
            rc = _fr_wait(c, POLLOUT, deadline)
            if rc != CURLE_OK:
                return rc
            continue
        if rc != CURLE_OK:
            return rc
        p += sent
        n -= sent
    return CURLE_OK


cdef CURLcode _fr_recv(tp_conn *c, char *p, size_t cap, size_t *n, long long deadline) noexcept nogil:
    """At least one byte into p, or n = 0 at the end of the stream."""
    cdef CURLcode rc
    while True:
        n[0] = 0
        rc = curl_easy_recv(c.easy, p, cap, n)
        if rc != CURLE_AGAIN:
            return rc
        rc = _fr_wait(c, POLLIN, deadline)
        if rc != CURLE_OK:
            return rc


# ---------------------------------------------------------------- the response head

cdef bint _is_name(const char *p, size_t n, const char *name, size_t name_len) noexcept nogil:
    return n == name_len and strncasecmp(p, name, n) == 0


cdef bint _has_token(const char *p, size_t n, const char *token, size_t token_len) noexcept nogil:
    # Connection is a comma-separated token list: "close", "keep-alive", "Upgrade, close".
    cdef size_t i = 0
    cdef size_t j
    while i < n:
        while i < n and (p[i] == b' ' or p[i] == b'\t' or p[i] == b','):
            i += 1
        j = i
        while j < n and p[j] != b',' and p[j] != b' ' and p[j] != b'\t':
            j += 1
        if _is_name(p + i, j - i, token, token_len):
            return True
        i = j
    return False


cdef int _fr_parse_head(const char *p, size_t n, fr_head *h) noexcept nogil:
    """Parses "HTTP/1.x SSS ...\\r\\n(name: value\\r\\n)*" (n excludes the final CRLF CRLF... up to
    and including the last header's CRLF). 0 = usable, -1 = malformed (the caller falls back)."""
    cdef size_t i
    cdef size_t eol
    cdef size_t colon
    cdef size_t v
    cdef size_t e
    cdef long long cl
    cdef bint http10
    cdef bint keep_alive = False
    h.content_length = -1
    h.chunked = False
    h.close = False
    h.ctype = NULL
    h.ctype_len = 0
    if n < 12 or memcmp(p, b"HTTP/1.", 7) != 0 or (p[7] != b'0' and p[7] != b'1') or p[8] != b' ':
        return -1
    http10 = p[7] == b'0'
    h.status = 0
    for i in range(9, 12):
        if p[i] < b'0' or p[i] > b'9':
            return -1
        h.status = h.status * 10 + (p[i] - <char>b'0')
    i = 0
    while i < n and p[i] != b'\n':
        i += 1
    i += 1
    while i < n:
        eol = i
        while eol < n and p[eol] != b'\n':
            eol += 1
        e = eol
        if e > i and p[e - 1] == b'\r':
            e -= 1
        colon = i
        while colon < e and p[colon] != b':':
            colon += 1
        if colon == e or colon == i:
            return -1  # folded or nameless lines: leave them to libcurl
        v = colon + 1
        while v < e and (p[v] == b' ' or p[v] == b'\t'):
            v += 1
        while e > v and (p[e - 1] == b' ' or p[e - 1] == b'\t'):
            e -= 1
        if _is_name(p + i, colon - i, b"content-length", 14):
            if v == e or e - v > 15:
                return -1
            cl = 0
            while v < e:
                if p[v] < b'0' or p[v] > b'9':
                    return -1
                cl = cl * 10 + (p[v] - <char>b'0')
                v += 1
            if h.content_length >= 0 and h.content_length != cl:
                return -1
            h.content_length = cl
        elif _is_name(p + i, colon - i, b"transfer-encoding", 17):
            h.chunked = True
        elif _is_name(p + i, colon - i, b"connection", 10):
            if _has_token(p + v, e - v, b"close", 5):
                h.close = True
            if _has_token(p + v, e - v, b"keep-alive", 10):
                keep_alive = True
        elif _is_name(p + i, colon - i, b"content-type", 12):
            h.ctype = p + v
            h.ctype_len = e - v
        i = eol + 1
    if http10 and not keep_alive:
        h.close = True
    return 0


cdef size_t _fr_head_end(const char *p, size_t from_, size_t n) noexcept nogil:
    """Offset just past the CRLF CRLF ending the head, searched from `from_`; 0 if not there."""
    cdef size_t i = from_
    while i + 3 < n:
        if p[i + 3] == b'\n' and p[i + 2] == b'\r' and p[i + 1] == b'\n' and p[i] == b'\r':
            return i + 4
        i += 1
    return 0


# ---------------------------------------------------------------- exchanges

cdef int _fr_exchange(tp_conn *c, const char *head, size_t head_len, const char *body,
                      size_t body_len, long long deadline, tp_buf *out, long *status,
                      char *ctype, size_t ctype_size) noexcept nogil:
    """One request and response on a connected framed handle. CURLE_OK, a CURLcode error (the
    connection is then closed), FR_STALE (nothing came back: closed) or FR_FALLBACK (closed)."""
    cdef CURLcode rc
    cdef size_t have = 0
    cdef size_t n = 0
    cdef size_t end = 0
    cdef size_t extra
    cdef size_t clen
    cdef fr_head h
    cdef char *grown
    rc = _fr_send(c, head, head_len, deadline)
    if rc == CURLE_OK and body_len:
        rc = _fr_send(c, body, body_len, deadline)
    if rc == CURLE_OK:
        # The answer cannot be there yet: wait before the first read, which would otherwise
        # be an SSL_read that finds nothing (~10% of a framed request's instructions).
        rc = _fr_wait(c, POLLIN, deadline)
    if rc != CURLE_OK:
        _fr_close(c)
        return FR_STALE if rc == CURLE_SEND_ERROR else rc
    while end == 0:
        if have == TP_RBUF:
            _fr_close(c)
            return FR_FALLBACK  # a head this long is not NetHSM's
        rc = _fr_recv(c, c.rbuf + have, TP_RBUF - have, &n, deadline)
        if rc != CURLE_OK or n == 0:
            _fr_close(c)
            if have == 0 and rc != CURLE_OPERATION_TIMEDOUT:
                return FR_STALE
            if rc == CURLE_OK:
                _copy_str(c.errbuf, sizeof(c.errbuf), b"connection closed inside the response head")
                return CURLE_GOT_NOTHING
            return rc
        end = _fr_head_end(c.rbuf, have - 3 if have > 3 else 0, have + n)
        have += n
    if _fr_parse_head(c.rbuf, end - 2, &h) != 0 or h.status < 200 or h.chunked \
            or (h.content_length < 0 and h.status != 204 and h.status != 304):
        _fr_close(c)
        return FR_FALLBACK
    clen = <size_t>h.content_length if h.content_length > 0 else 0
    status[0] = h.status
    if h.ctype_len >= ctype_size:
        h.ctype_len = ctype_size - 1
    memcpy(ctype, h.ctype, h.ctype_len)
    ctype[h.ctype_len] = 0
    if clen > out.cap:
        grown = <char *>realloc(out.data, clen)
        if grown == NULL:
            _fr_close(c)
            return CURLE_OUT_OF_MEMORY
        out.data = grown
        out.cap = clen
    extra = have - end
    if extra > clen:
        h.close = True  # bytes beyond the response: this connection is out of step, drop it
        extra = clen
    memcpy(out.data, c.rbuf + end, extra)
    out.len = extra
    while out.len < clen:
        rc = _fr_recv(c, out.data + out.len, clen - out.len, &n, deadline)
        if rc != CURLE_OK or n == 0:
            _fr_close(c)
            if rc == CURLE_OK:
                _copy_str(c.errbuf, sizeof(c.errbuf), b"connection closed inside the response body")
                return CURLE_PARTIAL_FILE
            return rc
        out.len += n
    if h.close:
        _fr_close(c)
    return CURLE_OK


cdef char *_put(char *p, const char *s, size_t n) noexcept nogil:
    memcpy(p, s, n)
    return p + n


cdef int _fr_request(tp_conn *c, int method, const char *path, const char *auth_header,
                     const char *content_type, const char *body, size_t body_len, tp_buf *out,
                     long *status, char *ctype, size_t ctype_size) noexcept nogil:
    """A framed request: CURLE_OK, a CURLcode error, or FR_FALLBACK (the connection is closed;
    the request may have been sent)."""
    cdef tp_instance *inst = c.inst
    cdef tp_pool *pool = inst.pool
    cdef char req[FR_REQ]
    cdef char digits[24]
    cdef char *p = req
    cdef size_t path_len = strlen(path)
    cdef size_t auth_len = strlen(auth_header) if auth_header != NULL else 0
    cdef size_t ct_len = strlen(content_type) if content_type != NULL else 0
    cdef size_t nd = 0
    cdef size_t v = body_len
    cdef long long now = tp_now_ms()
    cdef long long deadline = now + pool.timeout_ms  # framed requests are all resendable
    cdef int attempt
    cdef int rc = CURLE_OK
    cdef bint reused
    # "GET " + origin path + path + host line + auth + content type + length + CRLF
    if 5 + inst.origin_path_len + path_len + inst.host_line_len + auth_len + 2 \
            + ct_len + 16 + 40 > FR_REQ:
        return FR_FALLBACK  # nothing sent yet
    if method == TP_GET:
        p = _put(p, b"GET ", 4)
    else:
        p = _put(p, b"POST ", 5)
    p = _put(p, inst.origin_path, inst.origin_path_len)
    p = _put(p, path, path_len)
    p = _put(p, inst.host_line, inst.host_line_len)
    if auth_len:
        p = _put(p, auth_header, auth_len)
        p = _put(p, b"\r\n", 2)
    if method != TP_GET:
        if ct_len:
            p = _put(p, b"Content-Type: ", 14)
            p = _put(p, content_type, ct_len)
            p = _put(p, b"\r\n", 2)
        while True:
            digits[nd] = <char>(<char>b'0' + v % 10)
            nd += 1
            v //= 10
            if v == 0:
                break
        p = _put(p, b"Content-Length: ", 16)
        while nd:
            nd -= 1
            p[0] = digits[nd]
            p += 1
        p = _put(p, b"\r\n", 2)
    p = _put(p, b"\r\n", 2)
    if body_len and body_len <= <size_t>(req + FR_REQ - p):
        p = _put(p, body, body_len)  # one send, one TLS record
        body_len = 0
    if c.sock >= 0 and now - c.last_used_ms > pool.maxage_conn * 1000:
        _fr_close(c)  # idle longer than connections_max_idle_duration
    for attempt in range(2):
        reused = c.sock >= 0
        rc = _fr_connect(c)
        if rc != CURLE_OK:
            break
        rc = _fr_exchange(c, req, p - req, body, body_len, deadline, out, status, ctype, ctype_size)
        if rc != FR_STALE:
            break
        if not reused:
            _copy_str(c.errbuf, sizeof(c.errbuf), b"the HSM closed the connection without a response")
            rc = CURLE_GOT_NOTHING
            break
        # The server closed this idle keep-alive connection: once more on a fresh one.
    c.last_used_ms = tp_now_ms()
    return rc


# ---------------------------------------------------------------- the framing's view of a URL

cdef bint _split_url(tp_instance *inst) noexcept nogil:
    """The framing's view of inst.url: whether it may be framed, its path (the request line's
    prefix) and its Host line. False when out of memory."""
    cdef const char *url = inst.url
    cdef size_t n = inst.url_len
    cdef size_t scheme_len = n
    cdef size_t i
    cdef size_t rest = n           # start of the authority
    cdef size_t slash              # end of the authority, start of the path
    cdef const char *head = b" HTTP/1.1\r\nHost: "  # then the authority and CRLF
    cdef size_t head_len = strlen(head)
    for i in range(n - 2 if n >= 3 else 0):
        if url[i] == b':' and url[i + 1] == b'/' and url[i + 2] == b'/':
            scheme_len = i
            rest = i + 3
            break
    slash = rest
    while slash < n and url[slash] != b'/':
        slash += 1
    # userinfo, or a scheme libcurl will refuse anyway: leave the URL to libcurl
    inst.framing = (
        (_is_name(url, scheme_len, b"http", 4) or _is_name(url, scheme_len, b"https", 5))
        and memchr(url + rest, b'@', slash - rest) == NULL)
    inst.origin_path = _dup(<const unsigned char *>url + slash, n - slash)
    inst.origin_path_len = n - slash
    inst.host_line_len = head_len + (slash - rest) + 2
    inst.host_line = <char *>malloc(inst.host_line_len + 1)
    if inst.origin_path == NULL or inst.host_line == NULL:
        return False
    memcpy(inst.host_line, head, head_len)
    memcpy(inst.host_line + head_len, url + rest, slash - rest)
    memcpy(inst.host_line + head_len + (slash - rest), b"\r\n", 3)  # with the terminating NUL
    return True
