"""Telegram Desktop and DiscordChatExporter exports for tests and the benchmark: small
hand-made ones (`telegram_message`, `telegram_chat`, `telegram_account`, `discord_message`,
`discord_channel`, written bare or zipped with `write_export`), and `generate_telegram` /
`generate_discord` for large realistic ones, written message after message, so that an
export of a million messages is never whole in memory.

Shaped as the tools write them:

- Telegram Desktop ("Export chat history" or Settings → Advanced → "Export Telegram data",
  format "Machine-readable JSON"): `result.json`, one chat (`name`, `type`, `id`,
  `messages`) or the whole account (`personal_information`, `chats.list`, `left_chats.list`),
  indented by one space. A supergroup's or channel's `id` is the bare one (the Bot API's
  is `-100` before it), a basic group's too (the Bot API's is negative). Messages: `id`,
  `type` (`message` | `service`), `date`, `date_unixtime`, `from`, `from_id` (`user…`,
  `channel…`), `text` (a string, or a list of strings and entity objects) with
  `text_entities`, `reply_to_message_id`, `edited`, `forwarded_from`, media (`photo`,
  `file` with `media_type`, `sticker_emoji`), `reactions`; service messages with `actor`,
  `actor_id`, `action`.
- DiscordChatExporter (`export -f Json`): one file per channel, `guild`, `channel`,
  `dateRange`, `exportedAt`, `messages` (`id`, `type`: `Default`, `Reply`, or a system
  type such as `GuildMemberJoin`, `timestamp`, `timestampEdited`, `content`, `author`,
  `attachments`, `embeds`, `stickers`, `reactions`, `mentions`, `reference`),
  `messageCount`; indented by two spaces.
"""

from __future__ import annotations

import io
import json
import random
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

# -- Telegram Desktop ------------------------------------------------------------------------------

# Telegram's chat types in an export, and the Bot API id of a chat of each (`sync_id`).
SUPERGROUP_TYPES = ("public_supergroup", "private_supergroup", "public_channel", "private_channel")
GROUP_TYPES = ("private_group",)


def sync_id(chat_type: str, export_id: int) -> str:
    """The chat's id as the Bot API (and so live sync) has it."""
    if chat_type in SUPERGROUP_TYPES:
        return f"-100{export_id}"
    if chat_type in GROUP_TYPES:
        return f"-{export_id}"
    return str(export_id)


def _stamp(moment: datetime) -> dict[str, str]:
    # Telegram Desktop writes local time without an offset, and the Unix time beside it.
    return {
        "date": moment.strftime("%Y-%m-%dT%H:%M:%S"),
        "date_unixtime": str(int(moment.timestamp())),
    }


def telegram_message(
    number: int,
    moment: datetime,
    text: str | list[Any],
    sender: str = "Ada Lovelace",
    sender_id: str = "user4001",
    **extra: Any,
) -> dict[str, Any]:
    """A message as Telegram Desktop exports it (`text` a string, or a list of strings and
    `{"type": "bold", "text": …}` entities)."""
    parts = [text] if isinstance(text, str) else text
    entities = [
        {"type": "plain", "text": part} if isinstance(part, str) else part for part in parts if part
    ]
    return {
        "id": number,
        "type": "message",
        **_stamp(moment),
        "from": sender,
        "from_id": sender_id,
        **extra,
        "text": text,
        "text_entities": entities,
    }


def telegram_service(
    number: int,
    moment: datetime,
    action: str,
    actor: str = "Ada Lovelace",
    actor_id: str = "user4001",
    **extra: Any,
) -> dict[str, Any]:
    """A service message (a join, a pin, a title change…)."""
    return {
        "id": number,
        "type": "service",
        **_stamp(moment),
        "actor": actor,
        "actor_id": actor_id,
        "action": action,
        **extra,
        "text": "",
        "text_entities": [],
    }


def telegram_chat(
    chat_id: int, name: str, messages: list[Any], chat_type: str = "public_supergroup"
) -> dict[str, Any]:
    """One chat's export (the chat's ⋮ menu → Export chat history)."""
    return {"name": name, "type": chat_type, "id": chat_id, "messages": messages}


