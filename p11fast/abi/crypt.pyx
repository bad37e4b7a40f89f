# Encryption and decryption, and CMAC. AES and RSA decryption run on the HSM without the GIL,
# like signing; RSA encryption is done here with the public key (OpenSSL). The HSM has AES-CBC
# only: CKM_AES_ECB and CMAC are built from it.

from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memmove, memset

from p11fast._decl.openssl cimport *
from p11fast._decl.pkcs11 cimport *

cdef enum:
    # Bytes of one AES-CBC request: its JSON body (base64, a third more) stays far below the
    # HSM's request limit (1 MiB for the software HSM).
    AES_CHUNK = 64 * 1024


cdef CK_RV step_size(op_t *op, bint encrypt, int step, size_t n) noexcept nogil:
    """The output length of the next step into op.out_len (op.out_bound: an upper bound), or the
    error its input length gets."""
    cdef size_t total = op.acc.len + n
    cdef size_t k = op.field_len
    cdef size_t limit
    cdef bint pad = op.mech == CKM_AES_CBC_PAD
    op.out_bound = False
    if op.mode != DMODE_AES_CBC:
        # RSA takes all the data at once: an update only collects it.
        op.out_len = 0 if step == STEP_UPDATE else k
        if step == STEP_UPDATE:
            return CKR_OK
        if not encrypt:
            # The plaintext's length is known once decrypted; RAW gives the whole value. An RSA
            # ciphertext is exactly as long as the modulus (RFC 8017 §7.1.2, §7.2.2).
            op.out_bound = op.mode != DMODE_RAW
            return CKR_OK if total == k else CKR_ENCRYPTED_DATA_LEN_RANGE
        limit = (k if op.mode == DMODE_RAW else k - 11 if op.mode == DMODE_PKCS1
                 else k - 2 * hash_len(decrypt_mode_hash(op.mode)) - 2)
        return CKR_OK if total <= limit and limit <= k else CKR_DATA_LEN_RANGE
    if step == STEP_UPDATE:
        # Whole blocks only; CBC_PAD decryption holds the last one back: it may be the padding.
        op.out_len = (total - 1 if pad and not encrypt and total else total) // AES_BLOCK * AES_BLOCK
        return CKR_OK
    if encrypt:
        if pad:
            op.out_len = total // AES_BLOCK * AES_BLOCK + AES_BLOCK
            return CKR_OK
        op.out_len = total
        return CKR_OK if total % AES_BLOCK == 0 else CKR_DATA_LEN_RANGE
    op.out_len = total
    op.out_bound = pad
    return CKR_OK if total % AES_BLOCK == 0 and (total or not pad) else CKR_ENCRYPTED_DATA_LEN_RANGE


cdef CK_RV aes_cbc_request(op_t *op, const char *where, bint encrypt, const unsigned char *iv,
                           const unsigned char *data, size_t n, unsigned char *out) noexcept nogil:
    cdef size_t got = 0
    cdef CK_RV rv
    if encrypt:
        rv = hsm_call(op, where, b"encrypt", HTTP_ENCRYPT, p11f_encrypt_modes[EMODE_AES_CBC],
                      b"message", data, n, iv, b"encrypted", out, n, &got)
    else:
        rv = hsm_call(op, where, b"decrypt", HTTP_DECRYPT, p11f_decrypt_modes[DMODE_AES_CBC],
                      b"encrypted", data, n, iv, b"decrypted", out, n, &got)
    if rv == CKR_OK and got != n:
        log_error(where, b"AES-CBC result of the wrong length from the HSM; bytes", got)
        rv = CKR_DEVICE_ERROR
    return rv


