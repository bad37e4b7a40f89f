# login: opening and closing sessions (the session table's entries handed out and taken back,
# the slot's session counts, the last close logging the token out) and the token's login state
# (C_Login checks the credentials against the HSM, C_Logout restores the configuration's), and
# the operator's C_Login before Python runs (compiled_log_in), whose refusal the cold path's
# C_Login takes over rather than asking the HSM twice.
#
# Contract: a session's lock, then g_abi.lock, then the slot's lock, where they nest; the SO's
# login, a read-only session's opening and the last close hold g_abi.lock and the slot's lock
# together, so their checks and changes are atomic. The GIL is taken only with no session lock
# held (presence, credentials, session objects' end: before the close).
# uses: state, sessions, slots, manage, codec/base64, transport/types, transport/api, transport/request

from p11fast._decl.pkcs11 cimport (
    CK_FLAGS, CK_NOTIFY, CK_RV, CK_SESSION_HANDLE, CK_SESSION_HANDLE_PTR, CK_SESSION_INFO_PTR,
    CK_SLOT_ID, CK_ULONG, CK_USER_TYPE, CK_UTF8CHAR_PTR, CK_VOID_PTR,
)

cdef CK_RV c_open_session_check(call_t *call, CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication,
                             CK_NOTIFY Notify, CK_SESSION_HANDLE_PTR phSession) noexcept nogil
cdef CK_RV c_open_session(call_t *call, CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication,
                        CK_NOTIFY Notify, CK_SESSION_HANDLE_PTR phSession) except *
cdef CK_RV c_open_session_finish(call_t *call, CK_RV rv, CK_SLOT_ID slotID, CK_FLAGS flags,
                               CK_VOID_PTR pApplication, CK_NOTIFY Notify,
                               CK_SESSION_HANDLE_PTR phSession) noexcept nogil
cdef CK_RV c_close_session_check(call_t *call, CK_SESSION_HANDLE hSession) noexcept nogil
cdef CK_RV c_close_session(call_t *call, CK_SESSION_HANDLE hSession) except *
cdef CK_RV c_close_session_finish(call_t *call, CK_RV rv, CK_SESSION_HANDLE hSession) noexcept nogil
cdef CK_RV c_close_all_sessions_check(call_t *call, CK_SLOT_ID slotID) noexcept nogil
cdef CK_RV c_close_all_sessions(call_t *call, CK_SLOT_ID slotID) except *
cdef CK_RV c_close_all_sessions_finish(call_t *call, CK_RV rv, CK_SLOT_ID slotID) noexcept nogil
cdef CK_RV c_get_session_info(CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo) noexcept nogil
cdef CK_RV c_login_check(call_t *call, CK_SESSION_HANDLE hSession, CK_USER_TYPE userType,
                       CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen) noexcept nogil
cdef CK_RV c_login(call_t *call, CK_SESSION_HANDLE hSession, CK_USER_TYPE userType,
                 CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen) except *
cdef CK_RV c_logout(CK_SESSION_HANDLE hSession) noexcept nogil
cdef extern from *:
    """
    static const char p11f_basic_prefix[] = "Authorization: Basic ";
    """
    # What every Basic credential header starts with. A C constant: light mode runs this
    # without the module's Python init.
    const char BASIC_PREFIX "p11f_basic_prefix"[]

cdef CK_RV login_commit(int slot_index, CK_USER_TYPE user, const char *header) noexcept nogil
# Light mode's C_Login (compiled): the operator's, or NEEDS_PYTHON with nothing changed.
cdef CK_RV compiled_log_in(call_t *call, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin,
                           CK_ULONG ulPinLen, tp_pool *pool, const char *username) noexcept nogil
cdef void refusal_forget() noexcept nogil
