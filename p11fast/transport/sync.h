/* Atomics and the monotonic clock every piece of the transport shares (declared to Cython by
 * p11fast/transport/sync.pxd). Counters only need atomicity; flags and the refcount publish
 * state between threads. */
#ifndef P11FAST_TRANSPORT_SYNC_H
#define P11FAST_TRANSPORT_SYNC_H

#include <time.h>

static inline void tp_count(long *p) { __atomic_add_fetch(p, 1, __ATOMIC_RELAXED); }
static inline long tp_read(long *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline int tp_load(int *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void tp_store(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline int tp_swap(int *p, int v) { return __atomic_exchange_n(p, v, __ATOMIC_ACQ_REL); }
static inline int tp_cas(int *p, int expected, int v) {
    return __atomic_compare_exchange_n(p, &expected, v, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
static inline int tp_refs_add(int *p, int v) { return __atomic_add_fetch(p, v, __ATOMIC_ACQ_REL); }
static inline unsigned tp_rr_next(unsigned *p) { return __atomic_fetch_add(p, 1, __ATOMIC_RELAXED); }
static inline long long tp_load_ll(long long *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void tp_store_ll(long long *p, long long v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

static inline long long tp_now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

#endif