cdef CK_RV aes_cbc(op_t *op, const char *where, bint encrypt, const unsigned char *iv,
                   const unsigned char *data, size_t n, unsigned char *out) noexcept nogil:
    """AES-CBC of n (a multiple of the block) bytes from data to out; they may be the same
    buffer. Longer data goes in requests of AES_CHUNK bytes, chained: the last ciphertext block
    of one is the IV of the next, in both directions, which is CBC of the whole."""
    cdef unsigned char chain[AES_BLOCK]
    cdef unsigned char next_iv[AES_BLOCK]
    cdef size_t done = 0
    cdef size_t k
    cdef CK_RV rv
    memcpy(chain, iv, AES_BLOCK)
    while True:
        k = n - done if n - done < <size_t>AES_CHUNK else <size_t>AES_CHUNK
        if not encrypt and k:
            memcpy(next_iv, data + done + k - AES_BLOCK, AES_BLOCK)
        rv = aes_cbc_request(op, where, encrypt, chain, data + done, k, out + done)
        if rv != CKR_OK or k == 0:
            return rv
        memcpy(chain, out + done + k - AES_BLOCK if encrypt else next_iv, AES_BLOCK)
        done += k
        if done == n:
            return CKR_OK


cdef CK_RV aes_blocks(op_t *op, bint encrypt, const unsigned char *data, size_t n,
                      unsigned char *out) noexcept nogil:
    """n bytes (whole blocks) through the operation's mode; out may be data."""
    cdef const char *where = b"C_Encrypt" if encrypt else b"C_Decrypt"
    cdef unsigned char zero[AES_BLOCK]
    cdef unsigned char next_iv[AES_BLOCK]
    cdef unsigned char *plain
    cdef size_t i
    cdef int j
    cdef CK_RV rv = CKR_OK
    if op.mech != CKM_AES_ECB:
        if not encrypt:
            memcpy(next_iv, data + n - AES_BLOCK, AES_BLOCK)
        rv = aes_cbc(op, where, encrypt, op.iv, data, n, out)
        if rv == CKR_OK:
            memcpy(op.iv, out + n - AES_BLOCK if encrypt else next_iv, AES_BLOCK)
        return rv
    memset(zero, 0, AES_BLOCK)
    if encrypt:
        # A block's CBC encryption under a zero IV is its ECB encryption. Chaining makes each
        # block depend on the one before, so ECB encryption costs one request per block.
        i = 0
        while rv == CKR_OK and i < n:
            rv = aes_cbc(op, where, True, zero, data + i, AES_BLOCK, out + i)
            i += AES_BLOCK
        return rv
    # CBC decryption of the whole input under a zero IV gives each block's ECB decryption XORed
    # with the ciphertext block before it: one request, then undo the XOR (from the end, so that
    # out may be data).
    plain = <unsigned char *>malloc(n)
    if plain == NULL:
        return CKR_HOST_MEMORY
    rv = aes_cbc(op, where, False, zero, data, n, plain)
    if rv == CKR_OK:
        i = n
        while i > <size_t>AES_BLOCK:
            i -= AES_BLOCK
            for j in range(AES_BLOCK):
                out[i + j] = plain[i + j] ^ data[i - AES_BLOCK + j]
        memcpy(out, plain, AES_BLOCK)
    memset(plain, 0, n)
    free(plain)
    return rv


cdef CK_RV aes_step(op_t *op, bint encrypt, int step, const unsigned char *data, size_t n,
                    unsigned char *out, size_t *produced) noexcept nogil:
    """One step of op.out_len bytes (step_size): the held-back partial block first, then data;
    what is left over stays held back. CBC_PAD padding is added on encryption and checked and
    removed on decryption."""
    cdef bint pad = op.mech == CKM_AES_CBC_PAD
    cdef size_t whole = op.out_len
    cdef size_t rest
    cdef unsigned char padding[AES_BLOCK]
    cdef unsigned char p
    cdef size_t i
    cdef const unsigned char *src = data
    cdef CK_RV rv = CKR_OK
    produced[0] = 0
    if encrypt and pad and step != STEP_UPDATE:
        p = AES_BLOCK - (op.acc.len + n) % AES_BLOCK
        memset(padding, p, p)
        if wbuf_put(&op.acc, <const char *>data, n) or wbuf_put(&op.acc, <const char *>padding, p):
            return CKR_HOST_MEMORY
    elif op.acc.len and n and wbuf_put(&op.acc, <const char *>data, n):
        return CKR_HOST_MEMORY
    if op.acc.len:
        src = <const unsigned char *>op.acc.data
        rest = op.acc.len - whole
    else:
        rest = n - whole
    if whole:
        rv = aes_blocks(op, encrypt, src, whole, out)
        if rv != CKR_OK:
            return rv
    if src != data:
        memmove(op.acc.data, op.acc.data + whole, rest)
        op.acc.len = rest
    elif rest and wbuf_put(&op.acc, <const char *>data + whole, rest):
        return CKR_HOST_MEMORY
    produced[0] = whole
    if pad and not encrypt and step != STEP_UPDATE:
        p = out[whole - 1]
        if p == 0 or p > AES_BLOCK:
            return CKR_ENCRYPTED_DATA_INVALID
        for i in range(whole - p, whole):
            if out[i] != p:
                return CKR_ENCRYPTED_DATA_INVALID
        produced[0] = whole - p
    return CKR_OK


