"""Slack export ZIPs for tests and the benchmark: `ExportBuilder` for hand-made exports (and
hand-made trouble: malformed members, unsafe names, bombs, names without the UTF-8 flag or
in cp437, members written as a stream with data descriptors, a ZIP64 directory:
`zip64_directory`), `generate` for large realistic ones. Both write the ZIP member after member (`ExportWriter`),
so a generated export of a million messages is never whole in memory.

Records are shaped as Slack's exports write them: `type`, `user`, `text`, `ts`, `team`,
`user_team`, `source_team`, `user_profile`, `blocks`; thread roots with `thread_ts`,
`reply_count`, `replies`; replies with `thread_ts` and `parent_user_id`; `edited`;
`reactions` with `count`; `files` (and the pre-2018 single `file`); `bot_message` with
`username` and `icons`; system messages (`channel_join`, `tombstone`, ...).
"""

from __future__ import annotations

import io
import json
import random
import struct
import uuid
import warnings
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

TEAM_ID = "T0EXPORT"
_DATE_TIME = (2024, 1, 1, 0, 0, 0)
_CHUNK = 1 << 20


# -- records -------------------------------------------------------------------------------------


def user(
    user_id: str,
    name: str,
    *,
    real_name: str | None = None,
    display_name: str = "",
    team_id: str = TEAM_ID,
    image_72: str | None = None,
    is_bot: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """A users.json entry."""
    real = real_name if real_name is not None else name.title()
    return {
        "id": user_id,
        "team_id": team_id,
        "name": name,
        "deleted": False,
        "real_name": real,
        "tz": "Europe/Paris",
        "profile": {
            "real_name": real,
            "display_name": display_name,
            "real_name_normalized": real,
            "display_name_normalized": display_name,
            "image_72": image_72 or f"https://avatars.example/{user_id}_72.png",
            "team": team_id,
        },
        "is_admin": False,
        "is_bot": is_bot,
        "updated": 1700000000,
        **extra,
    }


def conversation(
    conversation_id: str, name: str | None, kind: str, members: Iterable[str] = (), **extra: Any
) -> dict[str, Any]:
    """A channels.json / groups.json / dms.json / mpims.json entry."""
    found: dict[str, Any] = {"id": conversation_id, "created": 1700000000}
    if kind == "dm":
        found["user"] = next(iter(members), "")
    else:
        found.update(
            name=name,
            creator="U0000000001",
            is_archived=False,
            is_general=name == "general",
            topic={"value": "", "creator": "", "last_set": 0},
            purpose={"value": "", "creator": "", "last_set": 0},
        )
    found["members"] = list(members)
    found.update(extra)
    return found


def message(
    ts: str,
    text: str,
    user_id: str | None = "U0000000001",
    *,
    team: str = TEAM_ID,
    subtype: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A day file's record, as Slack's export writes a person's message."""
    record: dict[str, Any] = {"type": "message"}
    if subtype is not None:
        record["subtype"] = subtype
    record["text"] = text
    if user_id is not None:
        record["user"] = user_id
        record["team"] = team
        record["user_team"] = team
        record["source_team"] = team
        record["user_profile"] = {
            "avatar_hash": "g0000000000a",
            "image_72": f"https://avatars.example/{user_id}_72.png",
            "first_name": user_id,
            "real_name": user_id,
            "display_name": "",
            "team": team,
            "name": user_id.lower(),
            "is_restricted": False,
            "is_ultra_restricted": False,
        }
    if subtype is None and user_id is not None:
        record["client_msg_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{team}/{user_id}/{ts}"))
        record["blocks"] = [
            {
                "type": "rich_text",
                "block_id": "b" + ts.replace(".", "")[-5:],
                "elements": [
                    {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
                ],
            }
        ]
    record["ts"] = ts
    record.update(extra)
    return record


def slack_file(file_id: str, name: str, mimetype: str = "image/png") -> dict[str, Any]:
    """An entry of a message's `files` (or its legacy single `file`)."""
    return {
        "id": file_id,
        "created": 1700000000,
        "name": name,
        "title": name,
        "mimetype": mimetype,
        "filetype": name.rsplit(".", 1)[-1],
        "size": 12345,
        "url_private": f"https://files.slack.com/files-pri/{TEAM_ID}-{file_id}/{name}",
        "permalink": f"https://example.slack.com/files/U0000000001/{file_id}/{name}",
    }


# -- writing -------------------------------------------------------------------------------------


class _NoUtf8Flag(zipfile.ZipInfo):
    """A member whose name is written as UTF-8 bytes without the UTF-8 flag, as Slack's own
    exports and many zip tools write them: zipfile reads such a name back as cp437."""

    encoding = "utf-8"

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:
        return self.filename.encode(self.encoding), self.flag_bits & ~0x800


class _Cp437Name(_NoUtf8Flag):
    """A name written in cp437 without the UTF-8 flag, as old DOS and Windows tools write
    them (bytes that are not UTF-8: "café" is b"caf\x82")."""

    encoding = "cp437"


class _Stream(io.RawIOBase):
    """A file that cannot seek, as a pipe: zipfile then writes each member's CRC and sizes
    after its data (a data descriptor, flag bit 3) and zeros in its local header."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("wb")

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return self._file.write(data)

    def close(self) -> None:
        self._file.close()
        super().close()


class ExportWriter:
    """A ZIP written member after member; nothing is kept once a member is written.
    `stream=True` writes it as to a pipe: every member with a data descriptor."""

    def __init__(
        self, path: Path, compression: int = zipfile.ZIP_DEFLATED, *, stream: bool = False
    ) -> None:
        self.path = path
        self.compression = compression
        self._stream = _Stream(path) if stream else None
        self._zip = zipfile.ZipFile(self._stream or path, "w", compression=compression)

    def raw(
        self,
        name: str,
        data: bytes | Iterable[bytes],
        *,
        utf8_flag: bool = True,
        compression: int | None = None,
        encrypted: bool = False,
        cp437: bool = False,
    ) -> None:
        """Any bytes under any name (a NUL, a backslash, `..`: the name is written as given).
        `encrypted` only sets the flag that says so (what a reader without the password meets);
        `cp437` writes the name in cp437, without the UTF-8 flag."""
        kind = _Cp437Name if cp437 else zipfile.ZipInfo if utf8_flag else _NoUtf8Flag
        info = kind("x", _DATE_TIME)
        info.filename = name  # ZipInfo() cuts a name at its first NUL; the test wants it whole
        info.orig_filename = name
        info.compress_type = self.compression if compression is None else compression
        info.external_attr = 0o644 << 16
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Duplicate name": a test may want one
            with self._zip.open(info, "w", force_zip64=True) as member:
                if encrypted:  # after open(), which resets the flags; the header is rewritten
                    info.flag_bits |= 0x1
                for chunk in [data] if isinstance(data, bytes) else data:
                    member.write(chunk)

    def json(
        self, name: str, value: Any, *, utf8_flag: bool = True, indent: int | None = 4
    ) -> None:
        encoded = json.dumps(value, ensure_ascii=False, indent=indent).encode("utf-8")
        self.raw(name, encoded, utf8_flag=utf8_flag)

    def close(self) -> None:
        self._zip.close()
        if self._stream is not None:
            self._stream.close()

    def __enter__(self) -> ExportWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


@dataclass
class _Raw:
    name: str
    data: bytes | None
    utf8_flag: bool
    compression: int | None
    zeros: int = 0
    encrypted: bool = False
    cp437: bool = False


class ExportBuilder:
    """An export made by hand. `utf8_flag=False` writes every member name without the UTF-8
    flag (a non-ASCII channel's folder then reads back as cp437 mojibake); `stream=True`
    writes every member with a data descriptor."""

    def __init__(
        self,
        team_id: str = TEAM_ID,
        *,
        utf8_flag: bool = True,
        compression: int = zipfile.ZIP_DEFLATED,
        root: str = "",
        stream: bool = False,
    ) -> None:
        self.team_id = team_id
        self.utf8_flag = utf8_flag
        self.compression = compression
        self.stream = stream
        self.root = root  # "Export Jan 1/" for an export unpacked and zipped again
        self.users: list[dict[str, Any]] = []
        self.org_users: list[dict[str, Any]] = []
        self.index: dict[str, list[dict[str, Any]]] = {
            "channels.json": [],
            "groups.json": [],
            "dms.json": [],
            "mpims.json": [],
        }
        self.omitted: set[str] = set()
        self.days: dict[str, dict[str, list[Any]]] = {}
        self.raws: list[_Raw] = []
        self._ids = 0

    def add_user(
        self, user_id: str, name: str, *, grid: bool = False, **fields: Any
    ) -> dict[str, Any]:
        """A member of users.json (of org_users.json with `grid=True`)."""
        fields.setdefault("team_id", self.team_id)
        found = user(user_id, name, **fields)
        (self.org_users if grid else self.users).append(found)
        return found

    def add_channel(
        self,
        name: str | None,
        *,
        kind: str = "channel",
        channel_id: str | None = None,
        members: Iterable[str] = (),
        **extra: Any,
    ) -> dict[str, Any]:
        """A conversation in its index file (channel → channels.json, group → groups.json,
        dm → dms.json, mpim → mpims.json); its folder is made by its first message."""
        self._ids += 1
        prefix = {"channel": "C", "group": "G", "dm": "D", "mpim": "G"}[kind]
        found = conversation(
            channel_id or f"{prefix}{self._ids:010d}", name, kind, members, **extra
        )
        self.index[f"{kind}s.json" if kind != "channel" else "channels.json"].append(found)
        return found

    def folder(self, channel: dict[str, Any] | str) -> str:
        """Where Slack puts a conversation's day files: DMs by id, the others by name."""
        if isinstance(channel, str):
            return channel
        if "name" not in channel:
            return str(channel["id"])
        return str(channel["name"])

    def add_message(self, channel: dict[str, Any] | str, day: str, record: Any) -> Any:
        """A record appended to `<folder>/<day>.json` (`channel` an index entry, or a folder
        name as is); any JSON value, to test what is quarantined."""
        self.days.setdefault(self.folder(channel), {}).setdefault(day, []).append(record)
        return record

    def raw(
        self,
        name: str,
        data: bytes,
        *,
        utf8_flag: bool | None = None,
        compression: int | None = None,
        encrypted: bool = False,
        cp437: bool = False,
    ) -> None:
        """A member written as given (malformed JSON, a path trick, anything)."""
        flag = self.utf8_flag if utf8_flag is None else utf8_flag
        self.raws.append(_Raw(name, data, flag, compression, encrypted=encrypted, cp437=cp437))

    def bomb(self, name: str, size: int) -> None:
        """`size` zero bytes, deflated (about 1000:1), written in chunks."""
        self.raws.append(_Raw(name, None, True, zipfile.ZIP_DEFLATED, zeros=size))

    def omit(self, index_file: str) -> None:
        """Leave an index file out (channels.json, users.json, ...)."""
        self.omitted.add(index_file)

    def write(self, path: Path) -> Path:
        with ExportWriter(path, self.compression, stream=self.stream) as out:
            for name, entries in self.index.items():
                if name not in self.omitted and (entries or name == "channels.json"):
                    out.json(self.root + name, entries, utf8_flag=self.utf8_flag)
            for name, entries in (("users.json", self.users), ("org_users.json", self.org_users)):
                if name not in self.omitted and (entries or name == "users.json"):
                    out.json(self.root + name, entries, utf8_flag=self.utf8_flag)
            for folder, days in self.days.items():
                for day in sorted(days):
                    name = f"{self.root}{folder}/{day}.json"
                    out.json(name, days[day], utf8_flag=self.utf8_flag)
            for raw in self.raws:
                data = raw.data if raw.data is not None else _zeros(raw.zeros)
                out.raw(
                    raw.name,
                    data,
                    utf8_flag=raw.utf8_flag,
                    compression=raw.compression,
                    encrypted=raw.encrypted,
                    cp437=raw.cp437,
                )
        return path


def zip64_directory(path: Path) -> Path:
    """Rewrite a ZIP's central directory as a writer of a ZIP over 4 GiB writes it: each
    member's sizes and local header offset 0xFFFFFFFF in its entry and the values in a ZIP64
    extra field, then a ZIP64 end of central directory record and its locator, and an end
    record whose counts, size and offset say 0xFFFF and 0xFFFFFFFF. The members stay."""
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        start = archive.start_dir
    directory = bytearray()
    for info in infos:
        name = info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")
        extra = struct.pack("<HH3Q", 1, 24, info.file_size, info.compress_size, info.header_offset)
        year, month, day, hour, minute, second = info.date_time
        directory += struct.pack(
            "<4s4B4HL2L5H2L",
            b"PK\x01\x02",
            45,
            3,
            45,
            0,
            info.flag_bits,
            info.compress_type,
            hour << 11 | minute << 5 | second // 2,
            (year - 1980) << 9 | month << 5 | day,
            info.CRC,
            0xFFFFFFFF,
            0xFFFFFFFF,
            len(name),
            len(extra),
            0,
            0,
            0,
            info.external_attr,
            0xFFFFFFFF,
        )
        directory += name + extra
    count = len(infos)
    end64 = start + len(directory)
    with path.open("r+b") as file:
        file.seek(start)
        file.truncate()
        file.write(directory)
        file.write(
            struct.pack(
                "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(directory), start
            )
        )
        file.write(struct.pack("<4sLQL", b"PK\x06\x07", 0, end64, 1))
        file.write(
            struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
        )
    return path


def _zeros(size: int) -> Iterator[bytes]:
    chunk = bytes(_CHUNK)
    while size > 0:
        yield chunk[: min(size, _CHUNK)]
        size -= _CHUNK


# -- generated exports ---------------------------------------------------------------------------

_NAMES = [
    "alice", "bob", "chloé", "dmitri", "eve", "françois", "gunnar", "hiro", "ines", "jürgen",
    "kasia", "li", "mateo", "nadia", "oskar", "priya", "quentin", "rosa", "søren", "tomás",
]  # fmt: skip
_WORDS = [
    "deploy", "build", "review", "merge", "ship", "release", "fix", "the", "a", "to", "of", "on",
    "staging", "prod", "flaky", "test", "lunch", "meeting", "tomorrow", "today", "ticket",
    "incident", "rollback", "done", "thanks", "please", "check", "again",
]  # fmt: skip


@dataclass
class Generated:
    """What `generate` wrote, for a test or a benchmark to check an import against."""

    messages: int = 0
    conversations: int = 0
    day_files: int = 0
    threads: int = 0
    replies: int = 0
    replies_in_later_files: int = 0
    replies_in_earlier_files: int = 0
    reactions: int = 0
    by_subtype: Counter[str] = field(default_factory=Counter)
    bytes_uncompressed: int = 0


@dataclass
class _Pending:
    """A record that belongs to a later day: a reply due then, or a root whose reply was
    already written in an earlier day file."""

    day: int
    root_ts: str
    root_user: str
    kind: str  # reply | root


class _Channel:
    def __init__(
        self, generator: _Generator, entry: dict[str, Any], folder: str, budget: int
    ) -> None:
        self.g = generator
        self.entry = entry
        self.folder = folder
        self.budget = budget
        self.written = 0
        self.pending: list[_Pending] = []
        self.counter = 0

    def reserved(self) -> int:
        return len(self.pending)

    def free(self) -> int:
        return self.budget - self.written - self.reserved()


class _Generator:
    def __init__(
        self,
        out: ExportWriter,
        seed: int,
        users: int,
        per_day: int,
        start: date,
        indent: int | None,
        utf8_flag: bool,
    ) -> None:
        self.out = out
        self.utf8_flag = utf8_flag
        self.random = random.Random(seed)
        self.per_day = per_day
        self.start = datetime(start.year, start.month, start.day, tzinfo=UTC)
        self.indent = indent
        self.stats = Generated()
        self.user_ids = [f"U{n + 1:010d}" for n in range(users)]
        self.files = 0

    def user_entries(self) -> list[dict[str, Any]]:
        found = []
        for n, user_id in enumerate(self.user_ids):
            name = f"{_NAMES[n % len(_NAMES)]}{n // len(_NAMES) or ''}"
            found.append(user(user_id, name, display_name=name.capitalize() if n % 3 else ""))
        found.append(user("U0CIBOT0001", "ci-bot", is_bot=True))
        return found

    def text(self) -> str:
        words = self.random.choices(_WORDS, k=self.random.randint(3, 14))
        if self.random.random() < 0.1:
            words.insert(0, f"<@{self.random.choice(self.user_ids)}>")
        return " ".join(words)

    def ts(self, channel: _Channel, day: int, second: int) -> str:
        channel.counter += 1
        epoch = int(self.start.timestamp()) + day * 86400 + second
        return f"{epoch}.{channel.counter % 1_000_000:06d}"

    def channel(self, channel: _Channel) -> None:
        day = 0
        while channel.written < channel.budget:
            records = self.day(channel, day)
            if records:
                name = f"{channel.folder}/{(self.start + timedelta(days=day)).date()}.json"
                data = json.dumps(records, ensure_ascii=False, indent=self.indent).encode()
                self.stats.bytes_uncompressed += len(data)
                self.stats.day_files += 1
                self.out.raw(name, data, utf8_flag=self.utf8_flag)
            day += 1

    def day(self, channel: _Channel, day: int) -> list[dict[str, Any]]:
        rng = self.random
        records: list[dict[str, Any]] = []
        due = [item for item in channel.pending if item.day == day]
        channel.pending = [item for item in channel.pending if item.day != day]
        slots = max(self.per_day, len(due) + 1)
        step = max(1, 86000 // (slots * 2))
        second = 1

        def next_ts() -> str:
            nonlocal second
            second += rng.randint(1, step)
            return self.ts(channel, day, second)

        def add(record: dict[str, Any]) -> None:
            records.append(record)
            channel.written += 1
            self.stats.messages += 1
            self.stats.by_subtype[record.get("subtype") or "plain"] += 1

        for item in due:
            if item.kind == "root":
                add(self.root(item.root_ts, item.root_user, replies=1))
            else:
                self.stats.replies_in_later_files += 1
                add(self.reply(next_ts(), item.root_ts, item.root_user))
        for _ in range(max(0, self.per_day - len(due))):
            if channel.free() <= 0:
                break
            roll = rng.random()
            ts = next_ts()
            author = rng.choice(self.user_ids)
            if roll < 0.08 and channel.free() >= 3:
                # A thread: a reply or two now, the rest in the next day files.
                later = rng.randint(1, 3)
                now = rng.randint(0, 2)
                if channel.free() < 1 + now + later:
                    now, later = 0, min(later, channel.free() - 1)
                add(self.root(ts, author, replies=now + later))
                for _ in range(now):
                    add(self.reply(next_ts(), ts, author))
                for n in range(later):
                    channel.pending.append(_Pending(day + 1 + n, ts, author, "reply"))
            elif roll < 0.10 and channel.free() >= 2:
                # A reply in this day file to a root in the next one.
                root_ts = self.ts(channel, day + 1, 0)
                self.stats.replies_in_earlier_files += 1
                add(self.reply(self.ts(channel, day + 1, 0), root_ts, author))
                channel.pending.append(_Pending(day + 1, root_ts, author, "root"))
            elif roll < 0.14:
                name = f"screenshot-{self.files}.png"
                self.files += 1
                file = slack_file(f"F{self.files:010d}", name)
                if rng.random() < 0.2:
                    add(message(ts, "", author, subtype="file_share", file=file, upload=True))
                else:
                    add(message(ts, self.text(), author, subtype="file_share", files=[file]))
            elif roll < 0.18:
                add(
                    message(
                        ts,
                        f"build {rng.randint(1, 9999)} passed",
                        None,
                        subtype="bot_message",
                        bot_id="B0CIBOT001",
                        username="CI",
                        icons={"image_48": "https://ci.example/icon48.png"},
                    )
                )
            elif roll < 0.19:
                add(message(ts, "waves", author, subtype="me_message"))
            elif roll < 0.22:
                add(
                    message(
                        ts, f"<@{author}> has joined the channel", author, subtype="channel_join"
                    )
                )
            elif roll < 0.225:
                add(
                    message(
                        ts, f"<@{author}> has left the channel", author, subtype="channel_leave"
                    )
                )
            elif roll < 0.23:
                add(message(ts, "set the channel topic: ship it", author, subtype="channel_topic"))
            else:
                extra: dict[str, Any] = {}
                if rng.random() < 0.05:
                    extra["edited"] = {"user": author, "ts": self.ts(channel, day, second + 5)}
                if rng.random() < 0.1:
                    count = rng.randint(1, 4)
                    self.stats.reactions += count
                    extra["reactions"] = [
                        {"name": "thumbsup", "users": self.user_ids[:count], "count": count}
                    ]
                add(message(ts, self.text(), author, **extra))
        records.sort(key=lambda record: record["ts"])
        return records

    def root(self, ts: str, author: str, replies: int) -> dict[str, Any]:
        self.stats.threads += 1
        if self.random.random() < 0.05:
            # The root deleted, its replies kept: Slack leaves a stand-in.
            return message(
                ts, "This message was deleted.", "USLACKBOT", subtype="tombstone", hidden=True,
                thread_ts=ts, reply_count=replies, reply_users=[author], replies=[],
            )  # fmt: skip
        return message(
            ts,
            self.text(),
            author,
            thread_ts=ts,
            reply_count=replies,
            reply_users_count=1,
            reply_users=[author],
            replies=[],
            is_locked=False,
            subscribed=False,
        )

    def reply(self, ts: str, root_ts: str, root_user: str) -> dict[str, Any]:
        self.stats.replies += 1
        author = self.random.choice(self.user_ids)
        if self.random.random() < 0.1:
            return message(
                ts, self.text(), author, subtype="thread_broadcast", thread_ts=root_ts,
                root={"ts": root_ts, "user": root_user, "text": "", "thread_ts": root_ts},
            )  # fmt: skip
        return message(ts, self.text(), author, thread_ts=root_ts, parent_user_id=root_user)


def generate(
    path: Path,
    messages: int,
    channels: int,
    *,
    seed: int = 16,
    users: int = 40,
    per_day: int = 60,
    start: date = date(2023, 1, 2),
    indent: int | None = None,
    utf8_flag: bool = False,
) -> Generated:
    """An export of exactly `messages` records over `channels` conversations (mostly public
    channels, some private ones, DMs and group DMs; one channel with a non-ASCII name),
    about `per_day` records a day file. Deterministic for a seed; written as it is made.
    Member names are written without the UTF-8 flag, as Slack writes them (`utf8_flag`)."""
    with ExportWriter(path) as out:
        generator = _Generator(out, seed, users, per_day, start, indent, utf8_flag)
        rng = generator.random
        entries: dict[str, list[dict[str, Any]]] = {name: [] for name in ("c", "g", "d", "m")}
        plan: list[tuple[dict[str, Any], str]] = []
        for n in range(channels):
            kind = ("channel", "channel", "channel", "channel", "group", "dm", "mpim")[n % 7]
            if n == 0:
                kind, name = "channel", "general"
            elif n == 1:
                kind, name = "channel", "général"
            else:
                name = f"{kind}-{n:04d}"
            members = rng.sample(generator.user_ids, k=2 if kind == "dm" else min(5, users))
            if kind == "dm":
                entry = conversation(f"D{n:010d}", None, "dm", members)
                folder = entry["id"]
            elif kind == "mpim":
                name = "mpdm-" + "--".join(members[:3]) + "-1"
                entry = conversation(f"G{n:010d}", name, "mpim", members[:3], is_mpim=True)
                folder = name
            else:
                entry = conversation(
                    f"{'C' if kind == 'channel' else 'G'}{n:010d}", name, kind, members
                )
                folder = name
            entries[kind[0]].append(entry)
            plan.append((entry, folder))
        out.json("channels.json", entries["c"], indent=indent)
        out.json("groups.json", entries["g"], indent=indent)
        out.json("dms.json", entries["d"], indent=indent)
        out.json("mpims.json", entries["m"], indent=indent)
        out.json("users.json", generator.user_entries(), indent=indent)
        generator.stats.conversations = channels
        share, extra = divmod(messages, channels)
        for n, (entry, folder) in enumerate(plan):
            generator.channel(_Channel(generator, entry, folder, share + (1 if n < extra else 0)))
        return generator.stats
