# Slots and tokens: what C_GetInfo, C_GetSlotList, C_GetSlotInfo, C_GetTokenInfo and the
# mechanism queries answer, token presence, and slot events.

from libc.string cimport memcpy, memset

from p11fast._decl.pkcs11 cimport *
from p11fast._decl.posix cimport pthread_cond_timedwait, pthread_mutex_lock, pthread_mutex_unlock

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec *ts)
    enum: CLOCK_REALTIME


cdef extern from "p11fast/loader/lightmode.h":  # from p11fast/lightmode.py
    enum: P11F_PRESENCE_TTL_NS
# How long a token-presence answer is reused: C_GetSlotInfo is called often, the HSM state rarely changes.
PRESENCE_TTL = P11F_PRESENCE_TTL_NS / 1e9
# Slots whose absent token was logged at Warn. Once per slot and process: at the default level
# nothing else says why `pkcs11-tool -L` shows an empty slot, and more would flood a server's
# log while the HSM is away (later absences are logged at Info).
_absence_warned = set()
_ABSENCE_HINTS = {
    412: " (the HSM is not Operational: unlock it)",
    404: " (does the url end in /api/v1?)",
}


cdef CK_RV c_get_info_check(call_t *call, CK_INFO_PTR pInfo) noexcept nogil:
    return CKR_ARGUMENTS_BAD if pInfo == NULL else CKR_OK


cdef CK_RV c_get_info(call_t *call, CK_INFO_PTR pInfo) except *:
    fill_info(pInfo)
    return CKR_OK


cdef void fill_info(CK_INFO *pInfo) noexcept:
    # The version of the list C_GetFunctionList hands out; the 3.0 interface is offered by
    # C_GetInterface.
    pInfo.cryptokiVersion.major = 2
    pInfo.cryptokiVersion.minor = 40
    pad_copy(pInfo.manufacturerID, 32, "p11fast")
    pInfo.flags = 0
    pad_copy(pInfo.libraryDescription, 32, "p11fast PKCS#11 for NetHSM")
    pInfo.libraryVersion.major = 0
    pInfo.libraryVersion.minor = 1


cdef bint slot_present(int slot, bint shared_ok=True) except -1:
    """Token present = an instance answers and is Operational (GET /health/ready is 200), or
    did for another process less than PRESENCE_TTL ago (shared_ok)."""
    import time

    now = time.monotonic()
    cached = _state.presence.get(slot)
    if cached is not None and now - cached[0] < PRESENCE_TTL:
        return cached[1]
    shared = _state.shared_presence
    age = shared.age(slot) if shared is not None and shared_ok else None
    if age is not None:  # p11fast/snapshot.py
        _state.presence[slot] = (now - age, True)
        _state.reported.setdefault(slot, True)
        return True
    try:
        status, _, _ = _state.pools[slot].call("GET", "/health/ready")
        present = status == 200
        if not present:
            report_absent(slot, status, _instances_of(slot))
    except Exception as exc:
        url = getattr(exc, "instance_url", None)
        report_absent(slot, 0, f"{url}: {exc.message}" if url else str(exc))
        present = False
    _state.presence[slot] = (now, present)
    if shared is not None:
        shared.note(slot, present)
    # The first presence the application could see is what C_WaitForSlotEvent counts from: a
    # token arriving after C_GetSlotList showed it absent is an event, not the baseline.
    _state.reported.setdefault(slot, present)
    return present


cdef void report_absent(int slot, long status, str why) except *:
    """Logs why slot's token is absent: `why` names the instance that answered with `status`,
    or (status 0) is the transport's `<instance URL>: <reason>`."""
    if status:
        why = f"{why} answered GET /health/ready with HTTP {status}{_ABSENCE_HINTS.get(status, '')}"
    message = f"slot {slot} ({_state.config.slots[slot].label}): token not present: {why}"
    if slot in _absence_warned:
        _state.log.info(message)
    else:
        _absence_warned.add(slot)
        _state.log.warn(message)


cdef str _instances_of(int slot):
    """The instance a presence answer came from: the transport's call does not say which."""
    urls = [instance.url for instance in _state.config.slots[slot].instances]
    return urls[0] if len(urls) == 1 else f"one of {', '.join(urls)}"


cdef void seed_presence_from_light(int slot, int present, double checked_at, long status,
                                   const char *why) noexcept nogil:
    """A presence answer light mode gave (loader/light.c), handed over when it starts the ABI:
    it is what C_WaitForSlotEvent counts from, and is reused for PRESENCE_TTL like one of ours;
    an absent token is logged as if this process had found it (light mode logs nothing).
    `checked_at` is CLOCK_MONOTONIC, time.monotonic()'s clock; `status` and `why` are
    p11f_transport_get's (transport/capi.pxd)."""
    with gil:
        if _state is None or slot < 0 or slot >= g_abi.nslots:
            return
        _state.presence[slot] = (checked_at, bool(present))
        _state.reported.setdefault(slot, bool(present))
        if not present:
            try:
                report_absent(slot, status, why.decode("utf-8", "replace") if why else "?")
            except Exception:
                pass  # a log line cannot be written: the answer stands