cdef CK_RV rsa_encrypt(op_t *op, const unsigned char *data, size_t n, unsigned char *out,
                       size_t *produced) noexcept nogil:
    """RSA encryption with the public key, here: the HSM only decrypts."""
    cdef EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(<EVP_PKEY *>op.pkey, NULL)
    cdef unsigned char value[SIG_MAX]
    cdef const EVP_MD *md
    cdef size_t out_n = op.field_len
    cdef bint ok
    if ctx == NULL:
        return CKR_HOST_MEMORY
    ok = EVP_PKEY_encrypt_init(ctx) == 1
    if op.mode == DMODE_RAW:
        # Raw RSA takes a value as long as the modulus: shorter data is the same number.
        copy_left_padded(value, op.field_len, data, n)
        data = value
        n = op.field_len
        ok = ok and EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING) == 1
    elif op.mode == DMODE_PKCS1:
        ok = ok and EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1
    else:
        md = <const EVP_MD *>hash_md(decrypt_mode_hash(op.mode))
        ok = (ok and md != NULL and EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1
              and EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) == 1 and EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) == 1)
    ok = ok and EVP_PKEY_encrypt(ctx, out, &out_n, data, n) == 1
    EVP_PKEY_CTX_free(ctx)
    ERR_clear_error()
    if not ok:
        # What the length checks let through and OpenSSL refuses: a raw value above the modulus.
        return CKR_DATA_INVALID
    produced[0] = out_n
    return CKR_OK


cdef CK_RV rsa_decrypt(op_t *op, const unsigned char *data, size_t n, unsigned char *out,
                       size_t *produced) noexcept nogil:
    """out has room for the modulus' length (step_size's bound)."""
    cdef size_t got = 0
    cdef CK_RV rv = hsm_call(op, b"C_Decrypt", b"decrypt", HTTP_DECRYPT, p11f_decrypt_modes[op.mode],
                             b"encrypted", data, n, NULL, b"decrypted", out, op.field_len, &got)
    if rv != CKR_OK:
        return rv
    produced[0] = got
    if op.mode == DMODE_RAW:
        if not copy_left_padded(out, op.field_len, out, got):
            log_error(b"C_Decrypt", b"empty RAW decryption from the HSM; bytes", got)
            return CKR_DEVICE_ERROR
        produced[0] = op.field_len
    return CKR_OK


cdef CK_RV step_run(op_t *op, bint encrypt, int step, const unsigned char *data, size_t n,
                    unsigned char *out, size_t *produced) noexcept nogil:
    if op.mode == DMODE_AES_CBC:
        return aes_step(op, encrypt, step, data, n, out, produced)
    produced[0] = 0
    if (op.acc.len or step == STEP_UPDATE) and n:
        if wbuf_put(&op.acc, <const char *>data, n):
            return CKR_HOST_MEMORY
    if step == STEP_UPDATE:
        return CKR_OK
    if op.acc.len:
        data = <const unsigned char *>op.acc.data
        n = op.acc.len
    if encrypt:
        return rsa_encrypt(op, data, n, out, produced)
    return rsa_decrypt(op, data, n, out, produced)


