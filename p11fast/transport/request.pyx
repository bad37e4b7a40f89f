# request: a call's attempts and the retry and failover policy (contract in request.pxd).

from libc.stdlib cimport free
from libc.string cimport memcmp, strcmp, strlen

from p11fast._decl.curl cimport *

cdef extern from * nogil:
    """
    #include <errno.h>
    #include <time.h>
    static inline void tp_sleep_ms(long ms) {
        struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
        while (nanosleep(&t, &t) == -1 && errno == EINTR) {}
    }
    """
    void tp_sleep_ms(long ms)

cdef enum:
    RETRY_429_MIN_MS = 1000

cdef enum:                       # how an attempt ended (_attempt)
    OUT_ANSWER = 0               # an HTTP response, res.status
    OUT_UNREACHED = 1            # no response, and the request never left (full transfers only)
    OUT_LOST = 2                 # no response, and the request may have reached the HSM
    OUT_BUSY = 3                 # nothing sent: every connection of the instance stayed busy
    OUT_LOCAL = 4                # out of memory, pool closed: no other instance changes that

cdef enum:                       # what the call does next (_next_step)
    STEP_DONE = 0
    STEP_FAILOVER = 1            # at once, on another instance, without using a retry
    STEP_RETRY = 2               # after delay_seconds, if one of `retries` is left

cdef struct tp_budget:           # what is left of a call's failovers and retries
    int failovers
    int retries


cdef bint _resendable(int method, const char *path) noexcept nogil:
    """Whether sending the request twice, to one instance or to two, changes nothing: such
    requests fail over to another instance whatever `retries` says, and only they are framed
    (a fallback repeats the request). GET is safe by definition; of the POSTs, NetHSM's
    sign/decrypt/encrypt and /random change nothing. Generation, import, deletion, moves and
    user changes are not: see tp_request."""
    cdef size_t n
    if method == TP_GET:
        return True
    if method != TP_POST:
        return False
    n = strlen(path)
    return ((n > 5 and memcmp(path + n - 5, b"/sign", 5) == 0)
            or (n > 8 and memcmp(path + n - 8, b"/decrypt", 8) == 0)
            or (n > 8 and memcmp(path + n - 8, b"/encrypt", 8) == 0)
            or strcmp(path, b"/random") == 0)


# ---------------------------------------------------------------- the policy

cdef int _least_busy(tp_pool *pool, int exclude) noexcept nogil:
    """The instance in rotation, other than `exclude`, with the fewest calls in flight; ties go
    round robin. -1 when there is none. Round robin alone would send half the calls to an
    instance that stalled, until every thread waits there; this way the others keep going."""
    cdef int n = pool.ninstances
    cdef int start = <int>(tp_rr_next(&pool.rr) % <unsigned int>n)
    cdef int best = -1
    cdef int best_load = 0
    cdef int load
    cdef int k
    cdef int j
    for k in range(n):
        j = (start + k) % n
        if j == exclude or not tp_load(&pool.instances[j].up):
            continue
        load = tp_load(&pool.instances[j].inflight)
        if best < 0 or load < best_load:
            best = j
            best_load = load
    return best


cdef int _pick(tp_pool *pool) noexcept nogil:
    """Where a call starts: the least busy instance in rotation; when none is, round robin over
    all of them (a request is tried anyway rather than waiting for a probe)."""
    cdef int i = _least_busy(pool, -1)
    return i if i >= 0 else <int>(tp_rr_next(&pool.rr) % <unsigned int>pool.ninstances)


cdef int _next_step(tp_pool *pool, const tp_call *call, int outcome, long status,
                    bint can_fail_over) noexcept nogil:
    """The retry and failover policy, in one place: what a call does after an attempt.

    An instance-level failure — no answer (refused, reset, TLS, timeout), 412, 5xx, or every
    connection busy — moves the request to another available instance at once, without using
    a retry, when sending it twice is harmless (call.resendable) or it provably was not
    executed (never sent, 412, busy). Otherwise, and once no instance is left, `retries`
    decides: no answer, 5xx (when the slot has another instance) and 429 are tried again; a
    412 from the last instance, a 5xx from the only one, a busy instance are the answer."""
    cdef bint answer = outcome == OUT_ANSWER
    cdef bint locked = answer and status == 412
    if outcome == OUT_LOCAL or (answer and status != 429 and not _refused(status)):
        return STEP_DONE
    if answer and status == 429:
        return STEP_RETRY  # the limit is the caller's, not the instance's: wait
    if can_fail_over and (call.resendable or locked or outcome == OUT_UNREACHED
                          or outcome == OUT_BUSY):
        return STEP_FAILOVER
    if locked or outcome == OUT_BUSY or (answer and pool.ninstances == 1):
        return STEP_DONE
    return STEP_RETRY


