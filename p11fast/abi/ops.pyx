# The operation core: which mechanism, with which parameters, on which key; starting an
# operation with a key, feeding it, the output-buffer rule, and the one HSM request every key
# operation on the HSM makes.

from libc.stdio cimport snprintf
from libc.string cimport memcpy, memmove, memset

from p11fast._decl.openssl cimport EVP_PKEY, EVP_PKEY_free
from p11fast._decl.pkcs11 cimport *
from p11fast._decl.posix cimport pthread_mutex_lock, pthread_mutex_unlock


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
    op.mode = sign_mode_for_hash(h)
    op.hash = required_hash
    op.in_len = 0 if required_hash != H_NONE else hash_len(h)
    return CKR_OK


cdef CK_RV sign_setup(op_t *op, CK_MECHANISM *m, object_t *key) noexcept nogil:
    cdef CK_MECHANISM_TYPE t = m.mechanism
    cdef CK_RV rv = CKR_OK
    cdef unsigned int needed
    op.hash = H_NONE
    op.in_len = 0
    op.rsa_digestinfo = False
    if t == CKM_RSA_PKCS or t == CKM_SHA1_RSA_PKCS or t == CKM_SHA224_RSA_PKCS \
            or t == CKM_SHA256_RSA_PKCS or t == CKM_SHA384_RSA_PKCS or t == CKM_SHA512_RSA_PKCS:
        if key.key_type != CKK_RSA:
            return CKR_KEY_TYPE_INCONSISTENT
        if has_parameter(m):
            return CKR_MECHANISM_PARAM_INVALID
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
        needed = p11f_sign_mode_mechanisms[op.mode]
    elif t == CKM_ECDSA or t == CKM_ECDSA_SHA1 or t == CKM_ECDSA_SHA224 or t == CKM_ECDSA_SHA256 \
            or t == CKM_ECDSA_SHA384 or t == CKM_ECDSA_SHA512:
        if key.key_type != CKK_EC:
            return CKR_KEY_TYPE_INCONSISTENT
        if has_parameter(m):
            return CKR_MECHANISM_PARAM_INVALID
        op.mode = MODE_ECDSA
        op.hash = (H_NONE if t == CKM_ECDSA else H_SHA1 if t == CKM_ECDSA_SHA1
                   else H_SHA224 if t == CKM_ECDSA_SHA224 else H_SHA256 if t == CKM_ECDSA_SHA256
                   else H_SHA384 if t == CKM_ECDSA_SHA384 else H_SHA512)
        op.out_len = 2 * key.field_len
        needed = NM_ECDSA_SIGNATURE
    elif t == CKM_EDDSA:
        if key.key_type != CKK_EC_EDWARDS:
            return CKR_KEY_TYPE_INCONSISTENT
        if has_parameter(m):
            # The HSM signs pure Ed25519 only; a CK_EDDSA_PARAMS, even with phFlag FALSE and no
            # context, selects Ed25519ctx/Ed25519ph (RFC 8032 dom2 prefix), which it cannot do.
            return CKR_MECHANISM_PARAM_INVALID
        op.mode = MODE_EDDSA
        op.out_len = 64
        needed = NM_EDDSA_SIGNATURE
    elif is_mac_mechanism(t):
        rv = cmac_setup(op, m, key)
        if rv != CKR_OK:
            return rv
        needed = NM_AES_ENCRYPTION_CBC
    else:
        return CKR_MECHANISM_INVALID
    if not (key.nethsm_mechs & needed):
        return not_permitted(t, key.nethsm_mechs)
    op.mech = t
    op.field_len = key.field_len
    op.order_bits = key.bits
    return CKR_OK


cdef CK_RV not_permitted(CK_MECHANISM_TYPE t, unsigned int key_mechs) noexcept nogil:
    """The code for a key that lacks the NetHSM mechanism an operation needs. When the key does
    hold the PKCS#11 mechanism (its CKA_ALLOWED_MECHANISMS lists t), only with other parameters
    (OAEP or PSS over another hash), the parameters are what is refused:
    CKR_MECHANISM_PARAM_INVALID, with which pkcs11-tool --test goes on to the next case, where
    CKR_KEY_FUNCTION_NOT_PERMITTED aborts it."""
    if key_mechs & nethsm_mechanisms_offering(t):
        return CKR_MECHANISM_PARAM_INVALID
    return CKR_KEY_FUNCTION_NOT_PERMITTED


cdef CK_RV op_setup(int which, op_t *op, CK_MECHANISM *m, object_t *key) noexcept nogil:
    cdef bint allowed
    if which == OP_ENCRYPT or which == OP_DECRYPT:
        return crypt_setup(op, m, key, which == OP_ENCRYPT)
    if is_mac_mechanism(m.mechanism):
        allowed = key.cls == CKO_SECRET_KEY
    else:
        allowed = key.cls == CKO_PRIVATE_KEY or (which == OP_VERIFY and key.cls == CKO_PUBLIC_KEY)
    if not allowed:
        return CKR_KEY_FUNCTION_NOT_PERMITTED
    return sign_setup(op, m, key)