def telegram_account(chats: list[dict[str, Any]], user_id: int = 4001) -> dict[str, Any]:
    """The whole account's export (Settings → Advanced → Export Telegram data)."""
    return {
        "about": "Here is the data you requested.",
        "personal_information": {
            "user_id": user_id,
            "first_name": "Ada",
            "last_name": "Lovelace",
            "phone_number": "+44 0000000000",
            "username": "@ada",
            "bio": "",
        },
        "contacts": {"about": "", "list": []},
        "frequent_contacts": {"about": "", "list": []},
        "chats": {"about": "This page lists all chats from this export.", "list": chats},
        "left_chats": {"about": "", "list": []},
    }


# -- DiscordChatExporter ---------------------------------------------------------------------------

DISCORD_EPOCH_MS = 1420070400000


def snowflake(moment: datetime, counter: int = 0) -> str:
    """A Discord id made at `moment` (ids sort by time)."""
    ms = int(moment.timestamp() * 1000) - DISCORD_EPOCH_MS
    return str((ms << 22) | (counter & 0x3FFFFF))


def discord_author(
    user_id: str, name: str, nickname: str | None = None, bot: bool = False
) -> dict[str, Any]:
    return {
        "id": user_id,
        "name": name,
        "discriminator": "0000",
        "nickname": nickname or name,
        "color": None,
        "isBot": bot,
        "roles": [],
        "avatarUrl": f"https://cdn.discordapp.com/embed/avatars/{int(user_id) % 5}.png",
    }


def discord_message(
    message_id: str,
    moment: datetime,
    content: str,
    author: dict[str, Any],
    message_type: str = "Default",
    **extra: Any,
) -> dict[str, Any]:
    """A message as DiscordChatExporter writes it (`reference` makes it a reply)."""
    return {
        "id": message_id,
        "type": message_type,
        "timestamp": moment.isoformat(timespec="milliseconds"),
        "timestampEdited": None,
        "callEndedTimestamp": None,
        "isPinned": False,
        "content": content,
        "author": author,
        "attachments": [],
        "embeds": [],
        "stickers": [],
        "reactions": [],
        "mentions": [],
        "inlineEmojis": [],
        **extra,
    }


def discord_channel(
    guild_id: str,
    channel_id: str,
    name: str,
    messages: list[Any],
    guild_name: str = "Hookhub Test Server",
) -> dict[str, Any]:
    """One channel's export (`DiscordChatExporter.Cli export -c CHANNEL -f Json`)."""
    return {
        "guild": {
            "id": guild_id,
            "name": guild_name,
            "iconUrl": "https://cdn.discordapp.com/embed/avatars/0.png",
        },
        "channel": {
            "id": channel_id,
            "type": "GuildTextChat",
            "categoryId": None,
            "category": "Text Channels",
            "name": name,
            "topic": None,
        },
        "dateRange": {"after": None, "before": None},
        "exportedAt": "2024-06-30T12:00:00.000+00:00",
        "messages": messages,
        "messageCount": len(messages),
    }


def discord_file_name(export: dict[str, Any]) -> str:
    """DiscordChatExporter's default file name: `Guild - Category - channel [id].json`."""
    channel = export["channel"]
    return f"{export['guild']['name']} - {channel['category']} - {channel['name']} [{channel['id']}].json"


# -- files ---------------------------------------------------------------------------------------


def write_export(path: Path, members: dict[str, Any], *, zipped: bool, indent: int = 1) -> Path:
    """JSON documents written as a ZIP of `members` (name → document), or the only one bare."""
    if not zipped:
        (document,) = members.values()
        path.write_text(json.dumps(document, ensure_ascii=False, indent=indent))
        return path
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, document in members.items():
            archive.writestr(name, json.dumps(document, ensure_ascii=False, indent=indent))
    return path


@dataclass
class Generated:
    """What a generated export holds."""

    messages: int = 0
    importable: int = 0  # messages minus the service messages an import skips
    conversations: dict[str, str] = field(default_factory=dict)  # live sync's id → name
    account: str | None = None  # the Discord guild; None for Telegram
    by_kind: Counter[str] = field(default_factory=Counter)
    replies: int = 0
    reactions: int = 0
    bytes_uncompressed: int = 0


