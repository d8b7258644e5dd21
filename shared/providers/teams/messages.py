"""Microsoft Teams as a chat provider for sync (shared.providers.chat): Bot Framework
activities become message changes, and chat messages are sent through the Bot Connector.

Identifiers. A channel is its conversation id, `19:…@thread.tacv2` (`channelData.channel.id`);
a thread is its root message's id; a reply's conversation id is the channel's with
`;messageid=<root id>` (Teams' "Send a message to a channel thread"; activities in a thread
carry it so, and `replyToId` names the root too). The bot is `28:<app id>`, people `29:…`.

Activities read ("Messages in bot conversations", "Conversation events", Teams platform docs;
botbuilder-core 4.17.1 `teams_activity_handler.py`, which dispatches the same way):
`message` → created; `messageUpdate` with `channelData.eventType` `editMessage` → edited;
`messageDelete` with `softDeleteMessage` → deleted. `undeleteMessage` and other events are
not messages to bridge ([]).

Outbound text is sent with `textFormat: "xml"` ("Format your bot messages": `plain`, `markdown`,
`xml`; "Teams supports a subset of markdown and xml or HTML formatting tags"): every
character the text holds that HTML or Teams' Markdown could read as markup is written as a
character reference, so a sender's `<at>`, `<a>`, `**` or `[x](y)` shows as typed, and no
`mention` entity is ever sent, so no live @mention can be made. What Teams does not give a
bot: no history (`find_post` None, `history` []), no user lookup by id outside a
conversation (`user` None; every activity names its `from`).
"""

from __future__ import annotations

import functools
import html
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import httpx

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
    Recall,
    SenderMarks,
    TokenRejected,
    UserLookup,
    cut,
    shaped_as_command,
)
from shared.providers.teams.api import LOGIN_BASE, MULTI_TENANT, AppTokens, TeamsApi

# Teams' global serviceUrl for a bot's calls when no activity has said one
# ("Send proactive messages", Teams platform docs).
DEFAULT_SERVICE_URL = "https://smba.trafficmanager.net/teams/"
THREAD = ";messageid="
# A card's buttons: an Adaptive Card of `Action.Execute` actions (Universal Actions, card
# version 1.4; learn.microsoft.com/microsoftteams/platform/task-modules-and-cards/
# cards/universal-actions-for-adaptive-cards/overview), its `verb` the card action's id. A
# click comes as an `invoke` activity named `adaptiveCard/action`, its `replyToId` the card's
# message.
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
CARD_ACTION = "adaptiveCard/action"
CARD_VERSION = "1.4"
MAX_CARD_ACTIONS = 6  # what Teams shows of a card's actions
_CARD_STYLES = {"primary": "positive", "danger": "destructive"}
BOT_PREFIX = "28:"
# Teams refuses a message whose payload, encoded as UTF-16, passes 100 KB (413
# `MessageSizeTooBig`, "Format your bot messages"): 24 000 bytes of UTF-8 are at most 48 KB of
# UTF-16, whatever the characters.
MAX_BYTES = 24_000
_MAX_AUTHOR = 128
# What HTML or Teams' Markdown could read as markup: written as character references.
_MARKUP = set("<>&\"'*_~`#[]()!|\\-+=:@{}")
_TAG = re.compile(r"<[^>]*>")
_AT = re.compile(r"<at\b[^>]*>(.*?)</at>", re.IGNORECASE | re.DOTALL)
_BREAK = re.compile(r"<br\s*/?>|</p>|</div>", re.IGNORECASE)

_KINDS: dict[tuple[str, str | None], Literal["created", "edited", "deleted"]] = {
    ("message", None): "created",
    ("messageUpdate", "editMessage"): "edited",
    ("messageDelete", "softDeleteMessage"): "deleted",
}


T = TypeVar("T")


