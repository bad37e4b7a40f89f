/* A C host that hammers the module from 8 threads: sessions, login/logout, find, attributes.
 * Prints one line: "ops=N errors=E sessions_left=S". Usage: threads_host MODULE PIN SECONDS */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pkcs11.h"

static CK_FUNCTION_LIST_PTR f;
static const char *pin;
static int seconds;
static long ops[8], errors[8];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void check(int t, CK_RV rv, const char *what, CK_RV allowed) {
    ops[t]++;
    if (rv != CKR_OK && rv != allowed) {
        errors[t]++;
        fprintf(stderr, "thread %d: %s -> 0x%lx\n", t, what, rv);
    }
}

static void *worker(void *arg) {
    int t = (int)(long)arg;
    double end = now() + seconds;
    while (now() < end) {
        CK_SESSION_HANDLE s;
        CK_RV rv = f->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
        check(t, rv, "C_OpenSession", CKR_OK);
        if (rv != CKR_OK) continue;
        if (t % 2 == 0)
            check(t, f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)), "C_Login",
                  CKR_USER_ALREADY_LOGGED_IN);
        CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
        CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}};
        check(t, f->C_FindObjectsInit(s, tmpl, 1), "C_FindObjectsInit", CKR_OK);
        CK_OBJECT_HANDLE objs[16];
        CK_ULONG n = 0;
        check(t, f->C_FindObjects(s, objs, 16, &n), "C_FindObjects", CKR_OK);
        check(t, f->C_FindObjectsFinal(s), "C_FindObjectsFinal", CKR_OK);
        for (CK_ULONG i = 0; i < n; i++) {
            char label[64];
            CK_ATTRIBUTE a[] = {{CKA_LABEL, label, sizeof label}};
            check(t, f->C_GetAttributeValue(s, objs[i], a, 1), "C_GetAttributeValue", CKR_OK);
        }
        if (t % 2 == 0)
            check(t, f->C_Logout(s), "C_Logout", CKR_USER_NOT_LOGGED_IN);
        check(t, f->C_CloseSession(s), "C_CloseSession", CKR_OK);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    pin = argv[2];
    seconds = atoi(argv[3]);
    void *lib = dlopen(argv[1], RTLD_NOW);
    if (!lib) { fprintf(stderr, "%s\n", dlerror()); return 2; }
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
    if (get(&f) != CKR_OK) return 2;
    CK_C_INITIALIZE_ARGS args = {0};
    args.flags = CKF_OS_LOCKING_OK;
    CK_RV rv = f->C_Initialize(&args);
    if (rv != CKR_OK) { fprintf(stderr, "C_Initialize 0x%lx\n", rv); return 2; }
    pthread_t th[8];
    for (long i = 0; i < 8; i++) pthread_create(&th[i], NULL, worker, (void *)i);
    long total = 0, errs = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        total += ops[i];
        errs += errors[i];
    }
    CK_TOKEN_INFO info;
    rv = f->C_GetTokenInfo(0, &info);
    printf("ops=%ld errors=%ld sessions_left=%lu tokeninfo=0x%lx\n", total, errs, info.ulSessionCount, rv);
    f->C_Finalize(NULL);
    return 0;
}
