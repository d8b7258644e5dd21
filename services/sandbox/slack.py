"""Fake Slack on loopback: OAuth v2 (on the strict server of services/sandbox/oauth_server.py), the
Web API methods hookhub calls, and the Events API side (signed `event_callback`s to the URL a
test sets). Strict like Slack: `{"ok": false, "error": ...}` with HTTP 200 for refusals,
HTTP 429 + `Retry-After` for limits, read methods that read only query or form arguments,
a bot that can only post where it is a member and only edit or delete its own messages.

One workspace: team T0TEAM, bot user U0BOT, bot id B0BOT, app A0APP. Tokens are the ones
OAuth granted plus bot tokens installed by hand (`add_bot_token`).

Rate limits, as Slack applies them: per method and per token (Slack counts per app and
workspace; a token stands for both here) over a minute (`tier_limit`), and per channel over
a second for `chat.*` writes (`posts_per_second`). `limited_app` is a commercially
distributed app outside the Marketplace (since 2025-05-29): `conversations.history` and
`.replies` at 1 request a minute and at most 15 messages a page (a larger `limit` is
capped, not refused). `clock` is the time the limits are measured with, for tests that
let time pass without waiting.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import math
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from services.sandbox.oauth_server import AccessToken, FakeAuthorizationServer, Grant
from shared.kernel.http.tls import tls

TEAM_ID = "T0TEAM"
TEAM_NAME = "Acme"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
APP_ID = "A0APP"
BOT_NAME = "hookhub"
MAX_TEXT = 40_000
# chat.* write methods, the ones the per-channel rate applies to.
WRITES = frozenset({"chat.postMessage", "chat.update", "chat.delete"})
# Methods that read their arguments from a JSON body; every other one ignores a JSON body.
JSON_METHODS = WRITES | {"chat.postEphemeral"}
# What `limited_app` changes: these methods at 1 request a minute, 15 messages a page.
LIMITED_METHODS = frozenset({"conversations.history", "conversations.replies"})
LIMITED_PAGE = 15


def _error(error: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"ok": False, "error": error, **extra})


def _ts_key(ts: str) -> Decimal:
    return Decimal(ts)


@dataclass
class Channel:
    id: str
    name: str
    member: bool = True
    archived: bool = False
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Users who are not in the channel (every user of the workspace is, but these).
    outsiders: set[str] = field(default_factory=set)

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "is_channel": True,
            "is_group": False,
            "is_im": False,
            "is_private": False,
            "is_archived": self.archived,
            "is_general": self.name == "general",
            "is_member": self.member,
            "name_normalized": self.name,
            "created": 1449252889,
            "creator": "U0OWNER",
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
        }


@dataclass
class SlackCall:
    method: str
    args: dict[str, Any]
    token: str | None
    content_type: str
    at: float = 0.0  # FakeSlack.clock when it came


@dataclass
class Programmed:
    """A scripted answer for the next `times` calls of `method` (to `channel`, if set)."""

    method: str
    channel: str | None
    times: int
    status: int = 200
    error: str = ""
    retry_after: float | None = None


@dataclass
class Hold:
    """Calls of `method` after the first `after` wait, recorded, until `release()`: an import
    held in the middle of its read by construction, not by the machine's speed."""

    method: str
    channel: str | None
    after: int
    seen: int = 0
    reached: asyncio.Event = field(default_factory=asyncio.Event)  # a call is waiting
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.released.set()

    async def passing(self, method: str, channel: str | None) -> None:
        """A call of `method` to `channel` passing the hold: counted, and kept here until
        the release when it is one the hold holds."""
        if self.method != method or self.released.is_set():
            return
        if self.channel is None or self.channel == channel:
            self.seen += 1
            if self.seen > self.after:
                self.reached.set()
                await self.released.wait()


@dataclass
class Delivery:
    body: dict[str, Any]
    headers: dict[str, str]
    status: int  # 0 when the request got no answer


