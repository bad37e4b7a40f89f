# compiled: the functions light mode runs without an interpreter (contract in compiled.pxd,
# declarations in compiled.h).
#
# The Cython functions below are static; the C block at the end defines the exported names
# (compiled.h gives them default visibility, the build hides every other symbol).

from cpython.ref cimport PyObject
from libc.stdio cimport snprintf
from libc.string cimport memcpy, memset, strlen
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from p11fast._decl.pkcs11 cimport *
from p11fast._decl.posix cimport pthread_mutex_lock, pthread_mutex_unlock

# Light mode's pool of a slot (compiled_pool). A C static, as everything this piece reads:
# light mode runs it without the module's Python init.
cdef void *(*g_pool_for)(CK_SLOT_ID) noexcept nogil


cdef int _compiled_start "abi_compiled_start"(const p11f_abi_start *start) noexcept nogil:
    global g_pool_for
    cdef unsigned long i
    cdef slot_t *slot
    if (start.nslots == 0 or start.nslots > MAX_SLOTS or start.nallowed > MAX_POLICY_MECHANISMS
            or not tables_init()):
        return 0
    sessions_end()
    objects_reset()
    compiled_release()
    records_start(start.snapshot_path, start.snapshot_crc, start.snapshot_len)
    g_pool_for = start.pool_for
    g_abi.nslots = <int>start.nslots
    g_abi.threads_allowed = start.threads_allowed != 0
    g_abi.nallowed = -1 if start.nallowed < 0 else <int>start.nallowed
    if start.nallowed > 0:
        memcpy(g_abi.allowed_mechs, start.allowed, start.nallowed * sizeof(CK_MECHANISM_TYPE))
    g_abi.pin_min = start.slots[0].pin_min
    g_abi.pin_max = start.slots[0].pin_max
    for i in range(start.nslots):
        slot = &g_abi.slots[i]
        pthread_mutex_lock(&slot.lock)
        slot.pool = NULL
        slot.login_user = -1
        slot.sessions = 0
        slot.rw_sessions = 0
        slot.has_operator = (start.slots[i].users & USERS_OPERATOR) != 0
        slot.has_admin = (start.slots[i].users & USERS_ADMIN) != 0
        slot.operator_implicit = (start.slots[i].users & USERS_OPERATOR_IMPLICIT) != 0
        memset(slot.op_auth, 0, AUTH_MAX)
        memset(slot.so_auth, 0, AUTH_MAX)
        memset(slot.op_auth_config, 0, AUTH_MAX)
        memset(slot.so_auth_config, 0, AUTH_MAX)
        pthread_mutex_unlock(&slot.lock)
        # A name too long for the configuration to take leaves it unknown: C_Login promotes.
        slot.operator_name[0] = 0
        if strlen(start.slots[i].operator_name) <= USERNAME_MAX:
            snprintf(slot.operator_name, USERNAME_MAX + 1, b"%s", start.slots[i].operator_name)
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
        memset(g_abi.slots[i].op_auth, 0, AUTH_MAX)
        pthread_mutex_unlock(&g_abi.slots[i].lock)
    objects_reset()
    compiled_release()
    p11f_set_adopting(0)


cdef void compiled_release() noexcept nogil:
    """What the compiled start holds: the pools' references, the records, a refusal kept for
    the cold path, lines waiting for it."""
    cdef int i
    for i in range(MAX_SLOTS):
        if g_abi.slots[i].light_pool != NULL:
            if g_abi.slots[i].pool == g_abi.slots[i].light_pool:
                g_abi.slots[i].pool = NULL
            _pool_unref(g_abi.slots[i].light_pool)
            g_abi.slots[i].light_pool = NULL
    records_free()
    refusal_forget()
    failures_forget()


