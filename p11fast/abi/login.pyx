# Sessions and login. Login state belongs to the token (all sessions of the application share
# it), as the standard says; the credentials it unlocks are the slot's auth headers.

from libc.string cimport memcpy, memset, strcmp, strlen

from p11fast._decl.pkcs11 cimport *
from p11fast._decl.posix cimport pthread_mutex_lock, pthread_mutex_t, pthread_mutex_unlock


cdef extern from "<pthread.h>" nogil:
    int pthread_mutex_trylock(pthread_mutex_t *m)


cdef CK_RV c_open_session_check(call_t *call, CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication,
                             CK_NOTIFY Notify, CK_SESSION_HANDLE_PTR phSession) noexcept nogil:
    if slotID >= <CK_ULONG>g_abi.nslots:
        return CKR_SLOT_ID_INVALID
    if phSession == NULL:
        return CKR_ARGUMENTS_BAD
    if not (flags & CKF_SERIAL_SESSION):
        return CKR_SESSION_PARALLEL_NOT_SUPPORTED
    return CKR_OK


cdef CK_RV c_open_session(call_t *call, CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication,
                        CK_NOTIFY Notify, CK_SESSION_HANDLE_PTR phSession) except *:
    return CKR_OK if slot_present(slotID) else CKR_TOKEN_NOT_PRESENT


cdef CK_RV c_open_session_finish(call_t *call, CK_RV rv, CK_SLOT_ID slotID, CK_FLAGS flags,
                               CK_VOID_PTR pApplication, CK_NOTIFY Notify,
                               CK_SESSION_HANDLE_PTR phSession) noexcept nogil:
    """A free entry of the session table, once the token is known to be present."""
    cdef int i
    cdef session_t *s
    cdef slot_t *slot = &g_abi.slots[slotID]
    cdef bint so_in
    if rv != CKR_OK:
        return rv
    # Under g_abi.lock, as log_in sets the SO: no read-only session beside an SO (v3.0 C_Login).
    pthread_mutex_lock(&g_abi.lock)
    pthread_mutex_lock(&slot.lock)
    so_in = slot.login_user == CKU_SO
    pthread_mutex_unlock(&slot.lock)
    if so_in and not (flags & CKF_RW_SESSION):
        pthread_mutex_unlock(&g_abi.lock)
        return CKR_SESSION_READ_WRITE_SO_EXISTS
    for i in range(MAX_SESSIONS):
        s = &g_abi.sessions[i]
        if s.handle == 0 and i >= g_abi.sessions_used:
            # Before the entry is locked: a fork meanwhile resets every entry that can be held.
            g_abi.sessions_used = i + 1
        if s.handle == 0 and pthread_mutex_trylock(&s.lock) == 0:
            if s.handle == 0:
                s.generation += 1
                s.handle = (s.generation << HANDLE_INDEX_BITS) | i
                s.slot = slotID
                s.flags = flags
                slot.sessions += 1
                if flags & CKF_RW_SESSION:
                    slot.rw_sessions += 1
                phSession[0] = s.handle
                pthread_mutex_unlock(&s.lock)
                pthread_mutex_unlock(&g_abi.lock)
                return CKR_OK
            pthread_mutex_unlock(&s.lock)
    pthread_mutex_unlock(&g_abi.lock)
    return CKR_SESSION_COUNT


cdef void session_close_locked(session_t *s) noexcept nogil:
    """Ends a session whose lock the caller holds. The last session closed logs the token out:
    under g_abi.lock, so that a session opened and logged in meanwhile stays logged in."""
    cdef slot_t *slot = &g_abi.slots[s.slot]
    session_ops_reset(s, False)
    pthread_mutex_lock(&g_abi.lock)
    s.handle = 0
    slot.sessions -= 1
    if s.flags & CKF_RW_SESSION:
        slot.rw_sessions -= 1
    if slot.sessions == 0:
        token_logout(slot)
    pthread_mutex_unlock(&g_abi.lock)


cdef void token_logout(slot_t *slot) noexcept nogil:
    """Back to the credentials of the configuration: a PIN given at C_Login is forgotten.
    Lock order: g_abi.lock (when the caller holds it), then the slot's lock."""
    pthread_mutex_lock(&slot.lock)
    memcpy(slot.op_auth, slot.op_auth_config, AUTH_MAX)
    memcpy(slot.so_auth, slot.so_auth_config, AUTH_MAX)
    slot.login_user = -1
    pthread_mutex_unlock(&slot.lock)


