"""The baseline: a bare FastAPI app on uvicorn whose POST route reads the body and answers `ok`.

`python -m bench.baseline --port Q` serves it the way `hookhub serve` serves a service (one
uvicorn process, uvloop and httptools, no access log, proxy headers on), so the ratio of a
benchmark to it is what hookhub's own work per request costs: routing, verification,
validation, the envelope, the acknowledged Kafka write, logging and metrics.
"""

from __future__ import annotations

import argparse
import sys

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse


def create_app() -> FastAPI:
    app = FastAPI(title="hookhub bench baseline")

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/{path:path}", response_class=PlainTextResponse)
    async def accept(request: Request) -> PlainTextResponse:
        await request.body()
        return PlainTextResponse("ok")

    return app


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(),
        host=args.host,
        port=args.port,
        access_log=False,
        log_level="warning",
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
