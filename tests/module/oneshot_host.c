/* A scripted PKCS#11 host for the one-shot tests (issue 15) and the benchmark's per-call
 * timing: it loads the module with dlopen, as pkcs11-tool does, runs the steps given on the
 * command line and prints one line per PKCS#11 call: the function, its return code, every
 * output (structures as hex of their bytes, lengths, handles, attribute values), and "py=1" when
 * CPython is initialised in the process after the call (Py_IsInitialized, looked up in the
 * process's global scope where the loader puts libpython; absent or 0 is "py=0").
 *
 *   oneshot_host MODULE [--time] STEP...
 *
 * Steps (an argument each):
 *   init               C_Initialize (CKF_OS_LOCKING_OK)
 *   info               C_GetInfo
 *   slots              C_GetSlotList: the count of all slots, of present ones, then the list
 *   slot, token        C_GetSlotInfo, C_GetTokenInfo of the first slot of the list (else 0)
 *   mechs              C_GetMechanismList (size query, then the list), C_GetMechanismInfo of each
 *   open               C_OpenSession (CKF_SERIAL_SESSION)
 *   login:PIN          C_Login as CKU_USER
 *   find:HEXID         C_FindObjectsInit (CKO_PRIVATE_KEY, CKA_ID), C_FindObjects, ...Final;
 *                      the first handle found is the key the next steps use
 *   label:TEXT         the same with CKA_LABEL instead of CKA_ID (`pkcs11-tool --label`)
 *   cert:HEXID         the same for CKO_CERTIFICATE (`pkcs11-tool --read-object --type cert`);
 *                      the next steps use the certificate
 *   idlabel:HEXID:TEXT the same with both, CKA_ID first (`pkcs11-tool --id --label`)
 *   attrs              C_GetAttributeValue of the key: each attribute's size query, then value
 *   sign:ecdsa|rsa     C_SignInit (CKM_ECDSA or CKM_RSA_PKCS), C_Sign size query, C_Sign of a
 *                      32-byte digest
 *   decrypt:HEX        C_DecryptInit (CKM_RSA_PKCS), C_Decrypt size query, C_Decrypt of HEX
 *   logout, close, final   C_Logout, C_CloseSession, C_Finalize
 *   fork               fork(): the child runs the steps up to "parent" (or the end) and exits
 *                      with 0; the parent waits, prints the child's exit status, and goes on
 *                      after "parent"
 *   parent             where the parent resumes after a fork
 *   threads:N ... join the steps in between run in N threads at once, each with its own session
 *                      and key; each thread's lines are printed after the join, in thread order,
 *                      prefixed "tI "
 *
 * With --time each line also gets "us=" (the call's wall time), for the benchmark's profile;
 * the tests never pass it. Exit status: 0 when the script ran (whatever the return codes),
 * 2 for a usage error or a module that cannot be loaded.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pkcs11.h"

#define MAX_STEPS 128
#define MAX_THREADS 16
#define OUT_SIZE 65536

static CK_FUNCTION_LIST_PTR f;
static int timing;
static const char *process_prefix = ""; /* "child " in a forked child */

/* One thread's script state and its output (buffered so threads print in order). */
struct run {
    char *out;
    size_t used;
    CK_SESSION_HANDLE session;
    CK_OBJECT_HANDLE key;
    struct timespec started;
};

static int python_running(void)
{
    int (*initialized)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "Py_IsInitialized");
    return initialized ? initialized() : 0;
}

static void put(struct run *r, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (r->used >= OUT_SIZE)
        return;
    va_start(ap, fmt);
    n = vsnprintf(r->out + r->used, OUT_SIZE - r->used, fmt, ap);
    va_end(ap);
    if (n > 0)
        r->used += (size_t)n < OUT_SIZE - r->used ? (size_t)n : OUT_SIZE - r->used;
}

