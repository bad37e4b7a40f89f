# Digests (computed locally with OpenSSL) and random numbers (from the HSM).

from libc.string cimport memcpy

from p11fast._decl.pkcs11 cimport *


cdef CK_RV c_digest_init(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism) noexcept nogil:
    cdef session_t *s
    cdef CK_RV rv = CKR_OK
    cdef int h
    s = session_lock(hSession)
    if s == NULL:
        return CKR_SESSION_HANDLE_INVALID
    if pMechanism == NULL:
        # PKCS#11 v3.0, C_DigestInit: pMechanism NULL_PTR terminates the active digest operation.
        if s.digest.active:
            op_reset(&s.digest)
        else:
            rv = CKR_ARGUMENTS_BAD
    elif s.digest.active:
        rv = CKR_OPERATION_ACTIVE
    elif policy_check_mechanism(b"C_DigestInit", pMechanism.mechanism) != CKR_OK:
        rv = CKR_MECHANISM_INVALID
    else:
        h = hash_of_mechanism(pMechanism.mechanism)
        if h == H_NONE:
            rv = CKR_MECHANISM_INVALID
        elif has_parameter(pMechanism):
            rv = CKR_MECHANISM_PARAM_INVALID
        elif hash_init(&s.digest.hctx, h) != 0:
            rv = CKR_HOST_MEMORY
        else:
            s.digest.hash = h
            s.digest.mech = pMechanism.mechanism
            s.digest.out_len = hash_len(h)
            wbuf_init(&s.digest.acc)
            s.digest.active = True
    session_unlock(s)
    return rv


cdef CK_RV digest_end(session_t *s, const unsigned char *data, size_t n, CK_BYTE_PTR pDigest,
                      CK_ULONG_PTR pulDigestLen) noexcept nogil:
    """C_Digest's and C_DigestFinal's last step, under the output-buffer rule; unlocks s."""
    cdef bint done
    cdef CK_RV rv = output_size(&s.digest, pDigest, pulDigestLen, &done)
    if not done:
        if (n and hash_update(&s.digest.hctx, data, n) != 0) \
                or hash_final(&s.digest.hctx, pDigest) != 0:
            rv = CKR_FUNCTION_FAILED
        else:
            pulDigestLen[0] = s.digest.out_len
        op_reset(&s.digest)
    session_unlock(s)
    return rv


cdef CK_RV c_digest(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                    CK_BYTE_PTR pDigest, CK_ULONG_PTR pulDigestLen) noexcept nogil:
    cdef CK_RV rv
    cdef session_t *s = session_active(hSession, OP_DIGEST, &rv)
    if s == NULL:
        return rv
    if s.digest.multipart:
        # as C_Sign: the failing single-part call ends the multi-part operation
        return op_failed(s, &s.digest, CKR_OPERATION_ACTIVE)
    if pulDigestLen == NULL or (pData == NULL and ulDataLen != 0):
        return op_failed(s, &s.digest, CKR_ARGUMENTS_BAD)
    return digest_end(s, pData, ulDataLen, pDigest, pulDigestLen)


cdef CK_RV c_digest_update(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen) noexcept nogil:
    cdef CK_RV rv
    cdef session_t *s = session_active(hSession, OP_DIGEST, &rv)
    if s == NULL:
        return rv
    if pPart == NULL and ulPartLen != 0:
        rv = CKR_ARGUMENTS_BAD
    elif hash_update(&s.digest.hctx, pPart, ulPartLen) != 0:
        rv = CKR_FUNCTION_FAILED
    if rv == CKR_OK:
        s.digest.multipart = True
    else:
        op_reset(&s.digest)
    session_unlock(s)
    return rv


cdef CK_RV c_digest_key(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hKey) noexcept nogil:
    cdef CK_RV rv
    cdef object_t key
    cdef session_t *s = session_active(hSession, OP_DIGEST, &rv)
    if s == NULL:
        return rv
    if not object_copy(hKey, &key) or key.slot != s.slot:
        rv = CKR_KEY_HANDLE_INVALID
    else:
        # Every key the HSM holds is sensitive: its value never leaves the HSM.
        rv = CKR_KEY_INDIGESTIBLE
    session_unlock(s)
    return rv


cdef CK_RV c_digest_final(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pDigest,
                         CK_ULONG_PTR pulDigestLen) noexcept nogil:
    cdef CK_RV rv
    cdef session_t *s = session_active(hSession, OP_DIGEST, &rv)
    if s == NULL:
        return rv
    if pulDigestLen == NULL:
        return op_failed(s, &s.digest, CKR_ARGUMENTS_BAD)
    return digest_end(s, NULL, 0, pDigest, pulDigestLen)


cdef CK_RV c_generate_random_check(call_t *call, CK_SESSION_HANDLE hSession, CK_BYTE_PTR pRandomData,
                                 CK_ULONG ulRandomLen) noexcept nogil:
    if not session_call(call, hSession):
        return CKR_SESSION_HANDLE_INVALID
    if pRandomData == NULL and ulRandomLen != 0:
        return CKR_ARGUMENTS_BAD
    return CKR_OK


cdef CK_RV c_generate_random(call_t *call, CK_SESSION_HANDLE hSession, CK_BYTE_PTR pRandomData,
                           CK_ULONG ulRandomLen) except *:
    """POST /random allows 1024 bytes a request: ask in chunks."""
    import binascii
    from p11fast.errors import TOKEN, DeviceError, from_http
    from p11fast.lean import parse_json

    request = make_request(call.slot, _state.pools[call.slot])
    cdef CK_ULONG done = 0
    cdef bytes chunk
    while done < ulRandomLen:
        want = min(1024, <Py_ssize_t>(ulRandomLen - done))
        status, body = request("POST", "/random", b'{"length":%d}' % want)
        if status != 200:
            raise from_http(status, TOKEN, body.decode("utf-8", "replace"), "")
        chunk = binascii.a2b_base64(parse_json(body)["random"])
        if len(chunk) != want:
            raise DeviceError(f"the HSM returned {len(chunk)} random bytes instead of {want}")
        memcpy(pRandomData + done, <const char *>chunk, want)
        done += want
    return CKR_OK


cdef CK_RV c_seed_random(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSeed, CK_ULONG ulSeedLen) noexcept nogil:
    if not session_open(hSession, NULL):
        return CKR_SESSION_HANDLE_INVALID
    if pSeed == NULL and ulSeedLen != 0:
        return CKR_ARGUMENTS_BAD
    # The HSM's generator takes no seed from outside.
    return CKR_RANDOM_SEED_NOT_SUPPORTED