cdef tp_pool *compiled_pool(int slot_index) noexcept nogil:
    """The slot's pool, light mode's, opened on first need (a listing never needs one)."""
    cdef void *handle
    cdef slot_t *slot = &g_abi.slots[slot_index]
    if slot.pool == NULL and g_pool_for != NULL:
        handle = g_pool_for(slot_index)
        if handle != NULL:
            slot.light_pool = _park_pool_ref(<tp_light *>handle)
            slot.pool = slot.light_pool
    return slot.pool


cdef CK_RV _login "abi_login"(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType,
                              CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen) noexcept nogil:
    cdef call_t call
    cdef CK_RV rv = c_login_check(&call, hSession, userType, pPin, ulPinLen)
    if rv != CKR_OK:
        return rv
    return compiled_log_in(&call, userType, pPin, ulPinLen, compiled_pool(call.slot),
                           g_abi.slots[call.slot].operator_name)


cdef CK_RV _logout "abi_logout"(CK_SESSION_HANDLE hSession) noexcept nogil:
    return c_logout(hSession)


cdef CK_RV _find_objects_init "abi_find_objects_init"(
        CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) noexcept nogil:
    """c_find_objects_init for a key class or certificates and a CKA_ID or a CKA_LABEL, from
    the record of an earlier process's search, when the HSM answers what it answered then."""
    cdef call_t call
    cdef CK_ULONG nfound = 0
    cdef search_t search
    cdef CK_OBJECT_HANDLE found[FOUND_MAX]
    cdef session_t *s
    cdef CK_RV rv = c_find_objects_init_check(&call, hSession, pTemplate, ulCount)
    if rv != CKR_OK:
        return rv
    if not recordable_template(pTemplate, ulCount, &search):
        return NEEDS_PYTHON
    s = session_lock(hSession)
    if s == NULL:
        return CKR_SESSION_HANDLE_INVALID
    rv = CKR_OPERATION_ACTIVE if s.finding else CKR_OK
    session_unlock(s)
    if rv != CKR_OK:
        return rv
    rv = recorded_search(call.slot, &search, found, &nfound)
    if rv != CKR_OK:
        return rv
    s = session_lock(hSession)
    if s == NULL:
        return CKR_SESSION_HANDLE_INVALID
    if s.finding:
        rv = CKR_OPERATION_ACTIVE
    else:
        s.finding = True
        s.nfound = nfound
        memcpy(s.found, found, nfound * sizeof(CK_OBJECT_HANDLE))
    session_unlock(s)
    return rv


cdef CK_RV recorded_search(int slot_index, const search_t *search, CK_OBJECT_HANDLE *found,
                           CK_ULONG *nfound) noexcept nogil:
    """What the cold path's search finds, when the record says: its credentials, the requests
    it sends, its objects (those the login lets the application see), their handles."""
    cdef slot_t *slot = &g_abi.slots[slot_index]
    cdef char auth[AUTH_MAX]
    cdef bint seen_private
    cdef const unsigned char *value
    cdef size_t value_len
    cdef int by
    cdef record_t *rec
    cdef tp_pool *pool
    cdef CK_ULONG i, n = 0
    cdef CK_OBJECT_HANDLE h
    cdef object_t entry
    cdef PyObject *old = NULL
    cdef timespec now
    pthread_mutex_lock(&slot.lock)
    memcpy(auth, slot.op_auth, AUTH_MAX)
    seen_private = slot_user_logged_in(slot) or slot.login_user == CKU_SO
    pthread_mutex_unlock(&slot.lock)
    if auth[0] == 0:
        # The cold path would search with the configuration's credentials, which are not here.
        if slot.operator_implicit or slot.has_admin:
            return NEEDS_PYTHON
        return CKR_OK
    by = record_by(search, &value, &value_len)
    rec = record_for(slot_index, by, value, value_len)
    pool = compiled_pool(slot_index)
    if rec == NULL or pool == NULL or not answers_recorded(rec, pool, auth):
        memset(auth, 0, AUTH_MAX)
        return NEEDS_PYTHON
    memset(auth, 0, AUTH_MAX)
    for i in range(rec.nobjects):
        n += visible_match(&rec.objects[i], search, seen_private)
    if n > FOUND_MAX or not certificates_agree(rec):
        return NEEDS_PYTHON
    clock_gettime(CLOCK_MONOTONIC, &now)
    rec.fetched = now.tv_sec + now.tv_nsec / 1e9
    for i in range(rec.nobjects):
        if not visible_match(&rec.objects[i], search, seen_private):
            continue
        memcpy(&entry, &rec.objects[i].entry, sizeof(object_t))
        entry.recorded = &rec.objects[i]
        h = entry_bind(&entry, &old)
        if h == 0:
            log_error(b"C_FindObjectsInit", b"object table full; objects", MAX_OBJECTS)
            return CKR_HOST_MEMORY
        found[nfound[0]] = h
        nfound[0] += 1
    return CKR_OK