class FakeSlack(FakeAuthorizationServer):
    """`oauth.v2.access` nests the user token under `authed_user`; a refresh answers flat;
    errors are `{"ok": false, "error": ...}` with status 200."""

    provider = "slack"
    authorize_path = "/oauth/v2/authorize"
    token_path = "/api/oauth.v2.access"
    api_path = "/api"
    revoke_path = "/api/auth.revoke"
    pkce = False
    token_prefix = "xoxe.xoxb-"
    team: ClassVar[dict[str, str]] = {"id": TEAM_ID, "name": TEAM_NAME}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.user_token: str | None = None  # set: the code answer carries a user token too
        self.revoked: list[str] = []
        self.bot_tokens: set[str] = set()
        self.channels: dict[str, Channel] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.calls: list[SlackCall] = []
        self.programmed: list[Programmed] = []
        self.holds: list[Hold] = []
        # More writes than this to one channel within a second answer 429 (None: no limit).
        self.posts_per_second: float | None = None
        self._writes: defaultdict[str, deque[float]] = defaultdict(deque)
        # Requests a minute per method and token (`tier_limit`); none by default.
        self.per_minute: dict[str, float] = {}
        self.limited_app = False
        self._minute: defaultdict[tuple[str, str], deque[float]] = defaultdict(deque)
        self.clock: Callable[[], float] = time.monotonic
        # Every replies page after the first starts with the thread's root again.
        self.repeat_thread_root = False
        # (channel, ts) → what conversations.history|replies list in that message's place.
        self.listed_as: dict[tuple[str, str], Any] = {}
        self.limited = 0  # 429s answered, scripted or enforced
        # Events API side: where events go and the secret they are signed with.
        self.events_url: str | None = None
        self.signing_secret = "fake-slack-signing-secret"
        self.verification_token = "fake-verification-token"
        self.echo_before_answer = False
        self.deliveries: list[Delivery] = []
        # What the app answered at its slash commands' response_urls: (path, JSON body).
        self.command_responses: list[tuple[str, dict[str, Any]]] = []
        # Each command's response_url path: where and by whom it was typed (an ephemeral
        # answer there is shown to that user alone, in that channel).
        self._commanded: dict[str, tuple[str, str]] = {}
        # What chat.postEphemeral showed, each to its one user: `{channel, user, text,
        # message_ts, thread_ts?}`. Never among a channel's messages, never in its history,
        # no event of it (Slack sends none).
        self.ephemeral: list[dict[str, Any]] = []
        self._last_ts = Decimal(0)
        self._pending: set[asyncio.Task[Any]] = set()

    # -- what tests set up ------------------------------------------------------------------

    def add_bot_token(self, token: str | None = None) -> str:
        """A bot token of an internal app installed by hand (`xoxb-…`)."""
        token = token or "xoxb-" + secrets.token_hex(12)
        self.bot_tokens.add(token)
        return token

    def add_channel(
        self, id: str, name: str, member: bool = True, archived: bool = False
    ) -> Channel:
        channel = Channel(id, name, member, archived)
        self.channels[id] = channel
        return channel

    def add_user(
        self,
        id: str,
        name: str,
        display_name: str = "",
        avatar: str | None = None,
        *,
        deleted: bool = False,
        bot_id: str | None = None,
    ) -> dict[str, Any]:
        """`name` is the real name; the handle is derived from it. A `bot_id` makes it an
        app's bot user (`is_bot`, the bot id in its profile), as users.list lists them."""
        avatar = avatar or f"https://avatars.slack-edge.com/{id}_72.png"
        user: dict[str, Any] = {
            "id": id,
            "team_id": TEAM_ID,
            "name": name.lower().replace(" ", "."),
            "deleted": deleted,
            "real_name": name,
            "is_bot": bot_id is not None,
            "is_app_user": False,
            "tz": "Europe/London",
            "profile": {
                "real_name": name,
                "real_name_normalized": name,
                "display_name": display_name,
                "display_name_normalized": display_name,
                "image_24": avatar,
                "image_48": avatar,
                "image_72": avatar,
                "team": TEAM_ID,
            },
        }
        if bot_id is not None:
            user["profile"].update(bot_id=bot_id, always_active=True)
        self.users[id] = user
        return user

    def add_history(self, channel: str, messages: Iterable[Mapping[str, Any]]) -> None:
        """Store messages as they are (each with its `ts`; replies with `thread_ts`), many
        at once and without events; thread roots get the reply fields Slack keeps on them
        (`reply_count`, `latest_reply`, ...). `history_message` builds one."""
        stored = self.channels[channel].messages
        for message in messages:
            stored[str(message["ts"])] = dict(message)
        threads: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        for message in stored.values():
            thread_ts = message.get("thread_ts")
            if thread_ts and thread_ts != message["ts"]:
                threads[str(thread_ts)].append(message)
        for root_ts, replies in threads.items():
            self._mark_thread(channel, root_ts, replies)
            for reply in replies:
                reply.setdefault("parent_user_id", self._author(channel, root_ts))

    def rate_limit(
        self, method: str, channel: str | None = None, retry_after: float = 1, times: int = 1
    ) -> None:
        """The next `times` calls of `method` (to `channel`) answer HTTP 429 + Retry-After."""
        self.programmed.append(Programmed(method, channel, times, 429, "ratelimited", retry_after))

    def hold(self, method: str, channel: str | None = None, after: int = 0) -> Hold:
        """The calls of `method` (to `channel`) after the first `after` are answered only
        once the hold is released (they are recorded in `calls` when they come)."""
        hold = Hold(method, channel, after)
        self.holds.append(hold)
        return hold

    def corrupt(self, channel: str, ts: str, listed_as: Any) -> None:
        """Pages list `listed_as` (a string, a message without its ts, ...) where the
        message `ts` is, to see what a reader does with what it cannot read."""
        self.listed_as[(channel, ts)] = listed_as

    def tier_limit(self, method: str, per_minute: float | None) -> None:
        """At most `per_minute` calls of `method` per token in any minute of `clock`; more
        answer 429 with the whole seconds until one is allowed (None: no limit)."""
        if per_minute is None:
            self.per_minute.pop(method, None)
        else:
            self.per_minute[method] = per_minute

    def fail(
        self,
        method: str,
        error: str = "internal_error",
        *,
        status: int = 200,
        channel: str | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` calls answer `{"ok": false, "error": error}` with `status`."""
        self.programmed.append(Programmed(method, channel, times, status, error))

    def next_ts(self) -> str:
        """Unique and increasing, in Slack's `seconds.micro` form."""
        now = Decimal(f"{time.time():.6f}")
        self._last_ts = max(now, self._last_ts + Decimal("0.000001"))
        return f"{self._last_ts:.6f}"

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        found = self.channels.get(channel)
        return found.messages.get(ts) if found else None

    def posts(self, channel: str) -> list[dict[str, Any]]:
        """Our bot's messages in `channel`, oldest first."""
        found = self.channels[channel].messages.values()
        return sorted(
            (m for m in found if m.get("bot_id") == BOT_ID), key=lambda m: _ts_key(m["ts"])
        )

    def calls_of(self, method: str) -> list[SlackCall]:
        return [call for call in self.calls if call.method == method]

    async def settled(self) -> None:
        """Wait until every event delivery under way has been answered."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    # -- users acting in Slack: the change is stored and its event delivered -----------------

    async def post_as_user(
        self,
        channel: str,
        user: str,
        text: str,
        thread_ts: str | None = None,
        files: list[dict[str, Any]] | None = None,
        subtype: str | None = None,
    ) -> str:
        ts = self.next_ts()
        message: dict[str, Any] = {
            "type": "message",
            "user": user,
            "text": text,
            "ts": ts,
            "team": TEAM_ID,
            "client_msg_id": secrets.token_hex(16),
            "blocks": _rich_text(text),
        }
        if thread_ts:
            message.update(thread_ts=thread_ts, parent_user_id=self._author(channel, thread_ts))
        if files:
            message.update(
                subtype="file_share",
                upload=False,
                display_as_bot=False,
                files=[self._file(user, index, spec) for index, spec in enumerate(files)],
            )
        if subtype:
            message["subtype"] = subtype
        self.channels[channel].messages[ts] = message
        if thread_ts:
            self._mark_thread(channel, thread_ts)
        await self.deliver(channel, {**message, "event_ts": ts})
        return ts

    async def edit_as_user(self, channel: str, ts: str, text: str) -> Delivery | None:
        stored = self.channels[channel].messages[ts]
        previous = dict(stored)
        now = self.next_ts()
        stored.update(
            text=text, blocks=_rich_text(text), edited={"user": stored.get("user"), "ts": now}
        )
        return await self.deliver(channel, _changed(stored, previous, now))

    async def delete_as_user(self, channel: str, ts: str) -> Delivery | None:
        previous = self.channels[channel].messages.pop(ts)
        return await self.deliver(channel, _deleted(previous, self.next_ts()))

    async def deliver(self, channel: str, event: dict[str, Any]) -> Delivery | None:
        """Sign and POST one `event_callback` as Slack does, to a channel the bot is in."""
        if self.events_url is None or not self.channels[channel].member:
            return None
        return await self.send_event(self.event_callback(channel, event))

    def event_callback(self, channel: str, event: dict[str, Any]) -> dict[str, Any]:
        """The `event_callback` body Slack sends for `event` in `channel`."""
        event = {**event, "channel": channel, "channel_type": "channel"}
        return {
            "token": self.verification_token,
            "team_id": TEAM_ID,
            "context_team_id": TEAM_ID,
            "context_enterprise_id": None,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": "Ev" + secrets.token_hex(5).upper(),
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": TEAM_ID,
                    "user_id": BOT_USER_ID,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": "4-" + secrets.token_urlsafe(24),
        }

    async def send_event(self, body: dict[str, Any], retry_num: int | None = None) -> Delivery:
        """POST `body` to `events_url`, signed (v0); `retry_num` adds Slack's retry headers."""
        headers = (
            {}
            if retry_num is None
            else {
                "X-Slack-Retry-Num": str(retry_num),
                "X-Slack-Retry-Reason": "timeout",
            }
        )
        return await self._send(body, json.dumps(body).encode(), "application/json", headers)

    def buttons(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The buttons of a message's `actions` blocks, as Slack shows them."""
        stored = self.channels[channel].messages[ts]
        return [
            element
            for block in stored.get("blocks") or []
            if block.get("type") == "actions"
            for element in block.get("elements", [])
            if element.get("type") == "button"
        ]

    async def click(
        self,
        channel: str,
        ts: str,
        action_id: str,
        user: str,
        *,
        trigger_id: str | None = None,
        signing_secret: str | None = None,
    ) -> Delivery:
        """`user` clicks a button of a message of ours: the `block_actions` payload Slack
        POSTs to the app's Interactivity Request URL (`events_url` here), form-encoded as
        `payload=`, signed as its events (v0), with another app's secret when given (a
        forgery). The shape: docs.slack.dev/reference/interaction-payloads/block_actions-payload."""
        stored = self.channels[channel].messages[ts]
        [button] = [b for b in self.buttons(channel, ts) if b["action_id"] == action_id]
        block_id = next(
            block.get("block_id")
            for block in stored.get("blocks") or []
            if button in block.get("elements", [])
        )
        who = self.users.get(user) or {"id": user, "name": user}
        now = self.next_ts()
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {"id": user, "username": who["name"], "name": who["name"], "team_id": TEAM_ID},
            "api_app_id": APP_ID,
            "token": self.verification_token,
            "container": {
                "type": "message",
                "message_ts": ts,
                "channel_id": channel,
                "is_ephemeral": False,
            },
            "trigger_id": trigger_id or f"{secrets.randbelow(10**12)}.{secrets.token_hex(8)}",
            "team": {"id": TEAM_ID, "domain": TEAM_NAME.lower()},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel, "name": self.channels[channel].name},
            "message": self._listed(stored, False),
            "state": {"values": {}},
            "response_url": f"https://hooks.slack.com/actions/{TEAM_ID}/1/{secrets.token_hex(8)}",
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": block_id,
                    "text": button["text"],
                    **({"value": button["value"]} if "value" in button else {}),
                    **({"style": button["style"]} if "style" in button else {}),
                    "type": "button",
                    "action_ts": now,
                }
            ],
        }
        raw = urlencode({"payload": json.dumps(payload)}).encode()
        return await self._send(
            payload, raw, "application/x-www-form-urlencoded", {}, signing_secret
        )

    async def command(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        command: str = "/hookhub",
        trigger_id: str | None = None,
        signing_secret: str | None = None,
    ) -> Delivery:
        """`user` types `/hookhub <text>` in a channel: the form Slack POSTs to the slash
        command's Request URL (`events_url` here), signed as its events (v0), with another
        app's secret when given (a forgery); its `response_url` is this stand-in's, which
        records what the app answers there (`command_responses`). The fields:
        docs.slack.dev/interactivity/implementing-slash-commands, "app_command payload"."""
        who = self.users.get(user) or {"id": user, "name": user}
        trigger = trigger_id or f"{secrets.randbelow(10**12)}.{secrets.token_hex(8)}"
        fields = {
            "token": self.verification_token,
            "team_id": TEAM_ID,
            "team_domain": TEAM_NAME.lower(),
            "channel_id": channel,
            "channel_name": self.channels[channel].name if channel in self.channels else "",
            "user_id": user,
            "user_name": who["name"],
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": f"{self.base_url}/commands/{TEAM_ID}/{secrets.token_hex(8)}",
            "trigger_id": trigger,
        }
        self._commanded[urlsplit(fields["response_url"]).path] = (channel, user)
        raw = urlencode(fields).encode()
        return await self._send(
            fields, raw, "application/x-www-form-urlencoded", {}, signing_secret
        )

    def responses_to(self, delivery: Delivery) -> list[dict[str, Any]]:
        """What the app answered at a command's `response_url`."""
        path = urlsplit(str(delivery.body.get("response_url"))).path
        return [body for at, body in self.command_responses if at == path]

    async def _response_url(self, request: Request) -> Response:
        """A slash command's response_url: the app's answer, recorded."""
        body = json.loads(await request.body() or b"{}")
        self.command_responses.append((request.url.path, body))
        # "ephemeral" unless the answer says "in_channel" (docs.slack.dev/interactivity/
        # handling-user-interaction#message_responses): shown to the user who typed it.
        typed = self._commanded.get(request.url.path)
        if typed is not None and body.get("response_type", "ephemeral") == "ephemeral":
            channel, user = typed
            text = str(body.get("text") or "")
            self.ephemeral.append(
                {"channel": channel, "user": user, "text": text, "message_ts": self.next_ts()}
            )
        return PlainTextResponse("ok")

    async def _send(
        self,
        body: dict[str, Any],
        raw: bytes,
        content_type: str,
        extra: dict[str, str],
        signing_secret: str | None = None,
    ) -> Delivery:
        """POST `raw` to `events_url`, signed (v0) as Slack signs its requests."""
        assert self.events_url is not None
        timestamp = str(int(time.time()))
        secret = signing_secret or self.signing_secret
        signature = hmac.new(
            secret.encode(), b"v0:" + timestamp.encode() + b":" + raw, hashlib.sha256
        ).hexdigest()
        headers = {
            "Content-Type": content_type,
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": f"v0={signature}",
            **extra,
        }
        try:
            async with httpx.AsyncClient(verify=tls(), timeout=10.0) as client:
                answer = await client.post(self.events_url, content=raw, headers=headers)
            status = answer.status_code
        except httpx.HTTPError:
            status = 0
        delivery = Delivery(body, headers, status)
        self.deliveries.append(delivery)
        return delivery

    def _later(self, channel: str, event: dict[str, Any]) -> BackgroundTask | None:
        """Deliver `event` after the API answer has gone out (Slack's usual order)."""
        if self.events_url is None:
            return None

        async def run() -> None:
            task = asyncio.create_task(self.deliver(channel, event))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

        return BackgroundTask(run)

    def _author(self, channel: str, ts: str) -> str | None:
        root = self.message(channel, ts)
        return root.get("user") if root else None

    def _mark_thread(
        self, channel: str, root_ts: str, replies: list[dict[str, Any]] | None = None
    ) -> None:
        """The reply fields Slack keeps on a thread's root, from the replies stored (or the
        ones given, when the caller has already found them)."""
        messages = self.channels[channel].messages
        root = messages.get(root_ts)
        if root is None:
            return
        if replies is None:
            replies = [
                m for m in messages.values() if m.get("thread_ts") == root_ts and m["ts"] != root_ts
            ]
        replies = sorted(replies, key=lambda m: _ts_key(m["ts"]))
        users = list(dict.fromkeys(str(m.get("user")) for m in replies if m.get("user")))
        root.update(
            thread_ts=root_ts,
            reply_count=len(replies),
            reply_users_count=len(users),
            latest_reply=replies[-1]["ts"] if replies else root_ts,
            reply_users=users[:5],
            is_locked=False,
            subscribed=False,
        )

    @staticmethod
    def _file(user: str, index: int, spec: dict[str, Any]) -> dict[str, Any]:
        file_id = spec.get("id") or f"F0{secrets.token_hex(4).upper()}{index}"
        name = spec.get("name", f"file{index}.txt")
        return {
            "id": file_id,
            "created": int(time.time()),
            "timestamp": int(time.time()),
            "name": name,
            "title": spec.get("title", name),
            "mimetype": spec.get("mimetype", "text/plain"),
            "filetype": name.rpartition(".")[2] or "text",
            "user": user,
            "size": spec.get("size", 12),
            "mode": "hosted",
            "is_external": False,
            "url_private": spec.get(
                "url_private", f"https://files.slack.com/files-pri/{TEAM_ID}-{file_id}/{name}"
            ),
            "url_private_download": f"https://files.slack.com/files-pri/{TEAM_ID}-{file_id}/download/{name}",
            "permalink": spec.get(
                "permalink", f"https://acme.slack.com/files/{user}/{file_id}/{name}"
            ),
        }

    # -- OAuth ---------------------------------------------------------------------------------

    def token_answer(
        self, grant_type: str, status: int, body: dict[str, Any], headers: Any
    ) -> Response:
        if status != 200:
            error = body.get("error", "")
            if error == "invalid_grant":
                error = "invalid_refresh_token" if grant_type == "refresh_token" else "invalid_code"
            return JSONResponse({"ok": False, "error": error})
        common = {
            "ok": True,
            "app_id": APP_ID,
            "token_type": "bot",
            "scope": body.get("scope", ""),
            "access_token": body["access_token"],
            "expires_in": body["expires_in"],
            "refresh_token": body.get("refresh_token"),
            "bot_user_id": BOT_USER_ID,
            "team": self.team,
            "enterprise": None,
        }
        if grant_type == "refresh_token":
            return JSONResponse(common)
        authed_user: dict[str, Any] = {"id": "U0USER"}
        if self.user_token:
            # The user's token is a grant of its own: revoking the bot's leaves it alive.
            bot = self.access_tokens[body["access_token"]]
            self.access_tokens[self.user_token] = AccessToken(
                Grant(bot.grant.user, bot.grant.client_id, "search:read"), bot.expires_at
            )
            authed_user.update(scope="search:read", access_token=self.user_token, token_type="user")
        return JSONResponse({**common, "authed_user": authed_user, "is_enterprise_install": False})

    # -- Web API -------------------------------------------------------------------------------

    async def _arguments(self, request: Request, method: str) -> tuple[dict[str, Any], str]:
        content_type = request.headers.get("content-type", "").partition(";")[0].strip()
        args: dict[str, Any] = dict(request.query_params)
        if content_type == "application/json":
            if method in JSON_METHODS:
                try:
                    body = json.loads(await request.body() or b"{}")
                except ValueError:
                    body = None
                if not isinstance(body, dict):
                    raise _Refusal("invalid_json")
                args.update(body)
            # Read methods take no JSON: its arguments are simply not seen.
        elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            args.update(dict(await request.form()))
        return args, content_type

    def _request_token(self, request: Request, args: dict[str, Any]) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token:
            return token
        form_token = args.get("token")
        return str(form_token) if form_token else None

    def _valid_token(self, token: str) -> bool:
        return token in self.bot_tokens or self.valid(token)

    def _programmed(self, method: str, args: dict[str, Any]) -> Response | None:
        for item in self.programmed:
            if item.method == method and item.times > 0:
                if item.channel is not None and item.channel != args.get("channel"):
                    continue
                item.times -= 1
                if item.status == 429:
                    self.limited += 1
                    return JSONResponse(
                        {"ok": False, "error": "ratelimited"},
                        429,
                        headers={"Retry-After": str(int(item.retry_after or 1))},
                    )
                return JSONResponse({"ok": False, "error": item.error}, item.status)
        return None

    def _over_rate(self, method: str, args: dict[str, Any], token: str) -> Response | None:
        per_minute = self.per_minute.get(method)
        if per_minute is None and self.limited_app and method in LIMITED_METHODS:
            per_minute = 1
        if per_minute is not None:
            over = self._over(self._minute[(token, method)], per_minute, 60.0)
            if over is not None:
                return over
        if self.posts_per_second is None or method not in WRITES:
            return None
        return self._over(self._writes[str(args.get("channel"))], self.posts_per_second, 1.0)

    def _over(self, window: deque[float], allowed: float, seconds: float) -> Response | None:
        """A 429 when `window` already holds `allowed` calls within `seconds`, else the call
        counted. Retry-After is whole seconds (Slack's), rounded up: waiting it is enough."""
        now = self.clock()
        while window and now - window[0] >= seconds:
            window.popleft()
        if len(window) >= allowed:
            self.limited += 1
            wait = max(1, math.ceil(window[0] + seconds - now))
            return JSONResponse(
                {"ok": False, "error": "ratelimited"}, 429, headers={"Retry-After": str(wait)}
            )
        window.append(now)
        return None

    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        handler = self._handlers().get(method)
        try:
            args, content_type = await self._arguments(request, method)
        except _Refusal as refusal:
            return _error(refusal.error)
        token = self._request_token(request, args)
        self.calls.append(
            SlackCall(
                method,
                {k: v for k, v in args.items() if k != "token"},
                token,
                content_type,
                self.clock(),
            )
        )
        for hold in self.holds:
            await hold.passing(method, args.get("channel"))
        if handler is None:
            return _error("unknown_method")
        if token is None:
            return _error("not_authed")
        if not self._valid_token(token):
            return _error("invalid_auth")
        scripted = self._programmed(method, args) or self._over_rate(method, args, token)
        if scripted is not None:
            return scripted
        try:
            return await handler(token, args)
        except _Refusal as refusal:
            return _error(refusal.error)

    def _handlers(self) -> dict[str, Handler]:
        return {
            "auth.test": self._auth_test,
            "bots.info": self._bots_info,
            "conversations.info": self._conversations_info,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "users.info": self._users_info,
            "users.list": self._users_list,
            "chat.postMessage": self._post_message,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.update": self._update,
            "chat.delete": self._delete,
        }

    def _channel(self, args: dict[str, Any], *, member: bool, writable: bool) -> Channel:
        channel_id = args.get("channel")
        if not channel_id:
            raise _Refusal("channel_not_found")
        channel = self.channels.get(str(channel_id))
        if channel is None:
            raise _Refusal("channel_not_found")
        if writable and channel.archived:
            raise _Refusal("is_archived")
        if member and not channel.member:
            raise _Refusal("not_in_channel")
        return channel

    async def _auth_test(self, token: str, args: dict[str, Any]) -> Response:
        # A bot token's answer names the bot (bot_id) but not its app: bots.info has app_id.
        return JSONResponse(
            {
                "ok": True,
                "url": "https://acme.slack.com/",
                "team": TEAM_NAME,
                "user": BOT_NAME,
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
                "is_enterprise_install": False,
            }
        )

    async def _bots_info(self, token: str, args: dict[str, Any]) -> Response:
        if args.get("bot") != BOT_ID:
            return _error("bot_not_found")
        return JSONResponse(
            {
                "ok": True,
                "bot": {
                    "id": BOT_ID,
                    "deleted": False,
                    "name": BOT_NAME,
                    "updated": 1449272004,
                    "app_id": APP_ID,
                    "user_id": BOT_USER_ID,
                    "icons": {"image_36": "https://a.slack-edge.com/bot_36.png"},
                },
            }
        )

    async def _conversations_info(self, token: str, args: dict[str, Any]) -> Response:
        # Public channels: the bot sees them without being a member.
        channel = self._channel(args, member=False, writable=False)
        return JSONResponse({"ok": True, "channel": channel.info()})

    async def _users_info(self, token: str, args: dict[str, Any]) -> Response:
        user = self.users.get(str(args.get("user", "")))
        if user is None:
            return _error("user_not_found")
        return JSONResponse({"ok": True, "user": user})

    async def _users_list(self, token: str, args: dict[str, Any]) -> Response:
        """Users in the order they joined, `limit` a page (none: all of them at once, as
        Slack tries to); the cursor is Slack's own form, base64 of `user:<next id>`."""
        try:
            limit = int(args.get("limit") or 0)
        except ValueError:
            return _error("invalid_arguments")
        ids = list(self.users)
        start = 0
        if args.get("cursor"):
            try:
                after = base64.b64decode(str(args["cursor"])).decode().removeprefix("user:")
                start = ids.index(after)
            except ValueError:
                return _error("invalid_cursor")
        end = len(ids) if limit <= 0 else start + min(limit, 1000)
        body: dict[str, Any] = {
            "ok": True,
            "members": [self.users[user] for user in ids[start:end]],
            "cache_ts": int(time.time()),
            "response_metadata": {"next_cursor": ""},
        }
        if end < len(ids):
            cursor = base64.b64encode(f"user:{ids[end]}".encode()).decode()
            body["response_metadata"] = {"next_cursor": cursor}
        return JSONResponse(body)

    def _listed(self, message: dict[str, Any], metadata: bool) -> dict[str, Any]:
        if metadata or "metadata" not in message:
            return message
        return {k: v for k, v in message.items() if k != "metadata"}

    async def _conversations_history(self, token: str, args: dict[str, Any]) -> Response:
        channel = self._channel(args, member=True, writable=False)
        top_level = [
            m
            for m in channel.messages.values()
            if m.get("thread_ts") in (None, m["ts"]) or m.get("subtype") == "thread_broadcast"
        ]
        return self._page(
            "conversations.history", top_level, args, newest_first=True, channel=channel.id
        )

    async def _conversations_replies(self, token: str, args: dict[str, Any]) -> Response:
        channel = self._channel(args, member=True, writable=False)
        root_ts = str(args.get("ts", ""))
        if root_ts not in channel.messages:
            return _error("thread_not_found")
        thread = [
            m
            for m in channel.messages.values()
            if m["ts"] == root_ts or m.get("thread_ts") == root_ts
        ]
        root = channel.messages[root_ts] if self.repeat_thread_root and args.get("cursor") else None
        return self._page(
            "conversations.replies", thread, args, newest_first=False, head=root, channel=channel.id
        )

    def _page(
        self,
        method: str,
        messages: list[dict[str, Any]],
        args: dict[str, Any],
        *,
        newest_first: bool,
        head: dict[str, Any] | None = None,
        channel: str = "",
    ) -> Response:
        inclusive = str(args.get("inclusive", "")).lower() in ("true", "1")
        try:
            oldest = _ts_key(str(args.get("oldest") or "0"))
            latest = _ts_key(str(args["latest"])) if args.get("latest") else None
            limit = int(args.get("limit") or 100)
        except (ArithmeticError, ValueError):
            return _error("invalid_arguments")
        limit = max(1, min(limit, 999))
        if self.limited_app and method in LIMITED_METHODS:
            # Slack's documented maximum for such apps; a larger ask is capped, not refused.
            limit = min(limit if args.get("limit") else LIMITED_PAGE, LIMITED_PAGE)

        def inside(ts: Decimal) -> bool:
            above = ts >= oldest if inclusive else ts > oldest
            below = latest is None or (ts <= latest if inclusive else ts < latest)
            return above and below

        chosen = sorted(
            (m for m in messages if inside(_ts_key(m["ts"]))),
            key=lambda m: _ts_key(m["ts"]),
            reverse=newest_first,
        )
        if args.get("cursor"):
            try:
                start = base64.b64decode(str(args["cursor"])).decode().removeprefix("next_ts:")
                start_key = _ts_key(start)
            except (ValueError, ArithmeticError):
                return _error("invalid_cursor")
            chosen = [
                m
                for m in chosen
                if (
                    _ts_key(m["ts"]) <= start_key if newest_first else _ts_key(m["ts"]) >= start_key
                )
            ]
        page, rest = chosen[:limit], chosen[limit:]
        if head is not None and (not page or page[0] is not head):
            page = [head, *page]
        metadata = str(args.get("include_all_metadata", "")).lower() in ("true", "1")
        body: dict[str, Any] = {
            "ok": True,
            "messages": [
                self.listed_as.get((channel, m["ts"]), self._listed(m, metadata)) for m in page
            ],
            "has_more": bool(rest),
            "pin_count": 0,
        }
        if rest:
            cursor = base64.b64encode(f"next_ts:{rest[0]['ts']}".encode()).decode()
            body["response_metadata"] = {"next_cursor": cursor}
        return JSONResponse(body)

    @staticmethod
    def _text(args: dict[str, Any], *, required: bool) -> str:
        text = args.get("text")
        text = "" if text is None else str(text)
        if required and not text.strip() and not args.get("blocks") and not args.get("attachments"):
            raise _Refusal("no_text")
        if len(text) > MAX_TEXT:
            raise _Refusal("msg_too_long")
        return text

    @staticmethod
    def _blocks(args: dict[str, Any]) -> list[dict[str, Any]] | None:
        raw = args.get("blocks")
        if isinstance(raw, str):  # form-encoded: a JSON string
            try:
                raw = json.loads(raw)
            except ValueError:
                raise _Refusal("invalid_blocks_format") from None
        if raw is None:
            return None
        if not isinstance(raw, list) or len(raw) > 50:
            raise _Refusal("invalid_blocks")
        for block in raw:
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                raise _Refusal("invalid_blocks")
            if block["type"] == "actions" and len(block.get("elements") or []) > 25:
                raise _Refusal("invalid_blocks")
        return raw

    @staticmethod
    def _metadata(args: dict[str, Any]) -> dict[str, Any] | None:
        raw = args.get("metadata")
        if raw is None:
            return None
        if isinstance(raw, str):  # form-encoded: a JSON string
            try:
                raw = json.loads(raw)
            except ValueError:
                raise _Refusal("invalid_metadata_format") from None
        if (
            not isinstance(raw, dict)
            or not isinstance(raw.get("event_type"), str)
            or not isinstance(raw.get("event_payload"), dict)
        ):
            raise _Refusal("invalid_metadata_format")
        return {"event_type": raw["event_type"], "event_payload": raw["event_payload"]}

    def _bot_message(self, args: dict[str, Any], text: str, ts: str) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "message",
            "text": text,
            "ts": ts,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
        }
        if args.get("username") or args.get("icon_url"):
            # A customised author makes it a bot_message with the name and icon given.
            message.update(subtype="bot_message", username=str(args.get("username") or BOT_NAME))
            if args.get("icon_url"):
                message["icons"] = {"image_48": str(args["icon_url"])}
        else:
            message.update(
                user=BOT_USER_ID,
                bot_profile={
                    "id": BOT_ID,
                    "app_id": APP_ID,
                    "name": BOT_NAME,
                    "team_id": TEAM_ID,
                    "deleted": False,
                },
            )
        if args.get("thread_ts"):
            message["thread_ts"] = str(args["thread_ts"])
            if str(args.get("reply_broadcast", "")).lower() in ("true", "1"):
                message["subtype"] = "thread_broadcast"
        return message

    async def _post_message(self, token: str, args: dict[str, Any]) -> Response:
        channel = self._channel(args, member=True, writable=True)
        text = self._text(args, required=True)
        metadata = self._metadata(args)
        ts = self.next_ts()
        message = self._bot_message(args, text, ts)
        if metadata is not None:
            message["metadata"] = metadata
        blocks = self._blocks(args)
        if blocks:
            message["blocks"] = blocks
        channel.messages[ts] = message
        answer_body = {"ok": True, "channel": channel.id, "ts": ts, "message": message}
        echo = {**self._listed(message, False), "event_ts": ts}
        if self.echo_before_answer and self.events_url is not None:
            # The early-echo race: the event is delivered (and answered) before the API answer.
            await self.deliver(channel.id, echo)
            return JSONResponse(answer_body)
        return JSONResponse(answer_body, background=self._later(channel.id, echo))

    async def _post_ephemeral(self, token: str, args: dict[str, Any]) -> Response:
        """chat.postEphemeral (api.slack.com/methods/chat.postEphemeral): shown to `user`
        alone, in `channel`, where the bot must be and the user too
        (`user_not_in_channel`); answered `{message_ts}` and kept in `ephemeral` only."""
        channel = self._channel(args, member=True, writable=True)
        user = str(args.get("user") or "")
        if not user:
            raise _Refusal("user_not_found")
        if user not in self.users or user in channel.outsiders:
            raise _Refusal("user_not_in_channel")
        text = self._text(args, required=True)
        ts = self.next_ts()
        shown = {"channel": channel.id, "user": user, "text": text, "message_ts": ts}
        if args.get("thread_ts"):
            shown["thread_ts"] = str(args["thread_ts"])
        self.ephemeral.append(shown)
        return JSONResponse({"ok": True, "message_ts": ts})

    def _own(self, channel: Channel, args: dict[str, Any], cannot: str) -> dict[str, Any]:
        stored = channel.messages.get(str(args.get("ts", "")))
        if stored is None:
            raise _Refusal("message_not_found")
        if stored.get("bot_id") != BOT_ID:
            raise _Refusal(cannot)
        return stored

    async def _update(self, token: str, args: dict[str, Any]) -> Response:
        channel = self._channel(args, member=True, writable=True)
        stored = self._own(channel, args, "cant_update_message")
        text = self._text(args, required=True)
        previous = dict(stored)
        now = self.next_ts()
        stored.update(text=text, edited={"user": BOT_USER_ID, "ts": now})
        # chat.update's `blocks`: given, they replace the message's (an empty array removes
        # them); not given beside a new `text`, the blocks are removed too.
        blocks = self._blocks(args)
        if blocks:
            stored["blocks"] = blocks
        else:
            stored.pop("blocks", None)
        return JSONResponse(
            {
                "ok": True,
                "channel": channel.id,
                "ts": stored["ts"],
                "text": text,
                "message": stored,
            },
            background=self._later(
                channel.id,
                _changed(self._listed(stored, False), self._listed(previous, False), now),
            ),
        )

    async def _delete(self, token: str, args: dict[str, Any]) -> Response:
        channel = self._channel(args, member=True, writable=True)
        stored = self._own(channel, args, "cant_delete_message")
        del channel.messages[stored["ts"]]
        return JSONResponse(
            {"ok": True, "channel": channel.id, "ts": stored["ts"]},
            background=self._later(
                channel.id, _deleted(self._listed(stored, False), self.next_ts())
            ),
        )

    async def _auth_revoke(self, request: Request) -> Response:
        token = request.headers.get("authorization", "").partition(" ")[2]
        if token in self.bot_tokens:
            self.bot_tokens.discard(token)
        elif not self.revoke(token):
            return _error("invalid_auth")
        self.revoked.append(token)
        return JSONResponse({"ok": True, "revoked": True})

    def routes(self) -> list[Route]:
        return [
            *super().routes(),
            # Before the catch-all: auth.revoke is the OAuth side's.
            Route("/api/auth.revoke", self._auth_revoke, methods=["POST"]),
            Route("/commands/{team}/{key}", self._response_url, methods=["POST"]),
            Route("/api/{method}", self._api, methods=["GET", "POST"]),
        ]


Handler = Callable[[str, dict[str, Any]], Awaitable[Response]]


class _Refusal(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def history_message(
    ts: str, user: str, text: str, thread_ts: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A person's message as conversations.history lists it, for `add_history`."""
    message: dict[str, Any] = {
        "type": "message",
        "user": user,
        "text": text,
        "ts": ts,
        "team": TEAM_ID,
        "client_msg_id": secrets.token_hex(16),
    }
    if thread_ts is not None and thread_ts != ts:
        message["thread_ts"] = thread_ts
    message.update(extra)
    return message


def _rich_text(text: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "rich_text",
            "block_id": secrets.token_urlsafe(3),
            "elements": [
                {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
            ],
        }
    ]


def _changed(message: dict[str, Any], previous: dict[str, Any], ts: str) -> dict[str, Any]:
    return {
        "type": "message",
        "subtype": "message_changed",
        "hidden": True,
        "message": message,
        "previous_message": previous,
        "ts": ts,
        "event_ts": ts,
    }


def _deleted(previous: dict[str, Any], ts: str) -> dict[str, Any]:
    return {
        "type": "message",
        "subtype": "message_deleted",
        "hidden": True,
        "deleted_ts": previous["ts"],
        "previous_message": previous,
        "ts": ts,
        "event_ts": ts,
    }
