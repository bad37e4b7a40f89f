# health: whether each instance is in rotation, the checks that bring it back, and the
# transport's one background thread, which runs those checks and sets connections up.
#
# Rotation: an instance leaves it after an instance-level failure (_mark_after: no answer; a
# 412 or 5xx, _refused, when the slot has another instance) and comes back when a check finds it Operational — `GET /health/ready` answers 200 (keyfender
# answers 412 while Locked or Unprovisioned, when `/health/alive` would say 200) — or when a
# request gets a real answer from it. An instance is checked at most once a second, 1 s
# timeout (Nitrokey's values).
# Checks: with threads allowed, the background thread drives the multi interface, checking
# every down instance of every live pool when due, and sleeps on a condition variable while
# nothing is down. Without (CKF_LIBRARY_CANT_CREATE_OS_THREADS / disable_threads, or no thread
# could start), a request first re-checks up to 3 down instances inline (_inline_checks), so
# one call sends at most retries.count + instances + 3 requests (Nitrokey's formula, plus one
# failover per instance).
# Set-up: the background thread connects, TLS handshake included, the framed connection each
# instance gets at pool creation, and reconnects a framed handle a request gave back without
# a connection (_give_back_refill: server closed it, idle age, failure) while the instance is
# up. A caller never waits for that: if it needs a connection while one is being set up, it
# opens its own when the cap allows, and waits like any caller only when it does not (pool).
# Thread lifetime: the thread starts on the first kick while a live pool exists and is joined,
# never left running: closing the last live pool (C_Finalize, _bg_stop(False)), the process's
# exit (_at_exit, registered after OpenSSL's exit handler so it runs first, _bg_stop(True): no
# thread again, checks go inline) and fork() (_bg_fork_prepare; the parent starts it again)
# stop it, aborting a set-up or check in progress at its next step (within a second, conn:
# _bg_set_stopping). It must not be inside libcurl or OpenSSL while OpenSSL's exit handler
# frees their global state (that crashed processes exiting right after C_Initialize), nor at
# fork(): OpenSSL 3 has no fork handlers, and a lock of its held by the thread stays held in
# the child.
#
# Contract: every function is nogil and safe from any thread but the background thread's own
# (which never calls _bg_stop or the fork functions). _bg_kick, _bg_started and the thread's
# state take or need g_tp_lock (pool); _bg_stop and the fork functions serialise on their own
# join lock, taken before g_tp_lock. _bg_started is read under g_tp_lock.
# uses: types, sync, conn, http1, pool

cdef enum:
    HEALTH_INTERVAL_MS = 1000    # an instance is health-checked at most once per second

cdef void _mark_down(tp_instance *inst) noexcept nogil
cdef void _inline_checks(tp_pool *pool) noexcept nogil
cdef void _bg_init() noexcept nogil
cdef void _bg_kick() noexcept nogil
cdef bint _bg_failed() noexcept nogil
cdef bint _bg_started() noexcept nogil
cdef void _bg_stop(bint for_good) noexcept nogil
cdef void _at_exit() noexcept nogil
cdef bint _bg_fork_prepare() noexcept nogil
cdef void _bg_fork_parent(bint restart) noexcept nogil
cdef void _bg_after_fork_child(bint released) noexcept nogil


# Inline: they run on every request (request.pyx), where the single-file build used to inline
# them; a function declared here is otherwise exported in the module's C API (__pyx_capi__),
# which takes its address and keeps the C compiler from inlining it.

cdef inline bint _refused(long status) noexcept nogil:
    """An answer that says the instance cannot serve now (412: Locked or not provisioned;
    5xx), not something about the request."""
    return status == 412 or status >= 500


cdef inline void _mark_after(tp_instance *inst, bint answered, long status) noexcept nogil:
    """After an attempt on inst: back in rotation after an answer that shows it serving; out
    when it did not answer, or refused when there is a rotation to leave (the slot has another
    instance)."""
    if answered and not _refused(status):
        tp_store(&inst.up, 1)
    elif not answered or inst.pool.ninstances > 1:
        _mark_down(inst)


cdef inline void _give_back_refill(tp_instance *inst, tp_conn *c) noexcept nogil:
    """_give_back, after which a framed handle that lost its connection and went idle asks the
    background thread to reconnect it while it sits idle. The thread's own set-ups give back
    with _give_back alone: after a failed one this would retry in a loop."""
    if _give_back(inst, c) and c.framed and c.sock < 0 and inst.pool.threads_allowed \
            and not _bg_failed() and tp_load(&inst.up) and not tp_load(&inst.pool.closed):
        tp_store(&inst.setup_wanted, 1)
        _bg_kick()