cdef CK_RV c_close_session_check(call_t *call, CK_SESSION_HANDLE hSession) noexcept nogil:
    return CKR_OK if session_open(hSession, NULL) else CKR_SESSION_HANDLE_INVALID


cdef CK_RV c_close_session(call_t *call, CK_SESSION_HANDLE hSession) except *:
    # Before the close, which may log the token out: deleting session keys may need the SO's
    # credentials. No session lock is held here: the GIL is never taken under one.
    release_session_objects(hSession, -1)
    return CKR_OK


cdef CK_RV c_close_session_finish(call_t *call, CK_RV rv, CK_SESSION_HANDLE hSession) noexcept nogil:
    cdef session_t *s = session_lock(hSession)
    if s == NULL:
        return CKR_SESSION_HANDLE_INVALID
    session_close_locked(s)
    session_unlock(s)
    return CKR_OK


cdef CK_RV c_close_all_sessions_check(call_t *call, CK_SLOT_ID slotID) noexcept nogil:
    return CKR_SLOT_ID_INVALID if slotID >= <CK_ULONG>g_abi.nslots else CKR_OK


cdef CK_RV c_close_all_sessions(call_t *call, CK_SLOT_ID slotID) except *:
    release_session_objects(None, slotID)
    return CKR_OK


cdef CK_RV c_close_all_sessions_finish(call_t *call, CK_RV rv, CK_SLOT_ID slotID) noexcept nogil:
    cdef int i
    cdef session_t *s
    for i in range(g_abi.sessions_used):
        s = &g_abi.sessions[i]
        if s.handle == 0:
            continue
        pthread_mutex_lock(&s.lock)
        if s.handle != 0 and s.slot == <int>slotID:
            session_close_locked(s)
        pthread_mutex_unlock(&s.lock)
    return CKR_OK


cdef CK_RV c_get_session_info(CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo) noexcept nogil:
    cdef session_t *s = session_lock(hSession)
    if s == NULL:
        return CKR_SESSION_HANDLE_INVALID
    if pInfo == NULL:
        session_unlock(s)
        return CKR_ARGUMENTS_BAD
    pthread_mutex_lock(&g_abi.slots[s.slot].lock)
    pInfo.slotID = s.slot
    pInfo.state = session_state(s)
    pthread_mutex_unlock(&g_abi.slots[s.slot].lock)
    pInfo.flags = s.flags
    pInfo.ulDeviceError = 0
    session_unlock(s)
    return CKR_OK


cdef bint ro_session_exists(int slot_index) noexcept nogil:
    """The caller holds g_abi.lock."""
    cdef int i
    for i in range(g_abi.sessions_used):
        if g_abi.sessions[i].handle != 0 and g_abi.sessions[i].slot == slot_index \
                and not (g_abi.sessions[i].flags & CKF_RW_SESSION):
            return True
    return False


cdef bint slot_has_ro_session(int slot_index) noexcept nogil:
    cdef bint found
    pthread_mutex_lock(&g_abi.lock)
    found = ro_session_exists(slot_index)
    pthread_mutex_unlock(&g_abi.lock)
    return found


cdef CK_RV check_credentials(int slot_index, CK_USER_TYPE user, bytes header) except *:
    """Checks credentials against the HSM: the operator must be able to list keys, the
    administrator to list users (only an Administrator may). A refusal light mode's compiled
    C_Login got for these very credentials is taken as the answer: asking again would count
    twice against the HSM's login delay."""
    from p11fast.errors import PinIncorrect, from_http

    path = "/users" if user == CKU_SO else "/keys"
    status = refusal_take(slot_index, user, header)
    if status == 0:
        status, _, _ = _state.pools[slot_index].call("GET", path, None, header, None)
    if status == 200:
        return CKR_OK
    if status in (401, 403):
        raise PinIncorrect(f"the HSM refused the {'administrator' if user == CKU_SO else 'operator'} credentials ({status})")
    raise from_http(status, "login", "", _state.config.slots[slot_index].instances[0].url)


