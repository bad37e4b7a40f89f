/* p11load: a multithreaded PKCS#11 load generator for any module.
 *
 * N threads, each with its own session, sign (or decrypt) with one key in a loop: a warm-up
 * first (connections, caches, lazy initialisation), then a measured window of T seconds. Every
 * measured operation's latency goes into its thread's own array (no shared state on the hot
 * path), merged and sorted at the end. Prints ops/s, p50/p99/max latency, errors by CKR, client
 * CPU per operation and the TCP connections the run opened.
 *
 *   p11load --module LIB [--pin PIN] (--label L | --id HEX) [--mech ecdsa|ecdsa-sha256|
 *           rsa-sha256|rsa-decrypt] [--threads N] [--duration S] [--warmup S] [--slot I]
 *           [--input FILE] [--port P] [--json]
 *
 * Build: cc -O2 -Wall -Wextra -I include -rdynamic benchmarks/p11load.c -o p11load -ldl -lpthread
 *
 * Connections: libcurl and most HTTP clients keep no count of the connections they open, and
 * the kernel's TCP "ActiveOpens" counter is machine-wide (this VM's own services open a dozen
 * connections a second). So p11load defines connect() itself and is linked with
 * --export-dynamic: the dynamic linker binds every library's connect() (libcurl's, Python's)
 * to ours, which counts TCP connects to --port and calls libc's. Reported per phase:
 *   - opened: connect() calls to --port during set-up + warm-up, and during the measured
 *     window (a pool that reconnects shows up here, however short-lived the connections);
 *   - established: the ESTABLISHED sockets this process owns (/proc/self/fd -> socket inodes,
 *     matched against /proc/net/tcp{,6}) whose peer port is --port, at the end of the measured
 *     window: the pool's size.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pkcs11.h"

#define MAX_ERR_KINDS 16
#define OUT_MAX 1024

struct mech {
    const char *name;
    CK_MECHANISM_TYPE type;
    int decrypt;
    size_t data_len; /* default input length; 0 = --input required */
};

static const struct mech MECHS[] = {
    {"ecdsa", CKM_ECDSA, 0, 32},               /* raw ECDSA on a SHA-256-sized digest */
    {"ecdsa-sha256", CKM_ECDSA_SHA256, 0, 64}, /* the module hashes */
    {"rsa-sha256", CKM_SHA256_RSA_PKCS, 0, 64},
    {"rsa-decrypt", CKM_RSA_PKCS, 1, 0}, /* ciphertext from --input */
};

struct opts {
    const char *module, *pin, *label, *input;
    unsigned char id[256];
    size_t id_len;
    int has_id;
    const struct mech *mech;
    int threads, slot_index, port, json;
    double duration, warmup;
};

struct errcount {
    CK_RV rv;
    unsigned long n;
};

struct worker {
    pthread_t tid;
    CK_SESSION_HANDLE session;
    CK_OBJECT_HANDLE key;
    CK_RV setup_rv;
    const char *setup_what;
    uint32_t *lat; /* ns, saturating; the exact maximum is in max_ns */
    size_t n, cap;
    uint64_t max_ns, sum_ns;
    struct errcount errs[MAX_ERR_KINDS], warm_errs[MAX_ERR_KINDS];
};

enum { PHASE_WARMUP, PHASE_MEASURE, PHASE_STOP };

static struct opts o = {.threads = 1, .duration = 5, .warmup = 1};
static CK_FUNCTION_LIST_PTR f;
static CK_SLOT_ID slot;
static unsigned char *data;
static size_t data_len;
static atomic_int phase = PHASE_WARMUP;
static pthread_barrier_t ready;

