"""Telegram as a chat provider for sync (shared.providers.chat): Bot API updates become
message changes, and chat messages are posted to a chat in HTML parse mode.

What Telegram does not give a bot, and what follows from it:
- no history method: `find_post` cannot look for a post after a crash (None);
- no update when a message is deleted: a deletion in Telegram is never bridged;
- no update for the bot's own messages: `is_own` matters only for `via_bot` messages;
- file and avatar URLs carry the bot token (`https://api.telegram.org/file/bot<token>/...`):
  none is ever put in a message; media are named in the text (`[photo]`) instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from shared.providers import markup
from shared.providers.chat import (
    Author,
    BotIdentity,
    CardAction,
    ChannelInfo,
    Click,
    Invocation,
    MessageChange,
    OutboundPost,
    PermanentError,
    Posted,
    PrivateReply,
    SenderMarks,
    TokenRejected,
    UserLookup,
    cut,
    utf16_units,
)
from shared.providers.telegram.api import MAX_TEXT, TelegramApi, chat_ref

# Update kinds that carry a message, and what happened to it.
_KINDS: dict[str, Literal["created", "edited"]] = {
    "message": "created",
    "channel_post": "created",
    "edited_message": "edited",
    "edited_channel_post": "edited",
}
# Message fields that make it a service message (a join, a pin, a title change...).
_SERVICE = (
    "new_chat_members",
    "left_chat_member",
    "new_chat_title",
    "new_chat_photo",
    "delete_chat_photo",
    "group_chat_created",
    "supergroup_chat_created",
    "channel_chat_created",
    "message_auto_delete_timer_changed",
    "migrate_to_chat_id",
    "migrate_from_chat_id",
    "pinned_message",
    "forum_topic_created",
    "forum_topic_edited",
    "forum_topic_closed",
    "forum_topic_reopened",
    "general_forum_topic_hidden",
    "general_forum_topic_unhidden",
    "video_chat_scheduled",
    "video_chat_started",
    "video_chat_ended",
    "video_chat_participants_invited",
    "write_access_allowed",
    "users_shared",
    "chat_shared",
    "proximity_alert_triggered",
    "boost_added",
    "chat_background_set",
    "giveaway_created",
    "giveaway_completed",
    "successful_payment",
    "refunded_payment",
    "connected_website",
)
# Media a message may carry, named in its text instead of linked (the URL holds the token).
_MEDIA = (
    "photo",
    "video",
    "animation",
    "audio",
    "document",
    "voice",
    "video_note",
    "sticker",
    "location",
    "venue",
    "contact",
    "poll",
    "dice",
    "story",
    "game",
    "invoice",
)
# Room kept for the author's name: Telegram's own first + last name are 64 each.
_MAX_AUTHOR = 128


class TelegramChat:
    """The chat contract over the Bot API. Telegram identifies everything by number: a
    chat id (negative for groups and channels), a message id unique within its chat."""

    name = "telegram"
    # A bot's message in a group is everyone's: nothing is said to one member alone.
    private_answers = False

    def __init__(self, api: TelegramApi) -> None:
        self._api = api

    # -- writing -----------------------------------------------------------------------------

    def pace_seconds(self, external_channel_id: str) -> float:
        """One message a second in a private chat; at most 20 a minute in a group, and the
        same is assumed for a channel (its ids are negative too, and `@name` is a channel)."""
        ref = chat_ref(external_channel_id)
        return 1.0 if isinstance(ref, int) and ref > 0 else 3.0

    async def identity(self, token: str) -> BotIdentity:
        bot = await self._api.me(token)
        return BotIdentity(user_id=str(bot.id), name=bot.username or bot.first_name)

    async def channel(self, token: str, external_channel_id: str) -> ChannelInfo:
        chat = await self._api.get_chat(token, external_channel_id)
        name = chat.get("title") or chat.get("username") or _person(chat) or str(chat["id"])
        return ChannelInfo(id=str(chat["id"]), name=str(name))

    async def post(self, token: str, external_channel_id: str, post: OutboundPost) -> Posted:
        reply_to = _message_id(post.thread_external_id) if post.thread_external_id else None
        sent = await self._api.send_message(
            token,
            external_channel_id,
            format_post(post),
            parse_mode="HTML",
            reply_to=reply_to,
            reply_markup=keyboard(post.actions) if post.actions else None,
        )
        root = sent.get("reply_to_message")
        thread = str(root["message_id"]) if isinstance(root, dict) else None
        return Posted(external_message_id=str(sent["message_id"]), external_thread_id=thread)

    async def edit(
        self, token: str, external_channel_id: str, external_message_id: str, post: OutboundPost
    ) -> None:
        await self._api.edit_message_text(
            token,
            external_channel_id,
            _message_id(external_message_id),
            format_post(post),
            parse_mode="HTML",
            # A card: its buttons now (an empty keyboard: none left).
            reply_markup=None if post.actions is None else keyboard(post.actions),
        )

    async def reply_privately(self, token: str, reply: PrivateReply) -> bool:
        """A group shows every message to everyone, and the click's own answer
        (`answerCallbackQuery`, sent in the webhook's answer at once) is a short notice
        without a link: what is for the user alone goes to their private chat with the bot
        (`sendMessage` to their user id, https://core.telegram.org/bots/api#sendmessage).
        "Bots can't initiate conversations with users" (https://core.telegram.org/bots, How
        are bots different from users?): a user who never started the bot is refused (403),
        which is False."""
        text = markup.render(cut(reply.text, MAX_TEXT), TELEGRAM_MARKUP)
        try:
            await self._api.send_message(token, reply.user_id, text, parse_mode="HTML")
        except TokenRejected:
            raise
        except PermanentError:
            return False
        return True

    async def delete(self, token: str, external_channel_id: str, external_message_id: str) -> None:
        """Telegram refuses past 48 hours (`message_cant_be_deleted`, scope message)."""
        await self._api.delete_message(token, external_channel_id, _message_id(external_message_id))

    # -- reading -----------------------------------------------------------------------------

    async def user(self, token: str, external_user_id: str) -> Author | None:
        """None: every Telegram update names its author itself (`from`), and a user's
        photo could only be linked through a URL that carries the bot token."""
        return None

    async def find_post(
        self,
        token: str,
        external_channel_id: str,
        tag: str,
        since: datetime,
        thread_external_id: str | None = None,
    ) -> Posted | None:
        return None  # the Bot API has no way to read a chat's history

    async def history(
        self, token: str, external_channel_id: str, since: datetime, limit: int
    ) -> list[MessageChange]:
        """None to read: the Bot API has no history. Telegram keeps the updates it could not
        deliver to the webhook for 24 hours and delivers them again."""
        return []

    def changes(self, event_type: str, payload: Mapping[str, Any]) -> list[MessageChange]:
        kind = _KINDS.get(event_type)
        message = payload.get(event_type)
        if kind is None or not isinstance(message, Mapping):
            return []
        chat = message.get("chat")
        if (
            not isinstance(chat, Mapping)
            or type(chat.get("id")) is not int
            or type(message.get("message_id")) is not int
        ):
            return []  # not a Message the Bot API would send; nothing to bridge
        stamp = message.get("edit_date") if kind == "edited" else message.get("date")
        text, subtype = _text(message)
        service = next((key for key in _SERVICE if key in message), None)
        ignored = None
        if service is not None:
            ignored, subtype = f"Telegram service message ({service})", service
        elif _command(message) is not None:
            ignored, subtype = "hookhub's command (run, not bridged)", "bot_command"
        elif not text:
            ignored = "the message carries nothing that can be bridged"
        return [
            MessageChange(
                kind=kind,
                external_channel_id=str(chat["id"]),
                external_message_id=str(message["message_id"]),
                occurred_at=_moment(stamp),
                text=text,
                external_thread_id=_thread(message),
                author=_author(message),
                sender=_sender(message),
                subtype=subtype,
                ignored=ignored,
            )
        ]

    def clicks(self, event_type: str, payload: Mapping[str, Any]) -> list[Click]:
        """A `callback_query` update of one of our inline keyboards' buttons (its
        `callback_data` ours): the query's `id`, the message it is on, who pressed it
        (core.telegram.org/bots/api#callbackquery)."""
        if event_type != "callback_query":
            return []
        query = payload.get("callback_query")
        if not isinstance(query, Mapping):
            return []
        data, message, sender = query.get("data"), query.get("message"), query.get("from")
        if not isinstance(data, str) or not data.startswith(CALLBACK_DATA):
            return []
        if not isinstance(message, Mapping) or not isinstance(sender, Mapping):
            return []
        chat = message.get("chat")
        chat_id = chat.get("id") if isinstance(chat, Mapping) else None
        message_id, user_id, query_id = message.get("message_id"), sender.get("id"), query.get("id")
        if chat_id is None or message_id is None or user_id is None or not query_id:
            return []
        return [
            Click(
                interaction_id=str(query_id),
                external_channel_id=str(chat_id),
                external_message_id=str(message_id),
                action_id=data.removeprefix(CALLBACK_DATA),
                user_id=str(user_id),
                user_name=_person(sender) or None,
            )
        ]

    def commands(self, event_type: str, payload: Mapping[str, Any]) -> list[Invocation]:
        """A message that opens with the bot command `/hookhub` (a `bot_command` entity at
        offset 0, `/hookhub@<bot username>` in a group with several bots;
        core.telegram.org/bots/features#commands, core.telegram.org/bots/api#messageentity):
        the chat and message (its id the invocation's), who sent it (`from`), the words
        after it. A channel post has no sender to run it as: not taken."""
        message = payload.get("message") if event_type == "message" else None
        if not isinstance(message, Mapping):
            return []
        found = _command(message)
        chat, sender = message.get("chat"), message.get("from")
        if found is None or not isinstance(chat, Mapping) or not isinstance(sender, Mapping):
            return []
        addressed_to, rest = found
        chat_id, message_id, user_id = chat.get("id"), message.get("message_id"), sender.get("id")
        if type(chat_id) is not int or type(message_id) is not int or user_id is None:
            return []
        return [
            Invocation(
                interaction_id=f"{chat_id}:{message_id}",
                external_channel_id=str(chat_id),
                text=rest,
                user_id=str(user_id),
                user_name=_person(sender) or None,
                reply={"message_id": str(message_id)},
                addressed_to=addressed_to,
            )
        ]

    async def answer(
        self,
        token: str,
        external_channel_id: str,
        reply: Mapping[str, str],
        text: str,
        private: bool,
    ) -> None:
        """What the chat cannot carry (the channel is bridged to no chat channel), as the
        bot's reply to the command in the chat; the rest reaches it through the chat."""
        if not private:
            return
        reply_to = _message_id(reply["message_id"]) if reply.get("message_id") else None
        post = OutboundPost(text=text, author=Author(name="hookhub"))
        await self._api.send_message(
            token, external_channel_id, format_post(post), parse_mode="HTML", reply_to=reply_to
        )

    def is_own(self, change: MessageChange, identity: BotIdentity) -> bool:
        """Sent by our bot, or through it inline (`via_bot`). Telegram sends a bot no update
        about its own messages, so this is the belt to that pair of braces."""
        if identity.user_id is None:
            return False
        return identity.user_id in (change.sender.user_id, change.sender.bot_id)

    async def render(self, text: str, users: UserLookup) -> str:
        """Telegram's text is plain already (formatting travels in separate entities)."""
        return text


# -- outbound formatting ------------------------------------------------------------------


def escape(text: str) -> str:
    """For HTML parse mode: the API asks only `&`, `<` and `>` to be replaced (and `"` in an
    attribute, which `&quot;` does)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attribute(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;")


class TelegramMarkup(markup.Html):
    """Telegram's HTML parse mode, as "Formatting options" gives it
    (https://core.telegram.org/bots/api#html-style): `<b>`, `<i>`, `<s>`, `<code>`,
    `<pre>`, `<blockquote>`, `<a href>`; every `<`, `>` and `&` of the text an entity. It
    has no lists: their items are `•` lines."""

    strong_tag, emphasis_tag, strike_tag = "b", "i", "s"
    lists = False


TELEGRAM_MARKUP = TelegramMarkup()


def format_post(post: OutboundPost) -> str:
    """`<b>author</b>`, a line break, the text (hookhub's own CommonMark, `post.markup`, in
    Telegram's HTML), then one link a line per attachment; cut with "…" so that what
    Telegram counts (the text after parsing, in UTF-16 units) fits 4096 (a CommonMark text
    is cut before it is written: what it shows is no longer than its source)."""
    author = cut(post.author.name.strip() or "unknown", _MAX_AUTHOR)
    links: list[tuple[str, str | None]] = []  # (visible name, url when it can be a link)
    for attachment in post.attachments:
        name = attachment.name or attachment.url
        url = attachment.url if attachment.url.startswith(("https://", "http://")) else None
        links.append((cut(name, 256), url))
    fixed = utf16_units(author) + sum(1 + utf16_units(name) for name, _ in links)
    room = MAX_TEXT - fixed - (1 if post.text else 0)
    text = cut(post.text, room) if post.text else ""
    parts = [f"<b>{escape(author)}</b>"]
    if text:
        commonmark = post.markup == "commonmark"
        parts.append(markup.render(text, TELEGRAM_MARKUP) if commonmark else escape(text))
    for name, url in links:
        quoted = _attribute(url) if url else None
        parts.append(f'<a href="{quoted}">{escape(name)}</a>' if quoted else escape(name))
    return "\n".join(parts)


def _message_id(external_id: str) -> int:
    try:
        return int(external_id)
    except ValueError:
        raise PermanentError(
            f"{external_id!r} is not a Telegram message id", "message_not_found", "message"
        ) from None


# -- inbound ------------------------------------------------------------------------------


def _moment(stamp: Any) -> datetime:
    if type(stamp) is int:
        return datetime.fromtimestamp(stamp, UTC)
    return datetime.now(UTC)


def _thread(message: Mapping[str, Any]) -> str | None:
    root = message.get("reply_to_message")
    if isinstance(root, Mapping) and type(root.get("message_id")) is int:
        return str(root["message_id"])
    return None


def _person(user: Mapping[str, Any]) -> str:
    full = " ".join(str(user[k]) for k in ("first_name", "last_name") if user.get(k)).strip()
    return full or str(user.get("username") or "")


def _author(message: Mapping[str, Any]) -> Author | None:
    """The sending chat for channel posts and anonymous admins (whose `from` is a
    placeholder), else the user. No avatar: a Telegram file URL carries the bot token."""
    sender_chat = message.get("sender_chat")
    if isinstance(sender_chat, Mapping) and sender_chat.get("id") is not None:
        name = str(sender_chat.get("title") or sender_chat.get("username") or "")
        signature = message.get("author_signature")
        if signature:
            name = f"{signature} ({name})" if name else str(signature)
        return Author(name=name or str(sender_chat["id"]), external_id=str(sender_chat["id"]))
    user = message.get("from")
    if isinstance(user, Mapping) and user.get("id") is not None:
        return Author(name=_person(user) or str(user["id"]), external_id=str(user["id"]))
    return None


def _sender(message: Mapping[str, Any]) -> SenderMarks:
    user = message.get("from")
    via = message.get("via_bot")
    # Sent as a chat, `from` is a placeholder bot (GroupAnonymousBot): not a bot's message.
    as_chat = isinstance(message.get("sender_chat"), Mapping)
    return SenderMarks(
        user_id=str(user["id"]) if isinstance(user, Mapping) and "id" in user else None,
        bot_id=str(via["id"]) if isinstance(via, Mapping) and "id" in via else None,
        is_bot=bool(isinstance(user, Mapping) and user.get("is_bot")) and not as_chat,
    )


# hookhub's bot command (core.telegram.org/bots/features#commands: "/command@botname"
# addresses one bot of a group).
COMMAND = "/hookhub"


def _command(message: Mapping[str, Any]) -> tuple[str | None, str] | None:
    """(the bot it names, if any; the words after it) when the message's text opens with
    `/hookhub`, as its `bot_command` entity at offset 0 says; else None."""
    text, entities = message.get("text"), message.get("entities")
    if not isinstance(text, str) or not isinstance(entities, list):
        return None
    first = next(
        (
            e
            for e in entities
            if isinstance(e, Mapping) and e.get("type") == "bot_command" and e.get("offset") == 0
        ),
        None,
    )
    length = first.get("length") if first is not None else None
    if type(length) is not int or length <= 0:
        return None
    # Offsets and lengths are UTF-16 code units; a command is ASCII, its name's bot too.
    word = text.encode("utf-16-le")[: 2 * length].decode("utf-16-le", "replace")
    name, _, bot = word.partition("@")
    if name.lower() != COMMAND:
        return None
    return bot or None, text[len(word) :].strip()


def _text(message: Mapping[str, Any]) -> tuple[str, str | None]:
    """(text, the media kind): the text or caption, after a `[photo]`-like line naming the
    media the message carries."""
    body = message.get("text") if isinstance(message.get("text"), str) else None
    if body is None and isinstance(message.get("caption"), str):
        body = message["caption"]
    kind = next((key for key in _MEDIA if message.get(key)), None)
    if kind is None:
        return body or "", None
    label = _media_label(kind, message[kind])
    return (f"{label}\n{body}" if body else label), kind


def _media_label(kind: str, media: Any) -> str:
    detail: Any = None
    if isinstance(media, Mapping):
        detail = {
            "document": media.get("file_name"),
            "audio": media.get("title") or media.get("file_name"),
            "sticker": media.get("emoji"),
            "contact": _person(media),
            "poll": media.get("question"),
            "venue": media.get("title"),
            "dice": media.get("emoji"),
            "game": media.get("title"),
            "invoice": media.get("title"),
        }.get(kind)
    name = kind.replace("_", " ")
    return f"[{name}: {detail}]" if detail else f"[{name}]"


# A card's buttons: an inline keyboard (core.telegram.org/bots/api#inlinekeyboardmarkup),
# one button a row, its `callback_data` `hh:` and the card action's id (1-64 bytes: an
# action whose data would be longer is not shown).
CALLBACK_DATA = "hh:"
CALLBACK_DATA_BYTES = 64


def keyboard(actions: tuple[CardAction, ...]) -> dict[str, Any]:
    """A card's actions as an inline keyboard ([] rows for none: an edit removes it)."""
    return {
        "inline_keyboard": [
            [{"text": action.label, "callback_data": CALLBACK_DATA + action.id}]
            for action in actions
            if len((CALLBACK_DATA + action.id).encode()) <= CALLBACK_DATA_BYTES
        ]
    }
