/* PKCS #11 v3.0 for p11fast: the function list.
 *
 * No include guard on purpose: this file is an X-macro list, included once per expansion. The
 * includer defines CK_PKCS11_FUNCTION_INFO(name, params, args), where params is the
 * parenthesised parameter list and args the parenthesised argument names, so a caller can both
 * declare a function and forward a call to it. The order is the standard's and fixes the layout
 * of CK_FUNCTION_LIST and CK_FUNCTION_LIST_3_0: never reorder. Defining CK_PKCS11_2_0_ONLY
 * stops the list after the 68 functions of version 2.40.
 */

/* General purpose */
CK_PKCS11_FUNCTION_INFO(C_Initialize, (CK_VOID_PTR pInitArgs), (pInitArgs))
CK_PKCS11_FUNCTION_INFO(C_Finalize, (CK_VOID_PTR pReserved), (pReserved))
CK_PKCS11_FUNCTION_INFO(C_GetInfo, (CK_INFO_PTR pInfo), (pInfo))
CK_PKCS11_FUNCTION_INFO(C_GetFunctionList, (CK_FUNCTION_LIST_PTR_PTR ppFunctionList),
                        (ppFunctionList))

/* Slot and token management */
CK_PKCS11_FUNCTION_INFO(C_GetSlotList,
                        (CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount),
                        (tokenPresent, pSlotList, pulCount))
CK_PKCS11_FUNCTION_INFO(C_GetSlotInfo, (CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo),
                        (slotID, pInfo))
CK_PKCS11_FUNCTION_INFO(C_GetTokenInfo, (CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo),
                        (slotID, pInfo))
CK_PKCS11_FUNCTION_INFO(C_GetMechanismList,
                        (CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList,
                         CK_ULONG_PTR pulCount),
                        (slotID, pMechanismList, pulCount))
CK_PKCS11_FUNCTION_INFO(C_GetMechanismInfo,
                        (CK_SLOT_ID slotID, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR pInfo),
                        (slotID, type, pInfo))
CK_PKCS11_FUNCTION_INFO(C_InitToken,
                        (CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen,
                         CK_UTF8CHAR_PTR pLabel),
                        (slotID, pPin, ulPinLen, pLabel))
CK_PKCS11_FUNCTION_INFO(C_InitPIN,
                        (CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen),
                        (hSession, pPin, ulPinLen))
CK_PKCS11_FUNCTION_INFO(C_SetPIN,
                        (CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pOldPin, CK_ULONG ulOldLen,
                         CK_UTF8CHAR_PTR pNewPin, CK_ULONG ulNewLen),
                        (hSession, pOldPin, ulOldLen, pNewPin, ulNewLen))

/* Session management */
CK_PKCS11_FUNCTION_INFO(C_OpenSession,
                        (CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication,
                         CK_NOTIFY Notify, CK_SESSION_HANDLE_PTR phSession),
                        (slotID, flags, pApplication, Notify, phSession))
CK_PKCS11_FUNCTION_INFO(C_CloseSession, (CK_SESSION_HANDLE hSession), (hSession))
CK_PKCS11_FUNCTION_INFO(C_CloseAllSessions, (CK_SLOT_ID slotID), (slotID))
CK_PKCS11_FUNCTION_INFO(C_GetSessionInfo, (CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo),
                        (hSession, pInfo))
CK_PKCS11_FUNCTION_INFO(C_GetOperationState,
                        (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pOperationState,
                         CK_ULONG_PTR pulOperationStateLen),
                        (hSession, pOperationState, pulOperationStateLen))
CK_PKCS11_FUNCTION_INFO(C_SetOperationState,
                        (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pOperationState,
                         CK_ULONG ulOperationStateLen, CK_OBJECT_HANDLE hEncryptionKey,
                         CK_OBJECT_HANDLE hAuthenticationKey),
                        (hSession, pOperationState, ulOperationStateLen, hEncryptionKey,
                         hAuthenticationKey))
CK_PKCS11_FUNCTION_INFO(C_Login,
                        (CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin,
                         CK_ULONG ulPinLen),
                        (hSession, userType, pPin, ulPinLen))
CK_PKCS11_FUNCTION_INFO(C_Logout, (CK_SESSION_HANDLE hSession), (hSession))

/* Object management */
CK_PKCS11_FUNCTION_INFO(C_CreateObject,
                        (CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
                         CK_OBJECT_HANDLE_PTR phObject),
                        (hSession, pTemplate, ulCount, phObject))