class _Sink:
    """A file written bare, or as one ZIP member after another, each streamed."""

    def __init__(self, path: Path, zipped: bool) -> None:
        self.zipped = zipped
        self._raw: IO[bytes] = path.open("wb")
        self._archive = zipfile.ZipFile(self._raw, "w", zipfile.ZIP_DEFLATED) if zipped else None
        self.written = 0

    def member(self, name: str) -> _Counting:
        if self._archive is None:
            return _Counting(self._raw, self)
        return _Counting(self._archive.open(name, "w", force_zip64=True), self)

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()
        self._raw.close()


class _Counting(io.RawIOBase):
    def __init__(self, inner: IO[bytes], sink: _Sink) -> None:
        self._inner, self._sink = inner, sink

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._sink.written += len(data)
        return self._inner.write(data)

    def close(self) -> None:
        if self._inner is not self._sink._raw:
            self._inner.close()
        super().close()


def _array(
    out: _Counting, head: str, items: Iterator[dict[str, Any]], tail: str, indent: int
) -> None:
    """`head` `[` the items, indented as a whole document of that indent would be `]` `tail`."""
    out.write(head.encode())
    pad = " " * indent * 3
    first = True
    for item in items:
        text = json.dumps(item, ensure_ascii=False, indent=indent).replace("\n", "\n" + pad)
        out.write(((",\n" if not first else "\n") + pad + text).encode())
        first = False
    out.write(("\n" + " " * indent * 2 + "]" + tail).encode())


_WORDS = (
    "deploy", "ship", "review", "merge", "branch", "release", "staging", "hotfix", "rollback",
    "build", "test", "flaky", "coffee", "lunch", "meeting", "sprint", "ticket", "bug", "feature",
    "docs", "metrics", "alert", "pager", "incident", "résumé", "naïve", "🚀", "✅", "ok", "thanks",
    "sure", "later", "tomorrow", "maybe",
)  # fmt: skip
_NAMES = ("Ada", "Grace", "Alan", "Barbara", "Edsger", "Frances", "Donald", "Radia", "Ken")


class _Words:
    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)

    def text(self) -> str:
        return " ".join(self.random.choices(_WORDS, k=self.random.randint(3, 16)))


def generate_telegram(
    path: Path, messages: int, chats: int, *, seed: int = 35, zipped: bool = True
) -> Generated:
    """A whole-account export of exactly `messages` messages over `chats` chats (mostly
    supergroups, some basic groups, private chats and a channel): plain and formatted
    text, replies, edits, forwards, photos, files, voice messages, stickers, reactions and
    about 4 % service messages. Zipped as `DataExport_2024-06-30/result.json` (how the
    export folder is zipped), or bare."""
    words = _Words(seed)
    stats = Generated()
    users = [(f"user{5000 + n}", f"{_NAMES[n % len(_NAMES)]} {n}") for n in range(40)]
    start = datetime(2023, 1, 2, tzinfo=UTC)
    share, extra = divmod(messages, chats)
    sink = _Sink(path, zipped)
    try:
        out = sink.member("DataExport_2024-06-30/result.json")
        head = json.dumps(telegram_account([]), ensure_ascii=False, indent=1)
        head = head[: head.index('"list": []', head.index('"chats"'))] + '"list": ['
        out.write(head.encode())
        for n in range(chats):
            chat_type = ("public_supergroup", "private_supergroup", "private_group",
                         "personal_chat", "public_channel")[n % 5] if n else "public_supergroup"  # fmt: skip
            export_id = 1_700_000_000 + n if chat_type != "personal_chat" else 5000 + n
            name = f"Chat {n}" if chat_type != "personal_chat" else users[n % len(users)][1]
            stats.conversations[sync_id(chat_type, export_id)] = name
            count = share + (1 if n < extra else 0)
            chat_head = json.dumps(telegram_chat(export_id, name, [], chat_type), indent=1)
            chat_head = chat_head[: chat_head.rindex("[")].replace("\n", "\n  ")
            items = _telegram_messages(
                words, stats, users, chat_type, name, export_id, count, start
            )
            out.write(("\n  " if n == 0 else ",\n  ").encode())
            _array(out, chat_head + "[", items, "\n  }", indent=1)
        out.write(b'\n ]\n },\n "left_chats": {\n  "about": "",\n  "list": []\n }\n}')
        out.close()
    finally:
        sink.close()
    stats.bytes_uncompressed = sink.written
    return stats


