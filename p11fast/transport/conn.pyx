# conn: handles and what every connection shares (contract in conn.pxd).
#
# Each easy handle keeps its own connection in its own cache (CURLOPT_MAXCONNECTS=1), so "a
# handle" and "a keep-alive connection" are the same thing. Options set once per handle:
# - Proxies: CURLOPT_PROXY "" — a PKCS#11 module must not be redirected through whatever proxy
#   the host process's environment (http_proxy, https_proxy, ALL_PROXY) names: that would send
#   HSM credentials through a third party the HSM's operator never configured.
# - No redirects are followed, HTTP/1.1 only, CURLOPT_NOSIGNAL (many threads; signals belong to
#   the host).
# - TLS: system CAs by default; `cacert` replaces them (CURLOPT_CAINFO); `sha256_fingerprints`
#   replaces chain and hostname verification by a comparison of the leaf certificate's DER
#   SHA-256 (Nitrokey's semantics, not an SPKI pin) inside the handshake; `danger_insecure_cert`
#   verifies nothing.

from libc.stdio cimport snprintf
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcmp, memcpy, strlen
from posix.unistd cimport close as fd_close

from p11fast._decl.curl cimport *
from p11fast._decl.openssl cimport (
    EVP_MAX_MD_SIZE, SSL_CTX, SSL_CTX_set_cert_verify_callback, SSL_CTX_set_verify,
    SSL_VERIFY_PEER, X509, X509_STORE_CTX, X509_STORE_CTX_get0_cert, X509_STORE_CTX_set_error,
    X509_V_ERR_CERT_REJECTED, X509_digest, EVP_sha256,
)
from p11fast._decl.posix cimport SOCK_CLOEXEC, pthread_mutex_lock, pthread_mutex_unlock, socket

cdef extern from * nogil:
    """
    #include <netinet/in.h>
    #include <netinet/tcp.h>
    static inline int tp_set_keepcnt(int fd, int cnt) {
        return setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    }
    """
    int tp_set_keepcnt(int fd, int cnt)

cdef enum:
    HEALTH_TIMEOUT_MS = 1000     # health checks, inline and background (Nitrokey: 1 s)

# The background thread's stop request (see _bg_stopping). No initialiser: Cython would assign
# it in the module's init function, which may run after light mode started the thread.
cdef int g_bg_stop


cdef bint _bg_stopping() noexcept nogil:
    return tp_load(&g_bg_stop)


cdef void _bg_set_stopping(int stop) noexcept nogil:
    tp_store(&g_bg_stop, stop)


# ---------------------------------------------------------------- libcurl callbacks

cdef size_t _on_body(char *ptr, size_t size, size_t nmemb, void *userdata) noexcept nogil:
    cdef tp_buf *b = <tp_buf *>userdata
    cdef size_t n = size * nmemb
    cdef size_t cap
    cdef char *grown
    if b.len + n > b.cap:
        cap = b.cap * 2 if b.cap else 512
        while cap < b.len + n:
            cap *= 2
        grown = <char *>realloc(b.data, cap)
        if grown == NULL:
            return 0  # libcurl turns a short write into CURLE_WRITE_ERROR -> TP_ERR_NOMEM
        b.data = grown
        b.cap = cap
    memcpy(b.data + b.len, ptr, n)
    b.len += n
    return n


cdef size_t _discard(char *ptr, size_t size, size_t nmemb, void *userdata) noexcept nogil:
    return size * nmemb


cdef curl_socket_t _open_socket(void *clientp, curlsocktype purpose,
                                curl_sockaddr *addr) noexcept nogil:
    # We open the sockets ourselves to know every fd a handle owns: a forked child must close
    # its copies without letting libcurl talk TLS on them. CLOEXEC: hosts that fork+exec must
    # not leak HSM connections into the programs they start.
    cdef tp_conn *c = <tp_conn *>clientp
    cdef int fd = socket(addr.family, addr.socktype | SOCK_CLOEXEC, addr.protocol)
    cdef int i
    if fd < 0:
        return CURL_SOCKET_BAD
    for i in range(TP_MAX_FDS):
        if c.fds[i] < 0:
            c.fds[i] = fd
            break
    if c != c.inst.probe:  # health checks are not pool connections
        tp_count(&c.inst.pool.n_connections_opened)
    return fd


cdef int _close_socket(void *clientp, curl_socket_t fd) noexcept nogil:
    cdef tp_conn *c = <tp_conn *>clientp
    cdef int i
    for i in range(TP_MAX_FDS):
        if c.fds[i] == fd:
            c.fds[i] = -1
            break
    return fd_close(fd)


cdef int _sockopt(void *clientp, curl_socket_t fd, curlsocktype purpose) noexcept nogil:
    # libcurl has options for TCP_KEEPIDLE/KEEPINTVL but not TCP_KEEPCNT.
    cdef tp_pool *pool = <tp_pool *>clientp
    if pool.keepcnt > 0 and tp_set_keepcnt(fd, pool.keepcnt) != 0:
        return CURL_SOCKOPT_ERROR
    return CURL_SOCKOPT_OK


