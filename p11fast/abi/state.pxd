# state: what the ABI keeps — the one C state struct `g_abi` (slots, the session table, the
# object handle table, the global lock, the mechanism policy), the process-wide initialisation
# flags, the cold path's Python state `_state` (config, logger, pools, inventories) and each
# slot's credentials.
#
# Contract: g_abi's tables are allocated by the first C_Initialize (lifetime) and never move or
# shrink, so nogil code indexes them without a lock; which lock guards which field is said at
# the field. g_abi.lock is never held across network I/O nor while waiting for the GIL. A
# slot's lock guards its login state and credentials; lock order: a session lock, g_abi.lock,
# a slot's lock. `_state` is None while the module is not initialised.
# uses: codec/hash, codec/wbuf, transport/types, transport/api

from p11fast._decl.pkcs11 cimport (
    CK_FLAGS, CK_MECHANISM_TYPE, CK_OBJECT_HANDLE, CK_SESSION_HANDLE, CK_ULONG, CKU_SO, CKU_USER,
)
from p11fast._decl.posix cimport pthread_cond_t, pthread_mutex_t
from cpython.ref cimport PyObject

# Limits of the fixed tables. Handles carry a generation in their upper bits, so a stale
# handle of a closed session never reaches the session that reuses its slot.
cdef extern from "p11fast/loader/lightmode.h":  # from p11fast/lightmode.py
    enum: MAX_SLOTS "P11F_MAX_SLOTS"
    enum: USERNAME_MAX "P11F_MAX_USERNAME_BYTES"
    enum:
        USERS_OPERATOR "P11F_USERS_OPERATOR"
        USERS_ADMIN "P11F_USERS_ADMIN"
        USERS_OPERATOR_IMPLICIT "P11F_USERS_OPERATOR_IMPLICIT"
# The answer of a function light mode runs compiled that cannot go on without Python (compiled).
cdef extern from "p11fast/abi/compiled.h":
    enum: NEEDS_PYTHON "P11F_ABI_NEEDS_PYTHON"

cdef enum:
    MAX_SESSIONS = 4096
    MAX_OBJECTS = 65536
    HANDLE_INDEX_BITS = 16
    KEY_ID_MAX = 128
    AUTH_MAX = 600
    MAX_POLICY_MECHANISMS = 64
    FOUND_MAX = 4                   # objects a compiled search finds: no more

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
    CK_ULONG sessions               # under g_abi.lock
    CK_ULONG rw_sessions
    # Before Python runs (compiled): the operator's name, and the reference to light mode's
    # pool that `pool` is until the cold path's pool adopts it.
    char operator_name[USERNAME_MAX + 1]
    tp_pool *light_pool

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
    unsigned int next               # the next entry of its identity's hash chain (objects)
    PyObject *obj                   # the P11Object (a reference); never read from a copy
    const void *recorded            # instead of obj, before Python runs: its recorded_object

cdef struct op_t:
    bint active
    CK_MECHANISM_TYPE mech
    int hash                        # H_* of codec/hash, H_NONE when the data goes to the HSM as is
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
    # A search light mode's compiled code runs (recorded); the cold path keeps its own in
    # _state.finds, and takes these over at promotion.
    bint finding
    CK_ULONG nfound
    CK_OBJECT_HANDLE found[FOUND_MAX]

# The module's C state. Allocated tables: calloc'd at the first C_Initialize; scans stop at the
# highest entry ever used, so untouched pages of the large tables are never faulted in.
cdef struct abi_state_t:
    slot_t slots[MAX_SLOTS]
    int nslots
    session_t *sessions             # MAX_SESSIONS entries
    int sessions_used               # entries below were handed out at least once; grows under lock
    object_t *objects               # MAX_OBJECTS entries: the one map from handle to object
    CK_ULONG nobjects               # entries handed out at least once (entry 0 is never used)
    unsigned int *free_objects      # freed entries, reused once all were handed out
    CK_ULONG nfree_objects
    unsigned int *buckets           # OBJECT_BUCKETS hash chains by identity (objects)
    # Guards handle allocation, the object table and the session table's free/used transitions.
    pthread_mutex_t lock
    pthread_cond_t event            # wakes C_WaitForSlotEvent on C_Finalize
    bint threads_allowed
    # policy.allowed_mechanisms, so nogil code checks it without Python; nallowed < 0: all
    CK_MECHANISM_TYPE allowed_mechs[MAX_POLICY_MECHANISMS]
    int nallowed
    CK_ULONG pin_min                # what a NetHSM takes as a passphrase (p11fast.pins)
    CK_ULONG pin_max

cdef abi_state_t g_abi

# Who called a management or cold-path function: the session (or slot) it named, copied out so
# that no session lock is held while the GIL is.
cdef struct call_t:
    CK_SESSION_HANDLE handle
    int slot
    CK_FLAGS flags

cdef extern from *:
    """
    #include <stdatomic.h>
    #include <pthread.h>
    static atomic_int p11f_initialized;
    static inline int p11f_is_initialized(void) { return atomic_load(&p11f_initialized); }
    static inline void p11f_set_initialized(int v) { atomic_store(&p11f_initialized, v); }
    /* A forked child of an initialised parent that has not called C_Initialize yet. */
    static atomic_int p11f_forked;
    static inline int p11f_is_forked(void) { return atomic_load(&p11f_forked); }
    static inline void p11f_set_forked(int v) { atomic_store(&p11f_forked, v); }
    /* The session table was set up by the loader's light mode (compiled), and the next
     * C_Initialize takes its sessions over instead of ending them. */
    static atomic_int p11f_adopting;
    static inline int p11f_is_adopting(void) { return atomic_load(&p11f_adopting); }
    static inline void p11f_set_adopting(int v) { atomic_store(&p11f_adopting, v); }
    /* Serialises C_Initialize and C_Finalize. */
    static pthread_mutex_t p11f_init_lock = PTHREAD_MUTEX_INITIALIZER;
    #ifdef P11FAST_DEBUG
    #define P11F_DEBUG 1
    #else
    #define P11F_DEBUG 0
    #endif
    """
    bint p11f_is_initialized() nogil
    void p11f_set_initialized(int v) nogil
    bint p11f_is_forked() nogil
    void p11f_set_forked(int v) nogil
    bint p11f_is_adopting() nogil
    void p11f_set_adopting(int v) nogil
    pthread_mutex_t p11f_init_lock
    # 1 in builds with P11FAST_DEBUG (setup.py): the handle table checks its invariants
    enum: P11F_DEBUG


cdef inline bint slot_user_logged_in(slot_t *slot) noexcept nogil:
    return slot.login_user == CKU_USER or (slot.operator_implicit and slot.login_user != CKU_SO)

cdef inline int slot_users(slot_t *slot) noexcept nogil:
    """Which users the slot's configuration names, as light mode's snapshot records them."""
    return ((USERS_OPERATOR if slot.has_operator else 0) | (USERS_ADMIN if slot.has_admin else 0)
            | (USERS_OPERATOR_IMPLICIT if slot.operator_implicit else 0))

cdef void set_auth(char *dst, bytes header) except *
cdef object current_auth(int slot_index, bint admin)
cdef void set_mechanism_policy(policy) except *
cdef bint mechanism_allowed(CK_MECHANISM_TYPE m) noexcept nogil
