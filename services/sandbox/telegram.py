"""A fake Telegram Bot API on loopback, strict like the real one, over real HTTP.

Methods: `getMe`, `setWebhook`, `deleteWebhook`, `getChat`, `sendMessage`,
`editMessageText`, `deleteMessage`. Failures answer the real envelope
`{"ok": false, "error_code", "description", "parameters"?}` with the real descriptions:
401 `Unauthorized` for an unknown token, 404 `Not Found` for a malformed one or an unknown
method, 400 `Bad Request: chat not found`, 403 `Forbidden: bot was kicked from the group
chat` (and its kin), 429 `Too Many Requests: retry after N` with `parameters.retry_after`,
400 `Bad Request: group chat was upgraded to a supergroup chat` with
`parameters.migrate_to_chat_id`, `can't parse entities: ...` for HTML the API does not take,
`message is too long` past 4096 UTF-16 code units, `message is not modified`,
`message to edit/delete not found`, `message can't be deleted` after 48 hours.

Users' side: `user_sends`, `user_edits`, `channel_posts` build the real Update and POST it to
the webhook the bot set, with `X-Telegram-Bot-Api-Secret-Token`.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from shared.kernel.http.tls import tls

MAX_TEXT = 4096
DELETE_WINDOW_SECONDS = 48 * 3600
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
# Tag → entity type (HTML parse mode, Bot API "Formatting options").
_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_TAG = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z-]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*)\s*>"
)
_ATTR = re.compile(r"([a-zA-Z-]+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
_ENTITY = re.compile(r"&(#[0-9]+|#x[0-9a-fA-F]+|[a-zA-Z]+);")


class ParseError(ValueError):
    pass


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """(text, entities) of a message in HTML parse mode, or ParseError with the API's words."""
    out: list[str] = []
    entities: list[dict[str, Any]] = []
    stack: list[tuple[str, int, dict[str, Any]]] = []
    length = 0  # UTF-16 units written so far
    i = 0
    while i < len(source):
        char = source[i]
        offset = len(source[:i].encode())
        if char == "<":
            match = _TAG.match(source, i)
            if match is None:
                bad = re.match(r"</?([^\s>]*)", source[i:])
                raise ParseError(
                    f'Unsupported start tag "{bad.group(1) if bad else ""}" at byte offset {offset}'
                )
            closing, name, attrs = match.group(1) == "/", match.group(2).lower(), match.group(3)
            if not closing:
                if name not in _TAGS:
                    raise ParseError(f'Unsupported start tag "{name}" at byte offset {offset}')
                values = {m.group(1): m.group(2) or m.group(3) or "" for m in _ATTR.finditer(attrs)}
                if name == "span" and values.get("class") != "tg-spoiler":
                    raise ParseError(
                        f'Tag "span" must have class "tg-spoiler" at byte offset {offset}'
                    )
                extra: dict[str, Any] = {}
                if name == "a":
                    extra["url"] = values.get("href", "")
                stack.append((name, length, extra))
            else:
                if not stack:
                    raise ParseError(f"Unexpected end tag at byte offset {offset}")
                open_name, start, extra = stack.pop()
                if open_name != name:
                    raise ParseError(
                        f"Unmatched end tag at byte offset {offset}, "
                        f'expected "</{open_name}>", found "</{name}>"'
                    )
                if length > start:
                    entities.append(
                        {"offset": start, "length": length - start, "type": _TAGS[name], **extra}
                    )
            i = match.end()
            continue
        if char == "&":
            match = _ENTITY.match(source, i)
            if match is None:
                raise ParseError(f"Can't find end of the entity starting at byte offset {offset}")
            ref = match.group(1)
            if ref.startswith("#x"):
                decoded = chr(int(ref[2:], 16))
            elif ref.startswith("#"):
                decoded = chr(int(ref[1:]))
            elif ref in _NAMED_ENTITIES:
                decoded = _NAMED_ENTITIES[ref]
            else:
                raise ParseError(f'Unsupported HTML entity "&{ref};" at byte offset {offset}')
            out.append(decoded)
            length += utf16_len(decoded)
            i = match.end()
            continue
        out.append(char)
        length += utf16_len(char)
        i += 1
    if stack:
        raise ParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


