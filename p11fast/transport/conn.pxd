# conn: handles — a tp_conn and its libcurl easy handle, each configured once for its kind:
# full transfers (every request the framing does not take), framed (libcurl only connects,
# http1 speaks HTTP/1.1 over the socket) and health checks (GET /health/ready). It owns what
# every connection shares: the options (no proxy, no redirects, HTTP/1.1, NOSIGNAL, timeouts,
# TCP keep-alive, idle age), TLS (system CAs, cacert, or the sha256_fingerprints pin checked
# inside the handshake), the sockets each handle opens (so a forked child can close its copies)
# and the stop request that ends what the background thread runs on a handle.
#
# Contract: _conn_new returns NULL when libcurl or memory fails (nothing is left behind); a
# full or framed handle is linked in its instance's all_list (under inst.lock), a probe handle
# is not (it is the instance's `probe`). _conn_free closes the handle and its connection; the
# caller has unlinked it (_conn_unlink, under inst.lock). _configure and _fr_setup return 0 or
# a non-zero CURLcode mix. _failure maps a failed exchange's CURLcode to its TP_ERR_* (a TLS
# failure or pin mismatch TP_ERR_TLS, a timeout TP_ERR_TIMEOUT, memory TP_ERR_NOMEM, anything
# else TP_ERR_CONNECT) and writes its reason, never a request header or body. Nothing here blocks on a lock other than inst.lock, briefly.
# _bg_set_stopping(1) makes every set-up or health check in progress on the background thread
# end at its next libcurl progress callback (within a second); a caller's own connect never
# does. health sets and clears it, and reads it for its own loop.
# uses: types, sync, cstr

from p11fast._decl.curl cimport CURLcode

cdef enum:
    URL_SLACK = 256              # room for the request path kept after the URL prefix

cdef tp_conn *_conn_new(tp_instance *inst, int kind) noexcept nogil
cdef void _conn_free(tp_conn *c) noexcept nogil
cdef void _conn_unlink(tp_instance *inst, tp_conn *c) noexcept nogil
cdef int _configure(tp_conn *c, long timeout_ms, long connect_ms) noexcept nogil
cdef int _fr_setup(tp_conn *c) noexcept nogil
cdef void _pin_mismatch_detail(tp_conn *c, char *detail, size_t size) noexcept nogil
cdef int _failure(tp_conn *c, CURLcode rc, char *detail, size_t size) noexcept nogil
cdef void _forget_fds(tp_conn *c) noexcept nogil
cdef bint _bg_stopping() noexcept nogil
cdef void _bg_set_stopping(int stop) noexcept nogil
