"""The Matrix Client-Server API calls hookhub makes as an application service, and the one
place the homeserver's refusals are sorted into the chat contract's errors
(shared.providers.chat).

Every call carries the appservice's `as_token` in `Authorization: Bearer` (Application
Service API, "Identity assertion": the header rather than the deprecated `access_token`
query parameter, so that the token stays out of request logs) and, to act as a puppet, that
user's id in the `user_id` query parameter; without it the homeserver acts as the
registration's `sender_localpart`.

Refusals are `{"errcode": "M_…", "error": "…"}` (Client-Server API, "Standard error
response"). A 429 is `M_LIMIT_EXCEEDED`: how long to wait is the `Retry-After` header
(seconds, since v1.10) or the deprecated `retry_after_ms` (Client-Server API, "Rate
limiting"); both are read, the header first.

Transport is httpx, like the other chat providers (one shared, gated client:
shared/providers/chats.py), not mautrix's `HTTPAPI`: that one runs its own aiohttp session
and its `make_request_error` keeps only `errcode` and `error`, so a 429's `retry_after_ms`
(and `Retry-After`) would be lost. The events' content is built and read with mautrix's
types (shared/providers/matrix/messages.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlencode

import httpx
import orjson

from shared.domain.oauth.provider import ProviderUnreachable
from shared.kernel.errors import HookhubError
from shared.providers.chat import PermanentError, RateLimited, TokenRejected

CLIENT = "/_matrix/client/v3"
MEDIA = "/_matrix/media/v3"
# When a 429 says nothing about how long to wait.
DEFAULT_RETRY_AFTER = 1.0

Scope = Literal["message", "channel", "integration"]

# errcode → (our error, scope) for refusals that are neither a limit nor a bad token.
_ERRCODES: dict[str, tuple[str, Scope]] = {
    "M_FORBIDDEN": ("forbidden", "channel"),
    "M_NOT_FOUND": ("not_found", "channel"),
    "M_EXCLUSIVE": ("exclusive", "integration"),
    "M_TOO_LARGE": ("msg_too_long", "message"),
    "M_BAD_JSON": ("bad_json", "message"),
    "M_NOT_JSON": ("bad_json", "message"),
    "M_INVALID_PARAM": ("invalid_param", "message"),
    "M_USER_IN_USE": ("user_in_use", "message"),
    "M_INVALID_USERNAME": ("invalid_username", "integration"),
    "M_APPSERVICE_LOGIN_UNSUPPORTED": ("appservice_login_unsupported", "integration"),
}
_TOKEN = frozenset({"M_UNKNOWN_TOKEN", "M_MISSING_TOKEN"})


def refusal(
    call: str, status: int, body: Mapping[str, Any], headers: httpx.Headers
) -> HookhubError:
    """The contract's error for one non-2xx answer that is not an outage (`status` < 500).

    429 / `M_LIMIT_EXCEEDED` → RateLimited (`Retry-After`, else `retry_after_ms`, else 1 s);
    401 or `M_UNKNOWN_TOKEN`/`M_MISSING_TOKEN` → TokenRejected; the others by errcode
    (`_ERRCODES`), an unknown one concerning this one call (scope message)."""
    errcode = str(body.get("errcode") or f"HTTP_{status}")
    said = f"Matrix refused {call}: {errcode} {body.get('error') or ''}".rstrip()
    if status == 429 or errcode == "M_LIMIT_EXCEEDED":
        return RateLimited(said, _retry_after(body, headers))
    if status == 401 or errcode in _TOKEN:
        return TokenRejected(said, errcode)
    error, scope = _ERRCODES.get(errcode, (errcode.lower(), "message"))
    return PermanentError(said, error, scope)


def _retry_after(body: Mapping[str, Any], headers: httpx.Headers) -> float:
    header = headers.get("retry-after")
    if header is not None:
        try:
            return max(float(header), 0.0)
        except ValueError:
            pass  # an HTTP date: the body may say it in milliseconds
    millis = body.get("retry_after_ms")
    if isinstance(millis, int | float) and not isinstance(millis, bool):
        return max(float(millis) / 1000.0, 0.0)
    return DEFAULT_RETRY_AFTER


def q(segment: str) -> str:
    """One path segment (a room id `!a:b`, an event id `$x`, a user id `@u:s`), encoded."""
    return quote(segment, safe="")


@dataclass(frozen=True)
class Page:
    """One page of `GET /rooms/{roomId}/messages`: `end` is None when there is no more."""

    chunk: list[dict[str, Any]]
    end: str | None


class MatrixApi:
    """The Client-Server API of one homeserver (an integration's `homeserver_url`).
    Stateless: every call takes the appservice's `as_token`."""

    def __init__(self, client: httpx.AsyncClient, homeserver_url: str) -> None:
        self._client = client
        self._base = homeserver_url.rstrip("/")

    async def _call(
        self,
        method: str,
        path: str,
        token: str,
        *,
        as_user: str | None = None,
        params: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        content_type: str | None = None,
        prefix: str = CLIENT,
    ) -> dict[str, Any]:
        query = dict(params or {})
        if as_user is not None:
            query["user_id"] = as_user
        call = f"{method} {path.split('?')[0]}"
        headers = {"Authorization": f"Bearer {token}"}
        if json is not None:
            # Encoded here, once, as Google Chat's and Slack's calls are: httpx's `json=`
            # encodes with the standard library, and its `params=` parses the address again
            # to merge them (twice the request's making, py-spy, `make bench` sync-matrix).
            content = orjson.dumps(json)
            content_type = "application/json"
        if content_type is not None:
            headers["Content-Type"] = content_type
        url = f"{self._base}{prefix}{path}"
        if query:
            url += ("&" if "?" in path else "?") + urlencode(query, quote_via=quote)
        try:
            answer = await self._client.request(method, url, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise ProviderUnreachable(f"Matrix is unreachable: {type(exc).__name__}") from exc
        if answer.status_code >= 500:
            raise ProviderUnreachable(f"Matrix answered {answer.status_code} to {call}")
        try:
            data = orjson.loads(answer.content)
        except ValueError as exc:
            raise ProviderUnreachable(
                f"Matrix answered {answer.status_code} to {call} without JSON"
            ) from exc
        if not isinstance(data, dict):
            raise ProviderUnreachable(f"Matrix answered {call} with an unexpected shape")
        if answer.status_code >= 300:
            raise refusal(call, answer.status_code, data, answer.headers)
        return data

    # -- who we are ------------------------------------------------------------------------

    async def whoami(self, token: str, as_user: str | None = None) -> str:
        """`GET /account/whoami`: the user the token acts as (the appservice's own user
        without `as_user`)."""
        data = await self._call("GET", "/account/whoami", token, as_user=as_user)
        user_id = data.get("user_id")
        if not isinstance(user_id, str):
            raise ProviderUnreachable("Matrix answered whoami without a user_id")
        return user_id

    # -- puppets ---------------------------------------------------------------------------

    async def register(self, token: str, localpart: str) -> None:
        """`POST /register` with `type: m.login.application_service` and `inhibit_login`
        (required since v1.17 where the server has no legacy login; harmless before). A
        user that exists already (`M_USER_IN_USE`) is no failure."""
        body = {"type": "m.login.application_service", "username": localpart}
        try:
            await self._call("POST", "/register", token, json={**body, "inhibit_login": True})
        except PermanentError as exc:
            if exc.error != "user_in_use":
                raise

    async def set_displayname(self, token: str, user_id: str, name: str) -> None:
        await self._call(
            "PUT",
            f"/profile/{q(user_id)}/displayname",
            token,
            as_user=user_id,
            json={"displayname": name},
        )

    async def set_avatar_url(self, token: str, user_id: str, avatar_url: str) -> None:
        """`avatar_url` must be an `mxc://` URI (Client-Server API, "Profiles")."""
        await self._call(
            "PUT",
            f"/profile/{q(user_id)}/avatar_url",
            token,
            as_user=user_id,
            json={"avatar_url": avatar_url},
        )

    async def upload(
        self, token: str, data: bytes, content_type: str, as_user: str | None = None
    ) -> str:
        """`POST /_matrix/media/v3/upload`: the `mxc://` URI of the content."""
        answer = await self._call(
            "POST",
            "/upload",
            token,
            as_user=as_user,
            content=data,
            content_type=content_type,
            prefix=MEDIA,
        )
        uri = answer.get("content_uri")
        if not isinstance(uri, str) or not uri.startswith("mxc://"):
            raise ProviderUnreachable("Matrix answered an upload without a content_uri")
        return uri

    async def profile(self, token: str, user_id: str) -> dict[str, Any] | None:
        """`GET /profile/{userId}`: `displayname`, `avatar_url` (either may be missing);
        None for a user the homeserver does not know (404 `M_NOT_FOUND`) or will not show
        (403)."""
        try:
            return await self._call("GET", f"/profile/{q(user_id)}", token)
        except PermanentError as exc:
            if exc.error in ("not_found", "forbidden"):
                return None
            raise

    async def join(self, token: str, room_id: str, user_id: str | None = None) -> None:
        await self._call("POST", f"/rooms/{q(room_id)}/join", token, as_user=user_id, json={})

    async def invite(self, token: str, room_id: str, user_id: str) -> None:
        """Invited by the appservice's own user (no `user_id` parameter)."""
        await self._call("POST", f"/rooms/{q(room_id)}/invite", token, json={"user_id": user_id})

    # -- rooms -----------------------------------------------------------------------------

    async def room_name(self, token: str, room_id: str) -> str | None:
        """The room's `m.room.name`, None when it has none (404 on that state event); a room
        the appservice's user cannot see is refused (403 `M_FORBIDDEN`, scope channel)."""
        try:
            data = await self._call("GET", f"/rooms/{q(room_id)}/state/m.room.name/", token)
        except PermanentError as exc:
            if exc.error == "not_found":
                return None
            raise
        name = data.get("name")
        return name if isinstance(name, str) and name else None

    async def event(self, token: str, room_id: str, event_id: str) -> dict[str, Any] | None:
        """`GET /rooms/{roomId}/event/{eventId}`, None when it is not there (404)."""
        try:
            return await self._call("GET", f"/rooms/{q(room_id)}/event/{q(event_id)}", token)
        except PermanentError as exc:
            if exc.error == "not_found":
                return None
            raise

    async def send(
        self,
        token: str,
        room_id: str,
        txn_id: str,
        content: Mapping[str, Any],
        *,
        as_user: str | None = None,
        event_type: str = "m.room.message",
    ) -> str:
        """`PUT /rooms/{roomId}/send/{eventType}/{txnId}`: the event id. The homeserver
        answers a retransmission (same path, same txnId) with the first event's id."""
        data = await self._call(
            "PUT",
            f"/rooms/{q(room_id)}/send/{q(event_type)}/{q(txn_id)}",
            token,
            as_user=as_user,
            json=content,
        )
        event_id = data.get("event_id")
        if not isinstance(event_id, str):
            raise ProviderUnreachable("Matrix answered a send without an event_id")
        return event_id

    async def redact(
        self,
        token: str,
        room_id: str,
        event_id: str,
        txn_id: str,
        *,
        as_user: str | None = None,
        reason: str | None = None,
    ) -> str | None:
        """`PUT /rooms/{roomId}/redact/{eventId}/{txnId}`: the redaction's event id; None
        when the event is not there (404 `M_NOT_FOUND`: already gone is no failure)."""
        body = {"reason": reason} if reason else {}
        try:
            data = await self._call(
                "PUT",
                f"/rooms/{q(room_id)}/redact/{q(event_id)}/{q(txn_id)}",
                token,
                as_user=as_user,
                json=body,
            )
        except PermanentError as exc:
            if exc.error == "not_found":
                return None
            raise
        redaction = data.get("event_id")
        return redaction if isinstance(redaction, str) else None

    async def messages(
        self,
        token: str,
        room_id: str,
        *,
        since: str | None = None,
        direction: Literal["b", "f"] = "b",
        limit: int = 100,
        as_user: str | None = None,
    ) -> Page:
        """`GET /rooms/{roomId}/messages`: one page from `since` (a previous page's `end`;
        None: from the newest event for `b`, the oldest for `f`, as `from` is optional
        since v1.3)."""
        params = {"dir": direction, "limit": str(limit)}
        if since is not None:
            params["from"] = since
        data = await self._call(
            "GET", f"/rooms/{q(room_id)}/messages", token, as_user=as_user, params=params
        )
        chunk = data.get("chunk")
        end = data.get("end")
        return Page(
            chunk=[e for e in chunk if isinstance(e, dict)] if isinstance(chunk, list) else [],
            end=end if isinstance(end, str) and end else None,
        )
