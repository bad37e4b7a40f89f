/* Light mode: C_GetInfo, C_GetSlotList, C_GetSlotInfo, C_GetTokenInfo, C_GetMechanismList,
 * C_GetMechanismInfo, the session functions and the sign flow without Python.
 *
 * A one-shot `pkcs11-tool -L` spends most of its time starting the interpreter. When the ABI
 * left a snapshot whose inputs are all unchanged (snapshot.c, p11fast/snapshot.py), C_Initialize
 * opens each slot's pool from the snapshot's spec through the transport's C entry points, for
 * which it loads libpython without starting it and the ABI's extension beside this library
 * (at the first pool: a slot whose presence is recorded, below, opens none until it needs one).
 * The six functions are then answered from the snapshot, and token presence by a live
 * GET /health/ready through that pool, as the ABI asks it (and cached as long, PRESENCE_TTL).
 *
 * Presence shared between processes: a present answer is recorded beside the snapshot
 * (presence.c) and another process with the same snapshot takes it as its own for the rest of
 * PRESENCE_TTL, so a `pkcs11-tool -L` loop asks the HSM about once a second, not once per
 * process. A slot's pool is therefore opened (and its background thread starts connecting) only
 * when its presence is not known from a fresh record: in C_Initialize when the record has no
 * fresh answer for it (or when the process promotes at once, see below), else at the first
 * live check it needs. An absent token is never taken from the record: that answer is always
 * live, so the reason the ABI logs for it is live too.
 *
 * Nothing here logs: a snapshot exists only for configurations whose C_Initialize logged
 * nothing, and what the ABI logs on these paths is below Warn — except why a token is absent,
 * which the ABI says at Warn once per slot and process (at the default level nothing else
 * would tell why `pkcs11-tool -L` shows an empty slot). So a light call that finds a token
 * absent promotes before it returns, handing the ABI the answers with the transport's reason,
 * and the ABI logs it through the configured targets: a process with the HSM away pays for
 * Python, one with the HSM there does not.
 *
 * C_OpenSession, C_CloseSession, C_CloseAllSessions and C_GetSessionInfo run the ABI's own code
 * (p11fast/abi/compiled.h) on the ABI's own session table, from its extension loaded beside
 * libpython, still without starting Python: a `p11tool --list-tokens` opens and closes a session
 * per token, and the sign flow needs one before anything else. The session counts in C_GetTokenInfo
 * are then that table's. The ABI's C_Initialize at promotion takes the sessions over, so their
 * handles stay valid. The sign flow of a one-shot `pkcs11-tool --sign` runs the same way: C_Login,
 * C_Logout, C_FindObjectsInit, C_FindObjects, C_FindObjectsFinal, C_GetAttributeValue, the four
 * C_Sign* and the four C_Decrypt* (light_compiled.c), given the operator's username, the
 * token's PIN lengths and the mechanism policy from the snapshot, and the light pools to reach the
 * HSM. Two rules keep their answers the ABI's. What the compiled code cannot answer (what it would
 * log, the cold path) it refuses with P11F_ABI_NEEDS_PYTHON before changing anything, and the call
 * promotes and goes to the ABI's entry point as if light mode had never seen it. And a failure the
 * ABI logs (a refused C_SignInit, a signature the HSM failed) waits for Python: after a call
 * that left one, the process promotes before returning, and the ABI's C_Initialize writes it
 * through the configured targets, as for an absent token.
 *
 * Any other function "promotes": Python starts, the ABI is initialised with the application's
 * C_Initialize arguments, its pools take over the light pools (and their connections), and the
 * call goes on to the ABI. Promotion publishes the ABI's table only once its C_Initialize
 * succeeded, so a concurrent caller either waits here or sees a fully initialised ABI.
 *
 * Which processes need Python is predictable: a loop of `pkcs11-tool --keypairgen` promotes every
 * time, a loop of `-L` never. A process that promoted counts itself in a mark beside the snapshot
 * (<snapshot>.full: how many in a row did); once P11F_FULL_MARK_EARLY did, the next process with
 * that snapshot promotes in C_Initialize itself, right after opening the pools, so the TLS
 * handshake runs on the transport's thread while the interpreter starts instead of before it (the
 * presence check would otherwise wait for it, and promotion only come after). A process that then
 * calls nothing that needs Python, promoted that way or light throughout, removes the mark at
 * C_Finalize. Two in a row, not one: where listings and calls that need Python alternate, a listing
 * promoted early pays the whole interpreter for nothing, while such a call promoted late pays only
 * the handshake it could have overlapped. Only timing depends on the mark: both paths give the same
 * answers.
 *
 * Fork: a child starts with light mode off (light_after_fork_child, from the loader's fork
 * handler) and calls C_Initialize like any child; the transport's fork handling abandons the
 * inherited pools.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "loader.h"
#include "snapshot.h"

#define WHY_SIZE 256

/* The transport's entry points (transport.c), once light mode is entered. */
static const struct transport_api *transport;
/* The ABI's compiled session functions (transport.c), once a session function needs them. */
static const struct compiled_api *compiled;

