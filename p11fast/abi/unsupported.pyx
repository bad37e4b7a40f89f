# What the module does not offer: the checks those functions still make (unsupported.pxd).

from p11fast._decl.pkcs11 cimport *


cdef CK_RV not_supported(CK_SESSION_HANDLE hSession, bint pointers_ok) noexcept nogil:
    if not session_open(hSession, NULL):
        return CKR_SESSION_HANDLE_INVALID
    if not pointers_ok:
        return CKR_ARGUMENTS_BAD
    return CKR_FUNCTION_NOT_SUPPORTED


cdef CK_RV c_init_token(CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen,
                      CK_UTF8CHAR_PTR pLabel) noexcept nogil:
    if slotID >= <CK_ULONG>g_abi.nslots:
        return CKR_SLOT_ID_INVALID
    if (pPin == NULL and ulPinLen != 0) or pLabel == NULL:
        return CKR_ARGUMENTS_BAD
    # A NetHSM is provisioned through its own API, never re-initialised over PKCS#11.
    return CKR_FUNCTION_NOT_SUPPORTED


cdef CK_RV c_get_function_status(CK_SESSION_HANDLE hSession) noexcept nogil:
    return CKR_FUNCTION_NOT_PARALLEL if session_open(hSession, NULL) else CKR_SESSION_HANDLE_INVALID


cdef CK_RV c_cancel_function(CK_SESSION_HANDLE hSession) noexcept nogil:
    return CKR_FUNCTION_NOT_PARALLEL if session_open(hSession, NULL) else CKR_SESSION_HANDLE_INVALID
