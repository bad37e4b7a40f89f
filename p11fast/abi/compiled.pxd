# compiled: the ABI's functions the loader's light mode calls without an interpreter (their
# declarations: compiled.h). A pkcs11-tool or p11tool process that only lists tokens opens
# and closes sessions (GnuTLS opens one per token), and every other function of the sign flow
# needs a session first; so the session functions are the ABI's own, on its own table, with
# libpython loaded but not started. Light mode calls, under its lock:
#
#   int p11f_abi_compiled_start(const unsigned char *users, unsigned long nslots,
#                               int threads_allowed)
#       The session table and the slots as C_Initialize would set them up for a session
#       (USERS_* bits of each slot, from the snapshot; no credentials). 1, or 0 for no memory
#       or a bad slot count. Until the next C_Initialize succeeds, that C_Initialize takes the
#       sessions over (p11f_is_adopting) instead of ending them.
#   void p11f_abi_compiled_end(void)
#       Light mode's C_Finalize: every session ends, the slots' counts go back to zero.
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
#
# Contract: no Python object, no GIL; the caller serialises them with its promotion, which
# imports the module and runs its C_Initialize while no such call runs.
# uses: state, sessions, login, lifetime

# The header gives the exported names their declarations (and default visibility).
cdef extern from "p11fast/abi/compiled.h":
    ctypedef int p11f_abi_start_fn(const unsigned char *users, unsigned long nslots,
                                   int threads_allowed) noexcept nogil