cdef bint answers_recorded(record_t *rec, tp_pool *pool, const char *auth) noexcept nogil:
    """The record's requests, in order, each answered as recorded."""
    cdef char path[RECORD_REQUEST_PATH_MAX]
    cdef tp_buf resp
    cdef tp_result res
    cdef bint same
    cdef CK_ULONG i
    for i in range(rec.nexchanges):
        if not exchange_path(rec, &rec.exchanges[i], path, sizeof(path)):
            return False
        resp.data = NULL
        resp.len = 0
        resp.cap = 0
        tp_request(pool, TP_GET, path, auth, NULL, 0, NULL, &resp, &res)
        same = res.error == TP_OK and answer_same(&rec.exchanges[i], res.status, resp.data,
                                                  resp.len)
        tp_buf_free(&resp)
        if not same:
            return False
    return True


cdef bint visible_match(const recorded_object *obj, const search_t *search,
                        bint seen_private) noexcept nogil:
    return recorded_matches(obj, search) and (seen_private or not obj.entry.private)


cdef CK_RV _find_objects "abi_find_objects"(
        CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject, CK_ULONG ulMaxObjectCount,
        CK_ULONG_PTR pulObjectCount) noexcept nogil:
    cdef call_t call
    cdef CK_ULONG n = 0
    cdef session_t *s
    cdef CK_RV rv = c_find_objects_check(&call, hSession, phObject, ulMaxObjectCount,
                                         pulObjectCount)
    if rv != CKR_OK:
        return rv
    s = session_lock(hSession)
    if s == NULL:
        return CKR_SESSION_HANDLE_INVALID
    if not s.finding:
        rv = CKR_OPERATION_NOT_INITIALIZED
    else:
        n = ulMaxObjectCount if ulMaxObjectCount < s.nfound else s.nfound
        memcpy(phObject, s.found, n * sizeof(CK_OBJECT_HANDLE))
        s.nfound -= n
        memcpy(s.found, s.found + n, s.nfound * sizeof(CK_OBJECT_HANDLE))
        pulObjectCount[0] = n
    session_unlock(s)
    return rv


cdef CK_RV _find_objects_final "abi_find_objects_final"(CK_SESSION_HANDLE hSession) noexcept nogil:
    cdef call_t call
    cdef session_t *s
    cdef CK_RV rv = c_find_objects_final_check(&call, hSession)
    if rv != CKR_OK:
        return rv
    s = session_lock(hSession)
    if s == NULL:
        return CKR_SESSION_HANDLE_INVALID
    rv = CKR_OK if s.finding else CKR_OPERATION_NOT_INITIALIZED
    s.finding = False
    s.nfound = 0
    session_unlock(s)
    return rv


