# types: the transport's data — a pool (one per slot), its instances (one per configured URL),
# their handles (one libcurl easy handle = one keep-alive connection), the callers waiting for
# one, and what a request is and returns. Declarations only; the fields' comments say which
# are atomic and which lock guards the others.
#
# Contract: the TP_* result codes are the loader's too (capi.h, one definition for C and
# Cython). A tp_buf belongs to the caller (tp_buf_free, request). The other structs are the
# pieces' own: modules outside the transport use tp_request / tp_instance_url / Pool and no
# field of tp_pool.
# uses:

from p11fast._decl.curl cimport CURL
from p11fast._decl.posix cimport pthread_cond_t, pthread_mutex_t

cdef extern from "p11fast/transport/capi.h":
    enum:
        TP_OK            # an HTTP response was received (any status)
        TP_ERR_CONNECT   # no instance could be reached after all retries
        TP_ERR_TIMEOUT   # timed out after all retries
        TP_ERR_TLS       # TLS failure / pin mismatch
        TP_ERR_NOMEM
        TP_ERR_CLOSED    # pool closed (C_Finalize) or invalid after fork

cdef enum:
    TP_GET = 0
    TP_POST = 1
    TP_PUT = 2
    TP_DELETE = 3

cdef enum:
    TP_MAX_FDS = 4       # sockets tracked per handle (happy eyeballs may open two at once)
    TP_RBUF = 8192       # framed handles: response head + start of the body (a longer head
                         # falls back to a full transfer)

cdef enum:
    CONN_FULL = 0        # kinds of handle; FULL and FRAMED index the idle lists
    CONN_FRAMED = 1
    CONN_PROBE = 2

cdef struct tp_buf:           # growable response body buffer, owned by the caller
    char *data                # malloc'd; tp_buf_free() releases it
    size_t len
    size_t cap

cdef struct tp_result:
    long status               # HTTP status, 0 if no response
    int error                 # TP_OK or TP_ERR_*
    int instance              # index of the instance that answered (or last tried)
    char content_type[96]
    # Requests this call sent (1 + retries + failovers). A POST with side effects (key
    # generation, import) that needed more than one after a response-less failure may have
    # been executed twice: the caller decides how to reconcile.
    int attempts
    # libcurl's one-line reason for the last transport failure ("" on TP_OK), for the log line
    # the caller writes. Never contains request headers or bodies.
    char detail[160]

cdef struct tp_call:          # one tp_request's request, for each of its attempts
    int method
    const char *path
    const char *auth_header
    const char *body
    size_t body_len
    const char *content_type
    bint resendable           # _resendable(method, path), request.pyx
    long timeout_ms

cdef struct tp_pool
cdef struct tp_instance
cdef struct tp_conn

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
    int registered            # linked in the live-pool registry (guarded by g_tp_lock, pool)
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
