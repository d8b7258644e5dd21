"""The second baseline (issue #60): a minimal correct gateway, the floor of what hookhub does.

A few-line FastAPI app that, for each webhook, does only what a correct gateway cannot
skip: checks the provider's signature (an HMAC compared in constant time) or looks the
path's token up, parses the JSON body, produces one record with the body to Kafka
(aiokafka's `AIOKafkaProducer`, acks=all, one started with the app) and answers `ok` once
Kafka has acknowledged it. No dedupe window, envelope, rate limit, metrics, logging or
tracing: `ours / minimal` is what those features cost on top of the minimum, where
`ours / baseline` (bare FastAPI answering `ok`) is what all of hookhub's work costs.

`python -m bench.minimal --port Q` serves it under uvicorn with the options `hookhub serve`
uses (`ServiceServer.make_config`), configured by the environment:

- `BENCH_MINIMAL_KAFKA_BOOTSTRAP`, `BENCH_MINIMAL_TOPIC`: where the records go;
- `BENCH_MINIMAL_SCHEME`, with its settings:
  - `hmac`: `<BENCH_MINIMAL_HEADER>: <BENCH_MINIMAL_PREFIX><hex HMAC-SHA256 of the body>`,
    keyed by `BENCH_MINIMAL_SECRET` (GitHub: `X-Hub-Signature-256: sha256=<hex>`);
  - `stripe`: `Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "{t}.{body}">`
    (any of several `v1`), `t` within `BENCH_MINIMAL_TOLERANCE` seconds (300) of now;
  - `token`: no signature; the path's last segment must be a key of
    `BENCH_MINIMAL_TOKENS` (a JSON object), as an incoming webhook's token.

The benchmarks run it with `measure()`, on a topic of the run's namespace of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from bench.loadgen import Target

if TYPE_CHECKING:
    from bench.harness import Harness, Measurement

# Whether a request's headers and body carry a valid signature.
Check = Callable[[Mapping[str, str], bytes], bool]

ENV = "BENCH_MINIMAL_"


def hmac_check(secret: str, header: str, prefix: str) -> Check:
    key, start = secret.encode(), prefix.encode()

    def check(headers: Mapping[str, str], body: bytes) -> bool:
        given = headers.get(header)
        expected = start + hmac.new(key, body, hashlib.sha256).hexdigest().encode()
        return given is not None and hmac.compare_digest(expected, given.encode())

    return check


def stripe_check(secret: str, tolerance: int = 300) -> Check:
    key = secret.encode()

    def check(headers: Mapping[str, str], body: bytes) -> bool:
        pairs = [item.partition("=") for item in headers.get("Stripe-Signature", "").split(",")]
        stamps = [value.strip() for name, _, value in pairs if name.strip() == "t"]
        given = [value.strip().encode() for name, _, value in pairs if name.strip() == "v1"]
        if len(stamps) != 1 or not (stamps[0].isascii() and stamps[0].isdigit()):
            return False
        if abs(time.time() - int(stamps[0])) > tolerance:
            return False
        signed = stamps[0].encode() + b"." + body
        expected = hmac.new(key, signed, hashlib.sha256).hexdigest().encode()
        return any(hmac.compare_digest(expected, signature) for signature in given)

    return check


def create_app(
    bootstrap: str, topic: str, check: Check | None, tokens: Mapping[str, str] | None
) -> FastAPI:
    """`check` verifies each request's signature; `tokens`, when given, are the only keys
    the path may end with."""
    producer: AIOKafkaProducer  # made in the lifespan: it needs the running loop

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal producer
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            yield
        finally:
            await producer.stop()

    app = FastAPI(title="hookhub bench minimal gateway", lifespan=lifespan)

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/api/webhooks/{provider}/{key}", response_class=PlainTextResponse)
    async def accept(key: str, request: Request) -> PlainTextResponse:
        body = await request.body()
        if tokens is not None and key not in tokens:
            return PlainTextResponse("no such webhook", 404)
        if check is not None and not check(request.headers, body):
            return PlainTextResponse("invalid signature", 401)
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError:
            return PlainTextResponse("not JSON", 400)
        try:
            await producer.send_and_wait(topic, body)
        except KafkaError:
            return PlainTextResponse("not accepted", 503)
        return PlainTextResponse("ok")

    return app


def from_env(env: Mapping[str, str]) -> FastAPI:
    scheme = env[ENV + "SCHEME"]
    check: Check | None = None
    tokens: dict[str, str] | None = None
    if scheme == "hmac":
        check = hmac_check(env[ENV + "SECRET"], env[ENV + "HEADER"], env[ENV + "PREFIX"])
    elif scheme == "stripe":
        check = stripe_check(env[ENV + "SECRET"], int(env.get(ENV + "TOLERANCE", "300")))
    elif scheme == "token":
        tokens = json.loads(env[ENV + "TOKENS"])
    else:
        raise SystemExit(f"{ENV}SCHEME: hmac, stripe or token, not {scheme!r}")
    return create_app(env[ENV + "KAFKA_BOOTSTRAP"], env[ENV + "TOPIC"], check, tokens)


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from shared.kernel.http.server import ServiceServer

    parser = argparse.ArgumentParser(prog="python -m bench.minimal", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    config = ServiceServer.make_config(from_env(os.environ), args.host, args.port, 10)
    uvicorn.Server(config).run()
    return 0


# -- the benchmarks' side ---------------------------------------------------------------------


def hmac_scheme(secret: str, header: str, prefix: str) -> dict[str, str]:
    """The environment of a gateway checking `<header>: <prefix><hex HMAC-SHA256>`."""
    return {
        ENV + "SCHEME": "hmac",
        ENV + "SECRET": secret,
        ENV + "HEADER": header,
        ENV + "PREFIX": prefix,
    }


def github_scheme(secret: str) -> dict[str, str]:
    return hmac_scheme(secret, "X-Hub-Signature-256", "sha256=")


def stripe_scheme(secret: str, tolerance: int = 300) -> dict[str, str]:
    return {ENV + "SCHEME": "stripe", ENV + "SECRET": secret, ENV + "TOLERANCE": str(tolerance)}


def token_scheme(tokens: Mapping[str, str]) -> dict[str, str]:
    return {ENV + "SCHEME": "token", ENV + "TOKENS": json.dumps(dict(tokens))}


def measure(
    harness: Harness,
    name: str,
    target: Target,
    scheme: dict[str, str],
    like: str,
    ours: Measurement,
) -> tuple[Measurement, list[str]]:
    """The run's load of `target` (ours: its path, body, headers and signer) on a minimal
    gateway checking `scheme`, once one request was accepted. Its records go to a topic of
    their own, `<like>.minimal-<name>`, with as many partitions as `like` (a topic of the
    run's namespace, named without it). Returns the measurement and its notes: how many
    records the topic holds, and the ratio of `ours` to it."""
    from bench.harness import Server, kafka_check, post_once
    from bench.sync import _topic_like
    from shared.kernel.embedded import free_port

    infrastructure = harness.infrastructure()
    suffix = f"minimal-{name}"
    namespace = f"{infrastructure.topic_namespace}."
    topic = asyncio.run(_topic_like(infrastructure.kafka_bootstrap, namespace + like, suffix))
    port = free_port()
    env = {ENV + "KAFKA_BOOTSTRAP": infrastructure.kafka_bootstrap, ENV + "TOPIC": topic}
    argv = [sys.executable, "-m", "bench.minimal", "--port", str(port)]
    server = Server(
        suffix,
        f"http://127.0.0.1:{port}",
        harness.start_process(suffix, argv, env={**env, **scheme}),
    )
    try:
        harness.wait_ready(server)
        path = urlsplit(target.url)._replace(scheme="", netloc="").geturl()
        minimal = Target(server.url + path, target.body, target.headers, signer=target.signer)
        post_once(minimal)
        measured = harness.load(
            f"minimal gateway ({name})",
            minimal,
            watch=[(suffix, server.child), ("kafka", infrastructure.broker)],
        )
    finally:
        server.stop()
    ratio = f"{ours.rps / measured.rps:.2f}" if measured.rps else "not measured"
    return measured, [
        f"ratio ours/minimal gateway: {ratio} (bench/minimal.py: signature or token, "
        "JSON parse, one aiokafka record acks=all; the ratio row is ours/bare FastAPI)",
        kafka_check(infrastructure, topic.removeprefix(namespace), measured.ok),
    ]


if __name__ == "__main__":
    sys.exit(main())
