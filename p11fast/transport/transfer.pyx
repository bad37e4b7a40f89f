# transfer: full libcurl transfers (contract in transfer.pxd).

from libc.stdlib cimport realloc
from libc.string cimport memcpy, strlen

from p11fast._decl.curl cimport *


cdef CURLcode _perform(tp_conn *c, const tp_call *call, curl_slist *headers,
                       tp_buf *out) noexcept nogil:
    cdef CURL *e = c.easy
    cdef size_t url_len = c.inst.url_len
    cdef size_t path_len = strlen(call.path)
    cdef size_t cap
    cdef char *grown
    cdef const char *verb = NULL
    cdef int rc = 0
    if url_len + path_len + 1 > c.url_cap:
        cap = url_len + path_len + URL_SLACK
        grown = <char *>realloc(c.url, cap)
        if grown == NULL:
            return CURLE_OUT_OF_MEMORY
        c.url = grown
        c.url_cap = cap
    memcpy(c.url + url_len, call.path, path_len + 1)
    rc |= curl_easy_setopt(e, CURLOPT_URL, <const char *>c.url)
    if call.method == TP_GET or call.method == TP_DELETE:
        rc |= curl_easy_setopt(e, CURLOPT_HTTPGET, <long>1)
    else:
        # Size first, so libcurl does not strlen() a binary body.
        rc |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, <curl_off_t>call.body_len)
        rc |= curl_easy_setopt(e, CURLOPT_POSTFIELDS,
                               call.body if call.body != NULL else <const char *>b"")
    if call.method == TP_PUT:
        verb = b"PUT"
    elif call.method == TP_DELETE:
        verb = b"DELETE"
    rc |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, verb)
    rc |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers)
    rc |= curl_easy_setopt(e, CURLOPT_WRITEDATA, <void *>out)
    rc |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, call.timeout_ms)
    if rc:
        return CURLE_OUT_OF_MEMORY  # these options can only fail to copy the URL string
    c.errbuf[0] = 0
    c.pin_mismatch = 0
    return curl_easy_perform(e)


cdef int _headers(curl_slist *hdr, char *ct_line, size_t ct_size, int method,
                  const char *auth_header, const char *content_type) noexcept nogil:
    """A full transfer's header list, in the caller's arrays: libcurl reads the list only during
    curl_easy_perform, so no allocation is needed (curl_slist's layout is public API)."""
    cdef int nh = 0
    cdef int i
    hdr[nh].data = <char *>b"Expect:"  # no 100-continue round trip for bodies
    nh += 1
    if auth_header != NULL:
        hdr[nh].data = <char *>auth_header
        nh += 1
    if content_type != NULL:
        _copy_str(ct_line, ct_size, b"Content-Type: ")
        _copy_str(ct_line + 14, ct_size - 14, content_type)
        hdr[nh].data = ct_line
        nh += 1
    elif method == TP_POST or method == TP_PUT:
        hdr[nh].data = <char *>b"Content-Type:"  # drop libcurl's form-urlencoded default
        nh += 1
    for i in range(nh):
        hdr[i].next = &hdr[i + 1] if i + 1 < nh else NULL
    return nh


cdef int _full_transfer(tp_conn *c, const tp_call *call, tp_buf *out, long *status,
                        tp_result *res) noexcept nogil:
    """The request as a libcurl transfer on a full handle: a CURLcode."""
    cdef curl_slist hdr[3]
    cdef char ct_line[128]  # "Content-Type: " + a media type (ours are short; longer is cut)
    cdef char *ct = NULL
    cdef CURLcode rc
    _headers(hdr, ct_line, sizeof(ct_line), call.method, call.auth_header, call.content_type)
    rc = _perform(c, call, &hdr[0], out)
    if rc == CURLE_OK:
        curl_easy_getinfo(c.easy, CURLINFO_RESPONSE_CODE, status)
        curl_easy_getinfo(c.easy, CURLINFO_CONTENT_TYPE, &ct)
        _copy_str(res.content_type, sizeof(res.content_type), ct)
    return rc


cdef bint _never_sent(CURL *e, CURLcode rc) noexcept nogil:
    """Whether a failed full transfer provably sent nothing: it failed connecting (refused,
    unresolvable, TLS handshake, connect timeout) and libcurl reports no pre-transfer time
    (the moment before sending). Any other failure counts as possibly sent."""
    cdef curl_off_t pretransfer = 1
    if rc not in (CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_CONNECT, CURLE_SSL_CONNECT_ERROR,
                  CURLE_PEER_FAILED_VERIFICATION, CURLE_OPERATION_TIMEDOUT):
        return False
    return curl_easy_getinfo(e, CURLINFO_PRETRANSFER_TIME_T, &pretransfer) == CURLE_OK \
        and pretransfer == 0
