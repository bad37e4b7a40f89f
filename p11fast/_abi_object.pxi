# Objects: finding them, handles, attribute values.

cdef CK_ULONG ulong_of(bytes value):
    """An encoded CK_ULONG attribute (attrs.ulong) back to its value."""
    cdef CK_ULONG v = 0
    if len(value) == sizeof(CK_ULONG):
        memcpy(&v, <const char *>value, sizeof(CK_ULONG))
    return v


cdef CK_OBJECT_HANDLE register_object(int slot_index, obj) except 0:
    """The handle of an HSM-derived object: stable for the key ID and class while the module is
    initialised, refreshed in the C table so the sign path sees the key's current state."""
    from p11fast.attrs import CKA_KEY_TYPE, CKA_PRIVATE
    from p11fast.der import ec_params_for_key_type, field_len

    key = (slot_index, obj.key_id, obj.cls)
    cdef CK_OBJECT_HANDLE h = _state.handle_of.get(key, 0)
    cdef object_t entry
    cdef bytes key_id = obj.key_id.encode()
    memset(&entry, 0, sizeof(object_t))
    if len(key_id) > KEY_ID_MAX:
        raise ValueError(f"key ID longer than {KEY_ID_MAX}: {obj.key_id!r}")
    entry.slot = slot_index
    entry.cls = obj.cls
    entry.key_type = ulong_of(obj.attrs.get(CKA_KEY_TYPE, b""))
    entry.nethsm_mechs = nethsm_mechanism_bits(obj.mechanisms)
    entry.bits = obj.bits
    # EC and Edwards keys only; RSA, secret keys and objects the module holds have no field
    entry.field_len = field_len(obj.key_type) if ec_params_for_key_type(obj.key_type) else 0
    entry.private = obj.attrs.get(CKA_PRIVATE) == b"\x01"
    memcpy(entry.key_id, <const char *>key_id, len(key_id))
    cdef CK_ULONG index
    pthread_mutex_lock(&g_lock)
    if h == 0:
        h = object_alloc()
        if h == 0:
            pthread_mutex_unlock(&g_lock)
            raise MemoryError("object table full")
    index = h & ((1 << HANDLE_INDEX_BITS) - 1)
    entry.handle = h
    entry.generation = g_objects[index].generation
    memcpy(&g_objects[index], &entry, sizeof(object_t))
    pthread_mutex_unlock(&g_lock)
    _state.handle_of[key] = h
    _state.objects[h] = obj
    return h


cdef unsigned int nethsm_mechanism_bits(mechanisms) except? 0:
    cdef unsigned int bits = 0
    for i, name in enumerate(NETHSM_MECHANISMS):
        if name in mechanisms:
            bits |= 1u << i
    return bits


cdef enum:
    MAX_ATTRIBUTE_LEN = 1 << 20  # bytes of one template value


cdef list read_template(CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount):
    """The application's template as (type, value bytes) pairs. The one decoder of every
    template the module interprets (create, generate, set, find): a CK_BBOOL value must be 1
    byte and a CK_ULONG one sizeof(CK_ULONG), else CKR_ATTRIBUTE_VALUE_INVALID."""
    from p11fast.attrs import BOOL_ATTRS, ULONG_ATTRS
    from p11fast.errors import ArgumentsBad, AttributeValueInvalid

    template = []
    for i in range(ulCount):
        if pTemplate[i].pValue == NULL and pTemplate[i].ulValueLen != 0:
            raise ArgumentsBad(f"template entry {i} has a length but no value")
        kind = pTemplate[i].type
        if (kind in BOOL_ATTRS and pTemplate[i].ulValueLen != 1) or \
                (kind in ULONG_ATTRS and pTemplate[i].ulValueLen != sizeof(CK_ULONG)):
            raise AttributeValueInvalid(
                f"template entry {i}: attribute 0x{kind:x} of length {pTemplate[i].ulValueLen}")
        # Nothing a NetHSM stores comes near this; copying a wild length (0xFFFFFFFF with a
        # 3-byte buffer, as pkcs11-check sends) would read far past the caller's buffer.
        if pTemplate[i].ulValueLen > MAX_ATTRIBUTE_LEN:
            raise AttributeValueInvalid(
                f"template entry {i}: length {pTemplate[i].ulValueLen} exceeds {MAX_ATTRIBUTE_LEN}"
            )
        value = (<const char *>pTemplate[i].pValue)[:pTemplate[i].ulValueLen] if pTemplate[i].ulValueLen else b""
        template.append((kind, value))
    return template


cdef bint user_may_see(int slot_index, obj) except -1:
    from p11fast.attrs import CKA_PRIVATE

    cdef slot_t *slot = &g_slots[slot_index]
    cdef bint logged_in
    if obj.attrs.get(CKA_PRIVATE) != b"\x01":
        return True
    pthread_mutex_lock(&slot.lock)
    logged_in = slot_user_logged_in(slot) or slot.login_user == CKU_SO
    pthread_mutex_unlock(&slot.lock)
    return logged_in


cdef CK_RV find_init(CK_SESSION_HANDLE h, int slot_index, list template) except *:
    """The one place where HSM objects and session objects meet."""
    from p11fast.keyid import is_reserved

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
                found.append(register_object(slot_index, obj))
    # Session objects of every session of the application (PKCS#11 v3.0 §4.4).
    for obj in _state.session_objects.objects(slot_index, inventory):
        if obj.matches(template) and user_may_see(slot_index, obj):
            found.append(register_object(slot_index, obj))
    _state.finds[h] = found
    return CKR_OK