@dataclass(frozen=True)
class Credential:
    """An integration's bot, as `TeamsNetwork.credential` hands it to `TeamsChat` as
    `token`: compact JSON of its settings (app id, password, tenant)."""

    app_id: str
    app_password: str
    tenant: str = MULTI_TENANT
    service_url: str = ""  # the integration's setting: before a channel's own is known

    def encode(self) -> str:
        return json.dumps(
            {
                "app_id": self.app_id,
                "app_password": self.app_password,
                "tenant": self.tenant,
                "service_url": self.service_url,
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @staticmethod
    def decode(token: str) -> Credential | None:
        """The credential `token` is, or None for a bearer token."""
        if not token.startswith("{"):
            return None
        return _credential(token)


@functools.lru_cache(maxsize=1024)
def _credential(token: str) -> Credential:
    """A credential's JSON parsed once, not for every call (a refused one is not kept)."""
    try:
        value = json.loads(token)
        if not isinstance(value, dict):
            raise ValueError(token[:0])
    except ValueError:
        raise TokenRejected("the Teams credential is not JSON", "bad_credential") from None
    app_id, password = value.get("app_id"), value.get("app_password")
    if not isinstance(app_id, str) or not app_id or not isinstance(password, str):
        raise TokenRejected("the Teams credential lacks app_id or app_password", "bad_credential")
    return Credential(
        app_id,
        password,
        str(value.get("tenant") or MULTI_TENANT),
        str(value.get("service_url") or ""),
    )


class TeamsChat:
    """The chat contract over the Bot Connector for one bot (its Microsoft App ID). The
    serviceUrl of each channel is learned from the activities Teams sends (verified by
    `auth`), per team; else what sync keeps (`recall`); else `service_url`.

    Why per team and kept: a bot is to call back at the serviceUrl of the activities it
    received, the Bot Framework's `ConversationReference.service_url` (botbuilder-schema),
    which differs by region and tenant; the global endpoints "are for proactive messages
    only. Use these only if the incoming request serviceURL is unavailable. Once a
    serviceUrl has been returned from a prior conversation, you should cache and use that"
    (Microsoft 365 Agents SDK, `TeamsProactiveServiceEndpoints`). A team's channels are in
    one tenant: what one channel's activity says holds for the team's other channels."""

    name = "teams"
    # A bot's message in a channel is everyone's: nothing is said to one member alone.
    private_answers = False

    def __init__(
        self,
        api: TeamsApi,
        app_id: str = "",
        *,
        service_url: str = DEFAULT_SERVICE_URL,
        client: httpx.AsyncClient | None = None,
        login_base: str = LOGIN_BASE,
    ) -> None:
        self._api = api
        self._app_id = app_id
        self._default_service_url = service_url
        # The serviceUrl learned here, by team (or by channel, its team unknown), and each
        # channel's team.
        self._service_urls: dict[str, str] = {}
        self._teams: dict[str, str] = {}
        # What sync keeps (shared.providers.chat.Recalls): set by its composition root.
        self.recall: Recall = _nothing
        self._names: dict[str, str] = {}
        # A credential (`Credential.encode`) as `token`: its bot's AppTokens, one per app id,
        # password and tenant, so concurrent callers share one token request.
        self._client = client
        self._login_base = login_base
        self._tokens: dict[tuple[str, str, str], AppTokens] = {}

    def service_url(self, external_channel_id: str, token: str = "") -> str:
        """The serviceUrl the last verified activity of the channel's team said (a
        General channel's id is its team's), else what sync keeps for it, else the
        integration's `service_url` setting (in its credential), else the default. Whichever
        it is, `TeamsApi` holds it to the egress rules before calling it."""
        team = self._teams.get(external_channel_id, external_channel_id)
        learned = self._service_urls.get(team) or self.recall(external_channel_id)
        if learned:
            return learned
        credential = Credential.decode(token) if token else None
        if credential is not None and credential.service_url:
            return credential.service_url
        return self._default_service_url

    # -- credentials -------------------------------------------------------------------------

    def _app_tokens(self, credential: Credential) -> AppTokens:
        if self._client is None:
            raise PermanentError(
                "no HTTP client to ask Microsoft's login with", "no_client", "integration"
            )
        key = (credential.app_id, credential.app_password, credential.tenant)
        tokens = self._tokens.get(key)
        if tokens is None:
            tokens = self._tokens[key] = AppTokens(
                self._client,
                credential.app_id,
                credential.app_password,
                tenant=credential.tenant,
                login_base=self._login_base,
            )
        return tokens

    async def _bearer(self, token: str) -> tuple[str, AppTokens | None]:
        """The Connector bearer for `token`: a credential's access token, else `token`
        itself (an access token already had)."""
        credential = Credential.decode(token)
        if credential is None:
            return token, None
        tokens = self._app_tokens(credential)
        return await tokens.token(), tokens

    async def _with_bearer(self, token: str, call: Callable[[str], Awaitable[T]]) -> T:
        bearer, tokens = await self._bearer(token)
        try:
            return await call(bearer)
        except TokenRejected:
            if tokens is not None:
                tokens.forget()  # the next call asks Microsoft's login again
            raise

    # -- writing -----------------------------------------------------------------------------

    def pace_seconds(self, external_channel_id: str) -> float:
        """Teams' per-bot, per-thread limits for Send to conversation ("Optimize your bot
        with rate limiting", msteams-docs bots/how-to/rate-limit.md): 7 in 1 s, 8 in 2 s, 60 in
        30 s: one every half second keeps to them. The page's 1800 an hour "applies only if
        multiple bot messages are sent to a single user", not to a channel."""
        return 0.5

    async def identity(self, token: str) -> BotIdentity:
        """The bot: `28:<app id>`. With a credential, its token is had first, so settings
        Microsoft's login refuses raise TokenRejected (the oauth service's 422)."""
        credential = Credential.decode(token)
        if credential is None:
            return BotIdentity(user_id=BOT_PREFIX + self._app_id, app_id=self._app_id)
        await self._app_tokens(credential).token()
        return BotIdentity(
            user_id=BOT_PREFIX + credential.app_id, app_id=credential.app_id, name="Teams bot"
        )

    async def channel(self, token: str, external_channel_id: str) -> ChannelInfo:
        """The name Teams gave with its activities, else the id (a bot cannot read a
        channel's name from the Connector without its team's id)."""
        channel = _channel_of(external_channel_id)
        return ChannelInfo(id=channel, name=self._names.get(channel, channel))

    async def post(self, token: str, external_channel_id: str, post: OutboundPost) -> Posted:
        channel = _channel_of(external_channel_id)
        conversation = channel
        if post.thread_external_id:
            conversation = f"{channel}{THREAD}{post.thread_external_id}"
        activity: dict[str, Any] = {
            "type": "message",
            "textFormat": "xml",
            "text": format_post(post),
        }
        if post.actions:
            activity["attachments"] = [card_attachment(post.actions)]
        service_url = self.service_url(channel, token)
        new_id = await self._with_bearer(
            token, lambda bearer: self._api.send(bearer, service_url, conversation, activity)
        )
        return Posted(external_message_id=new_id, external_thread_id=post.thread_external_id)

    async def edit(
        self, token: str, external_channel_id: str, external_message_id: str, post: OutboundPost
    ) -> None:
        channel = _channel_of(external_channel_id)
        activity: dict[str, Any] = {
            "type": "message",
            "id": external_message_id,
            "textFormat": "xml",
            "text": format_post(post),
        }
        if post.actions is not None:  # a card: its actions now (none: the card taken away)
            activity["attachments"] = [card_attachment(post.actions)] if post.actions else []
        service_url = self.service_url(channel, token)
        await self._with_bearer(
            token,
            lambda bearer: self._api.update(
                bearer, service_url, channel, external_message_id, activity
            ),
        )

    async def reply_privately(self, token: str, reply: PrivateReply) -> bool:
        """A channel of Teams shows every message to everyone: what is for the clicking
        user alone goes to their one-on-one chat with the bot (Create Conversation with
        them, the invoke's `serviceUrl`, tenant and their Teams id), which Teams opens for a
        member of a team the app is in. A refusal (a tenant that forbids it, a user gone)
        is False."""
        service_url, user = reply.reply.get("service_url"), reply.reply.get("user")
        tenant, bot = reply.reply.get("tenant"), reply.reply.get("bot")
        if not service_url or not user or not tenant:
            return False
        parameters = {
            "isGroup": False,
            "bot": {"id": bot or BOT_PREFIX + self._app_id},
            "members": [{"id": user}],
            "tenantId": tenant,
            "channelData": {"tenant": {"id": tenant}},
        }
        activity = {
            "type": "message",
            "textFormat": "xml",
            "text": _written(reply.text, MAX_BYTES, commonmark=True),
        }
        try:
            conversation = await self._with_bearer(
                token,
                lambda bearer: self._api.create_conversation(bearer, service_url, parameters),
            )
            await self._with_bearer(
                token, lambda bearer: self._api.send(bearer, service_url, conversation, activity)
            )
        except TokenRejected:
            raise
        except PermanentError:
            return False
        return True

    async def delete(self, token: str, external_channel_id: str, external_message_id: str) -> None:
        channel = _channel_of(external_channel_id)
        service_url = self.service_url(channel, token)
        await self._with_bearer(
            token,
            lambda bearer: self._api.delete(bearer, service_url, channel, external_message_id),
        )

    # -- reading -----------------------------------------------------------------------------

    async def user(self, token: str, external_user_id: str) -> Author | None:
        return None

    async def find_post(
        self,
        token: str,
        external_channel_id: str,
        tag: str,
        since: datetime,
        thread_external_id: str | None = None,
    ) -> Posted | None:
        return None  # the Connector has no way for a bot to read a channel's messages

    async def history(
        self, token: str, external_channel_id: str, since: datetime, limit: int
    ) -> list[MessageChange]:
        return []

    def clicks(self, event_type: str, payload: Mapping[str, Any]) -> list[Click]:
        """An `invoke` named `adaptiveCard/action` (an `Action.Execute` of one of our
        cards clicked): the activity's `id`, the card's message (`replyToId`) in the
        channel of its conversation, the action's `verb`, and who (`from`: their Entra
        object id, else their Teams id)."""
        if event_type != "invoke" or payload.get("name") != CARD_ACTION:
            return []
        value = _mapping(payload.get("value"))
        action = _mapping(value.get("action"))
        verb, activity_id = action.get("verb"), payload.get("id")
        card_id = payload.get("replyToId")
        conversation = _mapping(payload.get("conversation")).get("id")
        sender = _mapping(payload.get("from"))
        user = sender.get("aadObjectId") or sender.get("id")
        if action.get("type") != "Action.Execute" or not all(
            isinstance(v, str) and v for v in (verb, activity_id, card_id, conversation, user)
        ):
            return []
        name = sender.get("name")
        return [
            Click(
                interaction_id=str(activity_id),
                external_channel_id=_channel_of(str(conversation)),
                external_message_id=str(card_id),
                action_id=str(verb),
                user_id=str(user),
                user_name=name if isinstance(name, str) and name else None,
                reply=_one_on_one(payload),
            )
        ]

    def commands(self, event_type: str, payload: Mapping[str, Any]) -> list[Invocation]:
        """A message to the bot: one that opens with its @mention (a `mention` entity
        naming the activity's `recipient`, the bot; learn.microsoft.com/microsoftteams/
        platform/bots/how-to/conversations/channel-and-group-conversations, "Retrieve
        mentions") and then a command's word (`_command_text`), those words the command;
        the activity's `id` the invocation's, who sent it as a click's
        (`from.aadObjectId`, else `from.id`)."""
        if event_type != "message" or payload.get("type") != "message":
            return []
        text = _command_text(payload)
        conversation = _mapping(payload.get("conversation")).get("id")
        sender = _mapping(payload.get("from"))
        user, activity_id = sender.get("aadObjectId") or sender.get("id"), payload.get("id")
        if text is None or not all(
            isinstance(v, str) and v for v in (conversation, user, activity_id)
        ):
            return []
        name = sender.get("name")
        root = _thread(payload, str(conversation), str(activity_id)) or str(activity_id)
        return [
            Invocation(
                interaction_id=str(activity_id),
                external_channel_id=_channel_of(str(conversation)),
                text=text,
                user_id=str(user),
                user_name=name if isinstance(name, str) and name else None,
                reply={"thread": root},
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
        bot's reply in the command's thread; the rest reaches it through the chat."""
        if private:
            post = OutboundPost(
                text=text, author=Author(name="hookhub"), thread_external_id=reply.get("thread")
            )
            await self.post(token, external_channel_id, post)

    def changes(self, event_type: str, payload: Mapping[str, Any]) -> list[MessageChange]:
        """The change one activity (already verified) is; [] for any other activity."""
        kind_name = payload.get("type")
        if not isinstance(kind_name, str) or kind_name != event_type:
            return []
        channel_data = _mapping(payload.get("channelData"))
        event = channel_data.get("eventType") if kind_name != "message" else None
        kind = _KINDS.get((kind_name, event if isinstance(event, str) else None))
        message_id = payload.get("id")
        conversation = _mapping(payload.get("conversation"))
        conversation_id = conversation.get("id")
        if kind is None or not isinstance(message_id, str) or not isinstance(conversation_id, str):
            return []
        channel_info = _mapping(channel_data.get("channel"))
        channel = channel_info.get("id")
        if not isinstance(channel, str) or not channel:
            channel = _channel_of(conversation_id)
        team = _mapping(channel_data.get("team")).get("id")
        team = team if isinstance(team, str) and team else None
        service_url = payload.get("serviceUrl")
        if not isinstance(service_url, str) or not service_url:
            service_url = None
        elif team is not None:
            self._teams[channel] = team
            self._service_urls[team] = service_url
        else:
            self._service_urls[channel] = service_url
        if isinstance(channel_info.get("name"), str):
            self._names[channel] = channel_info["name"]
        sender = _mapping(payload.get("from"))
        said = payload.get("text")
        text = said if isinstance(said, str) else ""
        attachments = _attachments(payload.get("attachments"))
        ignored = None
        if kind != "deleted" and not text.strip() and not attachments:
            ignored = "the message carries nothing that can be bridged"
        elif kind_name == "message" and _command_text(payload) is not None:
            ignored = "hookhub's command (run, not bridged)"
        sender_id = sender.get("id") if isinstance(sender.get("id"), str) else None
        name = sender.get("name") if isinstance(sender.get("name"), str) else None
        return [
            MessageChange(
                kind=kind,
                external_channel_id=channel,
                external_message_id=message_id,
                occurred_at=_moment(payload.get("timestamp")),
                text=text,
                external_thread_id=_thread(payload, conversation_id, message_id),
                author=Author(name=name or sender_id or "unknown", external_id=sender_id)
                if sender_id or name
                else None,
                sender=SenderMarks(
                    user_id=sender_id,
                    app_id=sender_id[len(BOT_PREFIX) :]
                    if sender_id and sender_id.startswith(BOT_PREFIX)
                    else None,
                    is_bot=sender.get("role") == "bot"
                    or bool(sender_id and sender_id.startswith(BOT_PREFIX)),
                ),
                attachments=attachments,
                subtype=event if isinstance(event, str) else None,
                ignored=ignored,
                service_url=service_url,
                external_team_id=team,
            )
        ]

    def is_own(self, change: MessageChange, identity: BotIdentity) -> bool:
        """Sent by this bot: `from.id` is `28:<its app id>`."""
        own_id = identity.user_id or (BOT_PREFIX + identity.app_id if identity.app_id else None)
        if own_id is None:
            return False
        return change.sender.user_id == own_id or (
            identity.app_id is not None and change.sender.app_id == identity.app_id
        )

    async def render(self, text: str, users: UserLookup) -> str:
        """Teams' text (HTML-ish) as plain text: `<at>Ada</at>` → `@Ada`, line breaks kept,
        other tags dropped, character references decoded."""
        text = _AT.sub(lambda m: "@" + _TAG.sub("", m.group(1)), text)
        text = _BREAK.sub("\n", text)
        return html.unescape(_TAG.sub("", text)).strip()


# -- outbound -------------------------------------------------------------------------------


# What `defuse` writes for a character: markup characters and tabs as character
# references, a line break as `<br>`; control characters dropped (an HTML parser reads
# &#128;-&#159; as Windows-1252 characters, and the C0 ones are not allowed at all), and
# carriage returns.
_PIECES: dict[str, str] = {
    **{chr(code): "" for code in (*range(0x20), *range(0x7F, 0xA0))},
    "\t": "&#9;",
    "\n": "<br>",
    **{char: f"&#{ord(char)};" for char in _MARKUP},
}
_DEFUSED = re.compile("[" + re.escape("".join(_PIECES)) + "]")


def _piece(found: re.Match[str]) -> str:
    return _PIECES[found.group()]


def defuse(text: str, budget: int) -> str:
    """`text` with every markup character written as a character reference and each line
    break as `<br>`, cut (with "…") to at most `budget` UTF-8 bytes."""
    defused = _DEFUSED.sub(_piece, text)
    if len(defused.encode()) <= budget - 3:  # the room for "…" is kept either way
        return defused
    out: list[str] = []
    used = 0
    for char in text:
        piece = _PIECES.get(char, char)
        if not piece:
            continue
        size = len(piece.encode())
        if used + size > budget - 3:
            out.append("…")
            break
        out.append(piece)
        used += size
    return "".join(out)


class TeamsMarkup(markup.Html):
    """Teams' XML (HTML) text, as "Format your bot messages" gives it (https://learn.
    microsoft.com/en-us/microsoftteams/platform/bots/how-to/format-your-bot-messages):
    `<strong>`, `<em>`, `<strike>`, `<code>`, `<pre>`, `<blockquote>`, `<ul>`/`<ol>`,
    `<a href>`, line breaks `<br>`; text `defuse`d (every character HTML or Teams'
    Markdown could read as markup a character reference)."""

    line_break = "<br>"
    block_break = "<br><br>"
    strike_tag = "strike"

    def text(self, value: str) -> str:
        return defuse(value, MAX_BYTES)


TEAMS_MARKUP = TeamsMarkup()


def format_post(post: OutboundPost) -> str:
    """`<b>author</b>`, a line break, the text (hookhub's own CommonMark, `post.markup`, in
    Teams' HTML; as plain text should it not fit), then one link a line per attachment."""
    author = cut(post.author.name.strip() or "unknown", _MAX_AUTHOR)
    lines = [f"<b>{defuse(author, 1024)}</b>"]
    links = []
    for attachment in post.attachments:
        name = defuse(cut(attachment.name or attachment.url, 256), 2048)
        url = attachment.url
        if url.startswith(("https://", "http://")) and len(url) <= 2048:
            links.append(f'<a href="{html.escape(url, quote=True)}">{name}</a>')
        else:
            links.append(name)
    fixed = sum(len(line.encode()) + 4 for line in (*lines, *links))
    if post.text:
        commonmark = post.markup == "commonmark"
        lines.append(_written(post.text, MAX_BYTES - fixed, commonmark=commonmark))
    return "<br>".join([*lines, *links])


def _written(text: str, budget: int, *, commonmark: bool) -> str:
    if commonmark:
        written = markup.render(text, TEAMS_MARKUP)
        if len(written.encode()) <= budget:
            return written
        return defuse(markup.plain(text), budget)
    return defuse(text, budget)


# -- inbound --------------------------------------------------------------------------------


def _nothing(external_channel_id: str) -> str | None:
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def card_attachment(actions: tuple[CardAction, ...]) -> dict[str, Any]:
    """A card's actions as an Adaptive Card of buttons, below the message's text (the card
    carries no text of its own: the message shows it). Titles are plain text."""
    return {
        "contentType": ADAPTIVE_CARD,
        "content": {
            "type": "AdaptiveCard",
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "version": CARD_VERSION,
            "body": [],
            "actions": [
                {
                    "type": "Action.Execute",
                    "title": action.label,
                    "verb": action.id,
                    "style": _CARD_STYLES.get(action.style, "default"),
                }
                for action in actions[:MAX_CARD_ACTIONS]
            ],
        },
    }


def _one_on_one(activity: Mapping[str, Any]) -> dict[str, str]:
    """What the bot's one-on-one chat with the activity's sender is made with: the
    activity's `serviceUrl`, its tenant (`channelData.tenant.id`, else the conversation's
    `tenantId`), the sender's Teams id (`from.id`, `29:…`) and the bot's
    (`recipient.id`)."""
    tenant = _mapping(_mapping(activity.get("channelData")).get("tenant")).get("id")
    tenant = tenant or _mapping(activity.get("conversation")).get("tenantId")
    found = {
        "service_url": activity.get("serviceUrl"),
        "tenant": tenant,
        "user": _mapping(activity.get("from")).get("id"),
        "bot": _mapping(activity.get("recipient")).get("id"),
    }
    return {k: v for k, v in found.items() if isinstance(v, str) and v}


def _channel_of(conversation_id: str) -> str:
    channel = conversation_id.split(THREAD, 1)[0]
    if not channel:
        raise PermanentError(f"{conversation_id!r} is not a Teams conversation id", "bad_channel")
    return channel


# hookhub's command, and its words: a message that opens with the bot's @mention and then
# one of them (`/hookhub` between the two, as typed elsewhere, is left out) is a command.
COMMAND = "/hookhub"


def _command_text(payload: Mapping[str, Any]) -> str | None:
    """The words after the bot's @mention, when a message opens with it and then with a
    command's word; None for any other message."""
    said = payload.get("text")
    bot = _mapping(payload.get("recipient")).get("id")
    if not isinstance(said, str) or not isinstance(bot, str) or not bot:
        return None
    opening = said.lstrip()
    for entity in payload.get("entities") or []:
        entity = _mapping(entity)
        mention = entity.get("text")
        if (
            entity.get("type") == "mention"
            and _mapping(entity.get("mentioned")).get("id") == bot
            and isinstance(mention, str)
            and mention
            and opening.startswith(mention)
        ):
            rest = opening[len(mention) :]
            words = html.unescape(_TAG.sub("", _BREAK.sub(" ", rest))).split()
            if words and words[0].lower() == COMMAND:
                words = words[1:]
            # A message that only mentions the bot is a message (a bot without the team's
            # ChannelMessage.Read.Group hears only those): a command opens with one of its
            # verbs and has as many words as it takes.
            return " ".join(words) if shaped_as_command(words) else None
    return None


def _thread(payload: Mapping[str, Any], conversation_id: str, message_id: str) -> str | None:
    """The root's id when the message is a reply in a channel thread."""
    _, marker, root = conversation_id.partition(THREAD)
    if marker and root and root != message_id:
        return root
    reply_to = payload.get("replyToId")
    if isinstance(reply_to, str) and reply_to and reply_to != message_id:
        return reply_to
    return None


def _attachments(value: Any) -> tuple[Attachment, ...]:
    """Files and images as links; Teams' `text/html` copy of the message is not one."""
    found = []
    for item in value if isinstance(value, list) else []:
        if not isinstance(item, Mapping):
            continue
        url = item.get("contentUrl")
        kind = item.get("contentType")
        if not isinstance(url, str) or not url.startswith("https://") or kind == "text/html":
            continue
        name = item.get("name") if isinstance(item.get("name"), str) else None
        found.append(
            Attachment(url=url, name=name, mime_type=kind if isinstance(kind, str) else None)
        )
    return tuple(found)


def _moment(stamp: Any) -> datetime:
    if isinstance(stamp, str):
        try:
            moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.now(UTC)
