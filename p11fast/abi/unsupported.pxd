# unsupported: what the module does not offer (yet, or by nature of a network HSM) — the
# operation-state, recover, dual-function, wrap/unwrap/derive and message-based functions,
# C_LoginUser, C_SessionCancel, C_InitToken, the parallel-function stubs and the loader's own
# C_GetFunctionList/C_GetInterface* — each still checking what it can: the session handle,
# pointer/length pairs and required pointers (a NULL mechanism is CKR_ARGUMENTS_BAD), so a
# host gets the same answer for a bad call as from a complete module.
#
# Contract: nogil, no lock but a session lookup's, no state changed.
# uses: state, sessions

from p11fast._decl.pkcs11 cimport (
    CK_ATTRIBUTE_PTR, CK_BYTE_PTR, CK_FLAGS, CK_FUNCTION_LIST_PTR_PTR, CK_INTERFACE_PTR,
    CK_INTERFACE_PTR_PTR, CK_MECHANISM_PTR, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE_PTR, CK_RV,
    CK_SESSION_HANDLE, CK_SLOT_ID, CK_ULONG, CK_ULONG_PTR, CK_USER_TYPE, CK_UTF8CHAR_PTR,
    CK_VERSION_PTR, CK_VOID_PTR, CKR_FUNCTION_NOT_SUPPORTED,
)

# CKR_FUNCTION_NOT_SUPPORTED for an open session and good pointers.
cdef CK_RV not_supported(CK_SESSION_HANDLE hSession, bint pointers_ok) noexcept nogil
cdef CK_RV c_init_token(CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen,
                      CK_UTF8CHAR_PTR pLabel) noexcept nogil
cdef CK_RV c_get_function_status(CK_SESSION_HANDLE hSession) noexcept nogil
cdef CK_RV c_cancel_function(CK_SESSION_HANDLE hSession) noexcept nogil


# The loader answers C_GetFunctionList, C_GetInterfaceList and C_GetInterface itself.
cdef inline CK_RV c_get_function_list(CK_FUNCTION_LIST_PTR_PTR ppFunctionList) noexcept nogil:
    return CKR_FUNCTION_NOT_SUPPORTED


cdef inline CK_RV c_get_interface_list(CK_INTERFACE_PTR pInterfacesList, CK_ULONG_PTR pulCount) noexcept nogil:
    return CKR_FUNCTION_NOT_SUPPORTED


cdef inline CK_RV c_get_interface(CK_UTF8CHAR_PTR pInterfaceName, CK_VERSION_PTR pVersion,
                                CK_INTERFACE_PTR_PTR ppInterface, CK_FLAGS flags) noexcept nogil:
    return CKR_FUNCTION_NOT_SUPPORTED


cdef inline CK_RV c_get_operation_state(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pOperationState, CK_ULONG_PTR pulOperationStateLen) noexcept nogil:
    return not_supported(hSession, True)


cdef inline CK_RV c_set_operation_state(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pOperationState, CK_ULONG ulOperationStateLen, CK_OBJECT_HANDLE hEncryptionKey, CK_OBJECT_HANDLE hAuthenticationKey) noexcept nogil:
    return not_supported(hSession, (pOperationState != NULL or ulOperationStateLen == 0))


cdef inline CK_RV c_sign_recover_init(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) noexcept nogil:
    return not_supported(hSession, True)


cdef inline CK_RV c_sign_recover(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) noexcept nogil:
    return not_supported(hSession, (pData != NULL or ulDataLen == 0))


cdef inline CK_RV c_verify_recover_init(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) noexcept nogil:
    return not_supported(hSession, True)


cdef inline CK_RV c_verify_recover(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen, CK_BYTE_PTR pData, CK_ULONG_PTR pulDataLen) noexcept nogil:
    return not_supported(hSession, (pSignature != NULL or ulSignatureLen == 0))


cdef inline CK_RV c_digest_encrypt_update(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen) noexcept nogil:
    return not_supported(hSession, (pPart != NULL or ulPartLen == 0))


cdef inline CK_RV c_decrypt_digest_update(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen) noexcept nogil:
    return not_supported(hSession, (pEncryptedPart != NULL or ulEncryptedPartLen == 0))


cdef inline CK_RV c_sign_encrypt_update(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen) noexcept nogil:
    return not_supported(hSession, (pPart != NULL or ulPartLen == 0))


cdef inline CK_RV c_decrypt_verify_update(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen) noexcept nogil:
    return not_supported(hSession, (pEncryptedPart != NULL or ulEncryptedPartLen == 0))


cdef inline CK_RV c_wrap_key(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hWrappingKey, CK_OBJECT_HANDLE hKey, CK_BYTE_PTR pWrappedKey, CK_ULONG_PTR pulWrappedKeyLen) noexcept nogil:
    return not_supported(hSession, pMechanism != NULL and pulWrappedKeyLen != NULL)


cdef inline CK_RV c_unwrap_key(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hUnwrappingKey, CK_BYTE_PTR pWrappedKey, CK_ULONG ulWrappedKeyLen, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey) noexcept nogil:
    return not_supported(hSession, pMechanism != NULL and phKey != NULL and (pWrappedKey != NULL or ulWrappedKeyLen == 0) and (pTemplate != NULL or ulAttributeCount == 0))