#define N(x) {x, #x}
static const struct {
    CK_RV rv;
    const char *name;
} CKR_NAMES[] = {
    N(CKR_OK), N(CKR_HOST_MEMORY), N(CKR_GENERAL_ERROR), N(CKR_FUNCTION_FAILED),
    N(CKR_ARGUMENTS_BAD), N(CKR_DATA_INVALID), N(CKR_DATA_LEN_RANGE), N(CKR_DEVICE_ERROR),
    N(CKR_DEVICE_MEMORY), N(CKR_DEVICE_REMOVED), N(CKR_ENCRYPTED_DATA_INVALID),
    N(CKR_ENCRYPTED_DATA_LEN_RANGE), N(CKR_FUNCTION_CANCELED), N(CKR_FUNCTION_NOT_SUPPORTED),
    N(CKR_KEY_HANDLE_INVALID), N(CKR_KEY_TYPE_INCONSISTENT), N(CKR_KEY_FUNCTION_NOT_PERMITTED),
    N(CKR_MECHANISM_INVALID), N(CKR_MECHANISM_PARAM_INVALID), N(CKR_OBJECT_HANDLE_INVALID),
    N(CKR_OPERATION_ACTIVE), N(CKR_OPERATION_NOT_INITIALIZED), N(CKR_PIN_INCORRECT),
    N(CKR_SESSION_CLOSED), N(CKR_SESSION_COUNT), N(CKR_SESSION_HANDLE_INVALID),
    N(CKR_TOKEN_NOT_PRESENT), N(CKR_USER_NOT_LOGGED_IN), N(CKR_BUFFER_TOO_SMALL),
    N(CKR_CRYPTOKI_NOT_INITIALIZED),
};
#undef N

static const char *ckr_name(CK_RV rv) {
    static __thread char buf[32];
    for (size_t i = 0; i < sizeof CKR_NAMES / sizeof CKR_NAMES[0]; i++)
        if (CKR_NAMES[i].rv == rv) return CKR_NAMES[i].name;
    snprintf(buf, sizeof buf, "CKR_0x%lx", (unsigned long)rv);
    return buf;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("p11load: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void cpu_seconds(double *user, double *sys) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
    *sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* -- connections --------------------------------------------------------------------------- */

static atomic_long connects;

/* Interposes libc's connect() for the whole process (see the top of the file). */
int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    static int (*real)(int, const struct sockaddr *, socklen_t);
    if (!real) real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
    if (addr && o.port > 0) {
        int port = -1;
        if (addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in))
            port = ntohs(((const struct sockaddr_in *)addr)->sin_port);
        else if (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6))
            port = ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
        if (port == o.port) atomic_fetch_add(&connects, 1);
    }
    return real(fd, addr, len);
}

static int count_in_tcp_table(const char *path, const unsigned long *inodes, size_t n, int port) {
    FILE *fp = fopen(path, "r");
    char line[512];
    int count = 0;
    if (!fp) return 0;
    if (!fgets(line, sizeof line, fp)) { /* header */
        fclose(fp);
        return 0;
    }
    while (fgets(line, sizeof line, fp)) {
        char rem[64];
        unsigned st, rport;
        unsigned long inode;
        /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
        if (sscanf(line, "%*s %*s %63s %x %*s %*s %*s %*s %*s %lu", rem, &st, &inode) != 3) continue;
        char *colon = strrchr(rem, ':');
        if (!colon || sscanf(colon + 1, "%x", &rport) != 1) continue;
        if (st != 1 /* TCP_ESTABLISHED */ || (int)rport != port) continue;
        for (size_t i = 0; i < n; i++)
            if (inodes[i] == inode) {
                count++;
                break;
            }
    }
    fclose(fp);
    return count;
}

static int established_to_port(int port) {
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    unsigned long inodes[4096];
    size_t n = 0;
    if (!d || port <= 0) {
        if (d) closedir(d);
        return 0;
    }
    while ((e = readdir(d)) && n < sizeof inodes / sizeof inodes[0]) {
        char target[64];
        ssize_t len = readlinkat(dirfd(d), e->d_name, target, sizeof target - 1);
        if (len <= 0) continue;
        target[len] = 0;
        if (sscanf(target, "socket:[%lu]", &inodes[n]) == 1) n++;
    }
    closedir(d);
    return count_in_tcp_table("/proc/net/tcp", inodes, n, port) +
           count_in_tcp_table("/proc/net/tcp6", inodes, n, port);
}

