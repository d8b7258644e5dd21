"""The Slack Web API calls hookhub makes, and Slack's errors sorted once into the chat contract's.

Slack answers almost every refusal with HTTP 200 and `{"ok": false, "error": "<code>"}`; a
rate limit is HTTP 429 with `Retry-After` (seconds). Write methods (`chat.*`) take JSON
bodies; read methods (`auth.test`, `conversations.*`, `users.info`, `bots.info`) read their
arguments only from the query string or a form body, so they are sent form-encoded. The
token always goes in the `Authorization: Bearer` header (required for JSON bodies).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import orjson

from shared.kernel.settings import Settings
from shared.providers import responses
from shared.providers.chat import PermanentError, ProviderUnreachable, RateLimited, TokenRejected

DEFAULT_BASE_URL = "https://slack.com/api"
# Where a slash command's `response_url` points ("https://hooks.slack.com/commands/…",
# docs.slack.dev/interactivity/implementing-slash-commands): an answer goes there, or to
# the origin of the API base (a stand-in), and nowhere else.
RESPONSE_ORIGIN = "https://hooks.slack.com"
# When a limit says nothing about how long to wait (`error: ratelimited` without a header).
DEFAULT_RETRY_AFTER = 1.0

_RATE_LIMITED = frozenset({"ratelimited", "rate_limited"})
_UNREACHABLE = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
_TOKEN = frozenset({"invalid_auth", "not_authed", "token_revoked", "token_expired"})
_SCOPES: dict[str, Literal["message", "channel", "integration"]] = {
    "account_inactive": "integration",
    "missing_scope": "integration",
    "team_access_not_granted": "integration",
    "channel_not_found": "channel",
    "not_in_channel": "channel",
    "is_archived": "channel",
    "restricted_action": "channel",
    "message_not_found": "message",
    "cant_update_message": "message",
    "cant_delete_message": "message",
    "msg_too_long": "message",
    "no_text": "message",
    "user_not_in_channel": "message",
}


def base_url(settings: Settings) -> str:
    """`HOOKHUB_SLACK_API_BASE`, else Slack's own."""
    return settings.slack_api_base or DEFAULT_BASE_URL


def refusal(method: str, error: str) -> PermanentError:
    """The contract's error for an `ok: false` answer that is neither a limit nor an outage."""
    message = f"Slack {method} refused: {error}"
    if error in _TOKEN:
        return TokenRejected(message, error)
    # An error code Slack adds later concerns this one call until we know better.
    return PermanentError(message, error, _SCOPES.get(error, "message"))


@dataclass(frozen=True)
class Page:
    """One page of a cursor-paginated list; `next_cursor` is None on the last page.
    `dropped` are the positions in the page's list of entries that were not objects (left
    out of `items`), for a caller that must say what it could not read."""

    items: list[dict[str, Any]]
    next_cursor: str | None
    has_more: bool = False
    dropped: tuple[int, ...] = ()


