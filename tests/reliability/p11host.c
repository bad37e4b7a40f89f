/* A C host for the reliability tests: it loads the real module with dlopen, as signing services
 * do, and reports what happened as counts on stdout ("key=value" words, one report per line).
 *
 *   p11host load   MODULE PIN KEY_ID THREADS SECONDS SLOW_MS
 *       THREADS threads sign with CKM_ECDSA on the EC key with CKA_ID KEY_ID for SECONDS;
 *       prints "attempted= ok= failed= slow= max_ms=", one "rv=0x.. count=" line per failure
 *       code, one "thread= attempted= max_ms= max_at_ms=" line per thread (its slowest call and
 *       when that started, since the threads started), and "timeline=" with the
 *       signatures completed in each 100 ms since the threads started (comma-separated).
 *       A call is "slow" when it took >= SLOW_MS.
 *   p11host script MODULE PIN KEY_ID
 *       reads commands from stdin, one per line, and answers each with one line:
 *       "sign N" -> "attempted= ok= failed= max_ms= last_rv=0x..";  "login PIN" / "logout" ->
 *       "rv=0x..";  "quit". Used when the test changes the world between calls.
 *   p11host fork   MODULE PIN KEY_ID N reinit|noreinit [LOGGERS]
 *       initialises, signs, then forks N children one after another; each child either calls
 *       C_Initialize again and signs, or (noreinit) makes calls without re-initialising. Prints
 *       the child results and the parent's thread and descriptor counts before and after.
 *       LOGGERS threads sign and have a C_SignInit refused (one log line each) meanwhile.
 *   p11host forkfail MODULE PIN KEY_ID N BAD_CONFIG THREADS
 *       never initialised: THREADS threads call C_Initialize with the configuration file
 *       BAD_CONFIG (pReserved), which fails with a log line, while N children are forked one
 *       after another; each child's C_Initialize with BAD_CONFIG must fail too (not hang), and
 *       then it initialises with the environment's configuration and signs.
 *   p11host initfork MODULE N
 *       N times: C_Initialize and fork at once, while the module's thread sets its connections
 *       up; the child initialises and lists the present slots (its own TLS connection), the
 *       parent finalises. Prints "forks= children_ok= children_failed=".
 *   p11host quick  MODULE finalize|exit
 *       C_Initialize, then C_Finalize at once (finalize) or none (exit); returns 0.
 *   p11host mixed  MODULE PIN KEY_ID THREADS SECONDS
 *       THREADS threads mix sign, find, get attribute, open/close session, login/logout;
 *       samples RSS and fd count at 1/3 and at the end of the run.
 *   p11host flow   MODULE PIN WRONG_PIN KEY_ID
 *       the secrets scenario: wrong PIN, right PIN, sign, a refused sign, logout.
 *   p11host inits  MODULE N
 *       C_Initialize / slot list / C_Finalize N times; prints each rv, the present slots and
 *       the descriptors open after the cycle.
 *   p11host abifuzz MODULE PIN KEY_ID SECONDS SEED
 *       random templates, mechanisms and parameters into the marshalling entry points; every
 *       answer must be a CKR value the function may return. Prints "calls= bad=".
 */
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pkcs11.h"

static CK_FUNCTION_LIST_PTR f;
static const char *pin;
static const char *key_id;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void load_module(const char *path) {
    void *lib = dlopen(path, RTLD_NOW);
    if (!lib) { fprintf(stderr, "%s\n", dlerror()); exit(2); }
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
    if (!get || get(&f) != CKR_OK) { fprintf(stderr, "no function list\n"); exit(2); }
}

static CK_RV initialize_with(const char *config) {
    CK_C_INITIALIZE_ARGS args = {0};
    args.flags = CKF_OS_LOCKING_OK;
    args.pReserved = (void *)config;
    return f->C_Initialize(&args);
}

static CK_RV initialize(void) {
    return initialize_with(NULL);
}

