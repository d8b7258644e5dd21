"""The sync benchmark's baseline: a minimal Kafka consumer → Slack `chat.postMessage` loop.

`python -m bench.sync_baseline --bootstrap B --topic T --api URL --token xoxb-… --count N
--result-file F [--ready-file R]` consumes the benchmark's `message.created` chat events from
the start of `T` and posts each to `URL/chat.postMessage`, then exits once N were posted
(`ok: true`) and writes `{"ok", "errors", "error_kinds"}` to F. `R` is written once the
consumer has its partitions, for runs that publish after it started.

What it is, per batch of `getmany` (up to 500 records, the sync service's `max_records`,
and the same `fetch_max_wait_ms`): the events grouped by chat channel, each channel's posts
one after the other (Slack channel order, as sync's lanes keep it), all channels at once on
the HTTP client sync uses (`shared.providers.chats.provider_client`: httpx on aiohttp's
pool) with as many connections as sync has (`HOOKHUB_SYNC_MAX_CONNECTIONS` defaults to
200); then the offsets are committed. The request is what sync sends: a JSON
body with `channel`, `text`, `username`, `icon_url` and the `metadata` tag, the Bearer
token. Nothing else: no mapping lookup beyond a string operation, no outbox, no message
map, no token lookup, no pacing. `--client aiohttp` posts with aiohttp's own client instead
(not the baseline, which uses the client sync uses: a comparison).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
from aiokafka import AIOKafkaConsumer

from bench.outbound import Outbound
from bench.sync import slack_of
from shared.kernel.consumers import FETCH_MAX_WAIT_MS
from shared.providers.chats import provider_client

CONNECTIONS = 200
MAX_RECORDS = 500
# One post: the URL and the body → (HTTP status, whether the answer says it was posted).
Send = Callable[[str, bytes], Awaitable[tuple[int, bool]]]


def slack(api: str, token: str) -> Outbound:
    """`chat.postMessage` as sync sends it."""

    def body(event: dict[str, Any]) -> bytes:
        data, actor = event["data"], event.get("actor") or {}
        return orjson.dumps(
            {
                "channel": slack_of(data["channel_id"]),
                "text": data["text"],
                "username": actor.get("name"),
                "icon_url": actor.get("avatar_url"),
                "metadata": {
                    "event_type": "hookhub_message",
                    "event_payload": {"message_id": data["message_id"]},
                },
            }
        )

    url = api.rstrip("/") + "/chat.postMessage"
    return Outbound(
        url=lambda event: url,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json; charset=utf-8",
        },
        body=body,
        posted=lambda answer: bool(answer.get("ok")),
    )


async def run(args: argparse.Namespace, outbound: Outbound) -> dict[str, Any]:
    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=f"{args.topic}.baseline",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    headers = outbound.headers
    errors: Counter[str] = Counter()
    posted = 0

    async def post(event: dict[str, Any], send: Send) -> None:
        nonlocal posted
        try:
            status, ok = await send(outbound.url(event), outbound.body(event))
        except (httpx.HTTPError, aiohttp.ClientError) as exc:
            errors[type(exc).__name__] += 1
            return
        if status >= 300 or not ok:
            errors[f"http_{status}"] += 1
            return
        posted += 1

    async def in_order(events: list[dict[str, Any]], send: Send) -> None:
        for event in events:
            await post(event, send)

    async def consume(send: Send) -> None:
        await consumer.start()
        try:
            for _ in range(600):  # 30 s for the group join
                if consumer.assignment():
                    break
                await asyncio.sleep(0.05)
            if args.ready_file:
                await asyncio.to_thread(Path(args.ready_file).write_text, "ready")
            while posted + sum(errors.values()) < args.count:
                batches = await consumer.getmany(timeout_ms=1000, max_records=MAX_RECORDS)
                by_channel: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
                for records in batches.values():
                    for record in records:
                        event = orjson.loads(record.value)
                        by_channel[event["data"]["channel_id"]].append(event)
                if by_channel:
                    lanes = (in_order(events, send) for events in by_channel.values())
                    await asyncio.gather(*lanes)
                    await consumer.commit()
        finally:
            await consumer.stop()

    async with contextlib.AsyncExitStack() as stack:
        if args.client == "aiohttp":
            session = await stack.enter_async_context(
                aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=CONNECTIONS),
                    timeout=aiohttp.ClientTimeout(total=10.0),
                )
            )

            async def send(url: str, body: bytes) -> tuple[int, bool]:
                async with session.request(
                    outbound.method, url, data=body, headers=headers
                ) as answer:
                    return answer.status, outbound.posted(orjson.loads(await answer.read()))

        else:
            client = await stack.enter_async_context(provider_client(CONNECTIONS, 10.0))

            async def send(url: str, body: bytes) -> tuple[int, bool]:
                answer = await client.request(outbound.method, url, content=body, headers=headers)
                return answer.status_code, outbound.posted(answer.json())

        await consume(send)
    return {"ok": posted, "errors": sum(errors.values()), "error_kinds": dict(errors)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sync_baseline", description=__doc__)
    parser.add_argument(
        "--network", default="slack", help="slack, or a network of bench.networks.NETWORKS"
    )
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--api", required=True, help="the Web API base, e.g. http://h:p/api")
    parser.add_argument("--token", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--result-file", required=True)
    parser.add_argument("--ready-file")
    parser.add_argument(
        "--client", choices=("httpx", "aiohttp"), default="httpx", help="httpx: what sync uses"
    )
    args = parser.parse_args(argv)
    if args.network == "slack":
        outbound = slack(args.api, args.token)
    else:
        from bench.networks import NETWORKS

        outbound = NETWORKS[args.network].outbound(args.api, args.token)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        result = asyncio.run(run(args, outbound))
    else:
        result = uvloop.run(run(args, outbound))
    Path(args.result_file).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
