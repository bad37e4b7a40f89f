/* Test scaffolding: a PKCS #11 host without Python, as pkcs11-tool or p11-kit would be.
 *
 *   host MODULE full     the loader's whole contract (see test_loader.py)
 *   host MODULE init     only C_Initialize; prints its return value
 *
 * Prints "ok: <what>" per passed check and "FAIL: <what>" for the first failed one (exit 1).
 */
#include <dlfcn.h>
#include <locale.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pkcs11.h"

#define CHECK(cond, what)                                    \
    do {                                                     \
        if (!(cond)) {                                       \
            printf("FAIL: %s (line %d)\n", what, __LINE__);  \
            exit(1);                                         \
        }                                                    \
        printf("ok: %s\n", what);                            \
    } while (0)

static void *load(const char *path, CK_FUNCTION_LIST_PTR *list)
{
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    CK_C_GetFunctionList get;
    CHECK(lib != NULL, "dlopen");
    get = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
    CHECK(get && get(list) == CKR_OK, "C_GetFunctionList");
    CHECK((*list)->version.major == 2 && (*list)->version.minor == 40, "list version 2.40");
    return lib;
}

/* C_GetInfo must reach Python on this thread and in this process. */
static int info_is_ours(CK_FUNCTION_LIST_PTR f)
{
    CK_INFO info;
    char pid[16];
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    return f->C_GetInfo(&info) == CKR_OK && memcmp(info.manufacturerID, "fake-abi", 8) == 0 &&
           strncmp((char *)info.libraryDescription, pid, strlen(pid)) == 0;
}

/* Python, left to itself, handles SIGINT and ignores SIGPIPE and SIGXFSZ. */
static const int watched_signals[] = {SIGINT, SIGPIPE, SIGXFSZ, SIGTERM};
#define WATCHED (sizeof watched_signals / sizeof watched_signals[0])

/* A host started in the background by a shell inherits SIGINT ignored: start from defaults. */
static void default_signals(void)
{
    for (size_t i = 0; i < WATCHED; i++)
        signal(watched_signals[i], SIG_DFL);
}

static int signals_untouched(void)
{
    const int *signals = watched_signals;
    for (size_t i = 0; i < WATCHED; i++) {
        struct sigaction action;
        if (sigaction(signals[i], NULL, &action) != 0 || action.sa_handler != SIG_DFL)
            return 0;
    }
    return 1;
}

static CK_FUNCTION_LIST_PTR shared;
static CK_RV results[4];

static void *initialize(void *slot)
{
    *(CK_RV *)slot = shared->C_Initialize(NULL);
    return NULL;
}

static void *get_info(void *ok)
{
    *(int *)ok = info_is_ours(shared);
    return NULL;
}

static void interfaces(void *lib, CK_FUNCTION_LIST_PTR list)
{
    CK_C_GetInterfaceList get_list = (CK_C_GetInterfaceList)dlsym(lib, "C_GetInterfaceList");
    CK_C_GetInterface get = (CK_C_GetInterface)dlsym(lib, "C_GetInterface");
    CK_INTERFACE found[4], *one;
    CK_ULONG count = 0;
    CK_VERSION v240 = {2, 40}, v30 = {3, 0}, v31 = {3, 1};
    CK_FUNCTION_LIST_3_0_PTR list30;

    CHECK(get_list && get, "C_GetInterfaceList and C_GetInterface exported");
    CHECK(get_list(NULL, NULL) == CKR_ARGUMENTS_BAD, "C_GetInterfaceList(NULL count)");
    CHECK(get_list(NULL, &count) == CKR_OK && count == 2, "C_GetInterfaceList counts 2");
    count = 1;
    CHECK(get_list(found, &count) == CKR_BUFFER_TOO_SMALL && count == 2,
          "C_GetInterfaceList too small");
    count = 4;
    CHECK(get_list(found, &count) == CKR_OK && count == 2, "C_GetInterfaceList fills");
    CHECK(strcmp((char *)found[0].pInterfaceName, "PKCS 11") == 0 &&
              strcmp((char *)found[1].pInterfaceName, "PKCS 11") == 0,
          "interfaces named PKCS 11");
    CHECK(((CK_VERSION *)found[0].pFunctionList)->major == 3 &&
              ((CK_VERSION *)found[1].pFunctionList)->minor == 40,
          "interface versions 3.0 and 2.40");

    CHECK(get(NULL, NULL, NULL, 0) == CKR_ARGUMENTS_BAD, "C_GetInterface(NULL out)");
    CHECK(get(NULL, NULL, &one, 0) == CKR_OK &&
              ((CK_VERSION *)one->pFunctionList)->major == 3,
          "default interface is 3.0");
    CHECK(get((CK_UTF8CHAR_PTR) "PKCS 11", &v240, &one, 0) == CKR_OK &&
              one->pFunctionList == list,
          "interface 2.40 is C_GetFunctionList's list");
    CHECK(get((CK_UTF8CHAR_PTR) "PKCS 11", &v30, &one, 0) == CKR_OK, "interface 3.0 by name");
    list30 = one->pFunctionList;
    CHECK(list30->version.minor == 0 && list30->C_GetInterface != NULL &&
              list30->C_MessageVerifyFinal != NULL && list30->C_Sign == list->C_Sign,
          "3.0 list complete and shares the trampolines");
    CHECK(get((CK_UTF8CHAR_PTR) "PKCS 11", &v31, &one, 0) == CKR_ARGUMENTS_BAD,
          "no interface 3.1");
    CHECK(get((CK_UTF8CHAR_PTR) "Vendor", NULL, &one, 0) == CKR_ARGUMENTS_BAD,
          "no other interface name");
    CHECK(get(NULL, NULL, &one, CKF_INTERFACE_FORK_SAFE) == CKR_ARGUMENTS_BAD,
          "no fork-safe interface");
    CHECK(list30->C_GetInfo(&(CK_INFO){0}) == CKR_CRYPTOKI_NOT_INITIALIZED &&
              list30->C_MessageVerifyFinal(1) == CKR_CRYPTOKI_NOT_INITIALIZED,
          "3.0 list not initialised before C_Initialize");
}

