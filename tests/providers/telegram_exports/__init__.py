"""Telegram Desktop exports for the tests, written as tdesktop writes them.

Sources of the layout (tdesktop, Telegram/SourceFiles/export/output/export_output_json.cpp):
`JsonWriter::writeDialogStart` writes a chat as `{"name", "type", "id", "messages": [...]}`
(no `name` for saved_messages), alone in `result.json` for a one-chat export or as an item of
`chats.list` / `left_chats.list` in an account export whose root starts with `about`;
`SerializeMessage` writes a message's keys in the order `id, type, date, date_unixtime,
edited, edited_unixtime, (actor, actor_id, action... | from, from_id, author,
forwarded_from, reply_to_message_id), media fields, text, text_entities, reactions`, `date`
in local time without offset (`QDateTime::toString(Qt::ISODate)`), `date_unixtime` as a
string (`SerializeDateRaw`), `from_id` as `user<id>` / `channel<id>` / `chat<id>`,
`text` as a string when it is one plain part, else an array of strings and `{type, text}`
objects, `text_entities` always as such objects (`plain` ones included). Indentation is
one space a level (`Indentation`), and the member folders (`photos/`, `files/`,
`video_files/`, `voice_messages/`, `stickers/`) hold what the paths name.

`generate` streams a large export (for the memory test and the figures in the reader's
report), whatever its size, without holding it.
"""

from __future__ import annotations

import json
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BASE_TIME = 1714557600  # 2024-05-01T10:00:00Z
ABOUT = "Here is the data you requested. Remember: Telegram is ad free, ..."


@dataclass(frozen=True)
class Raw:
    """Bytes written as they are where a message would be: a malformed document."""

    text: str