cdef CK_RV _get_attribute_value "abi_get_attribute_value"(
        CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate,
        CK_ULONG ulCount) noexcept nogil:
    """c_get_attribute_value on a recorded object, by the same rules; an object that is not
    one (the cold path logs why) needs Python."""
    cdef call_t call
    cdef object_t e
    cdef const recorded_object *obj
    cdef const recorded_attr *a
    cdef slot_t *slot
    cdef bint visible
    cdef int seen = 0
    cdef CK_ULONG i
    cdef CK_RV rv = c_get_attribute_value_check(&call, hSession, hObject, pTemplate, ulCount)
    if rv != CKR_OK:
        return rv
    if not object_copy(hObject, &e) or e.slot != call.slot or e.recorded == NULL:
        return NEEDS_PYTHON
    slot = &g_abi.slots[e.slot]
    pthread_mutex_lock(&slot.lock)
    visible = not e.private or slot_user_logged_in(slot) or slot.login_user == CKU_SO
    pthread_mutex_unlock(&slot.lock)
    if not visible:
        return NEEDS_PYTHON
    obj = <const recorded_object *>e.recorded
    for i in range(ulCount):
        a = recorded_attribute(obj, pTemplate[i].type)
        if a == NULL:
            seen |= attribute_out(&pTemplate[i], ATTRIBUTE_INVALID, NULL, 0)
        else:
            seen |= attribute_out(&pTemplate[i], ATTRIBUTE_SENSITIVE if a.sensitive else 0,
                                  a.value, a.len)
    return attributes_rv(seen)


cdef bint pool_missing(CK_SESSION_HANDLE hSession) noexcept nogil:
    """An operation on the HSM is about to start in the session, whose slot has no pool yet
    and cannot get one (the entry point checks the session itself)."""
    cdef call_t call
    return session_call(&call, hSession) and compiled_pool(call.slot) == NULL


cdef CK_RV _sign_init "abi_sign_init"(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                                      CK_OBJECT_HANDLE hKey) noexcept nogil:
    if pool_missing(hSession):
        return NEEDS_PYTHON
    return c_sign_init(hSession, pMechanism, hKey)


cdef CK_RV _sign "abi_sign"(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                            CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) noexcept nogil:
    return c_sign(hSession, pData, ulDataLen, pSignature, pulSignatureLen)


cdef CK_RV _sign_update "abi_sign_update"(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart,
                                          CK_ULONG ulPartLen) noexcept nogil:
    return c_sign_update(hSession, pPart, ulPartLen)


cdef CK_RV _sign_final "abi_sign_final"(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature,
                                        CK_ULONG_PTR pulSignatureLen) noexcept nogil:
    return c_sign_final(hSession, pSignature, pulSignatureLen)


cdef CK_RV _decrypt_init "abi_decrypt_init"(CK_SESSION_HANDLE hSession,
                                            CK_MECHANISM_PTR pMechanism,
                                            CK_OBJECT_HANDLE hKey) noexcept nogil:
    if pool_missing(hSession):
        return NEEDS_PYTHON
    return c_decrypt_init(hSession, pMechanism, hKey)


cdef CK_RV _decrypt "abi_decrypt"(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedData,
                                  CK_ULONG ulEncryptedDataLen, CK_BYTE_PTR pData,
                                  CK_ULONG_PTR pulDataLen) noexcept nogil:
    return c_decrypt(hSession, pEncryptedData, ulEncryptedDataLen, pData, pulDataLen)


cdef CK_RV _decrypt_update "abi_decrypt_update"(CK_SESSION_HANDLE hSession,
                                                CK_BYTE_PTR pEncryptedPart,
                                                CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart,
                                                CK_ULONG_PTR pulPartLen) noexcept nogil:
    return c_decrypt_update(hSession, pEncryptedPart, ulEncryptedPartLen, pPart, pulPartLen)


cdef CK_RV _decrypt_final "abi_decrypt_final"(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastPart,
                                              CK_ULONG_PTR pulLastPartLen) noexcept nogil:
    return c_decrypt_final(hSession, pLastPart, pulLastPartLen)


