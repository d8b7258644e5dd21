"""Mattermost as a chat provider for sync: WebSocket post events → message changes, and
posts, edits and deletes through the REST API v4 as the bot account, over `MattermostApi`.

The credential. Mattermost is self-hosted, so a call needs the server as well as the token;
the contract passes one string, `credential(server_url, bot_token, integration_id)`: the
server's URL, the token and the integration's id joined by spaces (none holds one; the id
names the URL a card's buttons call back, `actions.py`). Whoever hands sync its tokens for
a Mattermost integration builds it from the integration.

Outbound. A post is made by the bot with the chat author shown on it: `props`
`override_username` (the author's name) and `override_icon_url` (their avatar, an http(s)
URL), which the server shows when "Enable integrations to override usernames / profile
picture icons" is on; `props.from_hookhub` marks it as ours (so its echo on the socket is
not bridged back) and `props.hookhub_tag` carries the chat message id (`find_post`). A
card's actions are buttons in `props.attachments` (`actions.py`), calling back
`{public_url}/api/webhooks/mattermost/{integration id}`; a click there is `clicks`. A
reply names its thread's root in `root_id`. An edit patches `message` and `props` (a patch
replaces the props whole, so they are sent again). The text is Mattermost markdown as the
chat wrote it, defused: no @-mention in it is live (`@channel`, `@all`, `@here`, `@name`
get a zero-width space after the @), and `<`/`>` are escaped so that nothing reads as
HTML; code spans and blocks are left as they are (Mattermost neither mentions nor renders
anything in them). A message past 16,383 characters is cut with "…".

Inbound. `posted`, `post_edited` and `post_deleted` events (their `data.post` a JSON
string): a post with a `type` (joins, header changes: `system_*`) is ignored, as are
direct and group messages and our own posts (`from_hookhub`). A reply's thread is its
`root_id`. `@username` mentions are shown with the person's name once `user` has met them,
and never stay live (the chat has no Mattermost users to ping).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from shared.kernel.ids import derived_id
from shared.providers import markup
from shared.providers.chat import (
    Author,
    BotIdentity,
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
from shared.providers.mattermost.actions import (
    ACTION_EVENT,
    CONTEXT_ACTION,
    CONTEXT_TAG,
    attachments,
)
from shared.providers.mattermost.api import (
    MAX_MESSAGE,
    MAX_PER_PAGE,
    MattermostApi,
    server_base,
)
from shared.providers.mattermost.socket import post_of
from shared.providers.mattermost.webhooks import COMMAND_EVENT

# Our marks in a post's props.
OWN_PROP = "from_hookhub"
TAG_PROP = "hookhub_tag"


def pending_post_id(tag: str, channel_id: str) -> str:
    """A post's `pending_post_id`: the server answers a create whose id it saw in the last
    30 s with the post it made ("deduplicateCreatePost attempts to make posting idempotent
    within a caching window", server/channels/app/post.go), so a post retried after an
    answer that never came is one post. The key is the server's alone, across channels:
    derived from the channel and the chat message."""
    return derived_id("mattermost_post", channel_id, tag, prefix="hh")


# The `app_id` of the sender marks of a post carrying OWN_PROP.
OWN_APP = "hookhub"
# Longest name shown for an author (Mattermost's usernames are at most 64 characters).
MAX_NAME = 64
ZWSP = "\u200b"
# GET /channels/{id}/posts?since= answers at most this many posts.
SINCE_LIMIT = 1000
# Channel types: O public, P private, D direct, G group.
BRIDGED_TYPES = frozenset({"O", "P"})

_KINDS: dict[str, Literal["created", "edited", "deleted"]] = {
    "posted": "created",
    "post_edited": "edited",
    "post_deleted": "deleted",
}
# Code (fenced blocks, then inline spans), left as it is.
_CODE = re.compile(r"(```[\s\S]*?(?:```|$)|`[^`\n]+`)")
# An @ that may start a mention: any not right after an ASCII letter or digit. The server
# finds @channel/@all/@here after a non-word character (Go's ASCII \B: `-@here`, `é@here`),
# and @username at the start of a word once `:.-_` are trimmed off it (`_@ada`); `a@b.c`
# is an address. Some @s that would not ping are defused too; none that would is missed.
_MENTION_START = re.compile(r"(?<![A-Za-z0-9])@(?=[\w.\-])")
_MENTION = re.compile(r"(?<![\w@])@([a-z0-9][a-z0-9._\-]*[a-z0-9_\-]|[a-z0-9])", re.IGNORECASE)


def credential(server_url: str, bot_token: str, integration_id: str = "") -> str:
    """The one string sync passes as the "token" of a Mattermost integration."""
    return " ".join(
        part for part in (server_base(server_url), bot_token.strip(), integration_id) if part
    )


def split_credential(value: str) -> tuple[str, str]:
    server, token, _ = _parts(value)
    return server, token


def integration_of(value: str) -> str | None:
    """The integration a credential is of, when it says (buttons need it)."""
    return _parts(value)[2] or None


def _parts(value: str) -> tuple[str, str, str]:
    server, _, rest = value.strip().partition(" ")
    token, _, integration_id = rest.partition(" ")
    if not server or not token:
        raise PermanentError(
            "a Mattermost credential is the server URL and the token, joined by a space",
            "bad_credential",
            "integration",
        )
    return server, token, integration_id


@dataclass(frozen=True)
class CatchUp:
    """What `changes_since` read: the changes, oldest first, and the newest `update_at`
    among them (where the next catch-up starts), or None when nothing changed."""

    changes: list[MessageChange]
    newest_ms: int | None


class MattermostChat:
    """The chat contract over Mattermost's REST API. In memory only: the names of the users
    `user` has looked up, by username (for `render`)."""

    name = "mattermost"
    # A slash command's ephemeral response is seen by whoever typed it alone.
    private_answers = True

    def __init__(self, api: MattermostApi, public_url: str = "") -> None:
        self.api = api
        # Where Mattermost calls back a card's buttons: hookhub's public URL (the gateway),
        # which the Mattermost server must reach.
        self.public_url = public_url.rstrip("/")
        self._names: dict[str, str] = {}

    def pace_seconds(self, external_channel_id: str) -> float:
        """0: Mattermost's limit (when the admin turns it on) is per token, not per
        channel, and a 429 says how long to wait."""
        return 0.0

    # -- who we are, what we see -----------------------------------------------------------

    async def identity(self, token: str) -> BotIdentity:
        server, secret = split_credential(token)
        me = await self.api.me(server, secret)
        user_id = _str(me.get("id"))
        return BotIdentity(
            user_id=user_id,
            bot_id=user_id if me.get("is_bot") is True else None,
            app_id=OWN_APP,
            name=_str(me.get("username")),
        )

    async def channel(self, token: str, external_channel_id: str) -> ChannelInfo:
        server, secret = split_credential(token)
        try:
            found = await self.api.channel(server, secret, external_channel_id)
        except PermanentError as exc:
            if exc.scope == "integration":
                raise
            raise PermanentError(
                f"the Mattermost bot cannot see channel {external_channel_id}: add the bot to "
                "the team and the channel (/invite @bot in it)",
                exc.error,
                "channel",
            ) from exc
        channel_id = _str(found.get("id")) or external_channel_id
        name = _str(found.get("display_name")) or _str(found.get("name")) or channel_id
        if found.get("type") not in BRIDGED_TYPES:
            raise PermanentError(
                f"Mattermost channel {name} is a direct or group message: only public and "
                "private channels are bridged",
                "unsupported_channel_type",
                "channel",
            )
        if found.get("delete_at"):
            raise PermanentError(
                f"Mattermost channel {name} is archived", "channel_archived", "channel"
            )
        return ChannelInfo(id=channel_id, name=name)

    async def user(self, token: str, external_user_id: str) -> Author | None:
        server, secret = split_credential(token)
        try:
            found = await self.api.user(server, secret, external_user_id)
        except PermanentError as exc:
            if exc.scope == "integration":
                raise
            return None
        user_id = _str(found.get("id")) or external_user_id
        name = display_name(found) or user_id
        username = _str(found.get("username"))
        if username:
            self._names[username.lower()] = name
        return Author(name=name, avatar_url=avatar_url(server, user_id), external_id=user_id)

    # -- outbound ----------------------------------------------------------------------------

    async def post(self, token: str, external_channel_id: str, post: OutboundPost) -> Posted:
        server, secret = split_credential(token)
        body: dict[str, Any] = {
            "channel_id": external_channel_id,
            "message": message(post),
            "props": props(post, self._buttons(token, post)),
        }
        if post.thread_external_id:
            body["root_id"] = post.thread_external_id
        if post.tag:
            body["pending_post_id"] = pending_post_id(post.tag, external_channel_id)
        made = await self.api.create_post(server, secret, body)
        post_id = _str(made.get("id"))
        if post_id is None:
            raise PermanentError("Mattermost answered a post without its id", "no_post_id")
        return Posted(external_message_id=post_id, external_thread_id=_str(made.get("root_id")))

    async def edit(
        self, token: str, external_channel_id: str, external_message_id: str, post: OutboundPost
    ) -> None:
        server, secret = split_credential(token)
        # The props are replaced whole: a card's buttons as it offers them now (none: no
        # attachment), any other post's none (it has none).
        await self.api.patch_post(
            server,
            secret,
            external_message_id,
            {"message": message(post), "props": props(post, self._buttons(token, post))},
        )

    async def reply_privately(self, token: str, reply: PrivateReply) -> bool:
        """An ephemeral post in the card's channel that the clicking user alone sees; a bot
        without the permission for it (a system admin's, by default) writes to the user in
        its direct message channel with them instead, which they alone read too. A refusal
        of both is False."""
        server, secret = split_credential(token)
        text = cut(markup.render(reply.text, MATTERMOST_MARKUP), MAX_MESSAGE)
        post = {"channel_id": reply.external_channel_id, "message": text}
        try:
            await self.api.create_ephemeral_post(server, secret, reply.user_id, post)
            return True
        except TokenRejected:
            raise
        except PermanentError:
            pass
        try:
            me = (await self.identity(token)).user_id
            if me is None:
                return False
            direct = await self.api.create_direct_channel(server, secret, (me, reply.user_id))
            channel = _str(direct.get("id"))
            if channel is None:
                return False
            # Marked ours, as every post of ours: its event over the socket is not brought in.
            body = {"channel_id": channel, "message": text, "props": {OWN_PROP: "true"}}
            await self.api.create_post(server, secret, body)
        except TokenRejected:
            raise
        except PermanentError:
            return False
        return True

    def _buttons(self, token: str, post: OutboundPost) -> list[dict[str, Any]]:
        """A card's actions as an attachment of buttons, when there are some and the
        integration and hookhub's URL are known."""
        integration_id = integration_of(token)
        if not post.actions or not post.tag or not integration_id or not self.public_url:
            return []
        _, secret = split_credential(token)
        url = f"{self.public_url}/api/webhooks/mattermost/{integration_id}"
        return attachments(post.actions, url, integration_id, secret, post.tag)

    async def delete(self, token: str, external_channel_id: str, external_message_id: str) -> None:
        """A post already gone is no failure."""
        server, secret = split_credential(token)
        await self.api.delete_post(server, secret, external_message_id)

    async def find_post(
        self,
        token: str,
        external_channel_id: str,
        tag: str,
        since: datetime,
        thread_external_id: str | None = None,
    ) -> Posted | None:
        """Our post carrying `tag` (`props.hookhub_tag`) among those changed since `since`."""
        server, secret = split_credential(token)
        since_ms = max(1, _ms(since))
        while True:
            listed = await self.api.posts_since(server, secret, external_channel_id, since_ms)
            posts = _ordered(listed)
            for post in posts:
                post_props = post.get("props")
                if (
                    isinstance(post_props, Mapping)
                    and post_props.get(TAG_PROP) == tag
                    and not post.get("delete_at")
                    and (thread_external_id is None or post.get("root_id") == thread_external_id)
                ):
                    return Posted(str(post["id"]), _str(post.get("root_id")))
            if len(posts) < SINCE_LIMIT:
                return None
            since_ms = max(_int(p.get("update_at")) for p in posts)

    # -- inbound -----------------------------------------------------------------------------

    async def history(
        self, token: str, external_channel_id: str, since: datetime, limit: int
    ) -> list[MessageChange]:
        """Posts created after `since`, oldest first, at most `limit` (the oldest): pages of
        200 newest first (`page`/`per_page`), read back until a page reaches `since`."""
        server, secret = split_credential(token)
        since_ms = _ms(since)
        found: dict[str, dict[str, Any]] = {}
        page = 0
        while True:
            listed = await self.api.posts(
                server, secret, external_channel_id, page=page, per_page=MAX_PER_PAGE
            )
            order = [i for i in listed.get("order") or [] if isinstance(i, str)]
            posts = _mapping(listed.get("posts"))
            reached = False
            for post_id in order:
                post = posts.get(post_id)
                if not isinstance(post, Mapping):
                    continue
                if _int(post.get("create_at")) <= since_ms:
                    reached = True
                    continue
                found[post_id] = dict(post)
            if reached or len(order) < MAX_PER_PAGE:
                break
            page += 1
        oldest_first = sorted(found.values(), key=lambda p: _int(p.get("create_at")))
        changes = [c for post in oldest_first for c in self._changes("created", post, None)]
        return changes[:limit]

    async def changes_since(self, token: str, external_channel_id: str, since_ms: int) -> CatchUp:
        """Every change of the channel after `since_ms` (the time of the last event seen):
        posts created, edited and deleted, as `posts?since=` gives them (what the socket
        missed while it was down). Oldest first, by the time of each change.

        Past 1000 changes the server answers a part only, and not the oldest part: its query
        takes 1000 rows `WHERE UpdateAt > since` with no order before the LIMIT (sqlstore
        `GetPostsSince`). The next read starts after the newest of them, so a gap that long
        may miss some changes; a socket down long enough to see that many in one channel
        is better followed by a history read (`history`), which pages through creations."""
        posts, newest = await self.posts_since(token, external_channel_id, since_ms)
        changes = [c for kind, post in posts for c in self._changes(kind, post, None)]
        return CatchUp(changes, newest)

    async def posts_since(
        self, token: str, external_channel_id: str, since_ms: int
    ) -> tuple[list[tuple[Literal["created", "edited", "deleted"], dict[str, Any]]], int | None]:
        """`changes_since`'s reading: each post changed after `since_ms` with what changed
        (created, edited, deleted), oldest change first, and the newest `update_at` read.
        The socket's catch-up hands them on as the events they would have been."""
        server, secret = split_credential(token)
        found: list[
            tuple[tuple[int, int, int], Literal["created", "edited", "deleted"], dict[str, Any]]
        ]
        found = []
        newest: int | None = None
        cursor = max(1, since_ms)
        while True:
            posts = _ordered(
                await self.api.posts_since(server, secret, external_channel_id, cursor)
            )
            for post in posts:
                update_at = _int(post.get("update_at"))
                newest = max(newest or 0, update_at)
                if post.get("original_id"):
                    continue  # the old copy an edit leaves behind
                if post.get("delete_at"):
                    kind: Literal["created", "edited", "deleted"] = "deleted"
                elif _int(post.get("create_at")) > since_ms:
                    kind = "created"
                elif _int(post.get("edit_at")) > since_ms:
                    kind = "edited"
                else:
                    continue  # a root moved on by a reply, itself unchanged
                when = (update_at, _int(post.get("create_at")))
                found.append(((*when, 0), kind, post))
                if kind == "created" and _int(post.get("edit_at")) > since_ms:
                    # Created and edited since: the edit too (a post made at `since` and
                    # edited after, already brought in, is known as created, not as edited).
                    found.append(((*when, 1), "edited", post))
            if len(posts) < SINCE_LIMIT:
                break
            cursor = max(_int(p.get("update_at")) for p in posts)
        found.sort(key=lambda item: item[0])
        return [(kind, post) for _, kind, post in found], newest

    def clicks(self, event_type: str, payload: Mapping[str, Any]) -> list[Click]:
        """A button of one of our cards clicked: the `PostActionIntegrationRequest` the
        server POSTed (the gateway checked its context's proof): its `trigger_id` (one a
        click), the post and channel, who (`user_id`), the action id and the chat message
        the context names (the clicked post must be that message's copy)."""
        if event_type != ACTION_EVENT:
            return []
        context = _mapping(payload.get("context"))
        found = [_str(payload.get(k)) for k in ("trigger_id", "channel_id", "post_id", "user_id")]
        action_id, tag = _str(context.get(CONTEXT_ACTION)), _str(context.get(CONTEXT_TAG))
        trigger, channel, post_id, user_id = found
        if not (trigger and channel and post_id and user_id and action_id and tag):
            return []
        return [
            Click(
                interaction_id=trigger,
                external_channel_id=channel,
                external_message_id=post_id,
                action_id=action_id,
                user_id=user_id,
                user_name=_str(payload.get("user_name")),
                chat_message_id=tag,
            )
        ]

    def commands(self, event_type: str, payload: Mapping[str, Any]) -> list[Invocation]:
        """The `/hookhub` custom slash command (the gateway checked its token): its
        `trigger_id`, channel, who, its text and its `response_url`
        (developers.mattermost.com/integrate/slash-commands/)."""
        if event_type != COMMAND_EVENT:
            return []
        fields = [_str(payload.get(k)) for k in ("trigger_id", "channel_id", "user_id")]
        trigger, channel, user_id = fields
        if not (trigger and channel and user_id):
            return []
        response_url = _str(payload.get("response_url"))
        return [
            Invocation(
                interaction_id=trigger,
                external_channel_id=channel,
                text=_str(payload.get("text")) or "",
                user_id=user_id,
                user_name=_str(payload.get("user_name")),
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
        (`{"response_type": "ephemeral", "text": …}`: seen by the user alone); the rest
        reaches the channel through the chat, as every message."""
        response_url = reply.get("response_url")
        if not private or not response_url:
            return
        server, _ = split_credential(token)
        said = message(OutboundPost(text=text, author=Author(name="hookhub")))
        await self.api.respond(server, response_url, {"response_type": "ephemeral", "text": said})

    def changes(self, event_type: str, payload: Mapping[str, Any]) -> list[MessageChange]:
        """A `posted`, `post_edited` or `post_deleted` event (its `data`, or the whole event
        `{event, data, broadcast, seq}`) → one change; [] for any other event."""
        kind = _KINDS.get(event_type)
        if kind is None:
            return []
        inner = payload.get("data")
        data: Mapping[str, Any] = inner if isinstance(inner, Mapping) else payload
        post = post_of(dict(data))
        if post is None:
            return []
        return self._changes(kind, post, _str(data.get("channel_type")))

    def _changes(
        self,
        kind: Literal["created", "edited", "deleted"],
        post: Mapping[str, Any],
        channel_type: str | None,
    ) -> list[MessageChange]:
        post_id, channel_id = _str(post.get("id")), _str(post.get("channel_id"))
        if post_id is None or channel_id is None:
            return []
        post_props = _mapping(post.get("props"))
        own = post_props.get(OWN_PROP) == "true"
        stamp = {
            "created": post.get("create_at"),
            "edited": post.get("edit_at") or post.get("update_at"),
            "deleted": post.get("delete_at") or post.get("update_at"),
        }[kind]
        post_type = _str(post.get("type"))
        ignored = None
        if own:
            ignored = "hookhub's own post"
        elif channel_type is not None and channel_type not in BRIDGED_TYPES:
            ignored = "a direct or group message (not bridged)"
        elif post_type:
            ignored = f"Mattermost system message ({post_type})"
        text = post.get("message")
        author = None
        if post_props.get("from_webhook") == "true" and _str(post_props.get("override_username")):
            # Another integration's post, shown under the name it gave.
            author = Author(name=str(post_props["override_username"]))
        return [
            MessageChange(
                kind=kind,
                external_channel_id=channel_id,
                external_message_id=post_id,
                occurred_at=_moment(stamp),
                text=_with_files(text if isinstance(text, str) else "", post)
                if kind != "deleted"
                else "",
                external_thread_id=_str(post.get("root_id")),
                author=author,
                sender=SenderMarks(
                    user_id=_str(post.get("user_id")),
                    app_id=OWN_APP if own else None,
                    is_bot=post_props.get("from_bot") == "true"
                    or post_props.get("from_webhook") == "true",
                ),
                subtype=post_type or ("reply" if post.get("root_id") else None),
                ignored=ignored,
            )
        ]

    def is_own(self, change: MessageChange, identity: BotIdentity) -> bool:
        """Marked by `props.from_hookhub`, or sent by our bot account (a bot, not a person
        whose personal token hookhub was given)."""
        if change.sender.app_id == OWN_APP:
            return True
        return (
            identity.bot_id is not None
            and change.sender.user_id == identity.bot_id
            and change.sender.is_bot
        )

    async def render(self, text: str, users: UserLookup) -> str:
        """`@username` → `@Name` for the people `user` has met (others keep their username),
        with a zero-width space after the @ of every mention, special ones (`@channel`,
        `@all`, `@here`) included: readable, never live wherever the text goes next."""

        def readable(match: re.Match[str]) -> str:
            username = match.group(1)
            shown = self._names.get(username.lower(), username)
            return f"@{ZWSP}{shown}"

        return _outside_code(text, lambda part: _MENTION.sub(readable, part))


# -- outbound formatting ---------------------------------------------------------------------


def defuse(text: str) -> str:
    """Chat text as Mattermost markdown that pings nobody and holds no HTML: a zero-width
    space after every @ that would start a mention, `<` and `>` escaped; code left alone."""

    def plain(part: str) -> str:
        part = _MENTION_START.sub("@" + ZWSP, part)
        return part.replace("<", "\\<").replace(">", "\\>")

    return _outside_code(text, plain)


class MattermostMarkup(markup.Markdown):
    """Mattermost's Markdown ("Format messages",
    https://docs.mattermost.com/collaborate/format-messages.html): `**bold**`, `_italic_`,
    `~~strike~~`, code spans and blocks, `>` quotes, `-` lists, `[text](url)`; in text
    markdown's own characters escaped with a backslash and mentions defused (a zero-width
    space after each `@` that would start one), as `defuse` does for the chat's text."""

    emphasis_mark = "_"

    def text(self, value: str) -> str:
        return _MENTION_START.sub("@" + ZWSP, _TEXT_MARKUP.sub(r"\\\1", value))


MATTERMOST_MARKUP = MattermostMarkup()
# Markdown's own characters in text (and `<`, `>`: no HTML): escaped with a backslash.
_TEXT_MARKUP = re.compile(r"([\\*_~`|<>\[\]#\-])")


def message(post: OutboundPost) -> str:
    """The defused text (hookhub's own CommonMark, `post.markup`, in Mattermost's
    Markdown), then one link a line per attachment, within 16,383 characters."""
    links = []
    for attachment in post.attachments:
        if attachment.url.startswith(("https://", "http://")):
            label = _escape_label(attachment.name or attachment.url)
            links.append(f"[{label}]({attachment.url.replace(')', '%29')})")
    commonmark = post.markup == "commonmark" and post.text
    body = markup.render(post.text, MATTERMOST_MARKUP) if commonmark else defuse(post.text)
    fixed = sum(len(link) + 1 for link in links)
    body = cut(body, MAX_MESSAGE - fixed) if MAX_MESSAGE - fixed > 0 else ""
    return cut("\n".join([*([body] if body else []), *links]), MAX_MESSAGE)


def props(post: OutboundPost, buttons: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The author shown on the post, our marks, and a card's buttons (`attachments`)."""
    name = " ".join(post.author.name.split()) or "unknown"
    found: dict[str, Any] = {"override_username": cut(name, MAX_NAME), OWN_PROP: "true"}
    avatar = post.author.avatar_url
    if avatar and avatar.startswith(("https://", "http://")):
        found["override_icon_url"] = avatar
    if post.tag:
        found[TAG_PROP] = post.tag
    if buttons:
        found["attachments"] = buttons
    return found


def display_name(user: Mapping[str, Any]) -> str | None:
    """First and last name, else the nickname, else the username (Mattermost's "Show
    full name" display, falling back as its client does)."""
    full = " ".join(
        part for part in (_str(user.get("first_name")), _str(user.get("last_name"))) if part
    )
    return full or _str(user.get("nickname")) or _str(user.get("username"))


def avatar_url(server_url: str, user_id: str) -> str:
    """`GET /api/v4/users/{id}/image` (it needs a session or token to be fetched)."""
    return f"{server_base(server_url)}/api/v4/users/{user_id}/image"


def _outside_code(text: str, change: Any) -> str:
    parts = _CODE.split(text)
    return "".join(part if i % 2 else change(part) for i, part in enumerate(parts))


def _escape_label(label: str) -> str:
    """A link's label shown as it is: markdown's own characters escaped, mentions defused."""
    escaped = re.sub(r"([\\\[\]*_`<>])", r"\\\1", label)
    return _MENTION_START.sub("@" + ZWSP, escaped)


# -- inbound ----------------------------------------------------------------------------------


def _ordered(listed: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The posts a PostList's `order` names (not the roots it adds outside it)."""
    posts = _mapping(listed.get("posts"))
    return [
        dict(posts[i])
        for i in listed.get("order") or []
        if isinstance(i, str) and isinstance(posts.get(i), Mapping)
    ]


def _with_files(text: str, post: Mapping[str, Any]) -> str:
    """The text with the post's files named on a first line (`[file: report.pdf]`), as
    `metadata.files` names them: a file's URL needs the server's token to be read, so none
    is linked."""
    metadata = post.get("metadata")
    files = metadata.get("files") if isinstance(metadata, Mapping) else None
    names = [
        f"[file: {_str(item.get('name')) or 'file'}]"
        for item in (files if isinstance(files, list) else ())
        if isinstance(item, Mapping)
    ]
    if not names:
        return text
    line = " ".join(names)
    return f"{line}\n{text}" if text else line


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _int(value: Any) -> int:
    return value if type(value) is int else 0


def _moment(stamp: Any) -> datetime:
    if type(stamp) is int and stamp > 0:
        return datetime.fromtimestamp(stamp / 1000, UTC)
    return datetime.now(UTC)


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = str(value)
    return text or None
