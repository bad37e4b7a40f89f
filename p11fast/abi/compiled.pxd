# compiled: the ABI's functions the loader's light mode calls without an interpreter (their
# declarations: compiled.h). A pkcs11-tool or p11tool process that only lists tokens opens
# and closes sessions (GnuTLS opens one per token); a one-shot `pkcs11-tool --login --sign
# --id` logs in, finds the key, reads its attributes and signs. So these are the ABI's own
# functions, on its own tables, with libpython loaded but not started. Light mode calls, under
# its lock:
#
#   int p11f_abi_compiled_start(const struct p11f_abi_start *start)
#       The session and object tables and the slots as C_Initialize would set them up (each
#       slot's users, the operator's name, the PIN bounds, the policy, from the snapshot; no
#       credentials; a pool only once a call needs the HSM, through start->pool_for). 1, or 0
#       for no memory or a bad slot count. Until the next C_Initialize succeeds, that
#       C_Initialize takes everything over (p11f_is_adopting, lifetime's adopt_compiled) instead of
#       ending it.
#   void p11f_abi_compiled_end(void)
#       Light mode's C_Finalize: every session ends, the slots' counts go back to zero, the
#       objects, records and pool references go.
#   void p11f_abi_after_fork_child(void)
#       The ABI's fork reset (lifetime's reset_after_fork), for the loader's child handler
#       when the ABI is loaded but not imported.
#   CK_RV p11f_abi_open_session_check(...), p11f_abi_open_session(...)
#       C_OpenSession in two halves, as the entry point runs them: the argument checks, then
#       (after the caller found the token present, as C_OpenSession's cold part does) the
#       session handed out.
#   CK_RV p11f_abi_close_session(h), p11f_abi_close_all_sessions(slot),
#         p11f_abi_get_session_info(h, info)
#       Those functions, but for the session objects' end, which no light session can have
#       (creating one promotes).
#   void p11f_abi_session_counts(CK_SLOT_ID slot, CK_TOKEN_INFO *info)
#       The slot's session counts into info, as C_GetTokenInfo reports them (the rest of
#       light mode's CK_TOKEN_INFO is the snapshot's, recorded with no session open).
#   CK_RV p11f_abi_login, _logout, _find_objects_init, _find_objects, _find_objects_final,
#         _get_attribute_value, _sign_init, _sign, _sign_update, _sign_final, _decrypt_init,
#         _decrypt, _decrypt_update, _decrypt_final
#       Those functions as the entry points run them, or P11F_ABI_NEEDS_PYTHON with nothing
#       changed: the operator's login with a PIN (login: compiled_log_in), a search by key
#       class and CKA_ID answered from the recorded inventory (recorded) when the HSM answers
#       as it did, the attributes of what such a search found, the sign and decrypt paths
#       themselves (which never needed Python; encryption with a public key reads it from the
#       object's model, so it promotes).
#   int p11f_abi_failures_waiting(void)
#       How many log lines wait for Python (errors): after a call that left one the loader
#       promotes, and the C_Initialize that takes over (lifetime's adopt_compiled) writes them.
#
# Contract: no Python object, no GIL; the caller serialises them with its promotion, which
# imports the module and runs its C_Initialize while no such call runs. What they read is C
# statics: the module's Python init has not run.
# uses: state, errors, sessions, objects, recorded, sign, crypt, find, login, lifetime, transport/types, transport/pool, transport/park, transport/request

from p11fast._decl.pkcs11 cimport CK_MECHANISM_TYPE, CK_SLOT_ID, CK_ULONG

# The header gives the exported names their declarations (and default visibility).
cdef extern from "p11fast/abi/compiled.h":
    struct p11f_abi_slot:
        unsigned char users
        const char *operator_name
        CK_ULONG pin_min
        CK_ULONG pin_max
    struct p11f_abi_start:
        const p11f_abi_slot *slots
        unsigned long nslots
        int threads_allowed
        const CK_MECHANISM_TYPE *allowed
        long nallowed
        const char *snapshot_path
        unsigned long snapshot_crc
        unsigned long snapshot_len
        void *(*pool_for)(CK_SLOT_ID slot) noexcept nogil
