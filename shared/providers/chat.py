"""What sync needs of a chat provider (Slack, Telegram; Discord next): the API calls that
post, edit and delete, who the bot is, and how the provider's events become message changes.

Each chat provider implements `ChatProvider` in `shared/providers/<name>/messages.py` over
its REST client in `shared/providers/<name>/api.py`; the sync service (and later the
importer and actions) use only this contract. Errors are sorted into three kinds, because
the caller treats each differently:

- `RateLimited`: wait `retry_after` seconds, then the same call again (this channel only).
- `PermanentError`: retrying cannot help (channel gone, bot removed, token revoked): record
  it on the mapping and stop. `TokenRejected` is the one that a refreshed token may cure.
- `ProviderUnreachable` (shared.domain.oauth.provider): a passing failure (timeout, 5xx): retry
  with backoff.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from shared.domain.oauth.provider import ProviderUnreachable
from shared.kernel import errors
from shared.kernel.egress import EgressPolicy, check_url
from shared.kernel.errors import HookhubError
from shared.providers.notify import CardAction

__all__ = [
    "Attachment",
    "Author",
    "BotIdentity",
    "CardAction",
    "ChannelInfo",
    "ChatProvider",
    "Click",
    "Commanded",
    "Interactive",
    "Invocation",
    "MessageChange",
    "OutboundPost",
    "PermanentError",
    "Posted",
    "PrivateReplies",
    "PrivateReply",
    "ProviderUnreachable",
    "RateLimited",
    "RegistersCommand",
    "TokenRejected",
]


class RateLimited(errors.RateLimited):
    """The provider said "too many requests": try the same call again after `retry_after`
    seconds (a 429 with `Retry-After` where it reaches an API caller)."""

    code = "provider_rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, retry_after=math.ceil(retry_after))
        self.retry_after = retry_after


code_for = {
    "message": "provider_refused",
    "channel": "channel_not_usable",
    "integration": "integration_not_usable",
}


class PermanentError(HookhubError):
    """The provider refused for a reason a retry cannot change. `error` is the provider's
    own code (`channel_not_found`, `not_in_channel`, `is_archived`, `account_inactive`,
    `bot_kicked`, `chat_not_found`, `message_not_found`, `msg_too_long`, ...).

    `scope` says what is broken: `message` (this one message cannot be edited, deleted or
    posted; the channel goes on), `channel` (the mapping is broken: recorded on it, nothing
    more is sent there until it is fixed), `integration` (the token or account is gone)."""

    status = 422
    code = "provider_refused"

    def __init__(
        self,
        message: str,
        error: str,
        scope: Literal["message", "channel", "integration"] = "channel",
    ) -> None:
        super().__init__(message, code=code_for.get(scope))
        self.error = error
        self.scope = scope


def check_reachable(
    url: str,
    policy: EgressPolicy,
    what: str,
    error: str = "egress_refused",
    scope: Literal["message", "channel", "integration"] = "integration",
) -> None:
    """A URL a user gave (a self-hosted server, a conversation's serviceUrl) held to the
    egress rules before hookhub calls it: PermanentError naming `what` when they refuse it
    (a private address not allow-listed, an internal name)."""
    try:
        check_url(url, policy)
    except errors.Invalid as exc:
        raise PermanentError(f"{what} is refused: {exc.message}", error, scope) from exc


class TokenRejected(PermanentError):
    """The token is not (or no longer) valid: Slack `invalid_auth`/`token_revoked`/
    `token_expired`/`not_authed`, Telegram 401. Sync asks TokenKeeper for a fresh token once
    (`rejected=`) before treating it as permanent."""

    def __init__(self, message: str, error: str) -> None:
        super().__init__(message, error, "integration")


@dataclass(frozen=True)
class BotIdentity:
    """Who hookhub posts as on one integration: the marks its own messages carry.

    Slack (`auth.test`): `user_id` (bot user), `bot_id`, `app_id`, `team_id`. Telegram
    (`getMe`): `user_id` is the bot's id; the others are None."""

    user_id: str | None = None
    bot_id: str | None = None
    app_id: str | None = None
    team_id: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class ChannelInfo:
    id: str
    name: str


@dataclass(frozen=True)
class Author:
    name: str
    avatar_url: str | None = None
    external_id: str | None = None


@dataclass(frozen=True)
class Attachment:
    """A file, as a link (nothing is downloaded or re-uploaded)."""

    url: str
    name: str | None = None
    mime_type: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in {"url": self.url, "name": self.name, "mime_type": self.mime_type}.items()
            if v is not None
        }