cdef CK_RV slot_checked(CK_SLOT_ID slotID, void *pointer) noexcept nogil:
    if slotID >= <CK_ULONG>g_abi.nslots:
        return CKR_SLOT_ID_INVALID
    return CKR_ARGUMENTS_BAD if pointer == NULL else CKR_OK


cdef CK_RV list_out(const CK_ULONG *items, CK_ULONG n, CK_ULONG *out,
                    CK_ULONG_PTR count) noexcept nogil:
    """The standard's rule for a list (slot IDs, mechanism types): NULL asks for the count, a
    short buffer gets CKR_BUFFER_TOO_SMALL with it."""
    if out == NULL:
        count[0] = n
        return CKR_OK
    if count[0] < n:
        count[0] = n
        return CKR_BUFFER_TOO_SMALL
    memcpy(out, items, n * sizeof(CK_ULONG))
    count[0] = n
    return CKR_OK


cdef CK_RV c_get_slot_list_check(call_t *call, CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList,
                               CK_ULONG_PTR pulCount) noexcept nogil:
    return CKR_ARGUMENTS_BAD if pulCount == NULL else CKR_OK


cdef CK_RV c_get_slot_list(call_t *call, CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList,
                         CK_ULONG_PTR pulCount) except *:
    cdef CK_ULONG n = 0
    cdef CK_SLOT_ID ids[MAX_SLOTS]
    cdef int i
    for i in range(g_abi.nslots):
        if not tokenPresent or slot_present(i):
            ids[n] = i
            n += 1
    return list_out(ids, n, pSlotList, pulCount)


cdef CK_RV c_get_slot_info_check(call_t *call, CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo) noexcept nogil:
    return slot_checked(slotID, pInfo)


cdef CK_RV c_get_slot_info(call_t *call, CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo) except *:
    fill_slot_info(slotID, pInfo)
    if slot_present(slotID):
        pInfo.flags |= CKF_TOKEN_PRESENT
    return CKR_OK


cdef void fill_slot_info(CK_SLOT_ID slotID, CK_SLOT_INFO *pInfo) except *:
    """Everything but CKF_TOKEN_PRESENT."""
    slot = _state.config.slots[slotID]
    pad_copy(pInfo.slotDescription, 64, slot.description or slot.label)
    pad_copy(pInfo.manufacturerID, 32, "p11fast")
    pInfo.flags = CKF_HW_SLOT | CKF_REMOVABLE_DEVICE
    pInfo.hardwareVersion.major = 0
    pInfo.hardwareVersion.minor = 1
    pInfo.firmwareVersion.major = 0
    pInfo.firmwareVersion.minor = 1


cdef CK_RV c_get_token_info_check(call_t *call, CK_SLOT_ID slotID,
                                CK_TOKEN_INFO_PTR pInfo) noexcept nogil:
    return slot_checked(slotID, pInfo)


cdef CK_RV c_get_token_info(call_t *call, CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo) except *:
    if not slot_present(slotID):
        return CKR_TOKEN_NOT_PRESENT
    fill_token_text(slotID, pInfo)
    return CKR_OK


cdef CK_RV c_get_token_info_finish(call_t *call, CK_RV rv, CK_SLOT_ID slotID,
                                 CK_TOKEN_INFO_PTR pInfo) noexcept nogil:
    if rv == CKR_OK:
        fill_token_numbers(slotID, pInfo)
    return rv


cdef void fill_token_text(CK_SLOT_ID slotID, CK_TOKEN_INFO *pInfo) except *:
    # What identifies a token lives in p11fast.uri, which `p11fast check` builds URIs from.
    from p11fast import uri

    slot = _state.config.slots[slotID]
    pad_copy(pInfo.label, 32, slot.label)
    pad_copy(pInfo.manufacturerID, 32, uri.TOKEN_MANUFACTURER)
    pad_copy(pInfo.model, 16, uri.TOKEN_MODEL)
    pad_copy(pInfo.serialNumber, 16, uri.token_serial(slotID))


