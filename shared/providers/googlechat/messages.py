"""Google Chat as a chat provider for sync (shared.providers.chat): Chat's events become
message changes, and chat messages are posted to a space as the Chat app.

The `token` every call takes is the integration's service account key (JSON): the access
token is had from it, and kept, by `GoogleChatApi.tokens`.

What Google Chat gives an app, and what follows from it:

- An app on an HTTP endpoint is sent MESSAGE interaction events only when it is
  @mentioned in a space, messaged directly, or a slash command is used
  (developers.google.com/workspace/chat/receive-respond-interactions). Every message of a
  space, and edits and deletions, come only through the Google Workspace Events API
  (`google.workspace.chat.message.v1.created|updated|deleted`, delivered by Pub/Sub),
  which `changes` reads too (`{"message": …}`) but which no hookhub endpoint receives yet.
- An app cannot post as someone else: the author's name leads the text, in bold.
- Each post of ours gets a custom id, `client-hookhub-…` (`messageId`). It does not
  replace the message's generated name; it is the message's `clientAssignedMessageId`, a
  mark a message event carries (no echo: `is_own`), and `spaces/S/messages/client-…` names
  the message to get, patch or delete, so `find_post` finds a tagged post with one GET
  (developers.google.com/workspace/chat/create-messages#name-a-created-message). The same
  id is the post's `requestId`, so a post sent again makes no second message.
- Our posts' sender is the app's user (`type` BOT): its name, learnt from the first post,
  is `identity().user_id`.
- Threads: a reply names its thread (`spaces/S/threads/T`), not the message that started
  it, and sync finds a reply's root by the root's message name (its copy in the message
  map). So `changes` gives a reply's `external_thread_id` as the name of the thread's root
  message, learnt from the thread's first message seen (an event that is no reply, or our
  own post's answer). A thread's first message, and a reply whose root this process has
  not seen (before a restart, on another replica), carry the thread's name as
  `external_thread_key`: sync keeps it with the first message's copy and finds the root
  there; a thread whose start sync never brought in begins at its first reply seen.
  A post may name a thread or a message of it (then its thread is looked up).
- No Chat API call answers a user's profile to an app: `user` answers the names and
  avatars of the senders the events showed, else None.
- A card's actions (SPEC §20) are buttons of a `cardsV2` card below the text
  (`card_buttons`); a click on one comes as a CARD_CLICKED interaction event (`clicks`),
  verified by the gateway as every event is.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, replace
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
)
from shared.providers.googlechat.api import MAX_TEXT, GoogleChatApi
from shared.providers.googlechat.auth import service_account_email, service_account_info

# Per-space writes: one a second (developers.google.com/workspace/chat/limits).
PACE_SECONDS = 1.0
# What our custom message ids start with: `client-` is Google's required prefix.
MARK = "client-hookhub-"
# The subtype of a message that carries our mark.
OWN_SUBTYPE = "hookhub_post"
# A custom id is `client-` and at most 56 of [a-z0-9-] (63 in all).
_TAG = re.compile(r"[a-z0-9-]{1,48}")
_MAX_AUTHOR = 128
# Bounds of what is kept in memory: senders seen, threads looked up.
_KNOWN_USERS = 4096
_KNOWN_THREADS = 4096
ZWJ = "\u200d"
# Look-alikes for what would end the markup around them: a `*` in the author's name (in
# `*bold*`), a `>` in a link's label (in `<url|label>`).
ASTERISK_OPERATOR = "\u2217"
ANGLE_QUOTE = "\u203a"
# A `<` that could open Chat markup: a mention (`<users/all>`, `<users/123>`) or a link
# (`<https://x|label>`).
_OPENS = re.compile(r"<(?=\S)")
# A card's buttons: one card (`cardsV2`, its `cardId` ours) of one section holding a
# `buttonList`, each button's `onClick.action` naming our function and the card action's id
# as its `action_id` parameter (developers.google.com/workspace/chat/api/reference/rest/v1/
# Button, its `onClick` and `type`; developers.google.com/workspace/chat/design-interactive-
# card-dialog, "Add a button"). A click is a CARD_CLICKED interaction event whose
# `common.invokedFunction` (and, for HTTP apps, `action.actionMethodName`) is that function
# and whose `common.parameters` (and `action.parameters`) carry the id
# (developers.google.com/workspace/chat/api/reference/rest/v1/Event).
CARD_CLICKED = "CARD_CLICKED"
CARD_ID = "hookhub-actions"
FUNCTION = "hookhub.card_action"
ACTION_PARAMETER = "action_id"
# Button.type FILLED for the primary action; a `color` (red, for danger) makes it FILLED in
# that colour; the others OUTLINED, the default.
_DANGER = {"red": 0.8, "green": 0.15, "blue": 0.15}
# Events carrying a message, and what happened to it: the interaction event, and the
# Workspace Events API's message events.
_KINDS: dict[str, Literal["created", "edited", "deleted"]] = {
    "MESSAGE": "created",
    "google.workspace.chat.message.v1.created": "created",
    "google.workspace.chat.message.v1.updated": "edited",
    "google.workspace.chat.message.v1.deleted": "deleted",
}


@dataclass(frozen=True)
class Listed:
    """A message as `spaces.messages.list` gave it: its change, its `createTime` as
    written, and whether it is the first of its page."""

    change: MessageChange
    create_time: str
    page_start: bool


class GoogleChatChat:
    name = "googlechat"
    # A command's private answer is the app's private message to its user
    # (`privateMessageViewer`, app authentication: developers.google.com/workspace/chat/
    # private-messages, "Respond to a slash command").
    private_answers = True

    def __init__(self, api: GoogleChatApi) -> None:
        self.api = api
        self._users: OrderedDict[str, Author] = OrderedDict()
        self._threads: OrderedDict[str, str] = OrderedDict()  # message name → thread name
        # Thread name → the message that started it (its root), as seen: a reply names its
        # thread, and sync finds a reply's root by the root's message name.
        self._roots: OrderedDict[str, str] = OrderedDict()
        self._app_users: dict[str, str] = {}  # service account → the app's user name

    def pace_seconds(self, external_channel_id: str) -> float:
        return PACE_SECONDS

    # -- who we are, what we see --------------------------------------------------------------

    async def identity(self, token: str) -> BotIdentity:
        """The service account, once Google gave it an access token (the key works: a key
        deleted or of another project is TokenRejected). Chat names no app user to its own
        app before it posts."""
        info = service_account_info(token)
        await self.api.tokens.token(token)
        email = str(info["client_email"])
        return BotIdentity(
            user_id=self._app_users.get(email), app_id=email, team_id=info.get("project_id")
        )

    async def channel(self, token: str, external_channel_id: str) -> ChannelInfo:
        space = await self.api.get_space(token, external_channel_id)
        name = space.get("displayName") or space.get("name") or external_channel_id
        return ChannelInfo(id=str(space.get("name") or external_channel_id), name=str(name))

    async def user(self, token: str, external_user_id: str) -> Author | None:
        return self._users.get(external_user_id)

    # -- outbound -----------------------------------------------------------------------------

    async def post(self, token: str, external_channel_id: str, post: OutboundPost) -> Posted:
        thread = await self._thread_of(token, post.thread_external_id)
        message_id = custom_id(post.tag) if post.tag else MARK + uuid.uuid4().hex
        made = await self.api.create_message(
            token,
            external_channel_id,
            format_post(post),
            request_id=message_id if post.tag else None,
            message_id=message_id,
            thread_name=thread,
            cards=card_buttons(post.actions) if post.actions else None,
        )
        sender = made.get("sender")
        if isinstance(sender, Mapping) and sender.get("type") == "BOT" and sender.get("name"):
            self._app_users[service_account_email(token)] = sender["name"]
        posted = _posted(made)
        made_thread = _thread_name(made)
        if made_thread:
            self._learn_thread(posted.external_message_id, made_thread)
            if thread is None:
                self._learn_root(made_thread, posted.external_message_id)
        # Sync keeps a copy's `external_thread_id` as its thread's first message (a reply to
        # it is flattened there): the message this one replies to, not Chat's thread name.
        return replace(
            posted,
            external_thread_id=post.thread_external_id if thread else None,
            external_thread_key=None if thread else made_thread,
        )

    async def reply_privately(self, token: str, reply: PrivateReply) -> bool:
        """A private message in the card's thread (`privateMessageViewer` the clicking
        user: they and the app alone see it), as the app; its `requestId` from the reply's
        tag, so a retry is the same message. A refusal (the user not in the space) is
        False."""
        try:
            await self._private(
                token,
                reply.external_channel_id,
                reply.text,
                reply.tag,
                reply.reply.get("thread"),
                f"users/{reply.user_id}",
            )
        except TokenRejected:
            raise
        except PermanentError:
            return False
        return True

    async def edit(
        self, token: str, external_channel_id: str, external_message_id: str, post: OutboundPost
    ) -> None:
        # A card: its buttons as its item offers them now (none: `cardsV2` emptied, which the
        # update mask names); any other message keeps what it has (it has no cards).
        cards = None if post.actions is None else card_buttons(post.actions)
        await self.api.update_message(token, external_message_id, format_post(post), cards)

    async def delete(self, token: str, external_channel_id: str, external_message_id: str) -> None:
        await self.api.delete_message(token, external_message_id)

    async def find_post(
        self,
        token: str,
        external_channel_id: str,
        tag: str,
        since: datetime,
        thread_external_id: str | None = None,
    ) -> Posted | None:
        """The post made with `tag`: its name is known from the tag alone."""
        name = f"{external_channel_id}/messages/{custom_id(tag)}"
        found = await self.api.get_message(token, name)
        if found is None:
            return None
        reply = bool(found.get("threadReply")) and thread_external_id is not None
        return replace(
            _posted(found),
            external_thread_id=thread_external_id if reply else None,
            external_thread_key=None if reply else _thread_name(found),
        )

    async def _thread_of(self, token: str, external_id: str | None) -> str | None:
        if not external_id or "/threads/" in external_id:
            return external_id
        known = self._threads.get(external_id)
        if known is None:
            root = await self.api.get_message(token, external_id)
            thread = root.get("thread") if root else None
            if not isinstance(thread, Mapping) or not thread.get("name"):
                return None  # the root is gone: a new thread (as FALLBACK_TO_NEW_THREAD would)
            known = str(thread["name"])
            self._learn_thread(external_id, known)
        return known

    def _learn_thread(self, message: str, thread: str) -> None:
        self._threads[message] = thread
        while len(self._threads) > _KNOWN_THREADS:
            self._threads.popitem(last=False)

    # -- inbound -------------------------------------------------------------------------------

    async def history(
        self, token: str, external_channel_id: str, since: datetime, limit: int
    ) -> list[MessageChange]:
        """The contract's history, listed as the app: Google refuses the app's own `chat.bot`
        token (listing needs a user's, or the Developer Preview's app scope), so Google
        Chat lists no `history` in the catalog and catch-up never asks. Imports list as a
        user (`listed(as_user=)`)."""
        out: list[MessageChange] = []
        pages = self.listed(
            token, external_channel_id, after=rfc3339(since), page_size=min(max(limit, 1), 1000)
        )
        async with contextlib.aclosing(pages):
            async for listed in pages:
                out.append(listed.change)
                if len(out) >= limit:
                    break
        return out

    async def listed(
        self,
        token: str,
        space: str,
        *,
        as_user: str | None = None,
        after: str | None = None,
        page_size: int = 1000,
    ) -> AsyncGenerator[Listed, None]:
        """The space's messages created after `after` (RFC 3339), oldest first, page by page
        (`spaces.messages.list`), as `as_user` (a delegated token) or as the app; each as
        the `created` change live inbound makes of it (its thread's root, its mentions
        defused), with its `createTime` as Google wrote it (an exact point to go on from).
        Deleted messages are not listed (no `showDeleted`); an edited one has its text as
        it is now."""
        page_token: str | None = None
        while True:
            page = await self.api.list_messages(
                token,
                space,
                as_user=as_user,
                after=after,
                page_size=page_size,
                page_token=page_token,
            )
            first = True
            for message in page.items:
                thread = _thread_name(message)
                if message.get("threadReply") and thread and thread not in self._roots:
                    # A reply whose thread began before what was listed (before the job's
                    # start, or its checkpoint in another process): the thread's first
                    # message, asked for by the documented `thread.name` filter.
                    await self._find_root(token, space, thread, as_user)
                change = self._change("created", message, space)
                if change is not None:
                    yield Listed(change, str(message.get("createTime") or ""), first)
                    first = False
            if page.next_page_token is None:
                return
            page_token = page.next_page_token

    async def _find_root(self, token: str, space: str, thread: str, as_user: str | None) -> None:
        page = await self.api.list_messages(
            token, space, as_user=as_user, thread=thread, page_size=1
        )
        root = _str(page.items[0].get("name")) if page.items else None
        if root is not None:
            self._learn_root(thread, root)

    def changes(self, event_type: str, payload: Mapping[str, Any]) -> list[MessageChange]:
        kind = _KINDS.get(event_type) or _KINDS.get(str(payload.get("type")))
        message = payload.get("message")
        if kind is None or not isinstance(message, Mapping):
            return []
        space = payload.get("space")
        channel = space.get("name") if isinstance(space, Mapping) else None
        change = self._change(kind, message, channel)
        return [change] if change is not None else []

    def _change(
        self,
        kind: Literal["created", "edited", "deleted"],
        message: Mapping[str, Any],
        channel: Any,
    ) -> MessageChange | None:
        name = message.get("name")
        if not isinstance(name, str) or "/messages/" not in name:
            return None
        channel = channel if isinstance(channel, str) else name.partition("/messages/")[0]
        when = _moment(
            message.get("lastUpdateTime") if kind == "edited" else message.get("createTime")
        )
        thread = message.get("thread")
        thread_name = thread.get("name") if isinstance(thread, Mapping) else None
        reply = bool(message.get("threadReply")) and isinstance(thread_name, str)
        root: str | None = None
        key: str | None = None  # the thread's name, for sync to keep or find its root by
        if isinstance(thread_name, str) and kind == "created":
            root = self._root_of(thread_name, name) if reply else None
            if not reply:
                self._learn_root(thread_name, name)
            key = None if root else thread_name
        elif reply and isinstance(thread_name, str):
            root = self._roots.get(thread_name)
        if kind == "deleted":
            return MessageChange(
                kind="deleted",
                external_channel_id=channel,
                external_message_id=name,
                occurred_at=when,
            )
        sender = message.get("sender")
        sender = sender if isinstance(sender, Mapping) else {}
        author = self._remember(sender)
        text = readable(str(message.get("text") or ""), message.get("annotations"))
        is_bot = sender.get("type") == "BOT"
        custom = message.get("clientAssignedMessageId")
        ours = isinstance(custom, str) and custom.startswith(MARK)
        return MessageChange(
            kind=kind,
            external_channel_id=channel,
            external_message_id=name,
            occurred_at=when,
            text=text,
            external_thread_id=root,
            external_thread_key=key,
            reply_by_key=reply and key is not None,
            author=author,
            sender=SenderMarks(user_id=_str(sender.get("name")), is_bot=is_bot),
            subtype=OWN_SUBTYPE if ours else "bot_message" if is_bot else None,
            ignored="hookhub's command (run, not bridged)"
            if message.get("slashCommand")
            else None
            if text.strip()
            else "the message carries no text",
        )

    def _root_of(self, thread_name: str, name: str) -> str | None:
        """The root message of a reply's thread, as seen (a message that is no reply, or our
        post that started it). A thread whose start was not seen (before a restart, or
        before the mapping): its first reply seen arrives as a message of its own, and the
        thread's later replies are in its thread."""
        root = self._roots.get(thread_name)
        if root is None:
            self._learn_root(thread_name, name)
        return root if root != name else None

    def _learn_root(self, thread_name: str, name: str) -> None:
        self._roots.setdefault(thread_name, name)
        self._roots.move_to_end(thread_name)
        while len(self._roots) > _KNOWN_THREADS:
            self._roots.popitem(last=False)

    def _remember(self, sender: Mapping[str, Any]) -> Author | None:
        user, name = _str(sender.get("name")), _str(sender.get("displayName"))
        if user is None:
            return None
        author = Author(
            name=name or user, avatar_url=_str(sender.get("avatarUrl")), external_id=user
        )
        if name:
            self._users[user] = author
            self._users.move_to_end(user)
            while len(self._users) > _KNOWN_USERS:
                self._users.popitem(last=False)
        return author

    def commands(self, event_type: str, payload: Mapping[str, Any]) -> list[Invocation]:
        """A `MESSAGE` event of the app's slash command (`message.slashCommand`; Chat
        sends an app its own commands only, the message seen by its user and the app
        alone: developers.google.com/workspace/chat/commands): the message's `name` the
        invocation's, its space, who (`user.name` `users/{id}`: the id), the words after
        the command (`argumentText`)."""
        if event_type != "MESSAGE":
            return []
        message, user = _mapping(payload.get("message")), _mapping(payload.get("user"))
        if not message.get("slashCommand"):
            return []
        name, user_name = _str(message.get("name")), _str(user.get("name"))
        space = _str(_mapping(payload.get("space")).get("name"))
        if not (name and user_name and "/messages/" in name):
            return []
        user_id = user_name.removeprefix("users/")
        if not user_id or "/" in user_id:
            return []
        words = (_str(message.get("argumentText")) or "").split(maxsplit=1)
        if words and words[0].lower() == "/hookhub":  # the command's own name, if given
            words = words[1:]
        thread = _thread_name(message)
        return [
            Invocation(
                interaction_id=name,
                external_channel_id=space or name.partition("/messages/")[0],
                text=" ".join(words).strip(),
                user_id=user_id,
                user_name=_str(user.get("displayName")),
                # Whom a private answer is for, in the command's thread; named after it.
                reply={
                    "viewer": user_name,
                    "message": name,
                    **({"thread": thread} if thread else {}),
                },
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
        """What concerns its user alone (their link, a space bridged to no chat channel),
        as the app's private message to them in the command's thread, its `requestId` named
        after the command (a retry is the same message); the rest reaches the space
        through the chat. A command of before (no viewer kept): the app's message."""
        if not private:
            return
        viewer = reply.get("viewer")
        if not viewer:
            await self.post(
                token, external_channel_id, OutboundPost(text=text, author=Author(name="hookhub"))
            )
            return
        tag = f"answer-{reply.get('message', '')}"
        await self._private(token, external_channel_id, text, tag, reply.get("thread"), viewer)

    async def _private(
        self, token: str, space: str, text: str, tag: str, thread: str | None, viewer: str
    ) -> None:
        """The app's private message to `viewer` (`users/{id}`) in `thread` of `space`: its
        text (CommonMark) in Chat's markup, its `requestId` from `tag` (a retry is the same
        message)."""
        await self.api.create_message(
            token,
            space,
            cut(markup.render(text, GOOGLE_CHAT_MARKUP), MAX_TEXT),
            request_id=custom_id(tag),
            thread_name=thread,
            private_viewer=viewer,
        )

    def clicks(self, event_type: str, payload: Mapping[str, Any]) -> list[Click]:
        """A CARD_CLICKED event's click on one of our cards' buttons (its function ours):
        the clicked message's `name`, the space, the action id the button carries, and who
        (`user.name` `users/{id}`: the id). Chat gives an event no id of its own: the click
        is known by `card_click_id`, the gateway's delivery id of it."""
        if event_type != CARD_CLICKED:
            return []
        common, action = _mapping(payload.get("common")), _mapping(payload.get("action"))
        function = _str(common.get("invokedFunction")) or _str(action.get("actionMethodName"))
        action_id = _parameter(common, action)
        message, user = _mapping(payload.get("message")), _mapping(payload.get("user"))
        name, user_name = _str(message.get("name")), _str(user.get("name"))
        space = _str(_mapping(payload.get("space")).get("name"))
        if function != FUNCTION or not (action_id and name and user_name and "/messages/" in name):
            return []
        user_id = user_name.removeprefix("users/")
        if not user_id or "/" in user_id:
            return []
        thread = _thread_name(message)
        return [
            Click(
                interaction_id=card_click_id(payload),
                external_channel_id=space or name.partition("/messages/")[0],
                external_message_id=name,
                action_id=action_id,
                user_id=user_id,
                user_name=_str(user.get("displayName")),
                reply={"thread": thread} if thread else {},
            )
        ]

    def is_own(self, change: MessageChange, identity: BotIdentity) -> bool:
        """Made by hookhub: it carries our custom id's mark; or the app user identity names
        sent it."""
        if change.subtype == OWN_SUBTYPE:
            return True
        sender = change.sender
        return sender.is_bot and sender.user_id is not None and sender.user_id == identity.user_id

    async def render(self, text: str, users: UserLookup) -> str:
        """Plain already: `changes` made the mentions readable (their annotations are there)."""
        return text


# -- outbound formatting ------------------------------------------------------------------------


def custom_id(tag: str) -> str:
    """Our `messageId` for a tag: the tag when it is of the allowed characters and fits,
    else a digest of it."""
    if _TAG.fullmatch(tag):
        return MARK + tag
    return MARK + hashlib.sha256(tag.encode()).hexdigest()[:40]


def defuse(text: str) -> str:
    """Text shown as it is: a zero-width joiner after each `<` that could open a mention
    (`<users/all>`) or a link (`<url|label>`); Chat has no escape character."""
    return _OPENS.sub("<" + ZWJ, text)


class GoogleChatMarkup(markup.Asterisks):
    """Chat's own text formatting (https://developers.google.com/workspace/chat/format-messages):
    `*bold*`, `_italic_`, `~strikethrough~`, `` `monospace` ``, a monospace block in
    triple backticks, and a link `<url|text>` (its text's `>` a look-alike); text
    `defuse`d (Chat has no escape character: a `<` that could open a mention or a link
    gets a zero-width joiner). Chat has no quote: a quoted line keeps its `>`."""

    def text(self, value: str) -> str:
        # commonmark.py's joiner already after a `<` is enough.
        return defuse(value).replace("<" + ZWJ + ZWJ, "<" + ZWJ)

    def link(self, inner: str, url: str) -> str:
        return f"<{url}|{inner.replace('>', ANGLE_QUOTE)}>"


GOOGLE_CHAT_MARKUP = GoogleChatMarkup()


def format_post(post: OutboundPost) -> str:
    """`*author*`, a line break, the text, then one `<url|name>` link a line per attachment
    (Chat's own formatting, developers.google.com/workspace/chat/format-messages); the
    author and the text defused (hookhub's own CommonMark, `post.markup`, in Chat's
    markup), the whole within 4096 characters."""
    author = defuse(cut(post.author.name.strip() or "unknown", _MAX_AUTHOR)).replace(
        "*", ASTERISK_OPERATOR
    )
    links: list[str] = []
    for attachment in post.attachments:
        name = defuse(cut(attachment.name or attachment.url, 256)).replace("|", "/")
        url = attachment.url
        if url.startswith(("https://", "http://")) and not re.search(r"[\s<>|]", url):
            links.append(f"<{url}|{name.replace('>', ANGLE_QUOTE)}>")
        else:
            links.append(name)
    fixed = len(author) + 3 + sum(1 + len(link) for link in links)
    text = (
        markup.render(post.text, GOOGLE_CHAT_MARKUP)
        if post.markup == "commonmark"
        else defuse(post.text)
    )
    if text:
        room = MAX_TEXT - fixed - 1
        text = cut(text, room) if len(text.encode("utf-16-le")) // 2 > room else text
    return "\n".join([f"*{author}*", *([text] if text else []), *links])


def card_buttons(actions: tuple[CardAction, ...]) -> list[dict[str, Any]]:
    """A card's actions as a `cardsV2` card of buttons below the message's text ([] for
    none: an edit so removes them). Labels are plain text (a button's `text` is no markup)."""
    if not actions:
        return []
    buttons: list[dict[str, Any]] = []
    for action in actions:
        button: dict[str, Any] = {
            "text": action.label,
            "onClick": {
                "action": {
                    "function": FUNCTION,
                    "parameters": [{"key": ACTION_PARAMETER, "value": action.id}],
                }
            },
        }
        if action.style == "primary":
            button["type"] = "FILLED"
        elif action.style == "danger":
            button["color"] = _DANGER
        buttons.append(button)
    card = {"sections": [{"widgets": [{"buttonList": {"buttons": buttons}}]}]}
    return [{"cardId": CARD_ID, "card": card}]


def card_click_id(event: Mapping[str, Any]) -> str:
    """What tells one CARD_CLICKED event from another (Chat numbers none): the message, who
    clicked, which function with which action, and when; the same when Chat sends it again."""
    common, action = _mapping(event.get("common")), _mapping(event.get("action"))
    parts = (
        _str(_mapping(event.get("message")).get("name")),
        _str(_mapping(event.get("user")).get("name")),
        _str(common.get("invokedFunction")) or _str(action.get("actionMethodName")),
        _parameter(common, action),
        _str(event.get("eventTime")),
    )
    return "|".join(part or "" for part in parts)


def _parameter(common: Mapping[str, Any], action: Mapping[str, Any]) -> str | None:
    """The `action_id` parameter: `common.parameters` (a map), else `action.parameters`
    (a list of `{key, value}`)."""
    found = _str(_mapping(common.get("parameters")).get(ACTION_PARAMETER))
    if found is not None:
        return found
    listed = action.get("parameters")
    for pair in listed if isinstance(listed, list) else []:
        if isinstance(pair, Mapping) and pair.get("key") == ACTION_PARAMETER:
            return _str(pair.get("value"))
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


# -- inbound ---------------------------------------------------------------------------------


def readable(text: str, annotations: Any) -> str:
    """Each USER_MENTION as `@` and the user's display name, defused (a zero-width joiner
    after the `@`) so the chat does not read it as a mention of its own; the rest of the
    text defused the same way."""
    spans: list[tuple[int, int, str]] = []
    for note in annotations if isinstance(annotations, list) else []:
        if not isinstance(note, Mapping) or note.get("type") != "USER_MENTION":
            continue
        start, length = note.get("startIndex"), note.get("length")
        mention = note.get("userMention")
        user = mention.get("user") if isinstance(mention, Mapping) else None
        if type(start) is not int or type(length) is not int or not isinstance(user, Mapping):
            continue
        name = _str(user.get("displayName")) or str(user.get("name", "")).rpartition("/")[2]
        if start < 0 or length < 1 or start + length > len(text) or not name:
            continue
        spans.append((start, start + length, name))
    parts: list[str] = []
    position = 0
    for start, end, name in sorted(spans):
        if start < position:
            continue  # overlapping annotations: the first wins
        parts.append(_defuse_at(text[position:start]))
        parts.append("@" + ZWJ + name)
        position = end
    parts.append(_defuse_at(text[position:]))
    return "".join(parts)


def _defuse_at(text: str) -> str:
    return re.sub(r"@(?=[\w.-])", "@" + ZWJ, text)


def _posted(message: Mapping[str, Any]) -> Posted:
    name = _str(message.get("name"))
    if name is None:
        raise PermanentError("Google Chat answered a message without a name", "no_name")
    thread = message.get("thread")
    thread_name = _str(thread.get("name")) if isinstance(thread, Mapping) else None
    return Posted(external_message_id=name, external_thread_id=thread_name)


def _thread_name(message: Mapping[str, Any]) -> str | None:
    thread = message.get("thread")
    return _str(thread.get("name")) if isinstance(thread, Mapping) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def rfc3339(moment: datetime) -> str:
    """A moment as `spaces.messages.list`'s filter writes it (UTC, `Z`)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _moment(stamp: Any) -> datetime:
    if isinstance(stamp, str):
        try:
            return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            pass
    return datetime.now(UTC)
