# The sign path: from C_SignInit to the return of C_Sign nothing here touches a Python object
# or the GIL (only a failure takes the GIL, to log it).

from libc.stdio cimport snprintf

# The HSM's sign modes (MODE_* into p11f_sign_modes) come from p11fast/mechanisms.py. MODE_CMAC
# is none of them: CMAC is built from the HSM's AES-CBC encryption (_abi_crypt.pxi).
cdef enum:
    MODE_CMAC = SIGN_MODES

cdef enum:
    # Largest signature the HSM returns: RSA-8192.
    SIG_MAX = 1024
    # Longest message the sign path builds locally: a SHA-512 DigestInfo.
    MSG_MAX = 128
    # The NetHSM signs ECDSA over exactly the digest of the curve's hash: SHA-256/384 for the
    # 256/384-bit curves, SHA-512 for BrainpoolP512 and for P-521 (keyfender
    # src/keyfender/hsm.ml, Key.sign), so never more than 64 bytes.
    ECDSA_DIGEST_MAX = 64
    # Longest EC coordinate: P-521.
    ECDSA_FIELD_MAX = 66


# Room for the data a signature covers when it is built locally (signed_input).
cdef struct msg_buf:
    unsigned char digest[HASH_MAX_LEN]
    unsigned char msg[MSG_MAX]


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


# The operations of a session that take a key, for the code they share.
cdef enum:
    OP_SIGN = 0
    OP_VERIFY = 1
    OP_DECRYPT = 2
    OP_ENCRYPT = 3


cdef op_t *op_of(session_t *s, int which) noexcept nogil:
    if which == OP_SIGN:
        return &s.sign
    if which == OP_VERIFY:
        return &s.verify
    if which == OP_DECRYPT:
        return &s.decrypt
    return &s.encrypt


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


cdef CK_RV key_op_init(CK_SESSION_HANDLE hSession, int which, CK_MECHANISM_PTR pMechanism,
                       CK_OBJECT_HANDLE hKey, const char *where) noexcept nogil:
    """Every C_*Init that takes a key (sign, verify, decrypt, encrypt)."""
    cdef session_t *s
    cdef object_t key
    cdef void *pkey = NULL
    cdef CK_RV rv
    if not p11f_is_initialized():
        return CKR_CRYPTOKI_NOT_INITIALIZED
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
    cdef slot_t *slot = &g_slots[s.slot]
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


cdef CK_RV C_SignInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                      CK_OBJECT_HANDLE hKey) noexcept nogil:
    return key_op_init(hSession, OP_SIGN, pMechanism, hKey, b"C_SignInit")


cdef CK_RV hsm_call(op_t *op, const char *where, const char *action, int context, const char *mode,
                   const char *in_field, const unsigned char *data, size_t n, const unsigned char *iv,
                   const char *out_field, unsigned char *out, size_t cap, size_t *out_n) noexcept nogil:
    """One POST /keys/{id}/{action} on the calling thread, for every key operation on the HSM:
    sends {"mode", in_field: base64 data [, "iv"]} and decodes the answer's base64 member
    out_field into out (at most cap bytes); logs a failure once, as `where`."""
    cdef slot_t *slot = &g_slots[op.slot]
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


cdef CK_RV hsm_sign(op_t *op, const unsigned char *msg, size_t n, CK_BYTE_PTR out) noexcept nogil:
    """One signature from the HSM, in PKCS#11 format: writes exactly op.out_len bytes."""
    cdef unsigned char sig[SIG_MAX]
    cdef size_t sig_len = 0
    cdef CK_RV rv = hsm_call(op, b"C_Sign", b"sign", HTTP_SIGN, p11f_sign_modes[op.mode], b"message",
                             msg, n, NULL, b"signature", sig, SIG_MAX, &sig_len)
    if rv != CKR_OK:
        return rv
    if op.mode == MODE_ECDSA:
        if ecdsa_der_to_raw(sig, sig_len, op.field_len, out) == <Py_ssize_t>op.out_len:
            return CKR_OK
    elif copy_left_padded(out, op.out_len, sig, sig_len):
        return CKR_OK
    log_error(b"C_Sign", b"malformed signature from the HSM; bytes", sig_len)
    return CKR_DEVICE_ERROR


cdef CK_RV sign_input(op_t *op, const unsigned char *data, size_t n, unsigned char *scratch,
                      const unsigned char **msg, size_t *msg_len) noexcept nogil:
    """What the HSM signs for the data (already hashed when the mechanism hashes), and so what a
    verification checks: *msg points to the data itself or to scratch (MSG_MAX bytes)."""
    cdef const unsigned char *prefix
    cdef size_t prefix_len
    msg[0] = data
    msg_len[0] = n
    if op.rsa_digestinfo:
        prefix = digestinfo_prefix(op.hash, &prefix_len)
        memcpy(scratch, prefix, prefix_len)
        memcpy(scratch + prefix_len, data, n)
        msg[0] = scratch
        msg_len[0] = prefix_len + n
        return CKR_OK
    if op.in_len and n != op.in_len:
        return CKR_DATA_LEN_RANGE
    if op.mode == MODE_PKCS1 and n + 11 > op.out_len:
        return CKR_DATA_LEN_RANGE
    if op.mode == MODE_ECDSA:
        msg[0] = scratch
        return ecdsa_digest(data, n, op.field_len, op.order_bits, scratch, msg_len)
    return CKR_OK