CK_PKCS11_FUNCTION_INFO(C_CopyObject,
                        (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                         CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
                         CK_OBJECT_HANDLE_PTR phNewObject),
                        (hSession, hObject, pTemplate, ulCount, phNewObject))
CK_PKCS11_FUNCTION_INFO(C_DestroyObject, (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject),
                        (hSession, hObject))
CK_PKCS11_FUNCTION_INFO(C_GetObjectSize,
                        (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                         CK_ULONG_PTR pulSize),
                        (hSession, hObject, pulSize))
CK_PKCS11_FUNCTION_INFO(C_GetAttributeValue,
                        (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                         CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount),
                        (hSession, hObject, pTemplate, ulCount))
CK_PKCS11_FUNCTION_INFO(C_SetAttributeValue,
                        (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                         CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount),
                        (hSession, hObject, pTemplate, ulCount))
CK_PKCS11_FUNCTION_INFO(C_FindObjectsInit,
                        (CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount),
                        (hSession, pTemplate, ulCount))
CK_PKCS11_FUNCTION_INFO(C_FindObjects,
                        (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject,
                         CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount),
                        (hSession, phObject, ulMaxObjectCount, pulObjectCount))
CK_PKCS11_FUNCTION_INFO(C_FindObjectsFinal, (CK_SESSION_HANDLE hSession), (hSession))

/* Encryption */
CK_PKCS11_FUNCTION_INFO(C_EncryptInit,
                        (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                         CK_OBJECT_HANDLE hKey),
                        (hSession, pMechanism, hKey))
CK_PKCS11_FUNCTION_INFO(C_Encrypt,
                        (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                         CK_BYTE_PTR pEncryptedData, CK_ULONG_PTR pulEncryptedDataLen),
                        (hSession, pData, ulDataLen, pEncryptedData, pulEncryptedDataLen))
CK_PKCS11_FUNCTION_INFO(C_EncryptUpdate,
                        (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen,
                         CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen),
                        (hSession, pPart, ulPartLen, pEncryptedPart, pulEncryptedPartLen))
CK_PKCS11_FUNCTION_INFO(C_EncryptFinal,
                        (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastEncryptedPart,
                         CK_ULONG_PTR pulLastEncryptedPartLen),
                        (hSession, pLastEncryptedPart, pulLastEncryptedPartLen))

/* Decryption */
CK_PKCS11_FUNCTION_INFO(C_DecryptInit,
                        (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                         CK_OBJECT_HANDLE hKey),
                        (hSession, pMechanism, hKey))
CK_PKCS11_FUNCTION_INFO(C_Decrypt,
                        (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedData,
                         CK_ULONG ulEncryptedDataLen, CK_BYTE_PTR pData, CK_ULONG_PTR pulDataLen),
                        (hSession, pEncryptedData, ulEncryptedDataLen, pData, pulDataLen))
CK_PKCS11_FUNCTION_INFO(C_DecryptUpdate,
                        (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart,
                         CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen),
                        (hSession, pEncryptedPart, ulEncryptedPartLen, pPart, pulPartLen))
CK_PKCS11_FUNCTION_INFO(C_DecryptFinal,
                        (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastPart,
                         CK_ULONG_PTR pulLastPartLen),
                        (hSession, pLastPart, pulLastPartLen))

/* Message digesting */
CK_PKCS11_FUNCTION_INFO(C_DigestInit, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism),
                        (hSession, pMechanism))
CK_PKCS11_FUNCTION_INFO(C_Digest,
                        (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                         CK_BYTE_PTR pDigest, CK_ULONG_PTR pulDigestLen),
                        (hSession, pData, ulDataLen, pDigest, pulDigestLen))
CK_PKCS11_FUNCTION_INFO(C_DigestUpdate,
                        (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen),
                        (hSession, pPart, ulPartLen))
CK_PKCS11_FUNCTION_INFO(C_DigestKey, (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hKey),
                        (hSession, hKey))
CK_PKCS11_FUNCTION_INFO(C_DigestFinal,
                        (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pDigest, CK_ULONG_PTR pulDigestLen),
                        (hSession, pDigest, pulDigestLen))

/* Signing and MACing */
CK_PKCS11_FUNCTION_INFO(C_SignInit,
                        (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                         CK_OBJECT_HANDLE hKey),
                        (hSession, pMechanism, hKey))
