"""A TCP proxy the soak puts in front of its broker, to stop "the broker" without losing it.

The embedded broker (tansu) keeps its topics in memory: stopped, it would come back empty,
and every consumer's offsets with it. So the soak's broker advertises this proxy's port
(`--advertised-listener-url`), every client connects through it, and the proxy is what
stops: `python -m bench.tcp_proxy --port P --target Q` relays each connection to
127.0.0.1:Q until it gets SIGUSR1, which closes every connection and the listening socket
(a connect is then refused, as by a stopped broker); SIGUSR2 listens again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from ssl import SSLContext

CHUNK = 64 * 1024


class Proxy:
    """`ssl`: the listening side speaks TLS with it (a broker that does not, behind a TLS
    front: tests/delivery's Kafka destination with a private CA)."""

    def __init__(self, port: int, target: int, ssl: SSLContext | None = None) -> None:
        self.port = port
        self.target = target
        self.ssl = ssl
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def listen(self) -> None:
        if self.server is None:
            self.server = await asyncio.start_server(
                self._relay, "127.0.0.1", self.port, reuse_address=True, ssl=self.ssl
            )
            print("proxy: listening", flush=True)

    def cut(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in list(self.writers):
            writer.transport.abort()
        print(f"proxy: cut, {len(self.writers)} connection ends closed", flush=True)

    async def _relay(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        try:
            broker_in, broker_out = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            client_out.transport.abort()
            return
        ends = {client_out, broker_out}
        self.writers |= ends
        try:
            await asyncio.gather(_pipe(client_in, broker_out), _pipe(broker_in, client_out))
        finally:
            self.writers -= ends


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copies until either side closes, then closes `sink` (the other pipe then ends too)."""
    with contextlib.suppress(OSError):
        while data := await source.read(CHUNK):
            sink.write(data)
            await sink.drain()
    sink.transport.abort()


async def serve(port: int, target: int) -> None:
    proxy = Proxy(port, target)
    await proxy.listen()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, proxy.cut)
    loop.add_signal_handler(signal.SIGUSR2, lambda: asyncio.ensure_future(proxy.listen()))
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tcp_proxy", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", type=int, required=True)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
