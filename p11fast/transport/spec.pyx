# spec: pool_spec blobs, both ways (contract in spec.pxd).

from libc.limits cimport INT_MAX
from libc.stdint cimport int64_t, uint16_t, uint32_t
from libc.stdlib cimport calloc, free
from libc.string cimport memchr, memcmp

from p11fast._decl.posix cimport pthread_mutex_init

from _struct import Struct  # what the struct module re-exports

from p11fast.lean import fsencode  # os's, without importing os

cdef extern from * nogil:
    """
    #include <stdint.h>
    #define TP_SPEC_MAGIC "P11T"

    /* pool_spec blobs are little-endian whatever the host (see pool_spec). */
    static inline uint16_t tp_le16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
    static inline uint32_t tp_le32(const unsigned char *p) {
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    }
    static inline int64_t tp_le64(const unsigned char *p) {
        return (int64_t)((uint64_t)tp_le32(p) | (uint64_t)tp_le32(p + 4) << 32);
    }
    """
    const char *TP_SPEC_MAGIC
    uint16_t tp_le16(const unsigned char *p)
    uint32_t tp_le32(const unsigned char *p)
    int64_t tp_le64(const unsigned char *p)

cdef enum:                       # layout in pool_spec's docstring
    SPEC_VERSION = 1
    SPEC_HEAD = 60               # bytes of the header
    SPEC_INST = 20               # bytes of an instance's fixed part
    SPEC_KEEPALIVE = 1           # header flag: tcp_keepalive set
    SPEC_INSECURE = 1            # instance flags: danger_insecure_cert
    SPEC_CACERT = 2              #   cacert set (an empty path is not the same as none)

cdef enum:
    # Connecting (TCP and TLS handshake) takes milliseconds on a working network; a SYN lost
    # twice still connects within it. A TLS-silent instance fails here, not after the request's
    # timeout (with the background thread's set-ups waiting for it meanwhile).
    CONNECT_TIMEOUT_MS = 5000
    # max_idle_connections unset. It caps open connections per instance, and callers beyond it
    # wait for one: on the 2-core benchmark machine 8 connections already reach nginx's ceiling
    # with 64 threads (measured with tests/transport/load.py), 16 leaves room for an HSM with
    # more parallelism and longer round trips. Nitrokey's default, the CPU count, was a problem
    # only because its callers beyond the cap reconnect instead of waiting.
    DEFAULT_CAP = 16
    # connections_max_idle_duration unset means "no limit"; libcurl's own default is 118 s
    NO_MAXAGE_S = 10 * 365 * 86400


# ---------------------------------------------------------------- decoding (C)

cdef struct spec_reader:      # the unread rest of a pool_spec blob
    const unsigned char *p
    size_t left


cdef const unsigned char *_take(spec_reader *r, size_t n) noexcept nogil:
    """The next n bytes, or NULL when fewer are left."""
    cdef const unsigned char *p = r.p
    if n > r.left:
        return NULL
    r.p += n
    r.left -= n
    return p


cdef bint _spec_instance(spec_reader *r, tp_instance *inst) noexcept nogil:
    """Reads one instance's settings into inst. False on a malformed record or no memory."""
    cdef const unsigned char *h = _take(r, SPEC_INST)
    cdef const unsigned char *url
    cdef const unsigned char *pins
    cdef const unsigned char *cacert
    cdef uint32_t flags
    cdef uint32_t npins
    cdef uint32_t url_len
    cdef uint32_t cacert_len
    if h == NULL:
        return False
    flags = tp_le32(h + 4)
    npins = tp_le32(h + 8)
    url_len = tp_le32(h + 12)
    cacert_len = tp_le32(h + 16)
    inst.cap = <int>tp_le32(h)
    if inst.cap < 1 or flags & ~<uint32_t>(SPEC_INSECURE | SPEC_CACERT) \
            or (cacert_len and not flags & SPEC_CACERT) or npins > r.left // PIN_LEN \
            or npins > <uint32_t>INT_MAX:
        return False
    url = _take(r, url_len)
    pins = _take(r, <size_t>npins * PIN_LEN)
    cacert = _take(r, cacert_len)
    # C strings from here on: an embedded NUL would make them mean something else
    if url == NULL or pins == NULL or cacert == NULL or memchr(url, 0, url_len) != NULL \
            or memchr(cacert, 0, cacert_len) != NULL:
        return False
    inst.insecure = flags & SPEC_INSECURE != 0
    inst.url = _dup(url, url_len)
    if inst.url == NULL:
        return False
    inst.url_len = url_len
    if npins:
        inst.pins = <unsigned char *>_dup(pins, <size_t>npins * PIN_LEN)
        if inst.pins == NULL:
            return False
        inst.npins = <int>npins
    if flags & SPEC_CACERT:
        inst.cacert = _dup(cacert, cacert_len)
        if inst.cacert == NULL:
            return False
    return _split_url(inst)


