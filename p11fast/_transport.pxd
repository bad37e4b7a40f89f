# The transport's contract: HTTP(S) to a slot's NetHSM instances over a libcurl connection pool.
#
# What a result tells the caller beyond the status and body:
#   - tp_result.attempts: how many requests this call sent (1 + retries). A POST with side
#     effects (key generate/import) that needed more than one attempt after a response-less
#     failure may have been executed twice; the caller decides how to reconcile.
#   - tp_result.detail: libcurl's one-line reason for the last transport failure ("" on TP_OK),
#     for the log line the caller writes. Never contains request headers or bodies.
#
# Framing: GETs and the POSTs of .../sign, .../decrypt and .../encrypt are written and parsed by
# this module over libcurl-owned connections (see _transport.pyx); every other request, and any
# framed exchange the framing does not expect, is a full libcurl transfer. The framing may send
# such a request twice (then Pool.stats()["framing_fallbacks"] counts it), which is why only
# requests without side effects are framed. Callers see no difference in tp_request's contract.
#
# Failover: a slot's instances are one cluster. Whether a request may be resent is decided by
# its method and path alone (_resendable in _transport.pyx): GETs and the POSTs of .../sign,
# .../decrypt, .../encrypt and /random; nothing else (key generation, import, deletion, moves,
# user changes). An attempt that fails for an instance-level reason — no answer (refused,
# reset, TLS failure, timeout), 412 (Locked), 5xx — takes that instance out of rotation (412
# and 5xx only when the slot has another instance) and the request goes to another available
# instance at once, without using one of `retries`, when it may be resent or provably was not
# executed (never sent: refused, TLS handshake or connect timeout; 412; every connection of the
# instance busy). `retries` applies once no instance is left to fail over to, and to requests
# that may have been executed. A probe (GET /health/ready = 200, Operational) brings an
# instance back into rotation. Requests go to the instance in rotation with the fewest calls
# in flight (ties round robin), so a stalled instance holds only the calls already on it.
#
# Timeouts are never infinite: timeout_seconds, or by default DEFAULT_TIMEOUT_MS for requests
# that may be resent and DEFAULT_SLOW_TIMEOUT_MS for the others; connecting (TCP and TLS) at
# most CONNECT_TIMEOUT_MS of that.
#
# Lifetime: tp_request() holds its own reference on the pool for the duration of the call, so
# Pool.close() (C_Finalize) while other threads are mid-request is safe: they finish (or fail
# with TP_ERR_CLOSED at their next retry) and the last one out frees the pool. A caller must not
# *start* a tp_request() on a pointer after the Pool owning it was closed: read Pool.ptr only
# while you hold the Pool (its Python reference), as Pool.call does.
#
# Connection cap: `max_idle_connections` is a real cap on the connections (libcurl handles) open
# to one instance, busy or idle (Nitrokey: "maximum number of connections in the pool"); default
# 16. A caller that finds every connection of the instance busy and the cap reached waits (FIFO)
# for one to be given back, at most the request timeout (then TP_ERR_TIMEOUT, detail says so; the
# instance is not marked down); Pool.close() wakes waiters with TP_ERR_CLOSED. So a steady load
# with more threads than the cap keeps exactly the cap's connections open and opens or closes
# none. Health-check connections are not pool connections and not counted.
#
# Background set-up (threads allowed): the transport's one background thread (the one that drives
# the multi interface for health probes) connects, TLS handshake included, the framed connection
# each instance gets at pool creation, and reconnects a framed connection a request gave back
# without one (server closed it, idle age, failure) while the instance is up. A caller never waits
# for that: if it needs a connection while one is being set up in the background, it opens its
# own when the cap allows, and waits like any caller only when it does not. Without threads
# everything stays on the calling thread. The thread runs while a live pool exists: closing the
# last one (C_Finalize) and the process's exit join it (see "Thread lifetime" in _transport.pyx).
#
# Fork: the module registers pthread_atfork handlers (or the loader runs them from its own, see
# p11f_transport_init below); the background thread is stopped before fork() (it must not hold
# an OpenSSL lock the child inherits) and started again in the parent; in a forked child every
# pool is closed (TP_ERR_CLOSED) and its inherited sockets are closed without any TLS
# close_notify, so the parent's connections stay intact. tp_after_fork_child() does the same and
# is idempotent, so calling it again from the ABI's own after-fork hook is harmless.
#
# Light mode: the C loader answers C_GetSlotList/C_GetSlotInfo/C_GetTokenInfo without starting
# Python (`pkcs11-tool -L` fast), but token presence needs one live GET /health/ready through this
# transport, and the connection it opens should serve the rest of the process if Python starts
# later. So the extension exports C functions callable with libpython loaded (initialised or
# not: they touch no Python object; process-wide state is set up by whichever comes first, them
# or the module's import, and the import never resets it):
#
#   int p11f_transport_init(void)
#       The process-wide set-up alone (libcurl, the exit handler), for the loader, which then
#       runs the transport's fork handling from its own pthread_atfork handlers: 1. 0 when the
#       module's import came first and registered its own handlers (the loader must not run
#       them as well); -1 when libcurl cannot start.
#   void p11f_transport_fork_prepare(void), p11f_transport_fork_parent(void),
#        p11f_transport_fork_child(void)
#       The transport's fork handlers, for the loader to call from its own when init said 1.
#   void *p11f_transport_open(const unsigned char *spec, size_t len, int threads_allowed)
#       Builds a pool from a pool_spec() blob, exactly as Pool() does (with threads_allowed,
#       the background thread starts connecting it at once), and parks it. Returns an opaque
#       handle, NULL for a malformed blob, no memory or a handle libcurl cannot set up.
#   int p11f_transport_get(void *handle, const char *path, long *status, char *why,
#                          size_t why_size)
#       One GET of path (relative to the instance URL: "/health/ready"), no Authorization
#       header, retries and failover as configured, body discarded. Returns TP_OK (*status =
#       the HTTP status) or TP_ERR_* (*status = 0); TP_ERR_CLOSED once the pool is gone (its
#       adopter closed it, or in a forked child). `why` (NUL-terminated, cut to why_size; may
#       be NULL with why_size 0) receives the URL of the instance that answered, or
#       "<instance URL>: <reason>" when none did: what a log line about the answer needs.
#   void p11f_transport_release(void *handle)
#       Ends the handle: a pool still parked is closed (its connections with it); an adopted one
#       is left to its Pool. Once per open; an unknown or already released handle is ignored.
#
# Ownership: the parked list owns a parked pool until a Pool adopts it or the opener releases
# it. Pool(slot_config, threads_allowed) adopts a parked pool whose pool_spec(slot_config) is
# byte-identical and whose threads flag is the same: it takes it as its own (handles, open
# connection, registration and a background set-up maybe still in progress), opening nothing.
# The handle stays valid until released either way, so get/release after adoption, after the
# adopter's close or in a forked child are safe. In a forked child parked pools are closed like
# every pool (never adopted); release frees them without touching the parent's connections;
# the entry points must not be called from an atfork handler (g_lock may still be held there).

