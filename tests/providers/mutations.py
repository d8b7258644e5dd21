"""A payload broken every way one field can be: what a renderer must survive (anything it
raises but `Unrenderable` is a bug)."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from typing import Any

from shared.providers.notify import Unrenderable


def mutations(payload: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every object key (in lists too) removed, and retyped to a list, a number, null and
    a string, one at a time."""
    replacements: tuple[Any, ...] = (..., [], 7, None, "x")
    if isinstance(payload, dict):
        for key, value in payload.items():
            for replacement in replacements:
                changed = copy.deepcopy(payload)
                if replacement is ...:
                    del changed[key]
                else:
                    changed[key] = replacement
                yield (*path, key), changed
            for sub_path, sub in mutations(value, (*path, key)):
                changed = copy.deepcopy(payload)
                changed[key] = sub
                yield sub_path, changed
    elif isinstance(payload, list):
        for index, value in enumerate(payload[:3]):
            for sub_path, sub in mutations(value, (*path, str(index))):
                items = copy.deepcopy(payload)
                items[index] = sub
                yield sub_path, items


def survives(render: Callable[[Any], object], payload: Any) -> None:
    """`render` of every mutation of `payload` renders or raises `Unrenderable`, nothing
    else."""
    for _, broken in mutations(payload):
        with contextlib.suppress(Unrenderable):
            render(broken)
