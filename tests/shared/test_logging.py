"""The log's writer: lines out once per event-loop tick, in order, none left behind."""

from __future__ import annotations

import asyncio
import io

from shared.kernel.logging import TickFlushedLogger


class CountedFile(io.BytesIO):
    """A file that counts its flushes and keeps what each flush made visible."""

    def __init__(self) -> None:
        super().__init__()
        self.flushes: list[bytes] = []

    def flush(self) -> None:
        super().flush()
        self.flushes.append(self.getvalue())


def test_outside_a_loop_each_line_is_flushed_at_once() -> None:
    file = CountedFile()
    logger = TickFlushedLogger(file)
    logger.msg(b"one")
    logger.msg(b"two")
    assert file.flushes == [b"one\n", b"one\ntwo\n"]


async def test_a_ticks_lines_go_out_in_one_flush_at_its_end() -> None:
    file = CountedFile()
    logger = TickFlushedLogger(file)
    for i in range(50):
        logger.info(b"line %d" % i)
    assert file.flushes == [], "not before the tick ends"
    await asyncio.sleep(0)
    assert len(file.flushes) == 1
    assert file.flushes[0].splitlines() == [b"line %d" % i for i in range(50)]
    logger.warning(b"later")
    await asyncio.sleep(0)
    assert len(file.flushes) == 2 and file.flushes[1].endswith(b"later\n")
