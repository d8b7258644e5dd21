"""Discord as a chat provider for sync: Gateway message dispatches → message changes,
Discord markup → readable text, and posts, edits and deletes through a channel webhook
(replies through the bot), over `DiscordApi`.

Outbound. Each mapped channel gets one webhook owned by our application, found again with
`GET /channels/{id}/webhooks` (`application_id` ours) or created (name "hookhub"); its
token is kept in memory only. A post goes through it with `wait=true`, the chat author as
`username`/`avatar_url` and `allowed_mentions: {"parse": []}` (a chat message never pings
@everyone or anyone). Webhooks cannot reply, so a reply goes out as the bot with
`message_reference` and the author's name in bold on its first line. A message longer than
Discord's 2,000 characters is cut with "…" rather than split: one chat message stays one
Discord message, which its edits and its deletion can find again.

Inbound. Only guild channels, and only DEFAULT (0) and REPLY (19) messages, are bridged:
joins, pins, boosts, thread notices and the other system types come back `ignored`, as do
direct messages and updates that are no edit (an embed resolved, a pin: no `content` or
no `edited_timestamp`). Messages of other bots and webhooks are bridged like people's;
ours are recognised by `is_own`. A sticker (`sticker_items`) is named in the text and linked
to its file (`with_stickers`, as the export reader does): a message that is only a sticker
is a message.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
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
    SenderMarks,
    UserLookup,
    cut,
    utf16_units,
)
from shared.providers.discord.api import MAX_CONTENT, DiscordApi, WebhookGone
from shared.providers.discord.command import COMMAND, shape
from shared.providers.history import Conversation, HistoryRecord, Quarantined

CDN = "https://cdn.discordapp.com"
# Where a GIF sticker is served instead of the CDN (docs: reference, "Image Formatting").
MEDIA = "https://media.discordapp.net"
WEBHOOK_NAME = "hookhub"
# Discord's epoch (docs: reference, "Snowflakes"): the first second of 2015, in ms.
DISCORD_EPOCH_MS = 1_420_070_400_000
# Webhook usernames: 1 to 80 characters (docs: resources/webhook, Create Webhook).
MAX_USERNAME = 80

# Permission bits (docs: topics/permissions, "Bitwise Permission Flags").
ADMINISTRATOR = 1 << 3
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
READ_MESSAGE_HISTORY = 1 << 16
MANAGE_WEBHOOKS = 1 << 29
ALL_PERMISSIONS = (1 << 64) - 1
# What sync needs in a mapped channel, and how Discord's client names each.
NEEDED = {
    VIEW_CHANNEL: "View Channel",
    SEND_MESSAGES: "Send Messages",
    READ_MESSAGE_HISTORY: "Read Message History",
    MANAGE_WEBHOOKS: "Manage Webhooks",
}
# Channels a webhook can post in and a bot can read: GUILD_TEXT, GUILD_ANNOUNCEMENT.
TEXT_CHANNEL_TYPES = frozenset({0, 5})

DEFAULT, REPLY = 0, 19
_MESSAGE_TYPES = {
    1: "recipient_add",
    2: "recipient_remove",
    3: "call",
    4: "channel_name_change",
    5: "channel_icon_change",
    6: "channel_pinned_message",
    7: "user_join",
    8: "guild_boost",
    9: "guild_boost_tier_1",
    10: "guild_boost_tier_2",
    11: "guild_boost_tier_3",
    12: "channel_follow_add",
    14: "guild_discovery_disqualified",
    15: "guild_discovery_requalified",
    16: "guild_discovery_grace_period_initial_warning",
    17: "guild_discovery_grace_period_final_warning",
    18: "thread_created",
    20: "chat_input_command",
    21: "thread_starter_message",
    22: "guild_invite_reminder",
    23: "context_menu_command",
    24: "auto_moderation_action",
    25: "role_subscription_purchase",
    26: "interaction_premium_upsell",
    27: "stage_start",
    28: "stage_end",
    29: "stage_speaker",
    31: "stage_topic",
    32: "guild_application_premium_subscription",
    36: "guild_incident_alert_mode_enabled",
    37: "guild_incident_alert_mode_disabled",
    38: "guild_incident_report_raid",
    39: "guild_incident_report_false_alarm",
    44: "purchase_notification",
    46: "poll_result",
}
# A sticker's `format_type` (docs: resources/sticker, "Sticker Format Types": PNG 1, APNG 2,
# LOTTIE 3, GIF 4) → its file's extension on the CDN (docs: reference, "Image Formatting": PNG
# for PNG and APNG, Lottie JSON for LOTTIE, GIF for GIF).
STICKER_FILES = {1: "png", 2: "png", 3: "json", 4: "gif"}
_CREATED_OR_EDITED: dict[str, Literal["created", "edited"]] = {
    "MESSAGE_CREATE": "created",
    "MESSAGE_UPDATE": "edited",
}

# Discord's markup (docs: reference, "Message Formatting").
_MARKUP = re.compile(
    r"<(?:"
    r"@!?(?P<user>\d+)"
    r"|#(?P<channel>\d+)"
    r"|@&(?P<role>\d+)"
    r"|a?:(?P<emoji>\w+):\d+"
    r"|t:(?P<time>-?\d+)(?::[tTdDfFR])?"
    r"|/(?P<command>[\w -]+):\d+"
    r")>"
)
_FORBIDDEN_IN_NAMES = re.compile(r"discord|clyde", re.IGNORECASE)
# Look-alike letters that keep a name readable while Discord's name check passes it.
_LOOKALIKE = {"o": "\u043e", "O": "\u041e", "y": "\u0443", "Y": "\u0423"}
_MARKDOWN = re.compile(r"([\\*_~`|>\[\]])")


@dataclass(frozen=True)
class Webhook:
    id: str
    token: str


class DiscordChat:
    """The chat contract over Discord's REST API (`DiscordApi`). Its state is in memory
    only: the channel webhooks (id and token) per bot and channel, every webhook id it
    found or made (for `is_own`), the application id per bot, and the names of channels and
    roles it has seen (for `render`)."""

    name = "discord"
    # An application command is deferred ephemeral (shared.providers.discord.webhooks):
    # the response that follows is the user's alone.
    private_answers = True

    def __init__(self, api: DiscordApi) -> None:
        self.api = api
        self._webhooks: dict[tuple[str, str], Webhook] = {}
        self._webhook_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._own_webhooks: set[str] = set()
        self._identities: dict[str, BotIdentity] = {}
        self._channel_names: dict[str, str] = {}
        self._role_names: dict[str, str] = {}

    def pace_seconds(self, external_channel_id: str) -> float:
        """0: Discord's pace is whatever its bucket headers say, not a constant; `DiscordApi`
        raises RateLimited before a request its bucket would refuse."""
        return 0.0

    # -- who we are, what we see -------------------------------------------------------------

    async def identity(self, token: str) -> BotIdentity:
        """The bot user (`/users/@me`) and its application (`/oauth2/applications/@me`):
        the application id is what our webhooks' messages carry, and it is not the bot
        user's id in general."""
        me = await self.api.me(token)
        app = await self.api.application(token)
        identity = BotIdentity(
            user_id=_str(me.get("id")),
            app_id=_str(app.get("id")),
            name=_str(me.get("global_name")) or _str(me.get("username")),
        )
        self._identities[_digest(token)] = identity
        return identity

    async def register_command(self, token: str) -> bool:
        """hookhub's `/hookhub` made for the bot's application where it has none of this
        shape (shared.providers.discord.command): True when it was made or overwritten. Its
        commands are read first, so that a restart spends none of the 200 new commands a
        day Discord allows, nor resets what people see."""
        app_id = (await self._identity(token)).app_id
        if not app_id:
            return False
        for command in await self.api.application_commands(token, app_id):
            if command.get("name") == COMMAND["name"] and shape(command) == shape(COMMAND):
                return False
        await self.api.create_application_command(token, app_id, COMMAND)
        return True

    async def _identity(self, token: str) -> BotIdentity:
        """The identity `identity` last found for this token (a bot's ids never change)."""
        known = self._identities.get(_digest(token))
        return known if known is not None else await self.identity(token)

    async def channel(self, token: str, external_channel_id: str) -> ChannelInfo:
        """The channel, once the bot is known to be able to bridge it: a guild text or
        announcement channel where the bot's permissions (computed as Discord documents them,
        topics/permissions) include View Channel, Send Messages, Read Message History and
        Manage Webhooks. Else PermanentError (scope channel) saying what to grant."""
        try:
            found = await self.api.channel(token, external_channel_id)
        except PermanentError as exc:
            if exc.error != "missing_access":
                raise
            # Discord's answer when the bot is not in the server or lacks View Channel.
            raise PermanentError(
                f"the Discord bot cannot see channel {external_channel_id}: invite it to the "
                "server and grant it View Channel, Send Messages, Read Message History and "
                "Manage Webhooks there",
                "missing_access",
                "channel",
            ) from exc
        channel_id = _str(found.get("id")) or external_channel_id
        name = _str(found.get("name")) or channel_id
        guild_id = _str(found.get("guild_id"))
        if guild_id is None:
            raise PermanentError(
                f"Discord channel {channel_id} is not in a server: only server channels are "
                "bridged",
                "not_guild_channel",
                "channel",
            )
        if found.get("type") not in TEXT_CHANNEL_TYPES:
            raise PermanentError(
                f"Discord channel #{name} is not a text or announcement channel "
                f"(type {found.get('type')})",
                "unsupported_channel_type",
                "channel",
            )
        me = await self._identity(token)
        if me.user_id is None:
            raise PermanentError("Discord /users/@me answered without an id", "no_user_id")
        roles = await self.api.guild_roles(token, guild_id)
        member = await self.api.guild_member(token, guild_id, me.user_id)
        for role in roles:
            if _str(role.get("id")) and _str(role.get("name")):
                self._role_names[str(role["id"])] = str(role["name"])
        granted = permissions(guild_id, roles, member, found, datetime.now(UTC))
        missing = [label for bit, label in NEEDED.items() if not granted & bit]
        if missing:
            raise PermanentError(
                f"the Discord bot lacks {', '.join(missing)} in #{name}: grant "
                f"{'it' if len(missing) == 1 else 'them'} to the bot's role in the server "
                "settings or in the channel's permissions",
                "missing_permissions",
                "channel",
            )
        self._channel_names[channel_id] = name
        return ChannelInfo(id=channel_id, name=name)

    async def user(self, token: str, external_user_id: str) -> Author | None:
        try:
            found = await self.api.user(token, external_user_id)
        except PermanentError as exc:
            if exc.error == "unknown_user":
                return None
            raise
        user_id = _str(found.get("id")) or external_user_id
        return Author(
            name=_str(found.get("global_name")) or _str(found.get("username")) or user_id,
            avatar_url=avatar_url(user_id, found.get("avatar")),
            external_id=user_id,
        )

    # -- outbound ------------------------------------------------------------------------------

    async def post(self, token: str, external_channel_id: str, post: OutboundPost) -> Posted:
        if post.thread_external_id:
            body: dict[str, Any] = {
                "content": reply_content(post),
                "message_reference": {
                    "message_id": post.thread_external_id,
                    "fail_if_not_exists": False,
                },
                "allowed_mentions": {"parse": [], "replied_user": False},
            }
            sent = await self.api.create_message(token, external_channel_id, body)
            reference = sent.get("message_reference")
            thread = _str(reference.get("message_id")) if isinstance(reference, Mapping) else None
            return Posted(external_message_id=_message_id(sent), external_thread_id=thread)
        body = {
            "content": content(post),
            "username": webhook_username(post.author.name),
            "allowed_mentions": {"parse": []},
        }
        if post.actions:
            body["components"] = buttons(post.actions)
        if post.author.avatar_url and post.author.avatar_url.startswith(("https://", "http://")):
            body["avatar_url"] = post.author.avatar_url
        made: dict[str, Any] | None = None
        for attempt in (1, 2):
            webhook = await self._webhook(token, external_channel_id)
            try:
                made = await self.api.execute_webhook(webhook.id, webhook.token, body, wait=True)
                break
            except WebhookGone:
                self._forget(token, external_channel_id)
                if attempt == 2:
                    raise
        if made is None:
            raise PermanentError(
                "Discord executed the webhook without answering the message", "no_message"
            )
        return Posted(external_message_id=_message_id(made))

    async def edit(
        self, token: str, external_channel_id: str, external_message_id: str, post: OutboundPost
    ) -> None:
        """Through the webhook for its messages; a message the webhook does not know
        (`unknown_message`) is one of the bot's replies, edited as the bot."""
        body: dict[str, Any] = {"content": content(post), "allowed_mentions": {"parse": []}}
        if post.actions is not None:  # a card: its buttons now (none: the rows emptied)
            body["components"] = buttons(post.actions)
        for attempt in (1, 2):
            webhook = await self._webhook(token, external_channel_id)
            try:
                await self.api.edit_webhook_message(
                    webhook.id, webhook.token, external_message_id, body
                )
                return
            except WebhookGone:
                self._forget(token, external_channel_id)
                if attempt == 2:
                    raise
            except PermanentError as exc:
                if exc.error != "unknown_message":
                    raise
                break
        await self.api.edit_message(
            token,
            external_channel_id,
            external_message_id,
            {"content": reply_content(post), "allowed_mentions": {"parse": []}},
        )

    async def delete(self, token: str, external_channel_id: str, external_message_id: str) -> None:
        """Through the webhook, else as the bot (a reply); a message already gone is no
        failure."""
        for attempt in (1, 2):
            webhook = await self._webhook(token, external_channel_id)
            try:
                if await self.api.delete_webhook_message(
                    webhook.id, webhook.token, external_message_id
                ):
                    return
                break
            except WebhookGone:
                self._forget(token, external_channel_id)
                if attempt == 2:
                    raise
        await self.api.delete_message(token, external_channel_id, external_message_id)

    async def find_post(
        self,
        token: str,
        external_channel_id: str,
        tag: str,
        since: datetime,
        thread_external_id: str | None = None,
    ) -> Posted | None:
        """None: a Discord message carries no metadata of ours to search for (webhook
        messages have no hidden field, and `nonce` is not kept on the message)."""
        return None

    async def _webhook(self, token: str, channel_id: str) -> Webhook:
        """Our application's webhook in the channel: cached, else found, else created."""
        key = (_digest(token), channel_id)
        cached = self._webhooks.get(key)
        if cached is not None:
            return cached
        lock = self._webhook_locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._webhooks.get(key)
            if cached is not None:
                return cached
            app_id = (await self._identity(token)).app_id
            found: Webhook | None = None
            for hook in await self.api.channel_webhooks(token, channel_id):
                hook_id, hook_token = _str(hook.get("id")), _str(hook.get("token"))
                if hook_id and hook_token and app_id and _str(hook.get("application_id")) == app_id:
                    found = Webhook(hook_id, hook_token)
                    break
            if found is None:
                made = await self.api.create_webhook(token, channel_id, WEBHOOK_NAME)
                hook_id, hook_token = _str(made.get("id")), _str(made.get("token"))
                if not hook_id or not hook_token:
                    raise PermanentError(
                        "Discord created a webhook without its id and token",
                        "webhook_without_token",
                        "channel",
                    )
                found = Webhook(hook_id, hook_token)
            self._webhooks[key] = found
            self._own_webhooks.add(found.id)
            return found

    def _forget(self, token: str, channel_id: str) -> None:
        self._webhooks.pop((_digest(token), channel_id), None)

    # -- inbound -------------------------------------------------------------------------------

    async def history(
        self, token: str, external_channel_id: str, since: datetime, limit: int
    ) -> list[MessageChange]:
        """`GET /channels/{id}/messages?after=` from the snowflake of `since`, 100 a page,
        each page continuing after the newest message of the last."""
        after = snowflake_at(since)
        changes: list[MessageChange] = []
        while len(changes) < limit:
            page = await self.api.messages(token, external_channel_id, after=after, limit=100)
            if not page:
                break
            page.sort(key=lambda message: int(_message_id(message) or 0))
            for message in page:
                # History messages carry no guild_id; a mapped channel is a guild's.
                dispatch = {"guild_id": "-", **message, "channel_id": external_channel_id}
                changes.extend(self.changes("MESSAGE_CREATE", dispatch))
            after = _message_id(page[-1])
            if len(page) < 100:
                break
        return changes[:limit]

    # -- import (SPEC §9) ------------------------------------------------------------------

    async def text_channels(self, token: str, guild_id: str) -> list[Conversation]:
        """The guild's channels that hold messages (text and announcement channels)."""
        channels = await self.api.guild_channels(token, guild_id)
        return [
            Conversation(id=cid, name=_str(c.get("name")) or cid, kind="channel")
            for c in channels
            if c.get("type") in _TEXT_CHANNEL_TYPES and (cid := _str(c.get("id")))
        ]

    async def import_records(
        self,
        token: str,
        external_channel_id: str,
        *,
        oldest: datetime | None,
        latest: datetime | None,
        after: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[HistoryRecord]:
        """The channel's messages oldest first: `after=` pages of 100 (Discord lists a page
        newest first; each is turned round), from `oldest` or the checkpoint's message
        (`{"after": id}`) up to `latest`. A rate limit or an outage is raised: the caller
        waits and asks again from the last checkpoint it kept."""
        cursor = _str((after or {}).get("after")) or (snowflake_at(oldest) if oldest else "0")
        start = oldest or snowflake_time(cursor) or datetime(2015, 1, 1, tzinfo=UTC)
        end = latest or datetime.now(UTC)
        span = max(1.0, (end - start).total_seconds())
        while True:
            page = await self.api.messages(token, external_channel_id, after=cursor, limit=100)
            ids = [(_str(message.get("id")), message) for message in page]
            listed = sorted(((int(i), i, m) for i, m in ids if i and i.isdigit()))
            for position, (_, message_id, message) in enumerate(listed):
                dispatch = {"guild_id": "-", **message, "channel_id": external_channel_id}
                found = self.changes("MESSAGE_CREATE", dispatch)
                moment = found[0].occurred_at if found else snowflake_time(message_id)
                if latest is not None and moment is not None and moment > latest:
                    return
                done = ((moment or end) - start).total_seconds() / span
                reactions = message.get("reactions")
                yield HistoryRecord(
                    checkpoint={"after": message_id},
                    change=found[0] if found else None,
                    quarantined=None
                    if found
                    else Quarantined("GET /channels/{id}/messages", position, "not a message"),
                    done=min(1.0, max(0.0, done)),
                    page_start=position == 0,
                    reactions=sum(
                        int(r.get("count") or 0) for r in reactions if isinstance(r, Mapping)
                    )
                    if isinstance(reactions, list)
                    else 0,
                )
            if len(ids) > len(listed):
                yield HistoryRecord(
                    checkpoint={"after": cursor},
                    quarantined=Quarantined(
                        "GET /channels/{id}/messages",
                        None,
                        f"{len(ids) - len(listed)} listed messages without an id",
                    ),
                )
            if len(page) < 100 or not listed:
                return
            cursor = listed[-1][1]

    def changes(self, event_type: str, payload: Mapping[str, Any]) -> list[MessageChange]:
        """MESSAGE_CREATE, MESSAGE_UPDATE, MESSAGE_DELETE and MESSAGE_DELETE_BULK dispatches
        (`d`) → changes; [] for any other dispatch or a payload without ids."""
        channel_id = _str(payload.get("channel_id"))
        if channel_id is None:
            return []
        direct = None if _str(payload.get("guild_id")) else "a direct message (not bridged)"
        if event_type in ("MESSAGE_DELETE", "MESSAGE_DELETE_BULK"):
            ids = (
                [payload.get("id")]
                if event_type == "MESSAGE_DELETE"
                else list(payload.get("ids") or [])
            )
            now = datetime.now(UTC)
            return [
                MessageChange(
                    kind="deleted",
                    external_channel_id=channel_id,
                    external_message_id=message_id,
                    occurred_at=now,
                    ignored=direct,
                )
                for message_id in (_str(i) for i in ids)
                if message_id is not None
            ]
        kind = _CREATED_OR_EDITED.get(event_type)
        message_id = _str(payload.get("id"))
        if kind is None or message_id is None:
            return []
        message_type = payload.get("type")
        raw_text = payload.get("content")
        text = raw_text if isinstance(raw_text, str) else ""
        attachments = _attachments(payload.get("attachments"))
        if message_type in (DEFAULT, REPLY) and payload.get("sticker_items"):
            text, attachments = with_stickers(
                text, attachments, _sticker_items(payload.get("sticker_items"))
            )
        subtype = "reply" if message_type == REPLY else None
        ignored = direct
        if kind == "edited" and ignored is None:
            # Checked first: a partial update (an embed resolved) carries no type either.
            if "content" not in payload:
                ignored = "an update without content (an embed or a flag changed)"
            elif not payload.get("edited_timestamp"):
                ignored = "an update that is no edit (an embed resolved, a pin)"
        if message_type not in (DEFAULT, REPLY):
            subtype = system_subtype(message_type)
            ignored = ignored or f"Discord system message ({subtype})"
        if ignored is None and not text and not attachments:
            ignored = (
                "the message carries no text, file or sticker (is the Message Content intent "
                "enabled for the bot?)"
            )
        stamp = payload.get("edited_timestamp") if kind == "edited" else payload.get("timestamp")
        return [
            MessageChange(
                kind=kind,
                external_channel_id=channel_id,
                external_message_id=message_id,
                occurred_at=_moment(stamp, message_id),
                text=text,
                external_thread_id=_reply_to(payload) if message_type == REPLY else None,
                author=_author(payload),
                sender=_sender(payload),
                attachments=attachments,
                subtype=subtype,
                ignored=ignored,
            )
        ]

    async def reply_privately(self, token: str, reply: PrivateReply) -> bool:
        """An ephemeral follow-up to the click's interaction (`flags` 64: the clicking user
        alone sees it), on the interaction's own token (the gateway answered the
        interaction at once, DEFERRED_UPDATE_MESSAGE, which a follow-up may come after).
        A token gone (its 15 minutes over, Discord's 401/404) is False."""
        application, interaction = reply.reply.get("application_id"), reply.reply.get("token")
        if not application or not interaction:
            return False
        body = {
            "content": cut(markup.render(reply.text, DISCORD_MARKUP), MAX_CONTENT),
            "flags": EPHEMERAL,
            "allowed_mentions": {"parse": []},
        }
        try:
            await self.api.create_followup(application, interaction, body)
        except PermanentError:  # TokenRejected among them: the interaction's, not the bot's
            return False
        return True

    def clicks(self, event_type: str, payload: Mapping[str, Any]) -> list[Click]:
        """A MESSAGE_COMPONENT interaction's click on one of our cards' buttons (its
        `custom_id` ours), from the Interactions Endpoint URL: the interaction's `id`, the
        message's, the guild member's user (docs.discord.com/developers/interactions/
        receiving-and-responding, "Interaction Object"); its `application_id` and `token`,
        what a follow-up to it is made with (`reply_privately`)."""
        if event_type != COMPONENT_EVENT:
            return []
        data, message = payload.get("data"), payload.get("message")
        if not isinstance(data, Mapping) or not isinstance(message, Mapping):
            return []
        custom_id = _str(data.get("custom_id")) or ""
        if data.get("component_type") != BUTTON or not custom_id.startswith(CUSTOM_ID):
            return []
        member = payload.get("member")
        user = member.get("user") if isinstance(member, Mapping) else payload.get("user")
        user = user if isinstance(user, Mapping) else {}
        interaction = _str(payload.get("id"))
        channel = _str(payload.get("channel_id")) or _str(message.get("channel_id"))
        message_id, user_id = _str(message.get("id")), _str(user.get("id"))
        if not (interaction and channel and message_id and user_id):
            return []
        return [
            Click(
                interaction_id=interaction,
                external_channel_id=channel,
                external_message_id=message_id,
                action_id=custom_id.removeprefix(CUSTOM_ID),
                user_id=user_id,
                user_name=_str(user.get("global_name")) or _str(user.get("username")),
                reply=_followup(payload),
            )
        ]

    def commands(self, event_type: str, payload: Mapping[str, Any]) -> list[Invocation]:
        """An APPLICATION_COMMAND interaction of the `/hookhub` chat input command (its
        `data.name`; `data.options` its words: a subcommand's name, then its options'
        values, in order), from the Interactions Endpoint URL: the interaction's `id`, its
        channel, the guild member's user, and its `token` for the answer
        (docs.discord.com/developers/interactions/receiving-and-responding, "Interaction
        Object"; docs.discord.com/developers/interactions/application-commands,
        "Application Command Interaction Data Option Structure")."""
        if event_type != COMMAND_EVENT:
            return []
        data = payload.get("data")
        if not isinstance(data, Mapping) or data.get("name") != COMMAND_NAME:
            return []
        member = payload.get("member")
        user = member.get("user") if isinstance(member, Mapping) else payload.get("user")
        user = user if isinstance(user, Mapping) else {}
        interaction, channel = _str(payload.get("id")), _str(payload.get("channel_id"))
        user_id, token = _str(user.get("id")), _str(payload.get("token"))
        application = _str(payload.get("application_id"))
        if not (interaction and channel and user_id and token and application):
            return []
        return [
            Invocation(
                interaction_id=interaction,
                external_channel_id=channel,
                text=" ".join(_option_words(data.get("options"))),
                user_id=user_id,
                user_name=_str(user.get("global_name")) or _str(user.get("username")),
                reply={"application_id": application, "token": token},
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
        """The deferred (ephemeral) response edited to the answer, whether it is private or
        also said in the channel: Discord shows "thinking…" until it is."""
        application, interaction_token = reply.get("application_id"), reply.get("token")
        if not application or not interaction_token:
            return
        post = OutboundPost(text=text, author=Author(name=WEBHOOK_NAME))
        await self.api.edit_interaction_response(
            application,
            interaction_token,
            {"content": content(post), "allowed_mentions": {"parse": []}},
        )

    def is_own(self, change: MessageChange, identity: BotIdentity) -> bool:
        """Sent by our bot user, through a webhook this process found or made, or through
        any webhook of our application (`application_id`, for webhooks of ours that this
        process has not met since it started)."""
        sender = change.sender
        if identity.user_id is not None and sender.user_id == identity.user_id:
            return True
        if sender.bot_id is not None and sender.bot_id in self._own_webhooks:
            return True
        return identity.app_id is not None and sender.app_id == identity.app_id

    async def render(self, text: str, users: UserLookup) -> str:
        """`<@id>`/`<@!id>` → `@Name`, `<#id>` → `#channel` (a channel `channel` has seen,
        else `#<id>`), `<@&id>` → `@role` (by name when `channel` has seen the server's
        roles), `<:name:id>`/`<a:name:id>` → `:name:`, `</cmd:id>` → `/cmd`, `<t:unix:f>` →
        the ISO 8601 time in UTC. Markdown is left as it is."""
        ids = sorted({m.group("user") for m in _MARKUP.finditer(text) if m.group("user")})
        found = await asyncio.gather(*(users(user_id) for user_id in ids))
        names = {user_id: author.name for user_id, author in zip(ids, found, strict=True) if author}
        return _MARKUP.sub(lambda match: self._readable(match, names), text)

    def _readable(self, match: re.Match[str], names: Mapping[str, str]) -> str:
        return _readable_markup(match, names, self._channel_names, self._role_names)


def readable(
    text: str,
    users: Mapping[str, str],
    channels: Mapping[str, str] | None = None,
    roles: Mapping[str, str] | None = None,
) -> str:
    """Discord markup made readable as `DiscordChat.render` makes it, with the names the
    caller knows (users', channels' and roles' by id; an unknown user is `@<id>`, an unknown
    channel `#<id>`, an unknown role `@role`). Text without markup comes back as it is.
    For a reader that knows the names itself (a DiscordChatExporter file's `mentions`)."""
    known_channels = channels or {}
    known_roles = roles or {}
    return _MARKUP.sub(
        lambda match: _readable_markup(match, users, known_channels, known_roles), text
    )


def has_markup(text: str) -> bool:
    """Whether the text holds Discord markup that `readable` would change."""
    return "<" in text and _MARKUP.search(text) is not None


def system_subtype(message_type: Any) -> str:
    """The subtype a message of a type other than DEFAULT and REPLY is ignored under
    (`thread_created`, `user_join`, ...; `type_<n>` for a type without a name here)."""
    known = _MESSAGE_TYPES.get(message_type) if type(message_type) is int else None
    return known or f"type_{message_type}"


def _readable_markup(
    match: re.Match[str],
    names: Mapping[str, str],
    channels: Mapping[str, str],
    roles: Mapping[str, str],
) -> str:
    if user := match.group("user"):
        return "@" + names.get(user, user)
    if channel := match.group("channel"):
        return "#" + channels.get(channel, channel)
    if role := match.group("role"):
        return "@" + roles.get(role, "role")
    if emoji := match.group("emoji"):
        return f":{emoji}:"
    if command := match.group("command"):
        return "/" + command
    stamp = int(match.group("time"))
    try:
        return datetime.fromtimestamp(stamp, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return match.group(0)


# -- permissions ----------------------------------------------------------------------------


def permissions(
    guild_id: str,
    roles: list[dict[str, Any]],
    member: Mapping[str, Any],
    channel: Mapping[str, Any],
    now: datetime,
) -> int:
    """A member's permissions in a channel, as Discord documents it (topics/permissions,
    "Permission Overwrites"): @everyone's and the member's roles' permissions, ADMINISTRATOR
    granting everything, then the channel's overwrites for @everyone, for the member's
    roles (all denies, then all allows) and for the member. A timed-out member keeps only
    View Channel and Read Message History. (The guild owner, who has every permission, is
    not looked up: a bot does not own the servers it bridges.)"""
    by_id = {_str(role.get("id")): _bits(role.get("permissions")) for role in roles}
    member_roles = {_str(r) for r in member.get("roles") or []} - {guild_id}
    user = member.get("user")
    user_id = _str(user.get("id")) if isinstance(user, Mapping) else None
    base = by_id.get(guild_id, 0)
    for role_id in member_roles:
        base |= by_id.get(role_id, 0)
    if base & ADMINISTRATOR:
        return ALL_PERMISSIONS
    overwrites = {
        _str(o.get("id")): o
        for o in channel.get("permission_overwrites") or []
        if isinstance(o, Mapping)
    }
    granted = base
    everyone = overwrites.get(guild_id)
    if everyone is not None:
        granted = (granted & ~_bits(everyone.get("deny"))) | _bits(everyone.get("allow"))
    allow = deny = 0
    for role_id in member_roles:
        overwrite = overwrites.get(role_id)
        if overwrite is not None and overwrite.get("type") in (0, "0", None):
            allow |= _bits(overwrite.get("allow"))
            deny |= _bits(overwrite.get("deny"))
    granted = (granted & ~deny) | allow
    mine = overwrites.get(user_id) if user_id else None
    if mine is not None and mine.get("type") in (1, "1", None):
        granted = (granted & ~_bits(mine.get("deny"))) | _bits(mine.get("allow"))
    if _timed_out(member.get("communication_disabled_until"), now):
        granted &= VIEW_CHANNEL | READ_MESSAGE_HISTORY
    return granted


def _bits(value: Any) -> int:
    """Permissions are strings of a decimal integer since API v8."""
    if isinstance(value, bool):
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _timed_out(until: Any, now: datetime) -> bool:
    moment = _parse_time(until)
    return moment is not None and moment > now


# -- outbound formatting ---------------------------------------------------------------------


def webhook_username(name: str) -> str:
    """The chat author's name as a webhook `username` Discord accepts: whitespace trimmed
    and collapsed, 1 to 80 characters, and "discord" or "clyde" (which Discord refuses in
    any case) written with a look-alike Cyrillic letter so that it still reads the same."""
    cleaned = " ".join(name.split()) or "unknown"
    cleaned = _FORBIDDEN_IN_NAMES.sub(_disguise, cleaned)
    return cut(cleaned, MAX_USERNAME)


def _disguise(match: re.Match[str]) -> str:
    word = match.group(0)
    letter = 4 if word.lower() == "discord" else 2  # the o of discord, the y of clyde
    return word[:letter] + _LOOKALIKE[word[letter]] + word[letter + 1 :]


# A card's buttons (docs.discord.com/developers/components/reference, "Action Row",
# "Button"): action rows of at most 5 buttons, at most 5 rows; a button's label at most 80
# characters, its `custom_id` 100, ours `hh:` and the card action's id.
COMPONENT_EVENT = "message_component"
# hookhub's command: an application command interaction (type 2) of the command named so
# (docs/acting.md, "Commands in the networks", has its JSON to register).
COMMAND_EVENT = "application_command"
COMMAND_NAME = "hookhub"
# Option types (application-commands, "Application Command Option Type").
_SUB_COMMAND, _SUB_COMMAND_GROUP = 1, 2
ACTION_ROW, BUTTON = 1, 2
CUSTOM_ID = "hh:"
# A message flag (docs.discord.com/developers/resources/message, "Message Flags"): only the
# user of the interaction sees the message.
EPHEMERAL = 1 << 6
BUTTONS_A_ROW, MAX_ROWS, LABEL_CHARS, CUSTOM_ID_CHARS = 5, 5, 80, 100
_BUTTON_STYLES = {"primary": 1, "default": 2, "danger": 4}  # Primary, Secondary, Danger


def buttons(actions: tuple[CardAction, ...]) -> list[dict[str, Any]]:
    """A card's actions as action rows of buttons ([] for none: an edit empties the rows)."""
    made = [
        {
            "type": BUTTON,
            "style": _BUTTON_STYLES.get(action.style, 2),
            "label": cut(action.label, LABEL_CHARS),
            "custom_id": CUSTOM_ID + action.id,
        }
        for action in actions
        if len(CUSTOM_ID + action.id) <= CUSTOM_ID_CHARS
    ][: BUTTONS_A_ROW * MAX_ROWS]
    return [
        {"type": ACTION_ROW, "components": made[i : i + BUTTONS_A_ROW]}
        for i in range(0, len(made), BUTTONS_A_ROW)
    ]


class DiscordMarkup(markup.Markdown):
    """Discord's Markdown ("Markdown Text 101",
    https://support.discord.com/hc/en-us/articles/210298617): `**bold**`, `*italic*`,
    `~~strike~~`, code spans and blocks, `>` quotes, `-` lists, and the masked link
    `[text](url)`; in text a backslash before every character Discord could read as
    markup (a heading's `#`, a list's `-`, a mention's or timestamp's `<`), which Discord
    shows as the character alone. No mention pings (`allowed_mentions` is empty)."""

    def text(self, value: str) -> str:
        return _TEXT_MARKUP.sub(r"\\\1", value)


DISCORD_MARKUP = DiscordMarkup()
# What Discord could read as markup in text (its Markdown, headings and lists at a line's
# start, `<@…>` and `<t:…>`): escaped with a backslash.
_TEXT_MARKUP = re.compile(r"([\\*_~`|>\[\]#\-<])")


def content(post: OutboundPost) -> str:
    """The text, then one link a line per attachment (`[name](url)`), within 2,000
    characters: the text is cut with "…" to leave room for the links."""
    return _fit(_text(post), _links(post))


def reply_content(post: OutboundPost) -> str:
    """As `content`, after the author's name in bold on the first line (a reply goes out as
    the bot, which cannot take the author's name and avatar)."""
    author = cut(" ".join(post.author.name.split()) or "unknown", MAX_USERNAME)
    return _fit(_text(post), _links(post), head=f"**{escape_markdown(author)}**")


def _text(post: OutboundPost) -> str:
    """The chat's text as it is (Discord shows plain text as written), or hookhub's own
    CommonMark (`post.markup`) in Discord's Markdown."""
    if post.markup == "commonmark" and post.text:
        return markup.render(post.text, DISCORD_MARKUP)
    return post.text


def escape_markdown(text: str) -> str:
    """`text` shown as it is inside Discord markdown (bold, a link's label)."""
    return _MARKDOWN.sub(r"\\\1", text)


def _links(post: OutboundPost) -> list[str]:
    links = []
    for attachment in post.attachments:
        name = attachment.name
        if name and attachment.url.startswith(("https://", "http://")):
            links.append(f"[{escape_markdown(name)}]({attachment.url})")
        else:
            links.append(attachment.url)
    return links


def _fit(text: str, links: list[str], head: str | None = None) -> str:
    fixed = [line for line in [head] if line]
    fixed_size = sum(utf16_units(line) + 1 for line in fixed) + sum(
        utf16_units(link) + 1 for link in links
    )
    room = MAX_CONTENT - fixed_size
    body = cut(text, room) if text and room > 0 else ""
    lines = [*fixed, *([body] if body else []), *links]
    whole = "\n".join(lines)
    # Links alone past the limit (dozens of attachments): the whole is cut.
    return cut(whole, MAX_CONTENT)


# -- inbound ---------------------------------------------------------------------------------


def avatar_url(user_id: str, avatar: Any) -> str:
    """The user's avatar on Discord's CDN, else the default avatar Discord shows for them
    (docs: reference, "Image Formatting": `embed/avatars/{(id >> 22) % 6}.png`)."""
    if isinstance(avatar, str) and avatar:
        return f"{CDN}/avatars/{user_id}/{avatar}.png"
    try:
        index = (int(user_id) >> 22) % 6
    except ValueError:
        index = 0
    return f"{CDN}/embed/avatars/{index}.png"


# GUILD_TEXT, GUILD_ANNOUNCEMENT: the channel types an import reads.
_TEXT_CHANNEL_TYPES = (0, 5)


def snowflake_at(moment: datetime) -> str:
    """The smallest snowflake of a moment: `after=` it lists what was written since."""
    millis = int(moment.timestamp() * 1000) - DISCORD_EPOCH_MS
    return str(max(0, millis) << 22)


def snowflake_time(snowflake: str) -> datetime | None:
    try:
        ms = (int(snowflake) >> 22) + DISCORD_EPOCH_MS
        return datetime.fromtimestamp(ms / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _moment(stamp: Any, message_id: str) -> datetime:
    return _parse_time(stamp) or snowflake_time(message_id) or datetime.now(UTC)


def _reply_to(message: Mapping[str, Any]) -> str | None:
    reference = message.get("message_reference")
    if isinstance(reference, Mapping):
        return _str(reference.get("message_id"))
    return None


def _followup(interaction: Mapping[str, Any]) -> dict[str, str]:
    """What a follow-up to the interaction is made with: its application's id and token."""
    application, token = _str(interaction.get("application_id")), _str(interaction.get("token"))
    return {"application_id": application, "token": token} if application and token else {}


def _author(message: Mapping[str, Any]) -> Author | None:
    """`member.nick`, else `author.global_name`, else `author.username`; the avatar from
    `author.avatar` (for a webhook's message, the webhook's name and avatar)."""
    user = message.get("author")
    if not isinstance(user, Mapping) or _str(user.get("id")) is None:
        return None
    user_id = str(user["id"])
    member = message.get("member")
    nick = _str(member.get("nick")) if isinstance(member, Mapping) else None
    name = nick or _str(user.get("global_name")) or _str(user.get("username")) or user_id
    return Author(
        name=name, avatar_url=avatar_url(user_id, user.get("avatar")), external_id=user_id
    )


def _sender(message: Mapping[str, Any]) -> SenderMarks:
    user = message.get("author")
    user = user if isinstance(user, Mapping) else {}
    webhook_id = _str(message.get("webhook_id"))
    return SenderMarks(
        user_id=_str(user.get("id")),
        bot_id=webhook_id,
        app_id=_str(message.get("application_id")),
        is_bot=user.get("bot") is True or webhook_id is not None,
    )


def _attachments(value: Any) -> tuple[Attachment, ...]:
    found = []
    for item in value or []:
        if isinstance(item, Mapping) and _str(item.get("url")):
            found.append(
                Attachment(
                    url=str(item["url"]),
                    name=_str(item.get("filename")),
                    mime_type=_str(item.get("content_type")),
                )
            )
    return tuple(found)


def sticker_url(sticker_id: str, extension: str) -> str:
    """A sticker's file as Discord documents it (reference, "Image Formatting"):
    `stickers/{id}.{png|json|gif}` on the CDN, a GIF one on media.discordapp.net ("Sticker
    GIFs do not use the CDN base url")."""
    return f"{MEDIA if extension == 'gif' else CDN}/stickers/{sticker_id}.{extension}"


def with_stickers(
    text: str,
    attachments: tuple[Attachment, ...],
    stickers: Iterable[tuple[str | None, str | None]],
) -> tuple[str, tuple[Attachment, ...]]:
    """The text and attachments of a message with its stickers, each a (name, url): named on
    a first line as a Telegram sticker is (`[sticker: Wave]`, "sticker" when it has no name),
    each linked to its file (`Wave.json`) when its url is known. A message that is only a
    sticker is so a message, not an empty one."""
    names: list[str] = []
    files: list[Attachment] = []
    for name, url in stickers:
        label = name or "sticker"
        names.append(f"[sticker: {label}]")
        if url:
            files.append(Attachment(url=url, name=f"{label}.{url.rsplit('.', 1)[-1][:8]}"))
    if not names:
        return text, attachments
    line = " ".join(names)
    return (f"{line}\n{text}" if text else line), attachments + tuple(files)


def _sticker_items(value: Any) -> Iterator[tuple[str | None, str | None]]:
    """A message's `sticker_items` (docs: resources/message, Message Object; resources/
    sticker, "Sticker Item Object": `id`, `name`, `format_type`) as (name, url); a format
    this code does not know is taken as PNG, what Discord serves most stickers as."""
    for item in value if isinstance(value, list) else ():
        if not isinstance(item, Mapping):
            continue
        sticker_id = _str(item.get("id"))
        format_type = item.get("format_type")
        extension = STICKER_FILES.get(format_type, "png") if type(format_type) is int else "png"
        yield (
            _str(item.get("name")),
            sticker_url(sticker_id, extension) if sticker_id and sticker_id.isdigit() else None,
        )


def _message_id(message: Mapping[str, Any]) -> str:
    message_id = _str(message.get("id"))
    if message_id is None:
        raise PermanentError("Discord answered a message without its id", "no_message_id")
    return message_id


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def _option_words(options: Any) -> list[str]:
    """A command's options as the words typed: a subcommand (or group) its name and then
    its own options' words; any other option its value."""
    words: list[str] = []
    for option in options if isinstance(options, list) else []:
        if not isinstance(option, Mapping):
            continue
        if option.get("type") in (_SUB_COMMAND, _SUB_COMMAND_GROUP):
            words += [str(option.get("name") or ""), *_option_words(option.get("options"))]
        elif option.get("value") is not None and str(option["value"]).strip():
            words.append(str(option["value"]).strip())
    return [word for word in words if word]


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = str(value)
    return text or None
