/* libp11fast.so: the only file PKCS #11 hosts load.
 *
 * It exports C_GetFunctionList, C_GetInterfaceList and C_GetInterface, whose tables hold
 * trampolines into the ABI (p11fast._abi, a CPython extension). The first C_Initialize gets a
 * Python interpreter — the host's own if it runs one, otherwise libpython loaded and started
 * here with the wheel's environment — imports p11fast._abi and takes its CK_FUNCTION_LIST_3_0
 * from a capsule. From then on a forwarded call costs one atomic load and one indirect call: no
 * GIL and no lock, the ABI takes the GIL itself when it needs Python. Before that, light mode
 * (light.c) may answer the slot, token and mechanism queries, the session functions and the
 * sign flow of a one-shot host without Python.
 *
 * This file owns the exported functions: C_Initialize, the trampolines (one template expanded
 * over pkcs11f.h), the function lists and interfaces, and the published ABI table they read.
 * The other parts: python.c (getting Python ready, importing the ABI), environment.c (where
 * this library's Python is), fork.c (the fork handlers), transport.c (loading the transport's
 * C API), light.c, light_compiled.c, snapshot.c and presence.c (light mode); loader.h says
 * what they share.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "loader.h"
#include "pkcs11.h"

#define EXPORT __attribute__((visibility("default")))

/* ------------------------------------------------------------------ logging */

/* Python's logging does not exist yet when these lines matter, so: one line on stderr, one in
 * syslog (without openlog, so the host's own syslog settings stay as they are). */
void say(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "p11fast: %s\n", line);
    syslog(LOG_USER | LOG_ERR, "p11fast: %s", line);
}

/* The ABI's table as the forwarders see it: NULL until the first C_Initialize that reaches the
 * ABI (directly, or by promotion from light mode: light.c), then fixed for the process's life. */
static _Atomic(CK_FUNCTION_LIST_3_0 *) abi;

void publish_abi(CK_FUNCTION_LIST_3_0 *table)
{
    atomic_store_explicit(&abi, table, memory_order_release);
}

CK_FUNCTION_LIST_3_0 *published_abi(void)
{
    return atomic_load_explicit(&abi, memory_order_acquire);
}


/* ------------------------------------------------------------------ the exported tables */

EXPORT CK_RV C_Initialize(CK_VOID_PTR pInitArgs)
{
    CK_FUNCTION_LIST_3_0 *table = published_abi();
    CK_RV rv;
    if (!table) {
        if (light_initialize(pInitArgs, &rv))
            return rv;
        /* Published whatever C_Initialize answered: it is the ABI's to answer from now on. */
        if ((table = initialize_abi(pInitArgs, &rv)))
            publish_abi(table);
        return rv;
    }
    return table->C_Initialize(pInitArgs);
}

/* Every other function forwards: one template, expanded over pkcs11f.h. Before the ABI is
 * published there is nothing to forward to, which is exactly "not initialised" unless light
 * mode is on: then the call promotes it. Each is also exported under its own name, for hosts
 * that look functions up with dlsym. */
#define FORWARD(name, params, args)                                                 \
    EXPORT CK_RV name params                                                        \
    {                                                                               \
        CK_RV rv;                                                                   \
        CK_FUNCTION_LIST_3_0 *table = published_abi();                              \
        if (!table)                                                                 \
            table = light_promote(&rv);                                             \
        else if (atomic_load_explicit(&early_unconfirmed, memory_order_relaxed))    \
            atomic_store_explicit(&early_unconfirmed, 0, memory_order_relaxed);     \
        return table ? table->name args : rv;                                       \
    }

/* The functions light mode answers (light.c): from the snapshot or with the ABI's compiled code
 * while it is on. Otherwise forwarded; light_promote, which finds light mode off, hands back
 * the published table or "not initialised" — unless light mode is on but could not answer (the
 * ABI's extension not loadable for its session functions, a call its compiled code leaves to
 * Python): then the call promotes. Forwarded in a process promoted early, none counts as
 * needing Python: light mode could have answered it (or found that it could not, and promoted
 * the next process after two such in a row, as for any call). */