cdef CK_RV crypt_call(CK_SESSION_HANDLE hSession, int which, int step, const unsigned char *data,
                      size_t n, CK_BYTE_PTR out, CK_ULONG_PTR out_len) noexcept nogil:
    """Every C_Encrypt*/C_Decrypt* step but Init, under the output-buffer rule (output_size)."""
    cdef session_t *s
    cdef op_t *op
    cdef bint encrypt = which == OP_ENCRYPT
    cdef bint done
    cdef size_t produced = 0
    cdef CK_RV rv
    s = session_lock(hSession)
    if s == NULL:
        return CKR_SESSION_HANDLE_INVALID
    op = op_of(s, which)
    if not op.active:
        session_unlock(s)
        return CKR_OPERATION_NOT_INITIALIZED
    if step == STEP_SINGLE and op.multipart:
        # as C_Sign: the failing single-part call ends the multi-part operation
        op_reset(op)
        session_unlock(s)
        return CKR_OPERATION_ACTIVE
    if out_len == NULL or (data == NULL and n != 0):
        op_reset(op)
        session_unlock(s)
        return CKR_ARGUMENTS_BAD
    rv = CKR_OK if op.pending != NULL else step_size(op, encrypt, step, n)
    if rv == CKR_OK:
        rv = output_size(op, out, out_len, &done)
    else:
        done = False
        op_reset(op)
    if rv == CKR_OK and not done:
        if op.out_bound and out_len[0] < op.out_len:
            # The result may still fit: compute it aside for output_size to hand over or keep.
            op.pending = <unsigned char *>malloc(op.out_len if op.out_len else 1)
            if op.pending == NULL:
                rv = CKR_HOST_MEMORY
            else:
                rv = step_run(op, encrypt, step, data, n, op.pending, &op.pending_len)
            if rv == CKR_OK:
                rv = output_size(op, out, out_len, &done)
            else:
                op_reset(op)
        else:
            rv = step_run(op, encrypt, step, data, n, out, &produced)
            if rv == CKR_OK:
                out_len[0] = produced
            if step == STEP_UPDATE and rv == CKR_OK:
                op.multipart = True
            else:
                op_reset(op)
    session_unlock(s)
    return rv


cdef void cmac_double(unsigned char *block) noexcept nogil:
    """Multiplication by x in GF(2^128), RFC 4493 §2.3."""
    cdef unsigned char carry = block[0] >> 7
    cdef int i
    for i in range(AES_BLOCK - 1):
        block[i] = <unsigned char>((block[i] << 1) | (block[i + 1] >> 7))
    block[AES_BLOCK - 1] = <unsigned char>((block[AES_BLOCK - 1] << 1) ^ (0x87 if carry else 0))


cdef CK_RV cmac(op_t *op, const unsigned char *data, size_t n, unsigned char *out) noexcept nogil:
    """AES-CMAC from the HSM's AES-CBC, two requests: L = AES(K, 0) gives the subkeys K1 and K2;
    the MAC is the last block of the CBC encryption, under a zero IV, of the message whose last
    block is XORed with K1 when complete, else padded with 10…0 and XORed with K2. Writes
    op.out_len bytes."""
    cdef unsigned char zero[AES_BLOCK]
    cdef unsigned char subkey[AES_BLOCK]
    cdef size_t blocks = (n + AES_BLOCK - 1) // AES_BLOCK if n else 1
    cdef size_t last = (blocks - 1) * AES_BLOCK
    cdef unsigned char *msg
    cdef int i
    cdef CK_RV rv
    memset(zero, 0, AES_BLOCK)
    rv = aes_cbc(op, b"C_Sign", True, zero, zero, AES_BLOCK, subkey)
    if rv != CKR_OK:
        return rv
    cmac_double(subkey)
    if n == 0 or n % AES_BLOCK:
        cmac_double(subkey)
    msg = <unsigned char *>malloc(blocks * AES_BLOCK)
    if msg == NULL:
        return CKR_HOST_MEMORY
    memcpy(msg, data, n)
    if n < blocks * AES_BLOCK:
        msg[n] = 0x80
        memset(msg + n + 1, 0, blocks * AES_BLOCK - n - 1)
    for i in range(AES_BLOCK):
        msg[last + i] ^= subkey[i]
    rv = aes_cbc(op, b"C_Sign", True, zero, msg, blocks * AES_BLOCK, msg)
    if rv == CKR_OK:
        memcpy(out, msg + last, op.out_len)
    free(msg)
    memset(subkey, 0, AES_BLOCK)
    return rv