class SlackApi:
    """One Slack Web API client, shared by sync, the importer and actions. Stateless: every
    call takes the token to use."""

    def __init__(self, client: httpx.AsyncClient, base_url: str = DEFAULT_BASE_URL) -> None:
        self._client = client
        self._base = base_url.rstrip("/")

    async def call(
        self,
        method: str,
        token: str,
        *,
        json: Mapping[str, Any] | None = None,
        form: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """POST one method; the answer's body when `ok`, else the contract's error."""
        # No token, no header: Slack answers `not_authed` (an empty `Bearer ` is no header).
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = f"{self._base}/{method}"
        try:
            if json is not None:
                # Without the charset Slack answers with a `missing_charset` warning.
                headers["Content-Type"] = "application/json; charset=utf-8"
                body = orjson.dumps(dict(json))
                answer = await self._client.post(url, content=body, headers=headers)
            else:
                data = {k: _form_value(v) for k, v in (form or {}).items() if v is not None}
                answer = await self._client.post(url, data=data, headers=headers)
        except httpx.LocalProtocolError as exc:
            # The token is the one header that varies: one that cannot be sent never will be.
            raise TokenRejected(
                f"Slack {method}: the token cannot be sent", "invalid_auth"
            ) from exc
        except httpx.HTTPError as exc:
            raise ProviderUnreachable(f"Slack {method}: no answer ({type(exc).__name__})") from exc
        return _result(method, answer)

    async def respond(self, response_url: str, body: Mapping[str, Any]) -> None:
        """POST an answer to a slash command's `response_url` (JSON; up to five times within
        30 minutes of the command: docs.slack.dev/interactivity/implementing-slash-commands,
        "Sending delayed responses"). A URL of another origin is refused unsent; an expired
        one, as Slack refuses it, is a refusal of this message."""
        if _origin(response_url) not in (RESPONSE_ORIGIN, _origin(self._base)):
            raise PermanentError(
                "Slack's response_url is not Slack's", "response_url_refused", "message"
            )
        await responses.respond(self._client, response_url, body, "Slack's response_url")

    # -- identity --------------------------------------------------------------------------

    async def auth_test(self, token: str) -> dict[str, Any]:
        """`{url, team, user, team_id, user_id, bot_id?, app_id?, ...}`. `app_id` is not in
        every answer (a user token's never has it); `bots_info` has it for a bot."""
        return await self.call("auth.test", token, form={})

    async def bots_info(self, token: str, bot_id: str) -> dict[str, Any]:
        """The bot's `{id, app_id, user_id, name, icons, ...}`."""
        data = await self.call("bots.info", token, form={"bot": bot_id})
        return dict(data.get("bot") or {})

    # -- channels, users ---------------------------------------------------------------------

    async def conversations_info(self, token: str, channel: str) -> dict[str, Any]:
        data = await self.call("conversations.info", token, form={"channel": channel})
        return dict(data.get("channel") or {})

    async def users_info(self, token: str, user: str) -> dict[str, Any]:
        data = await self.call("users.info", token, form={"user": user})
        return dict(data.get("user") or {})

    async def users_list(self, token: str, *, cursor: str | None = None, limit: int = 200) -> Page:
        """One page of the workspace's users (deleted ones and bots included)."""
        data = await self.call("users.list", token, form={"cursor": cursor, "limit": limit})
        return _page(data, "members")

    # -- messages ----------------------------------------------------------------------------

    async def chat_post_message(self, token: str, channel: str, **arguments: Any) -> dict[str, Any]:
        """`text`, `thread_ts`, `username`, `icon_url`, `metadata`, `blocks`, ...; answers
        `{channel, ts, message}`."""
        return await self.call("chat.postMessage", token, json={"channel": channel, **arguments})

    async def chat_post_ephemeral(
        self, token: str, channel: str, user: str, **arguments: Any
    ) -> dict[str, Any]:
        """A message in `channel` that `user` alone sees, until they reload
        (https://api.slack.com/methods/chat.postEphemeral: `channel`, `user`,
        `text`; "The user should be in the channel specified"; `user_not_in_channel`
        otherwise). Answers `{message_ts}`."""
        return await self.call(
            "chat.postEphemeral", token, json={"channel": channel, "user": user, **arguments}
        )

    async def chat_update(
        self, token: str, channel: str, ts: str, **arguments: Any
    ) -> dict[str, Any]:
        return await self.call(
            "chat.update", token, json={"channel": channel, "ts": ts, **arguments}
        )

    async def chat_delete(self, token: str, channel: str, ts: str) -> dict[str, Any]:
        return await self.call("chat.delete", token, json={"channel": channel, "ts": ts})

    async def conversations_history(
        self,
        token: str,
        channel: str,
        *,
        cursor: str | None = None,
        oldest: str | None = None,
        latest: str | None = None,
        inclusive: bool | None = None,
        include_all_metadata: bool = False,
        limit: int = 200,
    ) -> Page:
        """One page of the channel's messages, newest first. Thread replies are not in it
        (only their roots and broadcasts): `conversations_replies` reads a thread."""
        data = await self.call(
            "conversations.history",
            token,
            form={
                "channel": channel,
                "cursor": cursor,
                "oldest": oldest,
                "latest": latest,
                "inclusive": inclusive,
                "include_all_metadata": include_all_metadata or None,
                "limit": limit,
            },
        )
        return _page(data, "messages")

    async def conversations_replies(
        self,
        token: str,
        channel: str,
        ts: str,
        *,
        cursor: str | None = None,
        oldest: str | None = None,
        latest: str | None = None,
        include_all_metadata: bool = False,
        limit: int = 200,
    ) -> Page:
        """One page of a thread: its root first, then the replies, oldest first."""
        data = await self.call(
            "conversations.replies",
            token,
            form={
                "channel": channel,
                "ts": ts,
                "cursor": cursor,
                "oldest": oldest,
                "latest": latest,
                "include_all_metadata": include_all_metadata or None,
                "limit": limit,
            },
        )
        return _page(data, "messages")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _page(data: Mapping[str, Any], key: str) -> Page:
    listed = data.get(key)
    listed = listed if isinstance(listed, list) else []
    items = [item for item in listed if isinstance(item, dict)]
    dropped = tuple(i for i, item in enumerate(listed) if not isinstance(item, dict))
    metadata = data.get("response_metadata") or {}
    cursor = metadata.get("next_cursor") if isinstance(metadata, dict) else None
    return Page(items, str(cursor) if cursor else None, bool(data.get("has_more")), dropped)


def _retry_after(answer: httpx.Response) -> float:
    try:
        return max(0.0, float(answer.headers.get("retry-after", "")))
    except ValueError:
        return DEFAULT_RETRY_AFTER


def _result(method: str, answer: httpx.Response) -> dict[str, Any]:
    if answer.status_code == 429:
        raise RateLimited(f"Slack {method}: rate limited", _retry_after(answer))
    if answer.status_code >= 500:
        raise ProviderUnreachable(f"Slack {method} answered {answer.status_code}")
    try:
        data = answer.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        if answer.status_code >= 400:
            # Not Slack speaking (a wrong HOOKHUB_SLACK_API_BASE, a proxy): no retry cures it.
            raise PermanentError(
                f"Slack {method} answered {answer.status_code} without a Slack body",
                f"http_{answer.status_code}",
                "integration",
            )
        raise ProviderUnreachable(f"Slack {method} answered {answer.status_code} without JSON")
    if data.get("ok") is True:
        return data
    error = str(data.get("error") or f"http_{answer.status_code}")
    if error in _RATE_LIMITED:
        raise RateLimited(f"Slack {method}: {error}", _retry_after(answer))
    if error in _UNREACHABLE:
        raise ProviderUnreachable(f"Slack {method}: {error}")
    raise refusal(method, error)
