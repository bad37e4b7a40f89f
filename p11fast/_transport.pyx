# cython: language_level=3
"""HTTP(S) to a slot's NetHSM instances: a libcurl keep-alive pool, failover, retries, probes.

Hot path (`tp_request`, no GIL, no Python object): borrow an idle easy handle of the chosen
instance under the instance's mutex (a few pointer moves), do the exchange on the calling thread
with no lock held, give the handle back. Each easy handle keeps its own connection in its own
cache (CURLOPT_MAXCONNECTS=1), so "a handle" and "a keep-alive connection" are the same thing.

Two kinds of handle, each with its own idle list:
- Framed (GETs, and the POSTs of sign/decrypt/encrypt): libcurl only connects
  (CURLOPT_CONNECT_ONLY: TCP options, TLS, pinning as for any handle); we write the fixed HTTP/1.1
  request with curl_easy_send and parse the response with curl_easy_recv, waiting with poll() on
  the socket. A full libcurl transfer spends most of its time on per-request work (header
  formatting, allocation, URL and proxy handling): ~31k/s against ~50k/s for this at 8
  threads (docs/design.md, Performance). The framing accepts only a final status with a Content-Length (or 204/304)
  and no Transfer-Encoding; anything else (1xx, chunked, no length, a head over TP_RBUF,
  malformed) closes that connection and the request is sent again as a full transfer (stats:
  framing_fallbacks). That is why only requests that may safely be repeated are framed. A
  response with `Connection: close` (or HTTP/1.0 without keep-alive) is used, then the
  connection closed. A reused connection that fails before the first response byte (the server
  closed it while idle) is retried once on a fresh connection, as libcurl itself does.
- Full transfers (curl_easy_perform) for every other request, and as the fallback above.

Decisions worth knowing (see also the header of _transport.pxd):
- Connection cap: `max_idle_connections` caps the handles (= connections) of an instance, busy
  or idle (default DEFAULT_CAP). A caller that finds none idle opens one while under the cap,
  else waits on its own condition variable in a FIFO until a handle is given back (direct hand-off
  to the oldest waiter: no barging, no thundering herd), at most the request timeout; close()
  wakes every waiter with TP_ERR_CLOSED. A steady load with more threads than the cap therefore
  opens and closes nothing: Nitrokey's reconnect storm came from opening extra connections beyond
  its pool and closing them on return. Framed and full handles share the cap; at the cap an idle
  handle of the other kind is closed to open the wanted kind (stats: connections_converted).
- Background set-up: with threads allowed, the background thread connects each instance's first
  (framed) handle at pool creation and reconnects framed handles given back without a
  connection while the instance is up; callers never wait for it (see _setup).
- Proxies: CURLOPT_PROXY "" — a PKCS#11 module must not be redirected through whatever proxy
  the host process's environment (http_proxy, https_proxy, ALL_PROXY) names: that would send
  HSM credentials through a third party the HSM's operator never configured.
- No redirects are followed, HTTP/1.1 only, CURLOPT_NOSIGNAL (many threads; signals belong to the
  host).
- Failover and retries (the policy is _next_step; the contract in _transport.pxd): a slot's
  instances are one cluster. An instance-level failure — no answer (refused, reset, TLS,
  timeout), 412 (Locked), 5xx — takes the instance out of rotation and moves a request that may
  be resent (_resendable) to another instance in rotation at once, whatever `retries` says;
  other requests move only when they provably were not executed. Once no instance is left,
  `retries.count` more attempts, `delay_seconds` apart (after a 429 at least 1 s). A 412 from
  the last instance and a 5xx from the only one are returned as TP_OK with their status.
- Instance choice: the instance in rotation with the fewest calls in flight, ties round robin;
  when none is in rotation, round robin over all (a request is tried anyway).
- Timeouts: never infinite (defaults in the enum below); connecting is bounded separately, so
  an instance that accepts TCP but never completes TLS fails fast.
- Health: an instance back in rotation is one a probe found Operational: `GET /health/ready`
  answers 200 (keyfender answers 412 while Locked or Unprovisioned, when `/health/alive` would
  say 200). A request that gets a real answer from an instance out of rotation also brings it
  back.
- Probes: with threads allowed, one background thread per process drives the multi interface,
  probing every down instance of every live pool at most once a second (1 s timeout each), and
  sleeps on a condition variable while nothing is down. Without threads (CKF_LIBRARY_CANT_
  CREATE_OS_THREADS / disable_threads), a request first re-checks up to 3 down instances inline
  (1 s timeout, each instance at most once a second), so one call sends at most
  retries.count + instances + 3 requests (Nitrokey's formula, plus one failover per instance).
- Thread lifetime: the background thread is joined, never left running: closing the last live
  pool (C_Finalize) and the process's exit (an atexit handler, registered after OpenSSL's so it
  runs first) stop it, aborting a set-up or probe in progress at its next step (within a
  second). It must not be inside libcurl or OpenSSL while OpenSSL's exit handler frees their
  global state: that crashed processes exiting right after C_Initialize. Nor at fork(): OpenSSL
  (3.x) has no fork handlers, and a lock of its held by the thread stays held in the child. So
  the fork prepare handler stops it the same way, and the parent starts it again.
- TLS: system CAs by default; `cacert` replaces them (CURLOPT_CAINFO); `sha256_fingerprints`
  replaces chain and hostname verification by a comparison of the leaf certificate's DER SHA-256
  (Nitrokey's semantics, not an SPKI pin) inside the handshake; `danger_insecure_cert` verifies
  nothing.
- Fork: a child closes its copies of the inherited sockets (the parent's connections stay open,
  nothing is written on them) and leaks the easy handles: cleaning them up would send TLS
  close_notify, with the parent's keys and sequence numbers, into the parent's stream. See
  tp_after_fork_child. Pools already closed but still finishing a request at fork time are not in
  the registry; their sockets stay open in the child until it exits (they are CLOEXEC, so an
  exec'd program does not inherit them).
- Light mode: the C loader answers `pkcs11-tool -L` without starting Python, yet token presence
  needs one live GET /health/ready through this transport. So the library also works with
  libpython loaded but not initialised, through three exported C functions (p11f_transport_open,
  _get, _release; see the end of this file and _transport.pxd): process-wide state is set up by
  one pthread_once (_global_init) that both they and the module import call, and the module's
  initialisation never resets C state (no initialised module-level cdef globals). A pool opened
  that way is *parked*; when Python starts later, a Pool built from a byte-identical pool_spec()
  and the same threads flag adopts it, connection, registration and background set-up included,
  instead of opening a second connection. Every pool, parked or not, is built by
  _pool_from_spec from a pool_spec() blob, so both paths are the same code.
"""

from libc.errno cimport EINTR, errno
from libc.limits cimport INT_MAX
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.stdint cimport int64_t, uint16_t, uint32_t
from libc.stdio cimport snprintf
from libc.string cimport memchr, memcmp, memcpy, strcmp, strlen
from posix.unistd cimport close as fd_close

from p11fast._curl cimport *

from os import fsdecode as os_fsdecode
from os import fsencode as os_fsencode
from struct import Struct

from p11fast.errors import TRANSPORT_FAILURES, TransportError

cdef extern from "<pthread.h>" nogil:
    ctypedef unsigned long pthread_t
    ctypedef int pthread_once_t
    int pthread_once(pthread_once_t *once, void (*init)() noexcept nogil)
    int pthread_mutex_init(pthread_mutex_t *m, const void *attr)
    int pthread_mutex_destroy(pthread_mutex_t *m)
    int pthread_mutex_lock(pthread_mutex_t *m)
    int pthread_mutex_unlock(pthread_mutex_t *m)
    int pthread_cond_init(pthread_cond_t *c, const void *attr)
    int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
    int pthread_cond_signal(pthread_cond_t *c)
    int pthread_cond_destroy(pthread_cond_t *c)
    int pthread_create(pthread_t *t, const void *attr, void *(*start)(void *) noexcept nogil,
                       void *arg)
    int pthread_join(pthread_t t, void **result)
    int pthread_atfork(void (*prepare)() noexcept nogil, void (*parent)() noexcept nogil,
                       void (*child)() noexcept nogil)

cdef extern from "<poll.h>" nogil:
    struct pollfd:
        int fd
        short events
        short revents
    enum: POLLIN
    enum: POLLOUT
    int poll(pollfd *fds, unsigned long nfds, int timeout)

cdef extern from "<stdlib.h>" nogil:
    int atexit(void (*handler)() noexcept nogil)

cdef extern from "<strings.h>" nogil:
    int strncasecmp(const char *a, const char *b, size_t n)

cdef extern from "<sys/socket.h>" nogil:
    enum: SOCK_CLOEXEC
    int socket(int domain, int type, int protocol)

cdef extern from "<openssl/ssl.h>" nogil:
    ctypedef struct SSL_CTX:
        pass
    ctypedef struct X509:
        pass
    ctypedef struct X509_STORE_CTX:
        pass
    ctypedef struct EVP_MD:
        pass
    enum: SSL_VERIFY_PEER
    enum: X509_V_ERR_CERT_REJECTED
    enum: EVP_MAX_MD_SIZE
    void SSL_CTX_set_verify(SSL_CTX *ctx, int mode, void *callback)
    void SSL_CTX_set_cert_verify_callback(SSL_CTX *ctx,
                                          int (*cb)(X509_STORE_CTX *, void *) noexcept nogil,
                                          void *arg)
    X509 *X509_STORE_CTX_get0_cert(X509_STORE_CTX *ctx)
    void X509_STORE_CTX_set_error(X509_STORE_CTX *ctx, int err)
    int X509_digest(const X509 *cert, const EVP_MD *md, unsigned char *out, unsigned int *len)
    const EVP_MD *EVP_sha256()