cdef int _verify_pin(X509_STORE_CTX *store, void *arg) noexcept nogil:
    # Replaces OpenSSL's whole chain verification (SSL_CTX_set_cert_verify_callback): with pins,
    # the SHA-256 of the leaf certificate's DER is the only thing checked (Nitrokey semantics),
    # so a self-signed HSM certificate passes and a mismatch aborts the handshake before any
    # request byte (and so any credential) is sent. The rejected digest is kept for the
    # failure's detail: it is what an operator adds to sha256_fingerprints.
    cdef tp_conn *c = <tp_conn *>arg
    cdef tp_instance *inst = c.inst
    cdef X509 *leaf = X509_STORE_CTX_get0_cert(store)
    cdef unsigned char md[EVP_MAX_MD_SIZE]
    cdef unsigned int n = 0
    cdef int i
    if leaf != NULL and X509_digest(leaf, EVP_sha256(), md, &n) == 1 and n == 32:
        for i in range(inst.npins):
            if memcmp(md, inst.pins + 32 * i, 32) == 0:
                return 1
        memcpy(c.leaf_sha256, md, 32)
        c.pin_mismatch = 1
    X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED)
    return 0


cdef void _pin_mismatch_detail(tp_conn *c, char *detail, size_t size) noexcept nogil:
    """"certificate AA:BB:… matches no sha256_fingerprints entry" (the form of the config)."""
    cdef const char *hexdigits = b"0123456789ABCDEF"
    cdef char text[160]
    cdef int i
    for i in range(32):
        text[3 * i] = hexdigits[c.leaf_sha256[i] >> 4]
        text[3 * i + 1] = hexdigits[c.leaf_sha256[i] & 15]
        text[3 * i + 2] = c':' if i < 31 else 0
    snprintf(detail, size, b"certificate %s matches no sha256_fingerprints entry", text)


cdef int _failure(tp_conn *c, CURLcode rc, char *detail, size_t size) noexcept nogil:
    """The TP_ERR_* of an exchange on c that ended with rc (not CURLE_OK), its reason in
    detail: the pin mismatch, else libcurl's own text."""
    if c.pin_mismatch:
        _pin_mismatch_detail(c, detail, size)
    else:
        _copy_str(detail, size, <const char *>c.errbuf if c.errbuf[0] else curl_easy_strerror(rc))
    if rc == CURLE_WRITE_ERROR or rc == CURLE_OUT_OF_MEMORY:
        return TP_ERR_NOMEM
    if rc == CURLE_OPERATION_TIMEDOUT:
        return TP_ERR_TIMEOUT
    if rc in (CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM,
              CURLE_SSL_CIPHER, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR,
              CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS, CURLE_SSL_CRL_BADFILE,
              CURLE_SSL_SHUTDOWN_FAILED, CURLE_SSL_ENGINE_NOTFOUND, CURLE_SSL_ENGINE_SETFAILED,
              CURLE_SSL_CLIENTCERT):
        return TP_ERR_TLS
    return TP_ERR_CONNECT


cdef CURLcode _ssl_ctx(CURL *curl, void *ssl_ctx, void *userptr) noexcept nogil:
    # libcurl calls this for every new connection's SSL_CTX. CURLOPT_SSL_VERIFYPEER is 0 for
    # pinned instances (libcurl must not reject the self-signed chain itself), which makes
    # libcurl set SSL_VERIFY_NONE; SSL_VERIFY_PEER turns our callback's verdict into a failed
    # handshake.
    SSL_CTX_set_verify(<SSL_CTX *>ssl_ctx, SSL_VERIFY_PEER, NULL)
    SSL_CTX_set_cert_verify_callback(<SSL_CTX *>ssl_ctx, _verify_pin, userptr)
    return CURLE_OK


cdef int _bg_abort(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                   curl_off_t ulnow) noexcept nogil:
    # libcurl calls this each time it works on the transfer, at least once a second: a
    # background set-up (a framed handle's connect) or probe ends there when the thread is
    # asked to stop. A caller's own connect (bg_setup 0) never does.
    cdef tp_conn *c = <tp_conn *>clientp
    return (c.bg_setup or c == c.inst.probe) and tp_load(&g_bg_stop)


# ---------------------------------------------------------------- handles

