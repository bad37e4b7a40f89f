# slots: what the module says about itself, its slots and their tokens — CK_INFO,
# CK_SLOT_INFO, CK_TOKEN_INFO (also for light mode's snapshot, lifetime), the mechanism list
# and info under the policy, token presence (GET /health/ready, reused for PRESENCE_TTL, an
# absence logged with its reason; light mode's answers seeded at promotion), slot events.
#
# Contract: presence and the text fields need the GIL (the config, the pools' Python
# surface); the numbers (fill_token_numbers: session counts under g_abi.lock) and the
# mechanism queries do not. C_WaitForSlotEvent waits without the GIL, on g_abi.event, which
# C_Finalize signals.
# uses: state, mechanisms

from p11fast._decl.pkcs11 cimport (
    CK_BBOOL, CK_FLAGS, CK_INFO, CK_INFO_PTR, CK_MECHANISM_INFO_PTR, CK_MECHANISM_TYPE,
    CK_MECHANISM_TYPE_PTR, CK_RV, CK_SLOT_ID, CK_SLOT_ID_PTR, CK_SLOT_INFO, CK_SLOT_INFO_PTR,
    CK_TOKEN_INFO, CK_TOKEN_INFO_PTR, CK_ULONG_PTR, CK_VOID_PTR,
)

cdef void fill_info(CK_INFO *pInfo) noexcept
# Everything but CKF_TOKEN_PRESENT.
cdef void fill_slot_info(CK_SLOT_ID slotID, CK_SLOT_INFO *pInfo) except *
cdef void fill_token_text(CK_SLOT_ID slotID, CK_TOKEN_INFO *pInfo) except *
cdef void fill_token_numbers(CK_SLOT_ID slotID, CK_TOKEN_INFO *pInfo) noexcept nogil
# Token present = an instance answers and is Operational (GET /health/ready is 200).
cdef bint slot_present(int slot, bint shared_ok=*) except -1
cdef void seed_presence_from_light(int slot, int present, double checked_at, long status,
                                   const char *why) noexcept nogil

cdef CK_RV c_get_info_check(call_t *call, CK_INFO_PTR pInfo) noexcept nogil
cdef CK_RV c_get_info(call_t *call, CK_INFO_PTR pInfo) except *
cdef CK_RV c_get_slot_list_check(call_t *call, CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList,
                               CK_ULONG_PTR pulCount) noexcept nogil
cdef CK_RV c_get_slot_list(call_t *call, CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList,
                         CK_ULONG_PTR pulCount) except *
cdef CK_RV c_get_slot_info_check(call_t *call, CK_SLOT_ID slotID,
                               CK_SLOT_INFO_PTR pInfo) noexcept nogil
cdef CK_RV c_get_slot_info(call_t *call, CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo) except *
cdef CK_RV c_get_token_info_check(call_t *call, CK_SLOT_ID slotID,
                                CK_TOKEN_INFO_PTR pInfo) noexcept nogil
cdef CK_RV c_get_token_info(call_t *call, CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo) except *
cdef CK_RV c_get_token_info_finish(call_t *call, CK_RV rv, CK_SLOT_ID slotID,
                                 CK_TOKEN_INFO_PTR pInfo) noexcept nogil
cdef CK_RV c_get_mechanism_list(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList,
                              CK_ULONG_PTR pulCount) noexcept nogil
cdef CK_RV c_get_mechanism_info(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type,
                              CK_MECHANISM_INFO_PTR pInfo) noexcept nogil
cdef CK_RV c_wait_for_slot_event_check(call_t *call, CK_FLAGS flags, CK_SLOT_ID_PTR pSlot,
                                     CK_VOID_PTR pReserved) noexcept nogil
cdef CK_RV c_wait_for_slot_event(call_t *call, CK_FLAGS flags, CK_SLOT_ID_PTR pSlot,
                               CK_VOID_PTR pReserved) except *
