# Declarations of our own PKCS#11 headers (include/pkcs11.h) for the compiled modules.
# Only declarations live here. The function list (CK_FUNCTION_LIST_3_0 and each function's
# pointer type) is declared from include/pkcs11f.h by abi_build.py, in the ABI's generated
# entry points.

cdef extern from "pkcs11.h" nogil:
    ctypedef unsigned char CK_BYTE
    ctypedef unsigned char CK_CHAR
    ctypedef unsigned char CK_UTF8CHAR
    ctypedef unsigned char CK_BBOOL
    ctypedef unsigned long CK_ULONG
    ctypedef long CK_LONG
    ctypedef CK_ULONG CK_FLAGS
    ctypedef CK_ULONG CK_RV
    ctypedef CK_ULONG CK_SLOT_ID
    ctypedef CK_ULONG CK_SESSION_HANDLE
    ctypedef CK_ULONG CK_OBJECT_HANDLE
    ctypedef CK_ULONG CK_OBJECT_CLASS
    ctypedef CK_ULONG CK_KEY_TYPE
    ctypedef CK_ULONG CK_ATTRIBUTE_TYPE
    ctypedef CK_ULONG CK_MECHANISM_TYPE
    ctypedef CK_ULONG CK_USER_TYPE
    ctypedef CK_ULONG CK_STATE
    ctypedef CK_ULONG CK_NOTIFICATION
    ctypedef CK_ULONG CK_RSA_PKCS_MGF_TYPE
    ctypedef CK_ULONG CK_RSA_PKCS_OAEP_SOURCE_TYPE
    ctypedef void *CK_VOID_PTR
    ctypedef CK_ULONG *CK_ULONG_PTR
    ctypedef CK_BYTE *CK_BYTE_PTR
    ctypedef CK_UTF8CHAR *CK_UTF8CHAR_PTR
    ctypedef CK_SLOT_ID *CK_SLOT_ID_PTR
    ctypedef CK_SESSION_HANDLE *CK_SESSION_HANDLE_PTR
    ctypedef CK_OBJECT_HANDLE *CK_OBJECT_HANDLE_PTR
    ctypedef CK_MECHANISM_TYPE *CK_MECHANISM_TYPE_PTR

    ctypedef struct CK_VERSION:
        CK_BYTE major
        CK_BYTE minor

    ctypedef struct CK_INFO:
        CK_VERSION cryptokiVersion
        CK_UTF8CHAR manufacturerID[32]
        CK_FLAGS flags
        CK_UTF8CHAR libraryDescription[32]
        CK_VERSION libraryVersion

    ctypedef struct CK_SLOT_INFO:
        CK_UTF8CHAR slotDescription[64]
        CK_UTF8CHAR manufacturerID[32]
        CK_FLAGS flags
        CK_VERSION hardwareVersion
        CK_VERSION firmwareVersion

    ctypedef struct CK_TOKEN_INFO:
        CK_UTF8CHAR label[32]
        CK_UTF8CHAR manufacturerID[32]
        CK_UTF8CHAR model[16]
        CK_CHAR serialNumber[16]
        CK_FLAGS flags
        CK_ULONG ulMaxSessionCount
        CK_ULONG ulSessionCount
        CK_ULONG ulMaxRwSessionCount
        CK_ULONG ulRwSessionCount
        CK_ULONG ulMaxPinLen
        CK_ULONG ulMinPinLen
        CK_ULONG ulTotalPublicMemory
        CK_ULONG ulFreePublicMemory
        CK_ULONG ulTotalPrivateMemory
        CK_ULONG ulFreePrivateMemory
        CK_VERSION hardwareVersion
        CK_VERSION firmwareVersion
        CK_CHAR utcTime[16]

    ctypedef struct CK_SESSION_INFO:
        CK_SLOT_ID slotID
        CK_STATE state
        CK_FLAGS flags
        CK_ULONG ulDeviceError

    ctypedef CK_VERSION *CK_VERSION_PTR
    ctypedef CK_INFO *CK_INFO_PTR
    ctypedef CK_SLOT_INFO *CK_SLOT_INFO_PTR
    ctypedef CK_TOKEN_INFO *CK_TOKEN_INFO_PTR
    ctypedef CK_SESSION_INFO *CK_SESSION_INFO_PTR
    ctypedef CK_RV (*CK_NOTIFY)(CK_SESSION_HANDLE hSession, CK_NOTIFICATION event,
                                CK_VOID_PTR pApplication) noexcept nogil

    ctypedef struct CK_ATTRIBUTE:
        CK_ATTRIBUTE_TYPE type
        CK_VOID_PTR pValue
        CK_ULONG ulValueLen
    ctypedef CK_ATTRIBUTE *CK_ATTRIBUTE_PTR

    ctypedef struct CK_MECHANISM:
        CK_MECHANISM_TYPE mechanism
        CK_VOID_PTR pParameter
        CK_ULONG ulParameterLen
    ctypedef CK_MECHANISM *CK_MECHANISM_PTR

    ctypedef struct CK_MECHANISM_INFO:
        CK_ULONG ulMinKeySize
        CK_ULONG ulMaxKeySize
        CK_FLAGS flags
    ctypedef CK_MECHANISM_INFO *CK_MECHANISM_INFO_PTR

    ctypedef struct CK_C_INITIALIZE_ARGS:
        CK_VOID_PTR CreateMutex
        CK_VOID_PTR DestroyMutex
        CK_VOID_PTR LockMutex
        CK_VOID_PTR UnlockMutex
        CK_FLAGS flags
        CK_VOID_PTR pReserved

    ctypedef struct CK_RSA_PKCS_PSS_PARAMS:
        CK_MECHANISM_TYPE hashAlg
        CK_RSA_PKCS_MGF_TYPE mgf
        CK_ULONG sLen

    ctypedef struct CK_RSA_PKCS_OAEP_PARAMS:
        CK_MECHANISM_TYPE hashAlg
        CK_RSA_PKCS_MGF_TYPE mgf
        CK_RSA_PKCS_OAEP_SOURCE_TYPE source
        CK_VOID_PTR pSourceData
        CK_ULONG ulSourceDataLen

    ctypedef CK_ULONG CK_MAC_GENERAL_PARAMS

    ctypedef struct CK_INTERFACE:
        CK_UTF8CHAR *pInterfaceName
        CK_VOID_PTR pFunctionList
        CK_FLAGS flags
    ctypedef CK_INTERFACE *CK_INTERFACE_PTR
    ctypedef CK_INTERFACE_PTR *CK_INTERFACE_PTR_PTR

    # The 2.40 list, opaque: only pointers to it are passed.
    ctypedef struct CK_FUNCTION_LIST:
        pass
    ctypedef CK_FUNCTION_LIST *CK_FUNCTION_LIST_PTR
    ctypedef CK_FUNCTION_LIST_PTR *CK_FUNCTION_LIST_PTR_PTR

    enum:
        CK_TRUE
        CK_FALSE
        CK_UNAVAILABLE_INFORMATION
        CK_EFFECTIVELY_INFINITE
        CK_INVALID_HANDLE

        CKF_TOKEN_PRESENT
        CKF_REMOVABLE_DEVICE
        CKF_HW_SLOT
        CKF_RNG
        CKF_LOGIN_REQUIRED
        CKF_USER_PIN_INITIALIZED
        CKF_TOKEN_INITIALIZED
        CKF_RW_SESSION
        CKF_SERIAL_SESSION
        CKF_DONT_BLOCK
        CKF_LIBRARY_CANT_CREATE_OS_THREADS
        CKF_OS_LOCKING_OK
        CKF_HW
        CKF_ENCRYPT
        CKF_DECRYPT
        CKF_DIGEST
        CKF_SIGN
        CKF_VERIFY
        CKF_GENERATE
        CKF_GENERATE_KEY_PAIR
        CKF_EC_F_P
        CKF_EC_NAMEDCURVE
        CKF_EC_UNCOMPRESS
        CKF_INTERFACE_FORK_SAFE

        CKU_SO
        CKU_USER
        CKU_CONTEXT_SPECIFIC

        CKS_RO_PUBLIC_SESSION
        CKS_RO_USER_FUNCTIONS
        CKS_RW_PUBLIC_SESSION
        CKS_RW_USER_FUNCTIONS
        CKS_RW_SO_FUNCTIONS

        CKO_DATA
        CKO_CERTIFICATE
        CKO_PUBLIC_KEY
        CKO_PRIVATE_KEY
        CKO_SECRET_KEY

        CKK_RSA
        CKK_EC
        CKK_EC_EDWARDS
        CKK_AES
        CKK_GENERIC_SECRET

        CKA_CLASS
        CKA_ID
        CKA_LABEL
        CKA_KEY_TYPE
        CKA_TOKEN
        CKA_PRIVATE

        CKG_MGF1_SHA1
        CKG_MGF1_SHA224
        CKG_MGF1_SHA256
        CKG_MGF1_SHA384
        CKG_MGF1_SHA512

        CKZ_DATA_SPECIFIED

        CKM_RSA_PKCS
        CKM_RSA_X_509
        CKM_RSA_PKCS_PSS
        CKM_RSA_PKCS_OAEP
        CKM_SHA1_RSA_PKCS
        CKM_SHA224_RSA_PKCS
        CKM_SHA256_RSA_PKCS
        CKM_SHA384_RSA_PKCS
        CKM_SHA512_RSA_PKCS
        CKM_SHA1_RSA_PKCS_PSS
        CKM_SHA224_RSA_PKCS_PSS
        CKM_SHA256_RSA_PKCS_PSS
        CKM_SHA384_RSA_PKCS_PSS
        CKM_SHA512_RSA_PKCS_PSS
        CKM_ECDSA
        CKM_ECDSA_SHA1
        CKM_ECDSA_SHA224
        CKM_ECDSA_SHA256
        CKM_ECDSA_SHA384
        CKM_ECDSA_SHA512
        CKM_EDDSA
        CKM_MD5
        CKM_SHA_1
        CKM_SHA224
        CKM_SHA256
        CKM_SHA384
        CKM_SHA512
        CKM_RSA_PKCS_KEY_PAIR_GEN
        CKM_EC_KEY_PAIR_GEN
        CKM_EC_EDWARDS_KEY_PAIR_GEN
        CKM_AES_KEY_GEN
        CKM_GENERIC_SECRET_KEY_GEN
        CKM_AES_CBC
        CKM_AES_CBC_PAD
        CKM_AES_ECB
        CKM_AES_CMAC
        CKM_AES_CMAC_GENERAL

        CKR_OK
        CKR_CANCEL
        CKR_HOST_MEMORY
        CKR_SLOT_ID_INVALID
        CKR_GENERAL_ERROR
        CKR_FUNCTION_FAILED
        CKR_ARGUMENTS_BAD
        CKR_NO_EVENT
        CKR_NEED_TO_CREATE_THREADS
        CKR_CANT_LOCK
        CKR_ATTRIBUTE_READ_ONLY
        CKR_ATTRIBUTE_SENSITIVE
        CKR_ATTRIBUTE_TYPE_INVALID
        CKR_ATTRIBUTE_VALUE_INVALID
        CKR_ACTION_PROHIBITED
        CKR_DATA_INVALID
        CKR_DATA_LEN_RANGE
        CKR_DEVICE_ERROR
        CKR_DEVICE_MEMORY
        CKR_DEVICE_REMOVED
        CKR_ENCRYPTED_DATA_INVALID
        CKR_ENCRYPTED_DATA_LEN_RANGE
        CKR_FUNCTION_CANCELED
        CKR_FUNCTION_NOT_PARALLEL
        CKR_FUNCTION_NOT_SUPPORTED
        CKR_KEY_HANDLE_INVALID
        CKR_KEY_TYPE_INCONSISTENT
        CKR_KEY_FUNCTION_NOT_PERMITTED
        CKR_KEY_INDIGESTIBLE
        CKR_MECHANISM_INVALID
        CKR_MECHANISM_PARAM_INVALID
        CKR_OBJECT_HANDLE_INVALID
        CKR_OPERATION_ACTIVE
        CKR_OPERATION_NOT_INITIALIZED
        CKR_PIN_INCORRECT
        CKR_PIN_LEN_RANGE
        CKR_SESSION_CLOSED
        CKR_SESSION_COUNT
        CKR_SESSION_HANDLE_INVALID
        CKR_SESSION_PARALLEL_NOT_SUPPORTED
        CKR_SESSION_READ_ONLY
        CKR_SESSION_EXISTS
        CKR_SESSION_READ_ONLY_EXISTS
        CKR_SESSION_READ_WRITE_SO_EXISTS
        CKR_SIGNATURE_INVALID
        CKR_SIGNATURE_LEN_RANGE
        CKR_TEMPLATE_INCOMPLETE
        CKR_TEMPLATE_INCONSISTENT
        CKR_TOKEN_NOT_PRESENT
        CKR_TOKEN_NOT_RECOGNIZED
        CKR_TOKEN_WRITE_PROTECTED
        CKR_USER_ALREADY_LOGGED_IN
        CKR_USER_NOT_LOGGED_IN
        CKR_USER_PIN_NOT_INITIALIZED
        CKR_USER_TYPE_INVALID
        CKR_USER_ANOTHER_ALREADY_LOGGED_IN
        CKR_USER_TOO_MANY_TYPES
        CKR_RANDOM_SEED_NOT_SUPPORTED
        CKR_RANDOM_NO_RNG
        CKR_DOMAIN_PARAMS_INVALID
        CKR_BUFFER_TOO_SMALL
        CKR_SAVED_STATE_INVALID
        CKR_INFORMATION_SENSITIVE
        CKR_STATE_UNSAVEABLE
        CKR_CRYPTOKI_NOT_INITIALIZED
        CKR_CRYPTOKI_ALREADY_INITIALIZED
        CKR_MUTEX_BAD
        CKR_MUTEX_NOT_LOCKED
        CKR_OPERATION_CANCEL_FAILED