cdef CK_RV c_login_check(call_t *call, CK_SESSION_HANDLE hSession, CK_USER_TYPE userType,
                       CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen) noexcept nogil:
    cdef slot_t *slot
    cdef int slot_index
    cdef CK_RV rv
    if not session_call(call, hSession):
        return CKR_SESSION_HANDLE_INVALID
    slot_index = call.slot
    slot = &g_abi.slots[slot_index]
    if userType == CKU_CONTEXT_SPECIFIC:
        return CKR_OPERATION_NOT_INITIALIZED
    if userType != CKU_USER and userType != CKU_SO:
        return CKR_USER_TYPE_INVALID
    if pPin == NULL and ulPinLen != 0:
        return CKR_ARGUMENTS_BAD
    pthread_mutex_lock(&slot.lock)
    rv = CKR_OK
    if slot.login_user == <int>userType:
        rv = CKR_USER_ALREADY_LOGGED_IN
    elif slot.login_user != -1:
        rv = CKR_USER_ANOTHER_ALREADY_LOGGED_IN
    elif userType == CKU_USER and not slot.has_operator:
        # as C_GetTokenInfo says: without CKF_USER_PIN_INITIALIZED
        rv = CKR_USER_PIN_NOT_INITIALIZED
    elif userType == CKU_SO and not slot.has_admin:
        rv = CKR_USER_TYPE_INVALID
    pthread_mutex_unlock(&slot.lock)
    if rv != CKR_OK:
        return rv
    if userType == CKU_SO and slot_has_ro_session(slot_index):
        return CKR_SESSION_READ_ONLY_EXISTS
    return CKR_OK


cdef CK_RV c_login(call_t *call, CK_SESSION_HANDLE hSession, CK_USER_TYPE userType,
                 CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen) except *:
    return log_in(call.slot, userType, pPin[:ulPinLen] if ulPinLen else b"")


cdef CK_RV log_in(int slot_index, CK_USER_TYPE user, bytes pin) except *:
    cdef CK_RV rv
    slot_cfg = _state.config.slots[slot_index]
    user_cfg = slot_cfg.administrator if user == CKU_SO else slot_cfg.operator
    # An empty PIN (protected authentication path) means: use the password of the config.
    if pin:
        from p11fast.pins import login_passphrase

        password = login_passphrase(pin)
    elif user_cfg.password is not None:
        password = user_cfg.password
    else:
        from p11fast.errors import PinIncorrect

        raise PinIncorrect("empty PIN and no password in the configuration")
    from p11fast.log import register_secret

    register_secret(password, user_cfg.username)
    header = basic_auth(user_cfg.username, password)  # fits AUTH_MAX (the pins import check)
    check_credentials(slot_index, user, header)
    rv = login_commit(slot_index, user, header)
    if rv != CKR_OK:
        return rv
    _state.log.info(f"slot {slot_index}: logged in as {'SO' if user == CKU_SO else 'user'} ({user_cfg.username})")
    if user == CKU_SO:
        sweep_stale_session_keys(slot_index)
    return CKR_OK


cdef CK_RV login_commit(int slot_index, CK_USER_TYPE user, const char *header) noexcept nogil:
    """Once the HSM took the credentials (header: shorter than AUTH_MAX), the checks of C_Login
    again, now atomic with the change: under g_abi.lock too, so no read-only session opens
    between the check and the SO's login (C_OpenSession checks under it)."""
    cdef slot_t *slot = &g_abi.slots[slot_index]
    cdef CK_RV rv = CKR_OK
    pthread_mutex_lock(&g_abi.lock)
    pthread_mutex_lock(&slot.lock)
    if slot.login_user != -1:
        rv = CKR_USER_ANOTHER_ALREADY_LOGGED_IN if slot.login_user != <int>user else CKR_USER_ALREADY_LOGGED_IN
    elif user == CKU_SO and ro_session_exists(slot_index):
        rv = CKR_SESSION_READ_ONLY_EXISTS
    else:
        memcpy(&slot.so_auth[0] if user == CKU_SO else &slot.op_auth[0], header, strlen(header) + 1)
        slot.login_user = user
    pthread_mutex_unlock(&slot.lock)
    pthread_mutex_unlock(&g_abi.lock)
    return rv


cdef CK_RV compiled_log_in(call_t *call, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin,
                           CK_ULONG ulPinLen, tp_pool *pool,
                           const char *username) noexcept nogil:
    """log_in for the operator with a PIN, before Python runs, once c_login_check passed: the
    same header (basic_auth of the PIN as UTF-8 text), the same request, the same change.
    NEEDS_PYTHON, with nothing changed, for what the cold path logs or does not take from
    here: another user, the configuration's password, a PIN of a length no passphrase has or
    that is not UTF-8 (log_in decodes it with replacements), no answer, and a refusal, which
    waits for the cold path (refusal_take) so that it is asked once."""
    cdef char auth[AUTH_MAX]
    cdef tp_buf resp
    cdef tp_result res
    cdef CK_RV rv
    if (userType != CKU_USER or ulPinLen == 0 or pool == NULL or username[0] == 0
            or ulPinLen < g_abi.pin_min or ulPinLen > g_abi.pin_max
            or not utf8_valid(pPin, ulPinLen) or not basic_auth_c(username, pPin, ulPinLen, auth)):
        return NEEDS_PYTHON
    resp.data = NULL
    resp.len = 0
    resp.cap = 0
    tp_request(pool, TP_GET, b"/keys", auth, NULL, 0, NULL, &resp, &res)
    tp_buf_free(&resp)
    if res.error != TP_OK:
        rv = NEEDS_PYTHON
    elif res.status != 200:
        refusal_keep(call.slot, userType, res.status, auth)
        rv = NEEDS_PYTHON
    else:
        rv = login_commit(call.slot, userType, auth)
    memset(auth, 0, AUTH_MAX)
    return rv


