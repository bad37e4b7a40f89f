/* Test scaffolding: a PKCS #11 host that signs once and prints the signature in hex.
 *
 *   sign_host MODULE CONFIG PIN LABEL MESSAGE
 *
 * CONFIG travels in CK_C_INITIALIZE_ARGS.pReserved, so the host runs with an empty environment.
 * Signs MESSAGE with CKM_ECDSA_SHA256 and the private key labelled LABEL; prints "sig <hex>".
 *
 * Built with -DSYSTEM_TLS and -lcurl -lssl -lcrypto it is a host like nginx or a Java VM: the
 * system's libcurl and OpenSSL are in the global scope and in use before the module is loaded,
 * and still work after it signed.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SYSTEM_TLS
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#endif

#include "pkcs11.h"

static void fail(const char *what, CK_RV rv)
{
    printf("FAIL: %s rv=0x%lx\n", what, (unsigned long)rv);
    exit(1);
}

#define CALL(expr)                 \
    do {                           \
        CK_RV rv_ = (expr);        \
        if (rv_ != CKR_OK)         \
            fail(#expr, rv_);      \
    } while (0)

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s MODULE CONFIG PIN LABEL MESSAGE\n", argv[0]);
        return 2;
    }
#ifdef SYSTEM_TLS
    /* The host's own TLS state, made before the module exists in the process. */
    CURL *easy;
    SSL_CTX *ctx;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(easy = curl_easy_init()) ||
        !(ctx = SSL_CTX_new(TLS_client_method())))
        fail("host libcurl/OpenSSL set-up", 0);
    printf("host %s, %s\n", curl_version(), OpenSSL_version(OPENSSL_VERSION));
#endif
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        printf("FAIL: dlopen: %s\n", dlerror());
        return 1;
    }
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
    CK_FUNCTION_LIST_PTR f;
    if (!get)
        fail("dlsym C_GetFunctionList", 0);
    CALL(get(&f));

    CK_C_INITIALIZE_ARGS init = {0};
    init.flags = CKF_OS_LOCKING_OK;
    init.pReserved = argv[2];
    CALL(f->C_Initialize(&init));

    CK_SLOT_ID slot;
    CK_ULONG count = 1;
    CALL(f->C_GetSlotList(CK_TRUE, &slot, &count));
    if (count < 1)
        fail("a token is present", 0);

    CK_SESSION_HANDLE session;
    CALL(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &session));
    CALL(f->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR)argv[3], strlen(argv[3])));

    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE find[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_LABEL, argv[4], strlen(argv[4])},
    };
    CK_OBJECT_HANDLE key;
    CK_ULONG found = 0;
    CALL(f->C_FindObjectsInit(session, find, 2));
    CALL(f->C_FindObjects(session, &key, 1, &found));
    CALL(f->C_FindObjectsFinal(session));
    if (found != 1)
        fail("the key is found", 0);

    CK_MECHANISM mech = {CKM_ECDSA_SHA256, NULL, 0};
    CK_BYTE sig[256];
    CK_ULONG sig_len = sizeof sig;
    CALL(f->C_SignInit(session, &mech, key));
    CALL(f->C_Sign(session, (CK_BYTE_PTR)argv[5], strlen(argv[5]), sig, &sig_len));
    printf("sig ");
    for (CK_ULONG i = 0; i < sig_len; i++)
        printf("%02x", sig[i]);
    printf("\n");

    CALL(f->C_Logout(session));
    CALL(f->C_CloseSession(session));
    CALL(f->C_Finalize(NULL));
#ifdef SYSTEM_TLS
    /* The host's objects still belong to a working library. */
    if (curl_easy_setopt(easy, CURLOPT_URL, "https://127.0.0.1:1/") != CURLE_OK ||
        SSL_CTX_set_cipher_list(ctx, "HIGH") != 1)
        fail("host libcurl/OpenSSL after the module", 0);
    SSL_CTX_free(ctx);
    curl_easy_cleanup(easy);
    curl_global_cleanup();
#endif
    printf("ok\n");
    return 0;
}
