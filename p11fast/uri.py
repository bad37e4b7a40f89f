"""How applications name a token and its objects: the CK_TOKEN_INFO fields that identify a
token (the ABI fills them from here) and PKCS#11 URIs (RFC 7512) built from them.

URIs are written as p11-kit's `p11_kit_uri_format` writes them, which is what `p11tool
--list-tokens` / `--list-all` print and what the OpenSSL engine, GnuTLS and p11-kit parse:
attributes in the order model, manufacturer, serial, token, then id, object, type; every byte
of `id` percent-encoded, and in the text attributes every byte outside `[A-Za-z0-9_.-]`
(uppercase hex). Plain Python without imports: the ABI imports this on C_GetTokenInfo.
"""

from __future__ import annotations

TOKEN_MANUFACTURER = "p11fast"
TOKEN_MODEL = "NetHSM"
# CKO_* -> the RFC 7512 `type` value
OBJECT_TYPES = {0: "data", 1: "cert", 2: "public", 3: "private", 4: "secret-key"}

_VERBATIM = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def token_serial(slot_index: int) -> str:
    """CK_TOKEN_INFO.serialNumber: 16 characters, the slot's index."""
    return f"{slot_index:016d}"


def _encode(value: bytes, every_byte: bool = False) -> str:
    return "".join(chr(b) if not every_byte and b in _VERBATIM else f"%{b:02X}" for b in value)


def _text(value: str, size: int) -> bytes:
    """A CK_TOKEN_INFO text field as an application reads it: UTF-8, cut at the field's size,
    trailing padding removed (p11-kit strips the spaces before formatting)."""
    return value.encode("utf-8")[:size].rstrip(b" ")


def token_uri(slot_label: str, slot_index: int) -> str:
    parts = (
        ("model", _text(TOKEN_MODEL, 16)),
        ("manufacturer", _text(TOKEN_MANUFACTURER, 32)),
        ("serial", _text(token_serial(slot_index), 16)),
        ("token", _text(slot_label, 32)),
    )
    return "pkcs11:" + ";".join(f"{name}={_encode(value)}" for name, value in parts)


def object_uri(token: str, cka_id: bytes, label: bytes, object_class: int) -> str:
    """`token` is token_uri(...); label is CKA_LABEL's value."""
    parts = [token, f"id={_encode(cka_id, every_byte=True)}"]
    if label:
        parts.append(f"object={_encode(label)}")
    kind = OBJECT_TYPES.get(object_class)
    if kind is not None:
        parts.append(f"type={kind}")
    return ";".join(parts)
