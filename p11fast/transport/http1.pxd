# http1: framed requests — HTTP/1.1 written and parsed by us over a connection libcurl made
# (CURLOPT_CONNECT_ONLY: TCP options, TLS and pinning as for any handle; conn.pyx), sent with
# curl_easy_send and read with curl_easy_recv, waiting with poll() on the socket. It owns the
# framed connection's life (connect, idle age, close), the request head, the response parser
# and the framing's view of an instance URL.
#
# Contract: only requests that may safely be repeated are framed (request.pyx: _resendable),
# because a framed exchange the framing does not expect — 1xx, chunked, no Content-Length
# (except 204/304), a head over TP_RBUF, anything malformed — closes the connection and
# returns FR_FALLBACK, and the caller sends the request again as a full transfer (stats:
# framing_fallbacks). Otherwise _fr_request returns CURLE_OK (out, status and content type
# filled) or a CURLcode error with the reason in c.errbuf; a connection that failed is closed
# and the handle stays reusable. A reused connection that fails before the first response byte
# (the server closed it while idle) is retried once on a fresh one, as libcurl itself does; a
# `Connection: close` answer (or HTTP/1.0 without keep-alive) is used, then the connection
# closed. The caller holds the handle (borrowed, pool); nothing here takes a lock.
# _fr_connect returns CURLE_OK once the handle has a connection. _split_url returns False when
# out of memory.
# uses: types, sync, cstr, conn

from p11fast._decl.curl cimport CURLcode


cdef enum:
    FR_FALLBACK = -1             # the framing cannot take this exchange: redo it as a full transfer

cdef int _fr_request(tp_conn *c, int method, const char *path, const char *auth_header,
                     const char *content_type, const char *body, size_t body_len, tp_buf *out,
                     long *status, char *ctype, size_t ctype_size) noexcept nogil
cdef CURLcode _fr_connect(tp_conn *c) noexcept nogil
cdef bint _split_url(tp_instance *inst) noexcept nogil
