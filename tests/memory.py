"""Whether a streaming reader's memory stays bounded over a long read, without tracing every
allocation of it: tracemalloc makes Python's allocations about eight times slower (a
100,000-message DiscordChatExporter file: 3 s to read, 24 s traced), and the suite reads
three such files.

`Watch(traced=N)` over a read (`watch.each(records)` inside `with watch:`):

- the first `traced` records are read under tracemalloc: `peak` is the most bytes Python
  held at once meanwhile (the reader's buffers and the records of the chunk it parsed,
  which is all a streaming reader holds, whatever the file's length);
- the rest are read untraced, and every `every` records, after a collection, Python's
  allocated blocks are counted (`sys.getallocatedblocks`): `grown` is the most they rose
  above the count when tracing ended. A reader that kept anything of each record (a dict, a
  string, an id in a set) grows by at least a block a record, tens of thousands over such
  a file; one that streams, by a few hundred (what the caller's loop keeps, the collector's
  leftovers).

`Watch(traced=0)` traces nothing: blocks are counted from the first record on (what a
reader sets up before its first record, such as a first pass over the file, is not
measured), for a long read whose peak another, shorter one has measured traced.

What the untraced part holds only for a while (a larger buffer, one day file read whole) is
not seen: the files these tests generate are alike from end to end, so the first records
are where a reader comes to hold what it will ever hold at once.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import TypeVar

T = TypeVar("T")


class Watch:
    def __init__(self, traced: int, every: int = 5_000) -> None:
        self.traced = traced
        self.every = every
        self.count = 0
        self.peak = 0
        self.grown = 0
        self._base: int | None = None
        # The record after which blocks are counted: the last traced one, or the first.
        self._counted_after = max(traced, 1)

    def __enter__(self) -> Watch:
        # What the process held before is set aside from the collections (gc.freeze): a
        # collection then walks what was made since, not the whole test process (a worker
        # holding every module and stack the run loaded: a second a collection, twenty per
        # watch). Blocks are counted all the same.
        gc.collect()
        gc.freeze()
        if self.traced:
            tracemalloc.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._end_tracing()
        gc.unfreeze()

    def each(self, items: Iterable[T]) -> Iterator[T]:
        """`items`, watched (several reads may go through one watch: the count goes on)."""
        for item in items:
            yield item
            self.count += 1
            if self.count == self._counted_after:
                self._end_tracing()
                gc.collect()
                self._base = sys.getallocatedblocks()
            elif self._base is not None and self.count % self.every == 0:
                gc.collect()
                self.grown = max(self.grown, sys.getallocatedblocks() - self._base)

    @property
    def untraced(self) -> int:
        """How many records were read after tracing ended (those `grown` speaks of)."""
        return max(0, self.count - self._counted_after)

    def _end_tracing(self) -> None:
        if tracemalloc.is_tracing():
            self.peak = max(self.peak, tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
