/* Reading and checking the slot snapshot: the counterpart of p11fast/snapshot.py, which
 * describes the layout; the P11F_* constants are p11fast/lightmode.py's (lightmode.h).
 * Everything here fails closed: a missing, foreign, malformed or stale snapshot is simply not
 * used. */
#define _GNU_SOURCE
#include "snapshot.h"

#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ where it is */

static int directory(char *out, size_t size)
{
    const char *cache = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (cache && cache[0] == '/')
        n = snprintf(out, size, "%s/" P11F_CACHE_DIR, cache);
    else if (home && *home)
        n = snprintf(out, size, "%s/.cache/" P11F_CACHE_DIR, home);
    else
        return 0;
    return n > 0 && (size_t)n < size;
}

struct key {
    char bytes[4 * PATH_MAX + 256];
    size_t len;
    int overflow;
};

static void key_add(struct key *k, const char *value)
{
    size_t n = value ? strlen(value) + 2 : 2;
    if (k->overflow || k->len + n > sizeof k->bytes) {
        k->overflow = 1;
        return;
    }
    if (value) {
        k->bytes[k->len] = '=';
        memcpy(k->bytes + k->len + 1, value, n - 2);
    } else {
        k->bytes[k->len] = '-';
    }
    k->len += n;
    k->bytes[k->len - 1] = '\0';
}

/* snapshot.key(): the discovery inputs, in the same order. */
static int make_key(struct key *k, const char *package_dir, const char *reserved)
{
    char uid[32];
    static const char tag[] = P11F_SNAPSHOT_KEY_TAG;
    static const char *const variables[] = P11F_SNAPSHOT_KEY_VARIABLES;
    snprintf(uid, sizeof uid, "%lu", (unsigned long)getuid());
    memcpy(k->bytes, tag, sizeof tag); /* with its NUL */
    k->len = sizeof tag;
    k->overflow = 0;
    key_add(k, uid);
    key_add(k, package_dir);
    key_add(k, reserved);
    for (size_t i = 0; i < sizeof variables / sizeof variables[0]; i++)
        key_add(k, getenv(variables[i]));
    return !k->overflow;
}

uint32_t snapshot_crc32(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint32_t crc = 0xffffffffu;
    while (n--) {
        crc ^= *p++;
        for (int bit = 0; bit < 8; bit++)
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

unsigned char *read_private_file(const char *path, size_t *len)
{
    struct stat st;
    unsigned char *data = NULL;
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != getuid() ||
        (st.st_mode & 022) || st.st_size < 16 || st.st_size > P11F_SNAPSHOT_MAX_BYTES ||
        !(data = malloc((size_t)st.st_size)))
        goto fail;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, data + got, (size_t)st.st_size - got);
        if (r <= 0)
            goto fail;
        got += (size_t)r;
    }
    close(fd);
    *len = got;
    return data;
fail:
    free(data);
    close(fd);
    return NULL;
}

/* ------------------------------------------------------------------ parsing */

struct cursor {
    const unsigned char *p, *end;
    int bad;
};

static const unsigned char *take(struct cursor *c, size_t n)
{
    const unsigned char *at = c->p;
    if (c->bad || (size_t)(c->end - c->p) < n) {
        c->bad = 1;
        return NULL;
    }
    c->p += n;
    return at;
}

static uint64_t take_uint(struct cursor *c, size_t n)
{
    const unsigned char *at = take(c, n);
    uint64_t v = 0;
    for (size_t i = 0; at && i < n; i++)
        v |= (uint64_t)at[i] << (8 * i);
    return v;
}

static const unsigned char *take_blob(struct cursor *c, size_t *n)
{
    *n = (size_t)take_uint(c, 4);
    return take(c, *n);
}

/* A NUL-terminated copy of a blob, for the C library; NULL when too long or malformed. */
static int blob_string(struct cursor *c, char *out, size_t size)
{
    size_t n;
    const unsigned char *at = take_blob(c, &n);
    if (!at || n >= size || memchr(at, '\0', n))
        return 0;
    memcpy(out, at, n);
    out[n] = '\0';
    return 1;
}

/* ------------------------------------------------------------------ checking the inputs */