# How a post's text is written: the chat's plain text, or hookhub's own CommonMark.
Markup = Literal["plain", "commonmark"]


@dataclass(frozen=True)
class OutboundPost:
    """A chat message as it is to appear in a provider channel.

    `text` is the chat's plain text (the provider module escapes or formats it);
    `thread_external_id` is the provider id of the thread's root in this channel, when the
    message is a reply whose root the map knows; `tag` is the chat message id, which a
    provider that can carry metadata on a post attaches so that a post can be found again
    (Slack `metadata`).

    `actions`: for a notification's root card whose item can be acted on (SPEC §20), what
    it offers now, shown as the network's own buttons (an empty tuple: none now, so an
    edit takes the buttons away); None for any other message, whose buttons (it has none)
    an edit leaves alone.

    `markup`: "plain" for the chat's own messages (plain text, escaped by each network);
    "commonmark" for what hookhub wrote itself (notifications, cards, its replies), which
    each network writes in its own markup (shared.providers.markup)."""

    text: str
    author: Author
    thread_external_id: str | None = None
    attachments: tuple[Attachment, ...] = ()
    tag: str | None = None
    actions: tuple[CardAction, ...] | None = None
    markup: Markup = "plain"


@dataclass(frozen=True)
class Posted:
    external_message_id: str
    # The provider's id of the thread the post went to (Slack `thread_ts`), if any.
    external_thread_id: str | None = None
    # The network's name of the thread the post starts, where threads are named apart from
    # their first message (Google Chat's `thread.name`; `MessageChange.external_thread_key`).
    external_thread_key: str | None = None


@dataclass(frozen=True)
class SenderMarks:
    """What the provider says about who sent a message, to recognise our own posts."""

    user_id: str | None = None
    bot_id: str | None = None
    app_id: str | None = None
    is_bot: bool = False


@dataclass(frozen=True)
class MessageChange:
    """One message created, edited or deleted in a provider channel, as its event said.

    - `external_thread_id`: the provider id of the thread's root when this message is a
      reply (Slack `thread_ts` != `ts`; Telegram `reply_to_message.message_id`), else None.
    - `author`: set when the event itself names the author (Telegram `from`); else None and
      `sender.user_id` is looked up with `ChatProvider.user`.
    - `text`: as the provider wrote it (Slack markup); `ChatProvider.render` makes it readable.
    - `subtype`: the provider's subtype (Slack `bot_message`, `file_share`, ...), for the
      policy and the metrics.
    - `ignored`: why the event is not bridged (a join notice, a bot's message under the
      documented policy, ...), or None.
    - `service_url`: where the network says to call it back about this channel, when its
      (verified) event says (Teams' `serviceUrl`), with `external_team_id`, the team the
      channel is in (Teams' `channelData.team.id`): sync keeps them in the channel's
      mapping (docs/sync.md, "Microsoft Teams"), and a provider's `recall` reads them back.
    - `external_thread_key`: the network's own name of the thread a new message starts, or
      is a reply in while its root is not known to the provider (Google Chat's
      `thread.name`: a reply names its thread, not its first message). Sync keeps it in the
      copy of a thread's first message, and finds there the root of such a reply (after a
      restart, on another replica).
    - `reply_by_key`: the new message is such a reply (in the thread `external_thread_key`
      names, its root not known to the provider): only these are looked up, not every
      message that starts a thread.
    """

    kind: Literal["created", "edited", "deleted"]
    external_channel_id: str
    external_message_id: str
    occurred_at: datetime
    text: str = ""
    external_thread_id: str | None = None
    author: Author | None = None
    sender: SenderMarks = field(default_factory=SenderMarks)
    attachments: tuple[Attachment, ...] = ()
    blocks: list[dict[str, Any]] | None = None
    subtype: str | None = None
    ignored: str | None = None
    service_url: str | None = None
    external_team_id: str | None = None
    external_thread_key: str | None = None
    reply_by_key: bool = False


