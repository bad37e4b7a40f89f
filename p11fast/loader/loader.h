/* What the loader's parts share: loader.c (the exported functions), python.c (Python and the
 * ABI), environment.c, fork.c, transport.c, and light mode (light.c, light_compiled.c).
 * python.h adds what only the Python parts share. */
#ifndef P11FAST_LOADER_H
#define P11FAST_LOADER_H

#include <stdatomic.h>
#include <stddef.h>

#include "p11fast/abi/compiled.h"
#include "p11fast/transport/capi.h"
#include "pkcs11.h"

/* One line on stderr and in syslog. */
__attribute__((format(printf, 1, 2))) void say(const char *fmt, ...);

/* The real directory of this library, which is the p11fast package's. */
int package_dir(char *out, unsigned long size);

/* No interpreter runs in the process, and with load, libpython is loaded here (RTLD_GLOBAL, so
 * the ABI extension's references to it resolve): what light mode needs, the second only once
 * it opens a pool. 0 otherwise, without a word. Without load nothing is loaded: a listing
 * answered from the snapshot and a recorded presence loads neither libpython nor the ABI's
 * extension. */
int python_idle(int load);

/* Python started (or the host's adopted), p11fast._abi imported and its C_Initialize called
 * with args: its table with *rv = what that returned, or NULL with *rv set and the reason
 * logged. A fork waits for this in a process whose interpreter the loader starts. The table is
 * not published: see publish_abi. */
CK_FUNCTION_LIST_3_0 *initialize_abi(CK_VOID_PTR args, CK_RV *rv);

/* The transport's C entry points (p11fast/transport/capi.pxd) in the ABI's extension beside
 * this library, loaded once libpython is, the transport's process-wide set-up done and its fork
 * handling left to the loader's handlers; NULL when the extension cannot be loaded. */
struct transport_api {
    p11f_transport_init_fn *init;
    p11f_transport_open_fn *open;
    p11f_transport_get_fn *get;
    p11f_transport_release_fn *release;
    p11f_transport_fork_fn *fork_prepare;
    p11f_transport_fork_fn *fork_parent;
    p11f_transport_fork_fn *fork_child;
};
const struct transport_api *transport_api(void);

/* The ABI's compiled session functions and sign flow (p11fast/abi/compiled.h), from the same
 * extension, once transport_api() loaded it; NULL before or when it lacks any. */
struct compiled_api {
    p11f_abi_start_fn *start;
    p11f_abi_void_fn *end;
    p11f_abi_void_fn *after_fork_child;
    p11f_abi_open_session_fn *open_session_check;
    p11f_abi_open_session_fn *open_session;
    p11f_abi_close_session_fn *close_session;
    p11f_abi_close_all_sessions_fn *close_all_sessions;
    p11f_abi_get_session_info_fn *get_session_info;
    p11f_abi_session_counts_fn *session_counts;
    p11f_abi_count_fn *failures_waiting;
    p11f_abi_login_fn *login;
    p11f_abi_close_session_fn *logout;
    p11f_abi_find_init_fn *find_objects_init;
    p11f_abi_find_fn *find_objects;
    p11f_abi_close_session_fn *find_objects_final;
    p11f_abi_get_attribute_value_fn *get_attribute_value;
    p11f_abi_sign_init_fn *sign_init;
    p11f_abi_sign_fn *sign;
    p11f_abi_sign_update_fn *sign_update;
    p11f_abi_sign_final_fn *sign_final;
    p11f_abi_sign_init_fn *decrypt_init;
    p11f_abi_sign_fn *decrypt;
    p11f_abi_decrypt_update_fn *decrypt_update;
    p11f_abi_sign_final_fn *decrypt_final;
};
const struct compiled_api *compiled_api(void);

/* Hands a presence answer light mode gave over to the ABI (after its C_Initialize), with the
 * HTTP status (0: no answer) and the transport's `why` (p11f_transport_get), from which the
 * ABI logs why a token is absent. */
void seed_presence(int slot, int present, double checked_at, long status, const char *why);

