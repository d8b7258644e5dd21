"""The Google Chat REST API calls hookhub makes as the Chat app (its service account, scope
`chat.bot`), and the one place their refusals are sorted into the chat contract's errors
(shared.providers.chat).

Methods (developers.google.com/workspace/chat/api/reference/rest/v1/spaces.messages and
…/spaces):

- `spaces.messages.create`: `POST /v1/{parent=spaces/*}/messages` with the Message
  (`text`, `thread`) and the query `requestId` ("Specifying an existing request ID returns
  the message created with that ID instead of creating a new message"), `messageId` (a
  custom id, `client-` then at most 56 lowercase letters, digits and hyphens; it becomes
  the message's `clientAssignedMessageId` and the last part of its name), and
  `messageReplyOption` (`REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD`: a reply to `thread.name` or
  `thread.threadKey`, else a new thread).
- `spaces.messages.patch`: `PATCH /v1/{message.name=spaces/*/messages/*}?updateMask=text`,
  or `updateMask=text,cardsV2` for a card's buttons (`cardsV2` is one of the field paths it
  takes, with app authentication; an empty `cardsV2` removes the cards).
- A card's buttons are the Message's `cardsV2` (`[{cardId, card}]`), written with the app's
  own token only ("For card messages, only app authentication is supported").
- Every text written says `markupSyntax: MARKUP_SYNTAX_CHAT` (see `CHAT_SYNTAX`).
- `spaces.messages.delete`: `DELETE /v1/{name=spaces/*/messages/*}`; 404 when it is gone.
- `spaces.messages.get`: `GET /v1/{name=spaces/*/messages/*}`.
- `spaces.get`: `GET /v1/{name=spaces/*}`.
- `spaces.messages.list`: `GET /v1/{parent=spaces/*}/messages` with `pageSize` (at most
  1000; 25 when not given), `pageToken` (the previous answer's `nextPageToken`; "all other
  parameters provided should match the call that provided the page token"), `filter`
  (`create_time > "2023-04-21T11:30:00-04:00"`: the field in snake case, the RFC 3339 time
  in double quotes, as the reference's examples write it; `thread.name =
  spaces/S/threads/T`, unquoted, for one thread; clauses joined by `AND`), `orderBy`
  (`createTime ASC`, the default: no `orderBy` is sent), `showDeleted` (false by default:
  a deleted message is not listed; with it, only its name, times and
  `deletionMetadata`). System messages (members joining) are not listed. It takes user
  authentication (`chat.messages.readonly`), or app authentication only as a Developer
  Preview with an administrator's approval (`chat.app.messages.readonly`): with the app's
  `chat.bot` token Google refuses it (403 PERMISSION_DENIED). hookhub lists as a user,
  through domain-wide delegation (`list_messages(..., as_user=)`, auth.py), for imports
  only. (developers.google.com/workspace/chat/api/reference/rest/v1/spaces.messages/list)
- `spaces.members.list`: `GET /v1/{parent=spaces/*}/members` with `pageSize` (at most 1000)
  and `pageToken`, as the app (`chat.bot`, in a space it is a member of;
  apps' memberships are left out). With app authentication a member's `displayName` is
  always given; with user authentication a User may carry only `name` and `type`, so an
  import names the senders by the app's member list
  (developers.google.com/workspace/chat/list-members and
  developers.google.com/workspace/chat/api/reference/rest/v1/User).

Errors are Google's envelope `{"error": {"code", "message", "status"}}` (AIP-193).
A 429 / RESOURCE_EXHAUSTED is `RateLimited`: Google asks for exponential backoff and sends
no `Retry-After` as a rule (developers.google.com/workspace/chat/limits); one it sends is
honoured, else the wait is `BACKOFF_SECONDS`, and the caller's own backoff goes on from there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import orjson

from shared.domain.oauth.provider import ProviderUnreachable
from shared.kernel.errors import HookhubError
from shared.providers.chat import PermanentError, RateLimited, TokenRejected
from shared.providers.googlechat.auth import CHAT_MESSAGES_READONLY, AccessTokens

# Message.text: up to 4,096 characters (the "Create a message" guide).
MAX_TEXT = 4096
# The first step of the exponential backoff Google asks for after a 429.
BACKOFF_SECONDS = 1.0
REPLY_OR_NEW_THREAD = "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"
# Chat's own markup (`*bold*`, `<url|label>`), said with every text written: an app made
# since Markdown became the default would otherwise read `*x*` as italic and no `<url|…>`
# as a link (Message.markupSyntax; developers.google.com/workspace/chat/format-messages).
CHAT_SYNTAX = "MARKUP_SYNTAX_CHAT"


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_page_token: str | None


def refusal(method: str, status: int, body: Any, retry_after: str | None = None) -> HookhubError:
    """The contract's error for one failed answer (`status` is the HTTP status)."""
    error = body.get("error") if isinstance(body, Mapping) else None
    error = error if isinstance(error, Mapping) else {}
    state = str(error.get("status") or "")
    text = str(error.get("message") or f"HTTP {status}")
    said = f"Google Chat refused {method}: {state or status} {text}".rstrip()
    if status == 429 or state == "RESOURCE_EXHAUSTED":
        wait = BACKOFF_SECONDS
        if retry_after is not None:
            try:
                wait = max(float(retry_after), 0.0)
            except ValueError:
                wait = BACKOFF_SECONDS
        return RateLimited(said, wait)
    if status >= 500 or state in ("UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED"):
        return ProviderUnreachable(said)
    if status == 401 or state == "UNAUTHENTICATED":
        return TokenRejected(said, "unauthenticated")
    if status == 404 or state == "NOT_FOUND":
        if method == "spaces.get":
            return PermanentError(said, "not_found", "channel")
        return PermanentError(said, "not_found", "message")
    if status == 403 or state == "PERMISSION_DENIED":
        return PermanentError(said, "permission_denied", "channel")
    return PermanentError(said, state.lower() or f"error_{status}", "message")