CK_PKCS11_FUNCTION_INFO(C_Sign,
                        (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                         CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen),
                        (hSession, pData, ulDataLen, pSignature, pulSignatureLen))
CK_PKCS11_FUNCTION_INFO(C_SignUpdate,
                        (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen),
                        (hSession, pPart, ulPartLen))
CK_PKCS11_FUNCTION_INFO(C_SignFinal,
                        (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature,
                         CK_ULONG_PTR pulSignatureLen),
                        (hSession, pSignature, pulSignatureLen))
CK_PKCS11_FUNCTION_INFO(C_SignRecoverInit,
                        (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                         CK_OBJECT_HANDLE hKey),
                        (hSession, pMechanism, hKey))
CK_PKCS11_FUNCTION_INFO(C_SignRecover,
                        (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                         CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen),
                        (hSession, pData, ulDataLen, pSignature, pulSignatureLen))

/* Verifying signatures and MACs */
CK_PKCS11_FUNCTION_INFO(C_VerifyInit,
                        (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                         CK_OBJECT_HANDLE hKey),
                        (hSession, pMechanism, hKey))
CK_PKCS11_FUNCTION_INFO(C_Verify,
                        (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                         CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen),
                        (hSession, pData, ulDataLen, pSignature, ulSignatureLen))
CK_PKCS11_FUNCTION_INFO(C_VerifyUpdate,
                        (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen),
                        (hSession, pPart, ulPartLen))
CK_PKCS11_FUNCTION_INFO(C_VerifyFinal,
                        (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature,
                         CK_ULONG ulSignatureLen),
                        (hSession, pSignature, ulSignatureLen))
CK_PKCS11_FUNCTION_INFO(C_VerifyRecoverInit,
                        (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                         CK_OBJECT_HANDLE hKey),
                        (hSession, pMechanism, hKey))
CK_PKCS11_FUNCTION_INFO(C_VerifyRecover,
                        (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature,
                         CK_ULONG ulSignatureLen, CK_BYTE_PTR pData, CK_ULONG_PTR pulDataLen),
                        (hSession, pSignature, ulSignatureLen, pData, pulDataLen))

/* Dual-function cryptographic operations */
CK_PKCS11_FUNCTION_INFO(C_DigestEncryptUpdate,
                        (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen,
                         CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen),
                        (hSession, pPart, ulPartLen, pEncryptedPart, pulEncryptedPartLen))
CK_PKCS11_FUNCTION_INFO(C_DecryptDigestUpdate,
                        (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart,
                         CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen),
                        (hSession, pEncryptedPart, ulEncryptedPartLen, pPart, pulPartLen))
CK_PKCS11_FUNCTION_INFO(C_SignEncryptUpdate,
                        (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen,
                         CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen),
                        (hSession, pPart, ulPartLen, pEncryptedPart, pulEncryptedPartLen))
CK_PKCS11_FUNCTION_INFO(C_DecryptVerifyUpdate,
                        (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart,
                         CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen),
                        (hSession, pEncryptedPart, ulEncryptedPartLen, pPart, pulPartLen))

/* Key management */
CK_PKCS11_FUNCTION_INFO(C_GenerateKey,
                        (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                         CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phKey),
                        (hSession, pMechanism, pTemplate, ulCount, phKey))
CK_PKCS11_FUNCTION_INFO(C_GenerateKeyPair,
                        (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                         CK_ATTRIBUTE_PTR pPublicKeyTemplate, CK_ULONG ulPublicKeyAttributeCount,
                         CK_ATTRIBUTE_PTR pPrivateKeyTemplate, CK_ULONG ulPrivateKeyAttributeCount,
                         CK_OBJECT_HANDLE_PTR phPublicKey, CK_OBJECT_HANDLE_PTR phPrivateKey),
                        (hSession, pMechanism, pPublicKeyTemplate, ulPublicKeyAttributeCount,
                         pPrivateKeyTemplate, ulPrivateKeyAttributeCount, phPublicKey,
                         phPrivateKey))
CK_PKCS11_FUNCTION_INFO(C_WrapKey,
                        (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                         CK_OBJECT_HANDLE hWrappingKey, CK_OBJECT_HANDLE hKey,
                         CK_BYTE_PTR pWrappedKey, CK_ULONG_PTR pulWrappedKeyLen),
                        (hSession, pMechanism, hWrappingKey, hKey, pWrappedKey, pulWrappedKeyLen))
