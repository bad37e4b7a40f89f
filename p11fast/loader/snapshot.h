/* The slot snapshot the ABI writes (p11fast/snapshot.py has the why and the layout), and the
 * presence record beside it (presence.c). */
#ifndef P11FAST_LOADER_SNAPSHOT_H
#define P11FAST_LOADER_SNAPSHOT_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "lightmode.h"
#include "pkcs11.h"

struct snapshot_slot {
    CK_SLOT_INFO slot;   /* without CKF_TOKEN_PRESENT */
    CK_TOKEN_INFO token; /* as for a token present, with no session open */
    unsigned users;      /* P11F_USERS_* bits */
    char operator_name[P11F_MAX_USERNAME_BYTES + 1]; /* UTF-8; "" when the slot has none */
    const unsigned char *spec; /* the transport spec, inside the snapshot's data */
    size_t spec_len;
};

struct snapshot {
    char path[PATH_MAX + 32]; /* where it is */
    unsigned char *data;      /* the file */
    size_t len;               /* its length */
    uint32_t crc;             /* its CRC-32 (its last 4 bytes): with len, its identity */
    CK_INFO info;
    int disable_threads;
    CK_ULONG nslots;
    struct snapshot_slot *slots;
    CK_ULONG nmechanisms;       /* offered by every slot, in C_GetMechanismList's order */
    CK_MECHANISM_TYPE *mechanism_types;
    CK_MECHANISM_INFO *mechanism_infos;
    long nallowed;              /* policy.allowed_mechanisms: < 0 for all */
    CK_MECHANISM_TYPE *allowed;
};

/* Loads the snapshot for these discovery inputs (package_dir: the real directory of this
 * library; reserved: CK_C_INITIALIZE_ARGS.pReserved or NULL) when one exists, is ours, and
 * nothing it was derived from has changed. 1 on success; 0 otherwise, with nothing to free. */
int snapshot_load(struct snapshot *s, const char *package_dir, const char *reserved);
void snapshot_free(struct snapshot *s);

/* CRC-32 (ISO-HDLC, as zlib and Python's binascii.crc32), bit by bit: a few kB once a run. */
uint32_t snapshot_crc32(const void *data, size_t n);
/* A file that is ours, regular, writable by nobody else, of a sane size (16 bytes to
 * P11F_SNAPSHOT_MAX_BYTES), read whole (malloc'd); NULL otherwise. */
unsigned char *read_private_file(const char *path, size_t *len);

/* presence.c: the present answers shared by the processes using snapshot `s`. The age in ns
 * (CLOCK_REALTIME) of a present answer for slot another process recorded less than
 * P11F_PRESENCE_TTL_NS ago, or -1. */
long long presence_shared_age(const struct snapshot *s, unsigned long slot);
/* Records a live answer for slot: present, now; absent, by forgetting a present one. */
void presence_share(const struct snapshot *s, unsigned long slot, int present);

#endif