static CK_RV open_session(CK_SESSION_HANDLE *s) {
    return f->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, s);
}

static CK_RV login(CK_SESSION_HANDLE s, const char *p) {
    CK_RV rv = f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)p, strlen(p));
    return rv == CKR_USER_ALREADY_LOGGED_IN ? CKR_OK : rv;
}

/* The object of class cls whose CKA_ID is key_id, or 0. */
static CK_OBJECT_HANDLE find_object(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls) {
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, (void *)key_id, strlen(key_id)}};
    CK_OBJECT_HANDLE h = 0;
    CK_ULONG n = 0;
    if (f->C_FindObjectsInit(s, t, 2) != CKR_OK) return 0;
    f->C_FindObjects(s, &h, 1, &n);
    f->C_FindObjectsFinal(s);
    return n == 1 ? h : 0;
}

static CK_OBJECT_HANDLE find_key(CK_SESSION_HANDLE s) {
    return find_object(s, CKO_PRIVATE_KEY);
}

static CK_RV sign_once(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key) {
    CK_MECHANISM m = {CKM_ECDSA, NULL, 0};
    unsigned char digest[32], sig[256];
    CK_ULONG len = sizeof sig;
    memset(digest, 0x5a, sizeof digest);
    CK_RV rv = f->C_SignInit(s, &m, key);
    if (rv != CKR_OK) return rv;
    return f->C_Sign(s, digest, sizeof digest, sig, &len);
}

/* Ready-to-sign session: opened, logged in, key found. Exits on failure (set-up, not the test). */
static void ready(CK_SESSION_HANDLE *s, CK_OBJECT_HANDLE *key) {
    CK_RV rv = open_session(s);
    if (rv == CKR_OK) rv = login(*s, pin);
    if (rv != CKR_OK) { fprintf(stderr, "session/login 0x%lx\n", rv); exit(3); }
    *key = find_key(*s);
    if (!*key) { fprintf(stderr, "key %s not found\n", key_id); exit(3); }
}

/* ------------------------------------------------------------------ load */

#define MAX_THREADS 128
#define MAX_CODES 16

struct counts {
    long attempted, ok, failed, slow;
    double max_s, max_at;  /* the slowest call, and when it started (seconds since g_started) */
    CK_RV codes[MAX_CODES];
    long code_count[MAX_CODES];
};

#define BUCKET_MS 100
#define MAX_BUCKETS 3000

static int g_threads, g_seconds, g_slow_ms;
static struct counts g_counts[MAX_THREADS];
static long g_timeline[MAX_BUCKETS];  /* successful signatures per BUCKET_MS since g_started */

static double g_started;

static void count(struct counts *c, CK_RV rv, double took) {
    c->attempted++;
    if (took > c->max_s) {
        c->max_s = took;
        c->max_at = now() - took - g_started;
    }
    if (took * 1000 >= g_slow_ms) c->slow++;
    if (rv == CKR_OK) { c->ok++; return; }
    c->failed++;
    for (int i = 0; i < MAX_CODES; i++) {
        if (c->code_count[i] == 0 || c->codes[i] == rv) {
            c->codes[i] = rv;
            c->code_count[i]++;
            return;
        }
    }
}

static void *load_worker(void *arg) {
    struct counts *c = arg;
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE key;
    ready(&s, &key);
    double end = now() + g_seconds;
    while (now() < end) {
        double t0 = now();
        CK_RV rv = sign_once(s, key);
        double t1 = now();
        count(c, rv, t1 - t0);
        long bucket = (long)((t1 - g_started) * 1000 / BUCKET_MS);
        if (rv == CKR_OK && bucket >= 0 && bucket < MAX_BUCKETS)
            __atomic_add_fetch(&g_timeline[bucket], 1, __ATOMIC_RELAXED);
    }
    f->C_CloseSession(s);
    return NULL;
}

