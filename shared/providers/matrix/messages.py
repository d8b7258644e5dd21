"""Matrix as a chat provider for sync (shared.providers.chat), as an application service:
room events become message changes, and chat messages are sent into a room by a puppet user
of hookhub's namespace, one per chat author, with the author's display name.

Ids: a channel is a room id (`!abc:example.org`), a message an event id (`$…`). A thread is
its root's event id: a Matrix thread (`m.relates_to.rel_type: m.thread`) and a rich reply
(`m.in_reply_to`, which has no rel_type) both come out as `external_thread_id`, as a
Telegram reply does.

Unlike the other networks, each integration has its own homeserver and namespace: a
`MatrixChat` is one integration's (`matrix_chat`), and the `token` every call takes is its
`as_token`.

Where the Client-Server API says it (spec.matrix.org, v1.17):
- "m.room.message msgtypes": `m.text`, `m.notice`, `m.emote` carry `body` (plain, always)
  and optionally `format: org.matrix.custom.html` with `formatted_body`;
- "Event replacements": an edit is an `m.room.message` with `m.relates_to.rel_type:
  m.replace` and the new content in `m.new_content` (its `body` has no "* " fallback);
- "Threading" and "Rich replies": see above; since v1.13 a reply carries no fallback, but a
  client SHOULD still strip one (`> ` lines at the body's start);
- "Redactions": `m.room.redaction` names the event in `content.redacts` (room version 11)
  or the top-level `redacts` (earlier versions);
- "User and room mentions": an `m.mentions` property, even empty, turns the legacy
  body-matching mention rules off (what keeps `@room` or a name in chat text from pinging).
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from mautrix.types import (
    JSON,
    BaseMessageEventContentFuncs,
    EventID,
    EventType,
    Format,
    InReplyTo,
    MessageEvent,
    MessageType,
    RelatesTo,
    RelationType,
    SerializerError,
    TextMessageEventContent,
)

from shared.kernel.text import printable
from shared.providers import markup
from shared.providers.chat import (
    Author,
    BotIdentity,
    ChannelInfo,
    Invocation,
    MessageChange,
    OutboundPost,
    PermanentError,
    Posted,
    SenderMarks,
    UserLookup,
    cut,
)
from shared.providers.matrix.api import MatrixApi

# Kept well inside the 65536 bytes an event may take (Client-Server API, "Size limits"):
# the text twice (body, formatted_body), every character at worst 6 bytes once escaped.
MAX_TEXT = 4000
# Display names: Synapse takes 256 characters.
MAX_NAME = 100
# The custom content key our posts carry the chat message's id in (find_post).
TAG_KEY = "org.hookhub.tag"
# Messages whose text is bridged, and the media ones named in the text instead.
_TEXT_TYPES = {MessageType.TEXT, MessageType.NOTICE, MessageType.EMOTE}
_MEDIA_TYPES = {
    MessageType.IMAGE: "image",
    MessageType.FILE: "file",
    MessageType.AUDIO: "audio",
    MessageType.VIDEO: "video",
    MessageType.LOCATION: "location",
}
# An avatar's bytes and media type from its URL (None: none to be had). The wiring gives
# one that keeps to the egress policy: the chat's avatar URLs come from outside.
AvatarFetcher = Callable[[str], Awaitable[tuple[bytes, str] | None]]
# Largest avatar uploaded.
MAX_AVATAR_BYTES = 1024 * 1024
# Entries each of an integration's caches (puppets' profiles, puppet-room joins, avatar
# uploads) holds before it is emptied: all of them are found again at a call or two's cost
# (registering an existing user, joining a joined room and setting a profile are no-ops).
MAX_CACHED = 10_000
# A localpart's characters (Client-Server API "User Identifiers": a-z 0-9 . _ = - /).
_LOCALPART = re.compile(r"[a-z0-9._=/-]+")
# Where a Matrix client would make a link into a pill: a matrix.to permalink.
_PERMALINK = re.compile(r"matrix\.to", re.IGNORECASE)
# hookhub's command in a room: Matrix has no slash commands for bots (Element takes `/word`
# as its own client command), so, as Matrix bots do, a message that opens with `!hookhub`
# (or `/hookhub`, sent as a message anyway) and then its words.
_COMMAND = re.compile(r"[!/]hookhub(?:\s+(?P<words>.*))?", re.IGNORECASE | re.DOTALL)


class MatrixChat:
    """The chat contract over one integration's homeserver, as its appservice.

    `prefix`: the localpart prefix of the appservice's exclusive user namespace
    (`_hookhub_`): every puppet is `@{prefix}{digest}:{server}`, and whatever its users send
    is hookhub's own."""

    name = "matrix"

    def __init__(
        self,
        api: MatrixApi,
        prefix: str,
        fetch_avatar: AvatarFetcher | None = None,
        max_cached: int = MAX_CACHED,
    ) -> None:
        if not _LOCALPART.fullmatch(prefix):
            raise ValueError(f"{prefix!r} is no localpart prefix (a-z 0-9 . _ = - /)")
        self._api = api
        self._prefix = prefix
        self._fetch_avatar = fetch_avatar
        self._max_cached = max_cached
        self._avatars: dict[str, str] = {}  # an author's avatar URL → its mxc:// upload
        self._bots: dict[str, str] = {}  # as_token → the appservice's own user id
        self._profiles: dict[str, tuple[str, str | None]] = {}  # puppet → (name, avatar)
        self._joined: set[tuple[str, str]] = set()  # (puppet, room)
        # Events a page of `GET /rooms/{roomId}/messages` asks for.
        self.page_size = 100

    # -- who we are ------------------------------------------------------------------------

    def pace_seconds(self, external_channel_id: str) -> float:
        """Five writes a second: a homeserver limits each user (Synapse's default: one every
        5 s after a burst of 10), but an appservice's puppets are exempt when its
        registration says `rate_limited: false`, as `registration_yaml` does; a 429 still
        wins."""
        return 0.2

    async def _bot(self, token: str) -> str:
        bot = self._bots.get(token)
        if bot is None:
            bot = self._bots[token] = await self._api.whoami(token)
        return bot

    async def identity(self, token: str) -> BotIdentity:
        """`user_id`: the appservice's own user (`sender_localpart`); `app_id`: the
        namespace prefix, which marks the puppets as ours (`is_own`)."""
        bot = await self._bot(token)
        return BotIdentity(user_id=bot, app_id=self._prefix, name=bot)

    def puppet(self, author: Author, server: str) -> str:
        """The puppet's user id for one chat author: the same author, the same puppet. From
        the author's chat id when there is one, else the name."""
        key = author.external_id or f"name:{author.name}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        return f"@{self._prefix}{digest}:{server}"

    def is_ours(self, user_id: str, bot: str | None = None) -> bool:
        """A user of the appservice's namespace, or the appservice's own user. Once the
        homeserver's name is known (the first call with the as_token), only its users: a
        namespace is exclusive on its own server, and a remote `@_hookhub_x:elsewhere` is
        somebody else."""
        if user_id == bot:
            return True
        if not user_id.startswith(f"@{self._prefix}"):
            return False
        server = next(iter(self._bots.values()), None)
        return server is None or user_id.endswith(":" + server.split(":", 1)[1])

    async def _ensure_puppet(self, token: str, room_id: str, author: Author) -> str:
        """The author's puppet, registered, named, and in the room."""
        server = (await self._bot(token)).split(":", 1)[1]
        puppet = self.puppet(author, server)
        name = cut(printable(author.name).strip() or "unknown", MAX_NAME)
        wanted = (name, author.avatar_url)
        if puppet not in self._profiles:
            await self._api.register(token, puppet[1:].split(":", 1)[0])
        if self._profiles.get(puppet) != wanted:
            await self._api.set_displayname(token, puppet, name)
            avatar = await self._avatar(token, puppet, author.avatar_url)
            if avatar is not None:
                await self._api.set_avatar_url(token, puppet, avatar)
            self._profiles[puppet] = wanted
        if (puppet, room_id) not in self._joined:
            await self._join(token, room_id, puppet)
            self._joined.add((puppet, room_id))
        self._bound()
        return puppet

    def _bound(self) -> None:
        """Each cache kept to `max_cached` entries (emptied past it)."""
        for cache in (self._profiles, self._joined, self._avatars):
            if len(cache) > self._max_cached:
                cache.clear()

    async def _send_as(
        self, token: str, room_id: str, puppet: str, txn: str, body: Mapping[str, Any]
    ) -> str:
        """Sent as the puppet; refused as not in the room (kicked since it joined, or the
        homeserver forgot), joined again and sent once more."""
        try:
            return await self._api.send(token, room_id, txn, body, as_user=puppet)
        except PermanentError as exc:
            if exc.error != "forbidden" or (puppet, room_id) not in self._joined:
                raise
        self._joined.discard((puppet, room_id))
        await self._join(token, room_id, puppet)
        self._joined.add((puppet, room_id))
        return await self._api.send(token, room_id, txn, body, as_user=puppet)

    async def _avatar(self, token: str, puppet: str, url: str | None) -> str | None:
        """The avatar as an `mxc://` URI: as it is, or uploaded (once per URL) from the
        bytes `fetch_avatar` brings; None without a fetcher or when it brings nothing."""
        if not url:
            return None
        if url.startswith("mxc://"):
            return url
        if url in self._avatars:
            return self._avatars[url]
        if self._fetch_avatar is None or not url.startswith(("https://", "http://")):
            return None
        fetched = await self._fetch_avatar(url)
        if fetched is None:
            return None
        data, media_type = fetched
        if not media_type.startswith("image/") or len(data) > MAX_AVATAR_BYTES:
            return None
        uri = self._avatars[url] = await self._api.upload(token, data, media_type, puppet)
        return uri

    async def _join(self, token: str, room_id: str, puppet: str) -> None:
        """Joined; a room that takes no one uninvited has the appservice's user invite the
        puppet first (that user is in the rooms it bridges)."""
        try:
            await self._api.join(token, room_id, puppet)
        except PermanentError as exc:
            if exc.error != "forbidden":
                raise
            await self._api.invite(token, room_id, puppet)
            await self._api.join(token, room_id, puppet)

    # -- writing -----------------------------------------------------------------------------

    async def channel(self, token: str, external_channel_id: str) -> ChannelInfo:
        name = await self._api.room_name(token, external_channel_id)
        return ChannelInfo(id=external_channel_id, name=name or external_channel_id)

    async def post(self, token: str, external_channel_id: str, post: OutboundPost) -> Posted:
        """Sent as the author's puppet, into the thread `thread_external_id` when given. The
        txnId comes from the chat message's id (`tag`), so a retried post is the same
        event (the homeserver answers a retransmission with the first event's id)."""
        puppet = await self._ensure_puppet(token, external_channel_id, post.author)
        content = format_content(post)
        if post.thread_external_id:
            relates = RelatesTo(
                rel_type=RelationType.THREAD, event_id=EventID(post.thread_external_id)
            )
            # "Fallback for unthreaded clients": a reply to the root, falling back.
            relates.is_falling_back = True
            relates.in_reply_to = InReplyTo(event_id=EventID(post.thread_external_id))
            content.relates_to = relates
        body = content.serialize()
        if post.tag:
            body[TAG_KEY] = post.tag
        txn = txn_id("post", external_channel_id, post.tag or _fingerprint(body))
        event_id = await self._send_as(token, external_channel_id, puppet, txn, body)
        return Posted(external_message_id=event_id, external_thread_id=post.thread_external_id)

    async def edit(
        self, token: str, external_channel_id: str, external_message_id: str, post: OutboundPost
    ) -> None:
        """An `m.replace` of the post by the puppet that sent it ("Validity of replacement
        events": the same sender), the new text in `m.new_content` and "* " before the
        fallback body. The sender is read from the post itself: sync names an author by
        display name only, so a renamed author's puppet may not be the one that posted."""
        original = await self._api.event(token, external_channel_id, external_message_id)
        if original is None:
            raise PermanentError(
                f"Matrix has no event {external_message_id} to edit", "message_not_found", "message"
            )
        sender = original.get("sender")
        if isinstance(sender, str) and self.is_ours(sender):
            puppet = sender
        else:
            puppet = await self._ensure_puppet(token, external_channel_id, post.author)
        content = format_content(post)
        content.set_edit(EventID(external_message_id))
        # mautrix serializes an edit as the spec shows it: `m.new_content` the content
        # without `m.relates_to`, "* " before the fallback body and formatted_body.
        body = content.serialize()
        txn = txn_id("edit", external_channel_id, external_message_id, _fingerprint(body))
        await self._send_as(token, external_channel_id, puppet, txn, body)

    async def delete(self, token: str, external_channel_id: str, external_message_id: str) -> None:
        """Redacted by the appservice's own user, which needs the power to redact others'
        events in the room (a puppet's redaction needs no more than its own). A message
        already gone is no failure."""
        txn = txn_id("redact", external_channel_id, external_message_id)
        await self._api.redact(token, external_channel_id, external_message_id, txn)

    # -- reading -----------------------------------------------------------------------------

    async def user(self, token: str, external_user_id: str) -> Author | None:
        """The sender's display name (`GET /profile/{userId}`), the user id when it has
        none. No avatar: an `mxc://` one is readable only through the homeserver's
        authenticated media API (v1.11), with the appservice's token."""
        profile = await self._api.profile(token, external_user_id)
        if profile is None:
            return None
        name = profile.get("displayname")
        name = printable(name).strip() if isinstance(name, str) else ""
        return Author(name=name or external_user_id, external_id=external_user_id)

    async def find_post(
        self,
        token: str,
        external_channel_id: str,
        tag: str,
        since: datetime,
        thread_external_id: str | None = None,
    ) -> Posted | None:
        """Our post carrying `tag` (`org.hookhub.tag`), read back from the room's timeline
        to `since`."""
        async for event in self._timeline(token, external_channel_id, since):
            content = event.get("content")
            if isinstance(content, Mapping) and content.get(TAG_KEY) == tag:
                return Posted(str(event["event_id"]), thread_external_id)
        return None

    async def history(
        self, token: str, external_channel_id: str, since: datetime, limit: int
    ) -> list[MessageChange]:
        """`GET /rooms/{roomId}/messages` backwards (`dir=b`, `from` each page's `end`) to
        `since`: the messages after it, oldest first, the oldest `limit`; edits shown as the
        homeserver's bundled latest replacement, when it has one; our own left out."""
        bot = await self._bot(token)
        found: list[MessageChange] = []
        async for event in self._timeline(token, external_channel_id, since):
            change = self.change(_bundled_edit(event), bot=bot)
            if change is not None and change.kind == "created" and change.ignored is None:
                found.append(change)
        found.reverse()
        return found[:limit]

    async def _timeline(self, token: str, room_id: str, since: datetime) -> Any:
        """Events newest first, down to `since` (a page at a time, until no `end`)."""
        stop = since.timestamp() * 1000
        cursor: str | None = None
        while True:
            page = await self._api.messages(
                token, room_id, since=cursor, direction="b", limit=self.page_size
            )
            for event in page.chunk:
                stamp = event.get("origin_server_ts")
                if isinstance(stamp, int) and stamp <= stop:
                    return
                yield event
            if page.end is None or not page.chunk:
                return
            cursor = page.end

    def changes(self, event_type: str, payload: Mapping[str, Any]) -> list[MessageChange]:
        """One event of a transaction (`event_type` its `type`, `payload` the event)."""
        change = self.change(payload)
        return [] if change is None else [change]

    def change(self, event: Mapping[str, Any], bot: str | None = None) -> MessageChange | None:
        """The message change one event is, or None when it is about no message. Events of
        the appservice's own users are changes marked `ignored` (the echo of our posts)."""
        kind = event.get("type")
        room, event_id, sender = (event.get(k) for k in ("room_id", "event_id", "sender"))
        if not (isinstance(room, str) and isinstance(event_id, str) and isinstance(sender, str)):
            return None
        if "state_key" in event:
            return None  # a state event (a join, a name): no message
        marks = SenderMarks(user_id=sender)
        ignored = "sent by hookhub's appservice" if self.is_ours(sender, bot) else None
        if kind == EventType.ROOM_REDACTION.t:
            content = event.get("content")
            redacts = content.get("redacts") if isinstance(content, Mapping) else None
            redacts = redacts if isinstance(redacts, str) else event.get("redacts")
            if not isinstance(redacts, str):
                return None
            return MessageChange(
                kind="deleted",
                external_channel_id=room,
                external_message_id=redacts,
                occurred_at=_moment(event),
                sender=marks,
                subtype="m.room.redaction",
                ignored=ignored,
            )
        if kind != EventType.ROOM_MESSAGE.t:
            return None
        content = _content(event)
        if content is None:
            return None  # redacted (no content left), no msgtype, or off the spec
        relates = content.relates_to
        change_kind: Literal["created", "edited"] = "created"
        target = event_id
        thread = content.get_thread_parent() or content.get_reply_to()
        if relates.rel_type == RelationType.REPLACE and relates.event_id:
            raw_new = event["content"].get("m.new_content")
            if not isinstance(raw_new, Mapping):
                return None  # "Validity of replacement events": ignored without it
            change_kind, target, thread = "edited", relates.event_id, None
            content = TextMessageEventContent.deserialize(JSON(dict(raw_new)))
        text, subtype = _text(content)
        if ignored is None and change_kind == "created" and command_words(content) is not None:
            ignored, subtype = "hookhub's command (run, not bridged)", "bot_command"
        if ignored is None and not text:
            ignored = "the message carries nothing that can be bridged"
        return MessageChange(
            kind=change_kind,
            external_channel_id=room,
            external_message_id=target,
            occurred_at=_moment(event),
            text=text,
            external_thread_id=thread,
            sender=marks,
            subtype=subtype,
            ignored=ignored,
        )

    def invocation(self, event: Mapping[str, Any]) -> Invocation | None:
        """hookhub's command, when the event is a new text message that opens with
        `!hookhub` (`_COMMAND`) from someone not of the appservice: its event id the
        invocation's, the room, its sender (a Matrix user id), the words after the
        command; answered as a reply to it."""
        if event.get("type") != EventType.ROOM_MESSAGE.t or "state_key" in event:
            return None
        room, event_id, sender = (event.get(k) for k in ("room_id", "event_id", "sender"))
        if not (isinstance(room, str) and isinstance(event_id, str) and isinstance(sender, str)):
            return None
        raw = event.get("content")
        body = raw.get("body") if isinstance(raw, Mapping) else None
        if not isinstance(body, str) or "hookhub" not in body.lower():
            return None  # not a command: read without deserializing (every event passes)
        if self.is_ours(sender, next(iter(self._bots.values()), None)):
            return None
        content = _content(event)
        if content is None:
            return None
        if content.relates_to.rel_type == RelationType.REPLACE:
            return None  # an edit of a message: not typed anew
        words = command_words(content)
        if words is None:
            return None
        return Invocation(
            interaction_id=event_id,
            external_channel_id=room,
            text=words,
            user_id=sender,
            reply={"event_id": event_id},
        )

    async def answer(
        self,
        token: str,
        external_channel_id: str,
        reply: Mapping[str, str],
        text: str,
        private: bool,
    ) -> None:
        """What the chat cannot carry (a room bridged to no chat channel), as the
        appservice bot's reply to the command (its txnId named after it: a retry is the
        same event); the rest reaches the room through the chat."""
        if not private:
            return
        content = format_content(OutboundPost(text=text, author=Author(name="hookhub")))
        command = reply.get("event_id")
        if command:
            content.relates_to = RelatesTo(in_reply_to=InReplyTo(event_id=EventID(command)))
        txn = txn_id("answer", external_channel_id, command or _fingerprint({"text": text}))
        await self._api.send(token, external_channel_id, txn, content.serialize())

    def is_own(self, change: MessageChange, identity: BotIdentity) -> bool:
        user = change.sender.user_id
        if user is None:
            return False
        return self.is_ours(user, identity.user_id)

    async def render(self, text: str, users: UserLookup) -> str:
        """The plain `body` is what is bridged: readable as it is."""
        return text


