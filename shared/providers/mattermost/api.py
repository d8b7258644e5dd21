"""The Mattermost REST API v4 calls hookhub makes, and Mattermost's refusals sorted once into
the chat contract's errors.

Mattermost is self-hosted: every call names the server (its URL, as the integration's
`server_url` setting gives it) and the token, a personal access token of the bot account,
sent as `Authorization: Bearer <token>` (api.mattermost.com, "Authentication"). Failures
answer an AppError `{"id", "message", "detailed_error", "request_id", "status_code"}`: the
HTTP status decides, `id` says more (`app.post.get.app_error`...).

Rate limits (mattermost-server app/ratelimit.go, off unless the admin turns them on): a 429
answers the text `limit exceeded` with `Retry-After` and `X-RateLimit-Reset`, both in whole
seconds from now. It becomes `RateLimited(retry_after)`: the caller waits and calls again
(nothing sleeps here), as for the other providers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from shared.kernel.egress import EgressPolicy
from shared.providers import responses
from shared.providers.chat import (
    PermanentError,
    ProviderUnreachable,
    RateLimited,
    TokenRejected,
    check_reachable,
)

API = "/api/v4"
ALLOWED_KEPT = 10_000
# When a 429 says nothing about how long to wait (no header at all).
DEFAULT_RETRY_AFTER = 1.0
# The longest `message` (model.PostMessageMaxRunesV2), in characters (runes).
MAX_MESSAGE = 16383
# Largest page of GET /channels/{id}/posts (api.mattermost.com, "Schema & Conventions":
# "Maximum items per page: 200").
MAX_PER_PAGE = 200


class MattermostRateLimited(RateLimited):
    """`RateLimited` with the other numbers of the answer: `reset_after` (seconds until the
    limit's window resets, `X-RateLimit-Reset`), `limit` (`X-RateLimit-Limit`)."""

    def __init__(
        self, message: str, retry_after: float, reset_after: float | None, limit: int | None
    ) -> None:
        super().__init__(message, retry_after)
        self.reset_after = reset_after
        self.limit = limit


class PostGone(PermanentError):
    """404 for a post: deleted or never there (`app.post.get.app_error`; older servers
    `store.sql_post.get.app_error`): the server reads posts with `DeleteAt = 0`."""

    def __init__(self, message: str, error: str) -> None:
        super().__init__(message, error, "message")


def refusal(what: str, status: int, body: Any) -> PermanentError:
    """The contract's error for a 4xx answer other than 429 (`what` names the call)."""
    data = body if isinstance(body, Mapping) else {}
    error_id = data.get("id") if isinstance(data.get("id"), str) else None
    said = f"Mattermost refused {what}: {data.get('message') or f'HTTP {status}'}"
    if error_id:
        said = f"{said} ({error_id})"
    if status == 401:
        return TokenRejected(said, error_id or "unauthorized")
    if not data:
        # Not Mattermost speaking (a wrong server URL, a proxy): no retry cures it.
        return PermanentError(said, f"http_{status}", "integration")
    if status == 403:
        return PermanentError(said, error_id or "forbidden", "channel")
    if status == 404:
        # A post gone (`app.post.get.app_error`) is about one message; a channel or team
        # gone breaks the mapping.
        if error_id and ".channel." in error_id:
            return PermanentError(said, error_id, "channel")
        if "/posts" in what:
            return PostGone(said, error_id or "not_found")
        return PermanentError(said, error_id or "not_found", "message")
    return PermanentError(said, error_id or f"http_{status}", "message")


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number == number and number >= 0 else None


def rate_limited(what: str, headers: httpx.Headers) -> MattermostRateLimited:
    """A 429's wait: `Retry-After`, else `X-RateLimit-Reset`, else a second."""
    retry_after = _number(headers.get("retry-after"))
    reset_after = _number(headers.get("x-ratelimit-reset"))
    limit = _number(headers.get("x-ratelimit-limit"))
    wait = retry_after if retry_after is not None else reset_after
    return MattermostRateLimited(
        f"Mattermost rate limited {what}",
        wait if wait is not None else DEFAULT_RETRY_AFTER,
        reset_after,
        int(limit) if limit is not None else None,
    )


def server_base(server_url: str) -> str:
    """The server's URL as given (`https://chat.example.com`, maybe with a subpath), without
    a trailing slash or the API path."""
    base = server_url.strip().rstrip("/")
    if base.endswith(API):
        base = base[: -len(API)]
    return base


def websocket_url(server_url: str) -> str:
    """`wss://…/api/v4/websocket` for an `https://` server (`ws://` for `http://`)."""
    base = server_base(server_url)
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :] + API + "/websocket"
    if base.startswith("http://"):
        return "ws://" + base[len("http://") :] + API + "/websocket"
    raise ValueError(f"a Mattermost server URL starts with https:// or http://: {server_url!r}")