def _telegram_messages(
    words: _Words,
    stats: Generated,
    users: list[tuple[str, str]],
    chat_type: str,
    name: str,
    export_id: int,
    count: int,
    start: datetime,
) -> Iterator[dict[str, Any]]:
    rng = words.random
    moment = start
    channel = chat_type.endswith("channel")
    for message_id in range(1, count + 1):
        moment += timedelta(seconds=rng.randint(5, 600))
        roll = rng.random()
        stats.messages += 1
        if roll < 0.04 or message_id == 1:
            action = "create_group" if message_id == 1 else rng.choice(
                ("invite_members", "join_group_by_link", "pin_message", "edit_group_title",
                 "remove_members")
            )  # fmt: skip
            stats.by_kind[f"service:{action}"] += 1
            actor_id, actor = rng.choice(users)
            yield telegram_service(message_id, moment, action, actor, actor_id)
            continue
        stats.importable += 1
        sender_id, sender = (f"channel{export_id}", name) if channel else rng.choice(users)
        extra: dict[str, Any] = {}
        text: str | list[Any] = words.text()
        if roll < 0.12:
            text = [
                "see ",
                {"type": "bold", "text": rng.choice(_WORDS)},
                " and ",
                {"type": "text_link", "text": "the doc", "href": "https://example.com/doc"},
                " cc ",
                {"type": "mention", "text": "@grace"},
            ]
            stats.by_kind["formatted"] += 1
        elif roll < 0.18:
            extra.update(photo="(File not included. Change data exporting settings to download.)",
                         width=1280, height=720)  # fmt: skip
            text = "" if rng.random() < 0.5 else text
            stats.by_kind["photo"] += 1
        elif roll < 0.22:
            media = rng.choice(("video_file", "voice_message", "sticker", "animation", None))
            extra["file"] = "(File not included. Change data exporting settings to download.)"
            extra["file_name"] = f"file-{message_id}.bin" if media is None else None
            if media:
                extra["media_type"] = media
            if media == "sticker":
                extra["sticker_emoji"] = "👍"
                text = ""
            extra["mime_type"] = "application/octet-stream"
            extra = {k: v for k, v in extra.items() if v is not None}
            stats.by_kind[media or "file"] += 1
        if message_id > 2 and rng.random() < 0.15:
            extra["reply_to_message_id"] = rng.randint(max(1, message_id - 50), message_id - 1)
            stats.replies += 1
        if rng.random() < 0.05:
            edited = moment + timedelta(seconds=30)
            extra["edited"] = edited.strftime("%Y-%m-%dT%H:%M:%S")
            extra["edited_unixtime"] = str(int(edited.timestamp()))
        if rng.random() < 0.03:
            extra["forwarded_from"] = "Some Channel"
        if rng.random() < 0.1:
            reactions = rng.randint(1, 4)
            stats.reactions += reactions
            extra["reactions"] = [{"type": "emoji", "count": reactions, "emoji": "👍"}]
        yield telegram_message(message_id, moment, text, sender, sender_id, **extra)


