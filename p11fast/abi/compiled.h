/* The ABI's compiled entry points for the loader's light mode: the session functions and the
 * one-shot sign flow (login, finding a key by CKA_ID, its attributes, signing and decrypting) run
 * without an interpreter, on the ABI's own session table (p11fast/abi/compiled.pxd says what
 * each does). p11fast/_abi<EXT_SUFFIX>.so exports them beside the transport's (capi.h); the
 * loader finds them with dlsym, and the ABI defines them (p11fast/abi/compiled.pyx), both
 * against this one text. */
#ifndef P11FAST_ABI_COMPILED_H
#define P11FAST_ABI_COMPILED_H

#include "pkcs11.h"

/* A CK_RV no PKCS#11 function returns: the call cannot be answered without Python (it would
 * log, or needs the cold path, or what an earlier process recorded does not hold any more).
 * Nothing changed before it was returned, so the loader promotes and calls the ABI's own entry
 * point with the same arguments. */
#define P11F_ABI_NEEDS_PYTHON 0x8F11F0F1UL

/* One slot as the snapshot gives it. */
struct p11f_abi_slot {
    unsigned char users;       /* P11F_USERS_* bits */
    const char *operator_name; /* the operator's username (UTF-8, NUL-terminated); "" if none */
    CK_ULONG pin_min, pin_max; /* the token's ulMinPinLen and ulMaxPinLen */
};

/* Everything the compiled start takes from light mode; the pointers need to stay valid only
 * for the call. */
struct p11f_abi_start {
    const struct p11f_abi_slot *slots;
    unsigned long nslots;
    int threads_allowed;
    /* policy.allowed_mechanisms: nallowed of them, or nallowed < 0 for all */
    const CK_MECHANISM_TYPE *allowed;
    long nallowed;
    /* The snapshot's path and identity (its CRC-32 and length): the recorded keys live beside
     * it and name it. */
    const char *snapshot_path;
    unsigned long snapshot_crc, snapshot_len;
    /* The slot's pool, a p11f_transport_open handle (opened now if it was not), or NULL when it
     * cannot be opened; called under the caller's lock, by the calls below that reach the HSM. */
    void *(*pool_for)(CK_SLOT_ID slot);
};

typedef int p11f_abi_start_fn(const struct p11f_abi_start *start);
typedef int p11f_abi_count_fn(void);
typedef CK_RV p11f_abi_login_fn(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType,
                                CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen);
typedef CK_RV p11f_abi_find_init_fn(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate,
                                    CK_ULONG ulCount);
typedef CK_RV p11f_abi_find_fn(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject,
                               CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount);
typedef CK_RV p11f_abi_get_attribute_value_fn(CK_SESSION_HANDLE hSession,
                                              CK_OBJECT_HANDLE hObject,
                                              CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount);
typedef CK_RV p11f_abi_sign_init_fn(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                                    CK_OBJECT_HANDLE hKey);
typedef CK_RV p11f_abi_sign_fn(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                               CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen);
typedef CK_RV p11f_abi_sign_update_fn(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart,
                                      CK_ULONG ulPartLen);
typedef CK_RV p11f_abi_sign_final_fn(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature,
                                     CK_ULONG_PTR pulSignatureLen);
typedef CK_RV p11f_abi_decrypt_update_fn(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart,
                                         CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart,
                                         CK_ULONG_PTR pulPartLen);
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
P11F_ABI_API p11f_abi_count_fn p11f_abi_failures_waiting;
P11F_ABI_API p11f_abi_login_fn p11f_abi_login;
P11F_ABI_API p11f_abi_close_session_fn p11f_abi_logout;
P11F_ABI_API p11f_abi_find_init_fn p11f_abi_find_objects_init;
P11F_ABI_API p11f_abi_find_fn p11f_abi_find_objects;
P11F_ABI_API p11f_abi_close_session_fn p11f_abi_find_objects_final;
P11F_ABI_API p11f_abi_get_attribute_value_fn p11f_abi_get_attribute_value;
P11F_ABI_API p11f_abi_sign_init_fn p11f_abi_sign_init;
P11F_ABI_API p11f_abi_sign_fn p11f_abi_sign;
P11F_ABI_API p11f_abi_sign_update_fn p11f_abi_sign_update;
P11F_ABI_API p11f_abi_sign_final_fn p11f_abi_sign_final;
P11F_ABI_API p11f_abi_sign_init_fn p11f_abi_decrypt_init;
P11F_ABI_API p11f_abi_sign_fn p11f_abi_decrypt;
P11F_ABI_API p11f_abi_decrypt_update_fn p11f_abi_decrypt_update;
P11F_ABI_API p11f_abi_sign_final_fn p11f_abi_decrypt_final;

#endif