static void begin(struct run *r, const char *call)
{
    put(r, "%s", call);
    clock_gettime(CLOCK_MONOTONIC, &r->started);
}

/* The outputs of a call, formatted after it returned, so the timing excludes printing. */
struct outputs {
    char text[8192];
    size_t used;
};

/* Ends a call's line: its return code, its outputs (which it empties for the next call), the
 * time with --time, and whether an interpreter runs. */
static void end(struct run *r, CK_RV rv, struct outputs *o)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    put(r, " rv=0x%lx%s", rv, o ? o->text : "");
    if (o) {
        o->used = 0;
        o->text[0] = 0;
    }
    if (timing)
        put(r, " us=%.0f", (now.tv_sec - r->started.tv_sec) * 1e6 +
                               (now.tv_nsec - r->started.tv_nsec) / 1e3);
    put(r, " py=%d\n", python_running());
}

static void add(struct outputs *o, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (o->used >= sizeof o->text)
        return;
    va_start(ap, fmt);
    n = vsnprintf(o->text + o->used, sizeof o->text - o->used, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->used += (size_t)n < sizeof o->text - o->used ? (size_t)n : sizeof o->text - o->used;
}

static void add_hex(struct outputs *o, const char *name, const void *data, size_t n)
{
    add(o, " %s=", name);
    for (size_t i = 0; i < n; i++)
        add(o, "%02x", ((const unsigned char *)data)[i]);
}

static CK_SLOT_ID first_slot(void)
{
    CK_SLOT_ID slots[8];
    CK_ULONG count = 8;
    return f->C_GetSlotList(CK_FALSE, slots, &count) == CKR_OK && count ? slots[0] : 0;
}

static void step_init(struct run *r)
{
    CK_C_INITIALIZE_ARGS args = {0};
    CK_RV rv;
    args.flags = CKF_OS_LOCKING_OK;
    begin(r, "C_Initialize");
    rv = f->C_Initialize(&args);
    end(r, rv, NULL);
}

static void step_info(struct run *r)
{
    CK_INFO info;
    struct outputs o = {0};
    CK_RV rv;
    memset(&info, 0, sizeof info); /* the padding is printed too */
    begin(r, "C_GetInfo");
    rv = f->C_GetInfo(&info);
    if (rv == CKR_OK)
        add_hex(&o, "info", &info, sizeof info);
    end(r, rv, &o);
}

static void step_slots(struct run *r)
{
    CK_SLOT_ID slots[64];
    CK_ULONG count = 0;
    struct outputs o = {0};
    CK_RV rv;
    begin(r, "C_GetSlotList(all,NULL)");
    rv = f->C_GetSlotList(CK_FALSE, NULL, &count);
    add(&o, " count=%lu", count);
    end(r, rv, &o);
    count = 0;
    begin(r, "C_GetSlotList(present,NULL)");
    rv = f->C_GetSlotList(CK_TRUE, NULL, &count);
    add(&o, " count=%lu", count);
    end(r, rv, &o);
    count = 64;
    begin(r, "C_GetSlotList(all)");
    rv = f->C_GetSlotList(CK_FALSE, slots, &count);
    add(&o, " count=%lu", count);
    for (CK_ULONG i = 0; rv == CKR_OK && i < count; i++)
        add(&o, "%s%lu", i ? "," : " slots=", slots[i]);
    end(r, rv, &o);
}

static void step_slot(struct run *r)
{
    CK_SLOT_INFO info;
    CK_SLOT_ID slot = first_slot();
    struct outputs o = {0};
    CK_RV rv;
    memset(&info, 0, sizeof info);
    begin(r, "C_GetSlotInfo");
    rv = f->C_GetSlotInfo(slot, &info);
    if (rv == CKR_OK)
        add_hex(&o, "slot", &info, sizeof info);
    end(r, rv, &o);
}

static void step_token(struct run *r)
{
    CK_TOKEN_INFO info;
    CK_SLOT_ID slot = first_slot();
    struct outputs o = {0};
    CK_RV rv;
    memset(&info, 0, sizeof info);
    begin(r, "C_GetTokenInfo");
    rv = f->C_GetTokenInfo(slot, &info);
    if (rv == CKR_OK)
        add_hex(&o, "token", &info, sizeof info);
    end(r, rv, &o);
}

static void step_mechs(struct run *r)
{
    CK_MECHANISM_TYPE mechs[256];
    CK_ULONG count = 0;
    CK_SLOT_ID slot = first_slot();
    struct outputs o = {0};
    CK_RV rv;
    begin(r, "C_GetMechanismList(NULL)");
    rv = f->C_GetMechanismList(slot, NULL, &count);
    add(&o, " count=%lu", count);
    end(r, rv, &o);
    count = 256;
    begin(r, "C_GetMechanismList");
    rv = f->C_GetMechanismList(slot, mechs, &count);
    add(&o, " count=%lu", count);
    for (CK_ULONG i = 0; rv == CKR_OK && i < count; i++)
        add(&o, "%s%lx", i ? "," : " mechs=", mechs[i]);
    end(r, rv, &o);
    for (CK_ULONG i = 0; rv == CKR_OK && i < count; i++) {
        CK_MECHANISM_INFO info;
        CK_RV irv;
        char name[48];
        memset(&info, 0, sizeof info);
        snprintf(name, sizeof name, "C_GetMechanismInfo(%lx)", mechs[i]);
        begin(r, name);
        irv = f->C_GetMechanismInfo(slot, mechs[i], &info);
        if (irv == CKR_OK)
            add(&o, " min=%lu max=%lu flags=%lx", info.ulMinKeySize, info.ulMaxKeySize,
                info.flags);
        end(r, irv, &o);
    }
}

static void step_open(struct run *r)
{
    struct outputs o = {0};
    CK_RV rv;
    r->session = CK_INVALID_HANDLE;
    begin(r, "C_OpenSession");
    rv = f->C_OpenSession(first_slot(), CKF_SERIAL_SESSION, NULL, NULL, &r->session);
    add(&o, " session=%lu", r->session);
    end(r, rv, &o);
}

static void step_login(struct run *r, const char *pin)
{
    CK_RV rv;
    begin(r, "C_Login");
    rv = f->C_Login(r->session, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
    end(r, rv, NULL);
}

static int unhex(const char *text, unsigned char *out, size_t size, size_t *n)
{
    size_t len = strlen(text);
    if (len % 2 || len / 2 > size)
        return 0;
    for (size_t i = 0; i < len / 2; i++) {
        unsigned int byte;
        if (sscanf(text + 2 * i, "%2x", &byte) != 1)
            return 0;
        out[i] = (unsigned char)byte;
    }
    *n = len / 2;
    return 1;
}

/* hex_id and label may be NULL: the template has CKA_CLASS and whichever is given. */
static int step_find(struct run *r, CK_OBJECT_CLASS cls, const char *hex_id, const char *label)
{
    unsigned char id[128];
    size_t id_len = 0;
    CK_ATTRIBUTE tmpl[3] = {{CKA_CLASS, &cls, sizeof cls}};
    CK_ULONG n = 1;
    CK_OBJECT_HANDLE found[16];
    CK_ULONG count = 0;
    struct outputs o = {0};
    CK_RV rv;
    if (hex_id) {
        if (!unhex(hex_id, id, sizeof id, &id_len))
            return 0;
        tmpl[n++] = (CK_ATTRIBUTE){CKA_ID, id, id_len};
    }
    if (label)
        tmpl[n++] = (CK_ATTRIBUTE){CKA_LABEL, (void *)label, strlen(label)};
    begin(r, "C_FindObjectsInit");
    rv = f->C_FindObjectsInit(r->session, tmpl, n);
    end(r, rv, NULL);
    begin(r, "C_FindObjects");
    rv = f->C_FindObjects(r->session, found, 16, &count);
    add(&o, " count=%lu", count);
    for (CK_ULONG i = 0; rv == CKR_OK && i < count; i++)
        add(&o, "%s%lu", i ? "," : " handles=", found[i]);
    end(r, rv, &o);
    r->key = rv == CKR_OK && count ? found[0] : CK_INVALID_HANDLE;
    begin(r, "C_FindObjectsFinal");
    rv = f->C_FindObjectsFinal(r->session);
    end(r, rv, NULL);
    return 1;
}

static int step_find_id_label(struct run *r, const char *arg)
{
    char hex[260];
    const char *colon = strchr(arg, ':');
    if (!colon || (size_t)(colon - arg) >= sizeof hex)
        return 0;
    memcpy(hex, arg, colon - arg);
    hex[colon - arg] = 0;
    return step_find(r, CKO_PRIVATE_KEY, hex, colon + 1);
}

/* What pkcs11-tool and the engines read of a private key (and of a certificate), public and
 * sensitive alike. */
static const CK_ATTRIBUTE_TYPE KEY_ATTRIBUTES[] = {
    CKA_CLASS,     CKA_KEY_TYPE,        CKA_ID,          CKA_LABEL,     CKA_TOKEN,
    CKA_PRIVATE,   CKA_SENSITIVE,       CKA_EXTRACTABLE, CKA_SIGN,      CKA_DECRYPT,
    CKA_UNWRAP,    CKA_DERIVE,          CKA_ALWAYS_AUTHENTICATE,        CKA_MODULUS,
    CKA_PUBLIC_EXPONENT, CKA_EC_PARAMS, CKA_EC_POINT,    CKA_VALUE,     CKA_ALLOWED_MECHANISMS,
    CKA_SUBJECT,   CKA_CERTIFICATE_TYPE,
};

static void step_attrs(struct run *r)
{
    size_t n = sizeof KEY_ATTRIBUTES / sizeof KEY_ATTRIBUTES[0];
    for (size_t i = 0; i < n; i++) {
        CK_ATTRIBUTE a = {KEY_ATTRIBUTES[i], NULL, 0};
        unsigned char value[4096];
        struct outputs o = {0};
        char name[48];
        CK_RV rv;
        snprintf(name, sizeof name, "C_GetAttributeValue(%lx,NULL)", a.type);
        begin(r, name);
        rv = f->C_GetAttributeValue(r->session, r->key, &a, 1);
        add(&o, " len=%ld", (long)a.ulValueLen);
        end(r, rv, &o);
        if (rv != CKR_OK || a.ulValueLen == CK_UNAVAILABLE_INFORMATION ||
            a.ulValueLen > sizeof value)
            continue;
        a.pValue = value;
        snprintf(name, sizeof name, "C_GetAttributeValue(%lx)", a.type);
        begin(r, name);
        rv = f->C_GetAttributeValue(r->session, r->key, &a, 1);
        add(&o, " len=%ld", (long)a.ulValueLen);
        if (rv == CKR_OK)
            add_hex(&o, "value", value, a.ulValueLen);
        end(r, rv, &o);
    }
}

static int step_sign(struct run *r, const char *which)
{
    CK_MECHANISM mech = {0, NULL, 0};
    CK_BYTE digest[32], signature[1024];
    CK_ULONG len = 0;
    struct outputs o = {0};
    CK_RV rv;
    if (strcmp(which, "ecdsa") == 0)
        mech.mechanism = CKM_ECDSA;
    else if (strcmp(which, "rsa") == 0)
        mech.mechanism = CKM_RSA_PKCS;
    else
        return 0;
    for (size_t i = 0; i < sizeof digest; i++)
        digest[i] = (CK_BYTE)(i + 1);
    begin(r, "C_SignInit");
    rv = f->C_SignInit(r->session, &mech, r->key);
    end(r, rv, NULL);
    begin(r, "C_Sign(NULL)");
    rv = f->C_Sign(r->session, digest, sizeof digest, NULL, &len);
    add(&o, " len=%lu", len);
    end(r, rv, &o);
    len = sizeof signature;
    begin(r, "C_Sign");
    rv = f->C_Sign(r->session, digest, sizeof digest, signature, &len);
    add(&o, " len=%lu", len);
    if (rv == CKR_OK)
        add_hex(&o, "signature", signature, len);
    end(r, rv, &o);
    return 1;
}

static int step_decrypt(struct run *r, const char *hex)
{
    CK_MECHANISM mech = {CKM_RSA_PKCS, NULL, 0};
    unsigned char in[1024], out[1024];
    size_t in_len;
    CK_ULONG len = 0;
    struct outputs o = {0};
    CK_RV rv;
    if (!unhex(hex, in, sizeof in, &in_len))
        return 0;
    begin(r, "C_DecryptInit");
    rv = f->C_DecryptInit(r->session, &mech, r->key);
    end(r, rv, NULL);
    begin(r, "C_Decrypt(NULL)");
    rv = f->C_Decrypt(r->session, in, in_len, NULL, &len);
    add(&o, " len=%lu", len);
    end(r, rv, &o);
    len = sizeof out;
    begin(r, "C_Decrypt");
    rv = f->C_Decrypt(r->session, in, in_len, out, &len);
    add(&o, " len=%lu", len);
    if (rv == CKR_OK)
        add_hex(&o, "plaintext", out, len);
    end(r, rv, &o);
    return 1;
}

static void step_simple(struct run *r, const char *step)
{
    CK_RV rv;
    if (strcmp(step, "logout") == 0) {
        begin(r, "C_Logout");
        rv = f->C_Logout(r->session);
    } else if (strcmp(step, "close") == 0) {
        begin(r, "C_CloseSession");
        rv = f->C_CloseSession(r->session);
    } else {
        begin(r, "C_Finalize");
        rv = f->C_Finalize(NULL);
    }
    end(r, rv, NULL);
}

/* Runs one step; 0 for a step it does not know. */
static int run_step(struct run *r, const char *step)
{
    if (strcmp(step, "init") == 0)
        step_init(r);
    else if (strcmp(step, "info") == 0)
        step_info(r);
    else if (strcmp(step, "slots") == 0)
        step_slots(r);
    else if (strcmp(step, "slot") == 0)
        step_slot(r);
    else if (strcmp(step, "token") == 0)
        step_token(r);
    else if (strcmp(step, "mechs") == 0)
        step_mechs(r);
    else if (strcmp(step, "open") == 0)
        step_open(r);
    else if (strncmp(step, "login:", 6) == 0)
        step_login(r, step + 6);
    else if (strncmp(step, "find:", 5) == 0)
        return step_find(r, CKO_PRIVATE_KEY, step + 5, NULL);
    else if (strncmp(step, "label:", 6) == 0)
        return step_find(r, CKO_PRIVATE_KEY, NULL, step + 6);
    else if (strncmp(step, "cert:", 5) == 0)
        return step_find(r, CKO_CERTIFICATE, step + 5, NULL);
    else if (strncmp(step, "idlabel:", 8) == 0)
        return step_find_id_label(r, step + 8);
    else if (strcmp(step, "attrs") == 0)
        step_attrs(r);
    else if (strncmp(step, "sign:", 5) == 0)
        return step_sign(r, step + 5);
    else if (strncmp(step, "decrypt:", 8) == 0)
        return step_decrypt(r, step + 8);
    else if (strcmp(step, "logout") == 0 || strcmp(step, "close") == 0 ||
             strcmp(step, "final") == 0)
        step_simple(r, step);
    else
        return 0;
    return 1;
}

static void flush_run(struct run *r, const char *prefix)
{
    char *line = r->out, *next;
    r->out[r->used < OUT_SIZE ? r->used : OUT_SIZE - 1] = 0;
    for (; *line; line = next) {
        next = strchr(line, '\n');
        next = next ? next + 1 : line + strlen(line);
        printf("%s%s%.*s", process_prefix, prefix, (int)(next - line), line);
    }
    r->used = 0;
    fflush(stdout);
}

struct thread_script {
    struct run run;
    char **steps;
    int count;
    int ok;
};

static void *thread_main(void *arg)
{
    struct thread_script *t = arg;
    t->ok = 1;
    for (int i = 0; i < t->count; i++)
        t->ok &= run_step(&t->run, t->steps[i]);
    return NULL;
}

static int run_threads(struct run *main_run, int n, char **steps, int count)
{
    struct thread_script scripts[MAX_THREADS];
    pthread_t threads[MAX_THREADS];
    int ok = 1;
    char prefix[16];
    flush_run(main_run, "");
    for (int i = 0; i < n; i++) {
        scripts[i] = (struct thread_script){{malloc(OUT_SIZE), 0, main_run->session,
                                             main_run->key, {0, 0}},
                                            steps, count, 0};
        if (!scripts[i].run.out)
            return 0;
        pthread_create(&threads[i], NULL, thread_main, &scripts[i]);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(threads[i], NULL);
        snprintf(prefix, sizeof prefix, "t%d ", i);
        flush_run(&scripts[i].run, prefix);
        ok &= scripts[i].ok;
        free(scripts[i].run.out);
    }
    return ok;
}

/* Runs steps[from..to); returns 0 on a usage error. */
static int run_script(struct run *r, char **steps, int from, int to)
{
    for (int i = from; i < to; i++) {
        if (strcmp(steps[i], "fork") == 0) {
            int resume = i + 1, status;
            pid_t child;
            while (resume < to && strcmp(steps[resume], "parent") != 0)
                resume++;
            flush_run(r, "");
            if ((child = fork()) == 0) {
                process_prefix = "child ";
                _exit(run_script(r, steps, i + 1, resume) ? 0 : 2);
            }
            waitpid(child, &status, 0);
            put(r, "child_exit status=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
            i = resume; /* the loop's increment steps over "parent" */
        } else if (strncmp(steps[i], "threads:", 8) == 0) {
            int n = atoi(steps[i] + 8), join = i + 1;
            while (join < to && strcmp(steps[join], "join") != 0)
                join++;
            if (n < 1 || n > MAX_THREADS || join == to ||
                !run_threads(r, n, steps + i + 1, join - i - 1))
                return 0;
            i = join;
        } else if (strcmp(steps[i], "parent") == 0) {
            return 1; /* the end of a child's part when no fork came before it */
        } else if (!run_step(r, steps[i])) {
            fprintf(stderr, "unknown step: %s\n", steps[i]);
            return 0;
        }
        flush_run(r, "");
    }
    return 1;
}

int main(int argc, char **argv)
{
    static char out[OUT_SIZE];
    struct run r = {out, 0, CK_INVALID_HANDLE, CK_INVALID_HANDLE, {0, 0}};
    CK_C_GetFunctionList get;
    void *lib;
    int first = 2;
    if (argc < 3 || argc > MAX_STEPS) {
        fprintf(stderr, "usage: %s MODULE [--time] STEP...\n", argv[0]);
        return 2;
    }
    if (strcmp(argv[2], "--time") == 0) {
        timing = 1;
        first = 3;
    }
    begin(&r, "dlopen");
    if (!(lib = dlopen(argv[1], RTLD_NOW))) {
        fprintf(stderr, "%s\n", dlerror());
        return 2;
    }
    get = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
    if (!get || get(&f) != CKR_OK)
        return 2;
    end(&r, CKR_OK, NULL);
    flush_run(&r, "");
    return run_script(&r, argv, first, argc) ? 0 : 2;
}