def local_iso(unixtime: int) -> str:
    """`date` as tdesktop writes it (the exporting computer's local time: UTC here)."""
    return datetime.fromtimestamp(unixtime, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def entities_of(text: str | list[Any]) -> list[dict[str, Any]]:
    if isinstance(text, str):
        return [{"type": "plain", "text": text}] if text else []
    return [{"type": "plain", "text": part} if isinstance(part, str) else part for part in text]


def message(
    message_id: int,
    text: str | list[Any] = "",
    /,
    *,
    at: int | None = None,
    sender: tuple[str | None, str] | None = ("Alice Liddell", "user1001"),
    unixtime: bool = True,
    edited: int | None = None,
    entities: bool = True,
    **fields: Any,
) -> dict[str, Any]:
    """A message as tdesktop writes it; `fields` (replies, media, reactions...) go between
    the sender and the text, as `SerializeMessage` orders them."""
    moment = at if at is not None else BASE_TIME + 60 * message_id
    out: dict[str, Any] = {"id": message_id, "type": "message", "date": local_iso(moment)}
    if unixtime:
        out["date_unixtime"] = str(moment)
    if edited is not None:
        out["edited"] = local_iso(edited)
        if unixtime:
            out["edited_unixtime"] = str(edited)
    if sender is not None:
        out["from"], out["from_id"] = sender
    reactions = fields.pop("reactions", None)
    out.update(fields)
    out["text"] = text
    if entities:
        out["text_entities"] = entities_of(text)
    if reactions is not None:
        out["reactions"] = reactions
    return out


def service(
    message_id: int,
    action: str | None,
    /,
    *,
    at: int | None = None,
    actor: tuple[str, str] = ("Alice Liddell", "user1001"),
    **fields: Any,
) -> dict[str, Any]:
    moment = at if at is not None else BASE_TIME + 60 * message_id
    out: dict[str, Any] = {
        "id": message_id,
        "type": "service",
        "date": local_iso(moment),
        "date_unixtime": str(moment),
        "actor": actor[0],
        "actor_id": actor[1],
    }
    if action is not None:
        out["action"] = action
    out.update(fields)
    out["text"] = ""
    out["text_entities"] = []
    return out


def chat(
    name: str | None, telegram_type: str, chat_id: int, messages: Iterable[Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if telegram_type not in ("saved_messages", "replies", "verification_codes"):
        out["name"] = name
    out["type"] = telegram_type
    out["id"] = chat_id
    out["messages"] = list(messages)
    return out


def _value(value: Any, level: int) -> str:
    """JSON as tdesktop lays it out: one space of indentation a level."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict) and value:
        inner = " " * (level + 1)
        items = ",\n".join(
            f"{inner}{json.dumps(key, ensure_ascii=False)}: {_value(item, level + 1)}"
            for key, item in value.items()
        )
        return "{\n" + items + "\n" + " " * level + "}"
    if isinstance(value, list) and value:
        inner = " " * (level + 1)
        items = ",\n".join(f"{inner}{_value(item, level + 1)}" for item in value)
        return "[\n" + items + "\n" + " " * level + "]"
    return json.dumps(value, ensure_ascii=False)


def chat_export(one_chat: dict[str, Any]) -> bytes:
    """`result.json` of "Export chat history": the chat is the document."""
    return _value(one_chat, 0).encode()


def account_export(
    chats: list[Any], left_chats: list[Any] | None = None, *, extra: dict[str, Any] | None = None
) -> bytes:
    """`result.json` of "Export Telegram data", with the sections tdesktop writes around the
    chats."""
    document: dict[str, Any] = {
        "about": ABOUT,
        "personal_information": {
            "user_id": 1001,
            "first_name": "Alice",
            "last_name": "Liddell",
            "phone_number": "+44 0000 000000",
            "bio": "",
        },
        "contacts": {"about": "contacts", "list": []},
        **(extra or {}),
        "chats": {"about": "This page lists all chats from this export.", "list": chats},
    }
    if left_chats is not None:
        document["left_chats"] = {
            "about": "This page lists all supergroups and channels from this export that you "
            "left or were banned from.",
            "list": left_chats,
        }
    return _value(document, 0).encode()


def zip_export(
    path: Path,
    result: bytes,
    *,
    root: str = "ChatExport_2024-05-01/",
    files: dict[str, bytes] | None = None,
    extra: dict[str, bytes] | None = None,
) -> Path:
    """The export folder zipped: `result.json` and the media under `root`; `extra` members
    are written as named (outside `root`)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{root}result.json", result)
        for name, data in (files or {}).items():
            archive.writestr(f"{root}{name}", data)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return path


# -- a large export, streamed ---------------------------------------------------------------------


@dataclass
class Stats:
    messages: int = 0
    bytes: int = 0
    by_subtype: Counter[str] = field(default_factory=Counter)
    reactions: int = 0
    replies: int = 0
    chats: list[tuple[int, int]] = field(default_factory=list)  # (export id, messages)


_WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "*stars*",
    "and",
    "_lines_",
    "stay",
    "literal",
]


def _generated(message_id: int, chat_id: int, stats: Stats) -> dict[str, Any]:
    """A mix like a real group's: plain text, formatted text, replies to earlier messages,
    photos, files, stickers, voice messages, service messages, reactions, edits."""
    kind = message_id % 20
    words = " ".join(_WORDS[(message_id + n) % len(_WORDS)] for n in range(8 + message_id % 9))
    if kind == 19:
        stats.by_subtype["skipped:invite_members"] += 1
        return service(message_id, "invite_members", members=["Bob Marley"])
    fields: dict[str, Any] = {}
    subtype = "message"
    text: str | list[Any] = f"{message_id}: {words}"
    if kind in (1, 7, 13) and message_id > 10:
        fields["reply_to_message_id"] = message_id - 1 - message_id % 7
        stats.replies += 1
    if kind == 3:
        text = [
            "see ",
            {"type": "bold", "text": "this"},
            " and ",
            {"type": "text_link", "text": "that", "href": "https://example.com/x"},
            {"type": "code", "text": " x = `1` "},
        ]
    elif kind == 5:
        fields.update(photo=f"photos/photo_{message_id}@01-05-2024_10-00-00.jpg", width=1280)
        fields["height"] = 720
        subtype = "photo"
    elif kind == 9:
        fields.update(
            file=f"files/report_{message_id}.pdf",
            file_name=f"report_{message_id}.pdf",
            mime_type="application/pdf",
        )
        subtype = "document"
    elif kind == 11:
        fields.update(file="stickers/sticker.webp", media_type="sticker", sticker_emoji="👍")
        text = ""
        subtype = "sticker"
    elif kind == 15:
        fields.update(
            file=f"voice_messages/audio_{message_id}@01-05-2024_10-00-00.ogg",
            media_type="voice_message",
            mime_type="audio/ogg",
            duration_seconds=3,
        )
        text = ""
        subtype = "voice"
    if kind == 17:
        fields["reactions"] = [
            {"type": "emoji", "count": 2, "emoji": "👍"},
            {"type": "emoji", "count": 1, "emoji": "🔥"},
        ]
        stats.reactions += 3
    stats.by_subtype[subtype] += 1
    sender = ("Bob Marley", "user1002") if message_id % 3 else ("Alice Liddell", "user1001")
    edited = BASE_TIME + 60 * message_id + 30 if kind == 2 else None
    return message(message_id, text, sender=sender, edited=edited, **fields)


def generate_lines(messages: int, chats: int, stats: Stats) -> Iterator[bytes]:
    """An account export of `chats` private supergroups sharing `messages` between them, a
    line at a time."""
    yield (
        "{\n"
        f' "about": {json.dumps(ABOUT)},\n'
        ' "chats": {\n  "about": "This page lists all chats from this export.",\n'
        '  "list": [\n'
    ).encode()
    per_chat, left = divmod(messages, chats)
    for number in range(chats):
        chat_id = 1_000_000_000 + number
        count = per_chat + (1 if number < left else 0)
        stats.chats.append((chat_id, count))
        head = "   {\n" if number == 0 else ",\n   {\n"
        yield (
            f'{head}    "name": "Group {number}",\n    "type": "private_supergroup",\n'
            f'    "id": {chat_id},\n    "messages": [\n'
        ).encode()
        for message_id in range(1, count + 1):
            one = _generated(message_id, chat_id, stats)
            stats.messages += 1
            line = json.dumps(one, ensure_ascii=False, separators=(",", ":"))
            yield (("     " if message_id == 1 else ",\n     ") + line).encode()
        yield b"\n    ]\n   }"
    yield b"\n  ]\n }\n}\n"


def generate(path: Path, messages: int, chats: int = 1, *, as_zip: bool = False) -> Stats:
    """Write an account export of `messages` messages in `chats` chats, streamed."""
    stats = Stats()
    if as_zip:
        with (
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
            archive.open("Telegram Export/result.json", "w", force_zip64=True) as out,
        ):
            for line in generate_lines(messages, chats, stats):
                stats.bytes += len(line)
                out.write(line)
        return stats
    with path.open("wb", buffering=2**20) as file:
        for line in generate_lines(messages, chats, stats):
            stats.bytes += len(line)
            file.write(line)
    return stats


if __name__ == "__main__":
    import sys

    found = generate(
        Path(sys.argv[1]),
        int(sys.argv[2]),
        int(sys.argv[3]) if len(sys.argv) > 3 else 1,
        as_zip=sys.argv[1].endswith(".zip"),
    )
    print(json.dumps({"messages": found.messages, "bytes": found.bytes}))
