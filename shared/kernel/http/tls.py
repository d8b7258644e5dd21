"""One TLS context, and one keep-alive bound, for the process's HTTP clients.

httpx makes a new `ssl.SSLContext` for every client, loading certifi's bundle (or
`SSL_CERT_FILE`/`SSL_CERT_DIR`) each time: 20-40 ms of CPU for a client that may send one
request (the sandbox's stand-ins made one per webhook sent; the suite spent a tenth of
its test processes' CPU there, py-spy). `tls()` is httpx's own context, made once, with
httpx's own reading of the environment; every client given `verify=tls()` shares it.
Sharing is safe: a context is only read when a connection is made, but for its ALPN
protocols, which httpcore sets at each connection, the same for every client here (none
speaks HTTP/2).

`limits()` drops an idle connection before a server would: at httpx's default (5 s, the
same as the idle timeout of Node's and uvicorn's servers) a request could go out on a
connection the server was closing at that moment, an `httpx.ReadError` on a request that
did nothing wrong (httpx resends nothing; a Google Chat token request in CI met it).
"""

from __future__ import annotations

import functools
import ssl

import httpx

# Below the 5 s idle timeout of Node's and uvicorn's servers, common webhook receivers and
# APIs: a connection they are about to close is not reused for a POST (which no client may
# resend).
KEEPALIVE_SECONDS = 4.0


def limits(max_connections: int | None = None) -> httpx.Limits:
    """httpx's pool limits with the keep-alive bound: httpx's default pool, or
    `max_connections` all of which may stay warm."""
    if max_connections is None:
        return httpx.Limits(keepalive_expiry=KEEPALIVE_SECONDS)
    return httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=KEEPALIVE_SECONDS,
    )


@functools.cache
def tls() -> ssl.SSLContext:
    return httpx.create_ssl_context()