@dataclass
class FakeChat:
    id: int
    type: str  # private, group, supergroup, channel
    title: str
    username: str | None = None
    member: bool = True
    kicked: bool = False
    migrated_to: int | None = None
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_message_id: int = 1
    last_write: float | None = None

    def as_chat(self) -> dict[str, Any]:
        chat: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.type == "private":
            chat["first_name"] = self.title
        else:
            chat["title"] = self.title
        if self.username:
            chat["username"] = self.username
        return chat

    def forbidden(self) -> str | None:
        """The 403 description when the bot cannot act in this chat, else None."""
        if self.type == "private":
            return "Forbidden: bot was blocked by the user" if self.kicked else None
        if self.kicked:
            return f"Forbidden: bot was kicked from the {self.type} chat"
        if not self.member:
            return f"Forbidden: bot is not a member of the {self.type} chat"
        return None


@dataclass
class _Rule:
    method: str | None
    chat_id: int | None
    times: int
    status: int = 429
    retry_after: int = 1


@dataclass
class FakeTelegram:
    bots: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    chats: dict[int, FakeChat] = field(default_factory=dict)
    # (token, method) of every call, and every call with its parameters.
    calls: list[tuple[str, str]] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    # The fake's clock (epoch seconds); None: the real time.
    now: float | None = None
    # Least seconds between two writes to one chat, enforced with 429s; None: not enforced.
    chat_interval: float | None = None
    next_update_id: int = 500_000_000
    # People the fake has seen (they wrote or pressed a button): a bot's message to one of
    # them who has no private chat with it (never started it) is refused, 403 "Forbidden:
    # bot can't initiate conversation with a user" (core.telegram.org/bots: "Bots can't
    # initiate conversations with users").
    people: set[int] = field(default_factory=set)
    _rules: list[_Rule] = field(default_factory=list)

    # -- set-up ----------------------------------------------------------------------------

    def add_bot(self, token: str, bot_id: int, username: str) -> None:
        self.bots[token] = {
            "id": bot_id,
            "is_bot": True,
            "first_name": username,
            "username": username,
        }

    def add_chat(
        self, id: int, type: str, title: str, member: bool = True, username: str | None = None
    ) -> FakeChat:
        chat = FakeChat(id=id, type=type, title=title, username=username, member=member)
        self.chats[id] = chat
        return chat

    def start_bot(self, user: dict[str, Any]) -> FakeChat:
        """`user` opens the bot and presses Start: their private chat with it, which the
        bot may write to from then on."""
        self.people.add(int(user["id"]))
        chat = self.chats.get(int(user["id"]))
        return chat or self.add_chat(int(user["id"]), "private", str(user.get("first_name", "")))

    def kick(self, chat_id: int) -> None:
        """The bot is removed from the chat (blocked, for a private one): 403 afterwards."""
        self.chats[chat_id].kicked = True

    def migrate(self, chat_id: int, new_id: int) -> FakeChat:
        """The group became a supergroup with a new id; the old id answers 400 with
        `migrate_to_chat_id` from now on."""
        old = self.chats[chat_id]
        old.migrated_to = new_id
        return self.add_chat(new_id, "supergroup", old.title)

    def rate_limit(
        self,
        method: str | None = None,
        chat_id: int | None = None,
        retry_after: int = 1,
        times: int = 1,
    ) -> None:
        """The next `times` matching calls answer 429 with `retry_after`."""
        self._rules.append(_Rule(method, chat_id, times, 429, retry_after))

    def fail(self, method: str | None = None, status: int = 502, times: int = 1) -> None:
        """The next `times` matching calls answer `status` with nginx's HTML page."""
        self._rules.append(_Rule(method, None, times, status))

    def clock(self) -> float:
        return self.now if self.now is not None else time.time()

    def advance(self, seconds: float) -> None:
        self.now = self.clock() + seconds

    def message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        return self.chats[chat_id].messages.get(message_id)

    def sent(self, method: str = "sendMessage") -> list[dict[str, Any]]:
        """Parameters of every call of `method`, in order."""
        return [params for _, name, params in self.requests if name == method]

    # -- the users' side: updates to the webhook -------------------------------------------

    async def user_sends(
        self,
        chat_id: int,
        user: dict[str, Any],
        text: str | None,
        reply_to: int | None = None,
        *,
        token: str | None = None,
        **fields: Any,
    ) -> int:
        """A person writes in the chat: the `message` Update goes to the bot's webhook.
        `fields` are further Message fields (`photo`, `caption`, `new_chat_members`...)."""
        chat = self.chats[chat_id]
        self.people.add(int(user["id"]))
        message = self._store(chat, {"from": {"is_bot": False, **user}}, text, reply_to, fields)
        return await self._deliver(token, "message", message)

    async def user_commands(
        self,
        chat_id: int,
        user: dict[str, Any],
        command: str,
        words: str = "",
        *,
        bot: str | None = None,
        token: str | None = None,
        secret_token: str | None = None,
    ) -> int:
        """A person sends a bot command, `/command[@bot] words`: a message whose text opens
        with it, marked by a `bot_command` entity at offset 0 (core.telegram.org/bots/api#
        messageentity; its length in UTF-16 code units), sent to the bot's webhook (with
        `secret_token` in place of the webhook's: a forgery)."""
        word = f"/{command}" + (f"@{bot}" if bot else "")
        entity = {"type": "bot_command", "offset": 0, "length": len(word.encode("utf-16-le")) // 2}
        fields = {"entities": [entity]}
        chat = self.chats[chat_id]
        text = f"{word} {words}".strip()
        message = self._store(chat, {"from": {"is_bot": False, **user}}, text, None, fields)
        status, _ = await self._send_update(token, "message", message, secret_token)
        return status

    async def user_edits(
        self, chat_id: int, message_id: int, text: str, *, token: str | None = None
    ) -> int:
        """The author edits a message: `edited_message` (`edited_channel_post` in a channel)."""
        chat = self.chats[chat_id]
        message = chat.messages[message_id]
        message["text"] = text
        message["edit_date"] = int(self.clock())
        kind = "edited_channel_post" if chat.type == "channel" else "edited_message"
        return await self._deliver(token, kind, dict(message))

    async def channel_posts(
        self,
        chat_id: int,
        text: str | None,
        reply_to: int | None = None,
        *,
        signature: str | None = None,
        token: str | None = None,
        **fields: Any,
    ) -> int:
        """A post in a channel: sent as the channel (`sender_chat`), no `from`."""
        chat = self.chats[chat_id]
        head: dict[str, Any] = {"sender_chat": chat.as_chat()}
        if signature:
            head["author_signature"] = signature
        message = self._store(chat, head, text, reply_to, fields)
        return await self._deliver(token, "channel_post", message)

    def _store(
        self,
        chat: FakeChat,
        head: dict[str, Any],
        text: str | None,
        reply_to: int | None,
        fields: dict[str, Any],
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": chat.next_message_id,
            **head,
            "chat": chat.as_chat(),
            "date": int(self.clock()),
        }
        chat.next_message_id += 1
        if text is not None:
            message["text"] = text
        if reply_to is not None:
            message["reply_to_message"] = _without_reply(chat.messages[reply_to])
        message.update(fields)
        chat.messages[message["message_id"]] = message
        return dict(message)

    def buttons(self, chat_id: int, message_id: int) -> list[dict[str, Any]]:
        """The buttons of a message's inline keyboard, row by row."""
        markup = self.chats[chat_id].messages[message_id].get("reply_markup") or {}
        return [button for row in markup.get("inline_keyboard") or [] for button in row]

    async def press(
        self,
        chat_id: int,
        message_id: int,
        data: str,
        user: dict[str, Any],
        *,
        token: str | None = None,
        secret_token: str | None = None,
    ) -> tuple[int, Any]:
        """A person presses an inline keyboard's button: the `callback_query` Update
        (core.telegram.org/bots/api#callbackquery: `id`, `from`, `message`,
        `chat_instance`, `data`) goes to the bot's webhook, with `secret_token` in place of
        the webhook's when given (a forgery). The webhook's status and answer."""
        message = self.chats[chat_id].messages[message_id]
        self.people.add(int(user["id"]))
        [button] = [b for b in self.buttons(chat_id, message_id) if b["callback_data"] == data]
        query = {
            "id": str(secrets.randbits(63)),
            "from": {"is_bot": False, **user},
            "message": _public(message),
            "chat_instance": str(-abs(chat_id) * 7),
            "data": button["callback_data"],
        }
        return await self._send_update(token, "callback_query", query, secret_token)

    async def _deliver(self, token: str | None, kind: str, message: dict[str, Any]) -> int:
        status, _ = await self._send_update(token, kind, message)
        return status

    async def _send_update(
        self,
        token: str | None,
        kind: str,
        message: dict[str, Any],
        secret_token: str | None = None,
    ) -> tuple[int, Any]:
        if token is None:
            if len(self.webhooks) != 1:
                raise AssertionError(f"say which bot's webhook: {sorted(self.webhooks)}")
            token = next(iter(self.webhooks))
        hook = self.webhooks.get(token)
        if hook is None:  # the bot has no webhook (yet): the update waits for nobody
            return 0, None
        update = {"update_id": self.next_update_id, kind: message}
        self.next_update_id += 1
        headers = {}
        if secret_token or hook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret_token or hook["secret_token"]
        async with httpx.AsyncClient(verify=tls(), timeout=15.0) as client:
            answer = await client.post(hook["url"], json=update, headers=headers)
        try:
            return answer.status_code, answer.json()
        except ValueError:
            return answer.status_code, answer.text

    # -- the Bot API -----------------------------------------------------------------------

    def app(self) -> Starlette:
        async def method(request: Request) -> Response:
            token, name = request.path_params["token"], request.path_params["method"]
            self.calls.append((token, name))
            try:
                params: dict[str, Any] = await request.json() if await request.body() else {}
            except ValueError:
                params = {}
            self.requests.append((token, name, params))
            if ":" not in token:
                return _refuse(404, "Not Found")
            if token not in self.bots:
                return _refuse(401, "Unauthorized")
            ruled = self._ruled(name, params)
            if ruled is not None:
                return ruled
            handler = self._methods().get(name)
            if handler is None:
                return _refuse(404, "Not Found")
            return handler(token, params)

        async def healthz(_: Request) -> JSONResponse:
            return JSONResponse({"ok": True})

        return Starlette(
            routes=[
                Route("/healthz", healthz),
                Route("/bot{token}/{method}", method, methods=["GET", "POST"]),
            ]
        )

    def _methods(self) -> dict[str, Callable[[str, dict[str, Any]], Response]]:
        return {
            "getMe": self._get_me,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getChat": self._get_chat,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "deleteMessage": self._delete_message,
        }

    def _ruled(self, name: str, params: dict[str, Any]) -> Response | None:
        for rule in self._rules:
            if rule.times <= 0 or rule.method not in (None, name):
                continue
            if rule.chat_id is not None and params.get("chat_id") != rule.chat_id:
                continue
            rule.times -= 1
            if rule.status == 429:
                return _too_many(rule.retry_after)
            return PlainTextResponse(
                f"<html><body><h1>{rule.status}</h1>nginx</body></html>",
                rule.status,
                media_type="text/html",
            )
        return None

    def _get_me(self, token: str, params: dict[str, Any]) -> Response:
        return _ok(self.bots[token])

    def _set_webhook(self, token: str, params: dict[str, Any]) -> Response:
        url = str(params.get("url", ""))
        if not url.startswith(("https://", "http://")):
            return _refuse(400, "Bad Request: bad webhook")
        self.webhooks[token] = params
        return JSONResponse({"ok": True, "result": True, "description": "Webhook was set"})

    def _delete_webhook(self, token: str, params: dict[str, Any]) -> Response:
        self.webhooks.pop(token, None)
        return _ok(True)

    def _chat(self, params: dict[str, Any]) -> FakeChat | Response:
        """The chat a call names, or the refusal the API gives for it."""
        raw = params.get("chat_id")
        if raw is None or raw == "":
            return _refuse(400, "Bad Request: chat_id is empty")
        chat: FakeChat | None = None
        if isinstance(raw, str) and raw.startswith("@"):
            chat = next((c for c in self.chats.values() if f"@{c.username}" == raw), None)
        else:
            try:
                chat = self.chats.get(int(raw))
            except (TypeError, ValueError):
                chat = None
        if chat is None:
            person = str(raw).isdigit() and int(raw) in self.people
            if person:  # someone the bot has no private chat with
                return _refuse(403, "Forbidden: bot can't initiate conversation with a user")
            return _refuse(400, "Bad Request: chat not found")
        if chat.migrated_to is not None:
            return _refuse(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": chat.migrated_to},
            )
        forbidden = chat.forbidden()
        if forbidden:
            return _refuse(403, forbidden)
        return chat

    def _write(self, params: dict[str, Any]) -> FakeChat | Response:
        """The chat of a write, with the per-chat pace enforced when asked to."""
        chat = self._chat(params)
        if isinstance(chat, Response):
            return chat
        now = self.clock()
        if self.chat_interval is not None and chat.last_write is not None:
            wait = chat.last_write + self.chat_interval - now
            if wait > 0:
                return _too_many(max(1, math.ceil(wait)))
        chat.last_write = now
        return chat

    def _text(self, params: dict[str, Any]) -> tuple[str, list[dict[str, Any]]] | Response:
        source = params.get("text")
        if not isinstance(source, str) or not source.strip():
            return _refuse(400, "Bad Request: message text is empty")
        mode = params.get("parse_mode")
        entities: list[dict[str, Any]] = []
        if mode in (None, ""):
            text = source
        elif str(mode).lower() == "html":
            try:
                text, entities = parse_html(source)
            except ParseError as exc:
                return _refuse(400, f"Bad Request: can't parse entities: {exc}")
        else:
            return _refuse(400, "Bad Request: unsupported parse_mode")
        if not text.strip():
            return _refuse(400, "Bad Request: message text is empty")
        if utf16_len(text) > MAX_TEXT:
            return _refuse(400, "Bad Request: message is too long")
        return text, entities

    def _message_id(self, params: dict[str, Any]) -> int | Response:
        raw = params.get("message_id")
        if type(raw) is not int:
            if isinstance(raw, str) and raw.isdigit():
                return int(raw)
            return _refuse(400, "Bad Request: message identifier is not specified")
        return raw

    def _get_chat(self, token: str, params: dict[str, Any]) -> Response:
        chat = self._chat(params)
        if isinstance(chat, Response):
            return chat
        return _ok({**chat.as_chat(), "accent_color_id": 0, "max_reaction_count": 11})

    def _send_message(self, token: str, params: dict[str, Any]) -> Response:
        chat = self._write(params)
        if isinstance(chat, Response):
            return chat
        parsed = self._text(params)
        if isinstance(parsed, Response):
            return parsed
        text, entities = parsed
        reply: dict[str, Any] | None = None
        reply_parameters = params.get("reply_parameters")
        if reply_parameters is not None:
            if (
                not isinstance(reply_parameters, dict)
                or type(reply_parameters.get("message_id")) is not int
            ):
                return _refuse(400, "Bad Request: can't parse reply parameters JSON object")
            reply = chat.messages.get(reply_parameters["message_id"])
            if reply is None and not reply_parameters.get("allow_sending_without_reply"):
                return _refuse(400, "Bad Request: message to be replied not found")
        head: dict[str, Any] = (
            {"sender_chat": chat.as_chat()}
            if chat.type == "channel"
            else {"from": self._bot_user(token)}
        )
        message = self._store(chat, head, text, None, {})
        stored = chat.messages[message["message_id"]]
        stored["_sent_by"] = token
        if entities:
            stored["entities"] = entities
        if reply is not None:
            stored["reply_to_message"] = _without_reply(reply)
        markup = _keyboard(params)
        if isinstance(markup, Response):
            return markup
        if markup and markup["inline_keyboard"]:
            stored["reply_markup"] = markup
        return _ok(_public(stored))

    def _edit_message_text(self, token: str, params: dict[str, Any]) -> Response:
        chat = self._write(params)
        if isinstance(chat, Response):
            return chat
        message_id = self._message_id(params)
        if isinstance(message_id, Response):
            return message_id
        message = chat.messages.get(message_id)
        if message is None:
            return _refuse(400, "Bad Request: message to edit not found")
        if message.get("_sent_by") != token:
            return _refuse(400, "Bad Request: message can't be edited")
        parsed = self._text(params)
        if isinstance(parsed, Response):
            return parsed
        text, entities = parsed
        markup = _keyboard(params)
        if isinstance(markup, Response):
            return markup
        if (
            text == message.get("text")
            and entities == message.get("entities", [])
            and (markup or None) == message.get("reply_markup")
        ):
            return _refuse(400, NOT_MODIFIED)
        # editMessageText's `reply_markup`: the inline keyboard now; without one, none.
        if markup and markup["inline_keyboard"]:
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        message["text"] = text
        message["edit_date"] = int(self.clock())
        if entities:
            message["entities"] = entities
        else:
            message.pop("entities", None)
        return _ok(_public(message))

    def _delete_message(self, token: str, params: dict[str, Any]) -> Response:
        chat = self._write(params)
        if isinstance(chat, Response):
            return chat
        message_id = self._message_id(params)
        if isinstance(message_id, Response):
            return message_id
        message = chat.messages.get(message_id)
        if message is None:
            return _refuse(400, "Bad Request: message to delete not found")
        if self.clock() - message["date"] >= DELETE_WINDOW_SECONDS:
            return _refuse(400, "Bad Request: message can't be deleted")
        del chat.messages[message_id]
        return _ok(True)

    def _bot_user(self, token: str) -> dict[str, Any]:
        bot = self.bots[token]
        return {k: bot[k] for k in ("id", "is_bot", "first_name", "username")}


def _keyboard(params: dict[str, Any]) -> dict[str, Any] | Response | None:
    """A call's `reply_markup` as an inline keyboard (a JSON string in a form), checked as
    Telegram checks it: rows of buttons, each with `text` and 1-64 bytes of
    `callback_data`."""
    markup = params.get("reply_markup")
    if isinstance(markup, str):
        try:
            markup = json.loads(markup)
        except ValueError:
            return _refuse(400, "Bad Request: can't parse reply keyboard markup JSON object")
    if markup is None:
        return None
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        return _refuse(400, "Bad Request: can't parse inline keyboard button")
    for button in (b for row in rows for b in row):
        data = button.get("callback_data") if isinstance(button, dict) else None
        if not isinstance(data, str) or not 1 <= len(data.encode()) <= 64:
            return _refuse(400, "Bad Request: BUTTON_DATA_INVALID")
        if not isinstance(button.get("text"), str) or not button["text"]:
            return _refuse(400, "Bad Request: text buttons are unallowed in the inline keyboard")
    return {"inline_keyboard": rows}


def _public(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if not k.startswith("_")}


def _without_reply(message: dict[str, Any]) -> dict[str, Any]:
    # A Message's reply_to_message does not itself carry reply_to_message.
    return {k: v for k, v in _public(message).items() if k != "reply_to_message"}


def _ok(result: Any) -> JSONResponse:
    return JSONResponse({"ok": True, "result": result})


def _refuse(code: int, description: str, parameters: dict[str, Any] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return JSONResponse(body, code)


def _too_many(retry_after: int) -> JSONResponse:
    return _refuse(
        429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
    )
