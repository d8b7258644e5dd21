"""The soak's broker proxy (bench/tcp_proxy.py): relays, cuts every connection and refuses
new ones, then relays again, against an echo server on loopback."""

from __future__ import annotations

import asyncio

import pytest

from bench.tcp_proxy import Proxy
from shared.kernel.embedded import free_port


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _round_trip(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), 5)
    finally:
        writer.close()


async def test_relays_cuts_and_relays_again() -> None:
    echo = await asyncio.start_server(_echo, "127.0.0.1", 0)
    target = echo.sockets[0].getsockname()[1]
    proxy = Proxy(free_port(), target)
    await proxy.listen()
    try:
        assert await _round_trip(proxy.port, b"before") == b"before"

        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"held")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"held"
        proxy.cut()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the open connection ended
        writer.close()
        with pytest.raises(ConnectionRefusedError):
            await _round_trip(proxy.port, b"during")

        await proxy.listen()
        assert await _round_trip(proxy.port, b"after") == b"after"
    finally:
        proxy.cut()
        echo.close()
        await echo.wait_closed()