class GoogleChatApi:
    """`key` in each call is the service account key (JSON) of the integration: the access
    token is had from it (and kept) by `tokens`."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, tokens: AccessTokens) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self.tokens = tokens

    async def _call(
        self,
        key: str,
        method: str,
        verb: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        as_user: str | None = None,
    ) -> Any:
        """As the app (its `chat.bot` token), or as the user `as_user` names (a delegated
        `chat.messages.readonly` token)."""
        scopes = (CHAT_MESSAGES_READONLY,) if as_user else None
        # The address and the body made once, here (httpx's `params=` parses the address
        # again to merge them, and its `json=` encodes with the standard library).
        url = f"{self._base}/v1/{path}" + (
            f"?{urlencode(params, quote_via=quote)}" if params else ""
        )
        content = orjson.dumps(body) if body is not None else None
        for attempt in (1, 2):
            token = await self.tokens.token(key, as_user, scopes)
            headers = {"Authorization": f"Bearer {token}"}
            if content is not None:
                headers["Content-Type"] = "application/json"
            try:
                answer = await self._client.request(verb, url, content=content, headers=headers)
            except httpx.HTTPError as exc:
                raise ProviderUnreachable(
                    f"Google Chat is unreachable: {type(exc).__name__}"
                ) from exc
            if answer.status_code == 401:
                self.tokens.forget(key, as_user, scopes)
                # A delegated token is asked for again here, once: TokenKeeper's refresh
                # (TokenRejected) would hold the integration's own key refused.
                if as_user and attempt == 1:
                    continue
            break
        try:
            data = orjson.loads(answer.content) if answer.content else {}
        except orjson.JSONDecodeError:
            data = None
        if answer.status_code >= 400:
            error = refusal(method, answer.status_code, data, answer.headers.get("retry-after"))
            if as_user and isinstance(error, TokenRejected):
                raise PermanentError(error.message, error.error, "integration")
            raise error
        if not isinstance(data, dict):
            raise ProviderUnreachable(f"Google Chat answered {method} with an unexpected shape")
        return data

    async def get_space(self, key: str, space: str) -> dict[str, Any]:
        data: dict[str, Any] = await self._call(key, "spaces.get", "GET", _name(space, "spaces"))
        return data

    async def create_message(
        self,
        key: str,
        space: str,
        text: str,
        *,
        request_id: str | None = None,
        message_id: str | None = None,
        thread_name: str | None = None,
        thread_key: str | None = None,
        cards: list[dict[str, Any]] | None = None,
        private_viewer: str | None = None,
    ) -> dict[str, Any]:
        """`private_viewer` (`users/{id}`): a private message, "only visible to the
        specified user and the Chat app"; app authentication only, no attachments
        (https://developers.google.com/workspace/chat/private-messages, the Message
        resource's `privateMessageViewer`)."""
        params: dict[str, str] = {}
        body: dict[str, Any] = {"text": text, "markupSyntax": CHAT_SYNTAX}
        if cards:
            body["cardsV2"] = cards
        if private_viewer:
            body["privateMessageViewer"] = {"name": private_viewer}
        if request_id:
            params["requestId"] = request_id
        if message_id:
            params["messageId"] = message_id
        if thread_name or thread_key:
            params["messageReplyOption"] = REPLY_OR_NEW_THREAD
            body["thread"] = {"name": thread_name} if thread_name else {"threadKey": thread_key}
        data: dict[str, Any] = await self._call(
            key,
            "spaces.messages.create",
            "POST",
            _name(space, "spaces") + "/messages",
            params=params,
            body=body,
        )
        return data

    async def update_message(
        self, key: str, message: str, text: str, cards: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """The message's text; with `cards` (a list, [] for none) its `cardsV2` too."""
        body: dict[str, Any] = {"text": text, "markupSyntax": CHAT_SYNTAX}
        mask = "text"
        if cards is not None:
            body["cardsV2"] = cards
            mask = "text,cardsV2"
        data: dict[str, Any] = await self._call(
            key,
            "spaces.messages.patch",
            "PATCH",
            _name(message, "spaces"),
            params={"updateMask": mask},
            body=body,
        )
        return data

    async def delete_message(self, key: str, message: str) -> None:
        """A message already gone is no failure (404)."""
        try:
            await self._call(key, "spaces.messages.delete", "DELETE", _name(message, "spaces"))
        except PermanentError as exc:
            if exc.error != "not_found":
                raise

    async def get_message(self, key: str, message: str) -> dict[str, Any] | None:
        """The message, or None when there is none of that name."""
        try:
            data: dict[str, Any] = await self._call(
                key, "spaces.messages.get", "GET", _name(message, "spaces")
            )
        except PermanentError as exc:
            if exc.error == "not_found":
                return None
            raise
        return data

    async def list_messages(
        self,
        key: str,
        space: str,
        *,
        as_user: str | None = None,
        after: str | None = None,
        thread: str | None = None,
        page_size: int = 100,
        page_token: str | None = None,
    ) -> Page:
        """One page, oldest first; `after` an RFC 3339 time (`create_time > after`), `thread`
        a thread's name (`thread.name = spaces/S/threads/T`: that thread's messages);
        `as_user`: the user whose delegated token lists them (the app's own is refused)."""
        params = {"pageSize": str(min(max(page_size, 1), 1000))}
        clauses = [f'create_time > "{after}"'] if after else []
        if thread:
            clauses.append(f"thread.name = {thread}")
        if clauses:
            params["filter"] = " AND ".join(clauses)
        if page_token:
            params["pageToken"] = page_token
        return await self._page(key, space, "messages", params, as_user)

    async def list_members(self, key: str, space: str) -> list[dict[str, Any]]:
        """The space's memberships, as the app, every page of 1000."""
        memberships: list[dict[str, Any]] = []
        params = {"pageSize": "1000"}
        while True:
            page = await self._page(key, space, "members", params)
            memberships += page.items
            if page.next_page_token is None:
                return memberships
            params["pageToken"] = page.next_page_token

    async def _page(
        self,
        key: str,
        space: str,
        collection: str,
        params: Mapping[str, str],
        as_user: str | None = None,
    ) -> Page:
        """One page of `spaces.<collection>.list`: its items (`messages`, `memberships`)
        and `nextPageToken` (an empty list is `{}`)."""
        method = f"spaces.{collection}.list"
        path = _name(space, "spaces") + "/" + collection
        data = await self._call(key, method, "GET", path, params=params, as_user=as_user)
        items = data.get("memberships" if collection == "members" else collection) or []
        if not isinstance(items, list):
            raise ProviderUnreachable(f"Google Chat answered {method} oddly")
        token = data.get("nextPageToken")
        return Page([m for m in items if isinstance(m, dict)], str(token) if token else None)


def _name(name: str, collection: str) -> str:
    """A resource name as a path: `spaces/AAA/messages/BBB.CCC`, each segment escaped, and
    refused unless it is in `collection` (no `..` or other paths from a stored id)."""
    parts = name.split("/")
    if parts[0] != collection or len(parts) < 2 or any(not p or p in (".", "..") for p in parts):
        raise PermanentError(f"{name!r} is not a Google Chat resource name", "bad_name", "channel")
    return "/".join(quote(p, safe="") for p in parts)
