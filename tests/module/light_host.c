/* A C host for the light-mode tests: it loads the module with dlopen, as pkcs11-tool does, and
 * prints one "key=value" line per step. "python=" tells whether an interpreter runs in the
 * process (Py_IsInitialized, found through the libpython the loader loaded globally);
 * "loaded=" which of libpython and the ABI's extension (for the transport's C entry points) the
 * process has loaded at the end of a listing ("libpython,abi", one of them, or "none").
 * LIGHT_HOST_RESERVED, when set, is passed as CK_C_INITIALIZE_ARGS.pReserved.
 *
 *   light_host MODULE list            C_Initialize, C_GetInfo, the slot list, each slot's and
 *                                     token's info (as hex of the structures), slot 0's
 *                                     mechanisms (each type as 8 bytes little-endian and its
 *                                     info, as the snapshot holds them) with the list's and
 *                                     info's error answers, C_Finalize
 *   light_host MODULE sign PIN KEY_ID list, then open a session, log in, find the EC private
 *                                     key with CKA_ID KEY_ID and sign a digest with CKM_ECDSA
 *   light_host MODULE random          list, then open a session and ask for random bytes
 *                                     (what no earlier process can have answered for it)
 *   light_host MODULE fork            C_Initialize, fork; the child lists slots before and
 *                                     after its own C_Initialize, the parent after the fork
 *   light_host MODULE race N          C_Initialize; N threads ask for slot and token info while
 *                                     another opens a session and searches it (the search
 *                                     starts Python, which takes the session over)
 *   light_host MODULE event           C_Initialize, slot 0's info; after a line on stdin,
 *                                     C_WaitForSlotEvent(CKF_DONT_BLOCK)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pkcs11.h"

static CK_FUNCTION_LIST_PTR f;

static int python_running(void)
{
    int (*initialized)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "Py_IsInitialized");
    return initialized ? initialized() : 0;
}

static int note_object(struct dl_phdr_info *object, size_t size, void *found)
{
    (void)size;
    if (strstr(object->dlpi_name, "/libpython"))
        *(int *)found |= 1;
    if (strstr(object->dlpi_name, "/_abi."))
        *(int *)found |= 2;
    return 0;
}

static const char *loaded(void)
{
    static const char *names[] = {"none", "libpython", "abi", "libpython,abi"};
    int found = 0;
    dl_iterate_phdr(note_object, &found);
    return names[found];
}

static void hex(const char *name, const void *data, size_t n)
{
    printf(" %s=", name);
    for (size_t i = 0; i < n; i++)
        printf("%02x", ((const unsigned char *)data)[i]);
}

static void mechanisms(void)
{
    CK_MECHANISM_TYPE types[256];
    CK_MECHANISM_INFO info;
    CK_ULONG count = 0, one = 1;
    CK_RV rv = f->C_GetMechanismList(0, NULL, &count);
    printf(" mechs_count_rv=0x%lx mechs_count=%lu", rv, count);
    rv = f->C_GetMechanismList(0, types, &one);
    printf(" mechs_short_rv=0x%lx mechs_short=%lu", rv, one);
    printf(" mechs_slot_rv=0x%lx", f->C_GetMechanismList(64, NULL, &count));
    printf(" mechs_null_rv=0x%lx", f->C_GetMechanismList(0, types, NULL));
    printf(" mech_unknown_rv=0x%lx", f->C_GetMechanismInfo(0, 0x7fffffffUL, &info));
    printf(" mech_null_rv=0x%lx", f->C_GetMechanismInfo(0, CKM_RSA_PKCS, NULL));
    count = sizeof types / sizeof types[0];
    rv = f->C_GetMechanismList(0, types, &count);
    printf(" mechs_rv=0x%lx mechanisms=", rv);
    for (CK_ULONG i = 0; rv == CKR_OK && i < count; i++) {
        memset(&info, 0, sizeof info);
        if (f->C_GetMechanismInfo(0, types[i], &info) != CKR_OK)
            printf("info-failed");
        for (int byte = 0; byte < 8; byte++)
            printf("%02x", (unsigned)(types[i] >> (8 * byte)) & 0xff);
        for (size_t byte = 0; byte < sizeof info; byte++)
            printf("%02x", ((const unsigned char *)&info)[byte]);
    }
}

static void list(const char *step)
{
    CK_INFO info;
    CK_SLOT_ID slots[64];
    CK_ULONG count = 0, present = 0;
    CK_RV rv;
    memset(&info, 0, sizeof info); /* the padding is printed too */
    rv = f->C_GetInfo(&info);
    printf("step=%s info_rv=0x%lx", step, rv);
    if (rv == CKR_OK)
        hex("info", &info, sizeof info);
    rv = f->C_GetSlotList(CK_FALSE, NULL, &count);
    printf(" list_rv=0x%lx count=%lu", rv, count);
    if (rv != CKR_OK) {
        printf(" python=%d\n", python_running());
        return;
    }
    f->C_GetSlotList(CK_TRUE, NULL, &present);
    printf(" present=%lu", present);
    rv = f->C_GetSlotList(CK_FALSE, slots, &count);
    for (CK_ULONG i = 0; rv == CKR_OK && i < count; i++) {
        CK_SLOT_INFO slot;
        CK_TOKEN_INFO token;
        char name[32];
        memset(&slot, 0, sizeof slot);
        memset(&token, 0, sizeof token);
        rv = f->C_GetSlotInfo(slots[i], &slot);
        snprintf(name, sizeof name, "slot%lu", i);
        hex(name, &slot, sizeof slot);
        rv = f->C_GetTokenInfo(slots[i], &token);
        snprintf(name, sizeof name, "token%lu_rv", i);
        printf(" %s=0x%lx", name, rv);
        if (rv == CKR_OK) {
            snprintf(name, sizeof name, "token%lu", i);
            hex(name, &token, sizeof token);
        }
        rv = CKR_OK;
    }
    mechanisms();
    printf(" python=%d loaded=%s\n", python_running(), loaded());
}

