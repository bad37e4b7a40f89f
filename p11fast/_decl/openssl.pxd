# OpenSSL 3.0 declarations: libcrypto for the codec and the ABI, and the few libssl and X.509
# calls the transport's certificate pinning makes (p11fast/transport/conn.pyx).
#
# Only what the compiled modules call is declared: every extra line here is an API surface
# someone has to check against the headers when OpenSSL is upgraded.

cdef extern from "openssl/evp.h" nogil:
    ctypedef struct EVP_MD:
        pass
    ctypedef struct EVP_MD_CTX:
        pass
    ctypedef struct ENGINE:
        pass
    ctypedef struct OSSL_LIB_CTX:
        pass

    # Explicit fetch (OpenSSL >= 3.0): the EVP_sha256()-style getters re-fetch the
    # implementation from the provider store on every EVP_DigestInit_ex, which takes a
    # store lock per call; a fetched EVP_MD skips that.
    EVP_MD *EVP_MD_fetch(OSSL_LIB_CTX *ctx, const char *algorithm, const char *properties)

    EVP_MD_CTX *EVP_MD_CTX_new()
    void EVP_MD_CTX_free(EVP_MD_CTX *ctx)
    int EVP_DigestInit_ex(EVP_MD_CTX *ctx, const EVP_MD *type, ENGINE *impl)
    int EVP_DigestUpdate(EVP_MD_CTX *ctx, const void *d, size_t cnt)
    int EVP_DigestFinal_ex(EVP_MD_CTX *ctx, unsigned char *md, unsigned int *s)
    int EVP_Digest(const void *data, size_t count, unsigned char *md, unsigned int *size,
                   const EVP_MD *type, ENGINE *impl)
    enum: EVP_MAX_MD_SIZE
    const EVP_MD *EVP_sha256()


# Public-key operations done locally: verification and RSA encryption with a public key.
cdef extern from "openssl/evp.h" nogil:
    ctypedef struct EVP_PKEY:
        pass
    ctypedef struct EVP_PKEY_CTX:
        pass

    void EVP_PKEY_free(EVP_PKEY *pkey)
    EVP_PKEY_CTX *EVP_PKEY_CTX_new(EVP_PKEY *pkey, ENGINE *e)
    void EVP_PKEY_CTX_free(EVP_PKEY_CTX *ctx)
    int EVP_PKEY_verify_init(EVP_PKEY_CTX *ctx)
    int EVP_PKEY_verify(EVP_PKEY_CTX *ctx, const unsigned char *sig, size_t siglen,
                        const unsigned char *tbs, size_t tbslen)
    int EVP_PKEY_encrypt_init(EVP_PKEY_CTX *ctx)
    int EVP_PKEY_encrypt(EVP_PKEY_CTX *ctx, unsigned char *out, size_t *outlen,
                         const unsigned char *inp, size_t inlen)
    int EVP_PKEY_CTX_set_signature_md(EVP_PKEY_CTX *ctx, const EVP_MD *md)
    int EVP_DigestVerifyInit(EVP_MD_CTX *ctx, EVP_PKEY_CTX **pctx, const EVP_MD *type,
                             ENGINE *e, EVP_PKEY *pkey)
    int EVP_DigestVerify(EVP_MD_CTX *ctx, const unsigned char *sig, size_t siglen,
                         const unsigned char *tbs, size_t tbslen)

cdef extern from "openssl/x509.h" nogil:
    ctypedef struct X509:
        pass
    ctypedef struct X509_STORE_CTX:
        pass
    enum: X509_V_ERR_CERT_REJECTED

    EVP_PKEY *d2i_PUBKEY(EVP_PKEY **a, const unsigned char **pp, long length)
    X509 *X509_STORE_CTX_get0_cert(X509_STORE_CTX *ctx)
    void X509_STORE_CTX_set_error(X509_STORE_CTX *ctx, int err)
    int X509_digest(const X509 *cert, const EVP_MD *md, unsigned char *out, unsigned int *len)

cdef extern from "openssl/rsa.h" nogil:
    enum:
        RSA_PKCS1_PADDING
        RSA_NO_PADDING
        RSA_PKCS1_OAEP_PADDING
        RSA_PKCS1_PSS_PADDING
    int EVP_PKEY_CTX_set_rsa_padding(EVP_PKEY_CTX *ctx, int pad)
    int EVP_PKEY_CTX_set_rsa_pss_saltlen(EVP_PKEY_CTX *ctx, int saltlen)
    int EVP_PKEY_CTX_set_rsa_mgf1_md(EVP_PKEY_CTX *ctx, const EVP_MD *md)
    int EVP_PKEY_CTX_set_rsa_oaep_md(EVP_PKEY_CTX *ctx, const EVP_MD *md)

cdef extern from "openssl/crypto.h" nogil:
    int CRYPTO_memcmp(const void *a, const void *b, size_t len)

cdef extern from "openssl/err.h" nogil:
    void ERR_clear_error()

# TLS: libcurl hands the transport each connection's SSL_CTX (CURLOPT_SSL_CTX_FUNCTION).
cdef extern from "openssl/ssl.h" nogil:
    ctypedef struct SSL_CTX:
        pass
    enum: SSL_VERIFY_PEER

    void SSL_CTX_set_verify(SSL_CTX *ctx, int mode, void *callback)
    void SSL_CTX_set_cert_verify_callback(SSL_CTX *ctx,
                                          int (*cb)(X509_STORE_CTX *, void *) noexcept nogil,
                                          void *arg)