cdef bint is_mac_mechanism(CK_MECHANISM_TYPE t) noexcept nogil:
    return t == CKM_AES_CMAC or t == CKM_AES_CMAC_GENERAL


cdef CK_RV oaep_setup(op_t *op, CK_MECHANISM *m) noexcept nogil:
    """The HSM decrypts OAEP with MGF1 over the same hash and an empty label: accept exactly
    those parameters. No source at all (OpenSC sends 0) with no label is that empty label too."""
    cdef CK_RSA_PKCS_OAEP_PARAMS *p = <CK_RSA_PKCS_OAEP_PARAMS *>m.pParameter
    cdef int h
    if p == NULL or m.ulParameterLen != sizeof(CK_RSA_PKCS_OAEP_PARAMS):
        return CKR_MECHANISM_PARAM_INVALID
    h = hash_of_mechanism(p.hashAlg)
    if h == H_NONE or hash_of_mgf(p.mgf) != h or p.ulSourceDataLen != 0 \
            or (p.source != CKZ_DATA_SPECIFIED and p.source != 0):
        return CKR_MECHANISM_PARAM_INVALID
    op.mode = decrypt_mode_for_hash(h)
    return CKR_OK


cdef CK_RV crypt_setup(op_t *op, CK_MECHANISM *m, object_t *key, bint encrypt) noexcept nogil:
    cdef CK_MECHANISM_TYPE t = m.mechanism
    cdef unsigned int needed
    cdef CK_RV rv
    if t == CKM_RSA_X_509 or t == CKM_RSA_PKCS or t == CKM_RSA_PKCS_OAEP:
        if key.key_type != CKK_RSA:
            return CKR_KEY_TYPE_INCONSISTENT
        if key.cls != (CKO_PUBLIC_KEY if encrypt else CKO_PRIVATE_KEY):
            return CKR_KEY_FUNCTION_NOT_PERMITTED
        if t == CKM_RSA_PKCS_OAEP:
            rv = oaep_setup(op, m)
            if rv != CKR_OK:
                return rv
        elif has_parameter(m):
            return CKR_MECHANISM_PARAM_INVALID
        else:
            op.mode = DMODE_RAW if t == CKM_RSA_X_509 else DMODE_PKCS1
        # Encryption is offered for what the key can decrypt (CKA_ENCRYPT of the public key).
        needed = p11f_decrypt_mode_mechanisms[op.mode]
        op.field_len = (key.bits + 7) // 8
    elif t == CKM_AES_CBC or t == CKM_AES_CBC_PAD or t == CKM_AES_ECB:
        if key.key_type != CKK_AES:
            return CKR_KEY_TYPE_INCONSISTENT
        if t == CKM_AES_ECB:
            if has_parameter(m):
                return CKR_MECHANISM_PARAM_INVALID
        elif m.pParameter == NULL or m.ulParameterLen != AES_BLOCK:
            return CKR_MECHANISM_PARAM_INVALID
        else:
            memcpy(op.iv, m.pParameter, AES_BLOCK)
        op.mode = DMODE_AES_CBC
        needed = NM_AES_ENCRYPTION_CBC if encrypt else NM_AES_DECRYPTION_CBC
    else:
        return CKR_MECHANISM_INVALID
    if not (key.nethsm_mechs & needed):
        return not_permitted(t, key.nethsm_mechs)
    op.mech = t
    return CKR_OK


cdef CK_RV cmac_setup(op_t *op, CK_MECHANISM *m, object_t *key) noexcept nogil:
    """CKM_AES_CMAC gives the whole block; CKM_AES_CMAC_GENERAL its first 1..16 bytes."""
    cdef CK_MAC_GENERAL_PARAMS *length = <CK_MAC_GENERAL_PARAMS *>m.pParameter
    if key.key_type != CKK_AES:
        return CKR_KEY_TYPE_INCONSISTENT
    if m.mechanism == CKM_AES_CMAC:
        if has_parameter(m):
            return CKR_MECHANISM_PARAM_INVALID
        op.out_len = AES_BLOCK
    elif (length == NULL or m.ulParameterLen != sizeof(CK_MAC_GENERAL_PARAMS)
            or length[0] < 1 or length[0] > AES_BLOCK):
        return CKR_MECHANISM_PARAM_INVALID
    else:
        op.out_len = length[0]
    op.mode = MODE_CMAC
    return CKR_OK