cdef bint _spec_build(tp_pool *pool, spec_reader *r, int count, int *failed) noexcept nogil:
    """Sets up pool.instances[0:count] from r; on False, _pool_free releases what was made."""
    cdef tp_instance *inst
    cdef tp_conn *c
    cdef int i
    for i in range(count):
        inst = &pool.instances[i]
        pthread_mutex_init(&inst.lock, NULL)
        pool.ninstances += 1
        inst.pool = pool
        inst.up = 1
        inst.last_check_ms = -HEALTH_INTERVAL_MS
        if not _spec_instance(r, inst):
            return False
        # Configure one handle now, of the kind the hot path uses: a bad option fails here,
        # not on the first C_Sign; with threads it is the one the background connects.
        c = _conn_new(inst, CONN_FRAMED if inst.framing else CONN_FULL)
        if c == NULL:
            failed[0] = i
            return False
        inst.nconns = 1
        _give_back(inst, c)
        inst.setup_wanted = inst.framing and pool.threads_allowed
    return r.left == 0


cdef tp_pool *_spec_pool(const unsigned char *spec, size_t n, int threads_allowed,
                         int *failed) noexcept nogil:
    """A pool from a pool_spec() blob, not registered yet (lifetime.pyx: _pool_from_spec)."""
    cdef spec_reader r
    cdef const unsigned char *h
    cdef tp_pool *pool
    cdef uint16_t flags
    cdef uint32_t count
    failed[0] = -1
    if spec == NULL:
        return NULL
    r.p = spec
    r.left = n
    h = _take(&r, SPEC_HEAD)
    if h == NULL or memcmp(h, TP_SPEC_MAGIC, 4) != 0 or tp_le16(h + 4) != SPEC_VERSION:
        return NULL
    flags = tp_le16(h + 6)
    count = tp_le32(h + 8)
    # count is bounded by what the blob can hold before anything is allocated for it
    if flags & ~<uint16_t>SPEC_KEEPALIVE or count == 0 or count > r.left // SPEC_INST:
        return NULL
    pool = <tp_pool *>calloc(1, sizeof(tp_pool))
    if pool == NULL:
        return NULL
    pool.instances = <tp_instance *>calloc(count, sizeof(tp_instance))
    if pool.instances == NULL:
        free(pool)
        return NULL
    pool.refs = 1
    pool.threads_allowed = threads_allowed != 0
    pool.retries = <int>tp_le32(h + 12)
    pool.delay_ms = tp_le64(h + 16)
    _set_timeouts(pool, tp_le64(h + 24))
    pool.keepalive = flags & SPEC_KEEPALIVE != 0
    pool.keepidle = tp_le64(h + 32)
    pool.keepintvl = tp_le64(h + 40)
    pool.keepcnt = <int>tp_le32(h + 48)
    pool.maxage_conn = tp_le64(h + 52)
    if pool.retries < 0 or (not pool.keepalive and (pool.keepidle or pool.keepintvl or pool.keepcnt)) \
            or not _spec_build(pool, &r, <int>count, failed):
        _pool_free(pool)
        return NULL
    return pool


cdef void _set_timeouts(tp_pool *pool, int64_t configured_ms) noexcept nogil:
    """timeout_seconds for every request, or (unset: <= 0) the defaults; see spec.pxd."""
    if configured_ms > 0:
        pool.timeout_ms = <long>configured_ms
        pool.slow_timeout_ms = <long>configured_ms
    else:
        pool.timeout_ms = DEFAULT_TIMEOUT_MS
        pool.slow_timeout_ms = DEFAULT_SLOW_TIMEOUT_MS
    pool.connect_timeout_ms = min(pool.timeout_ms, <long>CONNECT_TIMEOUT_MS)


