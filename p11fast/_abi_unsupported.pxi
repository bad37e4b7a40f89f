# Functions the module does not offer (yet, or by nature of a network HSM). Each still checks
# what it can — initialisation, the session handle, pointer/length pairs and required pointers
# (a NULL mechanism is CKR_ARGUMENTS_BAD) — so a host gets the
# same answer for a bad call as from a complete module.


cdef CK_RV session_checked(CK_SESSION_HANDLE hSession) noexcept nogil:
    if not p11f_is_initialized():
        return CKR_CRYPTOKI_NOT_INITIALIZED
    return CKR_OK if session_open(hSession, NULL) else CKR_SESSION_HANDLE_INVALID


cdef CK_RV not_supported(CK_SESSION_HANDLE hSession, bint pointers_ok) noexcept nogil:
    cdef CK_RV rv = session_checked(hSession)
    if rv != CKR_OK:
        return rv
    if not pointers_ok:
        return CKR_ARGUMENTS_BAD
    return CKR_FUNCTION_NOT_SUPPORTED

cdef CK_RV C_GetOperationState(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pOperationState, CK_ULONG_PTR pulOperationStateLen) noexcept nogil:
    return not_supported(hSession, True)

cdef CK_RV C_SetOperationState(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pOperationState, CK_ULONG ulOperationStateLen, CK_OBJECT_HANDLE hEncryptionKey, CK_OBJECT_HANDLE hAuthenticationKey) noexcept nogil:
    return not_supported(hSession, (pOperationState != NULL or ulOperationStateLen == 0))

cdef CK_RV C_SignRecoverInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) noexcept nogil:
    return not_supported(hSession, True)

cdef CK_RV C_SignRecover(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) noexcept nogil:
    return not_supported(hSession, (pData != NULL or ulDataLen == 0))

cdef CK_RV C_VerifyRecoverInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) noexcept nogil:
    return not_supported(hSession, True)

cdef CK_RV C_VerifyRecover(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen, CK_BYTE_PTR pData, CK_ULONG_PTR pulDataLen) noexcept nogil:
    return not_supported(hSession, (pSignature != NULL or ulSignatureLen == 0))

cdef CK_RV C_DigestEncryptUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen) noexcept nogil:
    return not_supported(hSession, (pPart != NULL or ulPartLen == 0))

cdef CK_RV C_DecryptDigestUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen) noexcept nogil:
    return not_supported(hSession, (pEncryptedPart != NULL or ulEncryptedPartLen == 0))

cdef CK_RV C_SignEncryptUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen) noexcept nogil:
    return not_supported(hSession, (pPart != NULL or ulPartLen == 0))

cdef CK_RV C_DecryptVerifyUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen) noexcept nogil:
    return not_supported(hSession, (pEncryptedPart != NULL or ulEncryptedPartLen == 0))

cdef CK_RV C_WrapKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hWrappingKey, CK_OBJECT_HANDLE hKey, CK_BYTE_PTR pWrappedKey, CK_ULONG_PTR pulWrappedKeyLen) noexcept nogil:
    return not_supported(hSession, pMechanism != NULL and pulWrappedKeyLen != NULL)

cdef CK_RV C_UnwrapKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hUnwrappingKey, CK_BYTE_PTR pWrappedKey, CK_ULONG ulWrappedKeyLen, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey) noexcept nogil:
    return not_supported(hSession, pMechanism != NULL and phKey != NULL and (pWrappedKey != NULL or ulWrappedKeyLen == 0) and (pTemplate != NULL or ulAttributeCount == 0))

cdef CK_RV C_DeriveKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hBaseKey, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey) noexcept nogil:
    return not_supported(hSession, pMechanism != NULL and phKey != NULL and (pTemplate != NULL or ulAttributeCount == 0))

cdef CK_RV C_LoginUser(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen, CK_UTF8CHAR_PTR pUsername, CK_ULONG ulUsernameLen) noexcept nogil:
    return not_supported(hSession, (pPin != NULL or ulPinLen == 0) and (pUsername != NULL or ulUsernameLen == 0))

cdef CK_RV C_SessionCancel(CK_SESSION_HANDLE hSession, CK_FLAGS flags) noexcept nogil:
    return not_supported(hSession, True)

cdef CK_RV C_MessageEncryptInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) noexcept nogil:
    return not_supported(hSession, True)

cdef CK_RV C_EncryptMessage(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen, CK_BYTE_PTR pPlaintext, CK_ULONG ulPlaintextLen, CK_BYTE_PTR pCiphertext, CK_ULONG_PTR pulCiphertextLen) noexcept nogil:
    return not_supported(hSession, (pParameter != NULL or ulParameterLen == 0) and (pAssociatedData != NULL or ulAssociatedDataLen == 0) and (pPlaintext != NULL or ulPlaintextLen == 0))

cdef CK_RV C_EncryptMessageBegin(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen) noexcept nogil:
    return not_supported(hSession, (pParameter != NULL or ulParameterLen == 0) and (pAssociatedData != NULL or ulAssociatedDataLen == 0))

cdef CK_RV C_EncryptMessageNext(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pPlaintextPart, CK_ULONG ulPlaintextPartLen, CK_BYTE_PTR pCiphertextPart, CK_ULONG_PTR pulCiphertextPartLen, CK_FLAGS flags) noexcept nogil:
    return not_supported(hSession, (pParameter != NULL or ulParameterLen == 0) and (pPlaintextPart != NULL or ulPlaintextPartLen == 0))

