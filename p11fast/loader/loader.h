/* What the loader's parts share: loader.c (the exported functions), python.c (Python and the
 * ABI), environment.c, fork.c, transport.c, and light mode (light.c). python.h adds what only
 * the Python parts share. */
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

/* The ABI's compiled session functions (p11fast/abi/compiled.pxd), from the same extension,
 * once transport_api() loaded it; NULL before or when it lacks them. */
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
};
const struct compiled_api *compiled_api(void);

/* Hands a presence answer light mode gave over to the ABI (after its C_Initialize), with the
 * HTTP status (0: no answer) and the transport's `why` (p11f_transport_get), from which the
 * ABI logs why a token is absent. */
void seed_presence(int slot, int present, double checked_at, long status, const char *why);

/* From here on every call goes to the ABI. */
void publish_abi(CK_FUNCTION_LIST_3_0 *table);
CK_FUNCTION_LIST_3_0 *published_abi(void);

/* light.c: each returns 1 when light mode answered (the result in *rv), 0 when it is not on. */
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
