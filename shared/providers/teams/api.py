"""The Bot Connector REST API calls hookhub makes for Teams, the bot's access token, and the
one place the Connector's refusals are sorted into the chat contract's errors
(shared.providers.chat).

The token ("Authentication with the Bot Connector API", "Bot to Connector",
https://learn.microsoft.com/en-us/azure/bot-service/rest-api/bot-framework-rest-connector-authentication;
the SDK's `microsoft_app_credentials.py`, `authentication_constants.py`): client credentials
POSTed as a form to `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`, the tenant
`botframework.com` for a multi-tenant bot or the bot's own tenant id for a single-tenant one,
`scope=https://api.botframework.com/.default`; the answer's `access_token` is good for
`expires_in` seconds and is kept until `REFRESH_MARGIN` before that.

The calls ("API reference", https://learn.microsoft.com/en-us/azure/bot-service/rest-api/bot-framework-rest-connector-api-reference):
Create Conversation `POST {serviceUrl}/v3/conversations` (a user's one-on-one chat with the
bot), Send to Conversation `POST {serviceUrl}/v3/conversations/{conversationId}/activities`,
Update Activity `PUT .../activities/{activityId}`, Delete Activity `DELETE
.../activities/{activityId}`; a refusal is an `ErrorResponse` `{"error": {"code",
"message"}}` (botbuilder-schema's `ErrorResponse`/`Error`). Teams' own codes and what they
mean ("Status code responses",
https://learn.microsoft.com/en-us/microsoftteams/platform/bots/build-conversational-capability#status-code-responses):
403 `ConversationBlockedByUser` / `BotNotInConversationRoster` / `BotDisabledByAdmin`, 401
`BotNotRegistered`, 412 `PreconditionFailed` ("precondition failed, please try again": several
operations on one conversation at once), 404 `ConversationNotFound`, 413 `MessageSizeTooBig`,
429 `Throttled` with the time to wait. "Optimize your bot with rate limiting"
(https://learn.microsoft.com/en-us/microsoftteams/platform/bots/how-to/rate-limit) says to
retry 412, 502 and 504 besides 429: 412 is a passing failure here.

`serviceUrl` comes from the activities Teams sends (checked against the token's claim by
`auth.check_token`), or from the integration's setting; every call is held to hookhub's egress
rules (`shared.kernel.egress.check_url`) before the token is sent there.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import ipaddress
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from shared.domain.oauth.provider import ProviderUnreachable
from shared.kernel.egress import EgressPolicy
from shared.kernel.errors import HookhubError
from shared.providers.chat import PermanentError, RateLimited, TokenRejected, check_reachable

LOGIN_BASE = "https://login.microsoftonline.com"
MULTI_TENANT = "botframework.com"
SCOPE = "https://api.botframework.com/.default"
# Fetched again this long before the token's own expiry (MSAL's five minutes).
REFRESH_MARGIN = 5 * 60.0
# The Connector answers 429 with `Retry-After`; without one, a second.
DEFAULT_RETRY_AFTER = 1.0

Clock = Callable[[], float]

# 403 codes: the bot cannot reach the conversation any more (the mapping is broken).
_CHANNEL_403 = {
    "BotNotInConversationRoster": "bot_not_member",
    "ConversationBlockedByUser": "bot_blocked",
    "BotDisabledByAdmin": "bot_disabled",
    "NotEnoughPermissions": "no_rights",
    "ForbiddenOperationException": "forbidden",
}
# 404 codes about one message, not the conversation.
_MESSAGE_404 = {"ActivityNotFoundInConversation", "MessageNotFound", "NotFound"}


class AppTokens:
    """The bot's Connector access token, by client credentials, one request per
    `expires_in` (minus `REFRESH_MARGIN`) however many calls use it."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        app_id: str,
        app_password: str,
        *,
        tenant: str = MULTI_TENANT,
        login_base: str = LOGIN_BASE,
        clock: Clock = time.monotonic,
    ) -> None:
        self._client = client
        self._app_id = app_id
        self._password = app_password
        self._url = (
            f"{login_base.rstrip('/')}/{quote(tenant or MULTI_TENANT, safe='')}/oauth2/v2.0/token"
        )
        self._clock = clock
        self._token: str | None = None
        self._until = 0.0
        self._lock = asyncio.Lock()
        self.requests = 0

    @property
    def app_id(self) -> str:
        return self._app_id

    def forget(self) -> None:
        """Drop the cached token (the Connector answered 401 with it)."""
        self._token = None

    async def token(self) -> str:
        if self._token is not None and self._clock() < self._until:
            return self._token  # valid: no need to queue behind the lock
        async with self._lock:
            if self._token is not None and self._clock() < self._until:
                return self._token
            self.requests += 1
            form = {
                "grant_type": "client_credentials",
                "client_id": self._app_id,
                "client_secret": self._password,
                "scope": SCOPE,
            }
            try:
                answer = await self._client.post(self._url, data=form)
            except httpx.HTTPError as exc:
                raise ProviderUnreachable(
                    f"Microsoft's login is unreachable: {type(exc).__name__}"
                ) from exc
            body = _json(answer)
            if answer.status_code == 429:
                raise RateLimited("Microsoft's login answered 429", retry_after_of(answer.headers))
            if answer.status_code >= 500:
                raise ProviderUnreachable(f"Microsoft's login answered {answer.status_code}")
            if answer.status_code != 200:
                error = str(body.get("error") or f"error_{answer.status_code}")
                said = str(body.get("error_description") or error).split("\r\n")[0]
                raise TokenRejected(
                    f"Microsoft's login refused the bot's credentials: {said}", error
                )
            token, lifetime = body.get("access_token"), body.get("expires_in")
            if isinstance(lifetime, str) and lifetime.isdigit():
                lifetime = int(lifetime)
            if not isinstance(token, str) or not token or not isinstance(lifetime, int):
                raise ProviderUnreachable(
                    "Microsoft's login answered a token of an unexpected shape"
                )
            self._token = token
            self._until = self._clock() + max(lifetime - REFRESH_MARGIN, 0)
            return token


