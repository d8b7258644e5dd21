"""Fake Discord on loopback: the REST API v10 (under `/api/v10`) and the Gateway WebSocket
(`/gateway`), strict like Discord and in its wire format.

REST answers Discord's error JSON `{"message", "code"}` (with `errors` for 50035 Invalid Form
Body) and its status codes; every answer of a rate-limited route carries the `X-RateLimit-*`
headers of its bucket, and a bucket past its limit answers 429 with the documented body and
headers (docs.discord.com/developers/topics/rate-limits). The bot's permissions in a channel
are encoded as Discord encodes them, so a client can compute them: an @everyone role (id ==
guild id) with permissions "0" and a member overwrite per bot on each channel.

The Gateway speaks JSON v10: Hello, heartbeats and ACKs, Identify → READY + GUILD_CREATE,
dispatches with a sequence per session, Resume replaying what the session missed, op 7,
op 9 and the documented close codes. Every message created, edited or deleted, through REST
or by a test's user, is dispatched to the sessions that may see it (the echo of our own sends
included, as Discord does).

Interactions: each bot's application has an Ed25519 key (`verify_key`, the Developer Portal's
"Public Key"); `PATCH /applications/@me` sets its Interactions Endpoint URL, checked first as
Discord checks it (a signed PING must be answered `{"type": 1}`, a forged one 401), and
`interact` sends an APPLICATION_COMMAND there, signed as Discord signs it: Ed25519 over the
`X-Signature-Timestamp` value followed by the body, hex in `X-Signature-Ed25519`
(docs.discord.com/developers/interactions/overview, "Setting Up an Endpoint").

OAuth2 (on the strict server of services/sandbox/oauth_server.py): bot authorisation, whose token
answer names the guild and whose callback adds `guild_id`; `GET /api/v10/users/@me` with an
access token (`Bearer`) is the authorising user; RFC 7009 revocation with HTTP Basic.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, ClassVar

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from services.sandbox.oauth_server import FakeAuthorizationServer, answer
from shared.kernel.http.tls import tls

API_PREFIX = "/api/v10"
DISCORD_EPOCH_MS = 1_420_070_400_000

# Permission bits (docs.discord.com/developers/topics/permissions).
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
READ_MESSAGE_HISTORY = 1 << 16
MANAGE_WEBHOOKS = 1 << 29
ALL = VIEW_CHANNEL | SEND_MESSAGES | MANAGE_MESSAGES | READ_MESSAGE_HISTORY | MANAGE_WEBHOOKS

# Gateway intents (docs.discord.com/developers/events/gateway#gateway-intents).
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_PRESENCES = 1 << 8
GUILD_MESSAGES = 1 << 9
MESSAGE_CONTENT = 1 << 15
# Every intent Discord defines today is below bit 26; a higher bit is an invalid intent (4013).
VALID_INTENTS = (1 << 26) - 1
# Application flags: the Message Content intent enabled in the portal.
GATEWAY_MESSAGE_CONTENT = 1 << 18

MAX_CONTENT = 2000
MAX_WEBHOOKS_PER_CHANNEL = 15

# Message types.
DEFAULT = 0
REPLY = 19

# Route names, as `requests`, `sent()` and `set_rate_limit()` know them.
GET_CURRENT_USER = "get_current_user"
GET_USER = "get_user"
GET_GATEWAY_BOT = "get_gateway_bot"
GET_APPLICATION = "get_application"
EDIT_APPLICATION = "edit_current_application"
GET_COMMANDS = "get_global_application_commands"
CREATE_COMMAND = "create_global_application_command"
GET_CHANNEL = "get_channel"
GET_GUILD = "get_guild"
GET_GUILD_ROLES = "get_guild_roles"
GET_GUILD_CHANNELS = "get_guild_channels"
GET_GUILD_MEMBER = "get_guild_member"
GET_CHANNEL_MESSAGES = "get_channel_messages"
GET_CHANNEL_MESSAGE = "get_channel_message"
CREATE_MESSAGE = "create_message"
EDIT_MESSAGE = "edit_message"
DELETE_MESSAGE = "delete_message"
GET_CHANNEL_WEBHOOKS = "get_channel_webhooks"
CREATE_WEBHOOK = "create_webhook"
EXECUTE_WEBHOOK = "execute_webhook"
GET_WEBHOOK_MESSAGE = "get_webhook_message"
EDIT_WEBHOOK_MESSAGE = "edit_webhook_message"
EDIT_ORIGINAL_RESPONSE = "edit_original_interaction_response"
# The message flag of what its user alone sees (docs.discord.com/developers/resources/
# message, "Message Flags").
EPHEMERAL = 1 << 6
DELETE_WEBHOOK_MESSAGE = "delete_webhook_message"


class DiscordError(Exception):
    """An error answer in Discord's JSON form."""

    def __init__(
        self, status: int, code: int, message: str, errors: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors is not None:
            body["errors"] = self.errors
        return JSONResponse(body, self.status)


def form_error(field_path: str, code: str, message: str) -> DiscordError:
    """400 50035 Invalid Form Body with one field's error, nested as Discord nests it."""
    errors: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for part in reversed(field_path.split(".")):
        errors = {part: errors}
    return DiscordError(400, 50035, "Invalid Form Body", errors)


def unknown(what: str, code: int) -> DiscordError:
    return DiscordError(404, code, f"Unknown {what}")


MISSING_ACCESS = (403, 50001, "Missing Access")
MISSING_PERMISSIONS = (403, 50013, "Missing Permissions")


def _refuse(status_code_message: tuple[int, int, str]) -> DiscordError:
    return DiscordError(*status_code_message)


# -- state ------------------------------------------------------------------------------------


# How long an interaction's token takes follow-ups (Discord's "15 minutes").
INTERACTION_TOKEN_SECONDS = 15 * 60.0


@dataclass
class SentInteraction:
    """An interaction sent to an application: its token follows it up."""

    application_id: str
    channel_id: str
    user_id: str
    expires_at: float  # time.monotonic()


@dataclass
class Interaction:
    """An application command sent to the app, and how the app answered it."""

    token: str
    response: Any = None
    edits: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ephemeral(self) -> bool:
        """The initial response (deferred or not) was seen by its user alone (flags 64)."""
        data = self.response.get("data") if isinstance(self.response, dict) else None
        return isinstance(data, dict) and bool(int(data.get("flags") or 0) & EPHEMERAL)


@dataclass
class Bot:
    """A bot user and its application (one each, as Discord has it)."""

    token: str
    user_id: str
    username: str
    application_id: str
    message_content_intent: bool = True
    # The application's interactions key and where its interactions are sent.
    signing_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    interactions_endpoint_url: str | None = None
    # The application commands sent, by interaction id: their token, the endpoint's answer
    # (the initial response) and the edits of that response made with the token.
    interactions: dict[str, Interaction] = field(default_factory=dict)
    # The application's global commands, by name; how many were new (Discord allows 200 a
    # day: an overwrite of one of the same name is not new).
    commands: dict[str, dict[str, Any]] = field(default_factory=dict)
    commands_created: int = 0

    @property
    def public_key(self) -> str:
        """The application's `verify_key`: 64 hex digits."""
        return _public_hex(self.signing_key)

    def signed(self, body: bytes, timestamp: str | None = None) -> dict[str, str]:
        """The headers Discord sends an interaction with."""
        stamp = timestamp or str(int(time.time()))
        signature = self.signing_key.sign(stamp.encode() + body).hex()
        return {
            "content-type": "application/json",
            "x-signature-ed25519": signature,
            "x-signature-timestamp": stamp,
        }

    def user(self) -> dict[str, Any]:
        return {
            "id": self.user_id,
            "username": self.username,
            "discriminator": "0",
            "global_name": None,
            "avatar": None,
            "bot": True,
            "public_flags": 0,
        }


def public_key_of(seed: bytes) -> str:
    """The public key (64 hex digits) of the Ed25519 key with this 32-byte seed."""
    return _public_hex(Ed25519PrivateKey.from_private_bytes(seed))


def _public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


@dataclass
class Guild:
    id: str
    name: str
    owner_id: str
    # Bots that are members; None: every bot.
    bot_ids: set[str] | None = None

    def has(self, bot: Bot) -> bool:
        return self.bot_ids is None or bot.user_id in self.bot_ids


@dataclass
class Channel:
    id: str
    guild_id: str
    name: str
    permissions: int
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Webhook:
    id: str
    token: str
    channel_id: str
    guild_id: str
    name: str
    application_id: str | None
    creator: dict[str, Any]

    def body(self, *, with_token: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "type": 1,
            "guild_id": self.guild_id,
            "channel_id": self.channel_id,
            "user": self.creator,
            "name": self.name,
            "avatar": None,
            "application_id": self.application_id,
        }
        if with_token:
            body["token"] = self.token
            body["url"] = f"https://discord.com/api/webhooks/{self.id}/{self.token}"
        return body


@dataclass
class DiscordRequest:
    method: str
    path: str  # below /api/v10
    route: str  # one of the route names above, "" when no route matched
    query: dict[str, str]
    json: Any
    headers: dict[str, str]
    status: int = 0


@dataclass
class _Bucket:
    limit: int
    per: float
    remaining: int = 0
    reset_at: float = 0.0


@dataclass
class _Scripted:
    """The next `times` requests (of `route`, to `major`) answer this way."""

    times: int
    route: str | None = None
    major: str | None = None
    status: int = 429
    retry_after: float = 0.5
    is_global: bool = False


@dataclass
class _Call:
    request: Request
    route: str
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    bot: Bot | None
    after: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def json_object(self) -> dict[str, Any]:
        if self.body is None:
            return {}
        if not isinstance(self.body, dict):
            raise DiscordError(400, 50109, "The request body contains invalid JSON.")
        return self.body


Handler = Callable[[_Call], Awaitable[Response]]


@dataclass
class _Route:
    method: str
    template: str
    name: str
    handler: Handler
    auth: bool  # needs `Authorization: Bot <token>`
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        regex = re.sub(
            r"\{(\w+)\}",
            r"(?P<\1>[^/]+)",
            re.escape(self.template).replace(r"\{", "{").replace(r"\}", "}"),
        )
        self.pattern = re.compile(f"^{regex}$")


# Default per-route limits (requests, seconds), per major parameter. Discord's real numbers
# are not documented and change; these are generous so that only a test that sets one small
# meets a 429.
DEFAULT_LIMIT = (50, 1.0)


class FakeDiscord(FakeAuthorizationServer):
    provider = "discord"
    authorize_path = "/oauth2/authorize"
    token_path = "/api/oauth2/token"
    api_path = API_PREFIX
    revoke_path = "/api/oauth2/token/revoke"
    oauth_guild: ClassVar[dict[str, str]] = {"id": "G0GUILD", "name": "Guild of Tests"}
    oauth_user: ClassVar[dict[str, str]] = {
        "id": "U0USER",
        "username": "alice",
        "global_name": "Alice",
    }

    def __init__(
        self,
        *,
        heartbeat_interval_ms: int = 41_250,
        heartbeat_grace_ms: int | None = None,
        session_start_total: int = 1000,
        **oauth: Any,
    ) -> None:
        super().__init__(**oauth)
        self.base_url = ""  # set by the test once served
        self.heartbeat_interval_ms = heartbeat_interval_ms
        # A connection that sends no heartbeat for interval + grace is closed with 4009.
        self.heartbeat_grace_ms = (
            heartbeat_grace_ms if heartbeat_grace_ms is not None else heartbeat_interval_ms // 2
        )
        self.bots: dict[str, Bot] = {}  # by token
        self.users: dict[str, dict[str, Any]] = {}
        self.guilds: dict[str, Guild] = {}
        self.channels: dict[str, Channel] = {}
        self.webhooks: dict[str, Webhook] = {}
        self.requests: list[DiscordRequest] = []
        # Interactions sent, by their token: who may follow them up, and until when.
        self.interactions: dict[str, SentInteraction] = {}
        # Follow-up messages made with an interaction's token: an ephemeral one (`flags`
        # 64) is shown to the interaction's user alone, kept here and nowhere else.
        self.followups: list[dict[str, Any]] = []
        self.echo_before_answer = False  # dispatch a REST change before answering it
        self.rate_limited = 0  # 429s answered
        self._limits: dict[tuple[str, str | None], tuple[int, float]] = {}
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._scripted: list[_Scripted] = []
        self._last_snowflake = 0
        self._owner_id = self.snowflake()
        self.session_start_total = session_start_total
        self.session_start_remaining = session_start_total
        self._routes = self._route_table()
        self._gateway_init()

    # -- what tests set up ---------------------------------------------------------------------

    def add_bot(
        self,
        token: str,
        user_id: str,
        username: str,
        application_id: str,
        *,
        message_content_intent: bool = True,
        signing_seed: bytes | None = None,
    ) -> Bot:
        """`signing_seed`: 32 bytes, the application's interactions key (else a new one)."""
        bot = Bot(token, user_id, username, application_id, message_content_intent)
        if signing_seed is not None:
            bot.signing_key = Ed25519PrivateKey.from_private_bytes(signing_seed)
        self.bots[token] = bot
        return bot

    async def interact(
        self,
        token: str,
        channel_id: str,
        user_id: str,
        command: str,
        options: dict[str, str] | list[dict[str, Any]] | None = None,
        *,
        interaction_id: str | None = None,
        forged: bool = False,
    ) -> tuple[int, Any]:
        """A user runs the slash command `/command` in a channel: the APPLICATION_COMMAND
        interaction goes to the bot's application's Interactions Endpoint URL, signed (by
        another key when `forged`). `options`: string options by name, or the options as
        Discord sends them (a subcommand's, `type` 1, with its own). The endpoint's status
        and answer; the interaction is kept in `bot.interactions`, its token good for
        editing the answer (`PATCH /webhooks/{application}/{token}/messages/@original`)."""
        bot = self.bots[token]
        if not bot.interactions_endpoint_url:
            raise DiscordError(400, 0, "the application has no Interactions Endpoint URL")
        channel = self.channels[channel_id]
        user = self.users[user_id]
        token = secrets.token_urlsafe(48)
        interaction_id = interaction_id or self.snowflake()
        given = (
            options
            if isinstance(options, list)
            else [
                {"name": name, "type": 3, "value": value}  # STRING
                for name, value in (options or {}).items()
            ]
        )
        interaction = {
            "id": interaction_id,
            "application_id": bot.application_id,
            "type": 2,  # APPLICATION_COMMAND
            "data": {"id": self.snowflake(), "name": command, "type": 1, "options": given},
            "guild_id": channel.guild_id,
            "channel_id": channel_id,
            "channel": {"id": channel_id, "type": 0, "name": channel.name},
            "member": {"user": user, "nick": None, "roles": [], "permissions": str(ALL)},
            "token": token,
            "version": 1,
            "app_permissions": str(ALL),
            "locale": "en-US",
            "guild_locale": "en-US",
        }
        sent = Interaction(token)
        bot.interactions[interaction_id] = sent
        status, sent.response = await self._send_interaction(
            bot, bot.interactions_endpoint_url, interaction, forged=forged
        )
        return status, sent.response

    async def _send_interaction(
        self, bot: Bot, url: str, interaction: dict[str, Any], *, forged: bool = False
    ) -> tuple[int, Any]:
        user = (interaction.get("member") or {}).get("user") or interaction.get("user") or {}
        if interaction.get("token") and interaction.get("channel_id"):  # not a PING
            self.interactions[interaction["token"]] = SentInteraction(
                bot.application_id,
                interaction["channel_id"],
                str(user.get("id", "")),
                time.monotonic() + INTERACTION_TOKEN_SECONDS,
            )
        body = json.dumps(interaction).encode()
        headers = bot.signed(body)
        if forged:  # signed by another key: what Discord's security checks send
            headers = Bot("", "", "", "").signed(body, headers["x-signature-timestamp"])
        async with httpx.AsyncClient(verify=tls(), timeout=5.0) as client:
            answer = await client.post(url, content=body, headers=headers)
        try:
            return answer.status_code, answer.json()
        except ValueError:
            return answer.status_code, answer.text

    def add_guild(self, guild_id: str, name: str, *, bots: Iterable[str] | None = None) -> Guild:
        """`bots`: user ids of the bots that are members (default: every bot)."""
        guild = Guild(guild_id, name, self._owner_id, None if bots is None else set(bots))
        self.guilds[guild_id] = guild
        return guild

    def add_channel(
        self, channel_id: str, guild_id: str, name: str, *, permissions: int = ALL
    ) -> Channel:
        """`permissions`: the bots' effective permission bits in this channel."""
        channel = Channel(channel_id, guild_id, name, permissions)
        self.channels[channel_id] = channel
        return channel

    def add_user(
        self,
        user_id: str,
        username: str,
        *,
        global_name: str | None = None,
        avatar: str | None = None,
    ) -> dict[str, Any]:
        user = {
            "id": user_id,
            "username": username,
            "discriminator": "0",
            "global_name": global_name,
            "avatar": avatar,
            "public_flags": 0,
        }
        self.users[user_id] = user
        return user

    def add_webhook(
        self, channel_id: str, name: str, *, application_id: str | None = None
    ) -> Webhook:
        """A webhook somebody else made (a user by hand, another app) in `channel_id`."""
        channel = self.channels[channel_id]
        creator = {"id": self._owner_id, "username": "owner", "discriminator": "0"}
        webhook = Webhook(
            self.snowflake(),
            secrets.token_urlsafe(50),
            channel_id,
            channel.guild_id,
            name,
            application_id,
            creator,
        )
        self.webhooks[webhook.id] = webhook
        return webhook

    def set_rate_limit(
        self, route: str, limit: int, per_seconds: float, *, major: str | None = None
    ) -> None:
        """`limit` requests per `per_seconds` on `route` (a route name above), for one major
        parameter (a channel id, guild id or webhook id) or, without `major`, for each. The
        default is 50 per second, per route and major parameter."""
        self._limits[(route, major)] = (limit, per_seconds)
        for key in [k for k in self._buckets if k[0] == route and (major is None or k[1] == major)]:
            del self._buckets[key]

    def rate_limit_next(
        self,
        times: int = 1,
        *,
        route: str | None = None,
        major: str | None = None,
        retry_after: float = 0.5,
        is_global: bool = False,
    ) -> None:
        """The next `times` requests (of `route`, to `major`) answer 429; `is_global`: the
        global limit (`"global": true`, `X-RateLimit-Global`, scope global)."""
        self._scripted.append(_Scripted(times, route, major, 429, retry_after, is_global=is_global))

    def fail_next(self, times: int = 1, *, status: int = 500, route: str | None = None) -> None:
        """The next `times` requests (of `route`) answer `status` (500, 502, 503...)."""
        self._scripted.append(_Scripted(times, route, None, status))

    def snowflake(self, at: float | None = None) -> str:
        """A real snowflake: ms since the Discord epoch << 22, increasing."""
        ms = int((time.time() if at is None else at) * 1000)
        value = (ms - DISCORD_EPOCH_MS) << 22 | (1 << 17) | (1 << 12)
        self._last_snowflake = max(value, self._last_snowflake + 1)
        return str(self._last_snowflake)

    # -- what tests read -----------------------------------------------------------------------

    def messages(self, channel_id: str) -> list[dict[str, Any]]:
        """The channel's messages, oldest first."""
        found = self.channels[channel_id].messages.values()
        return sorted(found, key=lambda m: int(m["id"]))

    def message(self, channel_id: str, message_id: str) -> dict[str, Any] | None:
        return self.channels[channel_id].messages.get(message_id)

    def sent(self, route: str) -> list[DiscordRequest]:
        """The requests made to `route` (a route name above), in order."""
        return [r for r in self.requests if r.route == route]

    def channel_webhooks(self, channel_id: str) -> list[Webhook]:
        return [w for w in self.webhooks.values() if w.channel_id == channel_id]

    # -- users acting in Discord -----------------------------------------------------------------

    def post_silently(
        self,
        channel_id: str,
        user_id: str,
        content: str,
        *,
        reply_to: str | None = None,
        attachments: Sequence[dict[str, Any]] = (),
        stickers: Sequence[dict[str, Any]] = (),
        at: float | None = None,
    ) -> dict[str, Any]:
        """A user's message stored in the channel's history without any dispatch (posted while
        nobody was connected). `at`: its time (epoch seconds), which its id encodes; ids only
        increase, so a time before the last id made gives the next id instead. `stickers`:
        sticker items (`id`, `name`, `format_type`), the message's `sticker_items`."""
        channel = self.channels[channel_id]
        message = self._new_message(
            channel,
            self.users[user_id],
            content,
            reply_to=reply_to,
            attachments=[self._attachment(spec) for spec in attachments],
            message_id=self.snowflake(at),
        )
        if stickers:  # Discord sends `sticker_items` only when there are some
            message["sticker_items"] = [dict(sticker) for sticker in stickers]
        channel.messages[message["id"]] = message
        return message

    async def user_sends(
        self,
        channel_id: str,
        user_id: str,
        content: str,
        *,
        reply_to: str | None = None,
        attachments: Sequence[dict[str, Any]] = (),
        stickers: Sequence[dict[str, Any]] = (),
        mentions: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """A user posts: stored, then MESSAGE_CREATE to the sessions that see the channel.
        `mentions`: user ids; by default the `<@id>` in `content`."""
        message = self.post_silently(
            channel_id,
            user_id,
            content,
            reply_to=reply_to,
            attachments=attachments,
            stickers=stickers,
        )
        if mentions is not None:
            message["mentions"] = [self.users[u] for u in mentions if u in self.users]
        await self.dispatch_message("MESSAGE_CREATE", message)
        return message

    async def user_edits(self, channel_id: str, message_id: str, content: str) -> dict[str, Any]:
        message = self.channels[channel_id].messages[message_id]
        self._set_content(self.channels[channel_id], message, content)
        message["edited_timestamp"] = _iso(time.time())
        await self.dispatch_message("MESSAGE_UPDATE", message)
        return message

    async def user_deletes(self, channel_id: str, message_id: str) -> None:
        channel = self.channels[channel_id]
        del channel.messages[message_id]
        await self.dispatch_event(
            "MESSAGE_DELETE",
            {"id": message_id, "channel_id": channel_id, "guild_id": channel.guild_id},
            channel,
        )

    async def user_bulk_deletes(self, channel_id: str, ids: Sequence[str]) -> None:
        channel = self.channels[channel_id]
        for message_id in ids:
            channel.messages.pop(message_id, None)
        await self.dispatch_event(
            "MESSAGE_DELETE_BULK",
            {"ids": list(ids), "channel_id": channel_id, "guild_id": channel.guild_id},
            channel,
        )

    # -- messages ------------------------------------------------------------------------------

    def _mentions(self, content: str) -> list[dict[str, Any]]:
        ids = dict.fromkeys(re.findall(r"<@!?(\d+)>", content))
        known = {bot.user_id: bot.user() for bot in self.bots.values()}
        return [self.users.get(i) or known[i] for i in ids if i in self.users or i in known]

    def _set_content(self, channel: Channel, message: dict[str, Any], content: str) -> None:
        message["content"] = content
        message["mentions"] = self._mentions(content)
        message["mention_roles"] = re.findall(r"<@&(\d+)>", content)

    def _new_message(
        self,
        channel: Channel,
        author: dict[str, Any],
        content: str,
        *,
        reply_to: str | None = None,
        attachments: list[dict[str, Any]] | None = None,
        message_id: str | None = None,
        allow_everyone: bool = True,
    ) -> dict[str, Any]:
        message_id = message_id or self.snowflake()
        message: dict[str, Any] = {
            "id": message_id,
            "type": DEFAULT,
            "channel_id": channel.id,
            "author": author,
            "content": "",
            "timestamp": _iso(_snowflake_time(message_id)),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": allow_everyone and ("@everyone" in content or "@here" in content),
            "mentions": [],
            "mention_roles": [],
            "attachments": attachments or [],
            "embeds": [],
            "pinned": False,
            "flags": 0,
            "components": [],
        }
        self._set_content(channel, message, content)
        if reply_to is not None:
            referenced = channel.messages[reply_to]
            message["type"] = REPLY
            message["message_reference"] = {
                "type": 0,
                "message_id": reply_to,
                "channel_id": channel.id,
                "guild_id": channel.guild_id,
            }
            message["referenced_message"] = dict(referenced)
        return message

    def _attachment(self, spec: dict[str, Any]) -> dict[str, Any]:
        attachment_id = spec.get("id") or self.snowflake()
        filename = spec.get("filename", "file.txt")
        url = f"https://cdn.discordapp.com/attachments/0/{attachment_id}/{filename}"
        return {
            "id": attachment_id,
            "filename": filename,
            "size": spec.get("size", 12),
            "url": spec.get("url", url),
            "proxy_url": spec.get(
                "proxy_url", url.replace("cdn.discordapp.com", "media.discordapp.net")
            ),
            "content_type": spec.get("content_type", "text/plain; charset=utf-8"),
        }

    # -- REST: plumbing ------------------------------------------------------------------------

    def app(self) -> Starlette:
        async def healthz(request: Request) -> Response:
            return PlainTextResponse("ok")

        return Starlette(
            routes=[
                Route("/healthz", healthz),
                Route(
                    API_PREFIX + "/{path:path}",
                    self._rest,
                    methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
                ),
                *self._gateway_routes(),
                *self.routes(),  # the OAuth2 side (its /healthz is the one above)
            ]
        )

    def _route_table(self) -> list[_Route]:
        table = [
            ("GET", "/users/@me", GET_CURRENT_USER, self._get_current_user, True),
            ("GET", "/users/{user_id}", GET_USER, self._get_user, True),
            ("GET", "/gateway/bot", GET_GATEWAY_BOT, self._get_gateway_bot, True),
            ("GET", "/oauth2/applications/@me", GET_APPLICATION, self._get_application, True),
            ("PATCH", "/applications/@me", EDIT_APPLICATION, self._edit_application, True),
            (
                "GET",
                "/applications/{application_id}/commands",
                GET_COMMANDS,
                self._get_commands,
                True,
            ),
            (
                "POST",
                "/applications/{application_id}/commands",
                CREATE_COMMAND,
                self._create_command,
                True,
            ),
            ("GET", "/channels/{channel_id}", GET_CHANNEL, self._get_channel, True),
            ("GET", "/guilds/{guild_id}", GET_GUILD, self._get_guild, True),
            ("GET", "/guilds/{guild_id}/roles", GET_GUILD_ROLES, self._get_roles, True),
            ("GET", "/guilds/{guild_id}/channels", GET_GUILD_CHANNELS, self._get_channels, True),
            (
                "GET",
                "/guilds/{guild_id}/members/{user_id}",
                GET_GUILD_MEMBER,
                self._get_member,
                True,
            ),
            (
                "GET",
                "/channels/{channel_id}/messages",
                GET_CHANNEL_MESSAGES,
                self._get_messages,
                True,
            ),
            (
                "GET",
                "/channels/{channel_id}/messages/{message_id}",
                GET_CHANNEL_MESSAGE,
                self._get_message,
                True,
            ),
            ("POST", "/channels/{channel_id}/messages", CREATE_MESSAGE, self._create_message, True),
            (
                "PATCH",
                "/channels/{channel_id}/messages/{message_id}",
                EDIT_MESSAGE,
                self._edit_message,
                True,
            ),
            (
                "DELETE",
                "/channels/{channel_id}/messages/{message_id}",
                DELETE_MESSAGE,
                self._delete_message,
                True,
            ),
            (
                "GET",
                "/channels/{channel_id}/webhooks",
                GET_CHANNEL_WEBHOOKS,
                self._get_webhooks,
                True,
            ),
            ("POST", "/channels/{channel_id}/webhooks", CREATE_WEBHOOK, self._create_webhook, True),
            (
                "POST",
                "/webhooks/{webhook_id}/{webhook_token}",
                EXECUTE_WEBHOOK,
                self._execute_webhook,
                False,
            ),
            (
                "GET",
                "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
                GET_WEBHOOK_MESSAGE,
                self._get_webhook_message,
                False,
            ),
            (
                "PATCH",
                "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
                EDIT_ORIGINAL_RESPONSE,
                self._edit_original_response,
                False,
            ),
            (
                "PATCH",
                "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
                EDIT_WEBHOOK_MESSAGE,
                self._edit_webhook_message,
                False,
            ),
            (
                "DELETE",
                "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
                DELETE_WEBHOOK_MESSAGE,
                self._delete_webhook_message,
                False,
            ),
        ]
        return [_Route(*row) for row in table]

    def _match(self, method: str, path: str) -> tuple[_Route, dict[str, str]]:
        path_matched = False
        for route in self._routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            path_matched = True
            if route.method == method:
                return route, found.groupdict()
        if path_matched:
            raise DiscordError(405, 0, "405: Method Not Allowed")
        raise DiscordError(404, 0, "404: Not Found")

    async def _rest(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        raw = await request.body()
        body: Any = None
        invalid_json = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                invalid_json = True
        record = DiscordRequest(
            request.method,
            path,
            "",
            dict(request.query_params),
            body,
            {k.lower(): v for k, v in request.headers.items()},
        )
        self.requests.append(record)
        response = await self._answer(request, path, body, invalid_json, record)
        record.status = response.status_code
        return response

    async def _answer(
        self,
        request: Request,
        path: str,
        body: Any,
        invalid_json: bool,
        record: DiscordRequest,
    ) -> Response:
        try:
            route, params = self._match(request.method, path)
        except DiscordError as error:
            return error.response()
        record.route = route.name
        bot = self._authenticate(request)
        if bot is None and route.name == GET_CURRENT_USER and self.bearer(request):
            return JSONResponse(self.oauth_user)  # an OAuth2 access token's user (identify)
        if route.auth and bot is None:
            return DiscordError(401, 0, "401: Unauthorized").response()
        major = _major(route.template, params)
        scripted = self._take_scripted(route.name, major)
        if scripted is not None:
            return self._scripted_answer(scripted, route, major)
        bucket = self._bucket(route.name, major)
        if bucket is not None and bucket.remaining <= 0:
            self.rate_limited += 1
            retry_after = max(bucket.reset_at - time.time(), 0.001)
            limited = JSONResponse(
                {
                    "message": "You are being rate limited.",
                    "retry_after": round(retry_after, 3),
                    "global": False,
                },
                429,
                headers={"Retry-After": str(math.ceil(retry_after)), "X-RateLimit-Scope": "user"},
            )
            self._limit_headers(limited, route.name, bucket)
            return limited
        if bucket is not None:
            bucket.remaining -= 1
        call = _Call(request, route.name, params, dict(request.query_params), body, bot)
        try:
            if invalid_json:
                raise DiscordError(400, 50109, "The request body contains invalid JSON.")
            for name, value in params.items():
                if name.endswith("_id") and not value.isdigit():
                    raise form_error(
                        name, "NUMBER_TYPE_COERCE", f'Value "{value}" is not snowflake.'
                    )
            response = await route.handler(call)
        except DiscordError as error:
            response = error.response()
        if bucket is not None:
            self._limit_headers(response, route.name, bucket)
        if call.after:
            if self.echo_before_answer:
                for step in call.after:
                    await step()
            else:
                steps = list(call.after)

                async def run() -> None:
                    for step in steps:
                        await step()

                response.background = BackgroundTask(run)
        return response

    def _authenticate(self, request: Request) -> Bot | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bot":
            return None
        return self.bots.get(token)

    def _take_scripted(self, route: str, major: str) -> _Scripted | None:
        for item in self._scripted:
            if item.times <= 0:
                continue
            if item.route is not None and item.route != route:
                continue
            if item.major is not None and item.major != major:
                continue
            item.times -= 1
            return item
        return None

    def _scripted_answer(self, item: _Scripted, route: _Route, major: str) -> Response:
        if item.status != 429:
            if item.status == 502:
                return PlainTextResponse(
                    "<html><head><title>502 Bad Gateway</title></head></html>",
                    502,
                    media_type="text/html",
                )
            phrase = HTTPStatus(item.status).phrase
            return JSONResponse({"message": f"{item.status}: {phrase}", "code": 0}, item.status)
        self.rate_limited += 1
        body = {
            "message": "You are being rate limited.",
            "retry_after": item.retry_after,
            "global": item.is_global,
        }
        headers = {"Retry-After": str(math.ceil(item.retry_after))}
        if item.is_global:
            headers.update({"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"})
            return JSONResponse(body, 429, headers=headers)
        headers["X-RateLimit-Scope"] = "user"
        response = JSONResponse(body, 429, headers=headers)
        bucket = self._bucket(route.name, major)
        if bucket is not None:
            bucket.remaining = 0
            bucket.reset_at = max(bucket.reset_at, time.time() + item.retry_after)
            self._limit_headers(response, route.name, bucket)
        return response

    def _bucket(self, route: str, major: str) -> _Bucket | None:
        limit, per = self._limits.get(
            (route, major), self._limits.get((route, None), DEFAULT_LIMIT)
        )
        key = (route, major)
        now = time.time()
        bucket = self._buckets.get(key)
        if bucket is None or now >= bucket.reset_at:
            bucket = _Bucket(limit, per, limit, now + per)
            self._buckets[key] = bucket
        return bucket

    @staticmethod
    def _limit_headers(response: Response, route: str, bucket: _Bucket) -> None:
        reset_after = max(bucket.reset_at - time.time(), 0.0)
        response.headers["X-RateLimit-Limit"] = str(bucket.limit)
        response.headers["X-RateLimit-Remaining"] = str(max(bucket.remaining, 0))
        response.headers["X-RateLimit-Reset"] = f"{bucket.reset_at:.3f}"
        response.headers["X-RateLimit-Reset-After"] = f"{reset_after:.3f}"
        # Opaque, per route and not per major parameter, as Discord's.
        response.headers["X-RateLimit-Bucket"] = hashlib.md5(route.encode()).hexdigest()  # noqa: S324

    # -- REST: permissions and lookups -----------------------------------------------------------

    def _channel(self, call: _Call, *, need: int = 0) -> Channel:
        """The channel of the path, as the calling bot may see it."""
        assert call.bot is not None
        channel = self.channels.get(call.params["channel_id"])
        if channel is None:
            raise unknown("Channel", 10003)
        guild = self.guilds.get(channel.guild_id)
        if guild is None or not guild.has(call.bot) or not channel.permissions & VIEW_CHANNEL:
            raise _refuse(MISSING_ACCESS)
        if need and channel.permissions & need != need:
            raise _refuse(MISSING_PERMISSIONS)
        return channel

    def _guild(self, call: _Call) -> Guild:
        assert call.bot is not None
        guild = self.guilds.get(call.params["guild_id"])
        if guild is None:
            raise unknown("Guild", 10004)
        if not guild.has(call.bot):
            raise _refuse(MISSING_ACCESS)
        return guild

    def _channel_body(self, channel: Channel) -> dict[str, Any]:
        guild = self.guilds.get(channel.guild_id)
        overwrites = [
            {"id": bot.user_id, "type": 1, "allow": str(channel.permissions), "deny": "0"}
            for bot in self.bots.values()
            if guild is not None and guild.has(bot)
        ]
        last = max(channel.messages, key=int, default=None)
        return {
            "id": channel.id,
            "type": 0,
            "guild_id": channel.guild_id,
            "name": channel.name,
            "position": 0,
            "permission_overwrites": overwrites,
            "parent_id": None,
            "nsfw": False,
            "topic": None,
            "last_message_id": last,
            "rate_limit_per_user": 0,
            "flags": 0,
        }

    def _roles(self, guild: Guild) -> list[dict[str, Any]]:
        return [
            {
                "id": guild.id,
                "name": "@everyone",
                "color": 0,
                "hoist": False,
                "icon": None,
                "unicode_emoji": None,
                "position": 0,
                "permissions": "0",
                "managed": False,
                "mentionable": False,
                "flags": 0,
            }
        ]

    def _member(self, user: dict[str, Any]) -> dict[str, Any]:
        return {
            "user": user,
            "nick": None,
            "avatar": None,
            "roles": [],
            "joined_at": "2024-01-01T00:00:00.000000+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
        }

    # -- REST: handlers ------------------------------------------------------------------------

    async def _get_user(self, call: _Call) -> Response:
        user_id = call.params["user_id"]
        bot = next((b for b in self.bots.values() if b.user_id == user_id), None)
        if bot is not None:
            return JSONResponse(bot.user())
        if user_id not in self.users:
            raise unknown("User", 10013)
        return JSONResponse(self.users[user_id])

    async def _get_current_user(self, call: _Call) -> Response:
        assert call.bot is not None
        return JSONResponse(
            {
                **call.bot.user(),
                "flags": 0,
                "mfa_enabled": False,
                "verified": True,
                "locale": "en-US",
            }
        )

    async def _get_gateway_bot(self, call: _Call) -> Response:
        self.gateway_bot_calls += 1
        return JSONResponse(
            {
                "url": _websocket_base(call.request) + "/gateway",
                "shards": 1,
                "session_start_limit": {
                    "total": self.session_start_total,
                    "remaining": self.session_start_remaining,
                    "reset_after": 14_400_000,
                    "max_concurrency": 1,
                },
            }
        )

    async def _get_application(self, call: _Call) -> Response:
        assert call.bot is not None
        bot = call.bot
        return JSONResponse(
            {
                "id": bot.application_id,
                "name": bot.username,
                "icon": None,
                "description": "",
                "bot_public": False,
                "bot_require_code_grant": False,
                "bot": bot.user(),
                "flags": GATEWAY_MESSAGE_CONTENT if bot.message_content_intent else 0,
                "verify_key": bot.public_key,
                "interactions_endpoint_url": bot.interactions_endpoint_url,
            }
        )

    async def _edit_application(self, call: _Call) -> Response:
        """Edit Current Application: only `interactions_endpoint_url` is kept. Discord saves
        a URL only once it answered a signed PING with a PONG and refused a forged one."""
        assert call.bot is not None
        bot = call.bot
        body = call.json_object()
        if "interactions_endpoint_url" in body:
            url = body["interactions_endpoint_url"]
            if url:
                if not isinstance(url, str) or not url.startswith(("https://", "http://")):
                    raise form_error(
                        "interactions_endpoint_url",
                        "URL_TYPE_INVALID_URL",
                        "Not a well formed URL.",
                    )
                await self._check_endpoint(bot, url)
            bot.interactions_endpoint_url = url or None
        return await self._get_application(call)

    def _own_application(self, call: _Call) -> Bot:
        """The bot of the path's application: another application's is refused, as Discord
        refuses a bot another application's commands (50001 Missing Access)."""
        assert call.bot is not None
        if call.params["application_id"] != call.bot.application_id:
            raise DiscordError(403, 50001, "Missing Access")
        return call.bot

    async def _get_commands(self, call: _Call) -> Response:
        """Get Global Application Commands (docs.discord.com/developers/interactions/
        application-commands)."""
        return JSONResponse(list(self._own_application(call).commands.values()))

    async def _create_command(self, call: _Call) -> Response:
        """Create Global Application Command: one of the same name is overwritten (200),
        else made (201). A CHAT_INPUT command's name is 1-32 lower-case word characters and
        its description 1-100 characters."""
        bot = self._own_application(call)
        body = call.json_object()
        name, description = body.get("name"), body.get("description")
        if (
            not isinstance(name, str)
            or not re.fullmatch(r"[-_\w]{1,32}", name)
            or name != name.lower()
        ):
            raise form_error("name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
        if not isinstance(description, str) or not 1 <= len(description) <= 100:
            raise form_error(
                "description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
            )
        known = bot.commands.get(name)
        command = {
            "id": known["id"] if known else self.snowflake(),
            "application_id": bot.application_id,
            "version": self.snowflake(),
            "default_member_permissions": None,
            "type": 1,
            **body,
        }
        bot.commands[name] = command
        if known is None:
            bot.commands_created += 1
        return JSONResponse(command, status_code=200 if known else 201)

    async def _check_endpoint(self, bot: Bot, url: str) -> None:
        ping = {"id": self.snowflake(), "application_id": bot.application_id, "type": 1,
                "token": secrets.token_urlsafe(48), "version": 1}  # fmt: skip
        unverified = form_error(
            "interactions_endpoint_url",
            "APPLICATION_INTERACTIONS_ENDPOINT_URL_INVALID",
            "The specified interactions endpoint url could not be verified.",
        )
        try:
            status, answer = await self._send_interaction(bot, url, ping)
            forged_status, _ = await self._send_interaction(bot, url, ping, forged=True)
        except httpx.HTTPError:
            raise unverified from None
        if status != 200 or not isinstance(answer, dict) or answer.get("type") != 1:
            raise unverified
        if forged_status != 401:
            raise unverified

    async def _get_channel(self, call: _Call) -> Response:
        return JSONResponse(self._channel_body(self._channel(call)))

    async def _get_guild(self, call: _Call) -> Response:
        guild = self._guild(call)
        return JSONResponse(
            {
                "id": guild.id,
                "name": guild.name,
                "icon": None,
                "owner_id": guild.owner_id,
                "roles": self._roles(guild),
                "emojis": [],
                "features": [],
                "verification_level": 0,
                "premium_tier": 0,
            }
        )

    async def _get_channels(self, call: _Call) -> Response:
        """Every channel of the guild, whatever the bot may see in it (as Discord answers:
        the bot's permissions per channel are in the overwrites)."""
        guild = self._guild(call)
        return JSONResponse(
            [self._channel_body(c) for c in self.channels.values() if c.guild_id == guild.id]
        )

    async def _get_roles(self, call: _Call) -> Response:
        return JSONResponse(self._roles(self._guild(call)))

    async def _get_member(self, call: _Call) -> Response:
        guild = self._guild(call)
        user_id = call.params["user_id"]
        bot = next((b for b in self.bots.values() if b.user_id == user_id), None)
        if bot is not None and guild.has(bot):
            return JSONResponse(self._member(bot.user()))
        if user_id in self.users:
            return JSONResponse(self._member(self.users[user_id]))
        raise unknown("Member", 10007)

    async def _get_messages(self, call: _Call) -> Response:
        channel = self._channel(call)
        query = call.query
        try:
            limit = int(query.get("limit", "50"))
        except ValueError:
            raise form_error(
                "limit", "NUMBER_TYPE_COERCE", f'Value "{query["limit"]}" is not int.'
            ) from None
        if limit < 1 or limit > 100:
            code, bound = ("NUMBER_TYPE_MIN", "greater than or equal to 1")
            if limit > 100:
                code, bound = ("NUMBER_TYPE_MAX", "less than or equal to 100")
            raise form_error("limit", code, f"int value should be {bound}.")
        anchors = [k for k in ("around", "before", "after") if k in query]
        for name in anchors:
            if not query[name].isdigit():
                raise form_error(
                    name, "NUMBER_TYPE_COERCE", f'Value "{query[name]}" is not snowflake.'
                )
        if not channel.permissions & READ_MESSAGE_HISTORY:
            # Documented: without READ_MESSAGE_HISTORY no messages are returned.
            return JSONResponse([])
        ordered = sorted(channel.messages.values(), key=lambda m: int(m["id"]))
        # Only one anchor is honoured (the documented params are mutually exclusive); the
        # precedence is around, before, after.
        if "around" in query:
            pivot = int(query["around"])
            older = [m for m in ordered if int(m["id"]) < pivot]
            newer = [m for m in ordered if int(m["id"]) >= pivot]
            half = limit // 2
            chosen = older[max(len(older) - half, 0) :] + newer[: limit - min(half, len(older))]
        elif "before" in query:
            pivot = int(query["before"])
            chosen = [m for m in ordered if int(m["id"]) < pivot][-limit:]
        elif "after" in query:
            pivot = int(query["after"])
            chosen = [m for m in ordered if int(m["id"]) > pivot][:limit]
        else:
            chosen = ordered[-limit:]
        # Newest first, as Discord returns them whatever the anchor.
        return JSONResponse(list(reversed(chosen)))

    async def _get_message(self, call: _Call) -> Response:
        channel = self._channel(call, need=READ_MESSAGE_HISTORY)
        message = channel.messages.get(call.params["message_id"])
        if message is None:
            raise unknown("Message", 10008)
        return JSONResponse(message)

    @staticmethod
    def _content(body: dict[str, Any], *, required: bool) -> str | None:
        content = body.get("content")
        if content is None:
            if required and not body.get("embeds") and not body.get("attachments"):
                raise DiscordError(400, 50006, "Cannot send an empty message")
            return None
        if not isinstance(content, str):
            raise form_error("content", "BASE_TYPE_STRING", "Could not interpret input as string.")
        if len(content) > MAX_CONTENT:
            raise form_error(
                "content", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length."
            )
        if required and not content.strip() and not body.get("embeds"):
            raise DiscordError(400, 50006, "Cannot send an empty message")
        return content

    @staticmethod
    def _everyone_allowed(body: dict[str, Any]) -> bool:
        allowed = body.get("allowed_mentions")
        if allowed is None:
            return True
        if not isinstance(allowed, dict) or not isinstance(allowed.get("parse", []), list):
            raise form_error(
                "allowed_mentions", "MODEL_TYPE_CONVERT", "Expected an object/dictionary."
            )
        return "everyone" in allowed.get("parse", [])

    async def _create_message(self, call: _Call) -> Response:
        assert call.bot is not None
        channel = self._channel(call, need=SEND_MESSAGES)
        body = call.json_object()
        content = self._content(body, required=True) or ""
        everyone = self._everyone_allowed(body)
        reply_to: str | None = None
        reference = body.get("message_reference")
        if reference is not None:
            if not isinstance(reference, dict):
                raise form_error(
                    "message_reference", "MODEL_TYPE_CONVERT", "Expected an object/dictionary."
                )
            if not channel.permissions & READ_MESSAGE_HISTORY:
                # Replying needs READ_MESSAGE_HISTORY (Create Message, docs).
                raise _refuse(MISSING_PERMISSIONS)
            target = str(reference.get("message_id", ""))
            target_channel = str(reference.get("channel_id") or channel.id)
            if target_channel == channel.id and target in channel.messages:
                reply_to = target
            elif reference.get("fail_if_not_exists", True) is not False:
                raise form_error(
                    "message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"
                )
        message = self._new_message(
            channel, call.bot.user(), content, reply_to=reply_to, allow_everyone=everyone
        )
        channel.messages[message["id"]] = message
        call.after.append(lambda: self.dispatch_message("MESSAGE_CREATE", message))
        return JSONResponse(message)

    def _stored(self, channel: Channel, message_id: str) -> dict[str, Any]:
        message = channel.messages.get(message_id)
        if message is None:
            raise unknown("Message", 10008)
        return message

    async def _edit_message(self, call: _Call) -> Response:
        assert call.bot is not None
        channel = self._channel(call)
        message = self._stored(channel, call.params["message_id"])
        if message["author"]["id"] != call.bot.user_id:
            raise DiscordError(403, 50005, "Cannot edit a message authored by another user")
        body = call.json_object()
        content = self._content(body, required=False)
        if content is not None:
            self._set_content(channel, message, content)
        message["edited_timestamp"] = _iso(time.time())
        call.after.append(lambda: self.dispatch_message("MESSAGE_UPDATE", message))
        return JSONResponse(message)

    async def _delete_message(self, call: _Call) -> Response:
        assert call.bot is not None
        channel = self._channel(call)
        message = self._stored(channel, call.params["message_id"])
        if message["author"]["id"] != call.bot.user_id and not (
            channel.permissions & MANAGE_MESSAGES
        ):
            raise _refuse(MISSING_PERMISSIONS)
        del channel.messages[message["id"]]
        call.after.append(lambda: self._dispatch_delete(channel, message["id"]))
        return Response(status_code=204)

    async def _dispatch_delete(self, channel: Channel, message_id: str) -> None:
        await self.dispatch_event(
            "MESSAGE_DELETE",
            {"id": message_id, "channel_id": channel.id, "guild_id": channel.guild_id},
            channel,
        )

    async def _get_webhooks(self, call: _Call) -> Response:
        assert call.bot is not None
        channel = self._channel(call, need=MANAGE_WEBHOOKS)
        mine = call.bot.application_id
        return JSONResponse(
            [
                w.body(with_token=w.application_id is None or w.application_id == mine)
                for w in self.channel_webhooks(channel.id)
            ]
        )

    @staticmethod
    def _check_name(value: Any, field_name: str) -> str:
        if not isinstance(value, str):
            raise form_error(field_name, "BASE_TYPE_REQUIRED", "This field is required")
        if not 1 <= len(value) <= 80:
            raise form_error(
                field_name, "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 80 in length."
            )
        for word in ("clyde", "discord"):
            if word in value.lower():
                raise form_error(
                    field_name, "USERNAME_INVALID_CONTAINS", f'Username cannot contain "{word}"'
                )
        return value

    async def _create_webhook(self, call: _Call) -> Response:
        assert call.bot is not None
        channel = self._channel(call, need=MANAGE_WEBHOOKS)
        name = self._check_name(call.json_object().get("name"), "name")
        if len(self.channel_webhooks(channel.id)) >= MAX_WEBHOOKS_PER_CHANNEL:
            raise DiscordError(
                400, 30007, f"Maximum number of webhooks reached ({MAX_WEBHOOKS_PER_CHANNEL})"
            )
        webhook = Webhook(
            self.snowflake(),
            secrets.token_urlsafe(50),
            channel.id,
            channel.guild_id,
            name,
            call.bot.application_id,
            call.bot.user(),
        )
        self.webhooks[webhook.id] = webhook
        return JSONResponse(webhook.body(with_token=True))

    def _webhook(self, call: _Call) -> Webhook:
        webhook = self.webhooks.get(call.params["webhook_id"])
        if webhook is None:
            raise unknown("Webhook", 10015)
        if not secrets.compare_digest(webhook.token, call.params["webhook_token"]):
            raise DiscordError(401, 50027, "Invalid Webhook Token")
        return webhook

    async def _execute_webhook(self, call: _Call) -> Response:
        interaction = self.interactions.get(call.params["webhook_token"])
        if interaction is not None and interaction.application_id == call.params["webhook_id"]:
            return self._followup(call, interaction)
        webhook = self._webhook(call)
        wait_raw = call.query.get("wait", "false").lower()
        if wait_raw not in ("true", "false", "1", "0"):
            raise form_error("wait", "BOOLEAN_TYPE_CONVERT", "Must be either true or false.")
        body = call.json_object()
        content = self._content(body, required=True) or ""
        username = body.get("username")
        if username is not None:
            username = self._check_name(username, "username")
        avatar_url = body.get("avatar_url")
        everyone = self._everyone_allowed(body)
        channel = self.channels[webhook.channel_id]
        author: dict[str, Any] = {
            "id": webhook.id,
            "username": username or webhook.name,
            "avatar": _avatar_hash(avatar_url) if avatar_url else None,
            "discriminator": "0000",
            "public_flags": 0,
            "flags": 0,
            "bot": True,
            "global_name": None,
        }
        # A webhook cannot reply: Discord ignores a `message_reference` here.
        message = self._new_message(channel, author, content, allow_everyone=everyone)
        message["components"] = self._components(call, body, webhook)
        message["webhook_id"] = webhook.id
        if webhook.application_id is not None:
            message["application_id"] = webhook.application_id
        channel.messages[message["id"]] = message
        call.after.append(lambda: self.dispatch_message("MESSAGE_CREATE", message))
        if wait_raw in ("true", "1"):
            return JSONResponse(message)
        return Response(status_code=204)

    def _followup(self, call: _Call, interaction: SentInteraction) -> Response:
        """Create Followup Message (docs.discord.com/developers/interactions/
        receiving-and-responding#create-followup-message): "Functions the same as Execute
        Webhook, but `wait` is always true"; the interaction's token is good for 15
        minutes (401 Invalid Webhook Token after). `flags` 64 (EPHEMERAL): the user alone
        sees it, so it is kept in `followups`, not among the channel's messages."""
        if time.monotonic() > interaction.expires_at:
            raise DiscordError(401, 50027, "Invalid Webhook Token")
        body = call.json_object()
        content = self._content(body, required=True) or ""
        flags = body.get("flags") or 0
        if not isinstance(flags, int):
            raise form_error("flags", "NUMBER_TYPE_COERCE", "Value is not int.")
        channel = self.channels[interaction.channel_id]
        bot = next(b for b in self.bots.values() if b.application_id == interaction.application_id)
        message = self._new_message(channel, bot.user(), content, allow_everyone=False)
        message["flags"] = flags
        message["webhook_id"] = interaction.application_id
        message["application_id"] = interaction.application_id
        self.followups.append(
            {**message, "user_id": interaction.user_id, "ephemeral": bool(flags & EPHEMERAL)}
        )
        if not flags & EPHEMERAL:
            channel.messages[message["id"]] = message
            call.after.append(lambda: self.dispatch_message("MESSAGE_CREATE", message))
        return JSONResponse(message)

    @staticmethod
    def _components(call: _Call, body: dict[str, Any], webhook: Webhook) -> list[Any]:
        """A webhook message's legacy components: kept only `with_components=true`, and
        buttons with a `custom_id` only on an application's webhook; at most 5 action rows
        of at most 5 buttons, each label at most 80 characters, each custom_id 100
        (docs.discord.com/developers/components/reference)."""
        rows = body.get("components")
        if not rows or call.query.get("with_components", "false").lower() not in ("true", "1"):
            return []
        if not isinstance(rows, list) or len(rows) > 5:
            raise form_error("components", "BASE_TYPE_BAD_LENGTH", "Must be 5 or fewer in length.")
        for row in rows:
            buttons = row.get("components") if isinstance(row, dict) else None
            if row.get("type") != 1 or not isinstance(buttons, list) or not 1 <= len(buttons) <= 5:
                raise form_error("components", "COMPONENT_LAYOUT_WIDTH_EXCEEDED", "Bad row.")
            for button in buttons:
                custom_id = button.get("custom_id")
                if (
                    button.get("type") != 2
                    or not 1 <= len(str(button.get("label") or "")) <= 80
                    or not isinstance(custom_id, str)
                    or not 1 <= len(custom_id) <= 100
                ):
                    raise form_error("components", "BUTTON_COMPONENT_INVALID", "Bad button.")
                if webhook.application_id is None:
                    raise form_error(
                        "components", "INTERACTION_COMPONENTS_NOT_ALLOWED", "Not an app's."
                    )
        return rows

    def buttons(self, channel_id: str, message_id: str) -> list[dict[str, Any]]:
        """The buttons of a message's action rows."""
        message = self.channels[channel_id].messages[message_id]
        return [b for row in message.get("components") or [] for b in row["components"]]

    async def click(
        self,
        token: str,
        channel_id: str,
        message_id: str,
        custom_id: str,
        user_id: str,
        *,
        forged: bool = False,
        interaction_id: str | None = None,
    ) -> tuple[int, Any]:
        """A user clicks a button of a message: the MESSAGE_COMPONENT interaction (type 3)
        goes to the bot's application's Interactions Endpoint URL, signed (by another key
        when `forged`). The shape: docs.discord.com/developers/interactions/
        receiving-and-responding, "Interaction Object". The endpoint's status and answer."""
        bot = self.bots[token]
        if not bot.interactions_endpoint_url:
            raise DiscordError(400, 0, "the application has no Interactions Endpoint URL")
        channel = self.channels[channel_id]
        message = channel.messages[message_id]
        [button] = [b for b in self.buttons(channel_id, message_id) if b["custom_id"] == custom_id]
        interaction = {
            "id": interaction_id or self.snowflake(),
            "application_id": bot.application_id,
            "type": 3,  # MESSAGE_COMPONENT
            "data": {"custom_id": button["custom_id"], "component_type": 2},
            "guild_id": channel.guild_id,
            "channel_id": channel_id,
            "channel": {"id": channel_id, "type": 0, "name": channel.name},
            "member": {
                "user": self.users[user_id],
                "nick": None,
                "roles": [],
                "permissions": str(ALL),
            },
            "message": message,
            "token": secrets.token_urlsafe(48),
            "version": 1,
            "app_permissions": str(ALL),
            "locale": "en-US",
            "guild_locale": "en-US",
        }
        return await self._send_interaction(
            bot, bot.interactions_endpoint_url, interaction, forged=forged
        )

    async def _edit_original_response(self, call: _Call) -> Response:
        """Edit Original Interaction Response: the application's interaction, by its token
        (good for 15 minutes; an unknown one is Unknown Webhook)."""
        bot = next(
            (b for b in self.bots.values() if b.application_id == call.params["webhook_id"]),
            None,
        )
        sent = next(
            (
                i
                for i in (bot.interactions.values() if bot else ())
                if secrets.compare_digest(i.token, call.params["webhook_token"])
            ),
            None,
        )
        if sent is None:
            raise unknown("Webhook", 10015)
        body = call.json_object()
        sent.edits.append(body)
        message = {
            "id": self.snowflake(),
            "type": 20,  # CHAT_INPUT_COMMAND
            "content": body.get("content", ""),
            "flags": EPHEMERAL if sent.ephemeral else 0,
            "application_id": call.params["webhook_id"],
        }
        return JSONResponse(message)

    def _webhook_message(self, call: _Call) -> tuple[Webhook, Channel, dict[str, Any]]:
        webhook = self._webhook(call)
        channel = self.channels[webhook.channel_id]
        message = channel.messages.get(call.params["message_id"])
        if message is None or message.get("webhook_id") != webhook.id:
            raise unknown("Message", 10008)
        return webhook, channel, message

    async def _get_webhook_message(self, call: _Call) -> Response:
        _, _, message = self._webhook_message(call)
        return JSONResponse(message)

    async def _edit_webhook_message(self, call: _Call) -> Response:
        webhook, channel, message = self._webhook_message(call)
        body = call.json_object()
        content = self._content(body, required=False)
        if content is not None:
            self._set_content(channel, message, content)
        if "components" in body:
            message["components"] = self._components(call, body, webhook)
        message["edited_timestamp"] = _iso(time.time())
        call.after.append(lambda: self.dispatch_message("MESSAGE_UPDATE", message))
        return JSONResponse(message)

    async def _delete_webhook_message(self, call: _Call) -> Response:
        _, channel, message = self._webhook_message(call)
        del channel.messages[message["id"]]
        call.after.append(lambda: self._dispatch_delete(channel, message["id"]))
        return Response(status_code=204)

    # -- Gateway ---------------------------------------------------------------------------------

    def _gateway_init(self) -> None:
        self._sessions: dict[str, _Session] = {}
        self._connections: list[_Connection] = []
        self.acking = True
        self.identifies = 0
        self.resumes = 0
        self.gateway_bot_calls = 0
        self.connections_total = 0
        self.heartbeats = 0
        self.paths: list[str] = []  # the path each connection came to, in order
        # (token, close code or 9) of every Identify refused, in order.
        self.refused: list[tuple[str, int]] = []

    @property
    def connections(self) -> int:
        """Gateway connections open now."""
        return sum(1 for c in self._connections if not c.closed)

    def sessions(self) -> list[_Session]:
        return list(self._sessions.values())

    def refused_identifies(self, token: str) -> int:
        """How many Identifies with `token` were refused (4004, 4013, 4014, or op 9 past the
        session start limit)."""
        return sum(1 for refused_token, _ in self.refused if refused_token == token)

    def _gateway_routes(self) -> list[WebSocketRoute]:
        # `/gateway` is what GET /gateway/bot names; READY's resume_gateway_url names
        # `/resume-gateway`, so a test can tell a resume went where Discord said.
        return [
            WebSocketRoute(path, self._gateway)
            for path in ("/gateway", "/gateway/", "/resume-gateway", "/resume-gateway/")
        ]

    async def stop_acks(self) -> None:
        """Heartbeats are no longer acknowledged (a zombied connection, as the client sees it)."""
        self.acking = False

    async def resume_acks(self) -> None:
        self.acking = True

    async def drop(self) -> None:
        """Every connection cut without a close frame; the sessions stay resumable."""
        for connection in self._live():
            connection.closed = True
            self._detach(connection)
            transport = _transport(connection.websocket)
            if transport is not None:
                transport.abort()
            else:  # pragma: no cover - another server: the nearest thing, 1011 without reason
                with contextlib.suppress(Exception):
                    await connection.websocket.close(1011)

    async def request_reconnect(self) -> None:
        """Op 7 Reconnect to every connection; the client is expected to close and resume."""
        for connection in self._live():
            await self._send(connection, {"op": 7, "d": None, "s": None, "t": None})

    async def request_heartbeat(self) -> None:
        """Op 1 from the server: the client must heartbeat at once."""
        for connection in self._live():
            await self._send(connection, {"op": 1, "d": None, "s": None, "t": None})

    async def invalidate_sessions(self, resumable: bool) -> None:
        """Op 9 Invalid Session with `d` = `resumable` to every connection; not resumable:
        the sessions are gone (a later Resume also gets op 9 false)."""
        for connection in self._live():
            await self._send(connection, {"op": 9, "d": resumable, "s": None, "t": None})
        if not resumable:
            for session in self._sessions.values():
                session.valid = False
                session.events.clear()

    async def close_with(self, code: int, reason: str = "") -> None:
        """Close every connection with `code`; a code Discord documents as ending the session
        (4004, 4007, 4009-4014) ends it."""
        for connection in self._live():
            await self._close(connection, code, reason)

    def _live(self) -> list[_Connection]:
        return [c for c in self._connections if not c.closed]

    async def _send(self, connection: _Connection, payload: dict[str, Any]) -> None:
        if connection.closed:
            return
        try:
            async with connection.send_lock:
                await connection.websocket.send_text(json.dumps(payload))
        except Exception:  # the peer went away: it is no longer connected
            connection.closed = True
            self._detach(connection)

    async def _close(self, connection: _Connection, code: int, reason: str) -> None:
        if connection.closed:
            return
        connection.closed = True
        session = connection.session
        self._detach(connection)
        if session is not None and code in _SESSION_ENDING:
            session.valid = False
            session.events.clear()
        with contextlib.suppress(Exception):
            async with connection.send_lock:
                await connection.websocket.close(code, reason)

    def _detach(self, connection: _Connection) -> None:
        session = connection.session
        if session is not None and session.connection is connection:
            session.connection = None

    async def _gateway(self, websocket: WebSocket) -> None:
        await websocket.accept()
        connection = _Connection(websocket, websocket.url.path.rstrip("/"), time.monotonic())
        self._connections.append(connection)
        self.connections_total += 1
        self.paths.append(connection.path)
        watchdog = asyncio.create_task(self._watch(connection))
        try:
            hello = {"heartbeat_interval": self.heartbeat_interval_ms}
            await self._send(connection, {"op": 10, "d": hello, "s": None, "t": None})
            while not connection.closed:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None:
                    text = (message.get("bytes") or b"").decode(errors="replace")
                try:
                    payload = json.loads(text)
                    op = payload["op"]
                except (ValueError, KeyError, TypeError):
                    await self._close(connection, 4002, "Error while decoding payload.")
                    break
                await self._on_payload(connection, op, payload.get("d"))
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            watchdog.cancel()
            connection.closed = True
            self._detach(connection)
            if websocket.application_state == WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    await websocket.close(1000)

    async def _watch(self, connection: _Connection) -> None:
        """Close a connection that stops heartbeating: 4009 Session timed out."""
        limit = (self.heartbeat_interval_ms + self.heartbeat_grace_ms) / 1000
        while not connection.closed:
            await asyncio.sleep(min(limit / 10, 0.25))
            if time.monotonic() - connection.last_heartbeat > limit:
                await self._close(connection, 4009, "Session timed out.")
                return

    async def _on_payload(self, connection: _Connection, op: Any, data: Any) -> None:
        session = connection.session
        if session is not None and not session.valid:
            session = connection.session = None
        if op == 1:
            connection.last_heartbeat = time.monotonic()
            self.heartbeats += 1
            if self.acking:
                await self._send(connection, {"op": 11, "d": None, "s": None, "t": None})
        elif op == 2:
            if session is not None:
                await self._close(connection, 4005, "Already authenticated.")
            else:
                await self._identify(connection, data)
        elif op == 6:
            if session is not None:
                await self._close(connection, 4005, "Already authenticated.")
            else:
                await self._resume(connection, data)
        elif op in (3, 4, 8, 31):
            if session is None:
                await self._close(connection, 4003, "Not authenticated.")
        else:
            await self._close(connection, 4001, "Unknown opcode.")

    async def _identify(self, connection: _Connection, data: Any) -> None:
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("token"), str)
            or not isinstance(data.get("intents"), int)
            or not isinstance(data.get("properties"), dict)
        ):
            await self._close(connection, 4002, "Error while decoding payload.")
            return
        token: str = data["token"]
        bot = self.bots.get(token.removeprefix("Bot "))
        intents: int = data["intents"]
        privileged = GUILD_MEMBERS | GUILD_PRESENCES
        refusal: tuple[int, str] | None = None
        if bot is None:
            refusal = (4004, "Authentication failed.")
        elif intents < 0 or intents & ~VALID_INTENTS:
            refusal = (4013, "Invalid intent(s).")
        elif intents & privileged or (intents & MESSAGE_CONTENT and not bot.message_content_intent):
            refusal = (4014, "Disallowed intent(s).")
        if refusal is not None:
            self.refused.append((token, refusal[0]))
            await self._close(connection, *refusal)
            return
        assert bot is not None
        if self.session_start_remaining <= 0:
            # Past the session start limit every Identify is an invalid session.
            self.refused.append((token, 9))
            await self._send(connection, {"op": 9, "d": False, "s": None, "t": None})
            return
        self.session_start_remaining -= 1
        self.identifies += 1
        session = _Session(secrets.token_hex(16), bot, intents)
        self._sessions[session.id] = session
        session.connection = connection
        connection.session = session
        guilds = [g for g in self.guilds.values() if g.has(bot)]
        base = _websocket_base(connection.websocket)
        await self._emit(
            session,
            "READY",
            {
                "v": 10,
                "user": bot.user(),
                "guilds": [{"id": g.id, "unavailable": True} for g in guilds],
                "session_id": session.id,
                "resume_gateway_url": base + "/resume-gateway",
                "session_type": "normal",
                "private_channels": [],
                "application": {
                    "id": bot.application_id,
                    "flags": GATEWAY_MESSAGE_CONTENT if bot.message_content_intent else 0,
                },
            },
        )
        if intents & GUILDS:
            for guild in guilds:
                await self._emit(session, "GUILD_CREATE", self._guild_create(guild, bot))

    def _guild_create(self, guild: Guild, bot: Bot) -> dict[str, Any]:
        channels = []
        for channel in self.channels.values():
            if channel.guild_id == guild.id:
                body = self._channel_body(channel)
                body.pop("guild_id")
                channels.append(body)
        return {
            "id": guild.id,
            "name": guild.name,
            "icon": None,
            "owner_id": guild.owner_id,
            "unavailable": False,
            "joined_at": "2024-01-01T00:00:00.000000+00:00",
            "large": False,
            "member_count": len(self.users) + 1,
            "roles": self._roles(guild),
            "members": [self._member(bot.user())],
            "channels": channels,
            "threads": [],
            "features": [],
        }

    async def _resume(self, connection: _Connection, data: Any) -> None:
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("token"), str)
            or not isinstance(data.get("session_id"), str)
            or not isinstance(data.get("seq"), int | None)
        ):
            await self._close(connection, 4002, "Error while decoding payload.")
            return
        bot = self.bots.get(data["token"].removeprefix("Bot "))
        if bot is None:
            await self._close(connection, 4004, "Authentication failed.")
            return
        session = self._sessions.get(data["session_id"])
        if session is None or not session.valid or session.bot is not bot:
            await self._send(connection, {"op": 9, "d": False, "s": None, "t": None})
            return
        seq = data["seq"] or 0
        if seq > session.seq:
            await self._close(connection, 4007, "Invalid seq.")
            return
        previous = session.connection
        if previous is not None and previous is not connection:
            # The same session on a new connection: the old one is done.
            previous.session = None
            await self._close(previous, 4000, "Session resumed elsewhere.")
        self.resumes += 1
        async with session.lock:
            session.connection = connection
            connection.session = session
            for payload in session.events:
                if payload["s"] > seq:
                    await self._send(connection, payload)
            session.seq += 1
            resumed = {"op": 0, "t": "RESUMED", "s": session.seq, "d": {}}
            session.events.append(resumed)
            await self._send(connection, resumed)

    async def _emit(self, session: _Session, event: str, data: dict[str, Any]) -> None:
        async with session.lock:
            session.seq += 1
            payload = {"op": 0, "t": event, "s": session.seq, "d": data}
            session.events.append(payload)
            connection = session.connection
            if connection is not None:
                await self._send(connection, payload)

    async def dispatch_message(self, event: str, message: dict[str, Any]) -> None:
        """MESSAGE_CREATE / MESSAGE_UPDATE of `message` (a stored message) as the Gateway sends
        it: with `guild_id`, and `member` for a user's (not a webhook's) message."""
        channel = self.channels[message["channel_id"]]
        data: dict[str, Any] = {**message, "guild_id": channel.guild_id}
        if "webhook_id" not in message:
            member = self._member(message["author"])
            member.pop("user")
            data["member"] = member
        await self.dispatch_event(event, data, channel)

    async def dispatch_event(self, event: str, data: dict[str, Any], channel: Channel) -> None:
        """`event` to every valid session that may see `channel`, connected or not (a session
        without a connection keeps it for its Resume)."""
        snapshot: dict[str, Any] = json.loads(json.dumps(data))
        guild = self.guilds.get(channel.guild_id)
        for session in list(self._sessions.values()):
            if not session.valid or guild is None or not guild.has(session.bot):
                continue
            if not channel.permissions & VIEW_CHANNEL:
                continue
            if event.startswith("MESSAGE_") and not session.intents & GUILD_MESSAGES:
                continue
            await self._emit(session, event, self._as_seen(session, event, snapshot))

    @staticmethod
    def _as_seen(session: _Session, event: str, data: dict[str, Any]) -> dict[str, Any]:
        """Without the MESSAGE_CONTENT intent a message's content, embeds, attachments and
        components arrive empty, unless the bot wrote it or is mentioned in it."""
        if event not in ("MESSAGE_CREATE", "MESSAGE_UPDATE") or session.intents & MESSAGE_CONTENT:
            return data
        bot_id = session.bot.user_id
        if data.get("author", {}).get("id") == bot_id:
            return data
        if any(m.get("id") == bot_id for m in data.get("mentions", [])):
            return data
        return {**data, "content": "", "embeds": [], "attachments": [], "components": []}

    # -- OAuth2 ----------------------------------------------------------------------------------

    def callback_extras(self) -> dict[str, str]:
        return {"guild_id": self.oauth_guild["id"], "permissions": "0"}

    def token_answer(
        self, grant_type: str, status: int, body: dict[str, Any], headers: Any
    ) -> Response:
        if status == 200 and grant_type == "authorization_code" and "bot" in body.get("scope", ""):
            body = {**body, "guild": {**self.oauth_guild, "owner_id": "U0OWNER", "features": []}}
        return answer(status, body, headers)

    async def _oauth_revoke(self, request: Request) -> Response:
        if not self.client_authenticated(request):
            return JSONResponse({"error": "invalid_client"}, 401)
        self.revoke(str((await request.form()).get("token") or ""))
        return JSONResponse({})

    def routes(self) -> list[Route]:
        return [
            *super().routes(),
            Route("/api/oauth2/token/revoke", self._oauth_revoke, methods=["POST"]),
        ]


