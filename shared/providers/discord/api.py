"""The Discord REST calls hookhub makes, Discord's refusals sorted once into the chat
contract's errors, and its rate limits kept as Discord documents them (`Buckets`).

Bot calls carry `Authorization: Bot <token>`; a webhook's execute, edit and delete calls
carry the webhook's own token in the path and no header. Every failure answers
`{"code", "message", "errors"?}` (docs: topics/opcodes-and-status-codes, "JSON Error
Codes"); `code` decides, the HTTP status only where there is none.

Rate limits (docs: topics/rate-limits): nothing is hard-coded. Each answer's
`X-RateLimit-Bucket` says which bucket a route belongs to and `-Remaining`/`-Reset-After`
how much of it is left for the route's top-level resource (channel, guild or webhook id).
A request that would find its bucket empty is refused here, before it is sent, with
`RateLimited` for the time left: the caller (sync's lane for one channel) waits; nothing
sleeps in this client, so one channel's limit never delays another. A global 429 holds
every request of that bot until it ends. Limits are per bot (per token); the webhook
calls, which carry no token, share one unauthenticated set.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx
import orjson

from shared.kernel.settings import Settings
from shared.kernel.version import __version__
from shared.providers.chat import PermanentError, ProviderUnreachable, RateLimited, TokenRejected

DEFAULT_BASE_URL = "https://discord.com/api/v10"
# Discord asks every client to name itself so (docs: reference, "User Agent").
USER_AGENT = f"DiscordBot (https://github.com/hookhub/hookhub, {__version__})"
# When a 429 says nothing about how long to wait (no body field, no header): the only
# number this module makes up, and only for an answer that gives none.
DEFAULT_RETRY_AFTER = 1.0
# Longest `content` of a message (docs: resources/message, Create Message).
MAX_CONTENT = 2000
# Past this many bucket states, the ones whose window has ended are dropped.
_PRUNE_AT = 10_000

Scope = Literal["message", "channel", "integration"]

# JSON error codes → (our error, scope). Codes not here fall back on the HTTP status.
_CODES: dict[int, tuple[str, Scope]] = {
    10003: ("unknown_channel", "channel"),
    10004: ("unknown_guild", "channel"),
    10007: ("unknown_member", "channel"),
    10008: ("unknown_message", "message"),
    10013: ("unknown_user", "message"),
    30007: ("max_webhooks", "channel"),
    40005: ("request_too_large", "message"),
    50001: ("missing_access", "channel"),
    50005: ("not_author", "message"),
    50006: ("empty_message", "message"),
    50008: ("not_text_channel", "channel"),
    50013: ("missing_permissions", "channel"),
    50021: ("system_message", "message"),
    50035: ("invalid_form_body", "message"),
}
# Unknown Webhook, Invalid Webhook Token: the webhook was deleted or its token changed.
_WEBHOOK_GONE = frozenset({10015, 50027})
_MAJOR_PARAMETERS = ("channel_id", "guild_id", "webhook_id")


class WebhookGone(PermanentError):
    """The channel webhook hookhub posts through no longer exists (10015 Unknown Webhook)
    or no longer takes our token (50027): forget it, find or create it again, retry once.
    Discord asks not to use a webhook again after a 404 (topics/rate-limits)."""

    def __init__(self, message: str, error: str = "unknown_webhook") -> None:
        super().__init__(message, error, "channel")


class DiscordRateLimited(RateLimited):
    """`RateLimited` with what Discord said: `is_global` (the bot's global limit, every
    route held), `bucket` (the route's bucket, when known), `sent` (False when the request
    was refused here, before sending, because its bucket was known to be empty)."""

    def __init__(
        self,
        message: str,
        retry_after: float,
        *,
        is_global: bool = False,
        bucket: str | None = None,
        sent: bool = True,
    ) -> None:
        super().__init__(message, retry_after)
        self.is_global = is_global
        self.bucket = bucket
        self.sent = sent


def base_url(settings: Settings) -> str:
    """`HOOKHUB_DISCORD_API_BASE` (the full base, version included), else Discord's own."""
    return settings.discord_api_base or DEFAULT_BASE_URL