static void report_threads(struct counts *all, int n) {
    for (int i = 0; i < n; i++)
        printf("thread=%d attempted=%ld max_ms=%.0f max_at_ms=%.0f\n", i, all[i].attempted,
               all[i].max_s * 1000, all[i].max_at * 1000);
    long last = (long)((now() - g_started) * 1000 / BUCKET_MS);
    printf("timeline=");
    for (long b = 0; b <= last && b < MAX_BUCKETS; b++) printf(b ? ",%ld" : "%ld", g_timeline[b]);
    printf("\n");
}

static void report(struct counts *all, int n) {
    struct counts t = {0};
    for (int i = 0; i < n; i++) {
        t.attempted += all[i].attempted;
        t.ok += all[i].ok;
        t.failed += all[i].failed;
        t.slow += all[i].slow;
        if (all[i].max_s > t.max_s) t.max_s = all[i].max_s;
    }
    printf("attempted=%ld ok=%ld failed=%ld slow=%ld max_ms=%.0f\n", t.attempted, t.ok, t.failed,
           t.slow, t.max_s * 1000);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < MAX_CODES && all[i].code_count[j]; j++)
            printf("rv=0x%lx count=%ld thread=%d\n", all[i].codes[j], all[i].code_count[j], i);
}

static int run_load(void) {
    pthread_t th[MAX_THREADS];
    g_started = now();
    for (int i = 0; i < g_threads; i++) pthread_create(&th[i], NULL, load_worker, &g_counts[i]);
    printf("started\n");
    fflush(stdout);
    for (int i = 0; i < g_threads; i++) pthread_join(th[i], NULL);
    report(g_counts, g_threads);
    report_threads(g_counts, g_threads);
    return 0;
}

/* ------------------------------------------------------------------ script */

static int run_script(void) {
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE key;
    ready(&s, &key);
    char line[256];
    printf("ready\n");
    fflush(stdout);
    while (fgets(line, sizeof line, stdin)) {
        int n;
        char arg[200];
        if (sscanf(line, "sign %d", &n) == 1) {
            struct counts c = {0};
            CK_RV last = CKR_OK;
            for (int i = 0; i < n; i++) {
                double t0 = now();
                last = sign_once(s, key);
                count(&c, last, now() - t0);
            }
            printf("attempted=%ld ok=%ld failed=%ld max_ms=%.0f last_rv=0x%lx\n", c.attempted, c.ok,
                   c.failed, c.max_s * 1000, last);
        } else if (sscanf(line, "login %199s", arg) == 1) {
            printf("rv=0x%lx\n", f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)arg, strlen(arg)));
        } else if (strncmp(line, "logout", 6) == 0) {
            printf("rv=0x%lx\n", f->C_Logout(s));
        } else if (strncmp(line, "quit", 4) == 0) {
            break;
        } else {
            printf("unknown command\n");
        }
        fflush(stdout);
    }
    f->C_Finalize(NULL);
    return 0;
}

/* ------------------------------------------------------------------ fork */

static int count_dir(const char *path) {
    DIR *d = opendir(path);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - (strcmp(path, "/proc/self/fd") == 0);  /* the directory's own descriptor */
}

static int child_reinit(void) {
    /* The standard: a child must C_Initialize again; everything it inherited is gone. */
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE key;
    CK_RV rv = initialize();
    if (rv != CKR_OK) return 10;
    ready(&s, &key);
    rv = sign_once(s, key);
    f->C_Finalize(NULL);
    return rv == CKR_OK ? 0 : 11;
}

static int child_noreinit(CK_SESSION_HANDLE inherited, CK_OBJECT_HANDLE key) {
    /* Without C_Initialize the child is not initialised: every call says so, none hangs ... */
    CK_SLOT_ID slots[4];
    CK_ULONG n = 4;
    if (sign_once(inherited, key) != CKR_CRYPTOKI_NOT_INITIALIZED) return 20;
    if (f->C_GetSlotList(CK_FALSE, slots, &n) != CKR_CRYPTOKI_NOT_INITIALIZED) return 21;
    /* ... but C_Finalize, which ends what it inherited (finalize-then-initialise hosts), once. */
    if (f->C_Finalize(NULL) != CKR_OK) return 22;
    if (f->C_Finalize(NULL) != CKR_CRYPTOKI_NOT_INITIALIZED) return 24;
    /* ... and it can still initialise and work afterwards. */
    return child_reinit() ? 23 : 0;
}