def retry_after_of(headers: Mapping[str, str]) -> float:
    """`Retry-After` as seconds: its number, or the time to its HTTP date; else a second."""
    raw = (headers.get("retry-after") or "").strip()
    if not raw:
        return DEFAULT_RETRY_AFTER
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER
    return max(when.timestamp() - time.time(), 0.0)


def refusal(call: str, answer: httpx.Response) -> HookhubError:
    """The contract's error for one Connector answer that is not a success."""
    status = answer.status_code
    body = _json(answer)
    said_error = body.get("error")
    error: dict[str, Any] = said_error if isinstance(said_error, dict) else {}
    code = str(error.get("code") or body.get("code") or f"http_{status}")
    message = str(error.get("message") or body.get("message") or "")
    said = f"Teams refused {call}: {status} {code}" + (f" ({message})" if message else "")
    if status == 429:
        return RateLimited(said, retry_after_of(answer.headers))
    if status >= 500 or status == 412:
        return ProviderUnreachable(said)
    if status == 401:
        if code == "BotNotRegistered":
            return PermanentError(said, "bot_not_registered", "integration")
        return TokenRejected(said, "unauthorized")
    if status == 403:
        return PermanentError(said, _CHANNEL_403.get(code, "forbidden"), "channel")
    if status == 404:
        if code in _MESSAGE_404 or "Activity" in code:
            return PermanentError(said, "message_not_found", "message")
        return PermanentError(said, "conversation_not_found", "channel")
    if status == 413:
        return PermanentError(said, "msg_too_long", "message")
    return PermanentError(said, code, "message")


def _json(answer: httpx.Response) -> dict[str, Any]:
    try:
        data = orjson.loads(answer.content)
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