cdef CK_RV C_FindObjectsInit(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate,
                             CK_ULONG ulCount) noexcept nogil:
    cdef int slot_index
    if not p11f_is_initialized():
        return CKR_CRYPTOKI_NOT_INITIALIZED
    if not session_open(hSession, &slot_index):
        return CKR_SESSION_HANDLE_INVALID
    if pTemplate == NULL and ulCount != 0:
        return CKR_ARGUMENTS_BAD
    with gil:
        try:
            return find_init(hSession, slot_index, read_template(pTemplate, ulCount))
        except BaseException as exc:
            return rv_for(exc, b"C_FindObjectsInit")


cdef CK_RV C_FindObjects(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject,
                         CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount) noexcept nogil:
    cdef CK_ULONG n = 0
    if not p11f_is_initialized():
        return CKR_CRYPTOKI_NOT_INITIALIZED
    if not session_open(hSession, NULL):
        return CKR_SESSION_HANDLE_INVALID
    if pulObjectCount == NULL or (phObject == NULL and ulMaxObjectCount != 0):
        return CKR_ARGUMENTS_BAD
    with gil:
        pending = _state.finds.get(hSession)
        if pending is None:
            return CKR_OPERATION_NOT_INITIALIZED
        while n < ulMaxObjectCount and pending:
            phObject[n] = pending.pop(0)
            n += 1
    pulObjectCount[0] = n
    return CKR_OK


cdef CK_RV C_FindObjectsFinal(CK_SESSION_HANDLE hSession) noexcept nogil:
    if not p11f_is_initialized():
        return CKR_CRYPTOKI_NOT_INITIALIZED
    if not session_open(hSession, NULL):
        return CKR_SESSION_HANDLE_INVALID
    with gil:
        if _state.finds.pop(hSession, None) is None:
            return CKR_OPERATION_NOT_INITIALIZED
    return CKR_OK


cdef object visible_object(int slot_index, CK_OBJECT_HANDLE hObject):
    from p11fast.errors import ObjectHandleInvalid

    obj = _state.objects.get(hObject)
    if obj is None or _state.handle_of.get((slot_index, obj.key_id, obj.cls)) != hObject \
            or not user_may_see(slot_index, obj):
        raise ObjectHandleInvalid(f"object handle {hObject} is not an object of this token")
    return obj


cdef CK_RV get_attributes(int slot_index, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate,
                          CK_ULONG ulCount) except *:
    """The standard's rules for every entry: sensitive and unknown attributes get
    CK_UNAVAILABLE_INFORMATION, a NULL pValue asks for the length, a short buffer gets
    CK_UNAVAILABLE_INFORMATION; the other entries are still filled, and the call returns the
    one error seen (sensitive before invalid type before buffer too small)."""
    obj = visible_object(slot_index, hObject)
    cdef bint sensitive = False, invalid = False, too_small = False
    cdef bytes value
    for i in range(ulCount):
        kind = pTemplate[i].type
        if kind in obj.sensitive:
            pTemplate[i].ulValueLen = CK_UNAVAILABLE_INFORMATION
            sensitive = True
            continue
        value = obj.attrs.get(kind)
        if value is None:
            pTemplate[i].ulValueLen = CK_UNAVAILABLE_INFORMATION
            invalid = True
        elif pTemplate[i].pValue == NULL:
            pTemplate[i].ulValueLen = len(value)
        elif pTemplate[i].ulValueLen < <CK_ULONG>len(value):
            pTemplate[i].ulValueLen = CK_UNAVAILABLE_INFORMATION
            too_small = True
        else:
            memcpy(pTemplate[i].pValue, <const char *>value, len(value))
            pTemplate[i].ulValueLen = len(value)
    if sensitive:
        return CKR_ATTRIBUTE_SENSITIVE
    if invalid:
        return CKR_ATTRIBUTE_TYPE_INVALID
    if too_small:
        return CKR_BUFFER_TOO_SMALL
    return CKR_OK


cdef CK_RV C_GetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                               CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) noexcept nogil:
    cdef int slot_index
    if not p11f_is_initialized():
        return CKR_CRYPTOKI_NOT_INITIALIZED
    if not session_open(hSession, &slot_index):
        return CKR_SESSION_HANDLE_INVALID
    if pTemplate == NULL and ulCount != 0:
        return CKR_ARGUMENTS_BAD
    with gil:
        try:
            return get_attributes(slot_index, hObject, pTemplate, ulCount)
        except BaseException as exc:
            return rv_for(exc, b"C_GetAttributeValue")


cdef CK_RV C_GetObjectSize(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                           CK_ULONG_PTR pulSize) noexcept nogil:
    cdef int slot_index
    if not p11f_is_initialized():
        return CKR_CRYPTOKI_NOT_INITIALIZED
    if not session_open(hSession, &slot_index):
        return CKR_SESSION_HANDLE_INVALID
    if pulSize == NULL:
        return CKR_ARGUMENTS_BAD
    with gil:
        try:
            obj = visible_object(slot_index, hObject)
            pulSize[0] = sum(len(v) for v in obj.attrs.values())
        except BaseException as exc:
            return rv_for(exc, b"C_GetObjectSize")
    return CKR_OK