#define LIGHT(name, light_call, forward_args)                                       \
    {                                                                               \
        CK_RV rv;                                                                   \
        CK_FUNCTION_LIST_3_0 *table = published_abi();                              \
        if (!table && light_call)                                                   \
            return rv;                                                              \
        table = table ? table : light_promote(&rv);                                 \
        return table ? table->name forward_args : rv;                               \
    }

EXPORT CK_RV C_Finalize(CK_VOID_PTR pReserved)
{
    CK_RV rv;
    CK_FUNCTION_LIST_3_0 *table = published_abi();
    if (!table && light_finalize(pReserved, &rv))
        return rv;
    table = table ? table : published_abi();
    if (!table)
        return CKR_CRYPTOKI_NOT_INITIALIZED;
    if ((rv = table->C_Finalize(pReserved)) == CKR_OK)
        light_after_finalize();
    return rv;
}

EXPORT CK_RV C_GetInfo(CK_INFO_PTR pInfo)
LIGHT(C_GetInfo, light_get_info(pInfo, &rv), (pInfo))

EXPORT CK_RV C_GetSlotList(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount)
LIGHT(C_GetSlotList, light_get_slot_list(tokenPresent, pSlotList, pulCount, &rv),
      (tokenPresent, pSlotList, pulCount))

EXPORT CK_RV C_GetSlotInfo(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo)
LIGHT(C_GetSlotInfo, light_get_slot_info(slotID, pInfo, &rv), (slotID, pInfo))

EXPORT CK_RV C_GetTokenInfo(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo)
LIGHT(C_GetTokenInfo, light_get_token_info(slotID, pInfo, &rv), (slotID, pInfo))

EXPORT CK_RV C_GetMechanismList(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList,
                                CK_ULONG_PTR pulCount)
LIGHT(C_GetMechanismList, light_get_mechanism_list(slotID, pMechanismList, pulCount, &rv),
      (slotID, pMechanismList, pulCount))

EXPORT CK_RV C_GetMechanismInfo(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type,
                                CK_MECHANISM_INFO_PTR pInfo)
LIGHT(C_GetMechanismInfo, light_get_mechanism_info(slotID, type, pInfo, &rv),
      (slotID, type, pInfo))

EXPORT CK_RV C_OpenSession(CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication,
                           CK_NOTIFY Notify, CK_SESSION_HANDLE_PTR phSession)
LIGHT(C_OpenSession, light_open_session(slotID, flags, pApplication, Notify, phSession, &rv),
      (slotID, flags, pApplication, Notify, phSession))

EXPORT CK_RV C_CloseSession(CK_SESSION_HANDLE hSession)
LIGHT(C_CloseSession, light_close_session(hSession, &rv), (hSession))

EXPORT CK_RV C_CloseAllSessions(CK_SLOT_ID slotID)
LIGHT(C_CloseAllSessions, light_close_all_sessions(slotID, &rv), (slotID))

EXPORT CK_RV C_GetSessionInfo(CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo)
LIGHT(C_GetSessionInfo, light_get_session_info(hSession, pInfo, &rv), (hSession, pInfo))

EXPORT CK_RV C_Login(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin,
                     CK_ULONG ulPinLen)
LIGHT(C_Login, light_login(hSession, userType, pPin, ulPinLen, &rv),
           (hSession, userType, pPin, ulPinLen))

EXPORT CK_RV C_Logout(CK_SESSION_HANDLE hSession)
LIGHT(C_Logout, light_logout(hSession, &rv), (hSession))

EXPORT CK_RV C_FindObjectsInit(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate,
                               CK_ULONG ulCount)
LIGHT(C_FindObjectsInit, light_find_objects_init(hSession, pTemplate, ulCount, &rv),
           (hSession, pTemplate, ulCount))

EXPORT CK_RV C_FindObjects(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject,
                           CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount)
LIGHT(C_FindObjects,
           light_find_objects(hSession, phObject, ulMaxObjectCount, pulObjectCount, &rv),
           (hSession, phObject, ulMaxObjectCount, pulObjectCount))

EXPORT CK_RV C_FindObjectsFinal(CK_SESSION_HANDLE hSession)
LIGHT(C_FindObjectsFinal, light_find_objects_final(hSession, &rv), (hSession))