/* Waits for the child, at most 20 s (a hang is a failure, not a stuck test); 1 if it exited 0. */
static int child_succeeded(pid_t pid, int i) {
    int status = 0;
    double deadline = now() + 20;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (now() > deadline) { kill(pid, 9); waitpid(pid, &status, 0); break; }
        usleep(1000);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 1;
    fprintf(stderr, "child %d: status 0x%x\n", i, status);
    return 0;
}

static volatile int g_stop;
static int g_loggers_ready;
/* Between two log lines of a logging thread: often enough that forks land in the middle of
 * one, without taking the CPU the children need. */
#define LOGGER_PAUSE_US 500

/* Signs, and has a C_SignInit refused (a mechanism the EC key lacks: one log line), until
 * g_stop. The counts are the thread's own. */
static void *logger_worker(void *arg) {
    struct counts *c = arg;
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE key;
    CK_MECHANISM rsa = {CKM_SHA256_RSA_PKCS, NULL, 0};
    ready(&s, &key);
    count(c, sign_once(s, key), 0);
    __atomic_add_fetch(&g_loggers_ready, 1, __ATOMIC_RELEASE);
    while (!g_stop) {
        count(c, sign_once(s, key), 0);
        if (f->C_SignInit(s, &rsa, key) == CKR_OK) count(c, CKR_GENERAL_ERROR, 0);
        usleep(LOGGER_PAUSE_US);
    }
    f->C_CloseSession(s);
    return NULL;
}

static int run_fork(int forks, int reinit, int loggers) {
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE key;
    pthread_t th[MAX_THREADS];
    ready(&s, &key);
    /* Warm up: connections open, and a down instance (if the slot has one) starts the probe
     * thread, so the counts below include every thread the module makes. */
    for (int i = 0; i < 4; i++)
        if (sign_once(s, key) != CKR_OK) { fprintf(stderr, "parent sign\n"); return 3; }
    for (int i = 0; i < loggers; i++) pthread_create(&th[i], NULL, logger_worker, &g_counts[i]);
    /* Counted once the loggers have their sessions and connections. */
    while (__atomic_load_n(&g_loggers_ready, __ATOMIC_ACQUIRE) < loggers) usleep(1000);
    int threads0 = count_dir("/proc/self/task"), fds0 = count_dir("/proc/self/fd");
    int ok = 0, parent_ok = 0;
    for (int i = 0; i < forks; i++) {
        pid_t pid = fork();
        if (pid == 0) _exit(reinit ? child_reinit() : child_noreinit(s, key));
        ok += child_succeeded(pid, i);
        if (sign_once(s, key) == CKR_OK) parent_ok++;
    }
    int threads1 = count_dir("/proc/self/task"), fds1 = count_dir("/proc/self/fd");
    g_stop = 1;
    for (int i = 0; i < loggers; i++) pthread_join(th[i], NULL);
    printf("forks=%d children_ok=%d children_failed=%d parent_ok=%d threads_before=%d threads_after=%d "
           "fds_before=%d fds_after=%d\n", forks, ok, forks - ok, parent_ok, threads0, threads1,
           fds0, fds1);
    report(g_counts, loggers);
    f->C_Finalize(NULL);
    return 0;
}

/* ------------------------------------------------------------------ initfork */

static int child_lists_slots(void) {
    CK_SLOT_ID slots[4];
    CK_ULONG n = 4;
    if (initialize() != CKR_OK) return 40;
    if (f->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK || n != 1) return 41;
    return f->C_Finalize(NULL) == CKR_OK ? 0 : 42;
}

