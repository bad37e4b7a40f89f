# pins: changing passphrases — C_SetPIN (the user logged in, or the one of the configuration,
# changes their own) and C_InitPIN (the SO sets the operator's) — and every credential the slot
# keeps (state: the slot's auth headers, its config's too) moved to the new passphrase.
#
# Contract: the cold path, its session checked without the GIL; the slot's lock guards the
# headers it reads and replaces. A passphrase the HSM took always fits the headers (state's
# import check), so nothing can fail after the HSM changed it.
# uses: state, sessions, manage, transport/api

from p11fast._decl.pkcs11 cimport CK_RV, CK_SESSION_HANDLE, CK_ULONG, CK_UTF8CHAR_PTR

cdef CK_RV c_set_pin_check(call_t *call, CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pOldPin,
                         CK_ULONG ulOldLen, CK_UTF8CHAR_PTR pNewPin, CK_ULONG ulNewLen) noexcept nogil
cdef CK_RV c_set_pin(call_t *call, CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pOldPin,
                   CK_ULONG ulOldLen, CK_UTF8CHAR_PTR pNewPin, CK_ULONG ulNewLen) except *
cdef CK_RV c_init_pin_check(call_t *call, CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pPin,
                          CK_ULONG ulPinLen) noexcept nogil
cdef CK_RV c_init_pin(call_t *call, CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pPin,
                    CK_ULONG ulPinLen) except *
