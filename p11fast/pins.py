"""PINs are NetHSM passphrases: the lengths the module advertises and checks before it sends one.

keyfender accepts a user passphrase of 10 to 200 bytes (`valid_passphrase` in
src/keyfender/json.ml, applied to user creation, passphrase changes and provisioning) and user
IDs of at most 128 characters (the API spec's UserID). The ABI advertises these bounds as
ulMinPinLen/ulMaxPinLen and checks at import that the Authorization header of the longest
username with the longest PIN fits its credential buffers, so a PIN the HSM took can always be
used afterwards.
"""

from __future__ import annotations

from p11fast.errors import PinIncorrect, PinInvalid, PinLenRange

PIN_MIN_BYTES = 10
PIN_MAX_BYTES = 200
USERNAME_MAX_BYTES = 128


def _fits(pin: bytes) -> bool:
    return PIN_MIN_BYTES <= len(pin) <= PIN_MAX_BYTES


def new_passphrase(pin: bytes) -> str:
    """The passphrase C_SetPIN/C_InitPIN set from `pin`; raises, before anything is sent, when
    the HSM would refuse it or other clients could not type it back."""
    if not _fits(pin):
        raise PinLenRange(f"the new PIN has {len(pin)} bytes; a NetHSM passphrase has "
                          f"{PIN_MIN_BYTES} to {PIN_MAX_BYTES}")
    try:
        return pin.decode("utf-8")
    except UnicodeDecodeError:
        raise PinInvalid("the new PIN is not UTF-8 text") from None


def login_passphrase(pin: bytes) -> str:
    """The passphrase a C_Login PIN stands for. A length no NetHSM passphrase has is
    CKR_PIN_INCORRECT without asking the HSM (C_Login may not return CKR_PIN_LEN_RANGE, and a
    refused login would make the HSM delay the user)."""
    if not _fits(pin):
        raise PinIncorrect(f"the PIN has {len(pin)} bytes; a NetHSM passphrase has "
                           f"{PIN_MIN_BYTES} to {PIN_MAX_BYTES}")
    # "replace": passphrases set through earlier versions may hold U+FFFD for invalid bytes
    return pin.decode("utf-8", "replace")