cdef int _take_step(tp_pool *pool, const tp_call *call, tp_budget *left, int *i, int outcome,
                    long status) noexcept nogil:
    """Applies _next_step to the attempt on instance *i, within what is left of the call's
    failovers and retries: STEP_DONE, or the step taken, *i the instance the call goes to next
    (after a retry's delay). A failover with no other instance in rotation is a retry."""
    cdef int step = _next_step(pool, call, outcome, status, left.failovers > 0)
    cdef int j
    if step == STEP_FAILOVER:
        j = _least_busy(pool, i[0])
        if j >= 0:
            left.failovers -= 1
            tp_count(&pool.n_failovers)
            i[0] = j
            return STEP_FAILOVER
        step = _next_step(pool, call, outcome, status, False)
    if step != STEP_RETRY or left.retries == 0:
        return STEP_DONE
    left.retries -= 1
    tp_count(&pool.n_retries)
    _retry_wait(pool, status)
    i[0] = _pick(pool)
    return STEP_RETRY


cdef void _retry_wait(tp_pool *pool, long status) noexcept nogil:
    """delay_seconds between retries; after a 429 at least RETRY_429_MIN_MS."""
    cdef long delay = pool.delay_ms
    if status == 429 and delay < RETRY_429_MIN_MS:
        delay = RETRY_429_MIN_MS
    if delay > 0:
        tp_sleep_ms(delay)


# ---------------------------------------------------------------- one attempt

cdef int _exchange(tp_instance *inst, tp_conn **cp, const tp_call *call, tp_buf *out,
                   long *status, tp_result *res, int *rc) noexcept nogil:
    """The request on the borrowed handle *cp: framed, or as a full transfer, to which a
    framed exchange the framing cannot take falls back on a full handle (then *cp changes).
    TP_OK with the CURLcode in *rc, or the TP_ERR_* of borrowing that handle."""
    cdef tp_conn *c = cp[0]
    cdef int err
    rc[0] = FR_FALLBACK
    if c.framed:
        rc[0] = _fr_request(c, call.method, call.path, call.auth_header, call.content_type,
                            call.body, call.body_len, out, status, res.content_type,
                            sizeof(res.content_type))
        if rc[0] != FR_FALLBACK:
            return TP_OK
        tp_count(&inst.pool.n_fallbacks)
        _give_back_refill(inst, c)
        out.len = 0
        err = _borrow(inst, CONN_FULL, cp)
        if err != TP_OK:
            return err
    rc[0] = _full_transfer(cp[0], call, out, status, res)
    return TP_OK


cdef int _unanswered(tp_conn *c, int err, CURLcode rc) noexcept nogil:
    """How an exchange on c that got no answer (err: its TP_ERR_*) ended: OUT_UNREACHED when
    the request provably never left, else OUT_LOST; OUT_LOCAL when memory ran out."""
    if err == TP_ERR_NOMEM:
        return OUT_LOCAL
    if not c.framed and _never_sent(c.easy, rc):
        return OUT_UNREACHED
    return OUT_LOST


cdef void _attempt_start(tp_result *res, tp_buf *out, int i) noexcept nogil:
    res.instance = i
    res.status = 0
    res.content_type[0] = 0
    out.len = 0  # only the answer of the last attempt is returned