class TeamsApi:
    """Connector calls for one integration's bot, each given the access token and the
    conversation's serviceUrl."""

    def __init__(self, client: httpx.AsyncClient, egress: EgressPolicy) -> None:
        self._client = client
        self._egress = egress
        # A serviceUrl is judged by what it says alone (where its name points is judged
        # when connecting): judged once, not for every call. A refused one is not kept.
        self._conversations: Callable[[str], str] = functools.lru_cache(maxsize=256)(
            self._conversations_at
        )

    def _url(self, service_url: str, conversation_id: str, activity_id: str | None = None) -> str:
        conversation = quote(conversation_id, safe="")
        url = f"{self._conversations(service_url)}/{conversation}/activities"
        if activity_id is not None:
            url += "/" + quote(activity_id, safe="")
        return url

    def _conversations_at(self, service_url: str) -> str:
        what = "the conversation's serviceUrl"
        check_reachable(service_url, self._egress, what, "service_url_refused", "channel")
        if not service_url.startswith("https://") and not self._allowlisted(service_url):
            # The Connector is HTTPS ("SSL/TLS is used for all service-to-service
            # connections"); plain HTTP only to an address the operator allow-listed.
            raise PermanentError(
                "the conversation's serviceUrl is refused: not https", "service_url_refused"
            )
        return f"{service_url.rstrip('/')}/v3/conversations"

    def _allowlisted(self, url: str) -> bool:
        try:
            address = ipaddress.ip_address(httpx.URL(url).host)
        except ValueError:
            return False
        return self._egress.allowlisted(address)

    async def _call(
        self, call: str, method: str, url: str, token: str, body: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        headers = {"authorization": f"Bearer {token}"}
        content = None
        if body is not None:  # orjson: httpx's `json=` encodes with the standard library
            content = orjson.dumps(dict(body))
            headers["content-type"] = "application/json"
        try:
            answer = await self._client.request(method, url, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise ProviderUnreachable(f"Teams is unreachable: {type(exc).__name__}") from exc
        if answer.status_code >= 300:
            raise refusal(call, answer)
        return _json(answer)

    async def send(
        self, token: str, service_url: str, conversation_id: str, activity: Mapping[str, Any]
    ) -> str:
        """Send to Conversation: the new activity's id (its `ResourceResponse`)."""
        url = self._url(service_url, conversation_id)
        sent = await self._call("Send to Conversation", "POST", url, token, activity)
        new_id = sent.get("id")
        if not isinstance(new_id, str) or not new_id:
            raise ProviderUnreachable("Teams answered Send to Conversation without an id")
        return new_id

    async def create_conversation(
        self, token: str, service_url: str, parameters: Mapping[str, Any]
    ) -> str:
        """Create Conversation (`POST {serviceUrl}/v3/conversations`, its
        `ConversationParameters`): the conversation's id. With one member and `isGroup`
        false, the bot's one-on-one chat with that user ("Send proactive messages": the
        user must have the app installed, or be "a part of a team in which the app is
        installed", https://learn.microsoft.com/en-us/microsoftteams/platform/bots/how-to/
        conversations/send-proactive-messages)."""
        url = self._conversations(service_url)
        made = await self._call("Create Conversation", "POST", url, token, parameters)
        conversation = made.get("id")
        if not isinstance(conversation, str) or not conversation:
            raise ProviderUnreachable("Teams answered Create Conversation without an id")
        return conversation

    async def update(
        self,
        token: str,
        service_url: str,
        conversation_id: str,
        activity_id: str,
        activity: Mapping[str, Any],
    ) -> None:
        url = self._url(service_url, conversation_id, activity_id)
        await self._call("Update Activity", "PUT", url, token, activity)

    async def delete(
        self, token: str, service_url: str, conversation_id: str, activity_id: str
    ) -> None:
        """A message already gone is no failure."""
        url = self._url(service_url, conversation_id, activity_id)
        try:
            await self._call("Delete Activity", "DELETE", url, token, None)
        except PermanentError as exc:
            if exc.error != "message_not_found":
                raise
