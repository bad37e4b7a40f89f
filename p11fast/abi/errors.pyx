# The error template and the log lines of the compiled paths.

from libc.stdio cimport snprintf
from libc.string cimport memcpy, strcmp

from p11fast._decl.pkcs11 cimport *
from p11fast._decl.posix cimport pthread_mutex_lock, pthread_mutex_t, pthread_mutex_unlock


cdef CK_RV rv_for(exc, const char *where) noexcept:
    """The error template: an exception from the cold path becomes its CKR and one log line.
    `where` is the C_* function (or what it was doing for one): no answer from the HSM means
    what p11fast.errors.from_transport says for that function."""
    from p11fast.errors import P11Error, TransportError, from_transport

    cdef CK_RV rv = CKR_GENERAL_ERROR
    if isinstance(exc, TransportError):
        exc = from_transport(exc, where.decode())
    if isinstance(exc, P11Error):
        rv = exc.ckr
    elif isinstance(exc, MemoryError):
        rv = CKR_HOST_MEMORY
    if not p11f_is_initialized() and strcmp(where, b"C_Initialize") != 0:
        # The call lost a race with C_Finalize in another thread (credentials, pools and
        # inventories went while it ran): say so rather than what the teardown made it see.
        rv = CKR_CRYPTOKI_NOT_INITIALIZED
    try:
        message = f"{where.decode()}: {exc}" if str(exc) else f"{where.decode()}: {type(exc).__name__}"
        if _state is not None:
            log = _state.log
        else:
            # Not sys.stderr: its buffer has a lock, which a thread writing there at fork()
            # leaves held in the child, where the next line would wait for it forever.
            from p11fast.log import stderr_logger

            log = stderr_logger()
        if rv == CKR_GENERAL_ERROR:
            log.error(message)
        else:
            log.warn(message)
    except BaseException:
        pass
    return rv


cdef extern from *:
    """
    #include <pthread.h>
    enum { P11F_WAITING_MAX = 16 };
    static pthread_mutex_t p11f_waiting_lock = PTHREAD_MUTEX_INITIALIZER;
    static int p11f_nwaiting;
    static p11f_failure p11f_waiting[P11F_WAITING_MAX];
    """
    enum: P11F_WAITING_MAX
    pthread_mutex_t p11f_waiting_lock
    int p11f_nwaiting
    p11f_failure p11f_waiting[16]


cdef void emit_failure(const char *where, const char *what, long detail,
                       const char *text=NULL) noexcept nogil:
    if p11f_is_adopting():
        wait_for_python(where, what, detail, text)
    else:
        write_failure(where, what, detail, text)


cdef void wait_for_python(const char *where, const char *what, long detail,
                          const char *text) noexcept nogil:
    """No interpreter to take the GIL of: the line waits (a full queue keeps the first ones,
    which say what went wrong first)."""
    global p11f_nwaiting
    cdef p11f_failure *line
    pthread_mutex_lock(&p11f_waiting_lock)
    if p11f_nwaiting < P11F_WAITING_MAX:
        line = &p11f_waiting[p11f_nwaiting]
        line.where = where
        line.what = what
        line.detail = detail
        line.text[0] = 0
        if text != NULL:
            snprintf(line.text, sizeof(line.text), b"%s", text)
        p11f_nwaiting += 1
    pthread_mutex_unlock(&p11f_waiting_lock)


cdef int failures_waiting() noexcept nogil:
    cdef int n
    pthread_mutex_lock(&p11f_waiting_lock)
    n = p11f_nwaiting
    pthread_mutex_unlock(&p11f_waiting_lock)
    return n


cdef void failures_write() noexcept:
    global p11f_nwaiting
    cdef p11f_failure lines[P11F_WAITING_MAX]
    cdef int i, n
    with nogil:
        pthread_mutex_lock(&p11f_waiting_lock)
        n = p11f_nwaiting
        memcpy(lines, p11f_waiting, n * sizeof(p11f_failure))
        p11f_nwaiting = 0
        pthread_mutex_unlock(&p11f_waiting_lock)
    for i in range(n):
        write_failure(lines[i].where, lines[i].what, lines[i].detail, lines[i].text)


cdef void failures_forget() noexcept nogil:
    global p11f_nwaiting
    pthread_mutex_lock(&p11f_waiting_lock)
    p11f_nwaiting = 0
    pthread_mutex_unlock(&p11f_waiting_lock)


