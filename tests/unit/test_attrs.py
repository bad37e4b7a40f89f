"""p11fast.attrs: the constants against include/pkcs11t.h, and the value encodings."""

import re
import sys
from pathlib import Path

import pytest

from p11fast import attrs as A

REPO = Path(__file__).resolve().parents[2]
U = A.ulong


def _header_defines(text: str) -> dict[str, int]:
    raw = dict(re.findall(r"^\s*#\s*define\s+(CK[A-Z]?_\w+)\s+(.+?)\s*(?:/[*/].*)?$", text,
                          re.M))
    values: dict[str, int] = {}

    def value(name, depth=0):
        if name in values:
            return values[name]
        expr = raw[name]
        expr = re.sub(r"\(\s*CK_[A-Z_]+\s*\)", "", expr)  # casts
        expr = re.sub(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]*\b", r"\1", expr)
        expr = re.sub(r"\b(CK[A-Z]?_\w+)\b", lambda m: str(value(m.group(1), depth + 1)), expr)
        if not re.fullmatch(r"[\s0-9a-fA-FxX()|~+<-]*", expr):
            raise ValueError(f"cannot evaluate {name} = {raw[name]}")
        v = eval(expr) & ((1 << (8 * A.ULONG_SIZE)) - 1)  # noqa: S307 - digits/operators only
        values[name] = v
        return v

    for name in raw:
        try:
            value(name)
        except (ValueError, KeyError, SyntaxError):
            pass
    return values


def test_constants_match_header():
    header = REPO / "include" / "pkcs11t.h"
    defines = _header_defines(header.read_text())
    ours = {k: v for k, v in vars(A).items() if re.fullmatch(r"CK[AOKMCF]?_[A-Z0-9_]+", k)}
    assert len(ours) > 80
    missing = sorted(k for k in ours if k not in defines)
    assert not missing, f"not in include/pkcs11t.h: {missing}"
    wrong = {k: (hex(v), hex(defines[k])) for k, v in ours.items() if defines[k] != v}
    assert not wrong


def test_encodings():
    assert A.ULONG_SIZE == 8  # LP64 (Linux x86_64/aarch64)
    assert U(3) == (3).to_bytes(8, sys.byteorder)
    assert A.to_ulong(U(0x40000600)) == 0x40000600
    assert U(A.CK_UNAVAILABLE_INFORMATION) == b"\xff" * 8
    assert A.bbool(True) == b"\x01" and A.bbool(False) == b"\x00"
    assert A.ulong_array([1, 2]) == U(1) + U(2)
    with pytest.raises(ValueError):
        A.to_ulong(b"\x01")