cdef int _configure(tp_conn *c, long timeout_ms, long connect_ms) noexcept nogil:
    """Everything that does not change per request, set once per handle. 0 = success."""
    cdef tp_instance *inst = c.inst
    cdef tp_pool *pool = inst.pool
    cdef CURL *e = c.easy
    cdef int rc = 0
    rc |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, <long>1)
    rc |= curl_easy_setopt(e, CURLOPT_PROXY, <const char *>b"")
    rc |= curl_easy_setopt(e, CURLOPT_HTTP_VERSION, <long>CURL_HTTP_VERSION_1_1)
    rc |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, <long>0)
    rc |= curl_easy_setopt(e, CURLOPT_MAXCONNECTS, <long>1)
    rc |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c.errbuf)
    rc |= curl_easy_setopt(e, CURLOPT_PRIVATE, <void *>c)
    rc |= curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, _open_socket)
    rc |= curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, <void *>c)
    rc |= curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, _close_socket)
    rc |= curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, <void *>c)
    rc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, _on_body)
    rc |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms)
    rc |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms)
    if pool.keepalive:
        rc |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, <long>1)
        rc |= curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, pool.keepidle)
        rc |= curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, pool.keepintvl)
        rc |= curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, _sockopt)
        rc |= curl_easy_setopt(e, CURLOPT_SOCKOPTDATA, <void *>pool)
    rc |= curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, pool.maxage_conn)
    if inst.insecure:
        rc |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, <long>0)
        rc |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, <long>0)
    elif inst.npins:
        rc |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, <long>0)
        rc |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, <long>0)
        rc |= curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, _ssl_ctx)
        rc |= curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, <void *>c)
    elif inst.cacert != NULL:
        rc |= curl_easy_setopt(e, CURLOPT_CAINFO, <const char *>inst.cacert)
    return rc


cdef int _probe_setup(tp_conn *c) noexcept nogil:
    """A health-check handle: GET /health/ready, body discarded. 0 = success."""
    cdef const char *path = b"/health/ready"
    cdef size_t n = strlen(path)
    cdef int rc = 0
    # url_cap is url_len + URL_SLACK, always room for this path
    memcpy(c.url + c.inst.url_len, path, n + 1)
    rc |= curl_easy_setopt(c.easy, CURLOPT_URL, <const char *>c.url)
    rc |= curl_easy_setopt(c.easy, CURLOPT_WRITEFUNCTION, _discard)
    # A health check must not leave a second idle connection per instance behind.
    rc |= curl_easy_setopt(c.easy, CURLOPT_FORBID_REUSE, <long>1)
    return rc | _abortable(c)


cdef int _fr_setup(tp_conn *c) noexcept nogil:
    """A framed handle's own options: libcurl connects (TLS included) and stops. 0 = success."""
    cdef int rc = 0
    rc |= curl_easy_setopt(c.easy, CURLOPT_CONNECT_ONLY, <long>1)
    rc |= curl_easy_setopt(c.easy, CURLOPT_URL, <const char *>c.url)
    return rc | _abortable(c)


cdef int _abortable(tp_conn *c) noexcept nogil:
    """What the background thread does with c ends when it is asked to stop (_bg_abort)."""
    cdef int rc = 0
    rc |= curl_easy_setopt(c.easy, CURLOPT_NOPROGRESS, <long>0)
    rc |= curl_easy_setopt(c.easy, CURLOPT_XFERINFOFUNCTION, _bg_abort)
    rc |= curl_easy_setopt(c.easy, CURLOPT_XFERINFODATA, <void *>c)
    return rc


cdef tp_conn *_conn_new(tp_instance *inst, int kind) noexcept nogil:
    cdef tp_conn *c = <tp_conn *>calloc(1, sizeof(tp_conn))
    cdef int i
    if c == NULL:
        return NULL
    c.inst = inst
    c.sock = -1
    for i in range(TP_MAX_FDS):
        c.fds[i] = -1
    c.url_cap = inst.url_len + URL_SLACK
    c.url = <char *>malloc(c.url_cap)
    c.easy = curl_easy_init()
    if c.url == NULL or c.easy == NULL:
        _conn_free(c)
        return NULL
    memcpy(c.url, inst.url, inst.url_len + 1)
    if kind == CONN_PROBE:
        if _configure(c, HEALTH_TIMEOUT_MS, HEALTH_TIMEOUT_MS) or _probe_setup(c):
            _conn_free(c)
            return NULL
        return c
    c.framed = kind == CONN_FRAMED
    if _configure(c, inst.pool.timeout_ms, inst.pool.connect_timeout_ms) \
            or (c.framed and _fr_setup(c)):
        _conn_free(c)
        return NULL
    pthread_mutex_lock(&inst.lock)
    c.next_all = inst.all_list
    if inst.all_list != NULL:
        inst.all_list.prev_all = c
    inst.all_list = c
    pthread_mutex_unlock(&inst.lock)
    return c


cdef void _conn_free(tp_conn *c) noexcept nogil:
    """Closes the handle and its connection. The caller has unlinked it from all_list."""
    if c.easy != NULL:
        curl_easy_cleanup(c.easy)
    free(c.url)
    free(c)


cdef void _conn_unlink(tp_instance *inst, tp_conn *c) noexcept nogil:
    # caller holds inst.lock
    if c.prev_all != NULL:
        c.prev_all.next_all = c.next_all
    else:
        inst.all_list = c.next_all
    if c.next_all != NULL:
        c.next_all.prev_all = c.prev_all


cdef void _forget_fds(tp_conn *c) noexcept nogil:
    # Closing the child's copy of a socket sends nothing (the parent's copy keeps the
    # connection open) and lets the parent's own close actually end the connection later.
    cdef int i
    for i in range(TP_MAX_FDS):
        if c.fds[i] >= 0:
            fd_close(c.fds[i])
            c.fds[i] = -1
