/* The slot snapshot the ABI writes (p11fast/snapshot.py has the why and the layout). */
#ifndef P11FAST_LOADER_SNAPSHOT_H
#define P11FAST_LOADER_SNAPSHOT_H

#include <limits.h>
#include <stddef.h>

#include "lightmode.h"
#include "pkcs11.h"

struct snapshot_slot {
    CK_SLOT_INFO slot;   /* without CKF_TOKEN_PRESENT */
    CK_TOKEN_INFO token; /* as for a token present, with no session open */
    const unsigned char *spec; /* the transport spec, inside the snapshot's data */
    size_t spec_len;
};

struct snapshot {
    char path[PATH_MAX + 32]; /* where it is */
    unsigned char *data;      /* the file */
    CK_INFO info;
    int disable_threads;
    CK_ULONG nslots;
    struct snapshot_slot *slots;
};

/* Loads the snapshot for these discovery inputs (package_dir: the real directory of this
 * library; reserved: CK_C_INITIALIZE_ARGS.pReserved or NULL) when one exists, is ours, and
 * nothing it was derived from has changed. 1 on success; 0 otherwise, with nothing to free. */
int snapshot_load(struct snapshot *s, const char *package_dir, const char *reserved);
void snapshot_free(struct snapshot *s);

#endif
