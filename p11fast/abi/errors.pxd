# errors: how a failure reaches the host — the error template rv_for (an exception from the
# cold path becomes its CKR and one log line), log lines from nogil code, the log line of a
# failed HSM request, and the HSM status → CKR table of the compiled paths.
#
# Contract: rv_for needs the GIL and never raises. log_error/log_text may be called anywhere;
# while the calling thread holds a session lock (sessions counts them in p11f_session_locks)
# the line waits in a thread-local queue until flush_failures runs at the last unlock: the GIL
# is never taken under a session lock. Before Python runs it waits for it (below). `where` and `what` must be string literals.
# uses: state, codec/json, transport/types, transport/request

from p11fast._decl.pkcs11 cimport CK_RV

cdef extern from *:
    """
    typedef struct { const char *where; const char *what; long detail; char text[400]; } p11f_failure;
    enum { P11F_PENDING_MAX = 4 };
    static __thread int p11f_session_locks;
    static __thread int p11f_npending;
    static __thread p11f_failure p11f_pending[P11F_PENDING_MAX];
    """
    ctypedef struct p11f_failure:
        const char *where
        const char *what
        long detail
        char text[400]
    enum: P11F_PENDING_MAX
    int p11f_session_locks
    int p11f_npending
    p11f_failure p11f_pending[4]

# Before Python runs (light mode's compiled calls, p11f_is_adopting), a line waits for it here:
# the loader promotes once a call left one (failures_waiting), and the C_Initialize that takes
# the compiled state over writes them (failures_write).
cdef int failures_waiting() noexcept nogil
cdef void failures_write() noexcept
cdef void failures_forget() noexcept nogil

# What a request was doing, for ckr_for_http (the contexts of p11fast.errors.from_http).
cdef enum:
    HTTP_SIGN = 0
    HTTP_DECRYPT = 1
    HTTP_ENCRYPT = 2
    HTTP_OTHER = 3

cdef CK_RV rv_for(exc, const char *where) noexcept
cdef void log_error(const char *where, const char *what, long detail) noexcept nogil
cdef void log_text(const char *where, const char *text) noexcept nogil
cdef void flush_failures() noexcept nogil
cdef void log_request_failure(const char *where, tp_pool *pool, tp_result *res,
                              const char *body, size_t body_len) noexcept nogil
cpdef CK_RV ckr_for_http(long status, int context) noexcept nogil