@dataclass(frozen=True)
class Click:
    """A card's button clicked in a network (SPEC §20), as its verified interaction says.

    - `interaction_id`: the network's id of this one interaction (Slack `trigger_id`,
      Discord's interaction `id`): the same when the network sends it again, so the click
      is acted on once.
    - `external_channel_id`, `external_message_id`: the network's message whose button was
      clicked; sync finds the chat's card through the map, never through what the button
      itself carries.
    - `action_id`: the card action's id, as the button carries it.
    - `user_id`, `user_name`: who clicked, as the network names them.
    - `chat_message_id`: the chat message the button says it is on, where what the button
      carries is proven ours (Mattermost's context): the clicked message must be that
      message's copy, so a proof is good for its own card only.
    - `reply`: what else the interaction gives to answer the clicking user alone
      (`PrivateReplies`): Discord's application id and interaction token, Teams' service
      URL, tenant and the user's and bot's Teams ids, Google Chat's thread. Kept sealed.
    """

    interaction_id: str
    external_channel_id: str
    external_message_id: str
    action_id: str
    user_id: str
    user_name: str | None = None
    chat_message_id: str | None = None
    reply: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class Interactive(Protocol):
    """A network whose posts carry a card's actions as buttons, and whose clicks on them
    come as provider events (the gateway verified them as the network signs them)."""

    def clicks(self, event_type: str, payload: Mapping[str, Any]) -> list[Click]:
        """The clicks on our buttons in one provider event; [] for anything else."""
        ...


# hookhub's command's verbs (SPEC §20) and how many words each takes after it, least and
# most (None: no bound; `subscribe`'s filters). Where a command is a message that opens
# with the bot's @mention (Teams), one that does not fit a verb is a message to the channel
# ("@hookhub list the failing builds"), not a command answered with a refusal.
COMMAND_VERBS: dict[str, tuple[int, int | None]] = {
    "subscribe": (2, None),
    "unsubscribe": (1, 2),
    "list": (0, 0),
    "link": (1, 1),
    "help": (0, 0),
}


def shaped_as_command(words: Sequence[str]) -> bool:
    """Whether `words` (after the command's name) are a verb and as many words as it takes."""
    if not words:
        return False
    bounds = COMMAND_VERBS.get(words[0].lower().lstrip("/"))
    if bounds is None:
        return False
    least, most = bounds
    return least <= len(words) - 1 and (most is None or len(words) - 1 <= most)


@dataclass(frozen=True)
class Invocation:
    """hookhub's command typed in a network (SPEC §20: `/hookhub subscribe …`), as its
    verified event says.

    - `interaction_id`: the network's id of this one invocation (Slack's and Mattermost's
      `trigger_id`, Discord's interaction `id`, the command message's id where a command is
      a message): the same when the network sends it again, so it runs once.
    - `external_channel_id`: where it was typed; it runs in the chat channel mapped to it.
    - `text`: what follows the command's name (`subscribe github octocat/hello-world`).
    - `user_id`, `user_name`: who typed it, as the network names them.
    - `reply`: what the network's own answer to it needs (Slack's `response_url`,
      Discord's application id and interaction token, the command message's id), kept
      with the command until it is answered (`Commanded.answer`).
    - `addressed_to`: the bot a command names (Telegram's `/hookhub@name`), if any: a
      command for another bot of the chat is not ours.
    """

    interaction_id: str
    external_channel_id: str
    text: str
    user_id: str
    user_name: str | None = None
    reply: Mapping[str, str] = field(default_factory=dict)
    addressed_to: str | None = None


@runtime_checkable
class RegistersCommand(Protocol):
    """A network where hookhub's command must be made for the bot before anyone can type it
    (Discord's application commands): sync makes it when it connects the bot's gateway."""

    async def register_command(self, token: str) -> bool:
        """The command made where the bot has none of its shape; True when it was."""
        ...


@runtime_checkable
class Commanded(Protocol):
    """A network in which hookhub's command is typed (a slash command, a bot command, a
    message to the bot), coming as provider events the gateway verified as the network
    signs them. The command message itself, where a command is a message, is no change
    `changes` bridges.

    `private_answers`: whether `answer(private=True)` is seen by the user who typed the
    command alone (Slack's and Mattermost's ephemeral responses, Discord's ephemeral
    interaction response); where it is not, what concerns that user alone (their link
    ticket) is not said."""

    private_answers: bool

    def commands(self, event_type: str, payload: Mapping[str, Any]) -> list[Invocation]:
        """The invocations of hookhub's command in one provider event; [] for anything else."""
        ...

    async def answer(
        self,
        token: str,
        external_channel_id: str,
        reply: Mapping[str, str],
        text: str,
        private: bool,
    ) -> None:
        """The network's own answer to an invocation (`reply` its `Invocation.reply`):
        `text` (CommonMark) to the user alone where `private`; else where the network
        needs its invocation answered besides the channel (Discord's deferred response).
        A public answer otherwise reaches the network channel as every chat message does,
        through the chat channel it is mapped to."""
        ...