cdef extern from * nogil:
    """
    #include <errno.h>
    #include <time.h>
    #include <netinet/in.h>
    #include <netinet/tcp.h>

    /* Counters only need atomicity; flags and the refcount publish state between threads. */
    static inline void tp_count(long *p) { __atomic_add_fetch(p, 1, __ATOMIC_RELAXED); }
    static inline long tp_read(long *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
    static inline int tp_load(int *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
    static inline void tp_store(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
    static inline int tp_swap(int *p, int v) { return __atomic_exchange_n(p, v, __ATOMIC_ACQ_REL); }
    static inline int tp_cas(int *p, int expected, int v) {
        return __atomic_compare_exchange_n(p, &expected, v, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    }
    static inline int tp_refs_add(int *p, int v) { return __atomic_add_fetch(p, v, __ATOMIC_ACQ_REL); }
    static inline unsigned tp_rr_next(unsigned *p) { return __atomic_fetch_add(p, 1, __ATOMIC_RELAXED); }
    static inline long long tp_load_ll(long long *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
    static inline void tp_store_ll(long long *p, long long v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

    static inline long long tp_now_ms(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
    }
    static inline void tp_sleep_ms(long ms) {
        struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
        while (nanosleep(&t, &t) == -1 && errno == EINTR) {}
    }
    static inline int tp_set_keepcnt(int fd, int cnt) {
        return setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    }
    /* Waiters' conditions use the monotonic clock: a wall-clock jump must not cut or stretch a
       wait bounded by the request timeout. */
    static inline int tp_cond_init_mono(pthread_cond_t *c) {
        pthread_condattr_t a;
        int rc;
        pthread_condattr_init(&a);
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        rc = pthread_cond_init(c, &a);
        pthread_condattr_destroy(&a);
        return rc;
    }
    /* Defined in C, not as a module-level cdef with an initialiser: Cython assigns those in the
       module's init function, which runs only when Python imports us, possibly after the loader's
       light mode already used the library (see _global_init). */
    static pthread_once_t tp_once = PTHREAD_ONCE_INIT;
    #define TP_SPEC_MAGIC "P11T"

    /* pool_spec blobs are little-endian whatever the host (see pool_spec). */
    static inline uint16_t tp_le16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
    static inline uint32_t tp_le32(const unsigned char *p) {
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    }
    static inline int64_t tp_le64(const unsigned char *p) {
        return (int64_t)((uint64_t)tp_le32(p) | (uint64_t)tp_le32(p + 4) << 32);
    }

    /* 1 when deadline_ms (tp_now_ms's clock) passed, else 0 (woken, maybe spuriously). */
    static inline int tp_cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, long long deadline_ms) {
        struct timespec t = {deadline_ms / 1000, (deadline_ms % 1000) * 1000000L};
        return pthread_cond_timedwait(c, m, &t) == ETIMEDOUT;
    }
    """
    void tp_count(long *p)
    long tp_read(long *p)
    int tp_load(int *p)
    void tp_store(int *p, int v)
    int tp_swap(int *p, int v)
    bint tp_cas(int *p, int expected, int v)
    int tp_refs_add(int *p, int v)
    unsigned int tp_rr_next(unsigned int *p)
    long long tp_load_ll(long long *p)
    void tp_store_ll(long long *p, long long v)
    long long tp_now_ms()
    void tp_sleep_ms(long ms)
    int tp_set_keepcnt(int fd, int cnt)
    int tp_cond_init_mono(pthread_cond_t *c)
    pthread_once_t tp_once
    const char *TP_SPEC_MAGIC
    uint16_t tp_le16(const unsigned char *p)
    uint32_t tp_le32(const unsigned char *p)
    int64_t tp_le64(const unsigned char *p)
    bint tp_cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, long long deadline_ms)


cdef enum:
    HEALTH_TIMEOUT_MS = 1000     # inline and background health checks (Nitrokey: 1 s)
    HEALTH_INTERVAL_MS = 1000    # an instance is health-checked at most once per second
    INLINE_CHECKS_MAX = 3        # per request, without threads (Nitrokey's formula)
    RETRY_429_MIN_MS = 1000
    # timeout_seconds unset. Nitrokey's default is no timeout, with which one hung instance
    # stops the whole slot. Requests that may be resent fail over after it, so it is what a
    # stalled instance costs the calls already waiting on it: ample for a signature queued on
    # a busy HSM, short enough to be a pause. Others (key generation: a large RSA key may take
    # long) get more, since a timeout there leaves the outcome unknown.
    DEFAULT_TIMEOUT_MS = 10000
    DEFAULT_SLOW_TIMEOUT_MS = 60000
    # Connecting (TCP and TLS handshake) takes milliseconds on a working network; a SYN lost
    # twice still connects within it. A TLS-silent instance fails here, not after the request's
    # timeout (with the background thread's set-ups waiting for it meanwhile).
    CONNECT_TIMEOUT_MS = 5000
    # max_idle_connections unset. It caps open connections per instance, and callers beyond it
    # wait for one: on the 2-core benchmark machine 8 connections already reach nginx's ceiling
    # with 64 threads (measured with tests/transport/load.py), 16 leaves room for an HSM with
    # more parallelism and longer round trips. Nitrokey's default, the CPU count, was a problem
    # only because its callers beyond the cap reconnect instead of waiting.
    DEFAULT_CAP = 16
    # connections_max_idle_duration unset means "no limit"; libcurl's own default is 118 s
    NO_MAXAGE_S = 10 * 365 * 86400
    URL_SLACK = 256              # room for the request path kept after the URL prefix
    FR_FALLBACK = -1             # the framing cannot take this exchange: redo it as a full transfer
    FR_STALE = -2                # the connection failed before any response byte
    FR_REQ = 4096                # framed request head (and a body that fits) built on the stack

cdef enum:                       # pool_spec blobs, layout in pool_spec's docstring
    SPEC_VERSION = 1
    SPEC_HEAD = 60               # bytes of the header
    SPEC_INST = 20               # bytes of an instance's fixed part
    SPEC_KEEPALIVE = 1           # header flag: tcp_keepalive set
    SPEC_INSECURE = 1            # instance flags: danger_insecure_cert
    SPEC_CACERT = 2              #   cacert set (an empty path is not the same as none)
    PIN_LEN = 32                 # a sha256_fingerprints entry: a SHA-256 digest

cdef enum:
    CONN_FULL = 0                # kinds of handle; FULL and FRAMED index the idle lists
    CONN_FRAMED = 1
    CONN_PROBE = 2


# ---------------------------------------------------------------- process-wide state

cdef struct tp_light:         # a p11f_transport_open handle; see "Light mode" in _transport.pxd
    tp_pool *pool             # NULL once the pool's adopter closed it
    bint adopted              # a Pool owns the pool; until then (parked) this handle does
    int threads_allowed
    unsigned char *spec       # the pool_spec blob the pool was built from, while parked
    size_t spec_len
    tp_light *next


# The registry of live pools lets a forked child find every inherited connection. g_lock
# guards it, the light-mode handles and the probe thread's state; it is never held during I/O.
# No initialisers here: Cython would assign them in the module's init function, which runs when
# Python first imports us, maybe after the light mode registered a pool or started the thread
# (C zeroes these statics; the rest is set up by _global_init).
cdef pthread_mutex_t g_lock
cdef pthread_cond_t g_probe_cond      # the probe thread sleeps on it while nothing is down
cdef tp_pool *g_registry
cdef int g_probe_started
cdef int g_probe_failed               # no thread (pthread_create failed, or the process is
                                      # exiting): fall back to inline checks
cdef pthread_t g_bg_thread            # the background thread while g_probe_started
cdef int g_bg_stop                    # atomic: it is asked to end (_bg_stop joins it)
cdef int g_bg_kick_lost               # a kick came while it was ending: _bg_stop starts another
cdef pthread_mutex_t g_bg_join_lock   # serialises _bg_stop; the thread itself never takes it
cdef int g_fork_locked                # our prepare handler holds g_lock and instance locks
cdef bint g_fork_halted               # it ended the background thread (the parent restarts it)
cdef CURLM *g_probe_multi
cdef tp_light *g_light                # handles of p11f_transport_open, until released
cdef bint g_init_ok                   # _global_init succeeded (written once, under tp_once)
cdef bint g_forward_wanted            # the loader asks to run our fork handlers from its own
cdef bint g_forwarded                 # it does (decided once, under tp_once)


cdef void _global_init_once() noexcept nogil:
    global g_init_ok, g_forwarded
    pthread_mutex_init(&g_lock, NULL)
    pthread_mutex_init(&g_bg_join_lock, NULL)
    pthread_cond_init(&g_probe_cond, NULL)
    if curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK:
        return
    # Registered after curl_global_init made OpenSSL register its own cleanup: exit handlers run
    # in reverse order, so the background thread is gone before OpenSSL frees what it uses.
    atexit(_at_exit)
    g_forwarded = g_forward_wanted
    if not g_forwarded:
        pthread_atfork(_atfork_prepare, _atfork_parent, _atfork_child)
    g_init_ok = True


cdef bint _global_init() noexcept nogil:
    """Process-wide set-up, exactly once, by whichever comes first: the module's import or a light
    mode entry point (then without an initialised Python). False when libcurl cannot start."""
    pthread_once(&tp_once, _global_init_once)
    return g_init_ok


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


cdef CURLcode _ssl_ctx(CURL *curl, void *ssl_ctx, void *userptr) noexcept nogil:
    # libcurl calls this for every new connection's SSL_CTX. CURLOPT_SSL_VERIFYPEER is 0 for
    # pinned instances (libcurl must not reject the self-signed chain itself), which makes
    # libcurl set SSL_VERIFY_NONE; SSL_VERIFY_PEER turns our callback's verdict into a failed
    # handshake.
    SSL_CTX_set_verify(<SSL_CTX *>ssl_ctx, SSL_VERIFY_PEER, NULL)
    SSL_CTX_set_cert_verify_callback(<SSL_CTX *>ssl_ctx, _verify_pin, userptr)
    return CURLE_OK


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


cdef void _release_slot(tp_instance *inst) noexcept nogil:
    """A handle of inst is gone (or was never made): its slot under the cap goes to the oldest
    waiter, who opens a handle of its own kind, or is freed. Caller holds inst.lock."""
    cdef tp_waiter *w = inst.wait_head
    if w == NULL:
        inst.nconns -= 1
        return
    inst.wait_head = w.next
    if inst.wait_head == NULL:
        inst.wait_tail = NULL
    w.slot = 1
    pthread_cond_signal(&w.cond)  # under the lock: w (on its owner's stack) is still there


cdef tp_conn *_open(tp_instance *inst, int kind) noexcept nogil:
    """A new handle in a slot the caller holds under the cap; NULL (slot released) on failure."""
    cdef tp_conn *c = _conn_new(inst, kind)
    if c == NULL:
        pthread_mutex_lock(&inst.lock)
        _release_slot(inst)
        pthread_mutex_unlock(&inst.lock)
    return c


