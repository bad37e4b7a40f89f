# The sign path: from C_SignInit to the return of C_Sign nothing here touches a Python object
# or the GIL (only a failure takes the GIL, to log it).

from libc.stdio cimport snprintf

cdef extern from "pkcs11.h" nogil:
    ctypedef struct CK_EDDSA_PARAMS:
        CK_BBOOL phFlag
        CK_ULONG ulContextDataLen
        CK_BYTE *pContextData

cdef extern from *:
    """
    static const char *const p11f_sign_modes[] = {
        "PKCS1", "PSS_MD5", "PSS_SHA1", "PSS_SHA224", "PSS_SHA256", "PSS_SHA384",
        "PSS_SHA512", "ECDSA", "EdDSA",
    };
    """
    const char *const *p11f_sign_modes

# Indexes into p11f_sign_modes; the PSS modes follow the order of the H_* hashes.
cdef enum:
    MODE_PKCS1 = 0
    MODE_PSS_MD5 = 1
    MODE_ECDSA = 7
    MODE_EDDSA = 8

cdef enum:
    # Largest signature the HSM returns: RSA-8192.
    SIG_MAX = 1024
    # Longest message the sign path builds locally: a SHA-512 DigestInfo.
    MSG_MAX = 128


cdef int hash_of_mechanism(CK_MECHANISM_TYPE m) noexcept nogil:
    if m == CKM_SHA_1:
        return H_SHA1
    if m == CKM_SHA224:
        return H_SHA224
    if m == CKM_SHA256:
        return H_SHA256
    if m == CKM_SHA384:
        return H_SHA384
    if m == CKM_SHA512:
        return H_SHA512
    return H_NONE


cdef int hash_of_mgf(CK_ULONG mgf) noexcept nogil:
    if mgf == CKG_MGF1_SHA1:
        return H_SHA1
    if mgf == CKG_MGF1_SHA224:
        return H_SHA224
    if mgf == CKG_MGF1_SHA256:
        return H_SHA256
    if mgf == CKG_MGF1_SHA384:
        return H_SHA384
    if mgf == CKG_MGF1_SHA512:
        return H_SHA512
    return H_NONE


cdef CK_RV pss_setup(op_t *op, CK_MECHANISM *m, int required_hash) noexcept nogil:
    """The HSM signs PSS with MGF1 over the same hash and a salt as long as the hash: accept
    exactly those parameters."""
    cdef CK_RSA_PKCS_PSS_PARAMS *p = <CK_RSA_PKCS_PSS_PARAMS *>m.pParameter
    cdef int h
    if p == NULL or m.ulParameterLen != sizeof(CK_RSA_PKCS_PSS_PARAMS):
        return CKR_MECHANISM_PARAM_INVALID
    h = hash_of_mechanism(p.hashAlg)
    if h == H_NONE or hash_of_mgf(p.mgf) != h or p.sLen != hash_len(h):
        return CKR_MECHANISM_PARAM_INVALID
    if required_hash != H_NONE and h != required_hash:
        return CKR_MECHANISM_PARAM_INVALID
    op.mode = MODE_PSS_MD5 + (h - H_MD5)
    op.hash = required_hash
    op.in_len = 0 if required_hash != H_NONE else hash_len(h)
    return CKR_OK


