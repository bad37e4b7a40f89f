# transfer: a request as a full libcurl transfer (curl_easy_perform) on a full handle — every
# request the framing does not take (http1), and the framing's fallback. It owns the per-call
# options (URL, method, body, headers, timeout) and what a failed transfer proves.
#
# Contract: _full_transfer returns a CURLcode; on CURLE_OK *status and res.content_type hold
# the answer and out its body (appended by conn's write callback from out.len). The reason of
# a failure is in c.errbuf (or c.pin_mismatch). _never_sent says whether a failed transfer
# provably sent nothing (then another instance may take even a request with side effects).
# The caller holds the handle (borrowed, pool); nothing here takes a lock. The header list
# lives on the caller's stack: libcurl reads it only during curl_easy_perform.
# uses: types, cstr, conn

from p11fast._decl.curl cimport CURL, CURLcode


cdef int _full_transfer(tp_conn *c, const tp_call *call, tp_buf *out, long *status,
                        tp_result *res) noexcept nogil
cdef bint _never_sent(CURL *e, CURLcode rc) noexcept nogil
