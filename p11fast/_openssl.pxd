# OpenSSL 3.0 declarations used by the codec (libcrypto only).
#
# Only what p11fast._codec calls is declared: every extra line here is an API surface
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
