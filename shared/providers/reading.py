"""Reading a verified payload for a notification: a value of the wrong type counts as
absent, so a renderer says what is there and never fails on what is not (SPEC §12 "Bad
input")."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from shared.providers.ids import field_at
from shared.providers.notify import when

# GitLab (and Ruby's default `Time#to_s`) writes `2016-08-12 15:23:28 UTC`.
_RUBY_UTC = re.compile(r"^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d(?:\.\d+)?) ?UTC$")


def obj(value: Any, *path: str) -> dict[str, Any]:
    found = field_at(value, *path)
    return found if isinstance(found, dict) else {}


def objs(value: Any, *path: str) -> list[dict[str, Any]]:
    found = field_at(value, *path)
    return [v for v in found if isinstance(v, dict)] if isinstance(found, list) else []


def text(value: Any, *path: str) -> str | None:
    """A string that is not blank, else None."""
    found = field_at(value, *path)
    return found if isinstance(found, str) and found.strip() else None


def integer(value: Any, *path: str) -> int | None:
    found = field_at(value, *path)
    return found if type(found) is int else None


def number(value: Any, *path: str) -> int | float | None:
    found = field_at(value, *path)
    return found if type(found) in (int, float) else None


def ident(value: Any, *path: str) -> str | None:
    """An id written as a string or an integer."""
    found = field_at(value, *path)
    return str(found) if type(found) is int else text(found)


def strings(value: Any, *path: str) -> tuple[str, ...]:
    found = field_at(value, *path)
    if not isinstance(found, list):
        return ()
    return tuple(v for v in found if isinstance(v, str) and v.strip())


def names(value: Any, key: str, name: str = "name") -> tuple[str, ...]:
    """`name` of each object in the list at `key`."""
    return tuple(n for item in objs(value, key) if (n := text(item, name)) is not None)


def first_line(message: str | None) -> str:
    return (message or "").strip().split("\n", 1)[0]


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def moment(value: Any) -> datetime | None:
    """`notify.when`, and Ruby's `2016-08-12 15:23:28 UTC` as GitLab writes it."""
    if isinstance(value, str):
        ruby = _RUBY_UTC.match(value.strip())
        if ruby:
            value = f"{ruby.group(1)}T{ruby.group(2)}+00:00"
    return when(value)
