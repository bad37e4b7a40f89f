"""Stand-ins for standard modules too heavy for the cold start: records and JSON.

Everything between C_Initialize and the first signature is imported by a one-shot process
(`pkcs11-tool --sign`) every time, so what is on that path avoids imports that cost more than
the work itself: `dataclasses` pulls in `inspect` (~7 ms, and ~1.5 ms per decorated class),
`json` pulls in `re` (~6 ms). This module imports only the builtin `_json` at load time, and
the compiled core (`p11fast._abi`, for its codec) when it first parses.
"""

from __future__ import annotations

try:
    from _json import encode_basestring_ascii as _quote
    from _json import make_scanner as _make_scanner
except ImportError:  # pragma: no cover - CPython always has _json
    from json.encoder import py_encode_basestring_ascii as _quote

    _make_scanner = None


class Record:
    """Immutable record built from keyword arguments, with equality, hash and repr: what
    `@dataclass(frozen=True)` gives, without importing dataclasses.

    Fields are the class annotations; a class attribute of the same name is the default.
    """

    def __init__(self, **values: object) -> None:
        cls = type(self)
        for field in cls.__annotations__:
            if field in values:
                value = values.pop(field)
            elif hasattr(cls, field):
                value = getattr(cls, field)
            else:
                raise TypeError(f"{cls.__name__}: missing field {field!r}")
            object.__setattr__(self, field, value)
        if values:
            raise TypeError(f"{cls.__name__}: unknown fields {sorted(values)}")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    def __hash__(self) -> int:
        return hash(tuple(vars(self).values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in vars(self).items())
        return f"{type(self).__name__}({fields})"

    def replace(self, **changes: object) -> Record:
        """A copy with `changes` applied."""
        return type(self)(**{**vars(self), **changes})


# --- JSON: the C scanner and encoder of `_json`, which `json` wraps ---------------------------


def _bad_constant(name: str):
    raise ValueError(f"invalid JSON constant {name}")


class _ScanContext:
    """What `_json.make_scanner` reads from a `json.JSONDecoder`: strict JSON, plain types."""

    __slots__ = ()
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_bad_constant)
    memo = None


def parse_json(body: bytes):
    """Parse a JSON document (raises ValueError). Nesting is bounded before parsing: the
    scanner recurses once per level, and a host thread's stack may be small."""
    from p11fast._abi import JSON_MAX_DEPTH, json_nesting_ok

    body = bytes(body)
    if not json_nesting_ok(body):
        raise ValueError(f"arrays or objects nested deeper than {JSON_MAX_DEPTH} levels")
    text = body.decode("utf-8").strip(" \t\r\n")
    if _make_scanner is None:  # pragma: no cover
        import json

        return json.loads(text)
    try:
        value, end = _make_scanner(_ScanContext())(text, 0)
    except StopIteration:
        raise ValueError("not a JSON document") from None
    if end != len(text):
        raise ValueError("extra data after the JSON document")
    return value


def to_json(value) -> bytes:
    """JSON for request bodies: dicts, lists, strings and ints."""
    return _encode(value).encode("ascii")


def _encode(value) -> str:
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, bool) or value is None:
        raise TypeError(f"not a request value: {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_quote(k)}:{_encode(v)}" for k, v in value.items()) + "}"
    return "[" + ",".join(_encode(v) for v in value) + "]"
