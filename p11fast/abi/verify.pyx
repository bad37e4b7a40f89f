# Verification: every sign mechanism, done here with the key's public half and OpenSSL (no
# request, no login), and CMAC, which needs the HSM's AES (crypt).

from p11fast._decl.openssl cimport *
from p11fast._decl.pkcs11 cimport *


cdef CK_RV pkey_verify(op_t *op, const unsigned char *msg, size_t n, const unsigned char *sig,
                       size_t sig_len) noexcept nogil:
    """Checks a signature over what the HSM signs (sign_input; ECDSA: the digest): with no
    digest set, OpenSSL verifies raw PKCS#1 and ECDSA input as the HSM signs it."""
    cdef EVP_PKEY *pkey = <EVP_PKEY *>op.pkey
    cdef EVP_PKEY_CTX *ctx
    cdef EVP_MD_CTX *mctx
    cdef const EVP_MD *md
    cdef unsigned char der[160]
    cdef Py_ssize_t der_len
    cdef int h
    cdef bint ok = False
    if op.mode == MODE_EDDSA:
        mctx = EVP_MD_CTX_new()
        if mctx == NULL:
            return CKR_HOST_MEMORY
        ok = (EVP_DigestVerifyInit(mctx, NULL, NULL, NULL, pkey) == 1
              and EVP_DigestVerify(mctx, sig, sig_len, msg, n) == 1)
        EVP_MD_CTX_free(mctx)
    else:
        ctx = EVP_PKEY_CTX_new(pkey, NULL)
        if ctx == NULL:
            return CKR_HOST_MEMORY
        if EVP_PKEY_verify_init(ctx) == 1:
            if op.mode == MODE_ECDSA:
                der_len = ecdsa_raw_to_der(sig, sig_len, der, sizeof(der))
                ok = der_len > 0 and EVP_PKEY_verify(ctx, der, der_len, msg, n) == 1
            elif op.mode == MODE_PKCS1:
                ok = (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1
                      and EVP_PKEY_verify(ctx, sig, sig_len, msg, n) == 1)
            else:
                h = sign_mode_hash(op.mode)  # PSS
                md = <const EVP_MD *>hash_md(h)
                ok = (md != NULL and EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) == 1
                      and EVP_PKEY_CTX_set_signature_md(ctx, md) == 1
                      and EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) == 1
                      and EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, <int>hash_len(h)) == 1
                      and EVP_PKEY_verify(ctx, sig, sig_len, msg, n) == 1)
        EVP_PKEY_CTX_free(ctx)
    ERR_clear_error()
    return CKR_OK if ok else CKR_SIGNATURE_INVALID


cdef CK_RV verify_data(op_t *op, const unsigned char *data, size_t n, const unsigned char *sig,
                       size_t sig_len) noexcept nogil:
    cdef msg_buf buf
    cdef const unsigned char *msg
    cdef size_t msg_len
    cdef unsigned char mac[AES_BLOCK]
    cdef CK_RV rv
    if sig_len != op.out_len:
        return CKR_SIGNATURE_LEN_RANGE
    if op.mode == MODE_CMAC:
        rv = cmac(op, data, n, mac)
        if rv == CKR_OK and CRYPTO_memcmp(mac, sig, sig_len) != 0:
            rv = CKR_SIGNATURE_INVALID
        return rv
    if op.mode != MODE_ECDSA:
        rv = signed_input(op, data, n, &buf, &msg, &msg_len)
    else:
        # The digest as it is: OpenSSL reads it as ECDSA says, as the HSM does (a digest the
        # sign path pads to the curve's length is the same number to the HSM).
        rv = final_digest(op, data, n, &buf, &msg, &msg_len)
    if rv != CKR_OK:
        return rv
    return pkey_verify(op, msg, msg_len, sig, sig_len)


cdef CK_RV verify_call(CK_SESSION_HANDLE hSession, bint single, const unsigned char *data, size_t n,
                       const unsigned char *sig, size_t sig_len) noexcept nogil:
    """C_Verify (single, with the data) and C_VerifyFinal (the data given to C_VerifyUpdate)."""
    cdef session_t *s
    cdef CK_RV rv
    s = session_lock(hSession)
    if s == NULL:
        return CKR_SESSION_HANDLE_INVALID
    if not s.verify.active:
        rv = CKR_OPERATION_NOT_INITIALIZED
    else:
        # C_Verify and C_VerifyFinal always end the operation (v3.0), C_Verify after an Update too
        if single and s.verify.multipart:
            rv = CKR_OPERATION_ACTIVE
        elif (data == NULL and n != 0) or (sig == NULL and sig_len != 0):
            rv = CKR_ARGUMENTS_BAD
        elif single:
            rv = verify_data(&s.verify, data, n, sig, sig_len)
        else:
            rv = verify_data(&s.verify, <const unsigned char *>s.verify.acc.data, s.verify.acc.len,
                              sig, sig_len)
        op_reset(&s.verify)
    session_unlock(s)
    return rv
