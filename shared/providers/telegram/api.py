"""The Telegram Bot API calls hookhub makes, and the one place its refusals are sorted into
the chat contract's errors (shared.providers.chat).

Every failed call answers `{"ok": false, "error_code", "description", "parameters"?}`; the
description is the precise part (`Forbidden: bot was kicked from the group chat`), and
`parameters` carries `retry_after` (flood control) or `migrate_to_chat_id` (the group became
a supergroup). The oauth service's calls (`get_me`, `set_webhook`, `delete_webhook`) keep
raising `TelegramRefused`, which it answers as 422.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from shared.domain.oauth.provider import ProviderUnreachable
from shared.kernel.errors import HookhubError, Invalid
from shared.providers.chat import PermanentError, RateLimited, TokenRejected

# Longest text of a message, in UTF-16 code units after entities are parsed (sendMessage).
MAX_TEXT = 4096
_RETRY_AFTER = re.compile(r"retry after (\d+)", re.IGNORECASE)

# 403 descriptions: the bot cannot reach the chat any more. Matched on the lowered text.
_FORBIDDEN = (
    ("bot was kicked", "bot_kicked"),
    ("not a member", "bot_not_member"),
    ("blocked by the user", "bot_blocked"),
    ("user is deactivated", "user_deactivated"),
)
# 400 descriptions about the chat (the mapping is broken), then about one message.
_CHAT_400 = (
    ("chat not found", "chat_not_found"),
    ("upgraded to a supergroup", "chat_migrated"),
    ("have no rights to send", "no_rights"),
    ("not enough rights", "no_rights"),
    ("chat_write_forbidden", "no_rights"),
    ("channel_private", "chat_not_found"),
)
_MESSAGE_400 = (
    ("message is not modified", "message_not_modified"),
    ("message to edit not found", "message_not_found"),
    ("message to delete not found", "message_not_found"),
    ("message can't be edited", "message_cant_be_edited"),
    ("message can't be deleted", "message_cant_be_deleted"),
    ("message is too long", "msg_too_long"),
    ("message text is empty", "message_empty"),
    ("can't parse entities", "cant_parse_entities"),
    ("message to be replied not found", "reply_not_found"),
    ("reply message not found", "reply_not_found"),
)


class TelegramRefused(Invalid):
    """Telegram answered `ok: false`; its description says why (bad token, not HTTPS...)."""

    code = "telegram_refused"


@dataclass(frozen=True)
class Bot:
    id: int
    username: str
    first_name: str = ""


def refusal(method: str, status: int, body: Mapping[str, Any]) -> HookhubError:
    """The contract's error for one `ok: false` answer (`status` is the HTTP status).

    429 or `retry_after` → RateLimited; 401 → TokenRejected; a migrated group → channel
    `chat_migrated` naming the new id; 403 → channel (`bot_kicked`, `bot_not_member`,
    `bot_blocked`); 400 about the chat → channel, about the message → message. The callers
    decide what is no failure for them (`message_not_modified` on an edit,
    `message_not_found` on a delete)."""
    code = body.get("error_code")
    code = code if isinstance(code, int) else status
    description = str(body.get("description") or f"error {code}")
    parameters = body.get("parameters")
    parameters = parameters if isinstance(parameters, Mapping) else {}
    lowered = description.lower()
    said = f"Telegram refused {method}: {description}"

    retry_after = parameters.get("retry_after")
    if code == 429 or isinstance(retry_after, int | float):
        if not isinstance(retry_after, int | float):
            # Without parameters, the description still says it: "retry after 34".
            found = _RETRY_AFTER.search(description)
            retry_after = int(found.group(1)) if found else 1
        return RateLimited(said, max(float(retry_after), 0.0))
    migrate_to = parameters.get("migrate_to_chat_id")
    if isinstance(migrate_to, int):
        return PermanentError(
            f"{said}; the group became a supergroup, its new chat id is {migrate_to}",
            "chat_migrated",
            "channel",
        )
    if code == 401:
        return TokenRejected(said, "unauthorized")
    if code == 404:
        # The token is part of the URL: a malformed one answers 404, not 401.
        return PermanentError(said, "bot_not_found", "integration")
    if code == 403:
        error = next((e for text, e in _FORBIDDEN if text in lowered), "forbidden")
        return PermanentError(said, error, "channel")
    for text, error in _CHAT_400:
        if text in lowered:
            return PermanentError(said, error, "channel")
    for text, error in _MESSAGE_400:
        if text in lowered:
            return PermanentError(said, error, "message")
    return PermanentError(said, "bad_request" if code == 400 else f"error_{code}", "message")


def chat_ref(chat_id: str | int) -> int | str:
    """A chat id as the Bot API takes it: the number, or `@channelusername` as it is."""
    if isinstance(chat_id, int):
        return chat_id
    try:
        return int(chat_id)
    except ValueError:
        return chat_id


class TelegramApi:
    def __init__(self, client: httpx.AsyncClient, base_url: str) -> None:
        self._client = client
        self._base = base_url.rstrip("/")

    async def _call(self, token: str, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """The call's `result`; a refusal raised as the contract's error (see `refusal`)."""
        try:
            answer = await self._client.post(
                f"{self._base}/bot{token}/{method}", json=dict(params or {})
            )
        except httpx.HTTPError as exc:
            raise ProviderUnreachable(f"Telegram is unreachable: {type(exc).__name__}") from exc
        if answer.status_code >= 500:
            raise ProviderUnreachable(f"Telegram answered {answer.status_code} to {method}")
        try:
            data = answer.json()
        except ValueError as exc:
            raise ProviderUnreachable(
                f"Telegram answered {answer.status_code} without JSON"
            ) from exc
        if not isinstance(data, dict):
            raise ProviderUnreachable(f"Telegram answered {method} with an unexpected shape")
        if not data.get("ok"):
            raise refusal(method, answer.status_code, data)
        return data.get("result")

    async def _setup_call(
        self, token: str, method: str, params: Mapping[str, Any] | None = None
    ) -> Any:
        """For the oauth service: any refusal is `TelegramRefused` (answered 422)."""
        try:
            return await self._call(token, method, params)
        except (PermanentError, RateLimited) as exc:
            raise TelegramRefused(exc.message) from exc

    # -- the oauth service's calls --------------------------------------------------------

    async def get_me(self, token: str) -> Bot:
        return _bot(await self._setup_call(token, "getMe"))

    async def set_webhook(self, token: str, url: str, secret_token: str) -> None:
        await self._setup_call(token, "setWebhook", {"url": url, "secret_token": secret_token})

    async def delete_webhook(self, token: str) -> None:
        await self._setup_call(token, "deleteWebhook")

    # -- sync's calls: refusals as the chat contract's errors ------------------------------

    async def me(self, token: str) -> Bot:
        """getMe, refused as TokenRejected (401) rather than TelegramRefused."""
        return _bot(await self._call(token, "getMe"))

    async def get_chat(self, token: str, chat_id: str | int) -> dict[str, Any]:
        return _object(
            await self._call(token, "getChat", {"chat_id": chat_ref(chat_id)}), "getChat"
        )

    async def send_message(
        self,
        token: str,
        chat_id: str | int,
        text: str,
        *,
        parse_mode: str | None = None,
        reply_to: int | None = None,
        reply_markup: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The sent Message. `reply_to`: a message of this chat; the message is still sent
        if that one is gone (`allow_sending_without_reply`). `reply_markup`: an inline
        keyboard."""
        params: dict[str, Any] = {"chat_id": chat_ref(chat_id), "text": text}
        if parse_mode:
            params["parse_mode"] = parse_mode
        if reply_markup is not None:
            params["reply_markup"] = reply_markup
        if reply_to is not None:
            params["reply_parameters"] = {
                "message_id": reply_to,
                "allow_sending_without_reply": True,
            }
        return _object(await self._call(token, "sendMessage", params), "sendMessage")

    async def edit_message_text(
        self,
        token: str,
        chat_id: str | int,
        message_id: int,
        text: str,
        *,
        parse_mode: str | None = None,
        reply_markup: Mapping[str, Any] | None = None,
    ) -> None:
        """An edit to the text it already has is no failure (`message is not modified`).
        `reply_markup`: the message's inline keyboard now (an empty one removes it)."""
        params: dict[str, Any] = {
            "chat_id": chat_ref(chat_id),
            "message_id": message_id,
            "text": text,
        }
        if parse_mode:
            params["parse_mode"] = parse_mode
        if reply_markup is not None:
            params["reply_markup"] = reply_markup
        try:
            await self._call(token, "editMessageText", params)
        except PermanentError as exc:
            if exc.error != "message_not_modified":
                raise

    async def delete_message(self, token: str, chat_id: str | int, message_id: int) -> None:
        """A message already gone is no failure (`message to delete not found`)."""
        params = {"chat_id": chat_ref(chat_id), "message_id": message_id}
        try:
            await self._call(token, "deleteMessage", params)
        except PermanentError as exc:
            if exc.error != "message_not_found":
                raise


def _object(result: Any, method: str) -> dict[str, Any]:
    if not isinstance(result, dict):
        raise ProviderUnreachable(f"Telegram answered {method} with an unexpected shape")
    return result


def _bot(result: Any) -> Bot:
    try:
        return Bot(
            id=int(result["id"]),
            username=str(result.get("username", "")),
            first_name=str(result.get("first_name", "")),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise HookhubError("Telegram getMe answered an unexpected shape") from exc