class MattermostApi:
    """One REST client for every Mattermost server. An integration names its own server: a
    server URL the egress rules refuse (a private address, not allow-listed) is never
    called (`policy`; None: none checked, for tests of the client alone)."""

    def __init__(self, client: httpx.AsyncClient, policy: EgressPolicy | None = None) -> None:
        self._client = client
        self._policy = policy
        self._allowed: set[str] = set()  # server bases checked, at most ALLOWED_KEPT

    def check(self, server_url: str) -> None:
        """PermanentError (the integration's) for a server the egress rules refuse."""
        base = server_base(server_url)
        if self._policy is None or base in self._allowed:
            return
        check_reachable(base, self._policy, "the Mattermost server URL")
        if len(self._allowed) >= ALLOWED_KEPT:
            self._allowed.clear()
        self._allowed.add(base)

    async def request(
        self,
        method: str,
        server_url: str,
        token: str,
        route: str,
        *,
        json: Mapping[str, Any] | list[Any] | None = None,
        query: Mapping[str, Any] | None = None,
        path: Mapping[str, str] | None = None,
    ) -> Any:
        """`route` is the path template below /api/v4 (`/posts/{post_id}/patch`), `path` its
        values. The answer's JSON, or the contract's error."""
        what = f"{method} {route}"
        self.check(server_url)
        url = (
            server_base(server_url)
            + API
            + route.format(**{k: quote(v, safe="") for k, v in (path or {}).items()})
        )
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        content = None
        if json is not None:
            headers["Content-Type"] = "application/json"
            content = orjson.dumps(json if isinstance(json, list) else dict(json))
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        try:
            answer = await self._client.request(
                method, url, content=content, headers=headers, params=params
            )
        except httpx.LocalProtocolError as exc:
            raise TokenRejected(
                f"Mattermost {what}: the token cannot be sent", "bad_token"
            ) from exc
        except httpx.HTTPError as exc:
            raise ProviderUnreachable(
                f"Mattermost {what}: no answer ({type(exc).__name__})"
            ) from exc
        if answer.status_code == 429:
            raise rate_limited(what, answer.headers)
        body = _body(answer)
        if answer.status_code >= 500:
            raise ProviderUnreachable(f"Mattermost {what} answered {answer.status_code}")
        if answer.status_code >= 400:
            raise refusal(what, answer.status_code, body)
        if body is None:
            raise ProviderUnreachable(
                f"Mattermost {what} answered {answer.status_code} without JSON"
            )
        return body

    async def _object(
        self, method: str, server_url: str, token: str, route: str, **kw: Any
    ) -> dict[str, Any]:
        answer = await self.request(method, server_url, token, route, **kw)
        if not isinstance(answer, dict):
            raise ProviderUnreachable(f"Mattermost {method} {route} answered an unexpected shape")
        return answer

    async def respond(self, server_url: str, response_url: str, body: Mapping[str, Any]) -> None:
        """POST an answer to a slash command's `response_url`, which must be the
        integration's server's (`{server}/hooks/commands/…`): "use the response_url to send
        up to five additional messages within a 30-minute time period"
        (developers.mattermost.com/integrate/slash-commands/)."""
        base = server_base(server_url)
        if not response_url.startswith(base + "/hooks/commands/"):
            raise PermanentError(
                "the slash command's response_url is not the Mattermost server's",
                "response_url_refused",
                "message",
            )
        self.check(server_url)
        await responses.respond(self._client, response_url, body, "Mattermost's response_url")

    # -- who, where ---------------------------------------------------------------------------

    async def me(self, server_url: str, token: str) -> dict[str, Any]:
        """The token's user (`GET /users/me`): `{id, username, is_bot?, ...}`."""
        return await self._object("GET", server_url, token, "/users/me")

    async def user(self, server_url: str, token: str, user_id: str) -> dict[str, Any]:
        """`GET /users/{user_id}`: `{id, username, first_name, last_name, nickname, ...}`."""
        return await self._object(
            "GET", server_url, token, "/users/{user_id}", path={"user_id": user_id}
        )

    async def channel(self, server_url: str, token: str, channel_id: str) -> dict[str, Any]:
        """`GET /channels/{channel_id}`: `{id, team_id, type, name, display_name, ...}`;
        403 when the bot is not a member of a private channel."""
        return await self._object(
            "GET", server_url, token, "/channels/{channel_id}", path={"channel_id": channel_id}
        )

    async def my_channel_ids(self, server_url: str, token: str) -> list[str]:
        """The public and private channels the token's user is a member of, in every team
        of theirs: `GET /users/me/teams`, then `GET /users/me/teams/{team_id}/channels`
        for each (api.mattermost.com, "Get a user's teams", "Get channels for user")."""
        teams = await self.request("GET", server_url, token, "/users/me/teams")
        found: list[str] = []
        for team in teams if isinstance(teams, list) else []:
            team_id = team.get("id") if isinstance(team, dict) else None
            if not isinstance(team_id, str):
                continue
            channels = await self.request(
                "GET",
                server_url,
                token,
                "/users/me/teams/{team_id}/channels",
                path={"team_id": team_id},
            )
            for channel in channels if isinstance(channels, list) else []:
                if (
                    isinstance(channel, dict)
                    and channel.get("type") in ("O", "P")
                    and isinstance(channel.get("id"), str)
                    and channel["id"] not in found
                ):
                    found.append(channel["id"])
        return found

    # -- posts --------------------------------------------------------------------------------

    async def create_post(
        self, server_url: str, token: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """`POST /posts` with `{channel_id, message, root_id?, props?}`: the post made."""
        return await self._object("POST", server_url, token, "/posts", json=body)

    async def create_ephemeral_post(
        self, server_url: str, token: str, user_id: str, post: Mapping[str, Any]
    ) -> dict[str, Any]:
        """`POST /posts/ephemeral` with `{user_id, post: {channel_id, message}}`: a post in
        the channel that `user_id` alone sees. "Must have create_post_ephemeral permission
        (currently only given to system admin)": a bot without it is answered 403
        (https://docs.mattermost.com/api/reference/create-post-ephemeral)."""
        return await self._object(
            "POST",
            server_url,
            token,
            "/posts/ephemeral",
            json={"user_id": user_id, "post": dict(post)},
        )

    async def create_direct_channel(
        self, server_url: str, token: str, user_ids: tuple[str, str]
    ) -> dict[str, Any]:
        """`POST /channels/direct` with the two users' ids: their direct message channel
        (made, or the one they have). "Must be one of the two users and have
        create_direct_channel permission" (api.mattermost.com, "Create a direct message
        channel"), which every user and bot has by default."""
        return await self._object(
            "POST", server_url, token, "/channels/direct", json=list(user_ids)
        )

    async def patch_post(
        self, server_url: str, token: str, post_id: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """`PUT /posts/{post_id}/patch` with `{message?, props?}`: the post as it now is.
        `props`, when given, replaces the post's props whole."""
        return await self._object(
            "PUT", server_url, token, "/posts/{post_id}/patch", path={"post_id": post_id}, json=body
        )

    async def delete_post(self, server_url: str, token: str, post_id: str) -> bool:
        """`DELETE /posts/{post_id}`: True when deleted, False when already gone (404)."""
        try:
            await self.request(
                "DELETE", server_url, token, "/posts/{post_id}", path={"post_id": post_id}
            )
        except PostGone:
            return False
        return True

    async def posts(
        self,
        server_url: str,
        token: str,
        channel_id: str,
        *,
        page: int = 0,
        per_page: int = 60,
        before: str | None = None,
    ) -> dict[str, Any]:
        """One page of the channel's posts, newest first (`order`), not deleted: a PostList
        `{order: [ids], posts: {id: post}, ...}` (`posts` also holds roots outside `order`)."""
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise ValueError(f"Mattermost pages hold 1 to {MAX_PER_PAGE} posts")
        return await self._object(
            "GET",
            server_url,
            token,
            "/channels/{channel_id}/posts",
            path={"channel_id": channel_id},
            query={"page": page, "per_page": per_page, "before": before},
        )

    async def posts_since(
        self, server_url: str, token: str, channel_id: str, since_ms: int
    ) -> dict[str, Any]:
        """Every post of the channel modified after `since_ms` (ms since the epoch, > 0):
        created, edited or deleted since (`delete_at` set), and the deleted copies an edit
        leaves (`original_id` set), at most 1000, by create time; `since` takes no paging
        (docs.mattermost.com/api/reference/get-posts-for-channel)."""
        if since_ms <= 0:
            raise ValueError("since must be a non-zero time in ms")
        return await self._object(
            "GET",
            server_url,
            token,
            "/channels/{channel_id}/posts",
            path={"channel_id": channel_id},
            query={"since": since_ms},
        )


def _body(answer: httpx.Response) -> Any:
    if not answer.content:
        return None
    try:
        return orjson.loads(answer.content)
    except orjson.JSONDecodeError:
        return None