cdef tp_conn *_convert(tp_instance *inst, tp_conn *c, int kind) noexcept nogil:
    """c is idle but of the other kind and the cap is reached: close it, open one of `kind` in
    its slot. Happens only when full transfers and framed requests compete at the cap."""
    pthread_mutex_lock(&inst.lock)
    _conn_unlink(inst, c)
    pthread_mutex_unlock(&inst.lock)
    _conn_free(c)
    tp_count(&inst.pool.n_converted)
    return _open(inst, kind)


cdef int _wait(tp_instance *inst, int kind, tp_conn **out, bint for_setup) noexcept nogil:
    """Every handle is busy and the cap is reached, or (for_setup) the background thread is
    connecting one: wait, FIFO, for one to be given back (or a slot to be freed), at most the
    request timeout. A set-up is itself bounded by that timeout and began before this wait,
    so its waiter allows it twice that: the set-up's own outcome, not this wait's, decides.
    Caller holds inst.lock; released on return.
    TP_OK (out set, or NULL after a failed open: TP_ERR_NOMEM), TP_ERR_TIMEOUT, TP_ERR_CLOSED."""
    cdef tp_pool *pool = inst.pool
    cdef tp_waiter w
    cdef tp_waiter *p
    cdef long long limit = pool.timeout_ms * (2 if for_setup else 1)
    cdef long long deadline = tp_now_ms() + limit if limit > 0 else 0
    cdef bint expired = False
    out[0] = NULL
    if tp_load(&pool.closed):  # read under inst.lock: _pool_close wakes waiters under it
        pthread_mutex_unlock(&inst.lock)
        return TP_ERR_CLOSED
    tp_cond_init_mono(&w.cond)
    w.conn = NULL
    w.slot = 0
    w.closed = 0
    w.next = NULL
    if inst.wait_tail != NULL:
        inst.wait_tail.next = &w
    else:
        inst.wait_head = &w
    inst.wait_tail = &w
    tp_count(&pool.n_waits)
    while w.conn == NULL and not w.slot and not w.closed and not expired:
        if deadline:
            expired = tp_cond_wait_until(&w.cond, &inst.lock, deadline)
        else:
            pthread_cond_wait(&w.cond, &inst.lock)
    if w.conn == NULL and not w.slot and not w.closed:
        # timed out, still queued: leave the queue
        if inst.wait_head == &w:
            inst.wait_head = w.next
            p = NULL
        else:
            p = inst.wait_head
            while p.next != &w:
                p = p.next
            p.next = w.next
        if inst.wait_tail == &w:
            inst.wait_tail = p
    pthread_mutex_unlock(&inst.lock)
    pthread_cond_destroy(&w.cond)
    if w.conn != NULL:
        out[0] = w.conn if w.conn.framed == kind else _convert(inst, w.conn, kind)
    elif w.slot:
        out[0] = _open(inst, kind)
    elif w.closed:
        return TP_ERR_CLOSED
    else:
        return TP_ERR_TIMEOUT
    return TP_OK if out[0] != NULL else TP_ERR_NOMEM


cdef int _borrow(tp_instance *inst, int kind, tp_conn **out) noexcept nogil:
    """An idle handle of `kind`; else a new one while under the cap; else an idle one of the
    other kind, reopened as `kind`; else wait (_wait). TP_OK or TP_ERR_*."""
    cdef tp_conn *c
    pthread_mutex_lock(&inst.lock)
    c = inst.free_list[kind]
    if c != NULL:
        inst.free_list[kind] = c.next_free
        pthread_mutex_unlock(&inst.lock)
        out[0] = c
        return TP_OK
    if inst.nconns < inst.cap:
        if kind == CONN_FRAMED and _waiters_fewer_than(inst, inst.bg_connecting):
            # A connection the background thread is setting up is ready sooner than one made
            # from scratch, and a one-shot process pays for one TLS handshake, not two.
            return _wait(inst, kind, out, True)
        inst.nconns += 1
        pthread_mutex_unlock(&inst.lock)
        out[0] = _open(inst, kind)
        return TP_OK if out[0] != NULL else TP_ERR_NOMEM
    c = inst.free_list[1 - kind]
    if c != NULL:
        inst.free_list[1 - kind] = c.next_free
        pthread_mutex_unlock(&inst.lock)
        out[0] = _convert(inst, c, kind)
        return TP_OK if out[0] != NULL else TP_ERR_NOMEM
    return _wait(inst, kind, out, False)


cdef bint _waiters_fewer_than(tp_instance *inst, int n) noexcept nogil:
    """Caller holds inst.lock."""
    cdef tp_waiter *w = inst.wait_head
    while w != NULL and n > 0:
        n -= 1
        w = w.next
    return n > 0


cdef void _give_back(tp_instance *inst, tp_conn *c, bint refill) noexcept nogil:
    """Hands c to the oldest waiter, or puts it on its idle list. refill: a framed handle that
    lost its connection asks the background thread to reconnect it while it sits idle (not
    after a background set-up itself failed: that would retry in a loop)."""
    cdef tp_waiter *w
    cdef tp_pool *pool = inst.pool
    pthread_mutex_lock(&inst.lock)
    if c.bg_setup:
        c.bg_setup = 0
        inst.bg_connecting -= 1
    w = inst.wait_head
    if w == NULL:
        c.setup_rc = CURLE_OK  # a later caller connects afresh
    if w != NULL:
        inst.wait_head = w.next
        if inst.wait_head == NULL:
            inst.wait_tail = NULL
        w.conn = c
        pthread_cond_signal(&w.cond)  # under the lock: w (on its owner's stack) is still there
        pthread_mutex_unlock(&inst.lock)
        return
    c.next_free = inst.free_list[c.framed]
    inst.free_list[c.framed] = c
    pthread_mutex_unlock(&inst.lock)
    if refill and c.framed and c.sock < 0 and pool.threads_allowed and not g_probe_failed \
            and tp_load(&inst.up) and not tp_load(&pool.closed):
        tp_store(&inst.setup_wanted, 1)
        _bg_kick()


cdef void _wake_waiters(tp_instance *inst) noexcept nogil:
    """The pool is closed: every waiter of inst returns TP_ERR_CLOSED."""
    cdef tp_waiter *w
    pthread_mutex_lock(&inst.lock)
    w = inst.wait_head
    inst.wait_head = NULL
    inst.wait_tail = NULL
    while w != NULL:
        w.closed = 1
        pthread_cond_signal(&w.cond)
        w = w.next  # read before unlocking: the waiter leaves only after we release the lock
    pthread_mutex_unlock(&inst.lock)


# ---------------------------------------------------------------- pool lifetime

cdef void _pool_ref(tp_pool *pool) noexcept nogil:
    tp_refs_add(&pool.refs, 1)


cdef void _pool_unref(tp_pool *pool) noexcept nogil:
    if tp_refs_add(&pool.refs, -1) == 0:
        _pool_free(pool)


cdef void _pool_free(tp_pool *pool) noexcept nogil:
    # In a forked child the handles are leaked on purpose: curl_easy_cleanup would send TLS
    # close_notify through a socket the parent still uses (its fds were closed already by
    # tp_after_fork_child, and their numbers may have been reused since).
    cdef int i
    cdef tp_instance *inst
    cdef tp_conn *c
    cdef tp_conn *nxt
    for i in range(pool.ninstances):
        inst = &pool.instances[i]
        if not pool.forked:
            c = inst.all_list
            while c != NULL:
                nxt = c.next_all
                _conn_free(c)
                c = nxt
            if inst.probe != NULL:
                _conn_free(inst.probe)
        pthread_mutex_destroy(&inst.lock)
        free(inst.url)
        free(inst.origin_path)
        free(inst.host_line)
        free(inst.pins)
        free(inst.cacert)
    free(pool.instances)
    free(pool)


cdef void _pool_close(tp_pool *pool) noexcept nogil:
    """The owner's close: no new requests, waiters fail; the last reference frees the memory."""
    global g_registry
    cdef int i
    cdef tp_light *h
    cdef bint last
    if pool.forked:
        # A forked child's inherited pool, already off the registry (tp_after_fork_child). g_lock
        # must not be taken: the pool may be dropped from another atfork child handler, before
        # ours released what _atfork_prepare took.
        tp_store(&pool.closed, 1)
        _pool_unref(pool)
        return
    pthread_mutex_lock(&g_lock)
    tp_store(&pool.closed, 1)
    if pool.registered:
        pool.registered = 0
        if pool.reg_prev != NULL:
            pool.reg_prev.reg_next = pool.reg_next
        else:
            g_registry = pool.reg_next
        if pool.reg_next != NULL:
            pool.reg_next.reg_prev = pool.reg_prev
    # A light-mode handle of an adopted pool must not reach it once its owner let it go.
    h = g_light
    while h != NULL:
        if h.pool == pool:
            h.pool = NULL
        h = h.next
    last = g_registry == NULL and g_probe_started
    pthread_mutex_unlock(&g_lock)
    for i in range(pool.ninstances):
        _wake_waiters(&pool.instances[i])
    _pool_unref(pool)
    if last:
        # No pool left to serve (C_Finalize): the thread ends, joined, not left running into
        # the process's exit.
        _bg_stop(False)


cdef void _pool_register(tp_pool *pool) noexcept nogil:
    global g_registry
    pthread_mutex_lock(&g_lock)
    pool.reg_next = g_registry
    if g_registry != NULL:
        g_registry.reg_prev = pool
    g_registry = pool
    pool.registered = 1
    pthread_mutex_unlock(&g_lock)


# ---------------------------------------------------------------- pool construction

cdef struct spec_reader:      # the unread rest of a pool_spec blob
    const unsigned char *p
    size_t left


cdef const unsigned char *_take(spec_reader *r, size_t n) noexcept nogil:
    """The next n bytes, or NULL when fewer are left."""
    cdef const unsigned char *p = r.p
    if n > r.left:
        return NULL
    r.p += n
    r.left -= n
    return p


cdef char *_dup(const unsigned char *p, size_t n) noexcept nogil:
    cdef char *d = <char *>malloc(n + 1)
    if d != NULL:
        memcpy(d, p, n)
        d[n] = 0
    return d


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


