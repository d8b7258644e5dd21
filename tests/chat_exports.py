"""Telegram Desktop and DiscordChatExporter exports for the importer's tests and the
benchmark, made with the readers' own builders (`tests.providers.telegram_exports`, which
lays a file out as tdesktop does, and those of `tests.providers.test_discord_export`):

- `discord_message`: a message of DiscordChatExporter's with the id and time it is given
  (a message of the Discord fake's, to export a channel the API import also reads);
  `discord_file_name`: the file name DiscordChatExporter gives a channel's export.
- `generate_telegram`, `generate_discord`: large exports, zipped, written message after
  message so that a million messages are never whole in memory, with what they hold
  (`Generated`) for the benchmark.
"""

from __future__ import annotations

import io
import json
import random
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from tests.providers import telegram_exports
from tests.providers.test_discord_export import channel, dce_message, user

DISCORD_EPOCH_MS = 1420070400000


def snowflake(moment: datetime, counter: int = 0) -> str:
    """A Discord id made at `moment` (ids sort by time)."""
    ms = int(moment.timestamp() * 1000) - DISCORD_EPOCH_MS
    return str((ms << 22) | (counter & 0x3FFFFF))


def discord_message(
    message_id: str,
    moment: datetime,
    content: str,
    author: dict[str, Any],
    kind: str = "Default",
    *,
    reply_to: tuple[str, str, str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A message as DiscordChatExporter writes it, with this id and time; `reply_to`
    (message, channel, guild) makes it a reply, `fields` replace the writer's."""
    found = dce_message(0, content, kind=kind, author=author)
    found.update(id=message_id, timestamp=moment.isoformat(timespec="milliseconds"), **fields)
    if reply_to is not None:
        message, channel_id, guild_id = reply_to
        found["reference"] = {
            "type": "Default",
            "messageId": message,
            "channelId": channel_id,
            "guildId": guild_id,
        }
    return found


def discord_file_name(guild: dict[str, Any], chan: dict[str, Any]) -> str:
    """DiscordChatExporter's default file name: `Guild - Category - channel [id].json`."""
    return f"{guild['name']} - {chan['category']} - {chan['name']} [{chan['id']}].json"


@dataclass
class Generated:
    """What a generated export holds."""

    messages: int = 0
    importable: int = 0  # messages minus the service or system messages an import skips
    conversations: list[str] = field(default_factory=list)  # their ids as live sync has them
    replies: int = 0
    reactions: int = 0
    bytes_uncompressed: int = 0


def generate_telegram(path: Path, messages: int, chats: int) -> Generated:
    """A whole-account export of `messages` messages over `chats` supergroups, its folder
    zipped (tests.providers.telegram_exports.generate: plain and formatted text, replies,
    edits, photos, documents, stickers, voice messages, reactions, and one service message
    in twenty)."""
    stats = telegram_exports.generate(path, messages, chats, as_zip=True)
    skipped = sum(n for kind, n in stats.by_subtype.items() if kind.startswith("skipped:"))
    return Generated(
        messages=stats.messages,
        importable=stats.messages - skipped,
        conversations=[f"-100{chat_id}" for chat_id, _ in stats.chats],
        replies=stats.replies,
        reactions=stats.reactions,
        bytes_uncompressed=stats.bytes,
    )


class _Counting(io.RawIOBase):
    """A ZIP member written through, its bytes counted."""

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self.written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.written += len(data)
        return self._inner.write(data)


_WORDS = (
    "deploy", "ship", "review", "merge", "branch", "release", "staging", "hotfix", "rollback",
    "build", "test", "flaky", "coffee", "lunch", "meeting", "sprint", "ticket", "bug", "feature",
    "docs", "metrics", "alert", "pager", "incident", "résumé", "naïve", "🚀", "✅", "ok", "thanks",
    "sure", "later", "tomorrow", "maybe",
)  # fmt: skip
_NAMES = ("ada", "grace", "alan", "barbara", "edsger", "frances", "donald", "radia", "ken")
GUILD = {
    "id": "1100000000000000001",
    "name": "Hookhub Bench Server",
    "iconUrl": "https://cdn.discordapp.com/embed/avatars/0.png",
}


def generate_discord(path: Path, messages: int, channels: int, *, seed: int = 35) -> Generated:
    """A server's export (`exportguild`) of `messages` messages over `channels` channel
    files, zipped: plain text with mentions, replies, edits, attachments, embeds, reactions,
    bot messages, and about 4 % system messages (joins, pins, thread creations). Each file
    is written as DiscordChatExporter writes it (indented by two, `messageCount` last)."""
    rng = random.Random(seed)
    stats = Generated()
    start = datetime(2023, 1, 2, tzinfo=UTC)
    authors = [user(str(1300000000000000000 + n), _NAMES[n % len(_NAMES)]) for n in range(40)]
    bot = user("1300000000000000999", "ci-bot", "CI", bot=True)
    share, extra = divmod(messages, channels)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for n in range(channels):
            chan = channel(snowflake(start - timedelta(days=200), 1000 + n), f"channel-{n:03d}")
            stats.conversations.append(chan["id"])
            count = share + (1 if n < extra else 0)
            head, tail = _file_around(chan, count)
            with archive.open(discord_file_name(GUILD, chan), "w", force_zip64=True) as member:
                out = _Counting(member)
                out.write(head)
                items = _discord_messages(rng, stats, authors, bot, count, start, chan["id"])
                for number, item in enumerate(items):
                    text = json.dumps(item, ensure_ascii=False, indent=2).replace("\n", "\n    ")
                    out.write(((",\n    " if number else "\n    ") + text).encode())
                out.write(tail)
                stats.bytes_uncompressed += out.written
    return stats


def _file_around(chan: dict[str, Any], count: int) -> tuple[bytes, bytes]:
    """What a channel file holds before its messages and after them."""
    document = {
        "guild": GUILD,
        "channel": chan,
        "dateRange": {"after": None, "before": None},
        "exportedAt": "2024-06-30T12:00:00.000+00:00",
        "messages": ["…"],
        "messageCount": count,
    }
    text = json.dumps(document, ensure_ascii=False, indent=2)
    head, _, tail = text.partition('\n    "…"\n')
    return head.encode(), ("\n  " + tail.lstrip()).encode()


def _discord_messages(
    rng: random.Random,
    stats: Generated,
    authors: list[dict[str, Any]],
    bot: dict[str, Any],
    count: int,
    start: datetime,
    channel_id: str,
) -> Iterator[dict[str, Any]]:
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
            yield discord_message(message_id, moment, "", author, kind)
            continue
        stats.importable += 1
        fields: dict[str, Any] = {}
        content = " ".join(rng.choices(_WORDS, k=rng.randint(3, 16)))
        if roll < 0.10:
            mentioned = rng.choice(authors)
            content = f"<@{mentioned['id']}> {content}"
            fields["mentions"] = [mentioned]
        elif roll < 0.15:
            fields["attachments"] = [
                {
                    "id": snowflake(moment, counter + 1),
                    "url": f"https://cdn.discordapp.com/attachments/{channel_id}/{message_id}/a.png",
                    "fileName": f"screenshot-{counter}.png",
                    "fileSizeBytes": rng.randint(10_000, 900_000),
                }
            ]
        elif roll < 0.17:
            fields["embeds"] = [
                {"title": "Example", "url": "https://example.com", "timestamp": None,
                 "description": "a link preview", "color": None, "fields": []}
            ]  # fmt: skip
        elif roll < 0.20:
            author, content = bot, f"build {rng.randint(1, 9999)} passed"
        reply_to = None
        if recent and rng.random() < 0.12:
            reply_to = (rng.choice(recent), channel_id, GUILD["id"])
            stats.replies += 1
        if rng.random() < 0.05:
            edited = moment + timedelta(seconds=30)
            fields["timestampEdited"] = edited.isoformat(timespec="milliseconds")
        if rng.random() < 0.1:
            reactions = rng.randint(1, 4)
            stats.reactions += reactions
            fields["reactions"] = dce_message(0, reactions=[("👍", reactions)])["reactions"]
        recent = [*recent[-49:], message_id]
        yield discord_message(
            message_id,
            moment,
            content,
            author,
            "Reply" if reply_to else "Default",
            reply_to=reply_to,
            **fields,
        )