cdef inline CK_RV c_derive_key(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hBaseKey, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey) noexcept nogil:
    return not_supported(hSession, pMechanism != NULL and phKey != NULL and (pTemplate != NULL or ulAttributeCount == 0))


cdef inline CK_RV c_login_user(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen, CK_UTF8CHAR_PTR pUsername, CK_ULONG ulUsernameLen) noexcept nogil:
    return not_supported(hSession, (pPin != NULL or ulPinLen == 0) and (pUsername != NULL or ulUsernameLen == 0))


cdef inline CK_RV c_session_cancel(CK_SESSION_HANDLE hSession, CK_FLAGS flags) noexcept nogil:
    return not_supported(hSession, True)


cdef inline CK_RV c_message_encrypt_init(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) noexcept nogil:
    return not_supported(hSession, True)


cdef inline CK_RV c_encrypt_message(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen, CK_BYTE_PTR pPlaintext, CK_ULONG ulPlaintextLen, CK_BYTE_PTR pCiphertext, CK_ULONG_PTR pulCiphertextLen) noexcept nogil:
    return not_supported(hSession, (pParameter != NULL or ulParameterLen == 0) and (pAssociatedData != NULL or ulAssociatedDataLen == 0) and (pPlaintext != NULL or ulPlaintextLen == 0))


cdef inline CK_RV c_encrypt_message_begin(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen) noexcept nogil:
    return not_supported(hSession, (pParameter != NULL or ulParameterLen == 0) and (pAssociatedData != NULL or ulAssociatedDataLen == 0))


cdef inline CK_RV c_encrypt_message_next(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pPlaintextPart, CK_ULONG ulPlaintextPartLen, CK_BYTE_PTR pCiphertextPart, CK_ULONG_PTR pulCiphertextPartLen, CK_FLAGS flags) noexcept nogil:
    return not_supported(hSession, (pParameter != NULL or ulParameterLen == 0) and (pPlaintextPart != NULL or ulPlaintextPartLen == 0))


cdef inline CK_RV c_message_encrypt_final(CK_SESSION_HANDLE hSession) noexcept nogil:
    return not_supported(hSession, True)


cdef inline CK_RV c_message_decrypt_init(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) noexcept nogil:
    return not_supported(hSession, True)


cdef inline CK_RV c_decrypt_message(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen, CK_BYTE_PTR pCiphertext, CK_ULONG ulCiphertextLen, CK_BYTE_PTR pPlaintext, CK_ULONG_PTR pulPlaintextLen) noexcept nogil:
    return not_supported(hSession, (pParameter != NULL or ulParameterLen == 0) and (pAssociatedData != NULL or ulAssociatedDataLen == 0) and (pCiphertext != NULL or ulCiphertextLen == 0))


cdef inline CK_RV c_decrypt_message_begin(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen) noexcept nogil:
    return not_supported(hSession, (pParameter != NULL or ulParameterLen == 0) and (pAssociatedData != NULL or ulAssociatedDataLen == 0))


cdef inline CK_RV c_decrypt_message_next(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pCiphertextPart, CK_ULONG ulCiphertextPartLen, CK_BYTE_PTR pPlaintextPart, CK_ULONG_PTR pulPlaintextPartLen, CK_FLAGS flags) noexcept nogil:
    return not_supported(hSession, (pParameter != NULL or ulParameterLen == 0) and (pCiphertextPart != NULL or ulCiphertextPartLen == 0))


cdef inline CK_RV c_message_decrypt_final(CK_SESSION_HANDLE hSession) noexcept nogil:
    return not_supported(hSession, True)


cdef inline CK_RV c_message_sign_init(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) noexcept nogil:
    return not_supported(hSession, True)


cdef inline CK_RV c_sign_message(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) noexcept nogil:
    return not_supported(hSession, (pParameter != NULL or ulParameterLen == 0) and (pData != NULL or ulDataLen == 0))


cdef inline CK_RV c_sign_message_begin(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen) noexcept nogil:
    return not_supported(hSession, (pParameter != NULL or ulParameterLen == 0))


cdef inline CK_RV c_sign_message_next(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) noexcept nogil:
    return not_supported(hSession, (pParameter != NULL or ulParameterLen == 0) and (pData != NULL or ulDataLen == 0))


cdef inline CK_RV c_message_sign_final(CK_SESSION_HANDLE hSession) noexcept nogil:
    return not_supported(hSession, True)


cdef inline CK_RV c_message_verify_init(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) noexcept nogil:
    return not_supported(hSession, True)


cdef inline CK_RV c_verify_message(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen) noexcept nogil:
    return not_supported(hSession, (pParameter != NULL or ulParameterLen == 0) and (pData != NULL or ulDataLen == 0) and (pSignature != NULL or ulSignatureLen == 0))


cdef inline CK_RV c_verify_message_begin(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen) noexcept nogil:
    return not_supported(hSession, (pParameter != NULL or ulParameterLen == 0))


cdef inline CK_RV c_verify_message_next(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen) noexcept nogil:
    return not_supported(hSession, (pParameter != NULL or ulParameterLen == 0) and (pData != NULL or ulDataLen == 0) and (pSignature != NULL or ulSignatureLen == 0))


cdef inline CK_RV c_message_verify_final(CK_SESSION_HANDLE hSession) noexcept nogil:
    return not_supported(hSession, True)
