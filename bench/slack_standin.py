"""The Slack Web API stand-in of the sync benchmark: a cheap HTTP/1.1 server in its own process.

`python -m bench.slack_standin --port P` answers the Web API methods sync calls, the way Slack
answers them (`{"ok": true, ...}`, HTTP 200), on keep-alive connections, with one
`asyncio.Protocol` per connection on uvloop (as `bench.sink`; no framework):

- `chat.postMessage` (JSON body): `{"ok": true, "channel", "ts", "message"}` with a `ts`
  unique and increasing in Slack's `seconds.micro` form. Counted: its text carries
  `bench_seq=<n> sent_at=<unix seconds>` (see `bench.sync.message_text`), read with a regex,
  and handed to `bench.sink.Sink`, which keeps the distinct messages, their receive times and
  the publish-to-receive latency;
- `auth.test`, `bots.info` (who the bot is: team T0, user U0BOT, bot B0BOT, app A0APP),
  `conversations.info` (any channel asked for exists, the bot a member) and `users.info`
  (any user exists): form-encoded, as sync sends read methods; never counted.

Every other method answers `{"ok": false, "error": "unknown_method"}`. The token is not
checked: this is a stand-in for measuring, not a fake for testing (services/sandbox/slack.py is).
Requests under `/_bench/` control the counting (`bench.sink` documents them).
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from typing import Any
from urllib.parse import parse_qs

import orjson

from bench.sink import Connection, Sink, run_server

TEAM_ID = "T0"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
APP_ID = "A0APP"

_POST = b"/api/chat.postmessage"  # the head is lower-cased before it is parsed
_API = b"/api/"
_MARK = re.compile(rb"bench_seq=(\d+) sent_at=([0-9.]+)")
_CHANNEL = re.compile(rb'"channel":"([^"]+)"')
_THREAD = re.compile(rb'"thread_ts":"([^"]+)"')
_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=utf-8\r\n"
    b"content-length: %d\r\n\r\n"
)


def _json(document: dict[str, Any]) -> bytes:
    body = orjson.dumps(document)
    return (_HEAD % len(body)) + body


_AUTH_TEST = _json(
    {
        "ok": True,
        "url": "https://bench.slack.com/",
        "team": "Bench",
        "user": "hookhub",
        "team_id": TEAM_ID,
        "user_id": BOT_USER_ID,
        "bot_id": BOT_ID,
        "is_enterprise_install": False,
    }
)
_BOTS_INFO = _json(
    {
        "ok": True,
        "bot": {
            "id": BOT_ID,
            "deleted": False,
            "name": "hookhub",
            "updated": 1763900000,
            "app_id": APP_ID,
            "user_id": BOT_USER_ID,
            "icons": {},
        },
    }
)
_UNKNOWN = _json({"ok": False, "error": "unknown_method"})


def _form(body: bytes) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(body.decode("latin-1")).items()}


def conversation(channel: str) -> dict[str, Any]:
    return {
        "ok": True,
        "channel": {
            "id": channel,
            "name": f"bench-{channel.lower()}",
            "is_channel": True,
            "is_private": False,
            "is_archived": False,
            "is_member": True,
        },
    }


def user(user_id: str) -> dict[str, Any]:
    name = f"Bench User {user_id}"
    avatar = f"https://avatars.slack-edge.com/{user_id}_72.png"
    return {
        "ok": True,
        "user": {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": user_id.lower(),
            "real_name": name,
            "is_bot": False,
            "profile": {"display_name": name, "real_name": name, "image_72": avatar},
        },
    }


class StandIn:
    def __init__(self) -> None:
        self.sink = Sink()
        self._last_ts = 0  # microseconds

    def next_ts(self) -> bytes:
        now = int(time.time() * 1_000_000)
        self._last_ts = now if now > self._last_ts else self._last_ts + 1
        return b"%d.%06d" % divmod(self._last_ts, 1_000_000)

    def post_message(self, body: bytes) -> bytes:
        mark = _MARK.search(body)
        if mark is None:
            self.sink.record(b"")
        else:
            self.sink.record(b'"bench_seq":%s,"sent_at":%s' % (mark.group(1), mark.group(2)))
        channel = _CHANNEL.search(body)
        thread = _THREAD.search(body)
        ts = self.next_ts()
        parts = [
            b'{"ok":true,"channel":"%s","ts":"%s","message":{"type":"message","user":"%s",'
            b'"bot_id":"%s","app_id":"%s","ts":"%s"'
            % (
                channel.group(1) if channel else b"",
                ts,
                BOT_USER_ID.encode(),
                BOT_ID.encode(),
                APP_ID.encode(),
                ts,
            )
        ]
        if thread is not None:
            parts.append(b',"thread_ts":"%s"' % thread.group(1))
        parts.append(b"}}")
        answer = b"".join(parts)
        return (_HEAD % len(answer)) + answer

    def answer(self, path: bytes, body: bytes) -> bytes:
        if path == _POST:
            return self.post_message(body)
        method = path[len(_API) :] if path.startswith(_API) else b""
        if method == b"auth.test":
            return _AUTH_TEST
        if method == b"bots.info":
            return _BOTS_INFO
        if method == b"conversations.info":
            return _json(conversation(_form(body).get("channel", "")))
        if method == b"users.info":
            return _json(user(_form(body).get("user", "")))
        return _UNKNOWN


async def serve(host: str, port: int) -> None:
    standin = StandIn()

    def respond(target: bytes, body: bytes) -> bytes:
        return standin.answer(target.partition(b"?")[0], body)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Connection(standin.sink, respond), host, port, backlog=1024
    )
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    return run_server(serve, "python -m bench.slack_standin", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