cdef bint _spec_instance(spec_reader *r, tp_instance *inst) noexcept nogil:
    """Reads one instance's settings into inst. False on a malformed record or no memory."""
    cdef const unsigned char *h = _take(r, SPEC_INST)
    cdef const unsigned char *url
    cdef const unsigned char *pins
    cdef const unsigned char *cacert
    cdef uint32_t flags
    cdef uint32_t npins
    cdef uint32_t url_len
    cdef uint32_t cacert_len
    if h == NULL:
        return False
    flags = tp_le32(h + 4)
    npins = tp_le32(h + 8)
    url_len = tp_le32(h + 12)
    cacert_len = tp_le32(h + 16)
    inst.cap = <int>tp_le32(h)
    if inst.cap < 1 or flags & ~<uint32_t>(SPEC_INSECURE | SPEC_CACERT) \
            or (cacert_len and not flags & SPEC_CACERT) or npins > r.left // PIN_LEN \
            or npins > <uint32_t>INT_MAX:
        return False
    url = _take(r, url_len)
    pins = _take(r, <size_t>npins * PIN_LEN)
    cacert = _take(r, cacert_len)
    # C strings from here on: an embedded NUL would make them mean something else
    if url == NULL or pins == NULL or cacert == NULL or memchr(url, 0, url_len) != NULL \
            or memchr(cacert, 0, cacert_len) != NULL:
        return False
    inst.insecure = flags & SPEC_INSECURE != 0
    inst.url = _dup(url, url_len)
    if inst.url == NULL:
        return False
    inst.url_len = url_len
    if npins:
        inst.pins = <unsigned char *>_dup(pins, <size_t>npins * PIN_LEN)
        if inst.pins == NULL:
            return False
        inst.npins = <int>npins
    if flags & SPEC_CACERT:
        inst.cacert = _dup(cacert, cacert_len)
        if inst.cacert == NULL:
            return False
    return _split_url(inst)


cdef bint _spec_build(tp_pool *pool, spec_reader *r, int count, int *failed) noexcept nogil:
    """Sets up pool.instances[0:count] from r; on False, _pool_free releases what was made."""
    cdef tp_instance *inst
    cdef tp_conn *c
    cdef int i
    for i in range(count):
        inst = &pool.instances[i]
        pthread_mutex_init(&inst.lock, NULL)
        pool.ninstances += 1
        inst.pool = pool
        inst.up = 1
        inst.last_check_ms = -HEALTH_INTERVAL_MS
        if not _spec_instance(r, inst):
            return False
        # Configure one handle now, of the kind the hot path uses: a bad option fails here,
        # not on the first C_Sign; with threads it is the one the background connects.
        c = _conn_new(inst, CONN_FRAMED if inst.framing else CONN_FULL)
        if c == NULL:
            failed[0] = i
            return False
        inst.nconns = 1
        _give_back(inst, c, False)
        inst.setup_wanted = inst.framing and pool.threads_allowed
    return r.left == 0


cdef tp_pool *_pool_from_spec(const unsigned char *spec, size_t n, int threads_allowed,
                              int *failed) noexcept nogil:
    """The one constructor of pools: builds one from a pool_spec() blob, registers it and, with
    threads, has the background thread connect it. NULL when the blob is malformed or memory
    runs out (*failed = -1), or when instance *failed's libcurl handle cannot be set up. Reads
    nothing outside spec[0:n]."""
    cdef spec_reader r
    cdef const unsigned char *h
    cdef tp_pool *pool
    cdef uint16_t flags
    cdef uint32_t count
    failed[0] = -1
    if spec == NULL:
        return NULL
    r.p = spec
    r.left = n
    h = _take(&r, SPEC_HEAD)
    if h == NULL or memcmp(h, TP_SPEC_MAGIC, 4) != 0 or tp_le16(h + 4) != SPEC_VERSION:
        return NULL
    flags = tp_le16(h + 6)
    count = tp_le32(h + 8)
    # count is bounded by what the blob can hold before anything is allocated for it
    if flags & ~<uint16_t>SPEC_KEEPALIVE or count == 0 or count > r.left // SPEC_INST:
        return NULL
    pool = <tp_pool *>calloc(1, sizeof(tp_pool))
    if pool == NULL:
        return NULL
    pool.instances = <tp_instance *>calloc(count, sizeof(tp_instance))
    if pool.instances == NULL:
        free(pool)
        return NULL
    pool.refs = 1
    pool.threads_allowed = threads_allowed != 0
    pool.retries = <int>tp_le32(h + 12)
    pool.delay_ms = tp_le64(h + 16)
    _set_timeouts(pool, tp_le64(h + 24))
    pool.keepalive = flags & SPEC_KEEPALIVE != 0
    pool.keepidle = tp_le64(h + 32)
    pool.keepintvl = tp_le64(h + 40)
    pool.keepcnt = <int>tp_le32(h + 48)
    pool.maxage_conn = tp_le64(h + 52)
    if pool.retries < 0 or (not pool.keepalive and (pool.keepidle or pool.keepintvl or pool.keepcnt)) \
            or not _spec_build(pool, &r, <int>count, failed):
        _pool_free(pool)
        return NULL
    _pool_register(pool)
    if pool.threads_allowed:
        _bg_kick()  # warm-up: the first signature does not pay the TLS handshake
    return pool


cdef void _set_timeouts(tp_pool *pool, int64_t configured_ms) noexcept nogil:
    """timeout_seconds for every request, or (unset: <= 0) the defaults; see _transport.pxd."""
    if configured_ms > 0:
        pool.timeout_ms = <long>configured_ms
        pool.slow_timeout_ms = <long>configured_ms
    else:
        pool.timeout_ms = DEFAULT_TIMEOUT_MS
        pool.slow_timeout_ms = DEFAULT_SLOW_TIMEOUT_MS
    pool.connect_timeout_ms = min(pool.timeout_ms, <long>CONNECT_TIMEOUT_MS)


cdef tp_pool *_adopt(const unsigned char *spec, size_t n, int threads_allowed) noexcept nogil:
    """A parked pool built from this very blob with the same threads flag, now the caller's;
    NULL when there is none. A pool a forked child inherited is closed, never adopted."""
    cdef tp_light *h
    cdef tp_pool *pool = NULL
    pthread_mutex_lock(&g_lock)
    h = g_light
    while h != NULL:
        if not h.adopted and h.pool != NULL and not tp_load(&h.pool.closed) \
                and h.threads_allowed == (threads_allowed != 0) and h.spec_len == n \
                and memcmp(h.spec, spec, n) == 0:
            h.adopted = True
            free(h.spec)
            h.spec = NULL
            pool = h.pool
            break
        h = h.next
    pthread_mutex_unlock(&g_lock)
    return pool


# ---------------------------------------------------------------- health

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


cdef tp_conn *_probe_conn(tp_instance *inst) noexcept nogil:
    # Only the thread that won inst.probing gets here, so creation needs no lock.
    if inst.probe == NULL:
        inst.probe = _conn_new(inst, CONN_PROBE)
    return inst.probe


cdef bint _operational(tp_conn *probe, CURLcode rc) noexcept nogil:
    """Whether a finished health check found the instance Operational: /health/ready answers
    200 then, 412 when it is Locked or Unprovisioned (keyfender `handler_health.ml`), which
    serves no key operation and so stays out of rotation."""
    cdef long status = 0
    return rc == CURLE_OK and curl_easy_getinfo(probe.easy, CURLINFO_RESPONSE_CODE, &status) \
        == CURLE_OK and status == 200


cdef bint _claim_check(tp_instance *inst, long long now) noexcept nogil:
    """Whether the caller may health-check inst now (then it owns inst.probing)."""
    if tp_load(&inst.up) or now - tp_load_ll(&inst.last_check_ms) < HEALTH_INTERVAL_MS:
        return False
    if not tp_cas(&inst.probing, 0, 1):
        return False
    tp_store_ll(&inst.last_check_ms, now)
    return True


cdef void _mark_up(tp_instance *inst) noexcept nogil:
    tp_store(&inst.up, 1)


cdef void _mark_down(tp_instance *inst) noexcept nogil:
    if tp_swap(&inst.up, 0) and inst.pool.threads_allowed:
        _bg_kick()


cdef void _inline_checks(tp_pool *pool) noexcept nogil:
    """Without a probe thread: re-check up to INLINE_CHECKS_MAX down instances, 1 s each."""
    cdef int i
    cdef int checks = 0
    cdef long long now = tp_now_ms()
    cdef tp_instance *inst
    cdef tp_conn *c
    for i in range(pool.ninstances):
        if checks == INLINE_CHECKS_MAX:
            return
        inst = &pool.instances[i]
        if not _claim_check(inst, now):
            continue
        checks += 1
        tp_count(&pool.n_health_checks)
        c = _probe_conn(inst)
        if c != NULL and _operational(c, curl_easy_perform(c.easy)):
            _mark_up(inst)
        tp_store(&inst.probing, 0)


cdef int _abortable(tp_conn *c) noexcept nogil:
    """What the background thread does with c ends when it is asked to stop (_bg_abort)."""
    cdef int rc = 0
    rc |= curl_easy_setopt(c.easy, CURLOPT_NOPROGRESS, <long>0)
    rc |= curl_easy_setopt(c.easy, CURLOPT_XFERINFOFUNCTION, _bg_abort)
    rc |= curl_easy_setopt(c.easy, CURLOPT_XFERINFODATA, <void *>c)
    return rc


cdef int _bg_abort(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                   curl_off_t ulnow) noexcept nogil:
    # libcurl calls this each time it works on the transfer, at least once a second: a
    # background set-up (a framed handle's connect) or probe ends there when the thread is
    # asked to stop. A caller's own connect (bg_setup 0) never does.
    cdef tp_conn *c = <tp_conn *>clientp
    return (c.bg_setup or c == c.inst.probe) and tp_load(&g_bg_stop)


cdef void _bg_kick() noexcept nogil:
    """An instance went down or wants a connection set up: wake the background thread, starting
    it on first use. Only live pools need it: with none registered nothing starts."""
    global g_probe_multi, g_probe_started, g_probe_failed, g_bg_kick_lost
    pthread_mutex_lock(&g_lock)
    if tp_load(&g_bg_stop):
        g_bg_kick_lost = 1
        pthread_mutex_unlock(&g_lock)
        return
    if not g_probe_started and not g_probe_failed and g_registry != NULL:
        g_probe_multi = curl_multi_init()
        if g_probe_multi != NULL and pthread_create(&g_bg_thread, NULL, _bg_main, NULL) == 0:
            g_probe_started = 1
        else:
            g_probe_failed = 1
    pthread_cond_signal(&g_probe_cond)
    if g_probe_started:
        curl_multi_wakeup(g_probe_multi)  # in case it is polling probe sockets
    pthread_mutex_unlock(&g_lock)