static CK_RV sign(const char *pin, const char *key_id)
{
    CK_SESSION_HANDLE session;
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls},
                           {CKA_ID, (void *)key_id, strlen(key_id)}};
    CK_OBJECT_HANDLE key;
    CK_ULONG found = 0, len;
    CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};
    CK_BYTE digest[32] = {1}, signature[256];
    CK_RV rv;
    if ((rv = f->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &session)) != CKR_OK)
        return rv;
    rv = f->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
        return rv;
    if ((rv = f->C_FindObjectsInit(session, tmpl, 2)) != CKR_OK ||
        (rv = f->C_FindObjects(session, &key, 1, &found)) != CKR_OK ||
        (rv = f->C_FindObjectsFinal(session)) != CKR_OK)
        return rv;
    if (found != 1)
        return CKR_KEY_HANDLE_INVALID;
    len = sizeof signature;
    if ((rv = f->C_SignInit(session, &mech, key)) != CKR_OK ||
        (rv = f->C_Sign(session, digest, sizeof digest, signature, &len)) != CKR_OK)
        return rv;
    printf("signature_len=%lu\n", len);
    return f->C_CloseSession(session);
}

static CK_RV random_bytes(void)
{
    CK_SESSION_HANDLE session;
    CK_BYTE bytes[16];
    CK_RV rv;
    if ((rv = f->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &session)) != CKR_OK ||
        (rv = f->C_GenerateRandom(session, bytes, sizeof bytes)) != CKR_OK)
        return rv;
    return f->C_CloseSession(session);
}

static int fork_child(void)
{
    CK_RV rv;
    list("child_before");
    rv = f->C_Initialize(NULL);
    printf("step=child_init rv=0x%lx\n", rv);
    list("child_after");
    f->C_Finalize(NULL);
    fflush(stdout);
    return rv == CKR_OK ? 0 : 1;
}