CK_PKCS11_FUNCTION_INFO(C_UnwrapKey,
                        (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                         CK_OBJECT_HANDLE hUnwrappingKey, CK_BYTE_PTR pWrappedKey,
                         CK_ULONG ulWrappedKeyLen, CK_ATTRIBUTE_PTR pTemplate,
                         CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey),
                        (hSession, pMechanism, hUnwrappingKey, pWrappedKey, ulWrappedKeyLen,
                         pTemplate, ulAttributeCount, phKey))
CK_PKCS11_FUNCTION_INFO(C_DeriveKey,
                        (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                         CK_OBJECT_HANDLE hBaseKey, CK_ATTRIBUTE_PTR pTemplate,
                         CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey),
                        (hSession, pMechanism, hBaseKey, pTemplate, ulAttributeCount, phKey))

/* Random number generation */
CK_PKCS11_FUNCTION_INFO(C_SeedRandom,
                        (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSeed, CK_ULONG ulSeedLen),
                        (hSession, pSeed, ulSeedLen))
CK_PKCS11_FUNCTION_INFO(C_GenerateRandom,
                        (CK_SESSION_HANDLE hSession, CK_BYTE_PTR RandomData, CK_ULONG ulRandomLen),
                        (hSession, RandomData, ulRandomLen))

/* Parallel function management (legacy) */
CK_PKCS11_FUNCTION_INFO(C_GetFunctionStatus, (CK_SESSION_HANDLE hSession), (hSession))
CK_PKCS11_FUNCTION_INFO(C_CancelFunction, (CK_SESSION_HANDLE hSession), (hSession))

/* Slot events */
CK_PKCS11_FUNCTION_INFO(C_WaitForSlotEvent,
                        (CK_FLAGS flags, CK_SLOT_ID_PTR pSlot, CK_VOID_PTR pReserved),
                        (flags, pSlot, pReserved))

#ifndef CK_PKCS11_2_0_ONLY

/* Version 3.0: interfaces */
CK_PKCS11_FUNCTION_INFO(C_GetInterfaceList,
                        (CK_INTERFACE_PTR pInterfacesList, CK_ULONG_PTR pulCount),
                        (pInterfacesList, pulCount))
CK_PKCS11_FUNCTION_INFO(C_GetInterface,
                        (CK_UTF8CHAR_PTR pInterfaceName, CK_VERSION_PTR pVersion,
                         CK_INTERFACE_PTR_PTR ppInterface, CK_FLAGS flags),
                        (pInterfaceName, pVersion, ppInterface, flags))

/* Version 3.0: sessions */
CK_PKCS11_FUNCTION_INFO(C_LoginUser,
                        (CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin,
                         CK_ULONG ulPinLen, CK_UTF8CHAR_PTR pUsername, CK_ULONG ulUsernameLen),
                        (hSession, userType, pPin, ulPinLen, pUsername, ulUsernameLen))
CK_PKCS11_FUNCTION_INFO(C_SessionCancel, (CK_SESSION_HANDLE hSession, CK_FLAGS flags),
                        (hSession, flags))

/* Version 3.0: message-based encryption */
CK_PKCS11_FUNCTION_INFO(C_MessageEncryptInit,
                        (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                         CK_OBJECT_HANDLE hKey),
                        (hSession, pMechanism, hKey))
CK_PKCS11_FUNCTION_INFO(C_EncryptMessage,
                        (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
                         CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData,
                         CK_ULONG ulAssociatedDataLen, CK_BYTE_PTR pPlaintext,
                         CK_ULONG ulPlaintextLen, CK_BYTE_PTR pCiphertext,
                         CK_ULONG_PTR pulCiphertextLen),
                        (hSession, pParameter, ulParameterLen, pAssociatedData,
                         ulAssociatedDataLen, pPlaintext, ulPlaintextLen, pCiphertext,
                         pulCiphertextLen))
CK_PKCS11_FUNCTION_INFO(C_EncryptMessageBegin,
                        (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
                         CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData,
                         CK_ULONG ulAssociatedDataLen),
                        (hSession, pParameter, ulParameterLen, pAssociatedData,
                         ulAssociatedDataLen))