def refusal(what: str, status: int, body: Any) -> PermanentError:
    """The contract's error for a 4xx answer other than 429 (`what` names the call)."""
    data = body if isinstance(body, Mapping) else {}
    code = data.get("code")
    code = code if type(code) is int else None
    said = f"Discord refused {what}: {data.get('message') or f'HTTP {status}'}"
    if code is not None:
        said = f"{said} (code {code})"
    if code in _WEBHOOK_GONE:
        return WebhookGone(said, "unknown_webhook" if code == 10015 else "invalid_webhook_token")
    if status == 401:
        return TokenRejected(said, "unauthorized")
    if code is not None and code in _CODES:
        error, scope = _CODES[code]
        return PermanentError(said, error, scope)
    if not data:
        # Not Discord speaking (a wrong HOOKHUB_DISCORD_API_BASE, a proxy): no retry cures it.
        return PermanentError(said, f"http_{status}", "integration")
    if status == 403:
        return PermanentError(said, "forbidden", "channel")
    if status == 404:
        return PermanentError(said, "not_found", "message")
    return PermanentError(said, "bad_request" if status == 400 else f"http_{status}", "message")


# -- rate limits ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteKey:
    """Whose limit a request counts against: the bot (`who`, a digest of its token; "" for
    unauthenticated webhook calls), the route (method and path template) and the value of
    its top-level resource (`major`)."""

    who: str
    route: str
    major: str


@dataclass
class _Window:
    remaining: int
    reset_at: float  # on the Buckets' clock