cdef bint _bg_halt(bint always) noexcept nogil:
    """Under g_bg_join_lock: ends the background thread and returns once it is gone, always or
    only when no live pool is left. A set-up or probe in progress is aborted (_bg_abort: at its
    next step, within a second). No thread starts again until _bg_resume (kicks meanwhile are
    noted). True when one was running. Never called by the thread itself."""
    global g_probe_started, g_probe_multi
    cdef pthread_t tid
    cdef bint joining
    pthread_mutex_lock(&g_lock)
    joining = g_probe_started and (always or g_registry == NULL)
    if joining or always:
        tp_store(&g_bg_stop, 1)
    if joining:
        tid = g_bg_thread
        pthread_cond_signal(&g_probe_cond)
        curl_multi_wakeup(g_probe_multi)  # the thread frees it only after seeing g_bg_stop
    pthread_mutex_unlock(&g_lock)
    if joining:
        pthread_join(tid, NULL)
        pthread_mutex_lock(&g_lock)
        g_probe_started = 0
        g_probe_multi = NULL
        pthread_mutex_unlock(&g_lock)
    return joining


cdef void _bg_resume(bint restart) noexcept nogil:
    """Under g_bg_join_lock, after _bg_halt: threads may start again. One does now when
    `restart` or a kick was turned away meanwhile, and a live pool is left to serve."""
    global g_bg_kick_lost
    pthread_mutex_lock(&g_lock)
    tp_store(&g_bg_stop, 0)
    restart = (restart or g_bg_kick_lost) and g_registry != NULL
    g_bg_kick_lost = 0
    pthread_mutex_unlock(&g_lock)
    if restart:
        _bg_kick()


cdef void _bg_stop(bint for_good) noexcept nogil:
    """The background thread ends: when the last pool closes (C_Finalize), and at process exit
    (for_good: none starts again, down instances are re-checked inline)."""
    global g_probe_failed
    pthread_mutex_lock(&g_bg_join_lock)
    if for_good:
        pthread_mutex_lock(&g_lock)
        g_probe_failed = 1
        pthread_mutex_unlock(&g_lock)
    _bg_halt(for_good)
    _bg_resume(False)
    pthread_mutex_unlock(&g_bg_join_lock)


cdef void _at_exit() noexcept nogil:
    # The process exits with pools still open (no C_Finalize): the thread must not be inside
    # libcurl or OpenSSL while OpenSSL's own exit handler frees their state.
    _bg_stop(True)


# ---------------------------------------------------------------- background connection set-up
# libcurl cannot hand a connection made inside one multi handle to another easy handle's
# curl_easy_send/recv (removing a CONNECT_ONLY handle from a multi handle closes its connection),
# so the background thread sets a framed handle up with that handle's own connect, between two
# turns of its multi loop. A set-up is bounded by the request timeout; probes in flight meanwhile
# are finished on the next turn (their own 1 s timeouts still apply).

cdef tp_instance *_setup_claim() noexcept nogil:
    """Under g_lock: an instance of a live pool that wants a set-up, its pool referenced for the
    caller; NULL when there is none."""
    cdef tp_pool *pool = g_registry
    cdef tp_instance *inst
    cdef int i
    while pool != NULL:
        if pool.threads_allowed and not tp_load(&pool.closed):
            for i in range(pool.ninstances):
                inst = &pool.instances[i]
                if tp_load(&inst.setup_wanted):
                    tp_store(&inst.setting_up, 1)
                    tp_store(&inst.setup_wanted, 0)
                    _pool_ref(pool)
                    return inst
        pool = pool.reg_next
    return NULL


cdef void _setup(tp_instance *inst) noexcept nogil:
    """On the background thread: connects inst's idle framed handles that have no connection.
    A caller finding no idle handle waits for one being connected here (_borrow) rather than
    open another; idle ones still unconnected it may borrow and connect itself."""
    cdef tp_pool *pool = inst.pool
    cdef tp_conn *c
    cdef tp_conn *prev
    cdef CURLcode rc
    while tp_load(&inst.up) and not tp_load(&pool.closed) and not tp_load(&g_bg_stop):
        pthread_mutex_lock(&inst.lock)
        prev = NULL
        c = inst.free_list[CONN_FRAMED]
        while c != NULL and c.sock >= 0:
            prev = c
            c = c.next_free
        if c != NULL:
            if prev != NULL:
                prev.next_free = c.next_free
            else:
                inst.free_list[CONN_FRAMED] = c.next_free
            c.bg_setup = 1
            inst.bg_connecting += 1
        pthread_mutex_unlock(&inst.lock)
        if c == NULL:
            break
        rc = _fr_connect(c)
        if rc == CURLE_OK:
            c.last_used_ms = tp_now_ms()
            tp_count(&pool.n_background_setups)
        # Aborted (the thread was stopped) is no failure of the instance: a caller waiting for
        # this handle connects it itself.
        c.setup_rc = CURLE_OK if rc == CURLE_ABORTED_BY_CALLBACK else rc
        _give_back(inst, c, False)
        if rc != CURLE_OK:
            break  # the next request finds out why and marks the instance down
    tp_store(&inst.setting_up, 0)


cdef int _probe_scan(CURLM *multi, int *pending) noexcept nogil:
    """Under g_lock: start a check of every down instance that is due. Returns how many."""
    cdef tp_pool *pool = g_registry
    cdef tp_instance *inst
    cdef tp_conn *c
    cdef long long now = tp_now_ms()
    cdef int i
    cdef int added = 0
    pending[0] = 0
    while pool != NULL:
        if pool.threads_allowed and not tp_load(&pool.closed):
            for i in range(pool.ninstances):
                inst = &pool.instances[i]
                if tp_load(&inst.up):
                    continue
                pending[0] += 1
                if not _claim_check(inst, now):
                    continue
                c = _probe_conn(inst)
                if c == NULL or curl_multi_add_handle(multi, c.easy) != CURLM_OK:
                    tp_store(&inst.probing, 0)
                    continue
                _pool_ref(pool)  # the pool outlives its in-flight probe even if closed
                tp_count(&pool.n_health_checks)
                added += 1
        pool = pool.reg_next
    return added


cdef void *_bg_main(void *arg) noexcept nogil:
    cdef CURLM *multi = g_probe_multi
    cdef CURLMsg *msg
    cdef tp_conn *c
    cdef void *priv
    cdef int active = 0
    cdef int pending = 0
    cdef int running = 0
    cdef int left = 0
    cdef tp_instance *inst
    cdef tp_pool *pool
    pthread_mutex_lock(&g_lock)
    while True:
        if tp_load(&g_bg_stop):
            if active == 0:
                break
            inst = NULL  # ending: no new work; the probes in flight end (aborted) first
        else:
            inst = _setup_claim()
        if inst != NULL:
            pool = inst.pool
            pthread_mutex_unlock(&g_lock)
            _setup(inst)
            _pool_unref(pool)
            pthread_mutex_lock(&g_lock)
            continue
        if not tp_load(&g_bg_stop):
            active += _probe_scan(multi, &pending)
        if active == 0 and pending == 0:
            pthread_cond_wait(&g_probe_cond, &g_lock)
            continue
        pthread_mutex_unlock(&g_lock)
        curl_multi_perform(multi, &running)
        msg = curl_multi_info_read(multi, &left)
        while msg != NULL:
            if msg.msg == CURLMSG_DONE:
                curl_easy_getinfo(msg.easy_handle, CURLINFO_PRIVATE, &priv)
                c = <tp_conn *>priv
                curl_multi_remove_handle(multi, msg.easy_handle)
                if _operational(c, msg.data.result):
                    _mark_up(c.inst)
                tp_store(&c.inst.probing, 0)
                active -= 1
                _pool_unref(c.inst.pool)
            msg = curl_multi_info_read(multi, &left)
        # Waits for probe sockets, or sleeps when only not-yet-due instances are down.
        if active or not tp_load(&g_bg_stop):
            curl_multi_poll(multi, NULL, 0, 250, NULL)
        pthread_mutex_lock(&g_lock)
    pthread_mutex_unlock(&g_lock)
    curl_multi_cleanup(multi)
    return NULL


# ---------------------------------------------------------------- framed exchanges

cdef struct fr_head:          # what the framing needs from a response head
    long status
    long long content_length  # -1: none
    bint chunked              # any Transfer-Encoding
    bint close                # Connection: close, or HTTP/1.0 without keep-alive
    const char *ctype         # Content-Type value inside the receive buffer (not terminated)
    size_t ctype_len


cdef int _fr_setup(tp_conn *c) noexcept nogil:
    """A framed handle's own options: libcurl connects (TLS included) and stops. 0 = success."""
    cdef int rc = 0
    rc |= curl_easy_setopt(c.easy, CURLOPT_CONNECT_ONLY, <long>1)
    rc |= curl_easy_setopt(c.easy, CURLOPT_URL, <const char *>c.url)
    return rc | _abortable(c)


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


cdef bint _resendable(int method, const char *path) noexcept nogil:
    """Whether sending the request twice, to one instance or to two, changes nothing: such
    requests fail over to another instance whatever `retries` says, and only they are framed
    (a fallback repeats the request). GET is safe by definition; of the POSTs, NetHSM's
    sign/decrypt/encrypt and /random change nothing. Generation, import, deletion, moves and
    user changes are not: see tp_request."""
    cdef size_t n
    if method == TP_GET:
        return True
    if method != TP_POST:
        return False
    n = strlen(path)
    return ((n > 5 and memcmp(path + n - 5, b"/sign", 5) == 0)
            or (n > 8 and memcmp(path + n - 8, b"/decrypt", 8) == 0)
            or (n > 8 and memcmp(path + n - 8, b"/encrypt", 8) == 0)
            or strcmp(path, b"/random") == 0)


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


# ---------------------------------------------------------------- requests