static int run_initfork(int forks) {
    int ok = 0;
    for (int i = 0; i < forks; i++) {
        if (initialize() != CKR_OK) { fprintf(stderr, "C_Initialize\n"); return 2; }
        pid_t pid = fork();
        if (pid == 0) _exit(child_lists_slots());
        ok += child_succeeded(pid, i);
        f->C_Finalize(NULL);
    }
    printf("forks=%d children_ok=%d children_failed=%d\n", forks, ok, forks - ok);
    return 0;
}

/* ------------------------------------------------------------------ forkfail */

static const char *g_bad_config;

static void *failing_init_worker(void *arg) {
    struct counts *c = arg;
    while (!g_stop) {
        count(c, initialize_with(g_bad_config), 0);
        usleep(LOGGER_PAUSE_US);
    }
    return NULL;
}

static int child_after_failures(void) {
    if (initialize_with(g_bad_config) == CKR_OK) return 30;
    return child_reinit();
}

static int run_forkfail(int forks, int threads) {
    pthread_t th[MAX_THREADS];
    int ok = 0;
    for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, failing_init_worker, &g_counts[i]);
    usleep(100000); /* the threads are failing (and logging) before the first fork */
    for (int i = 0; i < forks; i++) {
        pid_t pid = fork();
        if (pid == 0) _exit(child_after_failures());
        ok += child_succeeded(pid, i);
    }
    g_stop = 1;
    for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
    printf("forks=%d children_ok=%d children_failed=%d\n", forks, ok, forks - ok);
    report(g_counts, threads);
    return 0;
}

/* ------------------------------------------------------------------ mixed */

static long rss_kb(void) {
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (fp && fgets(line, sizeof line, fp))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1) break;
    if (fp) fclose(fp);
    return kb;
}

static void *mixed_worker(void *arg) {
    struct counts *c = arg;
    int t = (int)(c - g_counts);
    unsigned seed = t * 7919u + 1;
    double end = now() + g_seconds;
    while (now() < end) {
        CK_SESSION_HANDLE s;
        double t0 = now();
        CK_RV rv = open_session(&s);
        count(c, rv, now() - t0);
        if (rv != CKR_OK) continue;
        for (int k = 0; k < 8 && now() < end; k++) {
            int op = rand_r(&seed) % 5;
            t0 = now();
            if (op == 0) {
                rv = login(s, pin);
            } else if (op == 1) {
                /* Another thread may have logged the token out: both answers are correct. */
                rv = f->C_Logout(s);
                if (rv == CKR_USER_NOT_LOGGED_IN) rv = CKR_OK;
            } else if (op == 2) {
                /* The public key is visible whoever is logged in: this must always work. */
                CK_OBJECT_HANDLE h = find_object(s, CKO_PUBLIC_KEY);
                char label[64];
                unsigned char point[128];
                CK_ATTRIBUTE a[] = {{CKA_LABEL, label, sizeof label}, {CKA_EC_POINT, point, sizeof point}};
                rv = h ? f->C_GetAttributeValue(s, h, a, 2) : CKR_GENERAL_ERROR;
            } else if (op == 3) {
                /* Login state is per token: another thread may just have logged out, which
                 * hides the private key or refuses the signature — both correct answers. */
                CK_OBJECT_HANDLE h = find_key(s);
                rv = h ? sign_once(s, h) : CKR_OK;
                if (rv == CKR_USER_NOT_LOGGED_IN) rv = CKR_OK;
            } else {
                CK_SESSION_INFO info;
                rv = f->C_GetSessionInfo(s, &info);
            }
            count(c, rv, now() - t0);
            if (rv != CKR_OK) fprintf(stderr, "thread %d op %d -> 0x%lx\n", t, op, rv);
        }
        t0 = now();
        count(c, f->C_CloseSession(s), now() - t0);
    }
    return NULL;
}

