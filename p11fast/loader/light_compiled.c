/* Light mode's calls into the ABI's compiled code (p11fast/abi/compiled.h): the session
 * functions and the sign flow, on the ABI's own session table, under light mode's lock
 * (light.c, whose header says why and the two rules every call here follows).
 */
#include "loader.h"

/* The ABI's compiled functions, set under light mode's lock (lock_compiled). */
static const struct compiled_api *compiled;

/* Takes light mode's lock and keeps it when light mode is on and the ABI's session functions
 * run; otherwise lets go and says so (the caller promotes). */
static int lock_compiled(void)
{
    const struct compiled_api *api = light_lock_compiled();
    if (api)
        compiled = api;
    return api != NULL;
}

/* Every compiled call ends here, under light_lock, which this lets go. What the ABI needs
 * Python for it answers P11F_ABI_NEEDS_PYTHON to, having changed nothing: 0, and the caller
 * promotes and calls the ABI's entry point with the same arguments. Otherwise the call is
 * answered with r; and if it left log lines only Python can write (failures_waiting), the
 * process promotes first, so that the ABI's C_Initialize writes them. */
static int compiled_answered(CK_RV r, CK_RV *rv)
{
    if (r == P11F_ABI_NEEDS_PYTHON) {
        light_unlock();
        return 0;
    }
    *rv = r;
    if (compiled->failures_waiting())
        light_promote_counted();
    light_unlock();
    return 1;
}

/* C_OpenSession as the ABI's entry point runs it: its checks, the token's presence (light
 * mode's, as for C_GetSlotInfo), the session handed out. */
int light_open_session(CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication,
                       CK_NOTIFY Notify, CK_SESSION_HANDLE_PTR phSession, CK_RV *rv)
{
    CK_RV r;
    if (!lock_compiled())
        return 0;
    r = compiled->open_session_check(slotID, flags, pApplication, Notify, phSession);
    if (r == CKR_OK)
        r = light_present_told(slotID)
                ? compiled->open_session(slotID, flags, pApplication, Notify, phSession)
                : CKR_TOKEN_NOT_PRESENT;
    return compiled_answered(r, rv);
}

int light_close_session(CK_SESSION_HANDLE hSession, CK_RV *rv)
{
    if (!lock_compiled())
        return 0;
    return compiled_answered(compiled->close_session(hSession), rv);
}

int light_close_all_sessions(CK_SLOT_ID slotID, CK_RV *rv)
{
    if (!lock_compiled())
        return 0;
    return compiled_answered(compiled->close_all_sessions(slotID), rv);
}

int light_get_session_info(CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo, CK_RV *rv)
{
    if (!lock_compiled())
        return 0;
    return compiled_answered(compiled->get_session_info(hSession, pInfo), rv);
}

int light_login(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin,
                CK_ULONG ulPinLen, CK_RV *rv)
{
    if (!lock_compiled())
        return 0;
    return compiled_answered(compiled->login(hSession, userType, pPin, ulPinLen), rv);
}

int light_logout(CK_SESSION_HANDLE hSession, CK_RV *rv)
{
    if (!lock_compiled())
        return 0;
    return compiled_answered(compiled->logout(hSession), rv);
}

int light_find_objects_init(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate,
                            CK_ULONG ulCount, CK_RV *rv)
{
    if (!lock_compiled())
        return 0;
    return compiled_answered(compiled->find_objects_init(hSession, pTemplate, ulCount), rv);
}

int light_find_objects(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject,
                       CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount, CK_RV *rv)
{
    if (!lock_compiled())
        return 0;
    return compiled_answered(
        compiled->find_objects(hSession, phObject, ulMaxObjectCount, pulObjectCount), rv);
}

int light_find_objects_final(CK_SESSION_HANDLE hSession, CK_RV *rv)
{
    if (!lock_compiled())
        return 0;
    return compiled_answered(compiled->find_objects_final(hSession), rv);
}

int light_get_attribute_value(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                              CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount, CK_RV *rv)
{
    if (!lock_compiled())
        return 0;
    return compiled_answered(
        compiled->get_attribute_value(hSession, hObject, pTemplate, ulCount), rv);
}

int light_sign_init(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                    CK_OBJECT_HANDLE hKey, CK_RV *rv)
{
    if (!lock_compiled())
        return 0;
    return compiled_answered(compiled->sign_init(hSession, pMechanism, hKey), rv);
}

int light_sign(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
               CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen, CK_RV *rv)
{
    if (!lock_compiled())
        return 0;
    return compiled_answered(
        compiled->sign(hSession, pData, ulDataLen, pSignature, pulSignatureLen), rv);
}

int light_sign_update(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen,
                      CK_RV *rv)
{
    if (!lock_compiled())
        return 0;
    return compiled_answered(compiled->sign_update(hSession, pPart, ulPartLen), rv);
}

int light_sign_final(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature,
                     CK_ULONG_PTR pulSignatureLen, CK_RV *rv)
{
    if (!lock_compiled())
        return 0;
    return compiled_answered(compiled->sign_final(hSession, pSignature, pulSignatureLen), rv);
}

int light_decrypt_init(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                       CK_OBJECT_HANDLE hKey, CK_RV *rv)
{
    if (!lock_compiled())
        return 0;
    return compiled_answered(compiled->decrypt_init(hSession, pMechanism, hKey), rv);
}

int light_decrypt(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedData,
                  CK_ULONG ulEncryptedDataLen, CK_BYTE_PTR pData, CK_ULONG_PTR pulDataLen,
                  CK_RV *rv)
{
    if (!lock_compiled())
        return 0;
    return compiled_answered(
        compiled->decrypt(hSession, pEncryptedData, ulEncryptedDataLen, pData, pulDataLen), rv);
}

int light_decrypt_update(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart,
                         CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen,
                         CK_RV *rv)
{
    if (!lock_compiled())
        return 0;
    return compiled_answered(compiled->decrypt_update(hSession, pEncryptedPart,
                                                      ulEncryptedPartLen, pPart, pulPartLen),
                             rv);
}

int light_decrypt_final(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastPart,
                        CK_ULONG_PTR pulLastPartLen, CK_RV *rv)
{
    if (!lock_compiled())
        return 0;
    return compiled_answered(compiled->decrypt_final(hSession, pLastPart, pulLastPartLen), rv);
}
