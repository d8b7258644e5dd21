"""One TLS context for the process's HTTP clients.

httpx makes a new `ssl.SSLContext` for every client, loading certifi's bundle (or
`SSL_CERT_FILE`/`SSL_CERT_DIR`) each time: 20-40 ms of CPU for a client that may send one
request (the sandbox's stand-ins made one per webhook sent; the suite spent a tenth of
its test processes' CPU there, py-spy). `tls()` is httpx's own context, made once, with
httpx's own reading of the environment; every client given `verify=tls()` shares it.
Sharing is safe: a context is only read when a connection is made, but for its ALPN
protocols, which httpcore sets at each connection, the same for every client here (none
speaks HTTP/2).
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def tls() -> ssl.SSLContext:
    return httpx.create_ssl_context()
