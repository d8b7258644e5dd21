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

`--mongo URI --database D` makes it the **floor** (a minimal correct sync, #61's second
baseline, as `bench.minimal` is the gateway's): what a sync that keeps a message map cannot
skip. Per batch, one query of the map for the batch's chat message ids (a message already
copied, read again after a crash, is not posted twice), the posts as above, then one
`insert_many` of the batch's copies into a `message_map` collection with sync's indexes
(`shared.domain.message_map.INDEXES`, the documents `Copy.to_doc` makes), and only then the
commit of the batch's offsets; the write and the commit run while the next batch is read
and posted (one write in flight). No outbox, progress mark, pacing, spans, metrics or logs;
a crash there repeats up to two batches' posts per channel (sync's lanes bound it to the
one in flight).
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
from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from bench.outbound import Outbound
from bench.sync import slack_of
from shared.domain.message_map import COLLECTION, INDEXES, Copy
from shared.kernel.embedded import EMBEDDED_FETCH_MAX_WAIT_MS as FETCH_MAX_WAIT_MS
from shared.kernel.ids import utcnow
from shared.providers.chats import provider_client

CONNECTIONS = 200
MAX_RECORDS = 500
# One post: the URL and the body → (HTTP status, the answer's JSON).
Send = Callable[[str, bytes], Awaitable[tuple[int, Any]]]
# Where each network's answer names the message it made (Slack's `ts`, Mattermost's and
# Teams' `id`, Google Chat's `name`, Matrix's `event_id`, Telegram's `result.message_id`).
_ANSWER_IDS = ("ts", "id", "name", "event_id")


def external_id(answer: Any) -> str:
    """The network's id of the message an answer says it posted."""
    for key in _ANSWER_IDS:
        if isinstance(answer.get(key), str | int):
            return str(answer[key])
    return str(answer["result"]["message_id"])


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
    message_map: AsyncCollection[dict[str, Any]] | None = None  # the floor's (--mongo)
    copies: list[dict[str, Any]] = []  # the batch's, for the map

    async def post(event: dict[str, Any], send: Send) -> None:
        nonlocal posted
        try:
            status, answer = await send(outbound.url(event), outbound.body(event))
        except (httpx.HTTPError, aiohttp.ClientError) as exc:
            errors[type(exc).__name__] += 1
            return
        if status >= 300 or not outbound.posted(answer):
            errors[f"http_{status}"] += 1
            return
        posted += 1
        if message_map is not None:
            copies.append(copy_of(event, answer))

    async def in_order(events: list[dict[str, Any]], send: Send) -> None:
        for event in events:
            await post(event, send)

    async def copied(events: list[dict[str, Any]]) -> set[str]:
        """The batch's chat messages the map already has a copy of."""
        if message_map is None:
            return set()
        ids = [event["data"]["message_id"] for event in events]
        found = message_map.find({"chat_message_id": {"$in": ids}}, {"chat_message_id": 1})
        return {doc["chat_message_id"] async for doc in found}

    async def consume(send: Send) -> None:
        writing: asyncio.Task[None] | None = None
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
                read = [orjson.loads(r.value) for records in batches.values() for r in records]
                if not read:
                    continue
                done = await copied(read)
                by_channel: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
                for event in read:
                    if event["data"]["message_id"] not in done:
                        by_channel[event["data"]["channel_id"]].append(event)
                lanes = (in_order(events, send) for events in by_channel.values())
                await asyncio.gather(*lanes)
                if message_map is None:
                    await consumer.commit()
                    continue
                # The batch's copies are written, then its offsets committed, while the next
                # batch is read and posted (one write in flight, as sync's writer).
                offsets = {tp: records[-1].offset + 1 for tp, records in batches.items() if records}
                if writing is not None:
                    await writing
                writing = asyncio.create_task(write(message_map, copies[:], offsets))
                copies.clear()
            if writing is not None:
                await writing
        finally:
            await consumer.stop()

    async def write(
        collection: AsyncCollection[dict[str, Any]],
        batch: list[dict[str, Any]],
        offsets: dict[TopicPartition, int],
    ) -> None:
        if batch:
            await collection.insert_many(batch, ordered=False)
        await consumer.commit(offsets)

    async with contextlib.AsyncExitStack() as stack:
        if args.client == "aiohttp":
            session = await stack.enter_async_context(
                aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=CONNECTIONS),
                    timeout=aiohttp.ClientTimeout(total=10.0),
                )
            )

            async def send(url: str, body: bytes) -> tuple[int, Any]:
                async with session.request(
                    outbound.method, url, data=body, headers=headers
                ) as answer:
                    return answer.status, orjson.loads(await answer.read())

        else:
            client = await stack.enter_async_context(provider_client(CONNECTIONS, 10.0))

            async def send(url: str, body: bytes) -> tuple[int, Any]:
                answer = await client.request(outbound.method, url, content=body, headers=headers)
                return answer.status_code, answer.json()

        if args.mongo:
            mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(args.mongo)
            stack.push_async_callback(mongo.close)
            message_map = mongo[args.database][COLLECTION]
            for index in INDEXES:
                await message_map.create_index(list(index.keys), **index.options)
        await consume(send)
    return {"ok": posted, "errors": sum(errors.values()), "error_kinds": dict(errors)}


def copy_of(event: dict[str, Any], answer: Any) -> dict[str, Any]:
    """The map's copy of a posted chat message, as sync writes it (one integration and
    mapping per chat channel in the benchmark)."""
    data = event["data"]
    channel = data["channel_id"]
    return Copy.new(
        workspace_id=event.get("workspace_id", ""),
        channel_id=channel,
        provider="bench",
        integration_id="int_bench",
        mapping_id=f"map_{channel}",
        external_channel_id=channel,
        external_message_id=external_id(answer),
        origin="outbound",
        chat_message_id=data["message_id"],
    ).to_doc(utcnow())


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
    parser.add_argument("--mongo", help="a MongoDB URI: the floor, keeping a message map")
    parser.add_argument("--database", default="bench_floor")
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