static int run_mixed(void) {
    pthread_t th[MAX_THREADS];
    for (int i = 0; i < g_threads; i++) pthread_create(&th[i], NULL, mixed_worker, &g_counts[i]);
    /* Two windows: after a third of the run (caches and pools warm), and at the end. */
    usleep((useconds_t)(g_seconds * 1e6 / 3));
    long rss1 = rss_kb();
    int fds1 = count_dir("/proc/self/fd");
    for (int i = 0; i < g_threads; i++) pthread_join(th[i], NULL);
    long rss2 = rss_kb();
    int fds2 = count_dir("/proc/self/fd");
    CK_TOKEN_INFO info;
    CK_RV rv = f->C_GetTokenInfo(0, &info);
    report(g_counts, g_threads);
    printf("rss1_kb=%ld rss2_kb=%ld fds1=%d fds2=%d sessions_left=%lu tokeninfo=0x%lx\n", rss1, rss2,
           fds1, fds2, info.ulSessionCount, rv);
    f->C_Finalize(NULL);
    return 0;
}

/* ------------------------------------------------------------------ flow */

static int run_flow(const char *wrong) {
    CK_SESSION_HANDLE s;
    CK_RV rv = open_session(&s);
    printf("open=0x%lx\n", rv);
    printf("wrong_login=0x%lx\n", f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)wrong, strlen(wrong)));
    printf("login=0x%lx\n", f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)));
    CK_OBJECT_HANDLE key = find_key(s);
    printf("sign=0x%lx\n", sign_once(s, key));
    /* A refused operation: a mechanism the key does not have. */
    CK_MECHANISM m = {CKM_SHA256_RSA_PKCS, NULL, 0};
    printf("refused=0x%lx\n", f->C_SignInit(s, &m, key));
    printf("logout=0x%lx\n", f->C_Logout(s));
    printf("so_wrong_login=0x%lx\n", f->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)wrong, strlen(wrong)));
    f->C_CloseSession(s);
    f->C_Finalize(NULL);
    return 0;
}

/* ------------------------------------------------------------------ inits */

static int run_inits(int n) {
    for (int i = 0; i < n; i++) {
        CK_RV rv = initialize();
        CK_SLOT_ID slots[8];
        CK_ULONG present = 8;
        if (rv == CKR_OK) f->C_GetSlotList(CK_TRUE, slots, &present);
        CK_SESSION_HANDLE s = 0;
        CK_RV open = rv == CKR_OK ? open_session(&s) : rv;
        if (rv == CKR_OK) f->C_Finalize(NULL);
        printf("init=0x%lx present=%lu open=0x%lx fds=%d\n", rv, rv == CKR_OK ? present : 0, open,
               count_dir("/proc/self/fd"));
    }
    return 0;
}

/* ------------------------------------------------------------------ abifuzz */

static unsigned long long rng;
static unsigned rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng >> 11);
}

/* Attribute types worth hitting: the ones the module knows, plus vendor and nonsense ones. */
static const CK_ATTRIBUTE_TYPE ATTRS[] = {
    CKA_CLASS, CKA_TOKEN, CKA_PRIVATE, CKA_LABEL, CKA_VALUE, CKA_KEY_TYPE, CKA_ID, CKA_SIGN,
    CKA_DECRYPT, CKA_MODULUS, CKA_MODULUS_BITS, CKA_PUBLIC_EXPONENT, CKA_EC_PARAMS, CKA_EC_POINT,
    CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_ALWAYS_AUTHENTICATE, CKA_ALLOWED_MECHANISMS,
    CKA_VALUE_LEN, CKA_CERTIFICATE_TYPE, CKA_WRAP_TEMPLATE, CKA_VENDOR_DEFINED, 0x7fffffff,
    (CK_ATTRIBUTE_TYPE)-1,
};
static const CK_MECHANISM_TYPE MECHS[] = {
    CKM_ECDSA, CKM_ECDSA_SHA256, CKM_RSA_PKCS, CKM_SHA256_RSA_PKCS, CKM_RSA_PKCS_PSS,
    CKM_SHA256_RSA_PKCS_PSS, CKM_SHA512_RSA_PKCS_PSS, CKM_EDDSA, CKM_SHA256, CKM_AES_CBC,
    CKM_RSA_PKCS_OAEP, 0x7fffffff, (CK_MECHANISM_TYPE)-1,
};
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Buffers are always as long as the length says: lying about a length is the caller's
 * undefined behaviour, not bad input the module can detect. */