cdef struct tp_call:          # one tp_request's request, for each of its attempts
    int method
    const char *path
    const char *auth_header
    const char *body
    size_t body_len
    const char *content_type
    bint resendable           # _resendable(method, path)
    long timeout_ms


cdef enum:                       # how an attempt ended (_attempt)
    OUT_ANSWER = 0               # an HTTP response, res.status
    OUT_UNREACHED = 1            # no response, and the request never left (full transfers only)
    OUT_LOST = 2                 # no response, and the request may have reached the HSM
    OUT_BUSY = 3                 # nothing sent: every connection of the instance stayed busy
    OUT_LOCAL = 4                # out of memory, pool closed: no other instance changes that

cdef enum:                       # what the call does next (_next_step)
    STEP_DONE = 0
    STEP_FAILOVER = 1            # at once, on another instance, without using a retry
    STEP_RETRY = 2               # after delay_seconds, if one of `retries` is left


cdef void _borrow_failed(tp_instance *inst, int err, char *detail, size_t size) noexcept nogil:
    # The instance did nothing wrong: it is not marked down (another instance may take the
    # call, see _next_step).
    if err == TP_ERR_TIMEOUT:
        _copy_str(detail, size, b"every connection to this instance stayed busy for the whole "
                                b"timeout (max_idle_connections caps them)")
    elif err == TP_ERR_NOMEM:
        _copy_str(detail, size, b"cannot set up a libcurl handle")


cdef int _map_error(CURLcode rc) noexcept nogil:
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


cdef bint _refused(long status) noexcept nogil:
    """An answer that says the instance cannot serve now (412: Locked or not provisioned;
    5xx), not something about the request."""
    return status == 412 or status >= 500


cdef int _least_busy(tp_pool *pool, int exclude) noexcept nogil:
    """The instance in rotation, other than `exclude`, with the fewest calls in flight; ties go
    round robin. -1 when there is none. Round robin alone would send half the calls to an
    instance that stalled, until every thread waits there; this way the others keep going."""
    cdef int n = pool.ninstances
    cdef int start = <int>(tp_rr_next(&pool.rr) % <unsigned int>n)
    cdef int best = -1
    cdef int best_load = 0
    cdef int load
    cdef int k
    cdef int j
    for k in range(n):
        j = (start + k) % n
        if j == exclude or not tp_load(&pool.instances[j].up):
            continue
        load = tp_load(&pool.instances[j].inflight)
        if best < 0 or load < best_load:
            best = j
            best_load = load
    return best


cdef int _pick(tp_pool *pool) noexcept nogil:
    """Where a call starts: the least busy instance in rotation; when none is, round robin over
    all of them (a request is tried anyway rather than waiting for a probe)."""
    cdef int i = _least_busy(pool, -1)
    return i if i >= 0 else <int>(tp_rr_next(&pool.rr) % <unsigned int>pool.ninstances)


cdef int _next_step(tp_pool *pool, const tp_call *call, int outcome, long status,
                    bint can_fail_over) noexcept nogil:
    """The retry and failover policy, in one place: what a call does after an attempt.

    An instance-level failure — no answer (refused, reset, TLS, timeout), 412, 5xx, or every
    connection busy — moves the request to another available instance at once, without using
    a retry, when sending it twice is harmless (call.resendable) or it provably was not
    executed (never sent, 412, busy). Otherwise, and once no instance is left, `retries`
    decides: no answer, 5xx (when the slot has another instance) and 429 are tried again; a
    412 from the last instance, a 5xx from the only one, a busy instance are the answer."""
    cdef bint answer = outcome == OUT_ANSWER
    cdef bint locked = answer and status == 412
    if outcome == OUT_LOCAL or (answer and status != 429 and not _refused(status)):
        return STEP_DONE
    if answer and status == 429:
        return STEP_RETRY  # the limit is the caller's, not the instance's: wait
    if can_fail_over and (call.resendable or locked or outcome == OUT_UNREACHED
                          or outcome == OUT_BUSY):
        return STEP_FAILOVER
    if locked or outcome == OUT_BUSY or (answer and pool.ninstances == 1):
        return STEP_DONE
    return STEP_RETRY


cdef void _mark(tp_pool *pool, tp_instance *inst, int outcome, long status) noexcept nogil:
    """Out of rotation after an instance-level failure (a 412 or 5xx only when there is a
    rotation to leave), back in after an answer that shows it serving."""
    if outcome == OUT_UNREACHED or outcome == OUT_LOST:
        _mark_down(inst)
    elif outcome == OUT_ANSWER:
        if not _refused(status):
            _mark_up(inst)
        elif pool.ninstances > 1:
            _mark_down(inst)


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


cdef void _copy_str(char *dst, size_t size, const char *src) noexcept nogil:
    cdef size_t n = strlen(src) if src != NULL else 0
    if n >= size:
        n = size - 1
    memcpy(dst, src, n)
    dst[n] = 0


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


cdef int _exchange(tp_instance *inst, tp_conn **cp, const tp_call *call, tp_buf *out,
                   long *status, tp_result *res, int *rc) noexcept nogil:
    """The request on the borrowed handle *cp: framed, or as a full transfer, to which a
    framed exchange the framing cannot take falls back on a full handle (then *cp changes).
    TP_OK with the CURLcode in *rc, or the TP_ERR_* of borrowing that handle."""
    cdef tp_conn *c = cp[0]
    cdef int err
    rc[0] = FR_FALLBACK
    if c.framed:
        rc[0] = _fr_request(c, call.method, call.path, call.auth_header, call.content_type,
                            call.body, call.body_len, out, status, res.content_type,
                            sizeof(res.content_type))
        if rc[0] != FR_FALLBACK:
            return TP_OK
        tp_count(&inst.pool.n_fallbacks)
        _give_back(inst, c, True)
        out.len = 0
        err = _borrow(inst, CONN_FULL, cp)
        if err != TP_OK:
            return err
    rc[0] = _full_transfer(cp[0], call, out, status, res)
    return TP_OK


cdef int _attempt(tp_pool *pool, int i, const tp_call *call, tp_buf *out, tp_result *res,
                  int *outcome) noexcept nogil:
    """One try of the call on instance i, which it marks up or down: TP_OK (an answer, in
    res.status) or TP_ERR_*, and how it ended in *outcome (OUT_*)."""
    cdef tp_instance *inst = &pool.instances[i]
    cdef tp_conn *c = NULL
    cdef long status = 0
    cdef int rc = CURLE_OK
    cdef int err
    res.instance = i
    res.status = 0
    res.content_type[0] = 0
    out.len = 0  # only the answer of the last attempt is returned
    tp_refs_add(&inst.inflight, 1)
    err = _borrow(inst, CONN_FRAMED if call.resendable and inst.framing else CONN_FULL, &c)
    if err == TP_OK:
        res.attempts += 1
        err = _exchange(inst, &c, call, out, &status, res, &rc)
    if err != TP_OK:
        _borrow_failed(inst, err, res.detail, sizeof(res.detail))
        outcome[0] = OUT_BUSY if err == TP_ERR_TIMEOUT else OUT_LOCAL
    elif rc == CURLE_OK:
        res.status = status
        res.detail[0] = 0
        outcome[0] = OUT_ANSWER
    else:
        if c.pin_mismatch:
            _pin_mismatch_detail(c, res.detail, sizeof(res.detail))
        else:
            _copy_str(res.detail, sizeof(res.detail), <const char *>c.errbuf if c.errbuf[0]
                      else curl_easy_strerror(<CURLcode>rc))
        err = _map_error(<CURLcode>rc)
        if err == TP_ERR_NOMEM:
            outcome[0] = OUT_LOCAL
        elif not c.framed and _never_sent(c.easy, <CURLcode>rc):
            outcome[0] = OUT_UNREACHED
        else:
            outcome[0] = OUT_LOST
    if c != NULL:
        # Up or down before the handle goes back: a lost connection is refilled in the
        # background only while the instance is up.
        _mark(pool, inst, outcome[0], status)
        _give_back(inst, c, True)
    tp_refs_add(&inst.inflight, -1)
    return err


cdef long _retry_delay(tp_pool *pool, long status) noexcept nogil:
    if status == 429 and pool.delay_ms < RETRY_429_MIN_MS:
        return RETRY_429_MIN_MS
    return pool.delay_ms


cdef int tp_request(tp_pool *pool, int method, const char *path, const char *auth_header,
                    const char *body, size_t body_len, const char *content_type,
                    tp_buf *out, tp_result *res) noexcept nogil:
    cdef tp_call call
    cdef int i
    cdef int j
    cdef int err
    cdef int outcome
    cdef int step
    cdef int retries_left
    cdef int failovers_left
    cdef long delay

    res.status = 0
    res.error = TP_ERR_CLOSED
    res.instance = -1
    res.content_type[0] = 0
    res.attempts = 0
    res.detail[0] = 0
    out.len = 0
    if pool == NULL or tp_load(&pool.closed):
        return res.error
    if method < TP_GET or method > TP_DELETE or path == NULL:
        res.error = TP_ERR_CONNECT
        _copy_str(res.detail, sizeof(res.detail), b"invalid method or path")
        return res.error
    _pool_ref(pool)
    call.method = method
    call.path = path
    call.auth_header = auth_header
    call.body = body
    call.body_len = body_len
    call.content_type = content_type
    call.resendable = _resendable(method, path)
    call.timeout_ms = pool.timeout_ms if call.resendable else pool.slow_timeout_ms

    tp_count(&pool.n_requests)
    if not pool.threads_allowed or g_probe_failed:
        _inline_checks(pool)

    retries_left = pool.retries
    failovers_left = pool.ninstances - 1  # each instance once at most, then `retries`
    i = _pick(pool)
    while True:
        err = _attempt(pool, i, &call, out, res, &outcome)
        step = _next_step(pool, &call, outcome, res.status, failovers_left > 0)
        if step == STEP_FAILOVER:
            j = _least_busy(pool, i)
            if j < 0:
                step = _next_step(pool, &call, outcome, res.status, False)
        if step == STEP_DONE or (step == STEP_RETRY and retries_left == 0):
            break
        if step == STEP_FAILOVER:
            failovers_left -= 1
            tp_count(&pool.n_failovers)
            i = j
        else:
            retries_left -= 1
            tp_count(&pool.n_retries)
            delay = _retry_delay(pool, res.status)
            if delay > 0:
                tp_sleep_ms(delay)
            i = _pick(pool)
        if tp_load(&pool.closed):
            err = TP_ERR_CLOSED
            break

    res.error = err
    _pool_unref(pool)
    return err