cdef void fill_token_numbers(CK_SLOT_ID slotID, CK_TOKEN_INFO *pInfo) noexcept nogil:
    """Flags, counts and versions: without the GIL, since the counts are read under g_abi.lock."""
    cdef slot_t *s = &g_abi.slots[slotID]
    pInfo.flags = CKF_RNG | CKF_TOKEN_INITIALIZED
    if s.has_operator:
        # No operator in the configuration: no normal user whose PIN could be used.
        pInfo.flags |= CKF_USER_PIN_INITIALIZED
    if not s.operator_implicit:
        pInfo.flags |= CKF_LOGIN_REQUIRED
    pthread_mutex_lock(&g_abi.lock)
    pInfo.ulSessionCount = s.sessions
    pInfo.ulRwSessionCount = s.rw_sessions
    pthread_mutex_unlock(&g_abi.lock)
    pInfo.ulMaxSessionCount = MAX_SESSIONS
    pInfo.ulMaxRwSessionCount = MAX_SESSIONS
    pInfo.ulMaxPinLen = g_abi.pin_max
    pInfo.ulMinPinLen = g_abi.pin_min
    pInfo.ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION
    pInfo.ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION
    pInfo.ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION
    pInfo.ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION
    pInfo.hardwareVersion.major = 0
    pInfo.hardwareVersion.minor = 1
    pInfo.firmwareVersion.major = 0
    pInfo.firmwareVersion.minor = 1
    memset(pInfo.utcTime, b' ', 16)


cdef CK_RV c_get_mechanism_list(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList,
                              CK_ULONG_PTR pulCount) noexcept nogil:
    """What the module offers (p11f_mechanism_types) and the policy allows."""
    cdef CK_MECHANISM_TYPE offered[MECHANISM_COUNT]
    cdef CK_ULONG n = 0
    cdef int i
    cdef CK_RV rv = slot_checked(slotID, pulCount)
    if rv != CKR_OK:
        return rv
    for i in range(MECHANISM_COUNT):
        if mechanism_allowed(p11f_mechanism_types[i]):
            offered[n] = p11f_mechanism_types[i]
            n += 1
    return list_out(offered, n, pMechanismList, pulCount)


cdef CK_RV c_get_mechanism_info(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type,
                              CK_MECHANISM_INFO_PTR pInfo) noexcept nogil:
    cdef int i
    cdef CK_RV rv = slot_checked(slotID, pInfo)
    if rv != CKR_OK:
        return rv
    for i in range(MECHANISM_COUNT):
        if p11f_mechanism_types[i] == type and mechanism_allowed(type):
            pInfo[0] = p11f_mechanism_infos[i]
            return CKR_OK
    return CKR_MECHANISM_INVALID


cdef int slot_event() except -2:
    """The first slot whose presence changed since it was last reported, or -1."""
    cdef int i
    for i in range(g_abi.nslots):
        _state.presence.pop(i, None)
        present = slot_present(i, False)
        before = _state.reported.get(i)
        _state.reported[i] = present
        if before is not None and before != present:
            return i
    return -1


cdef CK_RV c_wait_for_slot_event_check(call_t *call, CK_FLAGS flags, CK_SLOT_ID_PTR pSlot,
                                     CK_VOID_PTR pReserved) noexcept nogil:
    return CKR_ARGUMENTS_BAD if pSlot == NULL or pReserved != NULL else CKR_OK


cdef CK_RV c_wait_for_slot_event(call_t *call, CK_FLAGS flags, CK_SLOT_ID_PTR pSlot,
                               CK_VOID_PTR pReserved) except *:
    cdef int found
    while True:
        if _state is None:
            return CKR_CRYPTOKI_NOT_INITIALIZED
        found = slot_event()
        if not p11f_is_initialized():
            # C_Finalize ran meanwhile: what slot_event saw may be the pools going away
            return CKR_CRYPTOKI_NOT_INITIALIZED
        if found >= 0:
            pSlot[0] = found
            return CKR_OK
        if flags & CKF_DONT_BLOCK:
            return CKR_NO_EVENT
        with nogil:
            wait_for_finalize(1)
        if not p11f_is_initialized():
            return CKR_CRYPTOKI_NOT_INITIALIZED


cdef void wait_for_finalize(int seconds) noexcept nogil:
    """Until C_Finalize (g_abi.event) or for `seconds`."""
    cdef timespec deadline
    clock_gettime(CLOCK_REALTIME, &deadline)
    deadline.tv_sec += seconds
    pthread_mutex_lock(&g_abi.lock)
    if p11f_is_initialized():
        pthread_cond_timedwait(&g_abi.event, &g_abi.lock, &deadline)
    pthread_mutex_unlock(&g_abi.lock)


cdef void pad_copy(CK_UTF8CHAR *dst, size_t size, text) noexcept:
    """Space-padded, not NUL-terminated, as CK_INFO and friends require."""
    cdef bytes raw = text.encode("utf-8")[:size]
    memset(dst, b' ', size)
    memcpy(dst, <const char *>raw, len(raw))