/* light.c for light_compiled.c. light_lock_compiled takes light mode's lock and keeps it when
 * light mode is on and the ABI's compiled session functions run (started for the snapshot's
 * slots), and returns them; otherwise NULL, the lock let go. The next three are for under that
 * lock, which light_unlock lets go: light_present_told is the token's presence as light mode
 * answers it, the ABI told why if it is absent (promoting); light_promote_counted promotes, if
 * light mode is still on, as a process that needed Python. */
const struct compiled_api *light_lock_compiled(void);
void light_unlock(void);
int light_present_told(CK_SLOT_ID slot);
void light_promote_counted(void);

/* From here on every call goes to the ABI. */
void publish_abi(CK_FUNCTION_LIST_3_0 *table);
CK_FUNCTION_LIST_3_0 *published_abi(void);

/* light.c, light_compiled.c: each returns 1 when light mode answered (the result in *rv), 0
 * when it is not on or cannot answer this call (the caller promotes). */
int light_initialize(CK_VOID_PTR pInitArgs, CK_RV *rv);
int light_finalize(CK_VOID_PTR pReserved, CK_RV *rv);
int light_get_info(CK_INFO_PTR pInfo, CK_RV *rv);
int light_get_slot_list(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount,
                        CK_RV *rv);
int light_get_slot_info(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo, CK_RV *rv);
int light_get_token_info(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo, CK_RV *rv);
int light_get_mechanism_list(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList,
                             CK_ULONG_PTR pulCount, CK_RV *rv);
int light_get_mechanism_info(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type,
                             CK_MECHANISM_INFO_PTR pInfo, CK_RV *rv);
int light_open_session(CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication,
                       CK_NOTIFY Notify, CK_SESSION_HANDLE_PTR phSession, CK_RV *rv);
int light_close_session(CK_SESSION_HANDLE hSession, CK_RV *rv);
int light_close_all_sessions(CK_SLOT_ID slotID, CK_RV *rv);
int light_get_session_info(CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo, CK_RV *rv);
int light_login(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin,
                CK_ULONG ulPinLen, CK_RV *rv);
int light_logout(CK_SESSION_HANDLE hSession, CK_RV *rv);
int light_find_objects_init(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate,
                            CK_ULONG ulCount, CK_RV *rv);
int light_find_objects(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject,
                       CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount, CK_RV *rv);
int light_find_objects_final(CK_SESSION_HANDLE hSession, CK_RV *rv);
int light_get_attribute_value(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                              CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount, CK_RV *rv);
int light_sign_init(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                    CK_OBJECT_HANDLE hKey, CK_RV *rv);
int light_sign(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
               CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen, CK_RV *rv);
int light_sign_update(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen,
                      CK_RV *rv);
int light_sign_final(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature,
                     CK_ULONG_PTR pulSignatureLen, CK_RV *rv);
int light_decrypt_init(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                       CK_OBJECT_HANDLE hKey, CK_RV *rv);
int light_decrypt(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedData,
                  CK_ULONG ulEncryptedDataLen, CK_BYTE_PTR pData, CK_ULONG_PTR pulDataLen,
                  CK_RV *rv);
int light_decrypt_update(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart,
                         CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen,
                         CK_RV *rv);
int light_decrypt_final(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastPart,
                        CK_ULONG_PTR pulLastPartLen, CK_RV *rv);

/* In a forked child, from the loader's fork handler: light mode's state is the parent's. */
void light_after_fork_child(void);

/* Light mode on: start Python, initialise the ABI as the application initialised us, publish
 * it, and return its table. Light mode off: the published table, if any. NULL with *rv set
 * otherwise. */
CK_FUNCTION_LIST_3_0 *light_promote(CK_RV *rv);

/* For the mark that predicts whether the next process needs Python (light.c): set while a
 * process promoted early has made no call light mode could not have answered (the forwarders
 * clear it); light_after_finalize runs after the ABI's C_Finalize succeeded. */
extern _Atomic int early_unconfirmed;
void light_after_finalize(void);

#endif
