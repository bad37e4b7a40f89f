# Object management: key generation, creating, destroying, copying and changing objects, the
# end of session objects. The templates are interpreted (p11fast.admin.templates) and the HSM
# requests sent (p11fast.admin.client) in plain Python; session objects are kept by
# p11fast.model.session_objects. Here: the arguments, the login rules, and the handle table
# kept in step (objects).

from p11fast._decl.pkcs11 cimport *
from p11fast._decl.posix cimport pthread_mutex_lock, pthread_mutex_unlock

cdef tuple HSM_CLASSES = (CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, CKO_SECRET_KEY, CKO_CERTIFICATE)
# Session objects: HSM session keys and what the module holds (data objects too).
cdef tuple SESSION_CLASSES = (CKO_DATA,) + HSM_CLASSES


cdef object admin_of(int slot_index):
    admin = _state.admins.get(slot_index)
    if admin is None:
        from p11fast.admin.client import Admin

        request = make_request(slot_index, _state.pools[slot_index])
        slot = _state.config.slots[slot_index]
        admin = Admin(request, slot.label, _state.log, slot.certificate_format)
        _state.admins[slot_index] = admin
    return admin


cdef void require_rw(call_t *s) except *:
    from p11fast.errors import SessionReadOnly

    if not (s.flags & CKF_RW_SESSION):
        raise SessionReadOnly("token objects change only in a read/write session")


cdef void require_login(int slot_index, bint so_may) except *:
    """PKCS#11 v3.0, C_CreateObject and the key generation functions: only public
    objects are created unless the normal user is logged in. `so_may`: HSM keys, which on a
    NetHSM only the Administrator can create (docs/conformance-notes.md)."""
    from p11fast.errors import UserNotLoggedIn

    cdef slot_t *slot = &g_abi.slots[slot_index]
    cdef bint ok
    pthread_mutex_lock(&slot.lock)
    ok = slot_user_logged_in(slot) or (so_may and slot.login_user == CKU_SO)
    pthread_mutex_unlock(&slot.lock)
    if not ok:
        raise UserNotLoggedIn("a private object is created only while the user is logged in")


cdef void require_so_for_trusted(int slot_index, dict t) except *:
    """PKCS#11 v3.0 §4.6.3/§4.8: only the SO may set CKA_TRUSTED to TRUE."""
    from p11fast.admin import templates
    from p11fast.attrs import CKA_TRUSTED
    from p11fast.errors import AttributeReadOnly

    cdef slot_t *slot = &g_abi.slots[slot_index]
    cdef bint so
    if not templates.flag(t, CKA_TRUSTED):
        return
    pthread_mutex_lock(&slot.lock)
    so = slot.login_user == CKU_SO
    pthread_mutex_unlock(&slot.lock)
    if not so:
        raise AttributeReadOnly("CKA_TRUSTED=TRUE: only the SO may set it")


cdef void sweep_stale_session_keys(int slot_index) except *:
    """Once per slot: delete the session keys of processes that died without cleaning up.
    Runs at the first administrator use (SO login, first session key), not at C_Initialize,
    which must stay fast and may have no administrator credentials."""
    from p11fast.model.session_keys import is_stale

    admin = admin_of(slot_index)
    if admin.swept:
        return
    try:
        admin.sweep(is_stale)
    except Exception as exc:
        rv_for(exc, b"removing stale session keys")


cdef list objects_of_key(int slot_index, str key_id):
    """The objects of an HSM key as the application sees them (session keys as session objects)."""
    from p11fast.model.session_objects import as_session_object
    from p11fast.errors import DeviceError

    store = _state.session_objects
    objs = _state.inventories[slot_index].get(key_id)
    if not objs:
        raise DeviceError(f"key {key_id} is not readable after the change")
    if store.owns(key_id):
        return [as_session_object(o, store.cka_id(key_id)) for o in objs]
    return objs


cdef dict create_key(call_t *s, spec, private):
    """Creates the key on the HSM (generated when `private` is None, else imported) and returns
    the handles of its objects by class."""
    from p11fast.policy import check_session_object
    from p11fast.model.session_keys import new_session_key_id

    require_login(s.slot, True)
    if spec.token:
        require_rw(s)
        spec.place(None)
    else:
        check_session_object(_state.config.policy)
        sweep_stale_session_keys(s.slot)
        spec.place(new_session_key_id())
    admin_of(s.slot).create(spec, private)
    inventory = _state.inventories[s.slot]
    inventory.invalidate(spec.key_id)
    if spec.value_len is not None:
        inventory.set_value_len(spec.key_id, spec.value_len)
    if not spec.token:
        _state.session_objects.add_hsm_key(s.handle, s.slot, spec.key_id, spec.cka_id)
    return {o.cls: object_bind(s.slot, o) for o in objects_of_key(s.slot, spec.key_id)}


