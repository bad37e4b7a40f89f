# crypt: encryption and decryption — AES-CBC, CBC_PAD and ECB on the HSM (in chained requests
# of AES_CHUNK bytes), RSA decryption (raw, PKCS#1, OAEP) on the HSM, RSA encryption here with
# the public key (OpenSSL) — and AES-CMAC, built from the HSM's AES-CBC encryption; the
# C_Encrypt*/C_Decrypt* implementations.
#
# Contract: nogil, no Python object; every step holds the session's lock (crypt_call) and
# follows the output-buffer rule (ops: output_size). cmac runs under the caller's session lock
# and writes op.out_len bytes.
# uses: state, errors, sessions, mechanisms, ops, codec/hash, codec/wbuf

from p11fast._decl.pkcs11 cimport (
    CK_BYTE_PTR, CK_MECHANISM_PTR, CK_OBJECT_HANDLE, CK_RV, CK_SESSION_HANDLE, CK_ULONG,
    CK_ULONG_PTR,
)

# The steps of an encryption or decryption.
cdef enum:
    STEP_SINGLE = 0     # C_Encrypt / C_Decrypt
    STEP_UPDATE = 1
    STEP_FINAL = 2

# Every C_Encrypt*/C_Decrypt* step but Init, under the output-buffer rule.
cdef CK_RV crypt_call(CK_SESSION_HANDLE hSession, int which, int step, const unsigned char *data,
                      size_t n, CK_BYTE_PTR out, CK_ULONG_PTR out_len) noexcept nogil
cdef CK_RV cmac(op_t *op, const unsigned char *data, size_t n, unsigned char *out) noexcept nogil


cdef inline CK_RV c_encrypt_init(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                               CK_OBJECT_HANDLE hKey) noexcept nogil:
    return key_op_init(hSession, OP_ENCRYPT, pMechanism, hKey, b"C_EncryptInit")


cdef inline CK_RV c_encrypt(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                          CK_BYTE_PTR pEncryptedData, CK_ULONG_PTR pulEncryptedDataLen) noexcept nogil:
    return crypt_call(hSession, OP_ENCRYPT, STEP_SINGLE, pData, ulDataLen, pEncryptedData,
                      pulEncryptedDataLen)


cdef inline CK_RV c_encrypt_update(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen,
                                 CK_BYTE_PTR pEncryptedPart,
                                 CK_ULONG_PTR pulEncryptedPartLen) noexcept nogil:
    return crypt_call(hSession, OP_ENCRYPT, STEP_UPDATE, pPart, ulPartLen, pEncryptedPart,
                      pulEncryptedPartLen)


cdef inline CK_RV c_encrypt_final(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastEncryptedPart,
                                CK_ULONG_PTR pulLastEncryptedPartLen) noexcept nogil:
    return crypt_call(hSession, OP_ENCRYPT, STEP_FINAL, NULL, 0, pLastEncryptedPart,
                      pulLastEncryptedPartLen)


cdef inline CK_RV c_decrypt_init(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                               CK_OBJECT_HANDLE hKey) noexcept nogil:
    return key_op_init(hSession, OP_DECRYPT, pMechanism, hKey, b"C_DecryptInit")


cdef inline CK_RV c_decrypt(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedData,
                          CK_ULONG ulEncryptedDataLen, CK_BYTE_PTR pData,
                          CK_ULONG_PTR pulDataLen) noexcept nogil:
    return crypt_call(hSession, OP_DECRYPT, STEP_SINGLE, pEncryptedData, ulEncryptedDataLen, pData,
                      pulDataLen)


cdef inline CK_RV c_decrypt_update(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart,
                                 CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart,
                                 CK_ULONG_PTR pulPartLen) noexcept nogil:
    return crypt_call(hSession, OP_DECRYPT, STEP_UPDATE, pEncryptedPart, ulEncryptedPartLen, pPart,
                      pulPartLen)


cdef inline CK_RV c_decrypt_final(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastPart,
                                CK_ULONG_PTR pulLastPartLen) noexcept nogil:
    return crypt_call(hSession, OP_DECRYPT, STEP_FINAL, NULL, 0, pLastPart, pulLastPartLen)
