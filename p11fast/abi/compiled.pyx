# compiled: the session functions light mode runs without an interpreter (contract in
# compiled.pxd, declarations in compiled.h).
#
# The Cython functions below are static; the C block at the end defines the exported names
# (compiled.h gives them default visibility, the build hides every other symbol).

from p11fast._decl.pkcs11 cimport *
from p11fast._decl.posix cimport pthread_mutex_lock, pthread_mutex_unlock
from libc.string cimport memset


cdef int _compiled_start "abi_compiled_start"(const unsigned char *users, unsigned long nslots,
                                              int threads_allowed) noexcept nogil:
    cdef unsigned long i
    cdef slot_t *slot
    if nslots == 0 or nslots > MAX_SLOTS or not tables_init():
        return 0
    sessions_end()
    g_abi.nslots = <int>nslots
    g_abi.threads_allowed = threads_allowed != 0
    for i in range(nslots):
        slot = &g_abi.slots[i]
        pthread_mutex_lock(&slot.lock)
        slot.pool = NULL
        slot.login_user = -1
        slot.sessions = 0
        slot.rw_sessions = 0
        slot.has_operator = (users[i] & USERS_OPERATOR) != 0
        slot.has_admin = (users[i] & USERS_ADMIN) != 0
        slot.operator_implicit = (users[i] & USERS_OPERATOR_IMPLICIT) != 0
        memset(slot.op_auth, 0, AUTH_MAX)
        memset(slot.so_auth, 0, AUTH_MAX)
        memset(slot.op_auth_config, 0, AUTH_MAX)
        memset(slot.so_auth_config, 0, AUTH_MAX)
        pthread_mutex_unlock(&slot.lock)
    p11f_set_adopting(1)
    return 1


cdef void _compiled_end "abi_compiled_end"() noexcept nogil:
    cdef int i
    sessions_end()
    for i in range(g_abi.nslots):
        pthread_mutex_lock(&g_abi.slots[i].lock)
        g_abi.slots[i].sessions = 0
        g_abi.slots[i].rw_sessions = 0
        g_abi.slots[i].login_user = -1
        pthread_mutex_unlock(&g_abi.slots[i].lock)
    p11f_set_adopting(0)


cdef CK_RV _open_session_check "abi_open_session_check"(
        CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication, CK_NOTIFY Notify,
        CK_SESSION_HANDLE_PTR phSession) noexcept nogil:
    cdef call_t call
    return c_open_session_check(&call, slotID, flags, pApplication, Notify, phSession)


cdef CK_RV _open_session "abi_open_session"(
        CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication, CK_NOTIFY Notify,
        CK_SESSION_HANDLE_PTR phSession) noexcept nogil:
    cdef call_t call
    return c_open_session_finish(&call, CKR_OK, slotID, flags, pApplication, Notify, phSession)


cdef CK_RV _close_session "abi_close_session"(CK_SESSION_HANDLE hSession) noexcept nogil:
    cdef call_t call
    cdef CK_RV rv = c_close_session_check(&call, hSession)
    if rv != CKR_OK:
        return rv
    return c_close_session_finish(&call, CKR_OK, hSession)


cdef CK_RV _close_all_sessions "abi_close_all_sessions"(CK_SLOT_ID slotID) noexcept nogil:
    cdef call_t call
    cdef CK_RV rv = c_close_all_sessions_check(&call, slotID)
    if rv != CKR_OK:
        return rv
    return c_close_all_sessions_finish(&call, CKR_OK, slotID)


cdef CK_RV _get_session_info "abi_get_session_info"(CK_SESSION_HANDLE hSession,
                                                    CK_SESSION_INFO_PTR pInfo) noexcept nogil:
    return c_get_session_info(hSession, pInfo)


cdef void _session_counts "abi_session_counts"(CK_SLOT_ID slotID,
                                                CK_TOKEN_INFO_PTR pInfo) noexcept nogil:
    pthread_mutex_lock(&g_abi.lock)
    pInfo.ulSessionCount = g_abi.slots[slotID].sessions
    pInfo.ulRwSessionCount = g_abi.slots[slotID].rw_sessions
    pthread_mutex_unlock(&g_abi.lock)


cdef void _after_fork_child "abi_after_fork_child"() noexcept nogil:
    reset_after_fork()


cdef extern from *:
    """
    static int abi_compiled_start(const unsigned char *users, unsigned long nslots,
                                  int threads_allowed);
    static void abi_compiled_end(void);
    static void abi_after_fork_child(void);
    static CK_RV abi_open_session_check(CK_SLOT_ID, CK_FLAGS, CK_VOID_PTR, CK_NOTIFY,
                                        CK_SESSION_HANDLE_PTR);
    static CK_RV abi_open_session(CK_SLOT_ID, CK_FLAGS, CK_VOID_PTR, CK_NOTIFY,
                                  CK_SESSION_HANDLE_PTR);
    static CK_RV abi_close_session(CK_SESSION_HANDLE);
    static CK_RV abi_close_all_sessions(CK_SLOT_ID);
    static CK_RV abi_get_session_info(CK_SESSION_HANDLE, CK_SESSION_INFO_PTR);
    static void abi_session_counts(CK_SLOT_ID, CK_TOKEN_INFO_PTR);

    int p11f_abi_compiled_start(const unsigned char *users, unsigned long nslots,
                                int threads_allowed) {
        return abi_compiled_start(users, nslots, threads_allowed);
    }
    void p11f_abi_compiled_end(void) {
        abi_compiled_end();
    }
    void p11f_abi_after_fork_child(void) {
        abi_after_fork_child();
    }
    CK_RV p11f_abi_open_session_check(CK_SLOT_ID slotID, CK_FLAGS flags,
                                      CK_VOID_PTR pApplication, CK_NOTIFY Notify,
                                      CK_SESSION_HANDLE_PTR phSession) {
        return abi_open_session_check(slotID, flags, pApplication, Notify, phSession);
    }
    CK_RV p11f_abi_open_session(CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication,
                                CK_NOTIFY Notify, CK_SESSION_HANDLE_PTR phSession) {
        return abi_open_session(slotID, flags, pApplication, Notify, phSession);
    }
    CK_RV p11f_abi_close_session(CK_SESSION_HANDLE hSession) {
        return abi_close_session(hSession);
    }
    CK_RV p11f_abi_close_all_sessions(CK_SLOT_ID slotID) {
        return abi_close_all_sessions(slotID);
    }
    CK_RV p11f_abi_get_session_info(CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo) {
        return abi_get_session_info(hSession, pInfo);
    }
    void p11f_abi_session_counts(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo) {
        abi_session_counts(slotID, pInfo);
    }
    """