# Close codes after which the session cannot be resumed (Gateway close event codes).
_SESSION_ENDING = frozenset({4004, 4007, 4009, 4010, 4011, 4012, 4013, 4014})


@dataclass
class _Connection:
    websocket: WebSocket
    path: str
    last_heartbeat: float
    session: _Session | None = None
    closed: bool = False
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class _Session:
    id: str
    bot: Bot
    intents: int
    seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    connection: _Connection | None = None
    valid: bool = True
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _transport(websocket: WebSocket) -> Any:
    """The TCP transport under a Starlette WebSocket served by uvicorn, to cut the connection
    without a close frame: uvicorn's `send` is its protocol's bound method, which Starlette's
    middleware wraps in closures."""
    pending: list[Any] = [getattr(websocket, "_send", None)]
    for _ in range(20):
        if not pending:
            break
        send = pending.pop()
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        if callable(getattr(transport, "abort", None)):  # asyncio's or uvloop's
            return transport
        for cell in getattr(send, "__closure__", None) or ():
            with contextlib.suppress(ValueError):
                if callable(cell.cell_contents):
                    pending.append(cell.cell_contents)
    return None


def _websocket_base(connection: HTTPConnection) -> str:
    """`ws://host:port` and the path this app is mounted at (the sandbox serves it below
    `/sandbox/discord`: the scope's `root_path`), without a trailing slash."""
    secure = connection.url.scheme in ("https", "wss")
    mounted = str(connection.scope.get("root_path", "")).rstrip("/")
    return f"{'wss' if secure else 'ws'}://{connection.url.netloc}{mounted}"


def _major(template: str, params: dict[str, str]) -> str:
    """The top-level resource a route's limit is counted on (a webhook: its id)."""
    return params.get("webhook_id") or params.get("channel_id") or params.get("guild_id") or ""


def _snowflake_time(snowflake: str) -> float:
    return ((int(snowflake) >> 22) + DISCORD_EPOCH_MS) / 1000


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds")


def _avatar_hash(url: str) -> str:
    return hashlib.md5(url.encode()).hexdigest()  # noqa: S324