EXPORT CK_RV C_GetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                                 CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
LIGHT(C_GetAttributeValue,
           light_get_attribute_value(hSession, hObject, pTemplate, ulCount, &rv),
           (hSession, hObject, pTemplate, ulCount))

EXPORT CK_RV C_SignInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                        CK_OBJECT_HANDLE hKey)
LIGHT(C_SignInit, light_sign_init(hSession, pMechanism, hKey, &rv),
           (hSession, pMechanism, hKey))

EXPORT CK_RV C_Sign(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                    CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen)
LIGHT(C_Sign, light_sign(hSession, pData, ulDataLen, pSignature, pulSignatureLen, &rv),
           (hSession, pData, ulDataLen, pSignature, pulSignatureLen))

EXPORT CK_RV C_SignUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen)
LIGHT(C_SignUpdate, light_sign_update(hSession, pPart, ulPartLen, &rv),
           (hSession, pPart, ulPartLen))

EXPORT CK_RV C_SignFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature,
                         CK_ULONG_PTR pulSignatureLen)
LIGHT(C_SignFinal, light_sign_final(hSession, pSignature, pulSignatureLen, &rv),
           (hSession, pSignature, pulSignatureLen))

EXPORT CK_RV C_DecryptInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                           CK_OBJECT_HANDLE hKey)
LIGHT(C_DecryptInit, light_decrypt_init(hSession, pMechanism, hKey, &rv),
           (hSession, pMechanism, hKey))

EXPORT CK_RV C_Decrypt(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedData,
                       CK_ULONG ulEncryptedDataLen, CK_BYTE_PTR pData, CK_ULONG_PTR pulDataLen)
LIGHT(C_Decrypt,
           light_decrypt(hSession, pEncryptedData, ulEncryptedDataLen, pData, pulDataLen, &rv),
           (hSession, pEncryptedData, ulEncryptedDataLen, pData, pulDataLen))

EXPORT CK_RV C_DecryptUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart,
                             CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart,
                             CK_ULONG_PTR pulPartLen)
LIGHT(C_DecryptUpdate,
           light_decrypt_update(hSession, pEncryptedPart, ulEncryptedPartLen, pPart, pulPartLen,
                                &rv),
           (hSession, pEncryptedPart, ulEncryptedPartLen, pPart, pulPartLen))

EXPORT CK_RV C_DecryptFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastPart,
                            CK_ULONG_PTR pulLastPartLen)
LIGHT(C_DecryptFinal, light_decrypt_final(hSession, pLastPart, pulLastPartLen, &rv),
           (hSession, pLastPart, pulLastPartLen))

/* The four functions the loader answers itself, and the twenty-five light mode may answer. For them
 * SKIP_x expands to a leading "~," so PICK's second argument becomes the local choice (no
 * trampoline); for every other name it stays a single unknown token and PICK yields the
 * trampoline. LOCAL_x works the same way for the table entries. */
#define LOCAL_C_Initialize ~, C_Initialize
#define LOCAL_C_GetFunctionList ~, C_GetFunctionList
#define LOCAL_C_GetInterfaceList ~, C_GetInterfaceList
#define LOCAL_C_GetInterface ~, C_GetInterface
#define SKIP_C_Initialize ~,
#define SKIP_C_GetFunctionList ~,
#define SKIP_C_GetInterfaceList ~,
#define SKIP_C_GetInterface ~,
#define SKIP_C_Finalize ~,
#define SKIP_C_GetInfo ~,
#define SKIP_C_GetSlotList ~,
#define SKIP_C_GetSlotInfo ~,
#define SKIP_C_GetTokenInfo ~,
#define SKIP_C_GetMechanismList ~,
#define SKIP_C_GetMechanismInfo ~,
#define SKIP_C_OpenSession ~,
#define SKIP_C_CloseSession ~,
#define SKIP_C_CloseAllSessions ~,
#define SKIP_C_GetSessionInfo ~,
#define SKIP_C_Login ~,
#define SKIP_C_Logout ~,
#define SKIP_C_FindObjectsInit ~,
#define SKIP_C_FindObjects ~,
#define SKIP_C_FindObjectsFinal ~,
#define SKIP_C_GetAttributeValue ~,
#define SKIP_C_SignInit ~,
#define SKIP_C_Sign ~,
#define SKIP_C_SignUpdate ~,
#define SKIP_C_SignFinal ~,
#define SKIP_C_DecryptInit ~,
#define SKIP_C_Decrypt ~,
#define SKIP_C_DecryptUpdate ~,
#define SKIP_C_DecryptFinal ~,
#define PICK(...) PICK_(__VA_ARGS__)
#define PICK_(probe, chosen, ...) chosen