@dataclass(frozen=True)
class PrivateReply:
    """What hookhub says to one network user alone, about their click (SPEC §20: an
    unlinked user's ask to link, which may carry their single-use ticket): `text` is
    CommonMark, written in the network's markup; `external_channel_id`,
    `external_message_id`, `user_id` and `reply` are the click's (`Click`); `tag` names it
    once (a network that takes a request id gets it, so a retry is the same message)."""

    external_channel_id: str
    external_message_id: str
    user_id: str
    text: str
    tag: str
    reply: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class PrivateReplies(Protocol):
    """A network where the bot can say something to one user that nobody else sees:
    Slack's ephemeral messages, Discord's ephemeral follow-ups, Mattermost's ephemeral
    posts (else a direct message), Google Chat's private messages, a Teams or Telegram
    chat of the bot with the user."""

    async def reply_privately(self, token: str, reply: PrivateReply) -> bool:
        """Said to the user alone: True. False where the network lets the bot say nothing
        to this user alone now (not in the channel, never started a chat with the bot, the
        interaction's token expired, a permission the bot lacks): the caller then says in
        the thread what names no secret. Raises TokenRejected (the token, refreshed once by
        the caller), RateLimited and ProviderUnreachable (a passing failure)."""
        ...


UserLookup = Callable[[str], Awaitable[Author | None]]
# A provider channel's `service_url` as sync keeps it (`MessageChange.service_url`), or None.
Recall = Callable[[str], str | None]


@runtime_checkable
class Recalls(Protocol):
    """A provider whose events say where to call a channel back (Teams' serviceUrl): sync
    gives it `recall`, what the mappings keep, for a channel it has heard nothing of itself
    (after a restart, on another replica)."""

    recall: Recall


class ChatProvider(Protocol):
    """One chat provider, as sync uses it. Every call takes the token to use (from
    TokenKeeper); none keeps state between calls except caches of its own."""

    name: str

    def pace_seconds(self, external_channel_id: str) -> float:
        """Least time between two writes (post, edit, delete) to one channel: Slack about
        one a second per channel; Telegram one a second per chat, 20 a minute in a group.
        Sync paces each channel by it; a 429 still wins."""
        ...

    async def identity(self, token: str) -> BotIdentity: ...

    async def channel(self, token: str, external_channel_id: str) -> ChannelInfo:
        """The channel as the bot sees it; PermanentError when it cannot see it."""
        ...

    async def post(self, token: str, external_channel_id: str, post: OutboundPost) -> Posted: ...

    async def edit(
        self, token: str, external_channel_id: str, external_message_id: str, post: OutboundPost
    ) -> None: ...

    async def delete(self, token: str, external_channel_id: str, external_message_id: str) -> None:
        """Deleting a message that is already gone is not an error."""
        ...

    async def user(self, token: str, external_user_id: str) -> Author | None:
        """Display name and avatar of a provider user (Slack `users.info`), or None."""
        ...

    async def find_post(
        self,
        token: str,
        external_channel_id: str,
        tag: str,
        since: datetime,
        thread_external_id: str | None = None,
    ) -> Posted | None:
        """A post of ours carrying `tag`, made since `since` (in the thread
        `thread_external_id`, for a reply), if the provider can say (Slack: the history with
        metadata); None when it cannot or there is none. Used after a crash between a post
        and its record, so the post is not made twice."""
        ...

    async def history(
        self, token: str, external_channel_id: str, since: datetime, limit: int
    ) -> list[MessageChange]:
        """Messages written in the channel after `since`, oldest first, at most `limit` (the
        oldest ones), as `created` changes: what sync's catch-up reads after it could not
        hear the channel. [] for a provider without a history (Telegram's Bot API)."""
        ...

    def changes(self, event_type: str, payload: Mapping[str, Any]) -> list[MessageChange]:
        """The message changes in one provider event (as the gateway put it on
        `hookhub.provider.events`); [] for events that are not about messages."""
        ...

    def is_own(self, change: MessageChange, identity: BotIdentity) -> bool:
        """True when the message was posted by hookhub itself on this integration."""
        ...

    async def render(self, text: str, users: UserLookup) -> str:
        """Provider markup made readable for the chat (`<@U1>` → `@Ada`, entities decoded)."""
        ...


# -- text limits -------------------------------------------------------------------------------

ELLIPSIS = "…"


def utf16_units(text: str) -> int:
    """Length as Telegram and Discord count it (UTF-16 code units): never less than the
    characters either counts, so what fits here fits there."""
    return len(text.encode("utf-16-le")) // 2


def cut(text: str, limit: int) -> str:
    """`text`, or its start and "…" within `limit` UTF-16 code units."""
    if utf16_units(text) <= limit:
        return text
    kept: list[str] = []
    used = 0
    for char in text:
        width = utf16_units(char)
        if used + width > limit - 1:
            break
        kept.append(char)
        used += width
    return "".join(kept) + ELLIPSIS
