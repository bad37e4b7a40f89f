# ops: the operation core every key operation shares — starting one on a session with a key
# (key_op_init: the policy, the key handle, the login, which mechanism with which parameters on
# which key — RSA PKCS#1 and PSS, ECDSA, EdDSA and CMAC for sign and verify, RSA and AES for
# encrypt and decrypt — and the operation state it sets up, the public key of local work),
# feeding it (op_update), the standard's output-buffer rule (output_size), and the one request
# a key operation on the HSM makes (hsm_call: POST /keys/{id}/{action} on the calling thread,
# base64 in and out, the failure logged once).
#
# Contract: nogil, no Python object. key_op_init and op_update take the session's lock for the
# step; output_size and hsm_call run under it (the caller's). hsm_call copies the slot's
# credentials under the slot's lock and holds no lock across the request but the session's.
# Every function returns a CKR; a failure is logged through errors (deferred to the unlock).
# The mechanisms' setup is private here, so C_SignInit's whole path is one piece;
# session_active (a session with an operation active) is inline, for C_Sign.
# uses: state, errors, sessions, objects, mechanisms, codec/base64, codec/hash, codec/json, codec/wbuf, transport/types, transport/request

from p11fast._decl.pkcs11 cimport (
    CK_BYTE_PTR, CK_MECHANISM, CK_MECHANISM_PTR, CK_MECHANISM_TYPE, CK_OBJECT_HANDLE, CK_RV,
    CK_SESSION_HANDLE, CK_ULONG, CK_ULONG_PTR, CKR_OK, CKR_OPERATION_NOT_INITIALIZED,
    CKR_SESSION_HANDLE_INVALID,
)

# The operations of a session that take a key.
cdef enum:
    OP_SIGN = 0
    OP_VERIFY = 1
    OP_DECRYPT = 2
    OP_ENCRYPT = 3
    OP_DIGEST = 4     # no key: op_of and session_active only

cdef enum:
    AES_BLOCK = 16
    # CMAC's op_t.mode: none of the HSM's sign modes, as CMAC is built from its AES-CBC
    # encryption (crypt).
    MODE_CMAC = -1

cdef enum:
    # Largest signature or RSA value the HSM returns: RSA-8192.
    SIG_MAX = 1024

cdef inline bint has_parameter(const CK_MECHANISM *m) noexcept nogil:
    """Whether a mechanism that takes no parameter got one: CKR_MECHANISM_PARAM_INVALID then.
    A length means one even with a NULL pointer (the application believes it passed
    something); a pointer with length 0 carries nothing, as from hosts that always pass one."""
    return m.ulParameterLen != 0

cdef int hash_of_mechanism(CK_MECHANISM_TYPE m) noexcept nogil
cdef int hash_of_mgf(CK_ULONG mgf) noexcept nogil
# The one policy check of every C_*Init and key generation: CKR_MECHANISM_INVALID, logged,
# for a mechanism the configuration does not allow.
cdef CK_RV policy_check_mechanism(const char *where, CK_MECHANISM_TYPE m) noexcept nogil


cdef inline op_t *op_of(session_t *s, int which) noexcept nogil:
    if which == OP_SIGN:
        return &s.sign
    if which == OP_VERIFY:
        return &s.verify
    if which == OP_DECRYPT:
        return &s.decrypt
    if which == OP_DIGEST:
        return &s.digest
    return &s.encrypt


cdef inline session_t *session_active(CK_SESSION_HANDLE h, int which, CK_RV *rv) noexcept nogil:
    """The session h, locked, with its operation `which` (OP_*) active, and CKR_OK in *rv;
    else NULL and the CKR in *rv."""
    cdef session_t *s = session_lock(h)
    rv[0] = CKR_OK
    if s == NULL:
        rv[0] = CKR_SESSION_HANDLE_INVALID
    elif not op_of(s, which).active:
        session_unlock(s)
        rv[0] = CKR_OPERATION_NOT_INITIALIZED
        s = NULL
    return s


# Every C_*Init that takes a key: `which` is an OP_* of params.
cdef CK_RV key_op_init(CK_SESSION_HANDLE hSession, int which, CK_MECHANISM_PTR pMechanism,
                       CK_OBJECT_HANDLE hKey, const char *where) noexcept nogil
cdef CK_RV op_update(CK_SESSION_HANDLE hSession, int which, CK_BYTE_PTR pPart,
                     CK_ULONG ulPartLen) noexcept nogil
cdef CK_RV output_size(op_t *op, CK_BYTE_PTR out, CK_ULONG_PTR out_len, bint *done) noexcept nogil
cdef CK_RV hsm_call(op_t *op, const char *where, const char *action, int context, const char *mode,
                    const char *in_field, const unsigned char *data, size_t n, const unsigned char *iv,
                    const char *out_field, unsigned char *out, size_t cap, size_t *out_n) noexcept nogil
# An RSA value is as long as the modulus: src (may overlap out) with its leading zero bytes.
cdef bint copy_left_padded(unsigned char *out, size_t size, const unsigned char *src,
                           size_t n) noexcept nogil
