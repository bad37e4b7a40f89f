# manage: changing what the token holds — key generation, C_CreateObject (keys imported,
# certificates stored with their key, session objects held), C_DestroyObject, C_CopyObject
# (refused), C_SetAttributeValue (labels, IDs as renames, enable_set_attribute_value's
# aliases), the end of a session's objects; the login rules of each; the handle table kept in
# step (objects); the administrator's client per slot and the sweep of dead processes'
# session keys.
#
# Contract: the cold path: the session is checked without the GIL (the *_check functions,
# which also check the policy for key generation), the rest runs with it and raises the
# errors of p11fast.errors. release_session_objects never raises: failures are logged, keys
# left behind go at a later sweep.
# uses: state, errors, sessions, objects, ops

from p11fast._decl.pkcs11 cimport (
    CK_ATTRIBUTE_PTR, CK_MECHANISM_PTR, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE_PTR, CK_RV,
    CK_SESSION_HANDLE, CK_ULONG,
)

cdef object admin_of(int slot_index)
cdef void require_rw(call_t *s) except *
# Once per slot: the session keys of processes that died without removing them.
cdef void sweep_stale_session_keys(int slot_index) except *
# The session objects of `session` (None: every session) in `slot` (-1: every slot) end.
cdef void release_session_objects(session, int slot) noexcept

cdef CK_RV c_generate_key_pair_check(call_t *call, CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                                   CK_ATTRIBUTE_PTR pPublicKeyTemplate, CK_ULONG ulPublicKeyAttributeCount,
                                   CK_ATTRIBUTE_PTR pPrivateKeyTemplate, CK_ULONG ulPrivateKeyAttributeCount,
                                   CK_OBJECT_HANDLE_PTR phPublicKey, CK_OBJECT_HANDLE_PTR phPrivateKey) noexcept nogil
cdef CK_RV c_generate_key_pair(call_t *call, CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                             CK_ATTRIBUTE_PTR pPublicKeyTemplate, CK_ULONG ulPublicKeyAttributeCount,
                             CK_ATTRIBUTE_PTR pPrivateKeyTemplate, CK_ULONG ulPrivateKeyAttributeCount,
                             CK_OBJECT_HANDLE_PTR phPublicKey, CK_OBJECT_HANDLE_PTR phPrivateKey) except *
cdef CK_RV c_generate_key_check(call_t *call, CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                              CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
                              CK_OBJECT_HANDLE_PTR phKey) noexcept nogil
cdef CK_RV c_generate_key(call_t *call, CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                        CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phKey) except *
cdef CK_RV c_create_object_check(call_t *call, CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate,
                               CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phObject) noexcept nogil
cdef CK_RV c_create_object(call_t *call, CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate,
                         CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phObject) except *
cdef CK_RV c_copy_object_check(call_t *call, CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                             CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
                             CK_OBJECT_HANDLE_PTR phNewObject) noexcept nogil
cdef CK_RV c_copy_object(call_t *call, CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                       CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
                       CK_OBJECT_HANDLE_PTR phNewObject) except *
cdef CK_RV c_destroy_object_check(call_t *call, CK_SESSION_HANDLE hSession,
                                CK_OBJECT_HANDLE hObject) noexcept nogil
cdef CK_RV c_destroy_object(call_t *s, CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject) except *
cdef CK_RV c_set_attribute_value_check(call_t *call, CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                                     CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) noexcept nogil
cdef CK_RV c_set_attribute_value(call_t *s, CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                               CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) except *