cdef CK_RV sign_setup(op_t *op, CK_MECHANISM *m, object_t *key) noexcept nogil:
    cdef CK_MECHANISM_TYPE t = m.mechanism
    cdef CK_RV rv = CKR_OK
    cdef unsigned int needed
    cdef CK_EDDSA_PARAMS *ed
    op.hash = H_NONE
    op.in_len = 0
    op.rsa_digestinfo = False
    if t == CKM_RSA_PKCS or t == CKM_SHA1_RSA_PKCS or t == CKM_SHA224_RSA_PKCS \
            or t == CKM_SHA256_RSA_PKCS or t == CKM_SHA384_RSA_PKCS or t == CKM_SHA512_RSA_PKCS:
        if key.key_type != CKK_RSA:
            return CKR_KEY_TYPE_INCONSISTENT
        op.mode = MODE_PKCS1
        op.hash = (H_NONE if t == CKM_RSA_PKCS else H_SHA1 if t == CKM_SHA1_RSA_PKCS
                   else H_SHA224 if t == CKM_SHA224_RSA_PKCS else H_SHA256 if t == CKM_SHA256_RSA_PKCS
                   else H_SHA384 if t == CKM_SHA384_RSA_PKCS else H_SHA512)
        op.rsa_digestinfo = op.hash != H_NONE
        op.out_len = (key.bits + 7) // 8
        needed = NM_RSA_SIGNATURE_PKCS1
    elif t == CKM_RSA_PKCS_PSS or t == CKM_SHA1_RSA_PKCS_PSS or t == CKM_SHA224_RSA_PKCS_PSS \
            or t == CKM_SHA256_RSA_PKCS_PSS or t == CKM_SHA384_RSA_PKCS_PSS or t == CKM_SHA512_RSA_PKCS_PSS:
        if key.key_type != CKK_RSA:
            return CKR_KEY_TYPE_INCONSISTENT
        rv = pss_setup(op, m, H_NONE if t == CKM_RSA_PKCS_PSS else H_SHA1 if t == CKM_SHA1_RSA_PKCS_PSS
                       else H_SHA224 if t == CKM_SHA224_RSA_PKCS_PSS else H_SHA256 if t == CKM_SHA256_RSA_PKCS_PSS
                       else H_SHA384 if t == CKM_SHA384_RSA_PKCS_PSS else H_SHA512)
        if rv != CKR_OK:
            return rv
        op.out_len = (key.bits + 7) // 8
        needed = NM_RSA_SIGNATURE_PSS_MD5 << (op.mode - MODE_PSS_MD5)
    elif t == CKM_ECDSA or t == CKM_ECDSA_SHA1 or t == CKM_ECDSA_SHA224 or t == CKM_ECDSA_SHA256 \
            or t == CKM_ECDSA_SHA384 or t == CKM_ECDSA_SHA512:
        if key.key_type != CKK_EC:
            return CKR_KEY_TYPE_INCONSISTENT
        op.mode = MODE_ECDSA
        op.hash = (H_NONE if t == CKM_ECDSA else H_SHA1 if t == CKM_ECDSA_SHA1
                   else H_SHA224 if t == CKM_ECDSA_SHA224 else H_SHA256 if t == CKM_ECDSA_SHA256
                   else H_SHA384 if t == CKM_ECDSA_SHA384 else H_SHA512)
        op.out_len = 2 * key.field_len
        needed = NM_ECDSA_SIGNATURE
    elif t == CKM_EDDSA:
        if key.key_type != CKK_EC_EDWARDS:
            return CKR_KEY_TYPE_INCONSISTENT
        ed = <CK_EDDSA_PARAMS *>m.pParameter
        if ed != NULL and (m.ulParameterLen != sizeof(CK_EDDSA_PARAMS) or ed.phFlag or ed.ulContextDataLen):
            # The HSM signs plain Ed25519: no prehash, no context.
            return CKR_MECHANISM_PARAM_INVALID
        op.mode = MODE_EDDSA
        op.out_len = 64
        needed = NM_EDDSA_SIGNATURE
    else:
        return CKR_MECHANISM_INVALID
    if not (key.nethsm_mechs & needed):
        return CKR_KEY_FUNCTION_NOT_PERMITTED
    op.mech = t
    op.field_len = key.field_len
    return CKR_OK


cdef CK_RV C_SignInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                      CK_OBJECT_HANDLE hKey) noexcept nogil:
    cdef session_t *s
    cdef object_t key
    cdef CK_RV rv
    if not p11f_is_initialized():
        return CKR_CRYPTOKI_NOT_INITIALIZED
    s = session_lock(hSession)
    if s == NULL:
        return CKR_SESSION_HANDLE_INVALID
    rv = sign_init_locked(s, pMechanism, hKey)
    session_unlock(s)
    if rv != CKR_OK:
        log_error(b"C_SignInit", b"refused", rv)
    return rv


cdef CK_RV sign_init_locked(session_t *s, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) noexcept nogil:
    cdef object_t key
    cdef CK_RV rv
    cdef slot_t *slot = &g_slots[s.slot]
    if s.sign.active:
        return CKR_OPERATION_ACTIVE
    if pMechanism == NULL:
        return CKR_ARGUMENTS_BAD
    if not object_copy(hKey, &key) or key.slot != s.slot:
        return CKR_KEY_HANDLE_INVALID
    if key.cls != CKO_PRIVATE_KEY:
        return CKR_KEY_FUNCTION_NOT_PERMITTED
    pthread_mutex_lock(&slot.lock)
    rv = CKR_OK if slot_user_logged_in(slot) else CKR_USER_NOT_LOGGED_IN
    pthread_mutex_unlock(&slot.lock)
    if rv != CKR_OK:
        return rv
    memset(&s.sign, 0, sizeof(op_t))
    rv = sign_setup(&s.sign, pMechanism, &key)
    if rv != CKR_OK:
        return rv
    if s.sign.hash != H_NONE and hash_init(&s.sign.hctx, s.sign.hash) != 0:
        return CKR_HOST_MEMORY
    wbuf_init(&s.sign.acc)
    s.sign.slot = s.slot
    memcpy(s.sign.key_id, key.key_id, KEY_ID_MAX + 1)
    s.sign.active = True
    return CKR_OK


