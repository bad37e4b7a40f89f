# The session table: lookups, operation state, ending sessions.

from libc.string cimport memset

from p11fast._decl.pkcs11 cimport *
from p11fast._decl.posix cimport pthread_mutex_lock, pthread_mutex_unlock


cdef bint session_open(CK_SESSION_HANDLE h, int *slot_index) noexcept nogil:
    cdef session_t *s = session_lock(h)
    if s == NULL:
        return False
    if slot_index != NULL:
        slot_index[0] = s.slot
    session_unlock(s)
    return True


cdef void session_ops_reset(session_t *s, bint forget) noexcept nogil:
    """Ends every operation of a session (and a compiled search). In a forked child (`forget`) the state is dropped
    without freeing: it may be half-built by a parent thread that no longer exists."""
    cdef op_t *ops[5]
    ops[0] = &s.sign
    ops[1] = &s.digest
    ops[2] = &s.verify
    ops[3] = &s.decrypt
    ops[4] = &s.encrypt
    for op in ops:
        if forget:
            memset(op, 0, sizeof(op_t))
        else:
            op_reset(op)
    s.finding = False
    s.nfound = 0


cdef void sessions_end() noexcept nogil:
    """The slots' session counts are left as they are: the caller resets them. No lock is
    taken for an entry not in use."""
    cdef int i
    cdef session_t *s
    if g_abi.sessions == NULL:
        return
    for i in range(g_abi.sessions_used):
        s = &g_abi.sessions[i]
        if s.handle == 0:
            continue
        pthread_mutex_lock(&s.lock)
        if s.handle != 0:
            session_ops_reset(s, False)
            s.handle = 0
        pthread_mutex_unlock(&s.lock)


cdef CK_STATE session_state(session_t *s) noexcept nogil:
    cdef slot_t *slot = &g_abi.slots[s.slot]
    cdef bint rw = (s.flags & CKF_RW_SESSION) != 0
    if slot.login_user == CKU_SO:
        return CKS_RW_SO_FUNCTIONS
    if slot_user_logged_in(slot):
        return CKS_RW_USER_FUNCTIONS if rw else CKS_RO_USER_FUNCTIONS
    return CKS_RW_PUBLIC_SESSION if rw else CKS_RO_PUBLIC_SESSION


cdef bint session_call(call_t *call, CK_SESSION_HANDLE h) noexcept nogil:
    cdef session_t *s = session_lock(h)
    if s == NULL:
        return False
    call.handle = s.handle
    call.slot = s.slot
    call.flags = s.flags
    session_unlock(s)
    return True
