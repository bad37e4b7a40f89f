/* The ABI's compiled entry points for the loader's light mode: the session functions run
 * without an interpreter, on the ABI's own session table (p11fast/abi/compiled.pxd says what
 * each does). p11fast/_abi<EXT_SUFFIX>.so exports them beside the transport's (capi.h); the
 * loader finds them with dlsym, and the ABI defines them (p11fast/abi/compiled.pyx), both
 * against this one text. */
#ifndef P11FAST_ABI_COMPILED_H
#define P11FAST_ABI_COMPILED_H

#include "pkcs11.h"

typedef int p11f_abi_start_fn(const unsigned char *users, unsigned long nslots,
                              int threads_allowed);
typedef void p11f_abi_void_fn(void);
typedef CK_RV p11f_abi_open_session_fn(CK_SLOT_ID slotID, CK_FLAGS flags,
                                       CK_VOID_PTR pApplication, CK_NOTIFY Notify,
                                       CK_SESSION_HANDLE_PTR phSession);
typedef CK_RV p11f_abi_close_session_fn(CK_SESSION_HANDLE hSession);
typedef CK_RV p11f_abi_close_all_sessions_fn(CK_SLOT_ID slotID);
typedef CK_RV p11f_abi_get_session_info_fn(CK_SESSION_HANDLE hSession,
                                           CK_SESSION_INFO_PTR pInfo);
typedef void p11f_abi_session_counts_fn(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo);

/* Exported whatever -fvisibility the extension is built with. */
#define P11F_ABI_API __attribute__((visibility("default")))

P11F_ABI_API p11f_abi_start_fn p11f_abi_compiled_start;
P11F_ABI_API p11f_abi_void_fn p11f_abi_compiled_end;
P11F_ABI_API p11f_abi_void_fn p11f_abi_after_fork_child;
P11F_ABI_API p11f_abi_open_session_fn p11f_abi_open_session_check;
P11F_ABI_API p11f_abi_open_session_fn p11f_abi_open_session;
P11F_ABI_API p11f_abi_close_session_fn p11f_abi_close_session;
P11F_ABI_API p11f_abi_close_all_sessions_fn p11f_abi_close_all_sessions;
P11F_ABI_API p11f_abi_get_session_info_fn p11f_abi_get_session_info;
P11F_ABI_API p11f_abi_session_counts_fn p11f_abi_session_counts;

#endif
