# The function table the loader forwards to, and the capsules it takes it from.

cdef CK_FUNCTION_LIST_3_0 g_table


cdef void fill_table(CK_FUNCTION_LIST_3_0 *t) noexcept:
    t.version.major = 3
    t.version.minor = 0
    t.C_Initialize = <void *>C_Initialize
    t.C_Finalize = <void *>C_Finalize
    t.C_GetInfo = <void *>C_GetInfo
    t.C_GetFunctionList = <void *>C_GetFunctionList
    t.C_GetSlotList = <void *>C_GetSlotList
    t.C_GetSlotInfo = <void *>C_GetSlotInfo
    t.C_GetTokenInfo = <void *>C_GetTokenInfo
    t.C_GetMechanismList = <void *>C_GetMechanismList
    t.C_GetMechanismInfo = <void *>C_GetMechanismInfo
    t.C_InitToken = <void *>C_InitToken
    t.C_InitPIN = <void *>C_InitPIN
    t.C_SetPIN = <void *>C_SetPIN
    t.C_OpenSession = <void *>C_OpenSession
    t.C_CloseSession = <void *>C_CloseSession
    t.C_CloseAllSessions = <void *>C_CloseAllSessions
    t.C_GetSessionInfo = <void *>C_GetSessionInfo
    t.C_GetOperationState = <void *>C_GetOperationState
    t.C_SetOperationState = <void *>C_SetOperationState
    t.C_Login = <void *>C_Login
    t.C_Logout = <void *>C_Logout
    t.C_CreateObject = <void *>C_CreateObject
    t.C_CopyObject = <void *>C_CopyObject
    t.C_DestroyObject = <void *>C_DestroyObject
    t.C_GetObjectSize = <void *>C_GetObjectSize
    t.C_GetAttributeValue = <void *>C_GetAttributeValue
    t.C_SetAttributeValue = <void *>C_SetAttributeValue
    t.C_FindObjectsInit = <void *>C_FindObjectsInit
    t.C_FindObjects = <void *>C_FindObjects
    t.C_FindObjectsFinal = <void *>C_FindObjectsFinal
    t.C_EncryptInit = <void *>C_EncryptInit
    t.C_Encrypt = <void *>C_Encrypt
    t.C_EncryptUpdate = <void *>C_EncryptUpdate
    t.C_EncryptFinal = <void *>C_EncryptFinal
    t.C_DecryptInit = <void *>C_DecryptInit
    t.C_Decrypt = <void *>C_Decrypt
    t.C_DecryptUpdate = <void *>C_DecryptUpdate
    t.C_DecryptFinal = <void *>C_DecryptFinal
    t.C_DigestInit = <void *>C_DigestInit
    t.C_Digest = <void *>C_Digest
    t.C_DigestUpdate = <void *>C_DigestUpdate
    t.C_DigestKey = <void *>C_DigestKey
    t.C_DigestFinal = <void *>C_DigestFinal
    t.C_SignInit = <void *>C_SignInit
    t.C_Sign = <void *>C_Sign
    t.C_SignUpdate = <void *>C_SignUpdate
    t.C_SignFinal = <void *>C_SignFinal
    t.C_SignRecoverInit = <void *>C_SignRecoverInit
    t.C_SignRecover = <void *>C_SignRecover
    t.C_VerifyInit = <void *>C_VerifyInit
    t.C_Verify = <void *>C_Verify
    t.C_VerifyUpdate = <void *>C_VerifyUpdate
    t.C_VerifyFinal = <void *>C_VerifyFinal
    t.C_VerifyRecoverInit = <void *>C_VerifyRecoverInit
    t.C_VerifyRecover = <void *>C_VerifyRecover
    t.C_DigestEncryptUpdate = <void *>C_DigestEncryptUpdate
    t.C_DecryptDigestUpdate = <void *>C_DecryptDigestUpdate
    t.C_SignEncryptUpdate = <void *>C_SignEncryptUpdate
    t.C_DecryptVerifyUpdate = <void *>C_DecryptVerifyUpdate
    t.C_GenerateKey = <void *>C_GenerateKey
    t.C_GenerateKeyPair = <void *>C_GenerateKeyPair
    t.C_WrapKey = <void *>C_WrapKey
    t.C_UnwrapKey = <void *>C_UnwrapKey
    t.C_DeriveKey = <void *>C_DeriveKey
    t.C_SeedRandom = <void *>C_SeedRandom
    t.C_GenerateRandom = <void *>C_GenerateRandom
    t.C_GetFunctionStatus = <void *>C_GetFunctionStatus
    t.C_CancelFunction = <void *>C_CancelFunction
    t.C_WaitForSlotEvent = <void *>C_WaitForSlotEvent
    t.C_GetInterfaceList = <void *>C_GetInterfaceList
    t.C_GetInterface = <void *>C_GetInterface
    t.C_LoginUser = <void *>C_LoginUser
    t.C_SessionCancel = <void *>C_SessionCancel
    t.C_MessageEncryptInit = <void *>C_MessageEncryptInit
    t.C_EncryptMessage = <void *>C_EncryptMessage
    t.C_EncryptMessageBegin = <void *>C_EncryptMessageBegin
    t.C_EncryptMessageNext = <void *>C_EncryptMessageNext
    t.C_MessageEncryptFinal = <void *>C_MessageEncryptFinal
    t.C_MessageDecryptInit = <void *>C_MessageDecryptInit
    t.C_DecryptMessage = <void *>C_DecryptMessage
    t.C_DecryptMessageBegin = <void *>C_DecryptMessageBegin
    t.C_DecryptMessageNext = <void *>C_DecryptMessageNext
    t.C_MessageDecryptFinal = <void *>C_MessageDecryptFinal
    t.C_MessageSignInit = <void *>C_MessageSignInit
    t.C_SignMessage = <void *>C_SignMessage
    t.C_SignMessageBegin = <void *>C_SignMessageBegin
    t.C_SignMessageNext = <void *>C_SignMessageNext
    t.C_MessageSignFinal = <void *>C_MessageSignFinal
    t.C_MessageVerifyInit = <void *>C_MessageVerifyInit
    t.C_VerifyMessage = <void *>C_VerifyMessage
    t.C_VerifyMessageBegin = <void *>C_VerifyMessageBegin
    t.C_VerifyMessageNext = <void *>C_VerifyMessageNext
    t.C_MessageVerifyFinal = <void *>C_MessageVerifyFinal


fill_table(&g_table)
function_table = PyCapsule_New(<void *>&g_table, b"p11fast._abi.function_table", NULL)
seed_presence = PyCapsule_New(<void *>seed_presence_from_light, b"p11fast._abi.seed_presence", NULL)
own_interpreter = PyCapsule_New(<void *>take_own_interpreter, b"p11fast._abi.own_interpreter", NULL)
# A forked child starts uninitialised in every host, Python or not: the loader registers
# reset_after_fork with pthread_atfork (not done here, under the GIL: see loader/fork.c), and
# os.fork's hook (the loader's own handler runs it too) drops the Python state as well.
after_fork_child = PyCapsule_New(<void *>reset_after_fork, b"p11fast._abi.after_fork_child", NULL)
os.register_at_fork(after_in_child=forget_state_after_fork)
