"""CKA_ID <-> NetHSM key ID, the mapping of Nitrokey's nethsm-pkcs11 (so keys keep their IDs
when users switch modules).

NetHSM key IDs match ``^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`` with 1 to 128 characters (the spec's
``ID`` schema). A CKA_ID can be any bytes, so:

* a CKA_ID that is itself a valid key ID (ASCII) is used as is: ``b"p11-test"`` -> ``p11-test``;
* any other CKA_ID is stored as ``0---`` + upper-case hex: ``b"\\xff"`` -> ``0---FF``,
  ``b"-key"`` -> ``0---2D6B6579`` (at most 62 bytes fit in 128 characters);
* a key ID is decoded back only if decoding and re-encoding gives the same key ID exactly:
  ``0---FF`` -> ``b"\\xff"``, but ``0---F`` (odd), ``0---FK`` (not hex), ``0---ff`` (lower
  case) and ``0---6B`` (``b"k"`` would not need encoding) read back as their own bytes.

As in nethsm-pkcs11, key ID -> CKA_ID -> key ID always round-trips. CKA_ID -> key ID -> CKA_ID
round-trips too except for a CKA_ID that is a valid key ID *and* spells an encoding (e.g.
``b"0---FF"``): it is stored under that key ID, which reads back as ``b"\\xff"``. We keep that
quirk for compatibility (Nitrokey's ``NetHSMId``).
"""

PREFIX = "0---"
# Key IDs the module reserves for itself: keys behind session objects (CKA_TOKEN=FALSE) and keys
# archived by C_DestroyObject under policy.key_invalidation. C_FindObjects never shows them as
# token objects, and a CKA_ID that maps to one is refused.
SESSION_PREFIX = "p11fastsession"
ARCHIVE_PREFIX = "zzarchive"
MAX_LEN = 128
MAX_ENCODED_BYTES = (MAX_LEN - len(PREFIX)) // 2  # 62

_ALNUM = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_REST = _ALNUM | frozenset(b"_.-")
_HEX_UPPER = frozenset(b"0123456789ABCDEF")


def _valid_bytes(b: bytes) -> bool:
    return 0 < len(b) <= MAX_LEN and b[0] in _ALNUM and _REST.issuperset(b)


def is_valid_key_id(s: str) -> bool:
    """True if ``s`` is a valid NetHSM key ID: [a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}."""
    if not isinstance(s, str) or not s.isascii():
        return False
    return _valid_bytes(s.encode("ascii"))


def cka_id_to_key_id(cka_id: bytes) -> str:
    """The NetHSM key ID for a CKA_ID (key generation/import with a given CKA_ID, and finding a
    key by CKA_ID). Raises ValueError for an empty CKA_ID or one too long to encode."""
    cka_id = bytes(cka_id)
    if _valid_bytes(cka_id):
        return cka_id.decode("ascii")
    if not cka_id:
        raise ValueError("CKA_ID must not be empty")
    if len(cka_id) > MAX_ENCODED_BYTES:
        raise ValueError(f"CKA_ID too long to encode ({len(cka_id)} > {MAX_ENCODED_BYTES} bytes)")
    return PREFIX + cka_id.hex().upper()


def key_id_to_cka_id(key_id: str) -> bytes:
    """The CKA_ID of the objects of a NetHSM key."""
    if key_id.startswith(PREFIX):
        rest = key_id[len(PREFIX):]
        # Only the exact output of cka_id_to_key_id decodes: even-length upper-case hex whose
        # bytes are not a valid key ID themselves.
        if rest and not len(rest) & 1 and len(rest) <= 2 * MAX_ENCODED_BYTES and rest.isascii():
            if _HEX_UPPER.issuperset(rest.encode("ascii")):
                decoded = bytes.fromhex(rest)
                if not _valid_bytes(decoded):
                    return decoded
    return key_id.encode("utf-8")


def is_reserved(key_id: str) -> bool:
    """True for key IDs of the module's own session keys and archived keys."""
    return key_id.startswith((SESSION_PREFIX, ARCHIVE_PREFIX))