CK_PKCS11_FUNCTION_INFO(C_EncryptMessageNext,
                        (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
                         CK_ULONG ulParameterLen, CK_BYTE_PTR pPlaintextPart,
                         CK_ULONG ulPlaintextPartLen, CK_BYTE_PTR pCiphertextPart,
                         CK_ULONG_PTR pulCiphertextPartLen, CK_FLAGS flags),
                        (hSession, pParameter, ulParameterLen, pPlaintextPart,
                         ulPlaintextPartLen, pCiphertextPart, pulCiphertextPartLen, flags))
CK_PKCS11_FUNCTION_INFO(C_MessageEncryptFinal, (CK_SESSION_HANDLE hSession), (hSession))

/* Version 3.0: message-based decryption */
CK_PKCS11_FUNCTION_INFO(C_MessageDecryptInit,
                        (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                         CK_OBJECT_HANDLE hKey),
                        (hSession, pMechanism, hKey))
CK_PKCS11_FUNCTION_INFO(C_DecryptMessage,
                        (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
                         CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData,
                         CK_ULONG ulAssociatedDataLen, CK_BYTE_PTR pCiphertext,
                         CK_ULONG ulCiphertextLen, CK_BYTE_PTR pPlaintext,
                         CK_ULONG_PTR pulPlaintextLen),
                        (hSession, pParameter, ulParameterLen, pAssociatedData,
                         ulAssociatedDataLen, pCiphertext, ulCiphertextLen, pPlaintext,
                         pulPlaintextLen))
CK_PKCS11_FUNCTION_INFO(C_DecryptMessageBegin,
                        (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
                         CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData,
                         CK_ULONG ulAssociatedDataLen),
                        (hSession, pParameter, ulParameterLen, pAssociatedData,
                         ulAssociatedDataLen))
CK_PKCS11_FUNCTION_INFO(C_DecryptMessageNext,
                        (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
                         CK_ULONG ulParameterLen, CK_BYTE_PTR pCiphertextPart,
                         CK_ULONG ulCiphertextPartLen, CK_BYTE_PTR pPlaintextPart,
                         CK_ULONG_PTR pulPlaintextPartLen, CK_FLAGS flags),
                        (hSession, pParameter, ulParameterLen, pCiphertextPart,
                         ulCiphertextPartLen, pPlaintextPart, pulPlaintextPartLen, flags))
CK_PKCS11_FUNCTION_INFO(C_MessageDecryptFinal, (CK_SESSION_HANDLE hSession), (hSession))

/* Version 3.0: message-based signing */
CK_PKCS11_FUNCTION_INFO(C_MessageSignInit,
                        (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                         CK_OBJECT_HANDLE hKey),
                        (hSession, pMechanism, hKey))
CK_PKCS11_FUNCTION_INFO(C_SignMessage,
                        (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
                         CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                         CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen),
                        (hSession, pParameter, ulParameterLen, pData, ulDataLen, pSignature,
                         pulSignatureLen))
CK_PKCS11_FUNCTION_INFO(C_SignMessageBegin,
                        (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
                         CK_ULONG ulParameterLen),
                        (hSession, pParameter, ulParameterLen))
CK_PKCS11_FUNCTION_INFO(C_SignMessageNext,
                        (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
                         CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                         CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen),
                        (hSession, pParameter, ulParameterLen, pData, ulDataLen, pSignature,
                         pulSignatureLen))
CK_PKCS11_FUNCTION_INFO(C_MessageSignFinal, (CK_SESSION_HANDLE hSession), (hSession))

/* Version 3.0: message-based verification */
CK_PKCS11_FUNCTION_INFO(C_MessageVerifyInit,
                        (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                         CK_OBJECT_HANDLE hKey),
                        (hSession, pMechanism, hKey))
CK_PKCS11_FUNCTION_INFO(C_VerifyMessage,
                        (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
                         CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                         CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen),
                        (hSession, pParameter, ulParameterLen, pData, ulDataLen, pSignature,
                         ulSignatureLen))
CK_PKCS11_FUNCTION_INFO(C_VerifyMessageBegin,
                        (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
                         CK_ULONG ulParameterLen),
                        (hSession, pParameter, ulParameterLen))
CK_PKCS11_FUNCTION_INFO(C_VerifyMessageNext,
                        (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
                         CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                         CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen),
                        (hSession, pParameter, ulParameterLen, pData, ulDataLen, pSignature,
                         ulSignatureLen))
CK_PKCS11_FUNCTION_INFO(C_MessageVerifyFinal, (CK_SESSION_HANDLE hSession), (hSession))

#endif /* CK_PKCS11_2_0_ONLY */
