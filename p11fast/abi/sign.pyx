# The sign path: from C_SignInit to the return of C_Sign nothing here touches a Python object
# or the GIL (only a failure takes the GIL, to log it, once the session is unlocked).

from libc.string cimport memcpy, memset

from p11fast._decl.pkcs11 cimport *

cdef enum:
    # The NetHSM signs ECDSA over exactly the digest of the curve's hash: SHA-256/384 for the
    # 256/384-bit curves, SHA-512 for BrainpoolP512 and for P-521 (keyfender
    # src/keyfender/hsm.ml, Key.sign), so never more than 64 bytes.
    ECDSA_DIGEST_MAX = 64
    # Longest EC coordinate: P-521.
    ECDSA_FIELD_MAX = 66


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


cdef CK_RV c_sign_final(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature,
                       CK_ULONG_PTR pulSignatureLen) noexcept nogil:
    cdef CK_RV rv
    cdef session_t *s = session_active(hSession, OP_SIGN, &rv)
    if s == NULL:
        return rv
    if pulSignatureLen == NULL:
        return op_failed(s, &s.sign, CKR_ARGUMENTS_BAD)
    return sign_end(s, <const unsigned char *>s.sign.acc.data, s.sign.acc.len, pSignature,
                    pulSignatureLen)