static int full(const char *path)
{
    CK_FUNCTION_LIST_PTR f;
    void *lib;
    default_signals();
    lib = load(path, &f);
    const char *locale_before = setlocale(LC_CTYPE, NULL);
    char locale[64];
    pthread_t threads[4];
    int thread_ok = 0, status;
    pid_t child;

    snprintf(locale, sizeof locale, "%s", locale_before);
    interfaces(lib, f);
    CHECK(f->C_GetInfo(&(CK_INFO){0}) == CKR_CRYPTOKI_NOT_INITIALIZED &&
              f->C_Finalize(NULL) == CKR_CRYPTOKI_NOT_INITIALIZED &&
              f->C_Sign(1, NULL, 0, NULL, NULL) == CKR_CRYPTOKI_NOT_INITIALIZED,
          "calls before C_Initialize are not initialised");

    shared = f;
    for (int i = 0; i < 4; i++)
        pthread_create(&threads[i], NULL, initialize, &results[i]);
    for (int i = 0; i < 4; i++)
        pthread_join(threads[i], NULL);
    {
        int ok = 0, already = 0;
        for (int i = 0; i < 4; i++) {
            ok += results[i] == CKR_OK;
            already += results[i] == CKR_CRYPTOKI_ALREADY_INITIALIZED;
        }
        CHECK(ok == 1 && already == 3, "4 concurrent C_Initialize: one starts, three see it done");
    }
    CHECK(strcmp(setlocale(LC_CTYPE, NULL), locale) == 0 && getenv("LC_CTYPE") == NULL &&
              getenv("LC_ALL") == NULL,
          "host locale unchanged");
    CHECK(signals_untouched(), "host signal dispositions unchanged");
    CHECK(info_is_ours(f), "C_GetInfo forwarded and runs Python");
    CHECK(f->C_Sign(1, NULL, 0, NULL, NULL) == CKR_FUNCTION_NOT_SUPPORTED,
          "other calls forwarded");
    pthread_create(&threads[0], NULL, get_info, &thread_ok);
    pthread_join(threads[0], NULL);
    CHECK(thread_ok, "C_GetInfo from a new thread");

    fflush(stdout);
    child = fork();
    if (child == 0) {
        CHECK(f->C_GetInfo(&(CK_INFO){0}) == CKR_CRYPTOKI_NOT_INITIALIZED,
              "child: ABI reset after fork");
        CHECK(f->C_Initialize(NULL) == CKR_OK, "child: C_Initialize");
        CHECK(info_is_ours(f), "child: C_GetInfo runs Python in the child");
        pthread_create(&threads[0], NULL, get_info, &thread_ok);
        pthread_join(threads[0], NULL);
        CHECK(thread_ok, "child: C_GetInfo from a new thread");
        CHECK(f->C_Finalize(NULL) == CKR_OK, "child: C_Finalize");
        fflush(stdout);
        _exit(0);
    }
    CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) &&
              WEXITSTATUS(status) == 0,
          "child exited cleanly");
    CHECK(info_is_ours(f), "parent still works after fork");

    CHECK(f->C_Finalize(NULL) == CKR_OK, "C_Finalize forwarded");
    CHECK(f->C_GetInfo(&(CK_INFO){0}) == CKR_CRYPTOKI_NOT_INITIALIZED,
          "not initialised after C_Finalize");
    CHECK(dlclose(lib) == 0, "dlclose");
    lib = load(path, &f);
    CHECK(f->C_Initialize(NULL) == CKR_OK, "C_Initialize after dlclose and dlopen");
    CHECK(info_is_ours(f), "C_GetInfo after reload");
    CHECK(f->C_Finalize(NULL) == CKR_OK, "C_Finalize after reload");
    return 0;
}

int main(int argc, char **argv)
{
    CK_FUNCTION_LIST_PTR f;
    if (argc != 3)
        return 2;
    if (strcmp(argv[2], "full") == 0)
        return full(argv[1]);
    load(argv[1], &f);
    printf("C_Initialize: 0x%lx\n", f->C_Initialize(NULL));
    printf("C_GetInfo: 0x%lx\n", f->C_GetInfo(&(CK_INFO){0}));
    return 0;
}