static int same_file(const char *path, int regular, uint64_t dev, uint64_t ino, uint64_t size,
                     int64_t mtime_ns, int64_t ctime_ns)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return !regular;
    return regular && (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino &&
           (uint64_t)st.st_size == size &&
           (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec == mtime_ns &&
           (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec == ctime_ns;
}

static int files_unchanged(struct cursor *c)
{
    char path[PATH_MAX];
    uint64_t n = take_uint(c, 4);
    for (uint64_t i = 0; i < n && !c->bad; i++) {
        int ok = blob_string(c, path, sizeof path);
        int regular = (int)take_uint(c, 1);
        uint64_t dev = take_uint(c, 8), ino = take_uint(c, 8), size = take_uint(c, 8);
        int64_t mtime_ns = (int64_t)take_uint(c, 8), ctime_ns = (int64_t)take_uint(c, 8);
        if (!ok || c->bad || !same_file(path, regular, dev, ino, size, mtime_ns, ctime_ns))
            return 0;
    }
    return !c->bad;
}

/* The `env:` variables: set (a config naming an unset one fails) and as empty as before. */
static int variables_unchanged(struct cursor *c)
{
    char name[256];
    uint64_t n = take_uint(c, 4);
    for (uint64_t i = 0; i < n && !c->bad; i++) {
        const char *value;
        int ok = blob_string(c, name, sizeof name);
        int non_empty = (int)take_uint(c, 1);
        if (!ok || c->bad || !(value = getenv(name)) || (*value != '\0') != non_empty)
            return 0;
    }
    return !c->bad;
}

static int parse_mechanisms(struct snapshot *s, struct cursor *c)
{
    s->nmechanisms = (CK_ULONG)take_uint(c, 4);
    if (c->bad || s->nmechanisms > P11F_MAX_MECHANISMS ||
        s->nmechanisms > (size_t)(c->end - c->p) / (8 + sizeof(CK_MECHANISM_INFO)))
        return 0;
    /* One more than needed: calloc(0) may answer NULL. */
    if (!(s->mechanism_types = calloc(s->nmechanisms + 1, sizeof *s->mechanism_types)) ||
        !(s->mechanism_infos = calloc(s->nmechanisms + 1, sizeof *s->mechanism_infos)))
        return 0;
    for (CK_ULONG i = 0; i < s->nmechanisms; i++) {
        const unsigned char *mechanism_info;
        s->mechanism_types[i] = (CK_MECHANISM_TYPE)take_uint(c, 8);
        if (!(mechanism_info = take(c, sizeof(CK_MECHANISM_INFO))))
            return 0;
        memcpy(&s->mechanism_infos[i], mechanism_info, sizeof(CK_MECHANISM_INFO));
    }
    return 1;
}

static int parse_policy(struct snapshot *s, struct cursor *c)
{
    s->nallowed = (long)(int32_t)take_uint(c, 4);
    if (c->bad || s->nallowed < -1 || s->nallowed > P11F_MAX_MECHANISMS ||
        s->nallowed > (c->end - c->p) / 8 ||
        !(s->allowed = calloc((size_t)(s->nallowed + 1), sizeof *s->allowed)))
        return 0;
    for (long i = 0; i < s->nallowed; i++)
        s->allowed[i] = (CK_MECHANISM_TYPE)take_uint(c, 8);
    return !c->bad;
}

static int parse(struct snapshot *s, struct cursor *c, const struct key *k)
{
    const unsigned char *magic = take(c, sizeof P11F_SNAPSHOT_MAGIC - 1), *key, *info;
    size_t key_len;
    if (!magic || memcmp(magic, P11F_SNAPSHOT_MAGIC, sizeof P11F_SNAPSHOT_MAGIC - 1) != 0 ||
        take_uint(c, 4) != P11F_SNAPSHOT_VERSION ||
        take_uint(c, 4) != sizeof(CK_INFO) || take_uint(c, 4) != sizeof(CK_SLOT_INFO) ||
        take_uint(c, 4) != sizeof(CK_TOKEN_INFO) ||
        take_uint(c, 4) != sizeof(CK_MECHANISM_INFO))
        return 0;
    key = take_blob(c, &key_len);
    if (!key || key_len != k->len || memcmp(key, k->bytes, key_len) != 0)
        return 0; /* another key with the same hash */
    if (!files_unchanged(c) || !variables_unchanged(c))
        return 0;
    s->disable_threads = (int)take_uint(c, 1);
    if (!(info = take(c, sizeof s->info)))
        return 0;
    memcpy(&s->info, info, sizeof s->info);
    s->nslots = (CK_ULONG)take_uint(c, 4);
    if (c->bad || s->nslots == 0 || s->nslots > P11F_MAX_SLOTS ||
        s->nslots > (size_t)(c->end - c->p) / (sizeof(CK_SLOT_INFO) + sizeof(CK_TOKEN_INFO) + 1) ||
        !(s->slots = calloc(s->nslots, sizeof *s->slots)))
        return 0;
    for (CK_ULONG i = 0; i < s->nslots; i++) {
        const unsigned char *slot = take(c, sizeof(CK_SLOT_INFO));
        const unsigned char *token = take(c, sizeof(CK_TOKEN_INFO));
        s->slots[i].users = (unsigned)take_uint(c, 1);
        if (!blob_string(c, s->slots[i].operator_name, sizeof s->slots[i].operator_name))
            return 0;
        s->slots[i].spec = take_blob(c, &s->slots[i].spec_len);
        if (c->bad)
            return 0;
        memcpy(&s->slots[i].slot, slot, sizeof(CK_SLOT_INFO));
        memcpy(&s->slots[i].token, token, sizeof(CK_TOKEN_INFO));
    }
    return parse_mechanisms(s, c) && parse_policy(s, c) && c->p == c->end;
}

int snapshot_load(struct snapshot *s, const char *package_dir, const char *reserved)
{
    char dir[PATH_MAX];
    const char *off = getenv(P11F_SWITCH);
    struct key *k;
    struct cursor c;
    size_t len;
    memset(s, 0, sizeof *s);
    if ((off && strcmp(off, P11F_SWITCH_OFF) == 0) || !directory(dir, sizeof dir) ||
        !(k = malloc(sizeof *k)))
        return 0;
    if (!make_key(k, package_dir, reserved)) {
        free(k);
        return 0;
    }
    snprintf(s->path, sizeof s->path, "%s/" P11F_SNAPSHOT_PREFIX "%08lx", dir,
             (unsigned long)snapshot_crc32(k->bytes, k->len));
    if ((s->data = read_private_file(s->path, &len))) {
        /* The last 4 bytes: CRC-32 of the rest. */
        struct cursor sum = {s->data + len - 4, s->data + len, 0};
        c.p = s->data;
        c.end = s->data + len - 4;
        c.bad = 0;
        s->crc = (uint32_t)take_uint(&sum, 4);
        s->len = len;
        if (s->crc != snapshot_crc32(s->data, len - 4) || !parse(s, &c, k))
            snapshot_free(s);
    }
    free(k);
    return s->data != NULL;
}

void snapshot_free(struct snapshot *s)
{
    free(s->mechanism_types);
    free(s->mechanism_infos);
    free(s->allowed);
    free(s->slots);
    free(s->data);
    memset(s, 0, sizeof *s);
}
