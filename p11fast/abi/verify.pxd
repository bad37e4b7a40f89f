# verify: signature verification — every sign mechanism checked here with the key's public
# half and OpenSSL over what the HSM signs (sign: signed_input), CMAC recomputed through the
# HSM (crypt); the C_Verify* implementations.
#
# Contract: nogil, no Python object once C_VerifyInit has read the public key (ops: the one
# GIL use, before the session is locked); no request but CMAC's, no login for public keys.
# C_Verify and C_VerifyFinal always end the operation.
# uses: state, sessions, mechanisms, ops, crypt, sign, codec/ecdsa, codec/hash

from p11fast._decl.pkcs11 cimport (
    CK_BYTE_PTR, CK_MECHANISM_PTR, CK_OBJECT_HANDLE, CK_RV, CK_SESSION_HANDLE, CK_ULONG,
)

# C_Verify (single, with the data) and C_VerifyFinal (the data given to C_VerifyUpdate).
cdef CK_RV verify_call(CK_SESSION_HANDLE hSession, bint single, const unsigned char *data, size_t n,
                       const unsigned char *sig, size_t sig_len) noexcept nogil


cdef inline CK_RV c_verify_init(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                              CK_OBJECT_HANDLE hKey) noexcept nogil:
    return key_op_init(hSession, OP_VERIFY, pMechanism, hKey, b"C_VerifyInit")


cdef inline CK_RV c_verify(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                         CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen) noexcept nogil:
    return verify_call(hSession, True, pData, ulDataLen, pSignature, ulSignatureLen)


cdef inline CK_RV c_verify_update(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart,
                                CK_ULONG ulPartLen) noexcept nogil:
    return op_update(hSession, OP_VERIFY, pPart, ulPartLen)


cdef inline CK_RV c_verify_final(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature,
                               CK_ULONG ulSignatureLen) noexcept nogil:
    return verify_call(hSession, False, NULL, 0, pSignature, ulSignatureLen)
