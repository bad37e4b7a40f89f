# find: finding objects (the token's keys, certificates and the application's session objects,
# under the login's visibility) and reading their attributes; the C_FindObjects*,
# C_GetAttributeValue and C_GetObjectSize implementations.
#
# Contract: the cold path: the session is checked without the GIL (the *_check functions),
# the rest runs with it. A search's handles come from the handle table (objects: object_bind)
# and wait in _state.finds until C_FindObjects hands them out.
# uses: state, sessions, objects, recorded, recording

from p11fast._decl.pkcs11 cimport (
    CK_ATTRIBUTE, CK_ATTRIBUTE_PTR, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE_PTR, CK_RV, CK_SESSION_HANDLE,
    CK_ULONG, CK_ULONG_PTR,
)

cdef CK_RV c_find_objects_init_check(call_t *call, CK_SESSION_HANDLE hSession,
                                   CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) noexcept nogil
cdef CK_RV c_find_objects_init(call_t *call, CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate,
                             CK_ULONG ulCount) except *
cdef CK_RV c_find_objects_check(call_t *call, CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject,
                              CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount) noexcept nogil
cdef CK_RV c_find_objects(call_t *call, CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject,
                        CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount) except *
cdef CK_RV c_find_objects_final_check(call_t *call, CK_SESSION_HANDLE hSession) noexcept nogil
cdef CK_RV c_find_objects_final(call_t *call, CK_SESSION_HANDLE hSession) except *
cdef CK_RV c_get_attribute_value_check(call_t *call, CK_SESSION_HANDLE hSession,
                                     CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate,
                                     CK_ULONG ulCount) noexcept nogil
cdef CK_RV c_get_attribute_value(call_t *call, CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                               CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) except *
cdef CK_RV c_get_object_size_check(call_t *call, CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                                 CK_ULONG_PTR pulSize) noexcept nogil
cdef CK_RV c_get_object_size(call_t *call, CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                           CK_ULONG_PTR pulSize) except *

# C_GetAttributeValue's rules for one entry of a template (attribute_out, with what it saw:
# 0 or one of these bits) and the template's answer from the bits of all (attributes_rv).
cdef enum:
    ATTRIBUTE_SENSITIVE = 1
    ATTRIBUTE_INVALID = 2
    ATTRIBUTE_TOO_SMALL = 4

cdef int attribute_out(CK_ATTRIBUTE *entry, int kind, const void *value,
                       CK_ULONG n) noexcept nogil
cdef CK_RV attributes_rv(int seen) noexcept nogil
