# Module state: the C tables, the cold-path Python state, and the one error template.

cdef extern from *:
    """
    #include <stdatomic.h>
    static atomic_int p11f_initialized;
    static inline int p11f_is_initialized(void) { return atomic_load(&p11f_initialized); }
    static inline void p11f_set_initialized(int v) { atomic_store(&p11f_initialized, v); }
    """
    bint p11f_is_initialized() nogil
    void p11f_set_initialized(int v) nogil

cdef slot_t g_slots[MAX_SLOTS]
cdef int g_nslots = 0
cdef session_t *g_sessions = NULL
cdef object_t *g_objects = NULL
cdef CK_ULONG g_nobjects = 0
# Guards handle allocation, the object table and the session table's free/used transitions.
# Never held across network I/O.
cdef pthread_mutex_t g_lock
# Wakes C_WaitForSlotEvent on C_Finalize.
cdef pthread_cond_t g_event
cdef bint g_threads_allowed = True

# NetHSM key mechanisms, in a fixed order: bit i of object_t.nethsm_mechs is entry i.
NETHSM_MECHANISMS = (
    "RSA_Decryption_RAW", "RSA_Decryption_PKCS1", "RSA_Decryption_OAEP_MD5",
    "RSA_Decryption_OAEP_SHA1", "RSA_Decryption_OAEP_SHA224", "RSA_Decryption_OAEP_SHA256",
    "RSA_Decryption_OAEP_SHA384", "RSA_Decryption_OAEP_SHA512", "RSA_Signature_PKCS1",
    "RSA_Signature_PSS_MD5", "RSA_Signature_PSS_SHA1", "RSA_Signature_PSS_SHA224",
    "RSA_Signature_PSS_SHA256", "RSA_Signature_PSS_SHA384", "RSA_Signature_PSS_SHA512",
    "EdDSA_Signature", "ECDSA_Signature", "BIP340_Signature", "AES_Encryption_CBC",
    "AES_Decryption_CBC",
)
cdef enum:
    NM_RSA_SIGNATURE_PKCS1 = 1 << 8
    NM_RSA_SIGNATURE_PSS_MD5 = 1 << 9
    NM_EDDSA_SIGNATURE = 1 << 15
    NM_ECDSA_SIGNATURE = 1 << 16


class ModuleState:
    """What the cold path keeps between calls: config, logger, per-slot pools and inventories."""

    def __init__(self, config, log, pools, inventories):
        self.config = config
        self.log = log
        self.pools = pools
        self.inventories = inventories
        self.handle_of = {}       # (slot, key_id, cls) -> object handle
        self.objects = {}         # object handle -> P11Object
        self.finds = {}           # session handle -> list of object handles still to return
        self.presence = {}        # slot -> (monotonic time, present)
        self.reported = {}        # slot -> presence last reported by C_WaitForSlotEvent


_state = None


cdef CK_RV rv_for(exc, const char *where) noexcept:
    """The error template: an exception from the cold path becomes its CKR and one log line."""
    from p11fast.errors import P11Error
    from p11fast._transport import TransportError

    cdef CK_RV rv = CKR_GENERAL_ERROR
    if isinstance(exc, P11Error):
        rv = exc.ckr
    elif isinstance(exc, TransportError):
        rv = CKR_DEVICE_ERROR
    elif isinstance(exc, MemoryError):
        rv = CKR_HOST_MEMORY
    try:
        message = f"{where.decode()}: {exc}" if str(exc) else f"{where.decode()}: {type(exc).__name__}"
        if _state is not None:
            if rv == CKR_GENERAL_ERROR:
                _state.log.error(message)
            else:
                _state.log.warn(message)
        else:
            import sys
            sys.stderr.write(f"p11fast: {message}\n")
    except BaseException:
        pass
    return rv


cdef void log_error(const char *where, const char *what, long detail) noexcept nogil:
    """One log line from the nogil path (only on failures, so taking the GIL is fine)."""
    with gil:
        try:
            if _state is not None:
                _state.log.warn(f"{where.decode()}: {what.decode()} ({detail})")
        except BaseException:
            pass