cdef void tp_buf_free(tp_buf *b) noexcept nogil:
    free(b.data)
    b.data = NULL
    b.len = 0
    b.cap = 0


cdef const char *tp_instance_url(tp_pool *pool, int instance) noexcept nogil:
    if pool == NULL or instance < 0 or instance >= pool.ninstances:
        return NULL
    return pool.instances[instance].url


# ---------------------------------------------------------------- fork

cdef void _forget_fds(tp_conn *c) noexcept nogil:
    # Closing the child's copy of a socket sends nothing (the parent's copy keeps the
    # connection open) and lets the parent's own close actually end the connection later.
    cdef int i
    for i in range(TP_MAX_FDS):
        if c.fds[i] >= 0:
            fd_close(c.fds[i])
            c.fds[i] = -1


cdef void tp_after_fork_child() noexcept nogil:
    # Runs in the child's only thread: from our pthread_atfork child handler, and again when the
    # ABI's after-fork hook calls it (then the registry is already empty).
    global g_registry, g_probe_multi, g_probe_failed, g_probe_started, g_bg_stop, g_bg_kick_lost
    cdef tp_pool *pool
    cdef tp_pool *nxt
    cdef tp_instance *inst
    cdef tp_conn *c
    cdef tp_light *h
    cdef int i
    # The locks our prepare handler took are released first (once: the ABI's reset, from its
    # own handler, calls this again).
    if _atfork_release():
        pthread_cond_init(&g_probe_cond, NULL)  # its waiter (the probe thread) is gone
    pool = g_registry
    while pool != NULL:
        nxt = pool.reg_next
        tp_store(&pool.closed, 1)
        pool.forked = 1
        pool.registered = 0
        for i in range(pool.ninstances):
            inst = &pool.instances[i]
            # Waiters were threads of the parent: their conditions must never be signalled here.
            inst.wait_head = NULL
            inst.wait_tail = NULL
            c = inst.all_list
            while c != NULL:
                _forget_fds(c)
                c = c.next_all
            if inst.probe != NULL:
                _forget_fds(inst.probe)
        pool = nxt
    g_registry = NULL
    # Light-mode handles stay valid (the loader may still release them): a parked pool, closed
    # and forked above, is still the handle's to free, which p11f_transport_release does without
    # touching the parent's connections. An adopted one belongs to its Pool, whose close no
    # longer takes g_lock (forked): the handle lets go of it now.
    h = g_light
    while h != NULL:
        if h.adopted:
            h.pool = NULL
        h = h.next
    # The background thread does not exist here; its multi handle is abandoned like the
    # handles. Our prepare handler holds its lock: there is nothing to join here.
    g_probe_multi = NULL
    g_probe_failed = 0
    g_probe_started = 0
    g_bg_stop = 0
    g_bg_kick_lost = 0
    pthread_mutex_init(&g_bg_join_lock, NULL)


cdef void _atfork_prepare() noexcept nogil:
    # The background thread ends first: inside libcurl or OpenSSL it may hold their locks
    # (OpenSSL's random generator's, say), which a child's own connections would then wait for
    # forever. The parent starts it again. Then take every lock the transport has, so none is
    # held by a thread that will not exist in the child, and the lists they guard are consistent
    # when the child walks them.
    global g_fork_locked, g_fork_halted
    cdef tp_pool *pool
    cdef int i
    pthread_mutex_lock(&g_bg_join_lock)
    g_fork_halted = _bg_halt(True)
    pthread_mutex_lock(&g_lock)
    pool = g_registry
    while pool != NULL:
        for i in range(pool.ninstances):
            pthread_mutex_lock(&pool.instances[i].lock)
        pool = pool.reg_next
    g_fork_locked = 1


cdef bint _atfork_release() noexcept nogil:
    # Idempotent: in a child, tp_after_fork_child may run more than once (ours, then the
    # ABI's reset, which calls it too).
    global g_fork_locked
    cdef tp_pool *pool = g_registry
    cdef int i
    if not g_fork_locked:
        return False
    g_fork_locked = 0
    while pool != NULL:
        for i in range(pool.ninstances):
            pthread_mutex_unlock(&pool.instances[i].lock)
        pool = pool.reg_next
    pthread_mutex_unlock(&g_lock)
    return True


cdef void _atfork_parent() noexcept nogil:
    _atfork_release()
    _bg_resume(g_fork_halted)
    pthread_mutex_unlock(&g_bg_join_lock)


cdef void _atfork_child() noexcept nogil:
    tp_after_fork_child()


# ---------------------------------------------------------------- light mode
# Called by the C loader with libpython loaded but not initialised (see "Light mode" in
# _transport.pxd): no Python object, no Python API, nothing that needs the module's import.
# Exported under these names by the C block below (the build hides every other symbol).

cdef extern from *:
    """
    static int tp_light_init(void);
    static void *tp_light_open(const unsigned char *spec, size_t len, int threads_allowed);
    static int tp_light_get(void *handle, const char *path, long *status, char *why,
                            size_t why_size);
    static void tp_light_release(void *handle);
    static void tp_fork_prepare(void);
    static void tp_fork_parent(void);
    static void tp_fork_child(void);

    __attribute__((visibility("default")))
    int p11f_transport_init(void) {
        return tp_light_init();
    }
    __attribute__((visibility("default")))
    void p11f_transport_fork_prepare(void) {
        tp_fork_prepare();
    }
    __attribute__((visibility("default")))
    void p11f_transport_fork_parent(void) {
        tp_fork_parent();
    }
    __attribute__((visibility("default")))
    void p11f_transport_fork_child(void) {
        tp_fork_child();
    }
    __attribute__((visibility("default")))
    void *p11f_transport_open(const unsigned char *spec, size_t len, int threads_allowed) {
        return tp_light_open(spec, len, threads_allowed);
    }
    __attribute__((visibility("default")))
    int p11f_transport_get(void *handle, const char *path, long *status, char *why,
                           size_t why_size) {
        return tp_light_get(handle, path, status, why, why_size);
    }
    __attribute__((visibility("default")))
    void p11f_transport_release(void *handle) {
        tp_light_release(handle);
    }
    """


cdef int _light_init "tp_light_init"() noexcept nogil:
    global g_forward_wanted
    g_forward_wanted = True  # only read if the process-wide set-up has not run yet
    if not _global_init():
        return -1
    return 1 if g_forwarded else 0


cdef void _fork_prepare "tp_fork_prepare"() noexcept nogil:
    _atfork_prepare()


cdef void _fork_parent "tp_fork_parent"() noexcept nogil:
    _atfork_parent()


cdef void _fork_child "tp_fork_child"() noexcept nogil:
    _atfork_child()


cdef void *_light_open "tp_light_open"(const unsigned char *spec, size_t n,
                                       int threads_allowed) noexcept nogil:
    global g_light
    cdef tp_light *h
    cdef tp_pool *pool
    cdef int failed
    if not _global_init():
        return NULL
    h = <tp_light *>calloc(1, sizeof(tp_light))
    if h == NULL:
        return NULL
    h.spec = <unsigned char *>malloc(n if n else 1)
    pool = _pool_from_spec(spec, n, threads_allowed, &failed) if h.spec != NULL else NULL
    if pool == NULL:
        free(h.spec)
        free(h)
        return NULL
    memcpy(h.spec, spec, n)
    h.spec_len = n
    h.threads_allowed = threads_allowed != 0
    h.pool = pool
    pthread_mutex_lock(&g_lock)
    h.next = g_light
    g_light = h
    pthread_mutex_unlock(&g_lock)
    return h


cdef int _light_get "tp_light_get"(void *handle, const char *path, long *status, char *why,
                                   size_t why_size) noexcept nogil:
    cdef tp_light *h = <tp_light *>handle
    cdef tp_pool *pool
    cdef tp_buf out
    cdef tp_result res
    cdef int rc
    status[0] = 0
    if why_size > 0:
        why[0] = 0
    if not _global_init():
        return TP_ERR_CLOSED
    pthread_mutex_lock(&g_lock)
    pool = h.pool
    if pool != NULL:
        _pool_ref(pool)  # under g_lock, so the adopter's close cannot free it first
    pthread_mutex_unlock(&g_lock)
    if pool == NULL:
        return TP_ERR_CLOSED
    out.data = NULL
    out.len = 0
    out.cap = 0
    rc = tp_request(pool, TP_GET, path, NULL, NULL, 0, NULL, &out, &res)
    tp_buf_free(&out)
    _light_why(pool, &res, why, why_size)
    _pool_unref(pool)
    status[0] = res.status
    return rc


cdef void _light_why(tp_pool *pool, tp_result *res, char *why, size_t size) noexcept nogil:
    """What a log line about the answer needs: the URL of the instance that answered, or
    `<instance URL>: <reason>` when none did (the text TransportError carries)."""
    cdef const char *url = tp_instance_url(pool, res.instance)
    cdef const char *reason = res.detail
    if reason[0] == 0:
        reason = b"no answer"
    if size == 0:
        return
    if url == NULL:
        url = b"no instance"
    if res.error == TP_OK:
        snprintf(why, size, b"%s", url)
    else:
        snprintf(why, size, b"%s: %s", url, reason)


cdef void _light_release "tp_light_release"(void *handle) noexcept nogil:
    global g_light
    cdef tp_light *h = <tp_light *>handle
    cdef tp_light **link
    cdef bint found
    if not _global_init():
        return
    pthread_mutex_lock(&g_lock)
    link = &g_light
    while link[0] != NULL and link[0] != h:
        link = &link[0].next
    found = link[0] != NULL
    if found:
        link[0] = h.next
    pthread_mutex_unlock(&g_lock)
    if not found:
        return  # not a live handle: never ours to free
    if not h.adopted and h.pool != NULL:
        _pool_close(h.pool)  # still parked: the handle owned it
    free(h.spec)
    free(h)


# ---------------------------------------------------------------- Python API

