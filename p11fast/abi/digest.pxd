# digest: message digests, computed here with OpenSSL, and random numbers from the HSM
# (POST /random); the C_Digest*, C_GenerateRandom and C_SeedRandom implementations.
#
# Contract: the digest functions are nogil and hold the session's lock for their step;
# generate_random is the cold path (the GIL, the transport's Python surface), its session
# checked without the GIL first.
# uses: state, sessions, objects, ops, codec/hash, codec/wbuf

from p11fast._decl.pkcs11 cimport (
    CK_BYTE_PTR, CK_MECHANISM_PTR, CK_OBJECT_HANDLE, CK_RV, CK_SESSION_HANDLE, CK_ULONG,
    CK_ULONG_PTR,
)

cdef CK_RV c_digest_init(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism) noexcept nogil
cdef CK_RV c_digest(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                  CK_BYTE_PTR pDigest, CK_ULONG_PTR pulDigestLen) noexcept nogil
cdef CK_RV c_digest_update(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart,
                         CK_ULONG ulPartLen) noexcept nogil
cdef CK_RV c_digest_key(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hKey) noexcept nogil
cdef CK_RV c_digest_final(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pDigest,
                        CK_ULONG_PTR pulDigestLen) noexcept nogil
cdef CK_RV c_generate_random_check(call_t *call, CK_SESSION_HANDLE hSession, CK_BYTE_PTR pRandomData,
                                 CK_ULONG ulRandomLen) noexcept nogil
cdef CK_RV c_generate_random(call_t *call, CK_SESSION_HANDLE hSession, CK_BYTE_PTR pRandomData,
                           CK_ULONG ulRandomLen) except *
cdef CK_RV c_seed_random(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSeed,
                       CK_ULONG ulSeedLen) noexcept nogil