static CK_RV race_rv = CKR_OK;
static pthread_mutex_t race_lock = PTHREAD_MUTEX_INITIALIZER;

static void note(CK_RV rv)
{
    pthread_mutex_lock(&race_lock);
    if (rv != CKR_OK && race_rv == CKR_OK)
        race_rv = rv;
    pthread_mutex_unlock(&race_lock);
}

static void *ask_info(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++) {
        CK_SLOT_INFO slot;
        CK_TOKEN_INFO token;
        CK_ULONG count = 0;
        note(f->C_GetSlotList(CK_TRUE, NULL, &count));
        note(f->C_GetSlotInfo(0, &slot));
        note(f->C_GetTokenInfo(0, &token));
    }
    return NULL;
}

static void *search(void *arg)
{
    CK_SESSION_HANDLE session;
    CK_RV rv = f->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &session);
    (void)arg;
    note(rv);
    if (rv == CKR_OK) {
        note(f->C_FindObjectsInit(session, NULL, 0));
        note(f->C_FindObjectsFinal(session));
        note(f->C_CloseSession(session));
    }
    return NULL;
}

int main(int argc, char **argv)
{
    void *lib;
    CK_C_GetFunctionList get;
    CK_C_INITIALIZE_ARGS args = {0};
    CK_RV rv;
    if (argc < 3)
        return 2;
    if (!(lib = dlopen(argv[1], RTLD_NOW))) {
        fprintf(stderr, "%s\n", dlerror());
        return 2;
    }
    get = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
    if (!get || get(&f) != CKR_OK)
        return 2;
    args.flags = CKF_OS_LOCKING_OK;
    args.pReserved = getenv("LIGHT_HOST_RESERVED"); /* a config path, as hosts may pass one */
    rv = f->C_Initialize(&args);
    printf("step=init rv=0x%lx python=%d\n", rv, python_running());
    if (rv != CKR_OK)
        return 1;
    if (strcmp(argv[2], "list") == 0) {
        list("list");
    } else if (strcmp(argv[2], "sign") == 0 && argc == 5) {
        list("list");
        rv = sign(argv[3], argv[4]);
        printf("step=sign rv=0x%lx python=%d\n", rv, python_running());
    } else if (strcmp(argv[2], "random") == 0) {
        list("list");
        rv = random_bytes();
        printf("step=random rv=0x%lx python=%d\n", rv, python_running());
    } else if (strcmp(argv[2], "fork") == 0) {
        int status;
        pid_t child;
        fflush(stdout);
        if ((child = fork()) == 0)
            _exit(fork_child());
        waitpid(child, &status, 0);
        printf("step=child_exit status=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        list("parent");
    } else if (strcmp(argv[2], "event") == 0) {
        CK_SLOT_INFO slot;
        CK_SLOT_ID which = 99;
        char line[16];
        rv = f->C_GetSlotInfo(0, &slot);
        printf("step=seen rv=0x%lx present=%d python=%d\n", rv,
               (slot.flags & CKF_TOKEN_PRESENT) != 0, python_running());
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin))
            return 2;
        rv = f->C_WaitForSlotEvent(CKF_DONT_BLOCK, &which, NULL);
        printf("step=event rv=0x%lx slot=%lu python=%d\n", rv, which, python_running());
    } else if (strcmp(argv[2], "race") == 0 && argc == 4) {
        int n = atoi(argv[3]);
        pthread_t threads[17];
        if (n < 1 || n > 16)
            return 2;
        for (int i = 0; i < n; i++)
            pthread_create(&threads[i], NULL, ask_info, NULL);
        pthread_create(&threads[n], NULL, search, NULL);
        for (int i = 0; i <= n; i++)
            pthread_join(threads[i], NULL);
        printf("step=race rv=0x%lx python=%d\n", race_rv, python_running());
    } else {
        return 2;
    }
    rv = f->C_Finalize(NULL);
    printf("step=finalize rv=0x%lx\n", rv);
    return 0;
}
