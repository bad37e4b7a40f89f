# sync: the atomics and the monotonic clock every piece shares (C in sync.h, beside this file).
#
# Contract: tp_count/tp_read are relaxed (statistics); tp_load/tp_store/tp_swap/tp_cas and
# tp_refs_add order memory (acquire/release) and publish flags and the pool refcount between
# threads; tp_rr_next, tp_load_ll and tp_store_ll are relaxed. tp_now_ms is CLOCK_MONOTONIC in
# milliseconds: deadlines and health-check intervals must not move with the wall clock.
# uses:

cdef extern from "p11fast/transport/sync.h" nogil:
    void tp_count(long *p)
    long tp_read(long *p)
    int tp_load(int *p)
    void tp_store(int *p, int v)
    int tp_swap(int *p, int v)
    bint tp_cas(int *p, int expected, int v)
    int tp_refs_add(int *p, int v)
    unsigned int tp_rr_next(unsigned int *p)
    long long tp_load_ll(long long *p)
    void tp_store_ll(long long *p, long long v)
    long long tp_now_ms()