cdef void rebind_handles(int slot_index, str old_id, str new_id) except *:
    """After a rename the key's objects keep their handles (a handle names an object, not an
    ID), now bound to the new key ID."""
    objects_rename(slot_index, old_id, new_id, HSM_CLASSES)
    _state.inventories[slot_index].invalidate(old_id)
    _state.inventories[slot_index].invalidate(new_id)
    for obj in objects_of_key(slot_index, new_id):
        object_bind(slot_index, obj)


# --- key generation ---------------------------------------------------------------------------

cdef CK_RV c_generate_key_pair_check(call_t *call, CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                                   CK_ATTRIBUTE_PTR pPublicKeyTemplate, CK_ULONG ulPublicKeyAttributeCount,
                                   CK_ATTRIBUTE_PTR pPrivateKeyTemplate, CK_ULONG ulPrivateKeyAttributeCount,
                                   CK_OBJECT_HANDLE_PTR phPublicKey, CK_OBJECT_HANDLE_PTR phPrivateKey) noexcept nogil:
    if not session_call(call, hSession):
        return CKR_SESSION_HANDLE_INVALID
    if (pMechanism == NULL or phPublicKey == NULL or phPrivateKey == NULL
            or (pPublicKeyTemplate == NULL and ulPublicKeyAttributeCount != 0)
            or (pPrivateKeyTemplate == NULL and ulPrivateKeyAttributeCount != 0)):
        return CKR_ARGUMENTS_BAD
    return policy_check_mechanism(b"C_GenerateKeyPair", pMechanism.mechanism)


cdef CK_RV c_generate_key_pair(call_t *call, CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                             CK_ATTRIBUTE_PTR pPublicKeyTemplate, CK_ULONG ulPublicKeyAttributeCount,
                             CK_ATTRIBUTE_PTR pPrivateKeyTemplate, CK_ULONG ulPrivateKeyAttributeCount,
                             CK_OBJECT_HANDLE_PTR phPublicKey, CK_OBJECT_HANDLE_PTR phPrivateKey) except *:
    from p11fast.admin import templates

    spec = templates.key_pair_spec(
        pMechanism.mechanism, has_parameter(pMechanism),
        templates.read(read_template(pPublicKeyTemplate, ulPublicKeyAttributeCount)),
        templates.read(read_template(pPrivateKeyTemplate, ulPrivateKeyAttributeCount)))
    handles = create_key(call, spec, None)
    phPublicKey[0] = handles[CKO_PUBLIC_KEY]
    phPrivateKey[0] = handles[CKO_PRIVATE_KEY]
    return CKR_OK


cdef CK_RV c_generate_key_check(call_t *call, CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                              CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
                              CK_OBJECT_HANDLE_PTR phKey) noexcept nogil:
    if not session_call(call, hSession):
        return CKR_SESSION_HANDLE_INVALID
    if pMechanism == NULL or phKey == NULL or (pTemplate == NULL and ulCount != 0):
        return CKR_ARGUMENTS_BAD
    return policy_check_mechanism(b"C_GenerateKey", pMechanism.mechanism)


cdef CK_RV c_generate_key(call_t *call, CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                        CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phKey) except *:
    from p11fast.admin import templates

    spec = templates.secret_key_spec(pMechanism.mechanism, has_parameter(pMechanism),
                                     templates.read(read_template(pTemplate, ulCount)))
    phKey[0] = create_key(call, spec, None)[CKO_SECRET_KEY]
    return CKR_OK


# --- creating, copying and destroying objects ---------------------------------------------------

