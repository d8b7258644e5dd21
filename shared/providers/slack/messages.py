"""Slack as a chat provider for sync: Events API `message` events → message changes, Slack
markup → readable text, and posts, edits and deletes through the Web API (`SlackApi`).

Policy for messages of other apps and bots (`bot_message`, or a `bot_id` that is not ours):
they are bridged like people's, with the name and icon the app posted under as the author,
so that a Slack channel fed by an integration (a CI bot, another bridge) reaches the chat.
Our own posts are recognised by `is_own` (and by the message map) and never come back.
System messages (joins, topic changes, pins, ...) are not bridged: their change carries
`ignored` with the subtype, so they can be counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Literal

from shared.providers import markup
from shared.providers.chat import (
    Attachment,
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
    RateLimited,
    SenderMarks,
    TokenRejected,
    UserLookup,
)
from shared.providers.slack.api import Page, SlackApi
from shared.providers.slack.limits import (
    HISTORY,
    REPLIES,
    Clock,
    Pacer,
    Sleep,
    Tier,
    history_tier,
)

MESSAGE_EVENT = "event_callback.message"
# A slash command, as the gateway names Slack's form (shared.providers.slack.webhooks).
SLASH_COMMAND = "slash_command"
# A click on a Block Kit button, as the gateway names the interactivity payload.
BLOCK_ACTIONS = "interactive.block_actions"
# Our card's `actions` block: its `block_id` starts so (a new one when the actions change:
# Slack asks for a new block_id for each iteration of a message).
ACTIONS_BLOCK = "hookhub.actions."
# Block Kit's limits (docs.slack.dev/reference/block-kit): a section's text 3,000
# characters, 50 blocks a message, 25 elements an actions block, a button's text 75
# characters, its action_id 255, its value 2,000.
SECTION_CHARS = 3000
MAX_SECTIONS = 40
MAX_BUTTONS = 25
BUTTON_TEXT = 75
ACTION_ID_CHARS = 255
# The metadata event type hookhub's posts carry, with `{"message_id": <chat message id>}`.
METADATA_EVENT_TYPE = "hookhub_message"
# Slack asks for about one message a second per channel (bursts are tolerated, not promised).
PACE_SECONDS = 1.0
# History reads at once before the tier's pace applies (Tier 3: "Sporadic bursts are
# welcome"): a catch-up of a few channels, or a post looked for after a crash, does not wait.
HISTORY_BURST = 10

# Subtypes that are someone saying something: bridged. Every other subtype (channel_join,
# channel_leave, channel_topic, channel_purpose, channel_name, pinned_item, message_replied,
# tombstone, huddle_thread, ...) is a notice Slack writes itself: ignored.
_CONTENT_SUBTYPES = frozenset({"thread_broadcast", "file_share", "me_message", "bot_message"})
_USER_GONE = frozenset({"user_not_found", "user_not_visible"})
_MARKUP = re.compile(r"<([^<>\n]*)>")
_ENTITIES = re.compile(r"&(lt|gt|amp);")
_ENTITY_TEXT = {"lt": "<", "gt": ">", "amp": "&"}
_SPECIAL = {"here": "@here", "channel": "@channel", "everyone": "@everyone"}


class SlackChat:
    """`history_tier`: the Slack app's `history_tier` setting (`tier3`, `limited`), asked
    before each history read; the history methods are paced to it per token (Tier 3 when
    not given)."""

    name = "slack"
    # A slash command's ephemeral response is seen by whoever typed it alone.
    private_answers = True

    def __init__(
        self,
        api: SlackApi,
        history_tier: Callable[[], Awaitable[str | None]] | None = None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.api = api
        self._history_tier = history_tier
        self._clock = clock
        self._sleep = sleep
        self._pacers: dict[tuple[str, str, float], Pacer] = {}

    def pace_seconds(self, external_channel_id: str) -> float:
        return PACE_SECONDS

    # -- who we are, what we see -------------------------------------------------------------

    async def identity(self, token: str) -> BotIdentity:
        """`auth.test`, and `bots.info` for the app id: a bot token's `auth.test` answer names
        its bot but does not promise its app (`app_id` is not among its documented fields).
        Without `bots.info` (a token lacking `users:read`), the bot id and user id still
        recognise our posts."""
        me = await self.api.auth_test(token)
        bot_id = _str(me.get("bot_id"))
        app_id = _str(me.get("app_id"))
        if app_id is None and bot_id is not None:
            try:
                app_id = _str((await self.api.bots_info(token, bot_id)).get("app_id"))
            except PermanentError as exc:
                if exc.scope != "message" and exc.error != "missing_scope":
                    raise
        return BotIdentity(
            user_id=_str(me.get("user_id")),
            bot_id=bot_id,
            app_id=app_id,
            team_id=_str(me.get("team_id")),
            name=_str(me.get("user")),
        )

    async def channel(self, token: str, external_channel_id: str) -> ChannelInfo:
        found = await self.api.conversations_info(token, external_channel_id)
        name = _str(found.get("name")) or external_channel_id
        # conversations.info answers for public channels the bot is not in, and for archived
        # ones; neither can carry messages, so the mapping is told now, not at the first post.
        if found.get("is_archived"):
            raise PermanentError(f"Slack channel #{name} is archived", "is_archived", "channel")
        if found.get("is_member") is False:
            raise PermanentError(
                f"the Slack app is not in #{name}: invite it (/invite @app) first",
                "not_in_channel",
                "channel",
            )
        return ChannelInfo(id=_str(found.get("id")) or external_channel_id, name=name)

    async def user(self, token: str, external_user_id: str) -> Author | None:
        try:
            found = await self.api.users_info(token, external_user_id)
        except PermanentError as exc:
            if exc.error in _USER_GONE:
                return None
            raise
        return author_of(found, external_user_id)

    # -- outbound ------------------------------------------------------------------------------

    async def post(self, token: str, external_channel_id: str, post: OutboundPost) -> Posted:
        arguments: dict[str, Any] = {"text": outbound_text(post)}
        if post.author.name:
            arguments["username"] = post.author.name
        if post.author.avatar_url:
            arguments["icon_url"] = post.author.avatar_url
        if post.thread_external_id:
            arguments["thread_ts"] = post.thread_external_id
        if post.tag:
            arguments["metadata"] = {
                "event_type": METADATA_EVENT_TYPE,
                "event_payload": {"message_id": post.tag},
            }
        if post.actions:
            arguments["blocks"] = card_blocks(arguments["text"], post.actions, post.tag)
        answer = await self.api.chat_post_message(token, external_channel_id, **arguments)
        message = answer.get("message") or {}
        ts = _str(answer.get("ts")) or _str(message.get("ts"))
        if ts is None:
            raise PermanentError("Slack chat.postMessage answered without a ts", "no_ts")
        thread = _str(message.get("thread_ts")) or post.thread_external_id
        return Posted(external_message_id=ts, external_thread_id=thread)

    async def edit(
        self, token: str, external_channel_id: str, external_message_id: str, post: OutboundPost
    ) -> None:
        text = outbound_text(post)
        if post.actions is None:
            await self.api.chat_update(token, external_channel_id, external_message_id, text=text)
            return
        # A card: its buttons as its item offers them now; none left, the blocks emptied
        # ("To remove previous blocks, include an empty array", chat.update's `blocks`).
        blocks = card_blocks(text, post.actions, post.tag) if post.actions else []
        await self.api.chat_update(
            token, external_channel_id, external_message_id, text=text, blocks=blocks
        )

    async def reply_privately(self, token: str, reply: PrivateReply) -> bool:
        """`chat.postEphemeral` to the clicking user in the card's channel, in mrkdwn. Not in
        the card's thread: "Ephemeral messages in threads are only shown if there is
        already an active thread" (chat.postEphemeral's `thread_ts`), and a card may have
        none. A refusal (the user not in the channel, the channel archived) is False."""
        try:
            await self.api.chat_post_ephemeral(
                token,
                reply.external_channel_id,
                reply.user_id,
                text=markup.render(reply.text, SLACK_MARKUP),
            )
        except TokenRejected:
            raise
        except PermanentError:
            return False
        return True

    async def delete(self, token: str, external_channel_id: str, external_message_id: str) -> None:
        try:
            await self.api.chat_delete(token, external_channel_id, external_message_id)
        except PermanentError as exc:
            if exc.error != "message_not_found":
                raise

    async def find_post(
        self,
        token: str,
        external_channel_id: str,
        tag: str,
        since: datetime,
        thread_external_id: str | None = None,
    ) -> Posted | None:
        """Our post tagged `tag` since `since`. `conversations.history` lists no thread
        replies, so a reply is found only when its thread is named (`thread_external_id`,
        read with `conversations.replies`)."""
        me = await self.identity(token)
        oldest = f"{since.timestamp():.6f}"
        if thread_external_id is None:
            pages = self._pages(
                token,
                HISTORY,
                lambda cursor: self.api.conversations_history(
                    token,
                    external_channel_id,
                    cursor=cursor,
                    oldest=oldest,
                    include_all_metadata=True,
                ),
            )
        else:
            pages = self._pages(
                token,
                REPLIES,
                lambda cursor: self.api.conversations_replies(
                    token,
                    external_channel_id,
                    thread_external_id,
                    cursor=cursor,
                    oldest=oldest,
                    include_all_metadata=True,
                ),
            )
        async with contextlib.aclosing(pages):
            async for page in pages:
                for message in page.items:
                    if _tagged(message, tag, me):
                        thread = thread_external_id or _str(message.get("thread_ts"))
                        return Posted(_str(message.get("ts")) or "", thread)
        return None

    async def _pages(
        self, token: str, method: str, page: Callable[[str | None], Awaitable[Page]]
    ) -> AsyncGenerator[Page, None]:
        """Every page of a history method, each paced to the app's tier for this token; a
        429 holds the pacer for its Retry-After (other reads with the token wait too) and
        is raised, like any error, to the caller."""
        pacer = await self._pacer(token, method)
        cursor: str | None = None
        while True:
            await pacer.wait()
            try:
                found = await page(cursor)
            except RateLimited as exc:
                pacer.hold(exc.retry_after)
                raise
            yield found
            if found.next_cursor is None:
                return
            cursor = found.next_cursor

    async def tier(self) -> Tier:
        """The app's history tier, asked now."""
        return history_tier(await self._history_tier() if self._history_tier else None)

    async def _pacer(self, token: str, method: str) -> Pacer:
        tier = await self.tier()
        # Keyed by the token's digest, not the token (nothing secret kept as a key).
        key = (hashlib.sha256(token.encode()).hexdigest(), method, tier.per_minute)
        pacer = self._pacers.get(key)
        if pacer is None:
            # `burst` at once, then a pace that keeps any minute within the tier's count.
            burst = int(max(1, min(HISTORY_BURST, tier.per_minute)))
            interval = 60.0 / (tier.per_minute - burst + 1)
            pacer = self._pacers[key] = Pacer(interval, self._clock, self._sleep, burst=burst)
        return pacer

    # -- inbound -------------------------------------------------------------------------------

    async def history(
        self, token: str, external_channel_id: str, since: datetime, limit: int
    ) -> list[MessageChange]:
        """`conversations.history` from `since` (`oldest`, exclusive). It lists the
        channel's messages and thread replies also sent to the channel, not other thread
        replies: those written while sync could not hear the channel are not recovered."""
        oldest = f"{since.timestamp():.6f}"
        pages = self._pages(
            token,
            HISTORY,
            lambda cursor: self.api.conversations_history(
                token, external_channel_id, cursor=cursor, oldest=oldest
            ),
        )
        messages = [message async for page in pages for message in page.items]
        messages.sort(key=lambda message: float(_str(message.get("ts")) or 0))
        changes = []
        for message in messages:
            subtype = _str(message.get("subtype"))
            if subtype in ("message_changed", "message_deleted"):
                continue
            change = change_of(external_channel_id, message)
            if change is not None:
                changes.append(change)
        return changes[:limit]

    def changes(self, event_type: str, payload: Mapping[str, Any]) -> list[MessageChange]:
        if event_type != MESSAGE_EVENT:
            return []
        event = payload.get("event")
        if not isinstance(event, dict) or event.get("type") != "message":
            return []
        channel = _str(event.get("channel"))
        subtype = _str(event.get("subtype"))
        if channel is None:
            return []
        if subtype == "message_changed":
            change = _changed(channel, event)
        elif subtype == "message_deleted":
            change = _deleted(channel, event)
        else:
            change = _created(channel, subtype, event)
        return [] if change is None else [change]

    def clicks(self, event_type: str, payload: Mapping[str, Any]) -> list[Click]:
        """A `block_actions` payload's clicks on our cards' buttons (in an actions block of
        ours, on a message: not a modal's, not another app's block). Its `trigger_id` is the
        interaction's id (docs.slack.dev/reference/interaction-payloads/block_actions-payload)."""
        if event_type != BLOCK_ACTIONS:
            return []
        container = payload.get("container")
        user = payload.get("user")
        actions = payload.get("actions")
        if not isinstance(container, Mapping) or not isinstance(user, Mapping):
            return []
        channel = _str(container.get("channel_id")) or _str(_field(payload, "channel", "id"))
        ts = _str(container.get("message_ts"))
        trigger = _str(payload.get("trigger_id"))
        user_id = _str(user.get("id"))
        if not (channel and ts and trigger and user_id and isinstance(actions, list)):
            return []
        ours = [
            action
            for action in actions
            if isinstance(action, Mapping)
            and action.get("type") == "button"
            and str(action.get("block_id") or "").startswith(ACTIONS_BLOCK)
            and _str(action.get("action_id"))
        ]
        return [
            Click(
                interaction_id=trigger if position == 0 else f"{trigger}:{position}",
                external_channel_id=channel,
                external_message_id=ts,
                action_id=str(action["action_id"]),
                user_id=user_id,
                user_name=_str(user.get("name")) or _str(user.get("username")),
            )
            for position, action in enumerate(ours)
        ]

    def commands(self, event_type: str, payload: Mapping[str, Any]) -> list[Invocation]:
        """A slash command of the app (the form Slack POSTs to the command's Request URL:
        `command`, `text`, `user_id`, `user_name`, `channel_id`, `response_url`,
        `trigger_id`; docs.slack.dev/interactivity/implementing-slash-commands). The app's
        command is hookhub's whatever it is named: the text is what follows it."""
        if event_type != SLASH_COMMAND:
            return []
        # A field given twice is a list (the gateway decodes the form so): not taken.
        fields = {name: _str(payload.get(name)) for name in _COMMAND_FIELDS}
        trigger, channel, user = fields["trigger_id"], fields["channel_id"], fields["user_id"]
        if not (trigger and channel and user and fields["command"]):
            return []
        response_url = fields["response_url"]
        return [
            Invocation(
                interaction_id=trigger,
                external_channel_id=channel,
                text=fields["text"] or "",
                user_id=user,
                user_name=fields["user_name"],
                reply={"response_url": response_url} if response_url else {},
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
        """What is private, as an ephemeral response at the command's `response_url`
        ("response_type": "ephemeral", seen by the user alone); the rest reaches the
        channel through the chat, as every message."""
        response_url = reply.get("response_url")
        if not private or not response_url:
            return
        post = OutboundPost(text=text, author=Author(name="hookhub"))
        await self.api.respond(
            response_url, {"response_type": "ephemeral", "text": outbound_text(post)}
        )

    def is_own(self, change: MessageChange, identity: BotIdentity) -> bool:
        sender = change.sender
        return (
            (sender.bot_id is not None and sender.bot_id == identity.bot_id)
            or (sender.app_id is not None and sender.app_id == identity.app_id)
            or (sender.user_id is not None and sender.user_id == identity.user_id)
        )

    async def render(self, text: str, users: UserLookup) -> str:
        """Slack's markup (`<@U1>`, `<#C1|general>`, `<!here>`, `<url|label>`) made readable;
        `&lt; &gt; &amp;` decoded in the text and labels, never in looked-up names."""
        if "<" not in text and "&" not in text:  # most messages: nothing to do
            return text
        wanted = {
            inner[1:].partition("|")[0]
            for inner in _MARKUP.findall(text)
            if inner.startswith("@") and not inner.partition("|")[2]
        }
        ids = sorted(wanted)
        found = await asyncio.gather(*(users(user_id) for user_id in ids)) if ids else []
        names = {user_id: author.name for user_id, author in zip(ids, found, strict=True) if author}

        parts: list[str] = []
        position = 0
        for match in _MARKUP.finditer(text):
            parts.append(_decode(text[position : match.start()]))
            parts.append(_readable(match.group(1), names))
            position = match.end()
        parts.append(_decode(text[position:]))
        return "".join(parts)


# -- Slack markup ------------------------------------------------------------------------------


def card_blocks(
    text: str, actions: tuple[CardAction, ...], tag: str | None
) -> list[dict[str, Any]]:
    """A card as Block Kit: its text (already escaped for Slack) in sections, its actions an
    `actions` block of buttons (docs.slack.dev/reference/block-kit/blocks/actions-block,
    .../block-elements/button-element): `action_id` the card action's id, `value` the chat
    message's id (for whoever reads the message; a click is found through the map, not by
    it), `style` primary or danger. With blocks, `text` is only the notification's."""
    sections = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text[i : i + SECTION_CHARS]}}
        for i in range(0, len(text), SECTION_CHARS)
    ][:MAX_SECTIONS]
    buttons: list[dict[str, Any]] = []
    for action in actions[:MAX_BUTTONS]:
        if len(action.id) > ACTION_ID_CHARS:
            continue  # no card action is so long; one that is, is not shown
        button: dict[str, Any] = {
            "type": "button",
            "text": {"type": "plain_text", "text": action.label[:BUTTON_TEXT], "emoji": False},
            "action_id": action.id,
        }
        if tag:
            button["value"] = tag
        if action.style in ("primary", "danger"):
            button["style"] = action.style
        buttons.append(button)
    if not buttons:
        return sections
    digest = hashlib.sha256("\x1f".join(b["action_id"] for b in buttons).encode()).hexdigest()
    return [
        *sections,
        {"type": "actions", "block_id": ACTIONS_BLOCK + digest[:16], "elements": buttons},
    ]


