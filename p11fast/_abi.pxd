# C-level state of the PKCS#11 ABI: handle tables and operation state.
# Everything the sign path reads lives in these structs so that it runs without the GIL.

from p11fast._decl.pkcs11 cimport CK_FLAGS, CK_MECHANISM_TYPE, CK_OBJECT_HANDLE, CK_SESSION_HANDLE, CK_ULONG
from p11fast._decl.posix cimport (
    pthread_cond_broadcast, pthread_cond_init, pthread_cond_t, pthread_cond_timedwait,
    pthread_mutex_init, pthread_mutex_lock, pthread_mutex_t, pthread_mutex_unlock,
)
from p11fast._codec cimport hash_ctx, wbuf
from p11fast._transport cimport tp_pool

# Limits of the fixed tables. Handles carry a generation in their upper bits, so a stale
# handle of a closed session never reaches the session that reuses its slot.
cdef extern from "p11fast/loader/lightmode.h":  # from p11fast/lightmode.py
    enum: MAX_SLOTS "P11F_MAX_SLOTS"
cdef enum:
    MAX_SESSIONS = 4096
    MAX_OBJECTS = 65536
    HANDLE_INDEX_BITS = 16
    KEY_ID_MAX = 128
    AUTH_MAX = 600

cdef struct slot_t:
    pthread_mutex_t lock            # guards the login state and the auth headers
    tp_pool *pool
    int login_user                  # CKU_USER, CKU_SO, or -1
    bint operator_implicit          # operator password in the config: usable without C_Login
    bint has_operator
    bint has_admin
    char op_auth[AUTH_MAX]          # "Authorization: Basic …" of the operator, "" if unknown
    char so_auth[AUTH_MAX]
    char op_auth_config[AUTH_MAX]   # the headers from the config's passwords, restored at logout
    char so_auth_config[AUTH_MAX]
    CK_ULONG sessions
    CK_ULONG rw_sessions

cdef struct object_t:
    CK_OBJECT_HANDLE handle         # 0 when the entry is free
    CK_ULONG generation             # of the entry's next handle: bumped when it is freed
    int slot
    CK_ULONG cls
    CK_ULONG key_type               # CKK_*
    unsigned int nethsm_mechs       # bit i = NETHSM_MECHANISMS[i]
    CK_ULONG bits                   # RSA modulus bits, EC field bits
    CK_ULONG field_len              # bytes of an EC coordinate / Ed25519 key
    bint private
    char key_id[KEY_ID_MAX + 1]

cdef struct op_t:
    bint active
    CK_MECHANISM_TYPE mech
    int hash                        # H_* of _codec, H_NONE when the data goes to the HSM as is
    int mode                        # index into SIGN_MODES
    int slot
    bint rsa_digestinfo             # prefix the digest with its DigestInfo (CKM_SHA*_RSA_PKCS)
    bint multipart                  # Update was called: Sign/Digest single-part is then refused
    size_t out_len                  # exact size of the result
    size_t in_len                   # required digest length (PSS on a hash), 0 = any
    size_t field_len                # EC: bytes of a coordinate; RSA: bytes of the modulus
    size_t order_bits               # EC: bits of the group order (ECDSA's digest rule)
    hash_ctx hctx
    wbuf acc                        # data kept for mechanisms that need all of it at once, and
                                    # the partial block of a multi-part AES operation
    char key_id[KEY_ID_MAX + 1]
    bint out_bound                  # out_len is an upper bound (RSA, CBC_PAD decryption)
    unsigned char *pending          # a result computed for a too-short buffer (output_size)
    size_t pending_len
    void *pkey                      # EVP_PKEY of local public-key work (verify, RSA encrypt)
    unsigned char iv[16]            # AES-CBC chaining value between multi-part steps

cdef struct session_t:
    pthread_mutex_t lock            # the per-session lock: held for a whole operation step
    CK_SESSION_HANDLE handle        # 0 when free
    CK_ULONG generation
    int slot
    CK_FLAGS flags
    op_t sign
    op_t digest
    op_t verify
    op_t decrypt
    op_t encrypt