cdef int _failures_waiting "abi_failures_waiting"() noexcept nogil:
    return failures_waiting()


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
    static int abi_compiled_start(const struct p11f_abi_start *start);
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
    static int abi_failures_waiting(void);
    static CK_RV abi_login(CK_SESSION_HANDLE, CK_USER_TYPE, CK_UTF8CHAR_PTR, CK_ULONG);
    static CK_RV abi_logout(CK_SESSION_HANDLE);
    static CK_RV abi_find_objects_init(CK_SESSION_HANDLE, CK_ATTRIBUTE_PTR, CK_ULONG);
    static CK_RV abi_find_objects(CK_SESSION_HANDLE, CK_OBJECT_HANDLE_PTR, CK_ULONG, CK_ULONG_PTR);
    static CK_RV abi_find_objects_final(CK_SESSION_HANDLE);
    static CK_RV abi_get_attribute_value(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, CK_ATTRIBUTE_PTR,
                                         CK_ULONG);
    static CK_RV abi_sign_init(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE);
    static CK_RV abi_sign(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR);
    static CK_RV abi_sign_update(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG);
    static CK_RV abi_sign_final(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG_PTR);
    static CK_RV abi_decrypt_init(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE);
    static CK_RV abi_decrypt(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR);
    static CK_RV abi_decrypt_update(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
                                    CK_ULONG_PTR);
    static CK_RV abi_decrypt_final(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG_PTR);

    int p11f_abi_compiled_start(const struct p11f_abi_start *start) {
        return abi_compiled_start(start);
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
    int p11f_abi_failures_waiting(void) {
        return abi_failures_waiting();
    }
    CK_RV p11f_abi_login(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin,
                         CK_ULONG ulPinLen) {
        return abi_login(hSession, userType, pPin, ulPinLen);
    }
    CK_RV p11f_abi_logout(CK_SESSION_HANDLE hSession) {
        return abi_logout(hSession);
    }
    CK_RV p11f_abi_find_objects_init(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate,
                                     CK_ULONG ulCount) {
        return abi_find_objects_init(hSession, pTemplate, ulCount);
    }
    CK_RV p11f_abi_find_objects(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject,
                                CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount) {
        return abi_find_objects(hSession, phObject, ulMaxObjectCount, pulObjectCount);
    }
    CK_RV p11f_abi_find_objects_final(CK_SESSION_HANDLE hSession) {
        return abi_find_objects_final(hSession);
    }
    CK_RV p11f_abi_get_attribute_value(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                                       CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) {
        return abi_get_attribute_value(hSession, hObject, pTemplate, ulCount);
    }
    CK_RV p11f_abi_sign_init(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                             CK_OBJECT_HANDLE hKey) {
        return abi_sign_init(hSession, pMechanism, hKey);
    }
    CK_RV p11f_abi_sign(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                        CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) {
        return abi_sign(hSession, pData, ulDataLen, pSignature, pulSignatureLen);
    }
    CK_RV p11f_abi_sign_update(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen) {
        return abi_sign_update(hSession, pPart, ulPartLen);
    }
    CK_RV p11f_abi_sign_final(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature,
                              CK_ULONG_PTR pulSignatureLen) {
        return abi_sign_final(hSession, pSignature, pulSignatureLen);
    }
    CK_RV p11f_abi_decrypt_init(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                                CK_OBJECT_HANDLE hKey) {
        return abi_decrypt_init(hSession, pMechanism, hKey);
    }
    CK_RV p11f_abi_decrypt(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedData,
                           CK_ULONG ulEncryptedDataLen, CK_BYTE_PTR pData,
                           CK_ULONG_PTR pulDataLen) {
        return abi_decrypt(hSession, pEncryptedData, ulEncryptedDataLen, pData, pulDataLen);
    }
    CK_RV p11f_abi_decrypt_update(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart,
                                  CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart,
                                  CK_ULONG_PTR pulPartLen) {
        return abi_decrypt_update(hSession, pEncryptedPart, ulEncryptedPartLen, pPart, pulPartLen);
    }
    CK_RV p11f_abi_decrypt_final(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastPart,
                                 CK_ULONG_PTR pulLastPartLen) {
        return abi_decrypt_final(hSession, pLastPart, pulLastPartLen);
    }
    """