/* -- the load ------------------------------------------------------------------------------ */

static void count_error(struct errcount *errs, CK_RV rv) {
    for (int i = 0; i < MAX_ERR_KINDS; i++) {
        if (errs[i].n == 0 || errs[i].rv == rv) {
            errs[i].rv = rv;
            errs[i].n++;
            return;
        }
    }
    errs[MAX_ERR_KINDS - 1].n++; /* more kinds than slots: lumped into the last one */
}

static void record(struct worker *w, uint64_t ns) {
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 65536;
        w->lat = realloc(w->lat, w->cap * sizeof *w->lat);
        if (!w->lat) die("out of memory for latency samples");
    }
    w->lat[w->n++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
    w->sum_ns += ns;
    if (ns > w->max_ns) w->max_ns = ns;
}

static CK_RV one_op(struct worker *w) {
    CK_MECHANISM m = {o.mech->type, NULL, 0};
    unsigned char out[OUT_MAX];
    CK_ULONG out_len = sizeof out;
    CK_RV rv;
    /* One call with a buffer big enough, as OpenSSL's engine and most servers do (no size
     * query round): the operation is exactly one request to the HSM. */
    if (o.mech->decrypt) {
        rv = f->C_DecryptInit(w->session, &m, w->key);
        return rv != CKR_OK ? rv : f->C_Decrypt(w->session, data, data_len, out, &out_len);
    }
    rv = f->C_SignInit(w->session, &m, w->key);
    return rv != CKR_OK ? rv : f->C_Sign(w->session, data, data_len, out, &out_len);
}

/* A distinct symbol for the measured window only: `valgrind --tool=callgrind
 * --toggle-collect=measured_op` then counts the instructions of measured operations and
 * nothing else (no start-up, no TLS handshakes of the warm-up). */
static __attribute__((noinline)) CK_RV measured_op(struct worker *w) {
    return one_op(w);
}

static CK_RV find_key(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE *key) {
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE tmpl[2] = {{CKA_CLASS, &cls, sizeof cls}};
    CK_ULONG found = 0;
    CK_RV rv;
    if (o.has_id) {
        tmpl[1] = (CK_ATTRIBUTE){CKA_ID, o.id, o.id_len};
    } else {
        tmpl[1] = (CK_ATTRIBUTE){CKA_LABEL, (void *)o.label, strlen(o.label)};
    }
    if ((rv = f->C_FindObjectsInit(s, tmpl, 2)) != CKR_OK) return rv;
    rv = f->C_FindObjects(s, key, 1, &found);
    CK_RV rv2 = f->C_FindObjectsFinal(s);
    if (rv == CKR_OK) rv = rv2;
    if (rv == CKR_OK && found != 1) rv = CKR_KEY_HANDLE_INVALID;
    return rv;
}

static void *worker_main(void *arg) {
    struct worker *w = arg;
    w->setup_what = "C_OpenSession";
    w->setup_rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &w->session);
    if (w->setup_rv == CKR_OK) {
        w->setup_what = "finding the key";
        w->setup_rv = find_key(w->session, &w->key);
    }
    pthread_barrier_wait(&ready);
    if (w->setup_rv != CKR_OK) return NULL;
    for (;;) {
        int ph = atomic_load_explicit(&phase, memory_order_relaxed);
        if (ph == PHASE_STOP) break;
        uint64_t t0 = now_ns();
        CK_RV rv = ph == PHASE_MEASURE ? measured_op(w) : one_op(w);
        uint64_t t1 = now_ns();
        if (rv != CKR_OK)
            count_error(ph == PHASE_MEASURE ? w->errs : w->warm_errs, rv);
        else if (ph == PHASE_MEASURE)
            record(w, t1 - t0);
    }
    return NULL;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* -- setup --------------------------------------------------------------------------------- */

static void check(CK_RV rv, const char *what) {
    if (rv != CKR_OK) die("%s failed: %s", what, ckr_name(rv));
}