# ---------------------------------------------------------------- encoding (Python)

cdef bytes _pin_bytes(pin):
    if isinstance(pin, str):
        pin = bytes.fromhex(pin.replace(":", ""))
    if not isinstance(pin, bytes) or len(pin) != PIN_LEN:
        raise ValueError("sha256_fingerprints entries must be 32-byte SHA-256 digests")
    return pin


cdef bytes _c_string(bytes b, what):
    if b"\0" in b:
        raise ValueError(f"{what} must not contain a NUL byte")
    return b


cdef long _ms(seconds):
    return <long>(float(seconds) * 1000) if seconds is not None else 0


_SPEC_HEAD = Struct("<4sHHIiqqqqiq")
_SPEC_INST = Struct("<iIIII")


def pool_spec(slot_config):
    """Everything a pool takes from a slot config, as the blob _spec_pool builds it from (for
    Pool() and for p11f_transport_open, the loader's light mode). Raises what Pool() raises for a
    config it cannot use (ValueError: no instance, a bad fingerprint).

    Version 1, little-endian, no padding. Header (60 bytes):
      0 "P11T"  4 u16 version  6 u16 flags (1: tcp_keepalive)  8 u32 instances (>= 1)
      12 i32 retries (>= 0)  16 i64 delay ms  24 i64 timeout ms (<= 0: the defaults)
      32 i64 keepalive idle s  40 i64 keepalive interval s  48 i32 keepalive probes
      52 i64 connections' max idle age s        (keepalive fields 0 without its flag)
    Then per instance, 20 bytes: 0 i32 max connections (>= 1)  4 u32 flags (1:
      danger_insecure_cert, 2: cacert set)  8 u32 fingerprints  12 u32 URL length
      16 u32 cacert length (0 without its flag)
    followed by the URL (no trailing '/'), 32 bytes per fingerprint, the cacert path (neither
    string NUL-terminated nor containing a NUL). Nothing may follow the last instance."""
    instances = list(slot_config.instances)
    if not instances:
        raise ValueError(f"slot {slot_config.label!r} has no instance")
    # Typed as the pool's fields, so a value out of their range fails here as it always has.
    cdef int retries = 0
    cdef long delay_ms = 0
    cdef long timeout_ms = _ms(getattr(slot_config, "timeout_seconds", None))
    cdef long keepidle = 0
    cdef long keepintvl = 0
    cdef int keepcnt = 0
    cdef long maxage = NO_MAXAGE_S
    cdef int cap
    cdef unsigned int flags = 0
    retry = getattr(slot_config, "retries", None)
    if retry is not None:
        retries = max(0, int(retry.count))
        delay_ms = _ms(retry.delay_seconds)
    keepalive = getattr(slot_config, "tcp_keepalive", None)
    if keepalive is not None:
        flags = SPEC_KEEPALIVE
        keepidle = int(keepalive.time_seconds)
        keepintvl = int(keepalive.interval_seconds)
        keepcnt = int(keepalive.retries)
    max_age = getattr(slot_config, "connections_max_idle_duration", None)
    if max_age is not None:
        maxage = int(max_age)
    parts = [_SPEC_HEAD.pack(TP_SPEC_MAGIC[:4], SPEC_VERSION, flags, len(instances), retries,
                             delay_ms, timeout_ms, keepidle, keepintvl, keepcnt, maxage)]
    for spec in instances:
        url = _c_string(spec.url.rstrip("/").encode(), "url")
        max_idle = getattr(spec, "max_idle_connections", None)
        # 0 would leave no connection at all: every call would wait for nothing
        cap = max(1, int(max_idle)) if max_idle is not None else DEFAULT_CAP
        pins = b"".join(_pin_bytes(p) for p in getattr(spec, "sha256_fingerprints", ()) or ())
        cacert = getattr(spec, "cacert", None)
        path = _c_string(fsencode(cacert), "cacert") if cacert is not None else b""
        flags = SPEC_INSECURE if getattr(spec, "danger_insecure_cert", False) else 0
        if cacert is not None:
            flags |= SPEC_CACERT
        parts += [_SPEC_INST.pack(cap, flags, len(pins) // PIN_LEN, len(url), len(path)),
                  url, pins, path]
    return b"".join(parts)
