"""A payload broken every way one field can be: what a renderer must survive (anything it
raises but `Unrenderable` is a bug)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from shared.providers.notify import Unrenderable
from tests.providers.notify_support import clone


def mutations(payload: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every object key (in lists too) removed, and retyped to a list, a number, null and
    a string, one at a time. Each is a copy of its own; but the changed field's old value,
    which it does not hold, it does not copy either."""
    replacements: tuple[Any, ...] = (..., [], 7, None, "x")
    if isinstance(payload, dict):
        for key, value in payload.items():
            for replacement in replacements:
                changed = {k: v if k == key else clone(v) for k, v in payload.items()}
                if replacement is ...:
                    del changed[key]
                else:
                    changed[key] = replacement
                yield (*path, key), changed
            for sub_path, sub in mutations(value, (*path, key)):
                changed = {k: sub if k == key else clone(v) for k, v in payload.items()}
                yield sub_path, changed
    elif isinstance(payload, list):
        for index, value in enumerate(payload[:3]):
            for sub_path, sub in mutations(value, (*path, str(index))):
                items = [sub if i == index else clone(v) for i, v in enumerate(payload)]
                yield sub_path, items


def survives(render: Callable[[Any], object], payload: Any) -> None:
    """`render` of every mutation of `payload` renders or raises `Unrenderable`, nothing
    else."""
    for _, broken in mutations(payload):
        with contextlib.suppress(Unrenderable):
            render(broken)