static void load_module(void) {
    void *lib = dlopen(o.module, RTLD_NOW | RTLD_LOCAL);
    if (!lib) die("dlopen: %s", dlerror());
    CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
    if (!gfl) die("%s has no C_GetFunctionList", o.module);
    check(gfl(&f), "C_GetFunctionList");
    /* The module may use its own OS locking primitives: what threaded hosts pass. */
    CK_C_INITIALIZE_ARGS args = {.flags = CKF_OS_LOCKING_OK};
    check(f->C_Initialize(&args), "C_Initialize");
    CK_SLOT_ID slots[64];
    CK_ULONG n = sizeof slots / sizeof slots[0];
    check(f->C_GetSlotList(CK_TRUE, slots, &n), "C_GetSlotList");
    if (o.slot_index < 0 || (CK_ULONG)o.slot_index >= n)
        die("slot index %d: the module has %lu slot(s) with a token", o.slot_index, n);
    slot = slots[o.slot_index];
}

static void load_data(void) {
    if (!o.input) {
        if (!o.mech->data_len) die("--mech %s needs --input", o.mech->name);
        data_len = o.mech->data_len;
        data = malloc(data_len);
        for (size_t i = 0; i < data_len; i++) data[i] = (unsigned char)(i * 7 + 1);
        return;
    }
    FILE *fp = fopen(o.input, "rb");
    if (!fp) die("%s: %s", o.input, strerror(errno));
    data = malloc(OUT_MAX);
    data_len = fread(data, 1, OUT_MAX, fp);
    fclose(fp);
    if (!data_len) die("%s is empty", o.input);
}

static void parse_hex(const char *hex) {
    size_t len = strlen(hex);
    if (len % 2 || len / 2 > sizeof o.id) die("--id wants an even number of hex digits");
    for (size_t i = 0; i < len / 2; i++)
        if (sscanf(hex + 2 * i, "%2hhx", &o.id[i]) != 1) die("--id: not hex: %s", hex);
    o.id_len = len / 2;
    o.has_id = 1;
}

static void usage(void) {
    fputs("usage: p11load --module LIB (--label L | --id HEX) [--pin PIN] [--mech M] "
          "[--threads N]\n"
          "               [--duration S] [--warmup S] [--slot I] [--input FILE] [--port P] "
          "[--json]\n"
          "mechanisms: ecdsa (CKM_ECDSA on 32 bytes), ecdsa-sha256, rsa-sha256, rsa-decrypt\n",
          stderr);
    exit(2);
}

static void parse_args(int argc, char **argv) {
    static const struct option longopts[] = {
        {"module", required_argument, 0, 'm'},   {"pin", required_argument, 0, 'p'},
        {"label", required_argument, 0, 'l'},    {"id", required_argument, 0, 'i'},
        {"mech", required_argument, 0, 'M'},     {"threads", required_argument, 0, 't'},
        {"duration", required_argument, 0, 'd'}, {"warmup", required_argument, 0, 'w'},
        {"slot", required_argument, 0, 's'},     {"input", required_argument, 0, 'I'},
        {"port", required_argument, 0, 'P'},     {"json", no_argument, 0, 'j'},
        {0, 0, 0, 0},
    };
    int c;
    o.mech = &MECHS[0];
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': o.module = optarg; break;
        case 'p': o.pin = optarg; break;
        case 'l': o.label = optarg; break;
        case 'i': parse_hex(optarg); break;
        case 't': o.threads = atoi(optarg); break;
        case 'd': o.duration = atof(optarg); break;
        case 'w': o.warmup = atof(optarg); break;
        case 's': o.slot_index = atoi(optarg); break;
        case 'I': o.input = optarg; break;
        case 'P': o.port = atoi(optarg); break;
        case 'j': o.json = 1; break;
        case 'M':
            o.mech = NULL;
            for (size_t i = 0; i < sizeof MECHS / sizeof MECHS[0]; i++)
                if (strcmp(optarg, MECHS[i].name) == 0) o.mech = &MECHS[i];
            if (!o.mech) usage();
            break;
        default: usage();
        }
    }
    if (!o.module || (!o.label && !o.has_id) || o.threads < 1 || o.duration <= 0 || o.warmup < 0)
        usage();
}