cdef CK_RV hsm_sign(op_t *op, const unsigned char *msg, size_t n, CK_BYTE_PTR out) noexcept nogil:
    """One POST /keys/{id}/sign on the calling thread; writes exactly op.out_len bytes."""
    cdef slot_t *slot = &g_slots[op.slot]
    cdef char auth[AUTH_MAX]
    cdef char path[KEY_ID_MAX + 16]
    cdef wbuf body
    cdef tp_buf resp
    cdef tp_result res
    cdef const char *value
    cdef size_t value_len
    cdef unsigned char sig[SIG_MAX]
    cdef Py_ssize_t sig_len
    cdef CK_RV rv = CKR_OK
    pthread_mutex_lock(&slot.lock)
    memcpy(auth, slot.op_auth, AUTH_MAX)
    pthread_mutex_unlock(&slot.lock)
    if auth[0] == 0:
        return CKR_USER_NOT_LOGGED_IN
    if slot.pool == NULL:
        return CKR_CRYPTOKI_NOT_INITIALIZED
    snprintf(path, sizeof(path), "/keys/%s/sign", op.key_id)
    wbuf_init(&body)
    if (wbuf_puts(&body, '{"mode":"') or wbuf_puts(&body, p11f_sign_modes[op.mode])
            or wbuf_puts(&body, '","message":"') or wbuf_put_b64(&body, msg, n) or wbuf_puts(&body, '"}')):
        wbuf_free(&body)
        return CKR_HOST_MEMORY
    resp.data = NULL
    resp.len = 0
    resp.cap = 0
    tp_request(slot.pool, TP_POST, path, auth, body.data, body.len, "application/json", &resp, &res)
    wbuf_free(&body)
    memset(auth, 0, AUTH_MAX)
    if res.error != TP_OK:
        log_request_failure(b"C_Sign", slot.pool, &res, NULL, 0)
        rv = CKR_DEVICE_ERROR
    elif res.status != 200:
        log_request_failure(b"C_Sign", slot.pool, &res, resp.data, resp.len)
        rv = ckr_for_http(res.status, True)
    elif json_get_string(resp.data, resp.len, "signature", &value, &value_len) != 0:
        log_error(b"C_Sign", b"no signature in the HSM's answer; body bytes", resp.len)
        rv = CKR_DEVICE_ERROR
    else:
        sig_len = b64_decode(value, value_len, sig, SIG_MAX)
        if op.mode == MODE_ECDSA and sig_len > 0:
            if ecdsa_der_to_raw(sig, sig_len, op.field_len, out) != <Py_ssize_t>op.out_len:
                sig_len = -1
        elif 0 < sig_len <= <Py_ssize_t>op.out_len:
            # An RSA signature is as long as the modulus: restore leading zero bytes.
            memset(out, 0, op.out_len - sig_len)
            memcpy(out + op.out_len - sig_len, sig, sig_len)
        else:
            sig_len = -1
        if sig_len < 0:
            log_error(b"C_Sign", b"malformed signature from the HSM; bytes", value_len)
            rv = CKR_DEVICE_ERROR
    tp_buf_free(&resp)
    return rv


cdef CK_RV sign_message(op_t *op, const unsigned char *data, size_t n, CK_BYTE_PTR out) noexcept nogil:
    """Turns the data (already hashed when the mechanism hashes) into what the HSM signs."""
    cdef unsigned char msg[MSG_MAX]
    cdef const unsigned char *prefix
    cdef size_t prefix_len
    if op.rsa_digestinfo:
        prefix = digestinfo_prefix(op.hash, &prefix_len)
        memcpy(msg, prefix, prefix_len)
        memcpy(msg + prefix_len, data, n)
        return hsm_sign(op, msg, prefix_len + n, out)
    if op.in_len and n != op.in_len:
        return CKR_DATA_LEN_RANGE
    if op.mode == MODE_PKCS1 and n + 11 > op.out_len:
        return CKR_DATA_LEN_RANGE
    if op.mode == MODE_ECDSA:
        # The HSM wants exactly the curve's length: ECDSA uses the leftmost bits of a longer
        # digest, and a shorter one is the same number with leading zeros.
        if n >= op.field_len:
            return hsm_sign(op, data, op.field_len, out)
        memset(msg, 0, op.field_len - n)
        memcpy(msg + op.field_len - n, data, n)
        return hsm_sign(op, msg, op.field_len, out)
    return hsm_sign(op, data, n, out)


