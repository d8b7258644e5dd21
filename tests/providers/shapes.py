"""Malformed bodies and wrong-shaped payloads every provider's parser must turn away cleanly."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

WRONG_TYPES: tuple[Any, ...] = (None, True, 0, 1.5, "x", [], {})

# Not a JSON object at all: empty, other JSON types, broken UTF-8, truncated, nested past
# any recursion limit.
NOT_JSON_OBJECTS: list[bytes] = [
    b"",
    b"[]",
    b'"x"',
    b"null",
    b"\xff\xfe{}",
    b"{",
    b"[" * 100_000 + b"]" * 100_000,
]


def mutations(value: Any) -> Iterator[Any]:
    """`value` with one node at a time swapped for a value of another JSON type."""
    yield from WRONG_TYPES
    if isinstance(value, dict):
        for key, child in value.items():
            for variant in mutations(child):
                yield {**value, key: variant}
    elif isinstance(value, list):
        for index, child in enumerate(value):
            for variant in mutations(child):
                yield [*value[:index], variant, *value[index + 1 :]]
