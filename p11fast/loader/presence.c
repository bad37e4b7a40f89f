/* The presence record beside the snapshot (<snapshot>.presence; the layout, and its Python
 * reader and writer, in p11fast/snapshot.py): the tokens a process found present, and when,
 * so that a `pkcs11-tool -L` loop asks the HSM once per PRESENCE_TTL rather than once per
 * process (a fresh TLS connection and a GET /health/ready each time otherwise). Times are
 * CLOCK_REALTIME: the answer crosses processes.
 *
 * Only present answers are recorded: an absent token is always rechecked live, so the line
 * that says why it is absent gives a live reason; a live absent answer also forgets a present
 * one. A record counts only for the snapshot it names (the snapshot's CRC-32 and length: a
 * change of the configuration, the instances or the binaries makes another snapshot), when it
 * is ours and writable by nobody else (read_private_file), and when intact (its own CRC-32);
 * anything else means a live check. It is written whole (0600, a temporary file renamed over
 * it), so a reader sees the old record or the new one; two processes writing at once lose one
 * answer, which costs the next process one live check. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "snapshot.h"

#define MAGIC_LEN (sizeof P11F_PRESENCE_MAGIC - 1)
/* magic, u32 version, snapshot CRC-32, snapshot length, slot count; n x i64; u32 CRC-32 */
#define HEAD_LEN (MAGIC_LEN + 16)
#define RECORD_LEN(n) (HEAD_LEN + 8 * (size_t)(n) + 4)

static long long now_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void put_u32(unsigned char *at, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        at[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *at, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)at[i] << (8 * i);
    return v;
}

static void path_of(const struct snapshot *s, char *out, size_t size)
{
    snprintf(out, size, "%s" P11F_PRESENCE_SUFFIX, s->path);
}

/* The record's times for s's slots (0: none) when it is s's and intact; 0 otherwise. */
static int load(const struct snapshot *s, long long at[])
{
    char path[PATH_MAX + 64];
    size_t len;
    unsigned char *data;
    int ok;
    path_of(s, path, sizeof path);
    if (!(data = read_private_file(path, &len)))
        return 0;
    ok = len == RECORD_LEN(s->nslots) && memcmp(data, P11F_PRESENCE_MAGIC, MAGIC_LEN) == 0 &&
         get_le(data + MAGIC_LEN, 4) == P11F_PRESENCE_VERSION &&
         get_le(data + MAGIC_LEN + 4, 4) == s->crc && get_le(data + MAGIC_LEN + 8, 4) == s->len &&
         get_le(data + MAGIC_LEN + 12, 4) == s->nslots &&
         get_le(data + len - 4, 4) == snapshot_crc32(data, len - 4);
    for (CK_ULONG i = 0; ok && i < s->nslots; i++)
        at[i] = (long long)get_le(data + HEAD_LEN + 8 * i, 8);
    free(data);
    return ok;
}

long long presence_shared_age(const struct snapshot *s, unsigned long slot)
{
    long long at[P11F_MAX_SLOTS], age;
    if (slot >= s->nslots || !load(s, at) || at[slot] <= 0)
        return -1;
    age = now_realtime_ns() - at[slot];
    return age >= 0 && age < P11F_PRESENCE_TTL_NS ? age : -1;
}

static void store(const struct snapshot *s, const long long at[])
{
    char path[PATH_MAX + 64], temporary[PATH_MAX + 96];
    unsigned char data[RECORD_LEN(P11F_MAX_SLOTS)];
    size_t len = RECORD_LEN(s->nslots);
    int fd, written;
    memcpy(data, P11F_PRESENCE_MAGIC, MAGIC_LEN);
    put_u32(data + MAGIC_LEN, P11F_PRESENCE_VERSION);
    put_u32(data + MAGIC_LEN + 4, s->crc);
    put_u32(data + MAGIC_LEN + 8, (uint32_t)s->len);
    put_u32(data + MAGIC_LEN + 12, (uint32_t)s->nslots);
    for (CK_ULONG i = 0; i < s->nslots; i++) {
        put_u32(data + HEAD_LEN + 8 * i, (uint32_t)at[i]);
        put_u32(data + HEAD_LEN + 8 * i + 4, (uint32_t)((unsigned long long)at[i] >> 32));
    }
    put_u32(data + len - 4, snapshot_crc32(data, len - 4));
    path_of(s, path, sizeof path);
    snprintf(temporary, sizeof temporary, "%s.%ld.tmp", path, (long)getpid());
    fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    written = write(fd, data, len) == (ssize_t)len;
    if (close(fd) != 0 || !written || rename(temporary, path) != 0)
        unlink(temporary);
}

void presence_share(const struct snapshot *s, unsigned long slot, int present)
{
    long long at[P11F_MAX_SLOTS];
    if (slot >= s->nslots)
        return;
    if (!load(s, at)) {
        if (!present)
            return; /* nothing recorded to forget */
        memset(at, 0, sizeof at);
    } else if (!present && at[slot] == 0) {
        return;
    }
    at[slot] = present ? now_realtime_ns() : 0;
    store(s, at);
}