cdef void log_request_failure(const char *where, tp_pool *pool, tp_result *res,
                              const char *body, size_t body_len) noexcept nogil:
    """The one log line of a failed HSM request on the compiled paths: which instance, and why
    (the HSM's own message for an HTTP refusal, libcurl's reason for no answer)."""
    cdef const char *url = tp_instance_url(pool, res.instance)
    with gil:
        try:
            if _state is None:
                return
            instance = url.decode() if url != NULL else "no instance"
            if res.error != TP_OK:
                from p11fast._transport import ERROR_NAMES

                reason = ERROR_NAMES.get(res.error, str(res.error))
                message = (f"no HSM instance answered ({reason}, {res.attempts} attempt(s)); "
                           f"last {instance}: {res.detail.decode(errors='replace')}")
            else:
                import json

                text = body[:body_len].decode(errors="replace") if body != NULL else ""
                try:
                    text = json.loads(text)["message"]
                except Exception:
                    pass
                message = f"{instance}: HTTP {res.status}: {text[:200]}"
            _state.log.warn(f"{where.decode()}: {message}")
        except BaseException:
            pass


cdef CK_RV ckr_for_http(long status, bint key_operation) noexcept nogil:
    """HSM status → CKR for the compiled paths: the table of p11fast.errors.from_http for a key
    operation (sign/encrypt) or anything else (tests/reliability/test_hsm_failures.py checks
    that both agree for every status)."""
    if status == 400:
        return CKR_DATA_LEN_RANGE if key_operation else CKR_ARGUMENTS_BAD
    if status == 401:
        return CKR_USER_NOT_LOGGED_IN
    if status == 403:
        return CKR_KEY_FUNCTION_NOT_PERMITTED if key_operation else CKR_USER_NOT_LOGGED_IN
    if status == 404:
        return CKR_KEY_HANDLE_INVALID if key_operation else CKR_OBJECT_HANDLE_INVALID
    if status == 409:
        return CKR_FUNCTION_FAILED
    if status == 412:
        return CKR_TOKEN_NOT_PRESENT
    if status == 413:
        return CKR_DATA_LEN_RANGE
    return CKR_DEVICE_ERROR  # 429 after the retries, 5xx, and anything the API does not define


cdef session_t *session_lock(CK_SESSION_HANDLE h) noexcept nogil:
    """The session for `h`, locked; NULL if the handle is not an open session.

    The table never moves, so the lookup needs no global lock: the per-session lock plus the
    handle check under it are enough."""
    cdef CK_ULONG index = h & ((1 << HANDLE_INDEX_BITS) - 1)
    cdef session_t *s
    if g_sessions == NULL or h == 0 or index >= MAX_SESSIONS:
        return NULL
    s = &g_sessions[index]
    pthread_mutex_lock(&s.lock)
    if s.handle != h:
        pthread_mutex_unlock(&s.lock)
        return NULL
    return s


cdef inline void session_unlock(session_t *s) noexcept nogil:
    pthread_mutex_unlock(&s.lock)


cdef bint session_open(CK_SESSION_HANDLE h, int *slot_index) noexcept nogil:
    cdef session_t *s = session_lock(h)
    if s == NULL:
        return False
    if slot_index != NULL:
        slot_index[0] = s.slot
    session_unlock(s)
    return True


cdef bint object_copy(CK_OBJECT_HANDLE h, object_t *out) noexcept nogil:
    cdef CK_ULONG index = h & ((1 << HANDLE_INDEX_BITS) - 1)
    cdef bint found = False
    if h == 0 or g_objects == NULL:
        return False
    pthread_mutex_lock(&g_lock)
    if index < MAX_OBJECTS and g_objects[index].handle == h:
        memcpy(out, &g_objects[index], sizeof(object_t))
        found = True
    pthread_mutex_unlock(&g_lock)
    return found


cdef void op_reset(op_t *op) noexcept nogil:
    if op.active:
        hash_free(&op.hctx)
        wbuf_free(&op.acc)
    memset(op, 0, sizeof(op_t))


cdef bint slot_user_logged_in(slot_t *slot) noexcept nogil:
    return slot.login_user == CKU_USER or (slot.operator_implicit and slot.login_user != CKU_SO)


cdef CK_STATE session_state(session_t *s) noexcept nogil:
    cdef slot_t *slot = &g_slots[s.slot]
    cdef bint rw = (s.flags & CKF_RW_SESSION) != 0
    if slot.login_user == CKU_SO:
        return CKS_RW_SO_FUNCTIONS
    if slot_user_logged_in(slot):
        return CKS_RW_USER_FUNCTIONS if rw else CKS_RO_USER_FUNCTIONS
    return CKS_RW_PUBLIC_SESSION if rw else CKS_RO_PUBLIC_SESSION


cdef void pad_copy(CK_UTF8CHAR *dst, size_t size, text) noexcept:
    """Space-padded, not NUL-terminated, as CK_INFO and friends require."""
    cdef bytes raw = text.encode("utf-8")[:size]
    memset(dst, b' ', size)
    memcpy(dst, <const char *>raw, len(raw))
