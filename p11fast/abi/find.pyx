# Finding objects and reading their attributes.

from libc.string cimport memcpy

from p11fast._decl.pkcs11 cimport *


cdef CK_RV c_find_objects_init_check(call_t *call, CK_SESSION_HANDLE hSession,
                                   CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) noexcept nogil:
    if not session_call(call, hSession):
        return CKR_SESSION_HANDLE_INVALID
    return CKR_ARGUMENTS_BAD if pTemplate == NULL and ulCount != 0 else CKR_OK


cdef CK_RV c_find_objects_init(call_t *call, CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate,
                             CK_ULONG ulCount) except *:
    """The one place where HSM objects and session objects meet."""
    from p11fast.keyid import is_reserved

    cdef CK_SESSION_HANDLE h = call.handle
    cdef int slot_index = call.slot
    cdef search_t search
    template = read_template(pTemplate, ulCount)
    # Searches of sessions closed without C_FindObjectsFinal are dropped here, so the GIL is
    # never needed while a session lock is held.
    for stale in [k for k in _state.finds if not session_open(k, NULL)]:
        del _state.finds[stale]
    if h in _state.finds:
        return CKR_OPERATION_ACTIVE
    inventory = _state.inventories[slot_index]
    found = []
    if current_auth(slot_index, False) is not None:
        for obj in inventory.find(template):
            # The module's own session and archived keys are not token objects.
            if not is_reserved(obj.key_id) and user_may_see(slot_index, obj):
                found.append(object_bind(slot_index, obj))
        # What a later process's compiled search compares the HSM's answer with (recorded).
        if recordable_template(pTemplate, ulCount, &search):
            record_find(slot_index, &search)
    # Session objects of every session of the application (PKCS#11 v3.0 §4.4); none before the
    # first is made, and a process that makes none never imports their model.
    if _state.has_session_objects():
        for obj in _state.session_objects.objects(slot_index, inventory):
            if obj.matches(template) and user_may_see(slot_index, obj):
                found.append(object_bind(slot_index, obj))
    _state.finds[h] = found
    return CKR_OK


cdef CK_RV session_only(call_t *call, CK_SESSION_HANDLE hSession) noexcept nogil:
    return CKR_OK if session_call(call, hSession) else CKR_SESSION_HANDLE_INVALID


cdef CK_RV c_find_objects_check(call_t *call, CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject,
                              CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount) noexcept nogil:
    if not session_call(call, hSession):
        return CKR_SESSION_HANDLE_INVALID
    if pulObjectCount == NULL or (phObject == NULL and ulMaxObjectCount != 0):
        return CKR_ARGUMENTS_BAD
    return CKR_OK


cdef CK_RV c_find_objects(call_t *call, CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject,
                        CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount) except *:
    cdef CK_ULONG n = 0
    pending = _state.finds.get(hSession)
    if pending is None:
        return CKR_OPERATION_NOT_INITIALIZED
    while n < ulMaxObjectCount and pending:
        phObject[n] = pending.pop(0)
        n += 1
    pulObjectCount[0] = n
    return CKR_OK


cdef CK_RV c_find_objects_final_check(call_t *call, CK_SESSION_HANDLE hSession) noexcept nogil:
    return session_only(call, hSession)


cdef CK_RV c_find_objects_final(call_t *call, CK_SESSION_HANDLE hSession) except *:
    if _state.finds.pop(hSession, None) is None:
        return CKR_OPERATION_NOT_INITIALIZED
    return CKR_OK


cdef CK_RV c_get_attribute_value_check(call_t *call, CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                                     CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) noexcept nogil:
    if not session_call(call, hSession):
        return CKR_SESSION_HANDLE_INVALID
    return CKR_ARGUMENTS_BAD if pTemplate == NULL and ulCount != 0 else CKR_OK


cdef CK_RV c_get_attribute_value(call_t *call, CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                               CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) except *:
    """The standard's rules for every entry: sensitive and unknown attributes get
    CK_UNAVAILABLE_INFORMATION, a NULL pValue asks for the length, a short buffer gets
    CK_UNAVAILABLE_INFORMATION; the other entries are still filled, and the call returns the
    one error seen (sensitive before invalid type before buffer too small)."""
    obj = visible_object(call.slot, hObject)
    cdef int seen = 0
    cdef bytes value
    for i in range(ulCount):
        kind = pTemplate[i].type
        if kind in obj.sensitive:
            seen |= attribute_out(&pTemplate[i], ATTRIBUTE_SENSITIVE, NULL, 0)
            continue
        value = obj.attrs.get(kind)
        if value is None:
            seen |= attribute_out(&pTemplate[i], ATTRIBUTE_INVALID, NULL, 0)
        else:
            seen |= attribute_out(&pTemplate[i], 0, <const char *>value, len(value))
    return attributes_rv(seen)


cdef int attribute_out(CK_ATTRIBUTE *entry, int kind, const void *value,
                       CK_ULONG n) noexcept nogil:
    """The standard's rule for one entry of C_GetAttributeValue, for every object: a sensitive
    or unknown attribute (kind) gets CK_UNAVAILABLE_INFORMATION, a NULL pValue asks for the
    length, a short buffer gets CK_UNAVAILABLE_INFORMATION; returns what was seen."""
    if kind:
        entry.ulValueLen = CK_UNAVAILABLE_INFORMATION
        return kind
    if entry.pValue == NULL:
        entry.ulValueLen = n
    elif entry.ulValueLen < n:
        entry.ulValueLen = CK_UNAVAILABLE_INFORMATION
        return ATTRIBUTE_TOO_SMALL
    else:
        memcpy(entry.pValue, value, n)
        entry.ulValueLen = n
    return 0


cdef CK_RV attributes_rv(int seen) noexcept nogil:
    """The one error of a template: sensitive before invalid type before buffer too small."""
    if seen & ATTRIBUTE_SENSITIVE:
        return CKR_ATTRIBUTE_SENSITIVE
    if seen & ATTRIBUTE_INVALID:
        return CKR_ATTRIBUTE_TYPE_INVALID
    if seen & ATTRIBUTE_TOO_SMALL:
        return CKR_BUFFER_TOO_SMALL
    return CKR_OK


cdef CK_RV c_get_object_size_check(call_t *call, CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                                 CK_ULONG_PTR pulSize) noexcept nogil:
    if not session_call(call, hSession):
        return CKR_SESSION_HANDLE_INVALID
    return CKR_ARGUMENTS_BAD if pulSize == NULL else CKR_OK


cdef CK_RV c_get_object_size(call_t *call, CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                           CK_ULONG_PTR pulSize) except *:
    obj = visible_object(call.slot, hObject)
    pulSize[0] = sum(len(v) for v in obj.attrs.values())
    return CKR_OK