from p11fast._curl cimport CURL

cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    ctypedef struct pthread_cond_t:
        pass

cdef enum:
    TP_GET = 0
    TP_POST = 1
    TP_PUT = 2
    TP_DELETE = 3

cdef enum:
    TP_OK = 0            # an HTTP response was received (any status)
    TP_ERR_CONNECT = 1   # no instance could be reached after all retries
    TP_ERR_TIMEOUT = 2   # timed out after all retries
    TP_ERR_TLS = 3       # TLS failure / pin mismatch
    TP_ERR_NOMEM = 4
    TP_ERR_CLOSED = 5    # pool closed (C_Finalize) or invalid after fork

cdef enum:
    TP_MAX_FDS = 4       # sockets tracked per handle (happy eyeballs may open two at once)
    TP_RBUF = 8192       # framed handles: response head + start of the body (a longer head
                         # falls back to a full transfer)

cdef struct tp_buf:           # growable response body buffer, owned by the caller
    char *data                # malloc'd; tp_buf_free() releases it
    size_t len
    size_t cap

cdef struct tp_result:
    long status               # HTTP status, 0 if no response
    int error                 # TP_OK or TP_ERR_*
    int instance              # index of the instance that answered (or last tried)
    char content_type[96]
    int attempts              # requests sent by this call (extension, see above)
    char detail[160]          # reason of the last transport failure (extension, see above)

cdef struct tp_pool
cdef struct tp_instance
cdef struct tp_conn

# Everything below is private to _transport.pyx; declared here only because Cython needs the
# layout. Other modules use tp_request / tp_instance_url / Pool and nothing else.

cdef struct tp_conn:          # one libcurl easy handle; its cache holds at most one connection
    CURL *easy                # NULL while a framed handle is between connections
    int framed                # CURLOPT_CONNECT_ONLY: we frame HTTP/1.1 over curl_easy_send/recv
    int sock                  # framed: the connection's socket, -1 when not connected
    long long last_used_ms    # framed: end of the last exchange (connections_max_idle_duration)
    tp_instance *inst
    tp_conn *next_free        # instance free list (idle handles)
    tp_conn *next_all         # every handle of the instance, borrowed or idle (fork cleanup)
    tp_conn *prev_all
    int bg_setup              # the background thread has it off the idle list, connecting it
    int setup_rc              # CURLcode of that set-up's failure, for the caller it is handed to
    char *url                 # instance URL prefix, the request path is appended per call
    size_t url_cap
    int fds[TP_MAX_FDS]       # sockets this handle's connections use (-1 = free slot)
    char errbuf[256]          # CURLOPT_ERRORBUFFER (CURL_ERROR_SIZE)
    int pin_mismatch          # the last handshake's leaf certificate matched no pin ...
    unsigned char leaf_sha256[32]  # ... and this is its SHA-256, for the failure's detail
    char rbuf[TP_RBUF]        # framed: receive buffer