# -- outbound ------------------------------------------------------------------------------


def txn_id(*parts: str) -> str:
    """A transaction id from what the request is about: the same request, the same id."""
    return "hookhub." + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def _fingerprint(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def defuse(text: str) -> str:
    """Chat text as data: control and bidirectional characters removed, and a word joiner
    in every `matrix.to`, so that no client makes a permalink in it into a user or room
    pill."""
    return _PERMALINK.sub("matrix\u2060.to", printable(text))


ACTIONS_LINE = "Actions (in the chat): "


class MatrixMarkup(markup.Html):
    """`org.matrix.custom.html`, the HTML subset the client-server spec lets a
    `formatted_body` carry
    (https://spec.matrix.org/latest/client-server-api/#mroommessage-msgtypes):
    `<strong>`, `<em>`, `<del>`, `<code>`, `<pre><code>`, `<blockquote>`, `<ul>`/`<ol>`,
    `<a href>`, `<br>`; text `defuse`d and escaped. A link to `matrix.to` would be a pill:
    its text alone."""

    line_break = "<br>"
    block_break = "<br><br>"

    def text(self, value: str) -> str:
        return html.escape(defuse(value)).replace("\n", "<br>")

    def link(self, inner: str, url: str) -> str:
        return inner if _PERMALINK.search(url) else super().link(inner, url)

    def code_block(self, value: str) -> str:
        return f"<pre><code>{html.escape(defuse(value.rstrip(chr(10))))}</code></pre>"


MATRIX_MARKUP = MatrixMarkup()


def format_content(post: OutboundPost) -> TextMessageEventContent:
    """`m.text` with the text as `body` and, escaped, as `formatted_body`
    (`org.matrix.custom.html`): every `<`, `>`, `&` and quote escaped, line breaks as
    `<br>`, attachments as links only to http(s) URLs. `m.mentions` empty: nobody is
    mentioned, whatever the text says (`@room`, a display name)."""
    text = cut(defuse(post.text), MAX_TEXT) if post.text else ""
    if post.markup == "commonmark" and text:
        # hookhub's own CommonMark: the body plain (its markup gone, links `text (url)`),
        # the HTML written from it (its text defused there, its links checked).
        source = cut(post.text, MAX_TEXT)
        plain_lines = [defuse(markup.plain(source))]
        html_lines = [markup.render(source, MATRIX_MARKUP)]
    else:
        plain_lines = [text] if text else []
        html_lines = [html.escape(text).replace("\n", "<br>")] if text else []
    for attachment in post.attachments:
        name = cut(defuse(attachment.name or attachment.url), 256)
        url = attachment.url if attachment.url.startswith(("https://", "http://")) else None
        if url is not None and _PERMALINK.search(url):
            url = None  # a matrix.to link would be a pill
        plain_lines.append(f"{name}: {url}" if url and name != url else name)
        html_lines.append(
            f'<a href="{html.escape(url, quote=True)}">{html.escape(name)}</a>'
            if url
            else html.escape(name)
        )
    if post.actions:
        # Matrix has no buttons: a card's actions are named, for whoever can click them
        # (the chat, or a network with buttons).
        offered = " · ".join(defuse(action.label) for action in post.actions)
        plain_lines.append(f"{ACTIONS_LINE}{offered}")
        html_lines.append(f"<em>{html.escape(ACTIONS_LINE + offered)}</em>")
    body = "\n".join(plain_lines) or "\u200b"
    formatted = "<br>".join(html_lines) or "\u200b"
    content = TextMessageEventContent(
        msgtype=MessageType.TEXT, body=body, format=Format.HTML, formatted_body=formatted
    )
    content["m.mentions"] = {}
    return content


# -- inbound -------------------------------------------------------------------------------


def _moment(event: Mapping[str, Any]) -> datetime:
    stamp = event.get("origin_server_ts")
    if type(stamp) is int:
        return datetime.fromtimestamp(stamp / 1000, UTC)
    return datetime.now(UTC)


def strip_reply_fallback(body: str) -> str:
    """The body without a rich reply's fallback: the `> ` lines it starts with, and the
    empty line after them (Client-Server API, "Rich replies", v1.13)."""
    lines = body.split("\n")
    kept = 0
    while kept < len(lines) and lines[kept].startswith("> "):
        kept += 1
    if kept and kept < len(lines) and lines[kept] == "":
        kept += 1
    return "\n".join(lines[kept:]) if kept else body


def _content(event: Mapping[str, Any]) -> BaseMessageEventContentFuncs | None:
    """An `m.room.message` event's content as mautrix reads it (by its msgtype; an edit's
    as its `m.new_content` with the edit's relation), or None where it is no message (no
    msgtype, redacted) or off the spec. Only the content is deserialized: the event's own
    fields are read as they are (deserializing the whole event through mautrix cost three
    times as much, ~70 us an event, a third of a Matrix message's way in)."""
    raw = event.get("content")
    if not isinstance(raw, Mapping):
        return None
    data = dict(raw)  # mautrix writes into what it reads (an edit's relation, a media's info)
    for key in ("m.new_content", "info"):
        if isinstance(data.get(key), Mapping):
            data[key] = dict(data[key])
    try:
        content = MessageEvent.deserialize_content(JSON(data))
    except SerializerError:
        return None
    return content if isinstance(content, BaseMessageEventContentFuncs) else None


def _text(content: Any) -> tuple[str, str | None]:
    """(text, subtype): the plain body of m.text, m.notice and m.emote (their msgtype as the
    subtype); media named (`[image: cat.png]`), not linked (an mxc:// URL needs the
    homeserver's authenticated media API)."""
    msgtype = getattr(content, "msgtype", None)
    body = getattr(content, "body", None)
    body = body if isinstance(body, str) else ""
    if msgtype in _TEXT_TYPES:
        return strip_reply_fallback(body), str(msgtype)
    label = _MEDIA_TYPES.get(msgtype) if msgtype is not None else None
    if label is not None:
        return (f"[{label}: {body}]" if body else f"[{label}]"), str(msgtype)
    return "", str(msgtype) if msgtype else None


def command_words(content: Any) -> str | None:
    """The words after `!hookhub` in a text message (its reply fallback left out); None for
    any other message."""
    if getattr(content, "msgtype", None) != MessageType.TEXT:
        return None
    body = getattr(content, "body", None)
    found = (
        _COMMAND.fullmatch(strip_reply_fallback(body).strip()) if isinstance(body, str) else None
    )
    if found is None:
        return None
    return " ".join((found.group("words") or "").split())


def _bundled_edit(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """The event with its latest edit applied, when the homeserver bundled one
    (`unsigned.m.relations.m.replace`, "Server-side aggregation of m.replace")."""
    unsigned = event.get("unsigned")
    relations = unsigned.get("m.relations") if isinstance(unsigned, Mapping) else None
    replace = relations.get("m.replace") if isinstance(relations, Mapping) else None
    if not isinstance(replace, Mapping):
        return event
    edit_content = replace.get("content")
    new = edit_content.get("m.new_content") if isinstance(edit_content, Mapping) else None
    content = event.get("content")
    if not isinstance(new, Mapping) or not isinstance(content, Mapping):
        return event
    relates = content.get("m.relates_to")
    merged = {**new, **({"m.relates_to": relates} if relates is not None else {})}
    return {**event, "content": merged}