static unsigned char *random_bytes(CK_ULONG n) {
    unsigned char *p = malloc(n ? n : 1);
    for (CK_ULONG i = 0; i < n; i++) p[i] = (unsigned char)rnd();
    return p;
}

static CK_ULONG random_len(void) {
    static const CK_ULONG lens[] = {0, 1, 2, 3, 4, 7, 8, 16, 31, 32, 33, 64, 65, 255, 256, 4096};
    return lens[rnd() % N(lens)];
}

static int n_attrs;
static CK_ATTRIBUTE attrs[8];
static void random_template(int with_null) {
    n_attrs = rnd() % 8;
    for (int i = 0; i < n_attrs; i++) {
        attrs[i].type = ATTRS[rnd() % N(ATTRS)];
        attrs[i].ulValueLen = random_len();
        if (rnd() % 4 == 0 && attrs[i].type == CKA_CLASS) attrs[i].ulValueLen = sizeof(CK_ULONG);
        attrs[i].pValue = (with_null && rnd() % 3 == 0) ? NULL : random_bytes(attrs[i].ulValueLen);
    }
}
static void free_template(void) {
    for (int i = 0; i < n_attrs; i++) free(attrs[i].pValue);
}

static long calls, bad;
static void expect(const char *what, CK_RV rv, const CK_RV *allowed, int n) {
    calls++;
    for (int i = 0; i < n; i++)
        if (rv == allowed[i]) return;
    bad++;
    fprintf(stderr, "%s -> 0x%lx\n", what, rv);
}

