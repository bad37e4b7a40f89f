# PINs: C_SetPIN (the logged-in user's own passphrase) and C_InitPIN (the SO sets the
# operator's), and the credentials the slot keeps afterwards.

from p11fast._decl.pkcs11 cimport *
from p11fast._decl.posix cimport pthread_mutex_lock, pthread_mutex_unlock


cdef void replace_auth(slot_t *slot, bint so, bytes old, bytes new) except *:
    """After a passphrase change: every stored header that held the old credentials gets the
    new ones (the config's too, so a logout does not bring back a passphrase that is gone).
    Cannot fail once the HSM took the passphrase: p11fast.pins bounds it, the configuration
    bounds the username, and the ABI's import checks that both fit AUTH_MAX."""
    cdef char *now = &slot.op_auth[0]
    cdef char *config = &slot.op_auth_config[0]
    cdef bytes now_value, config_value
    if so:
        now = &slot.so_auth[0]
        config = &slot.so_auth_config[0]
    pthread_mutex_lock(&slot.lock)
    try:
        now_value = now
        config_value = config
        if old is None or now_value == old:
            set_auth(now, new)
        if config_value and (old is None or config_value == old):
            set_auth(config, new)
    finally:
        pthread_mutex_unlock(&slot.lock)


cdef void change_pin(call_t *s, bytes old_pin, bytes new_pin) except *:
    from p11fast.errors import PinIncorrect, UserNotLoggedIn
    from p11fast.log import register_secret
    from p11fast.pins import new_passphrase

    cdef slot_t *slot = &g_abi.slots[s.slot]
    new = new_passphrase(new_pin)
    require_rw(s)
    pthread_mutex_lock(&slot.lock)
    so = slot.login_user == CKU_SO
    header = <bytes>(&slot.so_auth[0] if so else &slot.op_auth[0])
    pthread_mutex_unlock(&slot.lock)
    slot_cfg = _state.config.slots[s.slot]
    user_cfg = slot_cfg.administrator if so else slot_cfg.operator
    if user_cfg is None or not header:
        raise UserNotLoggedIn("C_SetPIN: log in first, or set the password in the configuration")
    if basic_auth(user_cfg.username, old_pin.decode("utf-8", "replace")) != header:
        raise PinIncorrect("C_SetPIN: the old PIN is not the current passphrase")
    register_secret(new, user_cfg.username)
    pool = _state.pools[s.slot]

    def as_user(method, path, body):
        return pool.call(method, path, body, header, "application/json")[:2]

    admin_of(s.slot).set_passphrase(user_cfg.username, new, as_user)
    replace_auth(slot, so, header, basic_auth(user_cfg.username, new))


cdef void set_operator_pin(call_t *s, bytes pin) except *:
    from p11fast.errors import UserNotLoggedIn, UserTypeInvalid
    from p11fast.log import register_secret
    from p11fast.pins import new_passphrase

    cdef slot_t *slot = &g_abi.slots[s.slot]
    new = new_passphrase(pin)
    pthread_mutex_lock(&slot.lock)
    so = slot.login_user == CKU_SO
    pthread_mutex_unlock(&slot.lock)
    if not so:
        raise UserNotLoggedIn("C_InitPIN needs the SO (administrator) logged in")
    operator = _state.config.slots[s.slot].operator
    if operator is None:
        raise UserTypeInvalid("C_InitPIN: the slot has no operator in the configuration")
    register_secret(new, operator.username)
    admin_of(s.slot).set_passphrase(operator.username, new)
    replace_auth(slot, False, None, basic_auth(operator.username, new))


cdef CK_RV c_set_pin_check(call_t *call, CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pOldPin,
                         CK_ULONG ulOldLen, CK_UTF8CHAR_PTR pNewPin, CK_ULONG ulNewLen) noexcept nogil:
    if not session_call(call, hSession):
        return CKR_SESSION_HANDLE_INVALID
    if (pOldPin == NULL and ulOldLen != 0) or (pNewPin == NULL and ulNewLen != 0):
        return CKR_ARGUMENTS_BAD
    return CKR_OK


cdef CK_RV c_set_pin(call_t *call, CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pOldPin,
                   CK_ULONG ulOldLen, CK_UTF8CHAR_PTR pNewPin, CK_ULONG ulNewLen) except *:
    change_pin(call, pOldPin[:ulOldLen] if ulOldLen else b"", pNewPin[:ulNewLen] if ulNewLen else b"")
    return CKR_OK


cdef CK_RV c_init_pin_check(call_t *call, CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pPin,
                          CK_ULONG ulPinLen) noexcept nogil:
    if not session_call(call, hSession):
        return CKR_SESSION_HANDLE_INVALID
    return CKR_ARGUMENTS_BAD if pPin == NULL and ulPinLen != 0 else CKR_OK


cdef CK_RV c_init_pin(call_t *call, CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pPin,
                    CK_ULONG ulPinLen) except *:
    set_operator_pin(call, pPin[:ulPinLen] if ulPinLen else b"")
    return CKR_OK