struct presence {
    int known, present;
    long long at_ns;
    long status;        /* HTTP status of the check, 0 when no instance answered */
    char why[WHY_SIZE]; /* p11f_transport_get's: the instance, or the instance and the reason */
};

/* Everything below is guarded by light_lock. */
static pthread_mutex_t light_lock = PTHREAD_MUTEX_INITIALIZER;
static int light_on;
static struct snapshot snap;
static void **pools;
static struct presence *presence;
static int threads; /* the pools' threads_allowed, as the ABI decides */
static CK_C_INITIALIZE_ARGS saved_args;
static int saved_args_given;
static char *saved_reserved;
static char full_mark[PATH_MAX + 40]; /* <snapshot>.full, or "" */
static int full_count;                /* what the mark said when this process started */
/* Promoted in C_Initialize because of the mark, and no call has needed Python since. */
_Atomic int early_unconfirmed;
/* A presence check found a token absent, and the ABI has not been told why. */
static int absence_untold;
/* The ABI's session table is set up for this process's slots (compiled_on). */
static int compiled_started;

void light_after_fork_child(void)
{
    /* The parent's state belongs to the parent: dropped, not freed (another thread of the
     * parent may have been changing it), and the lock made anew. */
    pthread_mutex_init(&light_lock, NULL);
    light_on = 0;
    pools = NULL;
    presence = NULL;
    saved_reserved = NULL;
    absence_untold = 0;
    compiled_started = 0;
    memset(&snap, 0, sizeof snap);
}

static void drop_light_state(void)
{
    for (CK_ULONG i = 0; pools && i < snap.nslots; i++)
        if (pools[i])
            transport->release(pools[i]);
    free(pools);
    free(presence);
    free(saved_reserved);
    snapshot_free(&snap);
    pools = NULL;
    presence = NULL;
    saved_reserved = NULL;
    compiled_started = 0;
    light_on = 0;
}

/* The ABI's own argument rule; anything it would refuse goes to the ABI, which says so. */
static int acceptable(const CK_C_INITIALIZE_ARGS *args)
{
    int supplied;
    if (!args)
        return 1;
    supplied = (args->CreateMutex != NULL) + (args->DestroyMutex != NULL) +
               (args->LockMutex != NULL) + (args->UnlockMutex != NULL);
    return supplied == 0 || supplied == 4;
}

static int open_pool(CK_ULONG slot)
{
    /* Loaded at the first pool, not on entry: a slot whose presence another process recorded
     * needs neither, and loading them is most of what such a listing would cost. */
    if (!transport && !(python_idle(1) && (transport = transport_api())))
        return 0;
    if (!pools[slot])
        pools[slot] = transport->open(snap.slots[slot].spec, snap.slots[slot].spec_len, threads);
    return pools[slot] != NULL;
}