cdef struct tp_waiter:         # a caller waiting for a connection, on its own stack
    pthread_cond_t cond       # its own condition: a given-back handle wakes exactly one waiter
    tp_conn *conn             # handed over by _give_back (any kind), or
    int slot                  # 1: a slot under the cap was handed over, open a new handle
    int closed                # the pool was closed while waiting
    tp_waiter *next

cdef struct tp_instance:
    tp_pool *pool
    char *url                 # without trailing '/', e.g. https://hsm:8443/api/v1
    size_t url_len
    pthread_mutex_t lock      # guards free_list, all_list, nconns, waiters; never held during I/O
    tp_conn *free_list[2]     # idle handles: [0] full transfers, [1] framed
    tp_conn *all_list
    int nconns                # handles of this instance, busy, idle or being set up (<= cap)
    int cap                   # max_idle_connections
    tp_waiter *wait_head      # FIFO of callers waiting for a handle
    tp_waiter *wait_tail
    int setup_wanted          # atomic: the background thread should connect idle framed handles
    int setting_up            # atomic: it is doing so
    int bg_connecting         # handles it has off the idle list right now (under lock)
    int framing               # the URL allows framed requests (http(s), no userinfo)
    char *origin_path         # the URL's path, e.g. /api/v1 (framed request line prefix)
    size_t origin_path_len
    char *host_line           # " HTTP/1.1\r\nHost: <authority>\r\n"
    size_t host_line_len
    int up                    # atomic: in rotation; 0 after an instance-level failure, until a
                              # probe finds it Operational (or a request gets a real answer)
    int inflight              # atomic: calls busy with it (waiting for a connection or an answer)
    int probing               # atomic: a health check of this instance is in flight
    long long last_check_ms   # atomic: monotonic start time of the last health check
    tp_conn *probe            # handle for health checks (background or inline)
    unsigned char *pins       # npins SHA-256 fingerprints of the leaf certificate (DER)
    int npins
    int insecure
    char *cacert

cdef struct tp_pool:
    tp_instance *instances
    int ninstances
    unsigned int rr           # atomic round-robin counter
    int refs                  # atomic: owner + in-flight requests + in-flight probes
    int closed                # atomic
    int forked                # set in a forked child: handles are abandoned, not cleaned up
    int registered            # linked in the live-pool registry (guarded by its mutex)
    int threads_allowed
    int retries
    long delay_ms
    long timeout_ms           # requests that may be resent (framed ones); never infinite
    long slow_timeout_ms      # the others (key generation, import, deletion, ...)
    long connect_timeout_ms   # TCP connect and TLS handshake, within the request's timeout
    int keepalive
    long keepidle
    long keepintvl
    int keepcnt
    long maxage_conn          # CURLOPT_MAXAGE_CONN, seconds
    long n_connections_opened # stats, atomic
    long n_requests
    long n_retries
    long n_failovers          # attempts moved to another instance without using a retry
    long n_waits              # callers that waited for a connection at the cap
    long n_converted          # idle handles closed to open one of the other kind at the cap
    long n_background_setups  # connections the background thread set up
    long n_health_checks
    long n_fallbacks          # framed exchanges redone as a full libcurl transfer
    tp_pool *reg_next
    tp_pool *reg_prev

cdef int tp_request(tp_pool *pool, int method, const char *path, const char *auth_header,
                    const char *body, size_t body_len, const char *content_type,
                    tp_buf *out, tp_result *res) noexcept nogil
    # path: relative to the instance URL, e.g. "/keys/k1/sign" (instance url ends with /api/v1)
    # auth_header: full header line "Authorization: Basic ..." or NULL; never logged
    # content_type: e.g. "application/json" or NULL when no body
    # returns res.error; out receives the body (appended from len 0 — tp_request resets out.len)
cdef void tp_buf_free(tp_buf *b) noexcept nogil
cdef const char *tp_instance_url(tp_pool *pool, int instance) noexcept nogil
cdef void tp_after_fork_child() noexcept nogil
    # forget every pool's inherited connections and threads WITHOUT closing TLS (the parent
    # still uses them), mark pools closed

cdef class Pool:
    cdef tp_pool *ptr
    # def __init__(self, slot_config, bint threads_allowed=True)  (adopts a parked pool, above)
    # def call(self, str method, str path, bytes body=None, bytes auth_header=None,
    #          str content_type=None) -> tuple[int, bytes, str]
    # def stats(self) -> dict
    # def close(self)
# def pool_spec(slot_config) -> bytes   (the blob for p11f_transport_open; layout in its docstring)
