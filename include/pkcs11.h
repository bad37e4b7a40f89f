/* PKCS #11 v3.0 for p11fast: the entry header.
 *
 * Written for this project from the OASIS PKCS #11 v3.0 specification; the values are the
 * standard's, tests/loader/test_headers.py checks them against other headers on the system.
 *
 * The standard leaves a few platform macros to the includer. These are the Unix ones: plain
 * pointers, default calling convention, and natural struct alignment (only Windows packs
 * PKCS #11 structs to 1 byte, so no pragma pack here).
 */
#ifndef P11FAST_PKCS11_H
#define P11FAST_PKCS11_H

#ifdef __cplusplus
extern "C" {
#endif

#ifndef CK_PTR
#define CK_PTR *
#endif
#ifndef CK_DECLARE_FUNCTION
#define CK_DECLARE_FUNCTION(returnType, name) returnType name
#endif
#ifndef CK_DECLARE_FUNCTION_POINTER
#define CK_DECLARE_FUNCTION_POINTER(returnType, name) returnType (*name)
#endif
#ifndef CK_CALLBACK_FUNCTION
#define CK_CALLBACK_FUNCTION(returnType, name) returnType (*name)
#endif
#ifndef NULL_PTR
#define NULL_PTR 0
#endif

#include "pkcs11t.h"

/* pkcs11f.h lists every function once as CK_PKCS11_FUNCTION_INFO(name, (parameters), (arguments));
 * each expansion below turns that list into one kind of declaration. */

/* Prototypes, C_Initialize ... C_MessageVerifyFinal. */
#define CK_PKCS11_FUNCTION_INFO(name, params, args) extern CK_DECLARE_FUNCTION(CK_RV, name) params;
#include "pkcs11f.h"
#undef CK_PKCS11_FUNCTION_INFO

/* Pointer types CK_C_Initialize ... as the standard names them. */
#define CK_PKCS11_FUNCTION_INFO(name, params, args) \
    typedef CK_DECLARE_FUNCTION_POINTER(CK_RV, CK_##name) params;
#include "pkcs11f.h"
#undef CK_PKCS11_FUNCTION_INFO

#define CK_PKCS11_FUNCTION_INFO(name, params, args) CK_##name name;

/* Version 3.0 list: the 2.40 functions in their order, then the 3.0 additions. */
struct CK_FUNCTION_LIST_3_0 {
    CK_VERSION version;
#include "pkcs11f.h"
};

/* Version 2.x list: the same prefix, without the 3.0 additions. */
#define CK_PKCS11_2_0_ONLY 1
struct CK_FUNCTION_LIST {
    CK_VERSION version;
#include "pkcs11f.h"
};
#undef CK_PKCS11_2_0_ONLY

#undef CK_PKCS11_FUNCTION_INFO

#ifdef __cplusplus
}
#endif

#endif /* P11FAST_PKCS11_H */
