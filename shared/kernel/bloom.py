"""A set of strings in about two bytes each that may answer "maybe" but never a wrong "no".

A blocked Bloom filter: each string sets up to six bits of one 64-bit word, so adding or
testing one is a hash, one array read and a mask comparison (well under a microsecond in
CPython, where a textbook filter's k probes cost several). At the default sixteen bits per
string about 0.4% of strings never added answer "maybe".

Strings are hashed with Python's own `hash()`, which is salted per process: a filter is
for the process that built it, never to be stored or sent elsewhere.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Iterable


def _mask_table(seed: int) -> array[int]:
    """For every 16-bit value, a word with (up to) three random bits set."""
    rng = random.Random(seed)  # noqa: S311 (spreading bits, not secrets)
    table = array("Q", bytes(8 * 65536))
    for value in range(65536):
        bits = rng.getrandbits(18)
        table[value] = (1 << (bits & 63)) | (1 << ((bits >> 6) & 63)) | (1 << (bits >> 12))
    return table


_LOW = _mask_table(0x5EED1)
_HIGH = _mask_table(0x5EED2)


class BloomBlock:
    """One fixed-size filter for up to `capacity` strings (more raise its false positives)."""

    __slots__ = ("_size", "_words", "capacity", "count")

    def __init__(self, capacity: int, bits_per_item: int = 16) -> None:
        if capacity < 1 or bits_per_item < 1:
            raise ValueError("capacity and bits_per_item must be positive")
        self.capacity = capacity
        self.count = 0
        self._size = max(1, capacity * bits_per_item // 64)
        self._words = array("Q", bytes(8 * self._size))

    @property
    def full(self) -> bool:
        return self.count >= self.capacity

    @property
    def nbytes(self) -> int:
        return self._size * 8

    def update(self, items: Iterable[str]) -> None:
        words, size, low, high = self._words, self._size, _LOW, _HIGH
        count = 0
        for item in items:
            h = hash(item) & 0xFFFFFFFFFFFFFFFF
            words[(h >> 32) % size] |= low[h & 0xFFFF] | high[(h >> 16) & 0xFFFF]
            count += 1
        self.count += count

    def __contains__(self, item: object) -> bool:
        h = hash(item) & 0xFFFFFFFFFFFFFFFF
        mask = _LOW[h & 0xFFFF] | _HIGH[(h >> 16) & 0xFFFF]
        return self._words[(h >> 32) % self._size] & mask == mask