def generate_discord(
    path: Path,
    messages: int,
    channels: int,
    *,
    seed: int = 35,
    guild_id: str = "1100000000000000001",
    zipped: bool = True,
) -> Generated:
    """An export of exactly `messages` messages over `channels` channel files of one server
    (`exportguild`): plain text with mentions, replies, edits, attachments, embeds,
    reactions, bot messages, and about 4 % system messages (joins, pins, thread
    creations). Zipped, one file per channel, or bare (one channel)."""
    if not zipped and channels != 1:
        raise ValueError("a bare DiscordChatExporter export is one channel")
    words = _Words(seed)
    stats = Generated(account=guild_id)
    start = datetime(2023, 1, 2, tzinfo=UTC)
    authors = [
        discord_author(snowflake(start - timedelta(days=400), n), _NAMES[n % len(_NAMES)].lower())
        for n in range(40)
    ]
    bot = discord_author(snowflake(start - timedelta(days=300)), "ci-bot", "CI", bot=True)
    share, extra = divmod(messages, channels)
    sink = _Sink(path, zipped)
    try:
        for n in range(channels):
            channel_id = snowflake(start - timedelta(days=200), 1000 + n)
            name = "general" if n == 0 else f"channel-{n:03d}"
            stats.conversations[channel_id] = name
            count = share + (1 if n < extra else 0)
            document = discord_channel(guild_id, channel_id, name, [])
            out = sink.member(discord_file_name(document))
            head = json.dumps(document, ensure_ascii=False, indent=2)
            head = head[: head.index('"messages": []')] + '"messages": '
            items = _discord_messages(words, stats, authors, bot, count, start, channel_id)
            # Its count is written at its end, as DiscordChatExporter writes it.
            _array(out, head[:-1] + " [", items, f',\n  "messageCount": {count}\n}}', indent=2)
            out.close()
    finally:
        sink.close()
    stats.bytes_uncompressed = sink.written
    return stats


def _discord_messages(
    words: _Words,
    stats: Generated,
    authors: list[dict[str, Any]],
    bot: dict[str, Any],
    count: int,
    start: datetime,
    channel_id: str,
) -> Iterator[dict[str, Any]]:
    rng = words.random
    moment = start
    recent: list[str] = []
    for counter in range(count):
        moment += timedelta(seconds=rng.randint(5, 600))
        message_id = snowflake(moment, counter)
        roll = rng.random()
        author = rng.choice(authors)
        stats.messages += 1
        if roll < 0.04:
            kind = rng.choice(("GuildMemberJoin", "ChannelPinnedMessage", "ThreadCreated"))
            stats.by_kind[f"system:{kind}"] += 1
            yield discord_message(message_id, moment, "", author, kind)
            continue
        stats.importable += 1
        extra: dict[str, Any] = {}
        content = words.text()
        kind = "Default"
        if roll < 0.10:
            mentioned = rng.choice(authors)
            content = f"<@{mentioned['id']}> {content}"
            extra["mentions"] = [{k: mentioned[k] for k in ("id", "name", "nickname")}]
        elif roll < 0.15:
            extra["attachments"] = [
                {
                    "id": snowflake(moment, counter + 1),
                    "url": f"https://cdn.discordapp.com/attachments/{channel_id}/{message_id}/a.png",
                    "fileName": f"screenshot-{counter}.png",
                    "fileSizeBytes": rng.randint(10_000, 900_000),
                }
            ]
            stats.by_kind["attachment"] += 1
        elif roll < 0.17:
            extra["embeds"] = [
                {"title": "Example", "url": "https://example.com", "timestamp": None,
                 "description": "a link preview", "color": None, "fields": []}
            ]  # fmt: skip
        elif roll < 0.20:
            author = bot
            content = f"build {rng.randint(1, 9999)} passed"
            stats.by_kind["bot"] += 1
        if recent and rng.random() < 0.12:
            kind = "Reply"
            extra["reference"] = {"messageId": rng.choice(recent), "channelId": channel_id,
                                  "guildId": stats.account}  # fmt: skip
            stats.replies += 1
        if rng.random() < 0.05:
            extra["timestampEdited"] = (moment + timedelta(seconds=30)).isoformat(
                timespec="milliseconds"
            )
        if rng.random() < 0.1:
            reactions = rng.randint(1, 4)
            stats.reactions += reactions
            extra["reactions"] = [
                {"emoji": {"id": None, "name": "👍", "code": "thumbsup", "isAnimated": False,
                           "imageUrl": "https://twemoji.example/1f44d.svg"},
                 "count": reactions, "users": []}
            ]  # fmt: skip
        stats.by_kind[kind] += 1
        recent = [*recent[-49:], message_id]
        yield discord_message(message_id, moment, content, author, kind, **extra)