cdef CK_OBJECT_HANDLE create_from_template(call_t *s, list template) except 0:
    from p11fast.admin import templates
    from p11fast.model import session_objects as so
    from p11fast.errors import TemplateIncomplete, TemplateInconsistent
    from p11fast.policy import check_key_import, check_session_object

    t = templates.read(template)
    require_so_for_trusted(s.slot, t)
    cls = templates.ulong(t, CKA_CLASS)
    if cls is None:
        raise TemplateIncomplete("C_CreateObject needs CKA_CLASS")
    if cls in (CKO_PRIVATE_KEY, CKO_SECRET_KEY):
        check_key_import(_state.config.policy)
        spec, private = templates.import_spec(cls, t)
        return create_key(s, spec, private)[cls]
    if templates.token(t):
        if cls != CKO_CERTIFICATE:
            raise TemplateInconsistent(
                f"class 0x{cls:x} as a token object: the HSM holds keys and their certificates only")
        return store_certificate(s, t)
    check_session_object(_state.config.policy)
    if cls not in so.HELD_CLASSES:
        raise TemplateInconsistent(f"session objects of class 0x{cls:x} are not supported")
    store = _state.session_objects
    obj = so.held_object(store.new_held_id(), cls, t)
    if obj.attrs.get(CKA_PRIVATE) == b"\x01":
        require_login(s.slot, False)
    store.hold(s.handle, s.slot, obj)
    return object_bind(s.slot, obj)


cdef CK_OBJECT_HANDLE store_certificate(call_t *s, dict t) except 0:
    """A token certificate is stored with the key of the same CKA_ID (PUT /keys/{id}/cert)."""
    from p11fast.admin import templates

    require_rw(s)
    aliases = _state.aliases if _state.config.enable_set_attribute_value else {}
    key_id, cert, label = templates.certificate_target(t, aliases)
    admin_of(s.slot).store_certificate(key_id, cert, label)
    _state.inventories[s.slot].invalidate(key_id)
    handles = {o.cls: object_bind(s.slot, o) for o in objects_of_key(s.slot, key_id)}
    return handles[CKO_CERTIFICATE]


cdef CK_RV c_create_object_check(call_t *call, CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate,
                               CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phObject) noexcept nogil:
    if not session_call(call, hSession):
        return CKR_SESSION_HANDLE_INVALID
    return CKR_ARGUMENTS_BAD if phObject == NULL or (pTemplate == NULL and ulCount != 0) else CKR_OK


cdef CK_RV c_create_object(call_t *call, CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate,
                         CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phObject) except *:
    phObject[0] = create_from_template(call, read_template(pTemplate, ulCount))
    return CKR_OK


cdef CK_RV c_copy_object_check(call_t *call, CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                             CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
                             CK_OBJECT_HANDLE_PTR phNewObject) noexcept nogil:
    if not session_call(call, hSession):
        return CKR_SESSION_HANDLE_INVALID
    return CKR_ARGUMENTS_BAD if phNewObject == NULL or (pTemplate == NULL and ulCount != 0) else CKR_OK


cdef CK_RV c_copy_object(call_t *call, CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                       CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
                       CK_OBJECT_HANDLE_PTR phNewObject) except *:
    from p11fast.errors import ActionProhibited

    visible_object(call.slot, hObject)
    raise ActionProhibited("objects are not copyable: an HSM key cannot be duplicated "
                           "(CKA_COPYABLE is FALSE)")


cdef CK_RV c_destroy_object(call_t *s, CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject) except *:
    from p11fast.attrs import CKA_DESTROYABLE
    from p11fast.errors import ActionProhibited

    obj = visible_object(s.slot, hObject)
    store = _state.session_objects
    key_id = obj.key_id
    if obj.cls == CKO_PUBLIC_KEY and (not store.owns(key_id) or store.is_hsm_key(key_id)):
        raise ActionProhibited("the public key of an HSM key pair goes with its private key: "
                               "destroy the private key")
    if store.owns(key_id) and not store.is_hsm_key(key_id) \
            and obj.attrs.get(CKA_DESTROYABLE) == b"\x00":
        raise ActionProhibited("the object was created with CKA_DESTROYABLE=FALSE")
    if store.owns(key_id):
        if store.is_hsm_key(key_id):
            admin_of(s.slot).delete_key(key_id, archive=False)
        store.forget(key_id)
        objects_forget(s.slot, key_id, SESSION_CLASSES)
        return CKR_OK
    require_rw(s)
    admin = admin_of(s.slot)
    if obj.cls == CKO_CERTIFICATE:
        admin.delete_certificate(key_id)
        objects_forget(s.slot, key_id, (CKO_CERTIFICATE,))
    else:
        admin.delete_key(key_id, _state.config.policy.key_invalidation)
        objects_forget(s.slot, key_id, HSM_CLASSES)
    _state.inventories[s.slot].invalidate(key_id)
    return CKR_OK


cdef CK_RV c_destroy_object_check(call_t *call, CK_SESSION_HANDLE hSession,
                                CK_OBJECT_HANDLE hObject) noexcept nogil:
    return CKR_OK if session_call(call, hSession) else CKR_SESSION_HANDLE_INVALID


