# sign: the sign path — what the HSM signs for the data (hashed here when the mechanism hashes,
# a DigestInfo prefix, ECDSA's digest rule), the signature from the HSM in PKCS#11's format,
# CMAC through crypt; the C_Sign* implementations.
#
# Contract: nogil from C_SignInit to the return of C_Sign, no Python object, no GIL (a failure
# is logged once the session is unlocked); the request runs on the calling thread under the
# session's lock. What C_SignInit and C_Sign run on every signature is inline here, so they
# cost no call more than their own. signed_input and final_digest are verification's too.
# uses: state, errors, sessions, mechanisms, ops, crypt, codec/ecdsa, codec/hash

from p11fast._decl.pkcs11 cimport (
    CK_BYTE_PTR, CK_MECHANISM_PTR, CK_OBJECT_HANDLE, CK_RV, CK_SESSION_HANDLE, CK_ULONG,
    CK_ULONG_PTR, CKR_ARGUMENTS_BAD, CKR_OK, CKR_OPERATION_ACTIVE,
)

cdef enum:
    # Longest message the sign path builds locally: a SHA-512 DigestInfo.
    MSG_MAX = 128

# Room for the data a signature covers when it is built locally (signed_input).
cdef struct msg_buf:
    unsigned char digest[HASH_MAX_LEN]
    unsigned char msg[MSG_MAX]

# The final data of a sign or verify operation, hashed when the mechanism hashes.
cdef CK_RV final_digest(op_t *op, const unsigned char *data, size_t n, msg_buf *buf,
                        const unsigned char **msg, size_t *msg_len) noexcept nogil
# The final data of a sign or verify operation as the HSM signs it.
cdef CK_RV signed_input(op_t *op, const unsigned char *data, size_t n, msg_buf *buf,
                        const unsigned char **msg, size_t *msg_len) noexcept nogil
cdef CK_RV sign_final_data(op_t *op, const unsigned char *data, size_t n,
                           CK_BYTE_PTR out) noexcept nogil
cdef CK_RV c_sign_final(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature,
                      CK_ULONG_PTR pulSignatureLen) noexcept nogil


cdef inline CK_RV c_sign_init(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                            CK_OBJECT_HANDLE hKey) noexcept nogil:
    return key_op_init(hSession, OP_SIGN, pMechanism, hKey, b"C_SignInit")


cdef inline CK_RV sign_end(session_t *s, const unsigned char *data, size_t n,
                           CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) noexcept nogil:
    """C_Sign's and C_SignFinal's last step, under the output-buffer rule; unlocks s."""
    cdef bint done
    cdef CK_RV rv = output_size(&s.sign, pSignature, pulSignatureLen, &done)
    if not done:
        rv = sign_final_data(&s.sign, data, n, pSignature)
        if rv == CKR_OK:
            pulSignatureLen[0] = s.sign.out_len
        op_reset(&s.sign)
    session_unlock(s)
    return rv


cdef inline CK_RV c_sign(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                         CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) noexcept nogil:
    cdef CK_RV rv
    cdef session_t *s = session_active(hSession, OP_SIGN, &rv)
    if s == NULL:
        return rv
    if s.sign.multipart:
        # C_Sign cannot end a multi-part operation, and every failing C_Sign ends it (v3.0).
        return op_failed(s, &s.sign, CKR_OPERATION_ACTIVE)
    if pulSignatureLen == NULL or (pData == NULL and ulDataLen != 0):
        return op_failed(s, &s.sign, CKR_ARGUMENTS_BAD)
    return sign_end(s, pData, ulDataLen, pSignature, pulSignatureLen)


cdef inline CK_RV c_sign_update(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart,
                              CK_ULONG ulPartLen) noexcept nogil:
    return op_update(hSession, OP_SIGN, pPart, ulPartLen)
