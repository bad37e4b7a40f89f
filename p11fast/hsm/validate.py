"""Request body and path checks that mirror the spec's schemas (unknown properties → 400)."""

from __future__ import annotations

import array
import itertools
import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from p11fast.hsm.errors import BadRequest, NotFound, NotModified
from p11fast.hsm.keys import b64decode

ID_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}\Z")
MIN_PASSPHRASE = 10
MAX_LABEL_BYTES = 32
# NetHSM bodies nest three levels at most.
MAX_JSON_DEPTH = 32
TOO_DEEP = f"JSON is nested deeper than {MAX_JSON_DEPTH} levels"
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # as signed bytes: +1, -1


def check_id(value: str, what: str = "ID") -> str:
    if not ID_RE.match(value):
        raise BadRequest(f"invalid {what} {value[:140]!r}: must match [a-zA-Z0-9][a-zA-Z0-9_.-]*")
    return value


def split_user_id(user_id: str) -> tuple[str, str]:
    """`ns~name` → (ns, name); a root user has namespace ''."""
    if len(user_id) > 128:
        raise BadRequest("invalid user ID: longer than 128 characters")
    namespace, sep, name = user_id.rpartition("~")
    if sep:
        check_id(namespace, "namespace")
    check_id(name, "user ID")
    return namespace, name


def parse_json(raw: bytes) -> Any:
    try:
        value = json.loads(raw.decode())  # UTF-8 only, as RFC 8259 wants between systems
    except RecursionError as exc:  # far deeper than the limit: the parser gave up first
        raise BadRequest(TOO_DEEP) from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("request body is not valid JSON") from exc
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and _depth(raw) > MAX_JSON_DEPTH:
        raise BadRequest(TOO_DEEP)
    return value


def _depth(raw: bytes) -> int:
    """How deep arrays and objects nest in `raw`, valid UTF-8 JSON, in C loops only: without
    its escape sequences every quote delimits a string, and what is left outside strings
    is scanned as +1 per opening and -1 per closing bracket."""
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside_strings = b"".join(unescaped.split(b'"')[::2])
    steps = array.array("b")
    steps.frombytes(outside_strings.translate(_BRACKET_STEPS, _NOT_BRACKETS))
    return max(itertools.accumulate(steps), default=0)


class Body:
    """A JSON object checked field by field; `done()` rejects properties nobody asked for."""

    def __init__(self, value: Any, where: str = "body") -> None:
        if not isinstance(value, dict):
            raise BadRequest(f"{where} must be a JSON object")
        self._value = value
        self._where = where
        self._seen: set[str] = set()

    def _get(
        self, name: str, kind: type | tuple[type, ...], required: bool, nullable: bool = False
    ) -> Any:
        self._seen.add(name)
        if name not in self._value:
            if required:
                raise BadRequest(f"{self._where}.{name} is required")
            return None
        value = self._value[name]
        if value is None and nullable:
            return None
        # bool is an int subclass; JSON true is never a valid integer here
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            raise BadRequest(f"{self._where}.{name} has the wrong type")
        return value

    def string(self, name: str, required: bool = True, nullable: bool = False) -> str | None:
        return self._get(name, str, required, nullable)

    def integer(self, name: str, required: bool = True) -> int | None:
        return self._get(name, int, required)

    def obj(self, name: str, required: bool = True, nullable: bool = False) -> Body | None:
        value = self._get(name, dict, required, nullable)
        return None if value is None else Body(value, f"{self._where}.{name}")

    def strings(self, name: str, required: bool = True) -> list[str] | None:
        value = self._get(name, list, required)
        if value is not None and not all(isinstance(v, str) for v in value):
            raise BadRequest(f"{self._where}.{name} must be a list of strings")
        return value

    def base64(self, name: str, required: bool = True) -> bytes | None:
        value = self.string(name, required)
        return None if value is None else b64decode(value, f"{self._where}.{name}")

    def enum(self, name: str, choices: Any, required: bool = True) -> str | None:
        value = self.string(name, required)
        if value is not None and value not in choices:
            raise BadRequest(f"{self._where}.{name}: unknown value {value[:64]!r}")
        return value

    def passphrase(self, name: str) -> str:
        value = self.string(name)
        if len(value) < MIN_PASSPHRASE:
            raise BadRequest(f"{name} must be at least {MIN_PASSPHRASE} characters")
        return value

    def time(self, name: str, required: bool = True) -> datetime | None:
        value = self.string(name, required)
        if value is None:
            return None
        try:
            return datetime.fromisoformat(value)
        except ValueError as exc:
            raise BadRequest(f"{self._where}.{name} is not an RFC 3339 date-time") from exc

    def done(self) -> None:
        extra = set(self._value) - self._seen
        if extra:
            raise BadRequest(f"{self._where}: unknown properties {sorted(extra)}")


def check_label(label: str) -> str:
    if len(label.encode()) > MAX_LABEL_BYTES:
        raise BadRequest(f"label is longer than {MAX_LABEL_BYTES} bytes")
    return label


def check_tags(tags: list[str]) -> list[str]:
    for tag in tags:
        check_id(tag, "tag")
    return sorted(set(tags))


def adding_tag(tag: str) -> Callable[[Any], dict[str, list[str]]]:
    """The change that adds `tag` to a key's or user's tags (see `Hsm.update_key`)."""
    return lambda current: {"tags": tags_with(current.tags, tag)}


def removing_tag(tag: str) -> Callable[[Any], dict[str, list[str]]]:
    return lambda current: {"tags": tags_without(current.tags, tag)}


def tags_with(tags: list[str], tag: str) -> list[str]:
    """`tags` with `tag` added (keys and users carry tags alike); 304 if it is there already."""
    tag = check_id(tag, "tag")
    if tag in tags:
        raise NotModified("tag already present")
    return sorted([*tags, tag])


def tags_without(tags: list[str], tag: str) -> list[str]:
    """`tags` without `tag`; 404 if it is not there."""
    if tag not in tags:
        raise NotFound(f"tag {tag} not found")
    return [t for t in tags if t != tag]