/* -- report -------------------------------------------------------------------------------- */

struct result {
    unsigned long ops;
    double seconds, cpu_user, cpu_sys;
    double p50_us, p99_us, max_us, mean_us;
    long opened_setup, opened_measured;
    int established;
    struct errcount errs[MAX_ERR_KINDS], warm_errs[MAX_ERR_KINDS];
};

static void merge_errors(struct errcount *into, const struct errcount *from) {
    for (int i = 0; i < MAX_ERR_KINDS && from[i].n; i++)
        for (unsigned long k = 0; k < from[i].n; k++) count_error(into, from[i].rv);
}

static unsigned long total_errors(const struct errcount *errs) {
    unsigned long n = 0;
    for (int i = 0; i < MAX_ERR_KINDS; i++) n += errs[i].n;
    return n;
}

static void summarise(struct worker *ws, struct result *r) {
    size_t total = 0, k = 0;
    uint64_t max_ns = 0, sum_ns = 0;
    for (int t = 0; t < o.threads; t++) total += ws[t].n;
    uint32_t *all = malloc((total ? total : 1) * sizeof *all);
    if (!all) die("out of memory merging latency samples");
    for (int t = 0; t < o.threads; t++) {
        memcpy(all + k, ws[t].lat, ws[t].n * sizeof *all);
        k += ws[t].n;
        if (ws[t].max_ns > max_ns) max_ns = ws[t].max_ns;
        sum_ns += ws[t].sum_ns;
        merge_errors(r->errs, ws[t].errs);
        merge_errors(r->warm_errs, ws[t].warm_errs);
    }
    qsort(all, total, sizeof *all, cmp_u32);
    r->ops = total;
    if (total) {
        r->p50_us = all[(total - 1) * 50 / 100] / 1e3;
        r->p99_us = all[(total - 1) * 99 / 100] / 1e3;
        r->max_us = (double)max_ns / 1e3;
        r->mean_us = (double)sum_ns / (double)total / 1e3;
    }
    free(all);
}

static void print_errors_json(const char *key, const struct errcount *errs) {
    printf("\"%s\": {", key);
    for (int i = 0; i < MAX_ERR_KINDS && errs[i].n; i++)
        printf("%s\"%s\": %lu", i ? ", " : "", ckr_name(errs[i].rv), errs[i].n);
    printf("}");
}

static void print_json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') putchar('\\');
        if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