#define CK_PKCS11_FUNCTION_INFO(name, params, args) PICK(SKIP_##name, FORWARD(name, params, args), ~)
#include "pkcs11f.h"
#undef CK_PKCS11_FUNCTION_INFO

#define CK_PKCS11_FUNCTION_INFO(name, params, args) PICK(LOCAL_##name, name, ~),

/* C_GetInfo reports the version of the list the application holds: the ABI answers 2.40,
 * what C_GetFunctionList hands out; through the 3.0 interface it is 3.0. */
static CK_RV get_info_3_0(CK_INFO_PTR pInfo)
{
    CK_RV rv = C_GetInfo(pInfo);
    if (rv == CKR_OK) {
        pInfo->cryptokiVersion.major = 3;
        pInfo->cryptokiVersion.minor = 0;
    }
    return rv;
}

static CK_FUNCTION_LIST_3_0 list_3_0 = {
    {3, 0},
#include "pkcs11f.h"
};

#define CK_PKCS11_2_0_ONLY 1
static CK_FUNCTION_LIST list_2_40 = {
    {2, 40},
#include "pkcs11f.h"
};
#undef CK_PKCS11_2_0_ONLY
#undef CK_PKCS11_FUNCTION_INFO

/* The first is the default interface. No CKF_INTERFACE_FORK_SAFE: a forked child must call
 * C_Initialize again. */
static CK_INTERFACE interfaces[] = {
    {(CK_CHAR *)"PKCS 11", &list_3_0, 0},
    {(CK_CHAR *)"PKCS 11", &list_2_40, 0},
};
#define INTERFACE_COUNT (sizeof interfaces / sizeof interfaces[0])

__attribute__((constructor)) static void use_3_0_info(void)
{
    list_3_0.C_GetInfo = get_info_3_0;
}

EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList)
{
    if (!ppFunctionList)
        return CKR_ARGUMENTS_BAD;
    *ppFunctionList = &list_2_40;
    return CKR_OK;
}

EXPORT CK_RV C_GetInterfaceList(CK_INTERFACE_PTR pInterfacesList, CK_ULONG_PTR pulCount)
{
    CK_ULONG capacity;
    if (!pulCount)
        return CKR_ARGUMENTS_BAD;
    capacity = *pulCount;
    *pulCount = INTERFACE_COUNT;
    if (!pInterfacesList)
        return CKR_OK;
    if (capacity < INTERFACE_COUNT)
        return CKR_BUFFER_TOO_SMALL;
    memcpy(pInterfacesList, interfaces, sizeof interfaces);
    return CKR_OK;
}

EXPORT CK_RV C_GetInterface(CK_UTF8CHAR_PTR pInterfaceName, CK_VERSION_PTR pVersion,
                            CK_INTERFACE_PTR_PTR ppInterface, CK_FLAGS flags)
{
    if (!ppInterface)
        return CKR_ARGUMENTS_BAD;
    for (size_t i = 0; i < INTERFACE_COUNT; i++) {
        const CK_VERSION *version = interfaces[i].pFunctionList; /* each list starts with it */
        if (pInterfaceName &&
            strcmp((const char *)pInterfaceName, (const char *)interfaces[i].pInterfaceName) != 0)
            continue;
        if (pVersion && (pVersion->major != version->major || pVersion->minor != version->minor))
            continue;
        if ((interfaces[i].flags & flags) != flags)
            continue;
        *ppInterface = &interfaces[i];
        return CKR_OK;
    }
    *ppInterface = NULL;
    return CKR_ARGUMENTS_BAD;
}
