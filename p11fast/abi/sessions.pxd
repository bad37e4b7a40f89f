# sessions: the session table — looking a session handle up and locking it, the operation
# state each session holds and ending it, a session's PKCS#11 state, ending every session.
#
# Contract: session_lock returns the session locked, or NULL for a handle that is not an open
# session; the caller holds that lock for one operation step and releases it with
# session_unlock, which writes the log lines that waited for it (errors). No lookup needs
# g_abi.lock: the table never moves, and the handle is checked again under the session lock.
# A session's lock is never held while waiting for the GIL. session_lock, session_unlock,
# op_reset and op_failed (a failed step ends its operation) run on every signature: inline here.
# uses: state, errors, codec/hash, codec/wbuf

from libc.stdlib cimport free
from libc.string cimport memset
from p11fast._decl.pkcs11 cimport CK_RV, CK_SESSION_HANDLE, CK_STATE, CK_ULONG
from p11fast._decl.posix cimport pthread_mutex_lock, pthread_mutex_unlock
from p11fast._decl.openssl cimport EVP_PKEY, EVP_PKEY_free


cdef inline session_t *session_lock(CK_SESSION_HANDLE h) noexcept nogil:
    global p11f_session_locks
    cdef CK_ULONG index = h & ((1 << HANDLE_INDEX_BITS) - 1)
    cdef session_t *s
    if g_abi.sessions == NULL or h == 0 or index >= MAX_SESSIONS:
        return NULL
    s = &g_abi.sessions[index]
    pthread_mutex_lock(&s.lock)
    if s.handle != h:
        pthread_mutex_unlock(&s.lock)
        return NULL
    p11f_session_locks += 1
    return s


cdef inline void session_unlock(session_t *s) noexcept nogil:
    global p11f_session_locks
    pthread_mutex_unlock(&s.lock)
    p11f_session_locks -= 1
    if p11f_session_locks == 0 and p11f_npending:
        flush_failures()


cdef inline void op_reset(op_t *op) noexcept nogil:
    if op.active:
        hash_free(&op.hctx)
        wbuf_free(&op.acc)
        free(op.pending)
        EVP_PKEY_free(<EVP_PKEY *>op.pkey)
    memset(op, 0, sizeof(op_t))


cdef inline CK_RV op_failed(session_t *s, op_t *op, CK_RV rv) noexcept nogil:
    """A step that fails ends its operation (v3.0) and the session's lock."""
    op_reset(op)
    session_unlock(s)
    return rv


# Whether h is an open session; its slot into *slot_index (may be NULL).
cdef bint session_open(CK_SESSION_HANDLE h, int *slot_index) noexcept nogil
cdef void session_ops_reset(session_t *s, bint forget) noexcept nogil
# Ends every open session (C_Initialize after a lost race, C_Finalize).
cdef void sessions_end() noexcept nogil
cdef CK_STATE session_state(session_t *s) noexcept nogil
# The session of a cold-path call copied into *call (its lock not held after: the GIL must
# never be taken under a session lock); False if h is not an open session.
cdef bint session_call(call_t *call, CK_SESSION_HANDLE h) noexcept nogil