# --- changing attributes ----------------------------------------------------------------------

cdef CK_RV c_set_attribute_value(call_t *s, CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                               CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) except *:
    from p11fast.admin import templates
    from p11fast.attrs import CKA_MODIFIABLE
    from p11fast.errors import ActionProhibited

    template = read_template(pTemplate, ulCount)
    obj = visible_object(s.slot, hObject)
    store = _state.session_objects
    held = store.owns(obj.key_id) and not store.is_hsm_key(obj.key_id)
    changes = templates.changes(obj.attrs, template,
                                templates.HELD_MUTABLE if held else templates.HSM_MUTABLE)
    require_so_for_trusted(s.slot, changes)
    if held and changes and obj.attrs.get(CKA_MODIFIABLE) == b"\x00":
        raise ActionProhibited("the object was created with CKA_MODIFIABLE=FALSE")
    if held:
        obj.attrs.update(changes)
    elif store.owns(obj.key_id):
        set_session_key_attributes(s.slot, obj.key_id, changes)
    elif _state.config.enable_set_attribute_value:
        remember_aliases(obj.key_id, changes)
    else:
        require_rw(s)
        set_token_key_attributes(s.slot, obj.key_id, changes)
    return CKR_OK


cdef void set_session_key_attributes(int slot_index, str key_id, dict changes) except *:
    """A session key keeps its reserved ID: a new CKA_ID is what it shows, not a rename."""
    from p11fast.attrs import CKA_ID, CKA_LABEL

    if CKA_LABEL in changes:
        admin_of(slot_index).set_label(key_id, changes[CKA_LABEL].decode())
    if CKA_ID in changes:
        _state.session_objects.set_cka_id(key_id, changes[CKA_ID])
    rebind_handles(slot_index, key_id, key_id)


cdef void set_token_key_attributes(int slot_index, str key_id, dict changes) except *:
    from p11fast.admin.templates import key_id_for
    from p11fast.attrs import CKA_ID, CKA_LABEL

    admin = admin_of(slot_index)
    # Before the label changes on the HSM: a CKA_ID that makes no key ID fails the call here.
    new_id = key_id_for(changes[CKA_ID]) if CKA_ID in changes else key_id
    if CKA_LABEL in changes:
        admin.set_label(key_id, changes[CKA_LABEL].decode())
    if new_id != key_id:
        admin.move(key_id, new_id)
        _state.log.info(f"renamed key {key_id} to {new_id}")
    rebind_handles(slot_index, key_id, new_id)


cdef void remember_aliases(str key_id, dict changes) except *:
    """enable_set_attribute_value (Java SunPKCS11, EJBCA): the key keeps its ID on the HSM; the
    name the application gave is remembered and mapped when it stores the key's certificate."""
    from p11fast.admin.templates import key_id_for
    from p11fast.attrs import CKA_ID, CKA_LABEL

    if CKA_ID in changes:
        _state.aliases[key_id_for(changes[CKA_ID])] = key_id
    if CKA_LABEL in changes:
        _state.aliases[changes[CKA_LABEL].decode()] = key_id
    _state.log.info(f"enable_set_attribute_value: key {key_id} is known by its new name until "
                    "its certificate is stored")


cdef CK_RV c_set_attribute_value_check(call_t *call, CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                                     CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) noexcept nogil:
    if not session_call(call, hSession):
        return CKR_SESSION_HANDLE_INVALID
    return CKR_ARGUMENTS_BAD if pTemplate == NULL and ulCount != 0 else CKR_OK


# --- the end of session objects -----------------------------------------------------------------

cdef void release_session_objects(session, int slot) noexcept:
    """Ends the session objects of `session` (None: of every session) in `slot` (-1: in every
    slot): module-held ones are forgotten, HSM session keys deleted. Failures are logged; keys
    left behind are removed by a later module's sweep."""
    if _state is None or not _state.has_session_objects():
        return
    store = _state.session_objects
    for key_id, slot_index, on_hsm in store.owned_by(session, slot):
        try:
            if on_hsm:
                admin_of(slot_index).delete_key(key_id, archive=False)
        except BaseException as exc:
            rv_for(exc, b"removing a session key")
        store.forget(key_id)
        try:
            objects_forget(slot_index, key_id, SESSION_CLASSES)
        except BaseException as exc:
            rv_for(exc, b"removing a session object")


