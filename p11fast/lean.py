"""Stand-ins for standard modules too heavy for the cold start: records, JSON and `os`.

Everything between C_Initialize and the first signature is imported by a one-shot process
(`pkcs11-tool --sign`) every time, so what is on that path avoids imports that cost more than
the work itself: `dataclasses` pulls in `inspect` (~7 ms, and ~1.5 ms per decorated class),
`json` pulls in `re` (~6 ms), `os` pulls in `_collections_abc` and `posixpath` (~1 ms, a tenth
of the ABI's import and C_Initialize together). This module imports only the builtins `posix`
and `_json` at load time, and the compiled core (`p11fast._abi`, for its codec) when it first
parses. The cold path calls `posix` directly for what `os` only re-exports (`os.stat` is
`posix.stat`).
"""

from __future__ import annotations

import posix
import sys

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


# --- os: what the cold path needs of it that posix lacks --------------------------------------

# What os.fsencode and os.fsdecode use; fixed once the interpreter runs.
_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()


def getenv(name: str) -> str | None:
    """`os.environ.get(name)`. os.environ starts as a decoded copy of posix.environ (itself
    taken when the interpreter started) and only os changes it: until os is imported, the
    copy it would make is what posix.environ holds."""
    os = sys.modules.get("os")
    if os is not None:
        return os.environ.get(name)
    value = posix.environ.get(name.encode(_FS_ENCODING, "surrogateescape"))
    return None if value is None else value.decode(_FS_ENCODING, "surrogateescape")


def getenvb(name: bytes) -> bytes | None:
    """`os.environb.get(name)`, on the same terms as getenv."""
    os = sys.modules.get("os")
    return os.environb.get(name) if os is not None else posix.environ.get(name)


def fsencode(path: str) -> bytes:
    """`os.fsencode` of a str."""
    return path.encode(_FS_ENCODING, _FS_ERRORS)


def fsdecode(path: bytes) -> str:
    """`os.fsdecode` of bytes."""
    return path.decode(_FS_ENCODING, _FS_ERRORS)


def path_join(head: str, tail: str) -> str:
    """`os.path.join(head, tail)` for a relative `tail`."""
    return head + tail if not head or head.endswith("/") else f"{head}/{tail}"


def dirname(path: str) -> str:
    """`os.path.dirname`."""
    head = path[: path.rfind("/") + 1]
    return head.rstrip("/") if head.strip("/") else head


def realpath(path: str) -> str:
    """`os.path.realpath` of a path that exists (a loaded module's file): every symbolic link
    resolved, `.` and `..` removed."""
    if not path.startswith("/"):
        path = path_join(posix.getcwd(), path)
    return _resolve("/", path)


def _resolve(path: str, rest: str) -> str:
    """`rest` resolved from the directory `path`: posixpath's _joinrealpath without its
    detection of link loops, which a path that exists cannot hold."""
    for name in rest.split("/"):
        if not name or name == ".":
            continue
        if name == "..":
            path = dirname(path)
            continue
        path = path_join(path, name)
        try:
            is_link = (posix.lstat(path).st_mode & 0o170000) == 0o120000
        except OSError:
            is_link = False
        if is_link:
            target = posix.readlink(path)
            path = _resolve("/" if target.startswith("/") else dirname(path), target)
    return path