static void report(const struct result *r, int argc, char **argv) {
    double ops_s = r->ops / r->seconds;
    double cpu_op = r->ops ? (r->cpu_user + r->cpu_sys) / r->ops * 1e6 : 0;
    if (o.json) {
        printf("{\"command\": [");
        for (int i = 0; i < argc; i++) {
            printf("%s", i ? ", " : "");
            print_json_string(argv[i]);
        }
        printf("], \"module\": ");
        print_json_string(o.module);
        printf(", \"mech\": \"%s\", \"threads\": %d, \"warmup_s\": %.3f, "
               "\"measured_s\": %.4f, \"ops\": %lu, \"ops_per_s\": %.1f, "
               "\"p50_us\": %.2f, \"p99_us\": %.2f, \"max_us\": %.2f, \"mean_us\": %.2f, "
               "\"cpu_user_s\": %.4f, \"cpu_sys_s\": %.4f, \"cpu_us_per_op\": %.3f, "
               "\"errors\": %lu, \"warmup_errors\": %lu, ",
               o.mech->name, o.threads, o.warmup, r->seconds, r->ops, ops_s, r->p50_us,
               r->p99_us, r->max_us, r->mean_us, r->cpu_user, r->cpu_sys, cpu_op,
               total_errors(r->errs), total_errors(r->warm_errs));
        print_errors_json("errors_by_ckr", r->errs);
        printf(", ");
        print_errors_json("warmup_errors_by_ckr", r->warm_errs);
        printf(", \"port\": %d, \"conn_opened_setup\": %ld, \"conn_opened_measured\": %ld, "
               "\"conn_established_end\": %d}\n",
               o.port, r->opened_setup, r->opened_measured, r->established);
        return;
    }
    printf("command:");
    for (int i = 0; i < argc; i++) printf(" %s", argv[i]);
    printf("\nmodule=%s mech=%s threads=%d warmup_s=%.2f measured_s=%.3f\n", o.module,
           o.mech->name, o.threads, o.warmup, r->seconds);
    printf("ops=%lu ops_per_s=%.0f\n", r->ops, ops_s);
    printf("latency_us p50=%.1f p99=%.1f max=%.1f mean=%.1f\n", r->p50_us, r->p99_us, r->max_us,
           r->mean_us);
    printf("cpu_us_per_op=%.2f (user %.3f s, sys %.3f s)\n", cpu_op, r->cpu_user, r->cpu_sys);
    printf("errors=%lu", total_errors(r->errs));
    for (int i = 0; i < MAX_ERR_KINDS && r->errs[i].n; i++)
        printf(" %s=%lu", ckr_name(r->errs[i].rv), r->errs[i].n);
    printf(" warmup_errors=%lu", total_errors(r->warm_errs));
    for (int i = 0; i < MAX_ERR_KINDS && r->warm_errs[i].n; i++)
        printf(" %s=%lu", ckr_name(r->warm_errs[i].rv), r->warm_errs[i].n);
    printf("\nconnections opened_setup=%ld opened_measured=%ld established_end=%d port=%d\n",
           r->opened_setup, r->opened_measured, r->established, o.port);
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    load_data();
    load_module();

    /* Login belongs to the application, not the session: once, on a session kept open for
     * the whole run (closing the last session would log out). */
    CK_SESSION_HANDLE main_session;
    check(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &main_session), "C_OpenSession");
    if (o.pin) {
        CK_RV rv = f->C_Login(main_session, CKU_USER, (CK_UTF8CHAR_PTR)o.pin, strlen(o.pin));
        if (rv != CKR_USER_ALREADY_LOGGED_IN) check(rv, "C_Login");
    }

    struct worker *ws = calloc((size_t)o.threads, sizeof *ws);
    if (!ws) die("out of memory");
    pthread_barrier_init(&ready, NULL, (unsigned)o.threads + 1);
    for (int t = 0; t < o.threads; t++)
        if (pthread_create(&ws[t].tid, NULL, worker_main, &ws[t]) != 0) die("pthread_create");
    pthread_barrier_wait(&ready);
    for (int t = 0; t < o.threads; t++)
        if (ws[t].setup_rv != CKR_OK)
            die("thread %d: %s failed: %s", t, ws[t].setup_what, ckr_name(ws[t].setup_rv));

    struct result r = {0};
    double u0, s0, u1, s1;
    sleep_s(o.warmup);
    long opens1 = atomic_load(&connects);
    cpu_seconds(&u0, &s0);
    uint64_t t0 = now_ns();
    atomic_store(&phase, PHASE_MEASURE);
    sleep_s(o.duration);
    atomic_store(&phase, PHASE_STOP);
    uint64_t t1 = now_ns();
    cpu_seconds(&u1, &s1);
    long opens2 = atomic_load(&connects);
    r.established = established_to_port(o.port);
    for (int t = 0; t < o.threads; t++) pthread_join(ws[t].tid, NULL);

    r.seconds = (double)(t1 - t0) / 1e9;
    r.cpu_user = u1 - u0;
    r.cpu_sys = s1 - s0;
    r.opened_setup = opens1;
    r.opened_measured = opens2 - opens1;
    summarise(ws, &r);
    report(&r, argc, argv);

    for (int t = 0; t < o.threads; t++) {
        f->C_CloseSession(ws[t].session);
        free(ws[t].lat);
    }
    f->C_CloseSession(main_session);
    check(f->C_Finalize(NULL), "C_Finalize");
    free(ws);
    free(data);
    /* Scripts can trust the exit status: 1 when the measured window saw an error or no op. */
    return r.ops == 0 || total_errors(r.errs) ? 1 : 0;
}