/* How many processes in a row needed Python, as the mark says (0: no mark). */
static int read_full_mark(void)
{
    char digit = 0;
    int fd = open(full_mark, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return 0;
    if (read(fd, &digit, 1) != 1 || digit < '1' || digit > '9')
        digit = '1';
    close(fd);
    return digit - '0';
}

/* Only timing depends on it, so a failure to write it is no failure. */
static void set_full_mark(int count)
{
    char digit = (char)('0' + (count < P11F_FULL_MARK_EARLY ? count : P11F_FULL_MARK_EARLY));
    int fd;
    if (count == 0) {
        unlink(full_mark);
    } else if ((fd = open(full_mark, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                          0600)) >= 0) {
        if (write(fd, &digit, 1) != 1)
            unlink(full_mark);
        close(fd);
    }
}

/* Light mode on; *early: the mark says this process will need Python (promote at once). */
static int enter(const CK_C_INITIALIZE_ARGS *args, int *early)
{
    char dir[PATH_MAX];
    const char *reserved = args ? (const char *)args->pReserved : NULL;
    /* A Python host gets nothing from light mode: its interpreter already runs. */
    if (!acceptable(args) || !python_idle(0) || !package_dir(dir, sizeof dir) ||
        !snapshot_load(&snap, dir, reserved))
        return 0;
    if (!(pools = calloc(snap.nslots, sizeof *pools)) ||
        !(presence = calloc(snap.nslots, sizeof *presence)) ||
        (reserved && !(saved_reserved = strdup(reserved)))) {
        drop_light_state();
        return 0;
    }
    /* As the ABI decides, so that its pools can take these over. */
    threads = !(args && (args->flags & CKF_LIBRARY_CANT_CREATE_OS_THREADS)) &&
              !snap.disable_threads;
    snprintf(full_mark, sizeof full_mark, "%s" P11F_FULL_MARK_SUFFIX, snap.path);
    full_count = read_full_mark();
    *early = full_count >= P11F_FULL_MARK_EARLY;
    for (CK_ULONG i = 0; i < snap.nslots; i++)
        if ((*early || presence_shared_age(&snap, i) < 0) && !open_pool(i)) {
            drop_light_state();
            return 0;
        }
    saved_args_given = args != NULL;
    if (args) {
        saved_args = *args;
        saved_args.pReserved = saved_reserved;
    }
    light_on = 1;
    return 1;
}


/* Under light_lock with light mode on: Python started, the ABI initialised as the application
 * initialised us (its pools adopt ours) and published. NULL with *rv set on failure, light mode
 * still on. */
static CK_FUNCTION_LIST_3_0 *promote_locked(CK_RV *rv)
{
    CK_FUNCTION_LIST_3_0 *table = initialize_abi(saved_args_given ? &saved_args : NULL, rv);
    if (table && *rv != CKR_OK) {
        say("cannot go on from the light mode: the module's C_Initialize returned 0x%lx",
            (unsigned long)*rv);
        table = NULL;
        *rv = CKR_GENERAL_ERROR;
    }
    if (table) {
        /* What the application saw stays what it saw, for C_WaitForSlotEvent. */
        for (CK_ULONG i = 0; i < snap.nslots; i++)
            if (presence[i].known)
                seed_presence((int)i, presence[i].present, presence[i].at_ns / 1e9,
                              presence[i].status, presence[i].why);
        /* The ABI's pools adopted the light pools: releasing them only lets go of ours. */
        drop_light_state();
        publish_abi(table);
    }
    return table;
}

int light_initialize(CK_VOID_PTR pInitArgs, CK_RV *rv)
{
    int answered = 1, early;
    CK_RV promoted;
    pthread_mutex_lock(&light_lock);
    if (light_on) {
        *rv = CKR_CRYPTOKI_ALREADY_INITIALIZED;
    } else if (enter(pInitArgs, &early)) {
        *rv = CKR_OK;
        /* A failure here only leaves light mode on: the next call that needs Python retries. */
        if (early && promote_locked(&promoted))
            atomic_store(&early_unconfirmed, 1);
    } else {
        answered = 0;
    }
    pthread_mutex_unlock(&light_lock);
    return answered;
}

void light_after_finalize(void)
{
    if (atomic_exchange(&early_unconfirmed, 0))
        set_full_mark(0);
}

/* Takes light_lock and keeps it when light mode is on; otherwise lets go and says so. */
static int lock_if_on(void)
{
    pthread_mutex_lock(&light_lock);
    if (light_on)
        return 1;
    pthread_mutex_unlock(&light_lock);
    return 0;
}

/* The ABI's argument checks of the slot, token and mechanism queries, in its order. */
static CK_RV check_slot(CK_SLOT_ID slotID, const void *pInfo)
{
    if (slotID >= snap.nslots)
        return CKR_SLOT_ID_INVALID;
    return pInfo ? CKR_OK : CKR_ARGUMENTS_BAD;
}

int light_finalize(CK_VOID_PTR pReserved, CK_RV *rv)
{
    if (!lock_if_on())
        return 0;
    if (pReserved) {
        *rv = CKR_ARGUMENTS_BAD;
    } else {
        /* Light throughout: the run of processes that needed Python, if any, ends here. */
        if (full_count)
            set_full_mark(0);
        if (compiled_started)
            compiled->end();
        drop_light_state();
        *rv = CKR_OK;
    }
    pthread_mutex_unlock(&light_lock);
    return 1;
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The ABI's slot_present: an instance answers GET /health/ready with 200 (or did, for another
 * process, less than PRESENCE_TTL ago). */
static int present(CK_ULONG slot)
{
    struct presence *p = &presence[slot];
    long long now = now_ns(), age;
    long status = 0;
    if (p->known && now - p->at_ns < P11F_PRESENCE_TTL_NS)
        return p->present;
    if ((age = presence_shared_age(&snap, slot)) >= 0) {
        p->present = 1;
        p->status = 200;
        p->why[0] = '\0';
        p->at_ns = now - age;
    } else {
        if (!open_pool(slot))
            snprintf(p->why, sizeof p->why, "cannot set up a connection pool for the slot");
        p->present = pools[slot] &&
                     transport->get(pools[slot], "/health/ready", &status, p->why,
                                    sizeof p->why) == TP_OK &&
                     status == 200;
        p->status = status;
        p->at_ns = now;
        absence_untold |= !p->present;
        presence_share(&snap, slot, p->present);
    }
    p->known = 1;
    return p->present;
}

/* Before a light call that found a token absent returns: the ABI says why (see the top). A
 * failed promotion said its own reason and leaves light mode on. */
static void tell_absence_locked(void)
{
    CK_RV rv;
    if (absence_untold) {
        absence_untold = 0;
        promote_locked(&rv);
    }
}

int light_get_info(CK_INFO_PTR pInfo, CK_RV *rv)
{
    if (!lock_if_on())
        return 0;
    if (!pInfo)
        *rv = CKR_ARGUMENTS_BAD;
    else {
        *pInfo = snap.info;
        *rv = CKR_OK;
    }
    pthread_mutex_unlock(&light_lock);
    return 1;
}

int light_get_slot_list(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount,
                        CK_RV *rv)
{
    CK_SLOT_ID ids[P11F_MAX_SLOTS];
    CK_ULONG n = 0;
    if (!lock_if_on())
        return 0;
    if (!pulCount) {
        *rv = CKR_ARGUMENTS_BAD;
    } else {
        for (CK_ULONG i = 0; i < snap.nslots; i++)
            if (!tokenPresent || present(i))
                ids[n++] = i;
        if (pSlotList && *pulCount < n) {
            *rv = CKR_BUFFER_TOO_SMALL;
        } else {
            if (pSlotList)
                memcpy(pSlotList, ids, n * sizeof *ids);
            *rv = CKR_OK;
        }
        *pulCount = n;
        tell_absence_locked();
    }
    pthread_mutex_unlock(&light_lock);
    return 1;
}

int light_get_slot_info(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo, CK_RV *rv)
{
    if (!lock_if_on())
        return 0;
    if ((*rv = check_slot(slotID, pInfo)) == CKR_OK) {
        *pInfo = snap.slots[slotID].slot;
        if (present(slotID))
            pInfo->flags |= CKF_TOKEN_PRESENT;
        tell_absence_locked();
    }
    pthread_mutex_unlock(&light_lock);
    return 1;
}

int light_get_token_info(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo, CK_RV *rv)
{
    if (!lock_if_on())
        return 0;
    if ((*rv = check_slot(slotID, pInfo)) == CKR_OK) {
        if (present(slotID)) {
            *pInfo = snap.slots[slotID].token;
            if (compiled_started)
                compiled->session_counts(slotID, pInfo);
        } else {
            *rv = CKR_TOKEN_NOT_PRESENT;
        }
        tell_absence_locked();
    }
    pthread_mutex_unlock(&light_lock);
    return 1;
}

/* The ABI's C_GetMechanismList: no presence check, the standard's rule for a list. */
int light_get_mechanism_list(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList,
                             CK_ULONG_PTR pulCount, CK_RV *rv)
{
    if (!lock_if_on())
        return 0;
    if ((*rv = check_slot(slotID, pulCount)) == CKR_OK) {
        if (pMechanismList && *pulCount < snap.nmechanisms)
            *rv = CKR_BUFFER_TOO_SMALL;
        else if (pMechanismList)
            memcpy(pMechanismList, snap.mechanism_types,
                   snap.nmechanisms * sizeof *snap.mechanism_types);
        *pulCount = snap.nmechanisms;
    }
    pthread_mutex_unlock(&light_lock);
    return 1;
}

int light_get_mechanism_info(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type,
                             CK_MECHANISM_INFO_PTR pInfo, CK_RV *rv)
{
    if (!lock_if_on())
        return 0;
    if ((*rv = check_slot(slotID, pInfo)) == CKR_OK) {
        *rv = CKR_MECHANISM_INVALID;
        for (CK_ULONG i = 0; i < snap.nmechanisms; i++)
            if (snap.mechanism_types[i] == type) {
                *pInfo = snap.mechanism_infos[i];
                *rv = CKR_OK;
                break;
            }
    }
    pthread_mutex_unlock(&light_lock);
    return 1;
}

/* The ABI's way to the HSM from the compiled calls, which it makes under light_lock (so this
 * must not take it): the light pools, which its own pools adopt at promotion. */
static void *pool_for(CK_SLOT_ID slot)
{
    return slot < snap.nslots && open_pool(slot) ? pools[slot] : NULL;
}

/* Under light_lock: the ABI's session table set up for the snapshot's slots, its extension
 * loaded (with libpython) if it was not yet. The ABI's C_Initialize, at promotion, takes the
 * sessions over. */
static int compiled_on(void)
{
    struct p11f_abi_slot slots[P11F_MAX_SLOTS];
    struct p11f_abi_start start = {
        .slots = slots,
        .nslots = snap.nslots,
        .threads_allowed = threads,
        .allowed = snap.allowed,
        .nallowed = snap.nallowed,
        .snapshot_path = snap.path,
        .snapshot_crc = snap.crc,
        .snapshot_len = snap.len,
        .pool_for = pool_for,
    };
    if (compiled_started)
        return 1;
    if (!compiled && !(python_idle(1) && (compiled = compiled_api())))
        return 0;
    for (CK_ULONG i = 0; i < snap.nslots; i++) {
        slots[i].users = (unsigned char)snap.slots[i].users;
        slots[i].operator_name = snap.slots[i].operator_name;
        slots[i].pin_min = snap.slots[i].token.ulMinPinLen;
        slots[i].pin_max = snap.slots[i].token.ulMaxPinLen;
    }
    compiled_started = compiled->start(&start);
    return compiled_started;
}

const struct compiled_api *light_lock_compiled(void)
{
    if (!lock_if_on())
        return NULL;
    if (compiled_on())
        return compiled;
    pthread_mutex_unlock(&light_lock);
    return NULL;
}

void light_unlock(void)
{
    pthread_mutex_unlock(&light_lock);
}

int light_present_told(CK_SLOT_ID slot)
{
    int answer = present(slot);
    tell_absence_locked();
    return answer;
}

void light_promote_counted(void)
{
    CK_RV rv;
    if (light_on && promote_locked(&rv))
        set_full_mark(full_count + 1);
}

CK_FUNCTION_LIST_3_0 *light_promote(CK_RV *rv)
{
    CK_FUNCTION_LIST_3_0 *table;
    if (!lock_if_on()) {
        *rv = CKR_CRYPTOKI_NOT_INITIALIZED;
        return published_abi();
    }
    if ((table = promote_locked(rv)))
        set_full_mark(full_count + 1);
    pthread_mutex_unlock(&light_lock);
    return table;
}