cdef bint basic_auth_c(const char *username, const unsigned char *pin, size_t n,
                       char *out) noexcept nogil:
    """basic_auth(username, pin) into out (AUTH_MAX bytes); False if it does not fit."""
    cdef unsigned char plain[AUTH_MAX]
    cdef size_t user_len = strlen(username)
    cdef size_t prefix = strlen(BASIC_PREFIX)
    if user_len + 1 + n > AUTH_MAX or prefix + b64_encoded_len(user_len + 1 + n) >= AUTH_MAX:
        return False
    memcpy(plain, username, user_len)
    plain[user_len] = c':'
    memcpy(plain + user_len + 1, pin, n)
    memcpy(out, BASIC_PREFIX, prefix)
    out[prefix + b64_encode(plain, user_len + 1 + n, out + prefix)] = 0
    memset(plain, 0, AUTH_MAX)
    return True


cdef bint utf8_valid(const unsigned char *p, size_t n) noexcept nogil:
    """Strict UTF-8, as Python's decoder takes it: no overlong forms, no surrogates, nothing
    above U+10FFFF."""
    cdef size_t i = 0, k, extra
    cdef unsigned int c
    while i < n:
        c = p[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            extra = 1
        elif 0xE0 <= c <= 0xEF:
            extra = 2
        elif 0xF0 <= c <= 0xF4:
            extra = 3
        else:
            return False
        if i + extra >= n:
            return False
        for k in range(1, extra + 1):
            if p[i + k] & 0xC0 != 0x80:
                return False
        if (c == 0xE0 and p[i + 1] < 0xA0) or (c == 0xED and p[i + 1] > 0x9F) \
                or (c == 0xF0 and p[i + 1] < 0x90) or (c == 0xF4 and p[i + 1] > 0x8F):
            return False
        i += extra + 1
    return True


# A refusal of light mode's compiled C_Login, for the cold path's C_Login with the same
# credentials; under g_abi.lock.
cdef struct refusal_t:
    int slot
    CK_USER_TYPE user
    long status
    char auth[AUTH_MAX]

cdef refusal_t g_refusal


cdef void refusal_keep(int slot_index, CK_USER_TYPE user, long status, const char *auth) noexcept nogil:
    pthread_mutex_lock(&g_abi.lock)
    g_refusal.slot = slot_index
    g_refusal.user = user
    g_refusal.status = status
    memcpy(g_refusal.auth, auth, strlen(auth) + 1)
    pthread_mutex_unlock(&g_abi.lock)


cdef long refusal_take(int slot_index, CK_USER_TYPE user, bytes header) noexcept:
    """The status kept for exactly these credentials, once; 0 for none."""
    cdef long status = 0
    cdef const char *h = header
    with nogil:
        pthread_mutex_lock(&g_abi.lock)
        if (g_refusal.status and g_refusal.slot == slot_index and g_refusal.user == user
                and strcmp(g_refusal.auth, h) == 0):
            status = g_refusal.status
        pthread_mutex_unlock(&g_abi.lock)
    refusal_forget()
    return status


cdef void refusal_forget() noexcept nogil:
    pthread_mutex_lock(&g_abi.lock)
    memset(&g_refusal, 0, sizeof(g_refusal))
    pthread_mutex_unlock(&g_abi.lock)


cdef CK_RV c_logout(CK_SESSION_HANDLE hSession) noexcept nogil:
    cdef slot_t *slot
    cdef int slot_index
    if not session_open(hSession, &slot_index):
        return CKR_SESSION_HANDLE_INVALID
    slot = &g_abi.slots[slot_index]
    pthread_mutex_lock(&slot.lock)
    if slot.login_user == -1:
        pthread_mutex_unlock(&slot.lock)
        return CKR_USER_NOT_LOGGED_IN
    pthread_mutex_unlock(&slot.lock)
    token_logout(slot)
    return CKR_OK