cdef CK_RV C_MessageEncryptFinal(CK_SESSION_HANDLE hSession) noexcept nogil:
    return not_supported(hSession, True)

cdef CK_RV C_MessageDecryptInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) noexcept nogil:
    return not_supported(hSession, True)

cdef CK_RV C_DecryptMessage(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen, CK_BYTE_PTR pCiphertext, CK_ULONG ulCiphertextLen, CK_BYTE_PTR pPlaintext, CK_ULONG_PTR pulPlaintextLen) noexcept nogil:
    return not_supported(hSession, (pParameter != NULL or ulParameterLen == 0) and (pAssociatedData != NULL or ulAssociatedDataLen == 0) and (pCiphertext != NULL or ulCiphertextLen == 0))

cdef CK_RV C_DecryptMessageBegin(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen) noexcept nogil:
    return not_supported(hSession, (pParameter != NULL or ulParameterLen == 0) and (pAssociatedData != NULL or ulAssociatedDataLen == 0))

cdef CK_RV C_DecryptMessageNext(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pCiphertextPart, CK_ULONG ulCiphertextPartLen, CK_BYTE_PTR pPlaintextPart, CK_ULONG_PTR pulPlaintextPartLen, CK_FLAGS flags) noexcept nogil:
    return not_supported(hSession, (pParameter != NULL or ulParameterLen == 0) and (pCiphertextPart != NULL or ulCiphertextPartLen == 0))

cdef CK_RV C_MessageDecryptFinal(CK_SESSION_HANDLE hSession) noexcept nogil:
    return not_supported(hSession, True)

cdef CK_RV C_MessageSignInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) noexcept nogil:
    return not_supported(hSession, True)

cdef CK_RV C_SignMessage(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) noexcept nogil:
    return not_supported(hSession, (pParameter != NULL or ulParameterLen == 0) and (pData != NULL or ulDataLen == 0))

cdef CK_RV C_SignMessageBegin(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen) noexcept nogil:
    return not_supported(hSession, (pParameter != NULL or ulParameterLen == 0))

cdef CK_RV C_SignMessageNext(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) noexcept nogil:
    return not_supported(hSession, (pParameter != NULL or ulParameterLen == 0) and (pData != NULL or ulDataLen == 0))

cdef CK_RV C_MessageSignFinal(CK_SESSION_HANDLE hSession) noexcept nogil:
    return not_supported(hSession, True)

cdef CK_RV C_MessageVerifyInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) noexcept nogil:
    return not_supported(hSession, True)

cdef CK_RV C_VerifyMessage(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen) noexcept nogil:
    return not_supported(hSession, (pParameter != NULL or ulParameterLen == 0) and (pData != NULL or ulDataLen == 0) and (pSignature != NULL or ulSignatureLen == 0))

cdef CK_RV C_VerifyMessageBegin(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen) noexcept nogil:
    return not_supported(hSession, (pParameter != NULL or ulParameterLen == 0))

cdef CK_RV C_VerifyMessageNext(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen) noexcept nogil:
    return not_supported(hSession, (pParameter != NULL or ulParameterLen == 0) and (pData != NULL or ulDataLen == 0) and (pSignature != NULL or ulSignatureLen == 0))

cdef CK_RV C_MessageVerifyFinal(CK_SESSION_HANDLE hSession) noexcept nogil:
    return not_supported(hSession, True)


cdef CK_RV C_InitToken(CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen,
                       CK_UTF8CHAR_PTR pLabel) noexcept nogil:
    if not p11f_is_initialized():
        return CKR_CRYPTOKI_NOT_INITIALIZED
    if slotID >= <CK_ULONG>g_nslots:
        return CKR_SLOT_ID_INVALID
    if (pPin == NULL and ulPinLen != 0) or pLabel == NULL:
        return CKR_ARGUMENTS_BAD
    # A NetHSM is provisioned through its own API, never re-initialised over PKCS#11.
    return CKR_FUNCTION_NOT_SUPPORTED


cdef CK_RV C_GetFunctionStatus(CK_SESSION_HANDLE hSession) noexcept nogil:
    cdef CK_RV rv = session_checked(hSession)
    return rv if rv != CKR_OK else CKR_FUNCTION_NOT_PARALLEL


cdef CK_RV C_CancelFunction(CK_SESSION_HANDLE hSession) noexcept nogil:
    cdef CK_RV rv = session_checked(hSession)
    return rv if rv != CKR_OK else CKR_FUNCTION_NOT_PARALLEL


cdef CK_RV C_GetFunctionList(void *ppFunctionList) noexcept nogil:
    # The loader answers C_GetFunctionList, C_GetInterfaceList and C_GetInterface itself.
    return CKR_FUNCTION_NOT_SUPPORTED


cdef CK_RV C_GetInterfaceList(void *pInterfacesList, CK_ULONG_PTR pulCount) noexcept nogil:
    return CKR_FUNCTION_NOT_SUPPORTED


cdef CK_RV C_GetInterface(CK_UTF8CHAR_PTR pInterfaceName, void *pVersion, void *ppInterface,
                          CK_FLAGS flags) noexcept nogil:
    return CKR_FUNCTION_NOT_SUPPORTED