cdef CK_RV policy_check_mechanism(const char *where, CK_MECHANISM_TYPE m) noexcept nogil:
    """The one policy check of every C_*Init and key generation: CKR_MECHANISM_INVALID and a
    log line naming the policy for a mechanism the configuration does not allow."""
    if mechanism_allowed(m):
        return CKR_OK
    log_error(where, b"refused by the configuration's policy.allowed_mechanisms; mechanism", m)
    return CKR_MECHANISM_INVALID


cdef CK_RV key_op_init(CK_SESSION_HANDLE hSession, int which, CK_MECHANISM_PTR pMechanism,
                       CK_OBJECT_HANDLE hKey, const char *where) noexcept nogil:
    """Every C_*Init that takes a key (sign, verify, decrypt, encrypt)."""
    cdef session_t *s
    cdef object_t key
    cdef void *pkey = NULL
    cdef CK_RV rv
    # Verification and encryption with a public key are done here, with that key read before
    # the session is locked: the GIL is never waited for under a session lock.
    if (pMechanism != NULL and (which == OP_VERIFY or which == OP_ENCRYPT)
            and object_copy(hKey, &key) and key.cls != CKO_SECRET_KEY):
        pkey = public_key(hKey)
        if pkey == NULL:
            return CKR_FUNCTION_FAILED
    s = session_lock(hSession)
    if s == NULL:
        rv = CKR_SESSION_HANDLE_INVALID
    else:
        rv = key_op_init_locked(s, which, pMechanism, hKey, where, pkey)
        session_unlock(s)
    if rv != CKR_OK:
        EVP_PKEY_free(<EVP_PKEY *>pkey)
        log_error(where, b"refused", rv)
    return rv


cdef CK_RV key_op_init_locked(session_t *s, int which, CK_MECHANISM_PTR pMechanism,
                              CK_OBJECT_HANDLE hKey, const char *where, void *pkey) noexcept nogil:
    """Takes pkey (the public key of local work) into the operation when it returns CKR_OK."""
    cdef object_t key
    cdef CK_RV rv
    cdef op_t *op = op_of(s, which)
    cdef slot_t *slot = &g_abi.slots[s.slot]
    if pMechanism == NULL:
        # PKCS#11 v3.0, C_EncryptInit/C_DecryptInit/C_SignInit/C_VerifyInit: pMechanism NULL_PTR
        # terminates the active operation; with none active there is nothing to terminate.
        if op.active:
            op_reset(op)
            return CKR_OK
        return CKR_ARGUMENTS_BAD
    if op.active:
        return CKR_OPERATION_ACTIVE
    if policy_check_mechanism(where, pMechanism.mechanism) != CKR_OK:
        return CKR_MECHANISM_INVALID
    if not object_copy(hKey, &key) or key.slot != s.slot:
        return CKR_KEY_HANDLE_INVALID
    # Local work needs no login; whatever the HSM does needs the operator.
    if pkey == NULL:
        pthread_mutex_lock(&slot.lock)
        rv = CKR_OK if slot_user_logged_in(slot) else CKR_USER_NOT_LOGGED_IN
        pthread_mutex_unlock(&slot.lock)
        if rv != CKR_OK:
            return rv
    memset(op, 0, sizeof(op_t))
    rv = op_setup(which, op, pMechanism, &key)
    if rv != CKR_OK:
        return rv
    if op.hash != H_NONE and hash_init(&op.hctx, op.hash) != 0:
        return CKR_HOST_MEMORY
    wbuf_init(&op.acc)
    op.slot = s.slot
    memcpy(op.key_id, key.key_id, KEY_ID_MAX + 1)
    op.pkey = pkey
    op.active = True
    return CKR_OK