cdef void write_failure(const char *where, const char *what, long detail,
                        const char *text) noexcept nogil:
    with gil:
        try:
            if _state is not None:
                if text != NULL and text[0] != 0:
                    _state.log.warn(f"{where.decode()}: {text.decode(errors='replace')}")
                else:
                    _state.log.warn(f"{where.decode()}: {what.decode()} ({detail})")
        except BaseException:
            pass


cdef void log_error(const char *where, const char *what, long detail) noexcept nogil:
    """One log line from the nogil path, written once no session lock is held."""
    global p11f_npending
    if p11f_session_locks == 0:
        emit_failure(where, what, detail)
    elif p11f_npending < P11F_PENDING_MAX:
        p11f_pending[p11f_npending].where = where
        p11f_pending[p11f_npending].what = what
        p11f_pending[p11f_npending].detail = detail
        p11f_pending[p11f_npending].text[0] = 0
        p11f_npending += 1


cdef void log_text(const char *where, const char *text) noexcept nogil:
    """log_error for a message made at run time: copied if it has to wait for the lock."""
    global p11f_npending
    if p11f_session_locks == 0:
        emit_failure(where, b"", 0, text)
    elif p11f_npending < P11F_PENDING_MAX:
        p11f_pending[p11f_npending].where = where
        p11f_pending[p11f_npending].what = b""
        p11f_pending[p11f_npending].detail = 0
        snprintf(p11f_pending[p11f_npending].text, sizeof(p11f_pending[0].text), b"%s", text)
        p11f_npending += 1


cdef const char *transport_error_name(int error) noexcept nogil:
    if error == TP_ERR_CONNECT:
        return b"connect"
    if error == TP_ERR_TIMEOUT:
        return b"timeout"
    if error == TP_ERR_TLS:
        return b"tls"
    if error == TP_ERR_NOMEM:
        return b"out of memory"
    if error == TP_ERR_CLOSED:
        return b"closed"
    return b"?"


cdef void log_request_failure(const char *where, tp_pool *pool, tp_result *res,
                              const char *body, size_t body_len) noexcept nogil:
    """The one log line of a failed HSM request on the compiled paths: which instance, and why
    (the HSM's own message for an HTTP refusal, libcurl's reason when nothing answered)."""
    cdef char text[400]
    cdef char message[201]
    cdef const char *value
    cdef size_t value_len
    cdef Py_ssize_t n = 0
    cdef const char *url = tp_instance_url(pool, res.instance)
    if url == NULL:
        url = b"no instance"
    if res.error != TP_OK:
        snprintf(text, sizeof(text), b"no HSM instance answered (%s, %d attempt(s)); last %s: %s",
                 transport_error_name(res.error), res.attempts, url, res.detail)
    else:
        if body != NULL and json_get_string(body, body_len, "message", &value, &value_len) == 0:
            n = json_unescape(value, value_len, message, sizeof(message) - 1)
        message[n if n > 0 else 0] = 0
        snprintf(text, sizeof(text), b"%s: HTTP %ld: %s", url, res.status, message)
    log_text(where, text)


cpdef CK_RV ckr_for_http(long status, int context) noexcept nogil:
    """HSM status → CKR for the compiled paths: the table of p11fast.errors.from_http for the
    contexts the compiled paths have (tests/unit/test_http_mapping.py checks both agree)."""
    cdef bint key_use = context != HTTP_OTHER
    if status == 400:
        return (CKR_ENCRYPTED_DATA_INVALID if context == HTTP_DECRYPT
                else CKR_DATA_LEN_RANGE if key_use else CKR_ARGUMENTS_BAD)
    if status == 401:
        return CKR_USER_NOT_LOGGED_IN
    if status == 403:
        return CKR_KEY_FUNCTION_NOT_PERMITTED if key_use else CKR_USER_NOT_LOGGED_IN
    if status == 404:
        return CKR_KEY_HANDLE_INVALID if key_use else CKR_OBJECT_HANDLE_INVALID
    if status == 412:
        return CKR_TOKEN_NOT_PRESENT
    if status == 409:
        return CKR_FUNCTION_FAILED
    if status == 413:
        return CKR_DATA_LEN_RANGE
    return CKR_DEVICE_ERROR


cdef void flush_failures() noexcept nogil:
    """The lines that waited for the last session lock to go (sessions: session_unlock)."""
    global p11f_npending
    cdef int i
    for i in range(p11f_npending):
        emit_failure(p11f_pending[i].where, p11f_pending[i].what, p11f_pending[i].detail,
                     p11f_pending[i].text)
    p11f_npending = 0