cdef CK_RV sign_final_data(op_t *op, const unsigned char *data, size_t n, CK_BYTE_PTR out) noexcept nogil:
    cdef unsigned char digest[64]
    if op.hash == H_NONE:
        return sign_message(op, data, n, out)
    if (n and hash_update(&op.hctx, data, n) != 0) or hash_final(&op.hctx, digest) != 0:
        return CKR_FUNCTION_FAILED
    return sign_message(op, digest, hash_len(op.hash), out)


cdef CK_RV output_size(op_t *op, CK_BYTE_PTR out, CK_ULONG_PTR out_len, bint *done) noexcept nogil:
    """The standard's output-buffer rule, for every operation: a NULL buffer asks for the size
    and a short one gets CKR_BUFFER_TOO_SMALL; both keep the operation active."""
    done[0] = True
    if out == NULL:
        out_len[0] = op.out_len
        return CKR_OK
    if out_len[0] < op.out_len:
        out_len[0] = op.out_len
        return CKR_BUFFER_TOO_SMALL
    done[0] = False
    return CKR_OK


cdef CK_RV C_Sign(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                  CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) noexcept nogil:
    cdef session_t *s
    cdef CK_RV rv
    cdef bint done
    if not p11f_is_initialized():
        return CKR_CRYPTOKI_NOT_INITIALIZED
    s = session_lock(hSession)
    if s == NULL:
        return CKR_SESSION_HANDLE_INVALID
    if not s.sign.active:
        session_unlock(s)
        return CKR_OPERATION_NOT_INITIALIZED
    if s.sign.multipart:
        session_unlock(s)
        return CKR_OPERATION_ACTIVE
    if pulSignatureLen == NULL or (pData == NULL and ulDataLen != 0):
        op_reset(&s.sign)
        session_unlock(s)
        return CKR_ARGUMENTS_BAD
    rv = output_size(&s.sign, pSignature, pulSignatureLen, &done)
    if not done:
        rv = sign_final_data(&s.sign, pData, ulDataLen, pSignature)
        if rv == CKR_OK:
            pulSignatureLen[0] = s.sign.out_len
        op_reset(&s.sign)
    session_unlock(s)
    return rv


cdef CK_RV C_SignUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen) noexcept nogil:
    cdef session_t *s
    cdef CK_RV rv = CKR_OK
    if not p11f_is_initialized():
        return CKR_CRYPTOKI_NOT_INITIALIZED
    s = session_lock(hSession)
    if s == NULL:
        return CKR_SESSION_HANDLE_INVALID
    if not s.sign.active:
        rv = CKR_OPERATION_NOT_INITIALIZED
    elif pPart == NULL and ulPartLen != 0:
        rv = CKR_ARGUMENTS_BAD
    elif s.sign.hash != H_NONE:
        if hash_update(&s.sign.hctx, pPart, ulPartLen) != 0:
            rv = CKR_FUNCTION_FAILED
    elif wbuf_put(&s.sign.acc, <const char *>pPart, ulPartLen) != 0:
        rv = CKR_HOST_MEMORY
    if rv == CKR_OK:
        s.sign.multipart = True
    elif rv != CKR_OPERATION_NOT_INITIALIZED:
        op_reset(&s.sign)
    session_unlock(s)
    return rv


cdef CK_RV C_SignFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature,
                       CK_ULONG_PTR pulSignatureLen) noexcept nogil:
    cdef session_t *s
    cdef CK_RV rv
    cdef bint done
    if not p11f_is_initialized():
        return CKR_CRYPTOKI_NOT_INITIALIZED
    s = session_lock(hSession)
    if s == NULL:
        return CKR_SESSION_HANDLE_INVALID
    if not s.sign.active:
        session_unlock(s)
        return CKR_OPERATION_NOT_INITIALIZED
    if pulSignatureLen == NULL:
        op_reset(&s.sign)
        session_unlock(s)
        return CKR_ARGUMENTS_BAD
    rv = output_size(&s.sign, pSignature, pulSignatureLen, &done)
    if not done:
        rv = sign_final_data(&s.sign, <const unsigned char *>s.sign.acc.data, s.sign.acc.len, pSignature)
        if rv == CKR_OK:
            pulSignatureLen[0] = s.sign.out_len
        op_reset(&s.sign)
    session_unlock(s)
    return rv