cdef CK_RV hsm_call(op_t *op, const char *where, const char *action, int context, const char *mode,
                   const char *in_field, const unsigned char *data, size_t n, const unsigned char *iv,
                   const char *out_field, unsigned char *out, size_t cap, size_t *out_n) noexcept nogil:
    """One POST /keys/{id}/{action} on the calling thread, for every key operation on the HSM:
    sends {"mode", in_field: base64 data [, "iv"]} and decodes the answer's base64 member
    out_field into out (at most cap bytes); logs a failure once, as `where`."""
    cdef slot_t *slot = &g_abi.slots[op.slot]
    cdef char auth[AUTH_MAX]
    cdef char path[KEY_ID_MAX + 16]
    cdef wbuf body
    cdef tp_buf resp
    cdef tp_result res
    cdef const char *value
    cdef size_t value_len
    cdef Py_ssize_t got
    cdef CK_RV rv = CKR_OK
    pthread_mutex_lock(&slot.lock)
    memcpy(auth, slot.op_auth, AUTH_MAX)
    pthread_mutex_unlock(&slot.lock)
    if auth[0] == 0:
        return CKR_USER_NOT_LOGGED_IN
    if slot.pool == NULL:
        return CKR_CRYPTOKI_NOT_INITIALIZED
    snprintf(path, sizeof(path), "/keys/%s/%s", op.key_id, action)
    wbuf_init(&body)
    if (wbuf_puts(&body, '{"mode":"') or wbuf_puts(&body, mode) or wbuf_puts(&body, '","')
            or wbuf_puts(&body, in_field) or wbuf_puts(&body, '":"') or wbuf_put_b64(&body, data, n)
            or (iv != NULL and (wbuf_puts(&body, '","iv":"') or wbuf_put_b64(&body, iv, 16)))
            or wbuf_puts(&body, '"}')):
        wbuf_free(&body)
        return CKR_HOST_MEMORY
    resp.data = NULL
    resp.len = 0
    resp.cap = 0
    tp_request(slot.pool, TP_POST, path, auth, body.data, body.len, "application/json", &resp, &res)
    wbuf_free(&body)
    memset(auth, 0, AUTH_MAX)
    if res.error != TP_OK:
        log_request_failure(where, slot.pool, &res, NULL, 0)
        rv = CKR_DEVICE_ERROR
    elif res.status != 200:
        log_request_failure(where, slot.pool, &res, resp.data, resp.len)
        rv = ckr_for_http(res.status, context)
    elif json_get_string(resp.data, resp.len, out_field, &value, &value_len) != 0:
        log_error(where, b"no result in the HSM's answer; body bytes", resp.len)
        rv = CKR_DEVICE_ERROR
    else:
        got = b64_decode(value, value_len, out, cap)
        if got < 0:
            log_error(where, b"malformed result from the HSM; base64 bytes", value_len)
            rv = CKR_DEVICE_ERROR
        else:
            out_n[0] = got
    tp_buf_free(&resp)
    return rv


cdef bint copy_left_padded(unsigned char *out, size_t size, const unsigned char *src, size_t n) noexcept nogil:
    """An RSA value is as long as the modulus: writes src to out (they may overlap) with the
    leading zero bytes restored that the HSM may drop. False if src is empty or too long."""
    if n > size:
        return False
    memmove(out + size - n, src, n)
    memset(out, 0, size - n)
    return n != 0


cdef CK_RV output_size(op_t *op, CK_BYTE_PTR out, CK_ULONG_PTR out_len, bint *done) noexcept nogil:
    """The standard's output-buffer rule (PKCS#11 v3.0 §5.2), for every operation: a NULL buffer
    asks for the size and a short one gets CKR_BUFFER_TOO_SMALL with the size needed; both keep
    the operation active. done is False when the caller is to do the work into `out`.

    Where the result's length is known only once the work is done (RSA PKCS/OAEP and CBC_PAD
    decryption), op.out_len is an upper bound (op.out_bound): the size query answers it, as the
    standard allows. A buffer shorter than the bound may still be long enough, so the caller
    does the work into op.pending and asks again: the result is handed over (which ends the
    operation) or, to a buffer too short for it, the exact size is told and the result kept for
    the next call — never lost, never computed twice."""
    done[0] = True
    if op.pending != NULL:
        if out != NULL and out_len[0] >= op.pending_len:
            memcpy(out, op.pending, op.pending_len)
            out_len[0] = op.pending_len
            op_reset(op)
            return CKR_OK
        out_len[0] = op.pending_len
        return CKR_OK if out == NULL else CKR_BUFFER_TOO_SMALL
    if out == NULL:
        out_len[0] = op.out_len
        return CKR_OK
    if out_len[0] < op.out_len and not op.out_bound:
        out_len[0] = op.out_len
        return CKR_BUFFER_TOO_SMALL
    done[0] = False
    return CKR_OK


cdef CK_RV op_update(CK_SESSION_HANDLE hSession, int which, CK_BYTE_PTR pPart,
                    CK_ULONG ulPartLen) noexcept nogil:
    """C_SignUpdate and C_VerifyUpdate: the data is hashed, or kept for the final step."""
    cdef session_t *s
    cdef op_t *op
    cdef CK_RV rv = CKR_OK
    s = session_lock(hSession)
    if s == NULL:
        return CKR_SESSION_HANDLE_INVALID
    op = op_of(s, which)
    if not op.active:
        rv = CKR_OPERATION_NOT_INITIALIZED
    elif pPart == NULL and ulPartLen != 0:
        rv = CKR_ARGUMENTS_BAD
    elif op.hash != H_NONE:
        if hash_update(&op.hctx, pPart, ulPartLen) != 0:
            rv = CKR_FUNCTION_FAILED
    elif wbuf_put(&op.acc, <const char *>pPart, ulPartLen) != 0:
        rv = CKR_HOST_MEMORY
    if rv == CKR_OK:
        op.multipart = True
    elif rv != CKR_OPERATION_NOT_INITIALIZED:
        op_reset(op)
    session_unlock(s)
    return rv
