# hash: digests with OpenSSL's EVP (one-shot and multi-part), their lengths, and the PKCS#1
# v1.5 DigestInfo prefixes (RFC 8017 §9.2 note 1).
#
# Contract: nogil, no Python object; OpenSSL allocates the multi-part context. The digests
# are fetched from OpenSSL's providers once, on the first use of any hash (not at import: a
# run that hashes nothing never initialises OpenSSL here), and never freed. A hash the
# providers lack (MD5 under FIPS) is a clean failure: hash_md NULL, the others -1.
# uses:

cdef enum:
    H_NONE = 0
    H_MD5 = 1
    H_SHA1 = 2
    H_SHA224 = 3
    H_SHA256 = 4
    H_SHA384 = 5
    H_SHA512 = 6

# Longest digest hash_len returns (SHA-512); sizes stack buffers for hash output.
cdef enum:
    HASH_MAX_LEN = 64

# Digest length of h; 0 for H_NONE and unknown values.
cdef size_t hash_len(int h) noexcept nogil
# DER DigestInfo prefix (RFC 8017 §9.2 note 1) for H_MD5..H_SHA512: the prefix followed
# by the digest is the DigestInfo. NULL and *prefix_len = 0 for anything else.
cdef const unsigned char *digestinfo_prefix(int h, size_t *prefix_len) noexcept nogil
# The fetched OpenSSL EVP_MD of h (an `const EVP_MD *`, untyped so this file needs no
# OpenSSL declarations), for callers that give OpenSSL a hash by itself (PSS, OAEP);
# NULL for H_NONE, unknown values and hashes the providers lack.
cdef const void *hash_md(int h) noexcept nogil
# out receives hash_len(h) bytes. 0 ok, -1 unknown h or OpenSSL failure.
cdef int hash_oneshot(int h, const unsigned char *data, size_t n, unsigned char *out) noexcept nogil

# Multi-part hashing state. A zeroed hash_ctx is valid for hash_free; hash_init
# overwrites md_ctx without freeing it, so a live context must be finished or freed first.
cdef struct hash_ctx:
    void *md_ctx    # EVP_MD_CTX *, NULL when no operation is live
    int h

# All return 0 ok, -1 on unknown h, no live context, or OpenSSL failure. A failed
# hash_init leaves nothing live; after a failed hash_update the context still needs
# hash_final or hash_free; hash_final always frees it.
cdef int hash_init(hash_ctx *c, int h) noexcept nogil
cdef int hash_update(hash_ctx *c, const unsigned char *data, size_t n) noexcept nogil
cdef int hash_final(hash_ctx *c, unsigned char *out) noexcept nogil
cdef void hash_free(hash_ctx *c) noexcept nogil