cdef CK_RV ecdsa_digest(const unsigned char *data, size_t n, size_t field_len, size_t order_bits,
                        unsigned char *out, size_t *out_len) noexcept nogil:
    """The digest the HSM signs for ECDSA input of any length, into out: the number e that
    ECDSA signs (FIPS 186-5 6.4.1: the leftmost order_bits bits of the input) written at the
    length the HSM takes, min(field_len, ECDSA_DIGEST_MAX) bytes. The HSM reads those bytes as
    a number, so it signs e itself. An e that does not fit (P-521: input longer than 64 bytes
    whose leftmost 521 bits exceed 512) cannot be sent: CKR_DATA_LEN_RANGE."""
    cdef unsigned char e[ECDSA_FIELD_MAX]
    cdef size_t hsm_len = field_len if field_len < ECDSA_DIGEST_MAX else ECDSA_DIGEST_MAX
    cdef size_t shift, i
    if field_len > ECDSA_FIELD_MAX or not (8 * field_len - 8 < order_bits <= 8 * field_len):
        return CKR_GENERAL_ERROR
    memset(e, 0, field_len)
    if 8 * n > order_bits:
        # n >= field_len here: the first field_len bytes hold the leftmost order_bits bits,
        # followed by 8 * field_len - order_bits (< 8) bits that go.
        memcpy(e, data, field_len)
        shift = 8 * field_len - order_bits
        if shift:
            i = field_len - 1
            while i > 0:
                e[i] = <unsigned char>((e[i] >> shift) | (e[i - 1] << (8 - shift)))
                i -= 1
            e[0] >>= shift
    else:
        memcpy(e + field_len - n, data, n)
    for i in range(field_len - hsm_len):
        if e[i]:
            return CKR_DATA_LEN_RANGE
    memcpy(out, e + field_len - hsm_len, hsm_len)
    out_len[0] = hsm_len
    return CKR_OK


cdef CK_RV final_digest(op_t *op, const unsigned char *data, size_t n, msg_buf *buf,
                        const unsigned char **msg, size_t *msg_len) noexcept nogil:
    """The final data of a sign or verify operation, hashed when the mechanism hashes."""
    msg[0] = data
    msg_len[0] = n
    if op.hash != H_NONE:
        if (n and hash_update(&op.hctx, data, n) != 0) or hash_final(&op.hctx, buf.digest) != 0:
            return CKR_FUNCTION_FAILED
        msg[0] = buf.digest
        msg_len[0] = hash_len(op.hash)
    return CKR_OK


cdef CK_RV signed_input(op_t *op, const unsigned char *data, size_t n, msg_buf *buf,
                        const unsigned char **msg, size_t *msg_len) noexcept nogil:
    """The final data of a sign or verify operation as the HSM signs it."""
    cdef CK_RV rv = final_digest(op, data, n, buf, &data, &n)
    if rv != CKR_OK:
        return rv
    return sign_input(op, data, n, buf.msg, msg, msg_len)


cdef CK_RV sign_final_data(op_t *op, const unsigned char *data, size_t n, CK_BYTE_PTR out) noexcept nogil:
    cdef msg_buf buf
    cdef const unsigned char *msg
    cdef size_t msg_len
    cdef CK_RV rv
    if op.mode == MODE_CMAC:
        return cmac(op, data, n, out)
    rv = signed_input(op, data, n, &buf, &msg, &msg_len)
    if rv != CKR_OK:
        return rv
    return hsm_sign(op, msg, msg_len, out)


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
        # C_Sign cannot end a multi-part operation, and every failing C_Sign ends it (v3.0).
        op_reset(&s.sign)
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


cdef CK_RV op_update(CK_SESSION_HANDLE hSession, int which, CK_BYTE_PTR pPart,
                    CK_ULONG ulPartLen) noexcept nogil:
    """C_SignUpdate and C_VerifyUpdate: the data is hashed, or kept for the final step."""
    cdef session_t *s
    cdef op_t *op
    cdef CK_RV rv = CKR_OK
    if not p11f_is_initialized():
        return CKR_CRYPTOKI_NOT_INITIALIZED
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


cdef CK_RV C_SignUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen) noexcept nogil:
    return op_update(hSession, OP_SIGN, pPart, ulPartLen)


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
