# lifetime: the module's lifetime — C_Initialize (the configuration, the log, the tables, each
# slot's pool and credentials, the policy, the object model loaded during the first TLS
# handshake, light mode's snapshot written), C_Finalize, a forked child's reset (the
# after_fork_child capsule and the os.register_at_fork hook), the interpreter the loader
# started (the own_interpreter capsule).
#
# Contract: p11f_init_lock serialises C_Initialize and C_Finalize: initialize_check takes it
# and initialize_finish releases it, whatever the outcome. C_Finalize ends the session objects
# while the credentials and pools exist, then every session, the handle table and the Python
# state; its GIL sections call nothing that raises. reset_after_fork is C only (the child's
# interpreter may not be consistent yet) and idempotent. tables_init sets up the session table
# and the locks once, for C_Initialize and for light mode's sessions (compiled); the sessions
# light mode opened are taken over by the C_Initialize that follows (p11f_is_adopting).
# uses: state, errors, sessions, mechanisms, objects, recorded, slots, manage, login, transport/spec, transport/pool, transport/fork, transport/api

from p11fast._decl.pkcs11 cimport CK_RV, CK_VOID_PTR

cdef CK_RV c_initialize_check(call_t *call, CK_VOID_PTR pInitArgs) noexcept nogil
cdef CK_RV c_initialize(call_t *call, CK_VOID_PTR pInitArgs) except *
cdef CK_RV c_initialize_finish(call_t *call, CK_RV rv, CK_VOID_PTR pInitArgs) noexcept nogil
cdef CK_RV c_finalize(CK_VOID_PTR pReserved) noexcept nogil
cdef void reset_after_fork() noexcept nogil
cdef bint tables_init() noexcept nogil
cdef void take_own_interpreter() noexcept