def _field(payload: Mapping[str, Any], *path: str) -> Any:
    value: Any = payload
    for name in path:
        value = value.get(name) if isinstance(value, Mapping) else None
    return value


def escape(text: str) -> str:
    """The three characters Slack wants escaped in message text, as Slack documents."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackMarkup(markup.Asterisks):
    """Slack's mrkdwn, as "Formatting message text" gives it
    (https://docs.slack.dev/messaging/formatting-message-text): `*bold*`, `_italic_`,
    `~strike~`, `` `code` ``, a code block in triple backticks, `>` quotes, and a link
    `<url|text>`; in text and in a link's parts, `&`, `<` and `>` written as the entities
    Slack asks for, so no `<!channel>` or `<@U…>` can be made of what came from outside (and
    commonmark.py's zero-width joiners stay after each `@`). Slack has no escape for
    `*`, `_`, `~`: a lone one stays a character, as Slack reads it."""

    def text(self, value: str) -> str:
        return escape(value)

    def link(self, inner: str, url: str) -> str:
        return f"<{escape(url.replace('|', '%7C'))}|{inner}>"


SLACK_MARKUP = SlackMarkup()


def outbound_text(post: OutboundPost) -> str:
    """The chat's plain text escaped for Slack (hookhub's own CommonMark, `post.markup`,
    as mrkdwn), attachments appended as `<url|name>` links."""
    if post.markup == "commonmark":
        lines = [markup.render(post.text, SLACK_MARKUP)] if post.text else []
    else:
        lines = [escape(post.text)] if post.text else []
    for attachment in post.attachments:
        url = escape(attachment.url.replace("|", "%7C"))
        label = escape(attachment.name.replace("|", "/")) if attachment.name else ""
        lines.append(f"<{url}|{label}>" if label else f"<{url}>")
    return "\n".join(lines)


def _decode(text: str) -> str:
    return _ENTITIES.sub(lambda m: _ENTITY_TEXT[m.group(1)], text)


def _readable(inner: str, names: Mapping[str, str]) -> str:
    target, _, label = inner.partition("|")
    label = _decode(label)
    if target.startswith("@"):
        return "@" + (label or names.get(target[1:]) or target[1:])
    if target.startswith("#"):
        return "#" + (label or target[1:])
    if target.startswith("!"):
        command = target[1:]
        if command in _SPECIAL:
            return _SPECIAL[command]
        if command.startswith("subteam^"):
            return label if label.startswith("@") else "@" + (label or command[len("subteam^") :])
        if command.startswith("date^"):
            return label
        return label or command
    url = _decode(target)
    shown = url.removeprefix("mailto:")
    if not label or label in (url, shown):
        return shown
    return f"{label} ({shown})"


# -- events → changes ----------------------------------------------------------------------------


def author_of(user: Mapping[str, Any], external_user_id: str | None = None) -> Author:
    """A Slack user object (`users.info`, `users.list`, an export's `users.json`) as an
    author: the display name, else the real name, else the handle."""
    profile = user.get("profile")
    profile = profile if isinstance(profile, dict) else {}
    user_id = _str(user.get("id")) or external_user_id or "unknown"
    name = (
        _str(profile.get("display_name"))
        or _str(profile.get("real_name"))
        or _str(user.get("real_name"))
        or _str(user.get("name"))
        or user_id
    )
    return Author(name=name, avatar_url=_str(profile.get("image_72")), external_id=user_id)


def change_of(channel: str, message: Mapping[str, Any]) -> MessageChange | None:
    """A message as `conversations.history|replies` or an export's day file lists it, as a
    `created` change (its text the latest, if it was edited); None without a `ts`."""
    return _created(channel, _str(message.get("subtype")), message)


def reactions_of(message: Mapping[str, Any]) -> int:
    """How many reactions a message (history or export) carries: each reaction's `count`,
    else the number of its `users`."""
    reactions = message.get("reactions")
    if not isinstance(reactions, list):
        return 0
    total = 0
    for reaction in reactions:
        if not isinstance(reaction, dict):
            continue
        count = reaction.get("count")
        users = reaction.get("users")
        if isinstance(count, int) and not isinstance(count, bool) and count > 0:
            total += count
        elif isinstance(users, list):
            total += len(users)
    return total


# Payloads are parsed JSON, whose objects are dicts: `isinstance(x, dict)` here, which costs
# a fraction of an ABC check on the import's and sync's per-message paths.


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# A slash command's form fields hookhub reads.
_COMMAND_FIELDS = (
    "command",
    "text",
    "user_id",
    "user_name",
    "channel_id",
    "response_url",
    "trigger_id",
)


def _when(ts: str | None) -> datetime:
    try:
        return datetime.fromtimestamp(float(ts or ""), UTC)
    except (ValueError, OverflowError):
        return datetime.now(UTC)


def _thread(message: Mapping[str, Any], ts: str) -> str | None:
    thread_ts = _str(message.get("thread_ts"))
    return thread_ts if thread_ts and thread_ts != ts else None


def _sender(message: Mapping[str, Any]) -> SenderMarks:
    profile = message.get("bot_profile")
    profile = profile if isinstance(profile, dict) else {}
    bot_id = _str(message.get("bot_id")) or _str(profile.get("id"))
    app_id = _str(message.get("app_id")) or _str(profile.get("app_id"))
    return SenderMarks(
        user_id=_str(message.get("user")),
        bot_id=bot_id,
        app_id=app_id,
        is_bot=bot_id is not None or message.get("subtype") == "bot_message",
    )


def _bot_author(message: Mapping[str, Any]) -> Author | None:
    """The name and icon an app posted under; None for a person's message."""
    profile = message.get("bot_profile")
    profile = profile if isinstance(profile, dict) else {}
    if message.get("subtype") != "bot_message" and not message.get("bot_id"):
        return None
    icons: Mapping[str, Any] = {}
    for candidate in (message.get("icons"), profile.get("icons")):
        if isinstance(candidate, dict) and candidate:
            icons = candidate
            break
    avatar = (
        _str(icons.get("image_72")) or _str(icons.get("image_48")) or _str(icons.get("image_36"))
    )
    name = _str(message.get("username")) or _str(profile.get("name"))
    if name is None:
        # A bot user posting without a custom name: users.info knows it by its user id.
        return None
    return Author(name=name, avatar_url=avatar, external_id=_str(message.get("bot_id")))


def _attachments(message: Mapping[str, Any]) -> tuple[Attachment, ...]:
    files = message.get("files")
    if not isinstance(files, list):
        # Before 2018 a file_share message carried one `file` (old exports still do).
        legacy = message.get("file")
        files = [legacy] if isinstance(legacy, dict) else []
    found: list[Attachment] = []
    for item in files:
        if not isinstance(item, dict):
            continue
        url = _str(item.get("permalink")) or _str(item.get("url_private"))
        if url is None:  # a deleted file (mode tombstone) or one hidden by the plan's limits
            continue
        found.append(
            Attachment(
                url=url,
                name=_str(item.get("name")) or _str(item.get("title")),
                mime_type=_str(item.get("mimetype")),
            )
        )
    return tuple(found)


def _blocks(message: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    blocks = message.get("blocks")
    if not isinstance(blocks, list):
        return None
    return [dict(block) for block in blocks if isinstance(block, dict)] or None


def _content(
    kind: Literal["created", "edited"],
    channel: str,
    ts: str,
    message: Mapping[str, Any],
    occurred_ts: str | None,
    subtype: str | None,
) -> MessageChange:
    ignored = subtype if subtype is not None and subtype not in _CONTENT_SUBTYPES else None
    return MessageChange(
        kind=kind,
        external_channel_id=channel,
        external_message_id=ts,
        occurred_at=_when(occurred_ts or ts),
        text=_str(message.get("text")) or "",
        external_thread_id=_thread(message, ts),
        author=_bot_author(message),
        sender=_sender(message),
        attachments=_attachments(message),
        blocks=_blocks(message),
        subtype=subtype,
        ignored=ignored,
    )


def _created(channel: str, subtype: str | None, event: Mapping[str, Any]) -> MessageChange | None:
    ts = _str(event.get("ts"))
    if ts is None:
        return None
    return _content("created", channel, ts, event, ts, subtype)


def _changed(channel: str, event: Mapping[str, Any]) -> MessageChange | None:
    message = event.get("message")
    if not isinstance(message, dict):
        return None
    ts = _str(message.get("ts"))
    if ts is None:
        return None
    inner = _str(message.get("subtype"))
    edited_at = _str(event.get("ts")) or _str(event.get("event_ts"))
    if inner == "tombstone":
        # A thread's root deleted while replies remain: Slack keeps a "This message was
        # deleted." stand-in and says so with message_changed, never with message_deleted.
        previous = event.get("previous_message")
        marks = previous if isinstance(previous, dict) else message
        return MessageChange(
            kind="deleted",
            external_channel_id=channel,
            external_message_id=ts,
            occurred_at=_when(edited_at or ts),
            sender=_sender(marks),
            subtype="tombstone",
        )
    change = _content("edited", channel, ts, message, edited_at, inner)
    previous = event.get("previous_message")
    if (
        "edited" not in message
        and isinstance(previous, dict)
        and previous.get("text") == message.get("text")
        and previous.get("files") == message.get("files")
    ):
        # Not an edit: Slack also says message_changed when a reply changes a root's
        # reply count or a link is unfurled. The text is what it was.
        return replace(change, subtype="message_changed", ignored="unchanged")
    return change


def _deleted(channel: str, event: Mapping[str, Any]) -> MessageChange | None:
    ts = _str(event.get("deleted_ts"))
    if ts is None:
        return None
    previous = event.get("previous_message")
    previous = previous if isinstance(previous, dict) else {}
    return MessageChange(
        kind="deleted",
        external_channel_id=channel,
        external_message_id=ts,
        occurred_at=_when(_str(event.get("ts")) or ts),
        external_thread_id=_thread(previous, ts),
        sender=_sender(previous),
        subtype="message_deleted",
    )


def _tagged(message: Mapping[str, Any], tag: str, me: BotIdentity) -> bool:
    metadata = message.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("event_type") != METADATA_EVENT_TYPE:
        return False
    payload = metadata.get("event_payload")
    if not isinstance(payload, dict) or payload.get("message_id") != tag:
        return False
    sender = _sender(message)
    return (sender.bot_id is not None and sender.bot_id == me.bot_id) or (
        sender.app_id is not None and sender.app_id == me.app_id
    )