class Buckets:
    """What Discord's answers said about its limits, per bot.

    `before` refuses a request whose bucket is empty until its reset (or while a global
    hold lasts), and otherwise takes one from what is left, so that concurrent requests do
    not overrun it; `after` learns from the answer's headers and turns a 429 into
    `DiscordRateLimited`. A route whose bucket no answer has named yet counts as a bucket
    of its own until one does. Counters (read by the metrics): `answered_429` (Discord
    answered 429), `global_429`, `held` (refused here without sending), `invalid` (401,
    403 and 429 answers, which Discord counts toward its 10,000-in-10-minutes ban)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._bucket_of: dict[tuple[str, str], str] = {}
        self._windows: dict[tuple[str, str, str], _Window] = {}
        self._global_until: dict[str, float] = {}
        self.answered_429 = 0
        self.global_429 = 0
        self.held = 0
        self.invalid = 0

    def bucket(self, key: RouteKey) -> str | None:
        """The bucket Discord named for this route, if it has."""
        return self._bucket_of.get((key.who, key.route))

    def _window_key(self, key: RouteKey) -> tuple[str, str, str]:
        return (key.who, self.bucket(key) or key.route, key.major)

    def before(self, key: RouteKey) -> None:
        now = self._clock()
        until = self._global_until.get(key.who)
        if until is not None:
            if until > now:
                self.held += 1
                raise DiscordRateLimited(
                    "Discord's global rate limit holds every request of this bot",
                    until - now,
                    is_global=True,
                    sent=False,
                )
            del self._global_until[key.who]
        window_key = self._window_key(key)
        window = self._windows.get(window_key)
        if window is None:
            return
        if window.reset_at <= now:
            del self._windows[window_key]
            return
        if window.remaining <= 0:
            self.held += 1
            raise DiscordRateLimited(
                f"Discord rate limit: {key.route} is used up for {key.major or 'this bot'}",
                window.reset_at - now,
                bucket=self.bucket(key),
                sent=False,
            )
        window.remaining -= 1

    def after(
        self, key: RouteKey, status: int, headers: httpx.Headers, body: Any
    ) -> DiscordRateLimited | None:
        """Learns from one answer; the error to raise when it is a 429."""
        now = self._clock()
        scope = headers.get("x-ratelimit-scope")
        # Discord's invalid requests; a 429 of a shared resource limit is not counted.
        if status in (401, 403) or (status == 429 and scope != "shared"):
            self.invalid += 1
        bucket = headers.get("x-ratelimit-bucket")
        if bucket:
            self._bucket_of[(key.who, key.route)] = bucket
        remaining = _number(headers.get("x-ratelimit-remaining"))
        reset_after = _number(headers.get("x-ratelimit-reset-after"))
        window_key = self._window_key(key)
        if remaining is not None and reset_after is not None:
            self._windows[window_key] = _Window(int(remaining), now + max(reset_after, 0.0))
            if len(self._windows) > _PRUNE_AT:
                self._prune(now)
        if status != 429:
            return None
        self.answered_429 += 1
        data = body if isinstance(body, Mapping) else {}
        retry_after = _number(data.get("retry_after"))
        if retry_after is None:
            retry_after = _number(headers.get("retry-after"))
        if retry_after is None:
            retry_after = reset_after if reset_after is not None else DEFAULT_RETRY_AFTER
        retry_after = max(retry_after, 0.0)
        # Not Discord's JSON: a Cloudflare-level refusal, which holds every request alike.
        is_global = (
            data.get("global") is True
            or headers.get("x-ratelimit-global", "").lower() == "true"
            or headers.get("x-ratelimit-scope") == "global"
            or not data
        )
        if is_global:
            self.global_429 += 1
            self._global_until[key.who] = max(
                self._global_until.get(key.who, 0.0), now + retry_after
            )
        else:
            window = self._windows.get(window_key)
            hold = now + retry_after
            if window is None or window.remaining > 0 or window.reset_at < hold:
                self._windows[window_key] = _Window(0, hold)
        return DiscordRateLimited(
            f"Discord rate limited {key.route}"
            + (" (global)" if is_global else "")
            + (f" (scope {scope})" if scope else ""),
            retry_after,
            is_global=is_global,
            bucket=bucket or self.bucket(key),
        )

    def _prune(self, now: float) -> None:
        for window_key in [k for k, w in self._windows.items() if w.reset_at <= now]:
            del self._windows[window_key]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # NaN is no number


def _who(token: str | None) -> str:
    # A digest, so that no token sits in a dict key that a debugger or a repr may show.
    return hashlib.sha256(token.encode()).hexdigest()[:16] if token else ""


# -- the client -------------------------------------------------------------------------------


class DiscordApi:
    """One Discord REST client, shared by sync, the importer and actions. Every bot call
    takes the bot token to use; the only state is what `buckets` learnt of the limits."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str = DEFAULT_BASE_URL,
        buckets: Buckets | None = None,
    ) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self.buckets = buckets or Buckets()

    async def request(
        self,
        method: str,
        route: str,
        token: str | None,
        *,
        json: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
        path: Mapping[str, str] | None = None,
    ) -> Any:
        """`route` is the path template (`/channels/{channel_id}/messages`), `path` its
        values. The answer's JSON (None for 204), or the contract's error."""
        path = path or {}
        major = next((path[name] for name in _MAJOR_PARAMETERS if name in path), "")
        key = RouteKey(_who(token), f"{method} {route}", major)
        self.buckets.before(key)
        headers = {"User-Agent": USER_AGENT}
        if token is not None:
            headers["Authorization"] = f"Bot {token}"
        content = None
        if json is not None:
            headers["Content-Type"] = "application/json"
            content = orjson.dumps(dict(json))
        params = {k: _query_value(v) for k, v in (query or {}).items() if v is not None}
        url = self._base + route.format(**{k: _segment(v) for k, v in path.items()})
        what = f"{method} {route}"
        try:
            answer = await self._client.request(
                method, url, content=content, headers=headers, params=params
            )
        except httpx.LocalProtocolError as exc:
            # The token is the one header that varies: one that cannot be sent never will be.
            raise TokenRejected(
                f"Discord {what}: the token cannot be sent", "unauthorized"
            ) from exc
        except httpx.HTTPError as exc:
            raise ProviderUnreachable(f"Discord {what}: no answer ({type(exc).__name__})") from exc
        body = _body(answer)
        limited = self.buckets.after(key, answer.status_code, answer.headers, body)
        if limited is not None:
            raise limited
        if answer.status_code >= 500:
            raise ProviderUnreachable(f"Discord {what} answered {answer.status_code}")
        if answer.status_code >= 400:
            raise refusal(what, answer.status_code, body)
        if answer.status_code == 204:
            return None
        if body is None:
            raise ProviderUnreachable(f"Discord {what} answered {answer.status_code} without JSON")
        return body

    async def _object(
        self, method: str, route: str, token: str | None, path: Mapping[str, str], **kw: Any
    ) -> dict[str, Any]:
        answer = await self.request(method, route, token, path=path, **kw)
        if not isinstance(answer, dict):
            raise ProviderUnreachable(f"Discord {method} {route} answered an unexpected shape")
        return answer

    async def _list(
        self, method: str, route: str, token: str | None, path: Mapping[str, str], **kw: Any
    ) -> list[dict[str, Any]]:
        answer = await self.request(method, route, token, path=path, **kw)
        if not isinstance(answer, list):
            raise ProviderUnreachable(f"Discord {method} {route} answered an unexpected shape")
        return [item for item in answer if isinstance(item, dict)]

    # -- the bot, its application, the gateway ----------------------------------------------

    async def me(self, token: str) -> dict[str, Any]:
        """The bot's user: `{id, username, global_name, avatar, bot: true, ...}`."""
        return await self._object("GET", "/users/@me", token, {})

    async def application(self, token: str) -> dict[str, Any]:
        """The bot's application (`{id, name, ...}`): its id is not the bot user's id in
        general (older applications share it, newer ones do not)."""
        return await self._object("GET", "/oauth2/applications/@me", token, {})

    async def gateway_bot(self, token: str) -> dict[str, Any]:
        """`{url, shards, session_start_limit: {total, remaining, reset_after,
        max_concurrency}}`."""
        return await self._object("GET", "/gateway/bot", token, {})

    async def application_commands(self, token: str, application_id: str) -> list[dict[str, Any]]:
        """The application's global commands ("Get Global Application Commands",
        docs.discord.com/developers/interactions/application-commands)."""
        return await self._list(
            "GET",
            "/applications/{application_id}/commands",
            token,
            {"application_id": application_id},
        )

    async def create_application_command(
        self, token: str, application_id: str, command: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A global command made, or the one of the same name overwritten ("Create Global
        Application Command": 201 or 200; at most 200 *new* commands a day)."""
        return await self._object(
            "POST",
            "/applications/{application_id}/commands",
            token,
            {"application_id": application_id},
            json=command,
        )

    # -- channels, guilds, users ------------------------------------------------------------

    async def channel(self, token: str, channel_id: str) -> dict[str, Any]:
        """`{id, type, guild_id?, name?, permission_overwrites?, ...}`."""
        return await self._object(
            "GET", "/channels/{channel_id}", token, {"channel_id": channel_id}
        )

    async def guild_channels(self, token: str, guild_id: str) -> list[dict[str, Any]]:
        """Every channel of the guild (categories and voice channels too: see `type`)."""
        return await self._list("GET", "/guilds/{guild_id}/channels", token, {"guild_id": guild_id})

    async def guild_roles(self, token: str, guild_id: str) -> list[dict[str, Any]]:
        """Every role of the guild, @everyone (whose id is the guild's) included."""
        return await self._list("GET", "/guilds/{guild_id}/roles", token, {"guild_id": guild_id})

    async def guild_member(self, token: str, guild_id: str, user_id: str) -> dict[str, Any]:
        """`{user, nick, roles: [role ids], ...}`; the roles do not include @everyone."""
        return await self._object(
            "GET",
            "/guilds/{guild_id}/members/{user_id}",
            token,
            {"guild_id": guild_id, "user_id": user_id},
        )

    async def user(self, token: str, user_id: str) -> dict[str, Any]:
        return await self._object("GET", "/users/{user_id}", token, {"user_id": user_id})

    # -- webhooks -----------------------------------------------------------------------------

    async def channel_webhooks(self, token: str, channel_id: str) -> list[dict[str, Any]]:
        """Needs MANAGE_WEBHOOKS. Each `{id, type, token?, application_id, channel_id, ...}`;
        `token` only on incoming webhooks (type 1)."""
        return await self._list(
            "GET", "/channels/{channel_id}/webhooks", token, {"channel_id": channel_id}
        )

    async def create_webhook(
        self, token: str, channel_id: str, name: str = "hookhub"
    ) -> dict[str, Any]:
        """Needs MANAGE_WEBHOOKS; the name may not contain "clyde" or "discord"."""
        return await self._object(
            "POST",
            "/channels/{channel_id}/webhooks",
            token,
            {"channel_id": channel_id},
            json={"name": name},
        )

    async def execute_webhook(
        self, webhook_id: str, webhook_token: str, body: Mapping[str, Any], wait: bool = True
    ) -> dict[str, Any] | None:
        """The message made (`wait=True`), else None (Discord answers 204 without saying
        whether it was saved). A body with `components` is sent `with_components=true`
        ("otherwise they'll be ignored", docs.discord.com/developers/components/
        using-message-components); an application-owned webhook's may be buttons."""
        answer = await self.request(
            "POST",
            "/webhooks/{webhook_id}/{webhook_token}",
            None,
            json=body,
            query={"wait": wait, **({"with_components": True} if "components" in body else {})},
            path={"webhook_id": webhook_id, "webhook_token": webhook_token},
        )
        return answer if isinstance(answer, dict) else None

    async def create_followup(
        self, application_id: str, interaction_token: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A follow-up message to an interaction: "Functions the same as Execute Webhook",
        the application's id and the interaction's token in the path, no bot token; with
        `flags` 64 (EPHEMERAL) "a message that only the user can see". The token is good
        for 15 minutes (https://discord.com/developers/docs/interactions/
        receiving-and-responding#create-followup-message)."""
        return await self._object(
            "POST",
            "/webhooks/{webhook_id}/{webhook_token}",
            None,
            {"webhook_id": application_id, "webhook_token": interaction_token},
            json=body,
        )

    async def edit_webhook_message(
        self, webhook_id: str, webhook_token: str, message_id: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Only a message this webhook made; another one is `unknown_message`. Its
        `components`, when the body has them, as `execute_webhook`'s."""
        return await self._object(
            "PATCH",
            "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
            None,
            {"webhook_id": webhook_id, "webhook_token": webhook_token, "message_id": message_id},
            json=body,
            query={"with_components": True} if "components" in body else None,
        )

    async def delete_webhook_message(
        self, webhook_id: str, webhook_token: str, message_id: str
    ) -> bool:
        """True when deleted, False when Discord knows no such message of this webhook
        (already gone, or not this webhook's)."""
        return await self._delete(
            "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
            None,
            {"webhook_id": webhook_id, "webhook_token": webhook_token, "message_id": message_id},
        )

    async def edit_interaction_response(
        self, application_id: str, interaction_token: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Edit Original Interaction Response (`PATCH /webhooks/{application.id}/
        {interaction.token}/messages/@original`, docs.discord.com/developers/interactions/
        receiving-and-responding, "Followup Messages"): the answer to a deferred
        interaction, within its token's 15 minutes; the token is its only credential."""
        return await self._object(
            "PATCH",
            "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
            None,
            {"webhook_id": application_id, "webhook_token": interaction_token},
            json=body,
        )

    # -- messages as the bot ------------------------------------------------------------------

    async def create_message(
        self, token: str, channel_id: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        return await self._object(
            "POST", "/channels/{channel_id}/messages", token, {"channel_id": channel_id}, json=body
        )

    async def edit_message(
        self, token: str, channel_id: str, message_id: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Only the bot's own message's content can be edited (`not_author` otherwise)."""
        return await self._object(
            "PATCH",
            "/channels/{channel_id}/messages/{message_id}",
            token,
            {"channel_id": channel_id, "message_id": message_id},
            json=body,
        )

    async def delete_message(self, token: str, channel_id: str, message_id: str) -> bool:
        """True when deleted, False when the message was already gone."""
        return await self._delete(
            "/channels/{channel_id}/messages/{message_id}",
            token,
            {"channel_id": channel_id, "message_id": message_id},
        )

    async def messages(
        self,
        token: str,
        channel_id: str,
        *,
        after: str | None = None,
        before: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """One page (the caller pages): up to `limit` (1 to 100) messages after or before a
        message id, newest first as Discord returns them (also with `after`)."""
        if after is not None and before is not None:
            raise ValueError("Discord takes one of after and before, not both")
        if not 1 <= limit <= 100:
            raise ValueError("Discord pages hold 1 to 100 messages")
        return await self._list(
            "GET",
            "/channels/{channel_id}/messages",
            token,
            {"channel_id": channel_id},
            query={"after": after, "before": before, "limit": limit},
        )

    async def _delete(self, route: str, token: str | None, path: Mapping[str, str]) -> bool:
        try:
            await self.request("DELETE", route, token, path=path)
        except PermanentError as exc:
            if exc.error == "unknown_message":
                return False
            raise
        return True


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _segment(value: Any) -> str:
    # Ids and webhook tokens are [0-9A-Za-z_-]; anything else must not change the path.
    return quote(str(value), safe="")


def _body(answer: httpx.Response) -> Any:
    if not answer.content:
        return None
    try:
        return orjson.loads(answer.content)
    except orjson.JSONDecodeError:
        return None