cdef int _attempt(tp_pool *pool, int i, const tp_call *call, tp_buf *out, tp_result *res,
                  int *outcome) noexcept nogil:
    """One try of the call on instance i, which it marks up or down: TP_OK (an answer, in
    res.status) or TP_ERR_*, and how it ended in *outcome (OUT_*)."""
    cdef tp_instance *inst = &pool.instances[i]
    cdef tp_conn *c = NULL
    cdef long status = 0
    cdef int rc = CURLE_OK
    cdef int err
    _attempt_start(res, out, i)
    tp_refs_add(&inst.inflight, 1)
    err = _borrow(inst, CONN_FRAMED if call.resendable and inst.framing else CONN_FULL, &c)
    if err == TP_OK:
        res.attempts += 1
        err = _exchange(inst, &c, call, out, &status, res, &rc)
    if err != TP_OK:
        _borrow_failed(err, res.detail, sizeof(res.detail))
        outcome[0] = OUT_BUSY if err == TP_ERR_TIMEOUT else OUT_LOCAL
    elif rc == CURLE_OK:
        res.status = status
        res.detail[0] = 0
        outcome[0] = OUT_ANSWER
    else:
        err = _failure(c, <CURLcode>rc, res.detail, sizeof(res.detail))
        outcome[0] = _unanswered(c, err, <CURLcode>rc)
    if c != NULL:
        # Up or down before the handle goes back: a lost connection is refilled in the
        # background only while the instance is up.
        if outcome[0] == OUT_ANSWER or outcome[0] == OUT_UNREACHED or outcome[0] == OUT_LOST:
            _mark_after(inst, outcome[0] == OUT_ANSWER, status)
        _give_back_refill(inst, c)
    tp_refs_add(&inst.inflight, -1)
    return err


# ---------------------------------------------------------------- the call

cdef void _result_start(tp_result *res, tp_buf *out) noexcept nogil:
    res.status = 0
    res.error = TP_ERR_CLOSED
    res.instance = -1
    res.content_type[0] = 0
    res.attempts = 0
    res.detail[0] = 0
    out.len = 0


cdef void _call_init(tp_call *call, tp_pool *pool, int method, const char *path,
                     const char *auth_header, const char *body, size_t body_len,
                     const char *content_type) noexcept nogil:
    call.method = method
    call.path = path
    call.auth_header = auth_header
    call.body = body
    call.body_len = body_len
    call.content_type = content_type
    call.resendable = _resendable(method, path)
    call.timeout_ms = pool.timeout_ms if call.resendable else pool.slow_timeout_ms


cdef int _attempts(tp_pool *pool, const tp_call *call, tp_buf *out,
                   tp_result *res) noexcept nogil:
    """Attempts until the policy (_take_step) says done, or the pool is closed meanwhile."""
    cdef tp_budget left
    cdef int i = _pick(pool)
    cdef int err
    cdef int outcome
    left.retries = pool.retries
    left.failovers = pool.ninstances - 1  # each instance once at most, then `retries`
    while True:
        err = _attempt(pool, i, call, out, res, &outcome)
        if _take_step(pool, call, &left, &i, outcome, res.status) == STEP_DONE:
            return err
        if tp_load(&pool.closed):
            return TP_ERR_CLOSED


cdef int tp_request(tp_pool *pool, int method, const char *path, const char *auth_header,
                    const char *body, size_t body_len, const char *content_type,
                    tp_buf *out, tp_result *res) noexcept nogil:
    cdef tp_call call
    _result_start(res, out)
    if pool == NULL or tp_load(&pool.closed):
        return res.error
    if method < TP_GET or method > TP_DELETE or path == NULL:
        res.error = TP_ERR_CONNECT
        _copy_str(res.detail, sizeof(res.detail), b"invalid method or path")
        return res.error
    _pool_ref(pool)
    _call_init(&call, pool, method, path, auth_header, body, body_len, content_type)
    tp_count(&pool.n_requests)
    if not pool.threads_allowed or _bg_failed():
        _inline_checks(pool)
    res.error = _attempts(pool, &call, out, res)
    _pool_unref(pool)
    return res.error


cdef void tp_buf_free(tp_buf *b) noexcept nogil:
    free(b.data)
    b.data = NULL
    b.len = 0
    b.cap = 0


cdef const char *tp_instance_url(tp_pool *pool, int instance) noexcept nogil:
    if pool == NULL or instance < 0 or instance >= pool.ninstances:
        return NULL
    return pool.instances[instance].url
