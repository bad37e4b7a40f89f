# hash: digests and DigestInfo (contract in hash.pxd).

from p11fast._decl.openssl cimport (EVP_Digest, EVP_DigestFinal_ex, EVP_DigestInit_ex,
                                    EVP_DigestUpdate, EVP_MD, EVP_MD_CTX, EVP_MD_CTX_free,
                                    EVP_MD_CTX_new)

# Constant tables as static const C data: they live in .rodata, need no set-up at import,
# and are indexed by hash in H_* order (H_NONE first).
cdef extern from *:
    """
    /* RFC 8017 §9.2 note 1: DigestInfo ::= SEQUENCE { AlgorithmIdentifier (with NULL
       parameters), OCTET STRING digest } up to the digest itself. */
    static const unsigned char P11F_DI_MD5[] = {0x30, 0x20, 0x30, 0x0c, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05, 0x05, 0x00, 0x04, 0x10};
    static const unsigned char P11F_DI_SHA1[] = {0x30, 0x21, 0x30, 0x09, 0x06, 0x05,
        0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14};
    static const unsigned char P11F_DI_SHA224[] = {0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09,
        0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04, 0x05, 0x00, 0x04, 0x1c};
    static const unsigned char P11F_DI_SHA256[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09,
        0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
    static const unsigned char P11F_DI_SHA384[] = {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09,
        0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30};
    static const unsigned char P11F_DI_SHA512[] = {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09,
        0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40};

    static const unsigned char *const P11F_DI_PREFIX[7] = {NULL, P11F_DI_MD5,
        P11F_DI_SHA1, P11F_DI_SHA224, P11F_DI_SHA256, P11F_DI_SHA384, P11F_DI_SHA512};
    static const unsigned char P11F_DI_LEN[7] = {0, sizeof P11F_DI_MD5,
        sizeof P11F_DI_SHA1, sizeof P11F_DI_SHA224, sizeof P11F_DI_SHA256,
        sizeof P11F_DI_SHA384, sizeof P11F_DI_SHA512};
    static const unsigned char P11F_HASH_LEN[7] = {0, 16, 20, 28, 32, 48, 64};
    static const char *const P11F_HASH_NAME[7] = {NULL, "MD5", "SHA1", "SHA2-224",
        "SHA2-256", "SHA2-384", "SHA2-512"};
    """
    const unsigned char *const P11F_DI_PREFIX[7]
    const unsigned char P11F_DI_LEN[7]
    const unsigned char P11F_HASH_LEN[7]
    const char *const P11F_HASH_NAME[7]


# Fetched together on the first use of any hash, and never freed: the module is never
# unloaded. Not at import: a run that hashes nothing (listing tokens, raw ECDSA) then never
# initialises OpenSSL here, which in a wheel with static dependencies is a copy of its own.
# NULL where the loaded providers lack the algorithm (MD5 under FIPS), which turns that hash
# into a clean failure.
cdef extern from *:
    """
    #include <pthread.h>
    static EVP_MD *p11f_md[7];
    static pthread_once_t p11f_md_once = PTHREAD_ONCE_INIT;

    static void p11f_md_fetch_all(void)
    {
        for (int h = 1; h < 7; h++)
            p11f_md[h] = EVP_MD_fetch(NULL, P11F_HASH_NAME[h], NULL);
    }

    static const EVP_MD *p11f_md_get(int h)
    {
        pthread_once(&p11f_md_once, p11f_md_fetch_all);
        return p11f_md[h];
    }
    """
    const EVP_MD *p11f_md_get(int h) nogil


cdef inline const EVP_MD *_md(int h) noexcept nogil:
    if h < H_MD5 or h > H_SHA512:
        return NULL
    return p11f_md_get(h)


cdef const void *hash_md(int h) noexcept nogil:
    return _md(h)


cdef size_t hash_len(int h) noexcept nogil:
    if h < H_MD5 or h > H_SHA512:
        return 0
    return P11F_HASH_LEN[h]


cdef const unsigned char *digestinfo_prefix(int h, size_t *prefix_len) noexcept nogil:
    if h < H_MD5 or h > H_SHA512:
        prefix_len[0] = 0
        return NULL
    prefix_len[0] = P11F_DI_LEN[h]
    return P11F_DI_PREFIX[h]


cdef int hash_oneshot(int h, const unsigned char *data, size_t n, unsigned char *out) noexcept nogil:
    cdef const EVP_MD *md = _md(h)
    if md == NULL or EVP_Digest(data, n, out, NULL, md, NULL) != 1:
        return -1
    return 0


cdef int hash_init(hash_ctx *c, int h) noexcept nogil:
    cdef const EVP_MD *md = _md(h)
    cdef EVP_MD_CTX *ctx
    c.md_ctx = NULL
    c.h = h
    if md == NULL:
        return -1
    ctx = EVP_MD_CTX_new()
    if ctx == NULL:
        return -1
    if EVP_DigestInit_ex(ctx, md, NULL) != 1:
        EVP_MD_CTX_free(ctx)
        return -1
    c.md_ctx = ctx
    return 0


cdef int hash_update(hash_ctx *c, const unsigned char *data, size_t n) noexcept nogil:
    if c.md_ctx == NULL or EVP_DigestUpdate(<EVP_MD_CTX *>c.md_ctx, data, n) != 1:
        return -1
    return 0


cdef int hash_final(hash_ctx *c, unsigned char *out) noexcept nogil:
    cdef int ok
    if c.md_ctx == NULL:
        return -1
    ok = EVP_DigestFinal_ex(<EVP_MD_CTX *>c.md_ctx, out, NULL)
    hash_free(c)
    return 0 if ok == 1 else -1


cdef void hash_free(hash_ctx *c) noexcept nogil:
    EVP_MD_CTX_free(<EVP_MD_CTX *>c.md_ctx)
    c.md_ctx = NULL