static int run_abifuzz(int seconds, unsigned long long seed) {
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE key;
    ready(&s, &key);
    rng = seed ? seed : 88172645463325252ULL;
    static const CK_RV find_ok[] = {CKR_OK, CKR_ATTRIBUTE_TYPE_INVALID, CKR_ATTRIBUTE_VALUE_INVALID,
                                    CKR_ARGUMENTS_BAD, CKR_TEMPLATE_INCONSISTENT};
    static const CK_RV get_ok[] = {CKR_OK, CKR_ATTRIBUTE_TYPE_INVALID, CKR_ATTRIBUTE_SENSITIVE,
                                   CKR_BUFFER_TOO_SMALL, CKR_ARGUMENTS_BAD, CKR_OBJECT_HANDLE_INVALID};
    static const CK_RV init_ok[] = {CKR_OK, CKR_MECHANISM_INVALID, CKR_MECHANISM_PARAM_INVALID,
                                    CKR_KEY_TYPE_INCONSISTENT, CKR_KEY_FUNCTION_NOT_PERMITTED,
                                    CKR_KEY_HANDLE_INVALID, CKR_ARGUMENTS_BAD};
    static const CK_RV sign_ok[] = {CKR_OK, CKR_DATA_LEN_RANGE, CKR_DATA_INVALID,
                                    CKR_BUFFER_TOO_SMALL, CKR_ARGUMENTS_BAD};
    double end = now() + seconds;
    while (now() < end) {
        int which = rnd() % 3;
        if (which == 0) {
            random_template(0);
            CK_RV rv = f->C_FindObjectsInit(s, attrs, n_attrs);
            expect("C_FindObjectsInit", rv, find_ok, N(find_ok));
            if (rv == CKR_OK) {
                CK_OBJECT_HANDLE h[4];
                CK_ULONG n = 0;
                f->C_FindObjects(s, h, rnd() % 5, &n);
                f->C_FindObjectsFinal(s);
            }
            free_template();
        } else if (which == 1) {
            random_template(1);
            CK_OBJECT_HANDLE h = rnd() % 4 ? key : (CK_OBJECT_HANDLE)rnd();
            expect("C_GetAttributeValue", f->C_GetAttributeValue(s, h, attrs, n_attrs), get_ok,
                   N(get_ok));
            free_template();
        } else {
            CK_MECHANISM m;
            m.mechanism = MECHS[rnd() % N(MECHS)];
            m.ulParameterLen = rnd() % 3 ? random_len() : sizeof(CK_RSA_PKCS_PSS_PARAMS);
            m.pParameter = rnd() % 4 ? random_bytes(m.ulParameterLen) : NULL;
            if (m.pParameter == NULL) m.ulParameterLen = rnd() % 2 ? 0 : m.ulParameterLen;
            CK_RV rv = f->C_SignInit(s, &m, key);
            expect("C_SignInit", rv, init_ok, N(init_ok));
            free(m.pParameter);
            if (rv == CKR_OK) {
                /* Random data and output lengths, sometimes a size query. */
                CK_ULONG n = random_len(), out_len = random_len();
                unsigned char *data = random_bytes(n), *out = random_bytes(out_len);
                rv = f->C_Sign(s, data, n, rnd() % 4 ? out : NULL, &out_len);
                expect("C_Sign", rv, sign_ok, N(sign_ok));
                /* Whatever happened, end the operation so the next SignInit starts clean. */
                CK_ULONG big = 1024;
                unsigned char sig[1024];
                f->C_Sign(s, data, n, sig, &big);
                free(data);
                free(out);
            }
        }
    }
    printf("calls=%ld bad=%ld\n", calls, bad);
    f->C_Finalize(NULL);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3) return 2;
    const char *mode = argv[1];
    load_module(argv[2]);
    if (strcmp(mode, "inits") == 0) return run_inits(atoi(argv[3]));
    if (strcmp(mode, "initfork") == 0 && argc == 4) return run_initfork(atoi(argv[3]));
    if (strcmp(mode, "quick") == 0 && argc == 4) {
        if (initialize() != CKR_OK) return 2;
        return strcmp(argv[3], "finalize") == 0 && f->C_Finalize(NULL) != CKR_OK ? 3 : 0;
    }
    if (strcmp(mode, "forkfail") == 0 && argc == 8) {
        pin = argv[3];
        key_id = argv[4];
        g_bad_config = argv[6];
        return run_forkfail(atoi(argv[5]), atoi(argv[7]));
    }
    pin = argv[3];
    CK_RV rv = initialize();
    if (rv != CKR_OK) { fprintf(stderr, "C_Initialize 0x%lx\n", rv); return 2; }
    if (strcmp(mode, "flow") == 0) { key_id = argv[5]; return run_flow(argv[4]); }
    key_id = argv[4];
    if (strcmp(mode, "load") == 0 && argc == 8) {
        g_threads = atoi(argv[5]);
        g_seconds = atoi(argv[6]);
        g_slow_ms = atoi(argv[7]);
        return run_load();
    }
    if (strcmp(mode, "script") == 0) return run_script();
    if (strcmp(mode, "fork") == 0 && (argc == 7 || argc == 8))
        return run_fork(atoi(argv[5]), strcmp(argv[6], "reinit") == 0, argc == 8 ? atoi(argv[7]) : 0);
    if (strcmp(mode, "mixed") == 0 && argc == 7) {
        g_threads = atoi(argv[5]);
        g_seconds = atoi(argv[6]);
        g_slow_ms = 1 << 30;
        return run_mixed();
    }
    if (strcmp(mode, "abifuzz") == 0 && argc == 7) return run_abifuzz(atoi(argv[5]), strtoull(argv[6], NULL, 0));
    fprintf(stderr, "bad arguments\n");
    return 2;
}
