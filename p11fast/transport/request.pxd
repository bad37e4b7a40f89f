# request: tp_request — one call with its attempts, and the policy that decides after each
# one: failover to another instance, a retry, or the answer. It owns the instance choice, which
# requests may be resent, the framing's fallback to a full transfer and how an attempt ended;
# what that does to the instance's rotation is health's (_mark_after), the TP_* code of a
# libcurl failure conn's (_failure), the reason a borrow failed pool's (_borrow_failed).
#
# Failover: a slot's instances are one cluster. Whether a request may be resent is decided by
# its method and path alone (_resendable): GETs and the POSTs of .../sign, .../decrypt,
# .../encrypt and /random; nothing else (key generation, import, deletion, moves, user
# changes). An attempt that fails for an instance-level reason — no answer (refused, reset, TLS
# failure, timeout), 412 (Locked), 5xx — takes that instance out of rotation (412 and 5xx only
# when the slot has another instance) and the request goes to another available instance at
# once, without using one of `retries`, when it may be resent or provably was not executed
# (never sent: refused, TLS handshake or connect timeout; 412; every connection of the instance
# busy). `retries` applies once no instance is left to fail over to, and to requests that may
# have been executed: `delay_seconds` apart (after a 429 at least 1 s). A 412 from the last
# instance and a 5xx from the only one are returned as TP_OK with their status. Requests go to
# the instance in rotation with the fewest calls in flight (ties round robin), so a stalled
# instance holds only the calls already on it; with none in rotation, round robin over all.
# Framing: requests that may be resent are framed (http1) when the URL allows; the framing may
# send such a request twice (a fallback, counted in Pool.stats()["framing_fallbacks"]), which
# is why only they are. Callers see no difference.
#
# Contract: tp_request(pool, method, path, auth_header, body, body_len, content_type, out, res)
#   path: relative to the instance URL, e.g. "/keys/k1/sign" (instance URL ends with /api/v1)
#   auth_header: the full header line "Authorization: Basic ..." or NULL; never logged
#   content_type: e.g. "application/json", or NULL when there is no body
#   returns res.error: TP_OK (an answer, any status, in res.status) or TP_ERR_*; out receives
#   the body (from len 0: tp_request resets out.len); res.instance, attempts and detail say
#   where it went and why it failed. nogil, no Python object, any thread.
# Lifetime: tp_request holds its own reference on the pool for the duration of the call, so
# Pool.close() (C_Finalize) while other threads are mid-request is safe: they finish (or fail
# with TP_ERR_CLOSED at their next retry) and the last one out frees the pool. A caller must
# not *start* a tp_request on a pointer after the Pool owning it was closed: read Pool.ptr only
# while holding the Pool (its Python reference), as Pool.call does.
# tp_instance_url: the URL of instance i of pool, NULL when out of range. tp_buf_free: frees
# the buffer's memory and leaves it empty.
# uses: types, sync, cstr, conn, http1, transfer, pool, health

cdef int tp_request(tp_pool *pool, int method, const char *path, const char *auth_header,
                    const char *body, size_t body_len, const char *content_type,
                    tp_buf *out, tp_result *res) noexcept nogil
cdef void tp_buf_free(tp_buf *b) noexcept nogil
cdef const char *tp_instance_url(tp_pool *pool, int instance) noexcept nogil