# A request that got no HTTP response raises p11fast.errors.TransportError, error_code one of:
OK = TP_OK
ERR_CONNECT = TP_ERR_CONNECT
ERR_TIMEOUT = TP_ERR_TIMEOUT
ERR_TLS = TP_ERR_TLS
ERR_NOMEM = TP_ERR_NOMEM
ERR_CLOSED = TP_ERR_CLOSED
DEFAULT_TIMEOUT_SECONDS = DEFAULT_TIMEOUT_MS / 1000  # timeout_seconds unset (see _set_timeouts)
DEFAULT_SLOW_TIMEOUT_SECONDS = DEFAULT_SLOW_TIMEOUT_MS / 1000
ERROR_NAMES = TRANSPORT_FAILURES
_METHODS = {"GET": TP_GET, "POST": TP_POST, "PUT": TP_PUT, "DELETE": TP_DELETE}


def after_fork_child():
    """tp_after_fork_child for Python hosts and tests (the atfork handler already ran it)."""
    tp_after_fork_child()


def basic_auth(str username, str password):
    """The Authorization header line (bytes) that Pool.call sends for these credentials."""
    from binascii import b2a_base64

    return b"Authorization: Basic " + b2a_base64(f"{username}:{password}".encode(), newline=False)


cdef bytes _pin_bytes(pin):
    if isinstance(pin, str):
        pin = bytes.fromhex(pin.replace(":", ""))
    if not isinstance(pin, bytes) or len(pin) != PIN_LEN:
        raise ValueError("sha256_fingerprints entries must be 32-byte SHA-256 digests")
    return pin


cdef bytes _c_string(bytes b, what):
    if b"\0" in b:
        raise ValueError(f"{what} must not contain a NUL byte")
    return b


cdef long _ms(seconds):
    return <long>(float(seconds) * 1000) if seconds is not None else 0


_SPEC_HEAD = Struct("<4sHHIiqqqqiq")
_SPEC_INST = Struct("<iIIII")


def pool_spec(slot_config):
    """Everything a pool takes from a slot config, as the blob _pool_from_spec builds it from
    (and p11f_transport_open, for the loader's light mode). Raises what Pool() raises for a
    config it cannot use (ValueError: no instance, a bad fingerprint).

    Version 1, little-endian, no padding. Header (60 bytes):
      0 "P11T"  4 u16 version  6 u16 flags (1: tcp_keepalive)  8 u32 instances (>= 1)
      12 i32 retries (>= 0)  16 i64 delay ms  24 i64 timeout ms (<= 0: the defaults)
      32 i64 keepalive idle s  40 i64 keepalive interval s  48 i32 keepalive probes
      52 i64 connections' max idle age s        (keepalive fields 0 without its flag)
    Then per instance, 20 bytes: 0 i32 max connections (>= 1)  4 u32 flags (1:
      danger_insecure_cert, 2: cacert set)  8 u32 fingerprints  12 u32 URL length
      16 u32 cacert length (0 without its flag)
    followed by the URL (no trailing '/'), 32 bytes per fingerprint, the cacert path (neither
    string NUL-terminated nor containing a NUL). Nothing may follow the last instance."""
    instances = list(slot_config.instances)
    if not instances:
        raise ValueError(f"slot {slot_config.label!r} has no instance")
    # Typed as the pool's fields, so a value out of their range fails here as it always has.
    cdef int retries = 0
    cdef long delay_ms = 0
    cdef long timeout_ms = _ms(getattr(slot_config, "timeout_seconds", None))
    cdef long keepidle = 0
    cdef long keepintvl = 0
    cdef int keepcnt = 0
    cdef long maxage = NO_MAXAGE_S
    cdef int cap
    cdef unsigned int flags = 0
    retry = getattr(slot_config, "retries", None)
    if retry is not None:
        retries = max(0, int(retry.count))
        delay_ms = _ms(retry.delay_seconds)
    keepalive = getattr(slot_config, "tcp_keepalive", None)
    if keepalive is not None:
        flags = SPEC_KEEPALIVE
        keepidle = int(keepalive.time_seconds)
        keepintvl = int(keepalive.interval_seconds)
        keepcnt = int(keepalive.retries)
    max_age = getattr(slot_config, "connections_max_idle_duration", None)
    if max_age is not None:
        maxage = int(max_age)
    parts = [_SPEC_HEAD.pack(TP_SPEC_MAGIC[:4], SPEC_VERSION, flags, len(instances), retries,
                             delay_ms, timeout_ms, keepidle, keepintvl, keepcnt, maxage)]
    for spec in instances:
        url = _c_string(spec.url.rstrip("/").encode(), "url")
        max_idle = getattr(spec, "max_idle_connections", None)
        # 0 would leave no connection at all: every call would wait for nothing
        cap = max(1, int(max_idle)) if max_idle is not None else DEFAULT_CAP
        pins = b"".join(_pin_bytes(p) for p in getattr(spec, "sha256_fingerprints", ()) or ())
        cacert = getattr(spec, "cacert", None)
        path = _c_string(os_fsencode(cacert), "cacert") if cacert is not None else b""
        flags = SPEC_INSECURE if getattr(spec, "danger_insecure_cert", False) else 0
        if cacert is not None:
            flags |= SPEC_CACERT
        parts += [_SPEC_INST.pack(cap, flags, len(pins) // PIN_LEN, len(url), len(path)),
                  url, pins, path]
    return b"".join(parts)


cdef class Pool:
    """A slot's connection pool; see the module docstring and _transport.pxd."""

    def __init__(self, slot_config, bint threads_allowed=True):
        if self.ptr != NULL:
            raise RuntimeError("Pool already initialised")
        cdef bytes spec = pool_spec(slot_config)
        cdef const unsigned char *p = spec
        cdef size_t n = len(spec)
        cdef int failed = -1
        cdef tp_pool *pool
        with nogil:
            # a pool the loader's light mode opened with this very config, else a new one
            pool = _adopt(p, n, threads_allowed)
            if pool == NULL:
                pool = _pool_from_spec(p, n, threads_allowed, &failed)
        if pool == NULL:
            if failed >= 0:
                url = list(slot_config.instances)[failed].url
                raise TransportError(TP_ERR_NOMEM, url, "cannot set up a libcurl handle")
            raise MemoryError()  # the blob is pool_spec's own: only memory can be missing
        self.ptr = pool

    def call(self, str method, str path, bytes body=None, bytes auth_header=None,
             str content_type=None):
        """One request with retries and failover -> (status, body, content_type)."""
        cdef int m = _METHODS.get(method.upper(), -1)
        if m < 0:
            raise ValueError(f"unsupported HTTP method {method!r}")
        cdef bytes bpath = path.encode("ascii")
        cdef bytes bct = content_type.encode("ascii") if content_type is not None else None
        cdef const char *c_path = bpath
        cdef const char *c_auth = NULL
        cdef const char *c_body = NULL
        cdef size_t body_len = 0
        cdef const char *c_ct = NULL
        if auth_header is not None:
            c_auth = auth_header
        if body is not None:
            c_body = body
            body_len = len(body)
        if bct is not None:
            c_ct = bct
        cdef tp_pool *pool = self.ptr
        cdef tp_buf out
        cdef tp_result res
        cdef const char *url
        cdef int rc
        if pool == NULL:
            raise TransportError(TP_ERR_CLOSED, None, "pool closed")
        out.data = NULL
        out.len = 0
        out.cap = 0
        _pool_ref(pool)  # under the GIL, so a concurrent close() cannot free it first
        with nogil:
            rc = tp_request(pool, m, c_path, c_auth, c_body, body_len, c_ct, &out, &res)
        try:
            if rc != TP_OK:
                url = tp_instance_url(pool, res.instance)
                raise TransportError(rc, url.decode() if url != NULL else None,
                                     res.detail.decode("utf-8", "replace") or ERROR_NAMES[rc])
            data = out.data[:out.len] if out.len else b""
            return res.status, data, res.content_type.decode("latin-1")
        finally:
            tp_buf_free(&out)
            with nogil:
                _pool_unref(pool)

    def stats(self):
        cdef tp_pool *pool = self.ptr
        if pool == NULL:
            return {"closed": True, "instances": []}
        return {
            "closed": bool(tp_load(&pool.closed)),
            "connections_opened": tp_read(&pool.n_connections_opened),
            "connections_converted": tp_read(&pool.n_converted),
            "connection_waits": tp_read(&pool.n_waits),
            "background_setups": tp_read(&pool.n_background_setups),
            "background_setups_pending": sum(
                tp_load(&pool.instances[i].setup_wanted) or tp_load(&pool.instances[i].setting_up)
                for i in range(pool.ninstances)
            ),
            "requests": tp_read(&pool.n_requests),
            "retries": tp_read(&pool.n_retries),
            "failovers": tp_read(&pool.n_failovers),
            "health_checks": tp_read(&pool.n_health_checks),
            "framing_fallbacks": tp_read(&pool.n_fallbacks),
            "settings": {
                "threads_allowed": bool(pool.threads_allowed),
                "retries": pool.retries,
                "delay_ms": pool.delay_ms,
                "timeout_ms": pool.timeout_ms,
                "slow_timeout_ms": pool.slow_timeout_ms,
                "connect_timeout_ms": pool.connect_timeout_ms,
                "tcp_keepalive": (pool.keepidle, pool.keepintvl, pool.keepcnt)
                if pool.keepalive else None,
                "max_age_seconds": pool.maxage_conn,
            },
            "instances": [_instance_stats(&pool.instances[i]) for i in range(pool.ninstances)],
        }

    def close(self):
        """Idempotent. Requests in flight finish; later ones fail with ERR_CLOSED."""
        cdef tp_pool *pool = self.ptr
        self.ptr = NULL
        if pool != NULL:
            with nogil:
                _pool_close(pool)

    def __dealloc__(self):
        cdef tp_pool *pool = self.ptr
        self.ptr = NULL
        if pool != NULL:
            with nogil:
                _pool_close(pool)


cdef dict _instance_stats(tp_instance *inst):
    return {
        "url": inst.url.decode(),
        "up": bool(tp_load(&inst.up)),
        "in_flight": tp_load(&inst.inflight),
        "max_connections": inst.cap,
        "danger_insecure_cert": bool(inst.insecure),
        "sha256_fingerprints": [inst.pins[PIN_LEN * i:PIN_LEN * (i + 1)]
                                for i in range(inst.npins)],
        "cacert": os_fsdecode(inst.cacert) if inst.cacert != NULL else None,
        "framing": bool(inst.framing),
    }


# Usually a no-op: the light mode may have done it before Python started.
if not _global_init():
    raise ImportError("libcurl failed to initialise")
