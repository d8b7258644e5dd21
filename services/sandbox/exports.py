"""The sandbox's sample exports: the seeded Slack workspace's and Telegram supergroups' history
from before the sandbox started, as Slack's export ZIP and Telegram Desktop's `result.json`,
for a newcomer to try the importer with (`GET /sandbox/api/exports/{slack|telegram}`).

Both are made from the stand-ins' own channels, chats and users (the ids hookhub's mappings
name), with one short made-up history (`HISTORY`, written here). Their layouts:

- Slack: "How to read Slack data exports" (slack.com/help/articles/220556107), a public
  channels export: `channels.json`, `users.json` (users.list's records, as the stand-in
  answers them) and a folder per channel, one JSON array of messages a day (`YYYY-MM-DD.json`).
  A message's fields are those of conversations.history's (docs.slack.dev/messaging/
  retrieving-messages): `type`, `user`, `text`, `ts`, `team`, `user_profile`, `blocks`; a
  thread's root with `thread_ts`, `reply_count`, `reply_users`, `latest_reply`, `replies`;
  a reply with `thread_ts` and `parent_user_id`; and the `channel_join` notice Slack writes
  when someone joins (the importer skips and counts it).
- Telegram: tdesktop's Telegram/SourceFiles/export/output/export_output_json.cpp, the
  account's "Export Telegram data" in Machine-readable JSON: `about`,
  `personal_information`, then `chats.list`, each chat `{"name", "type", "id", "messages"}`
  with the supergroup's bare id (the Bot API's `-100…` without the prefix); a message's
  `id, type, date, date_unixtime, from, from_id, reply_to_message_id, text, text_entities`;
  a service message's `actor`, `actor_id`, `action`.

The history predates the stand-ins: a supergroup's live messages are numbered after it (in a
supergroup every member, the bot included, sees one numbering), and Slack's `ts` of the
history are older than any message written since. Importing an export twice, or after live
sync, repeats envelope ids the chat product drops.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# When the history starts: a Monday morning before the sandbox ever ran.
START = datetime(2025, 10, 6, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Said:
    """One message of the history: `minutes` after START, by the user named by their index
    in the stand-in's users, answering (in a thread, or as a reply) the message at `reply_to`
    of the same channel; `joined` is the notice that the user joined the channel instead."""

    minutes: int
    user: int
    text: str = ""
    reply_to: int | None = None
    joined: bool = False


# Per channel (by its index in the stand-in's seeded channels), what was said.
HISTORY: tuple[tuple[Said, ...], ...] = (
    (
        Said(0, 0, "Morning all! Standup in 10 minutes, same room as last week."),
        Said(3, 1, "On my way. I'll bring the release notes draft."),
        Said(4, 0, "Thanks {1}, can you share the link here too?", reply_to=1),
        Said(6, 1, "Here: https://wiki.example.com/release-notes/2025-10", reply_to=1),
        Said(1440, 2, joined=True),
        Said(1442, 2, "Hi everyone, Carol here: I joined the platform team today."),
        Said(1445, 0, "Welcome aboard 🎉"),
    ),
    (
        Said(90, 1, "Lunch at the noodle place at 12:30?"),
        Said(92, 0, "Count me in."),
    ),
    (
        Said(240, 0, "Deploying widgets v2.3.0 to staging."),
        Said(275, 0, "Staging looks good: error rate flat, p95 latency 180 ms."),
        Said(280, 1, "Ship it to production after the 3pm freeze lifts.", reply_to=0),
    ),
)


def _ts(minutes: int, n: int) -> str:
    moment = START + timedelta(minutes=minutes)
    return f"{int(moment.timestamp())}.{n:06d}"


def _mentions(text: str, users: Sequence[Mapping[str, Any]], mention: str) -> str:
    """`{i}` in a text: the user at that index, as the provider writes a mention."""
    return text.format(*(mention.format(**user) for user in users)) if "{" in text else text


# -- Slack --------------------------------------------------------------------------------


def slack_export(
    team: str, channels: Sequence[Mapping[str, Any]], users: Sequence[Mapping[str, Any]]
) -> bytes:
    """The ZIP of a public channels export of `team`: `channels` (id, name), `users`
    (users.list's records, bots left out), in their seeded order."""
    people = [u for u in users if not u.get("is_bot")]
    members = [u["id"] for u in people]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        index = []
        for position, channel in enumerate(channels):
            index.append(
                {
                    "id": channel["id"],
                    "name": channel["name"],
                    "created": int(START.timestamp()) - 86400 * 90,
                    "creator": members[0],
                    "is_archived": False,
                    "is_general": channel["name"] == "general",
                    "members": members,
                    "topic": {"value": "", "creator": "", "last_set": 0},
                    "purpose": {"value": "", "creator": "", "last_set": 0},
                }
            )
            history = HISTORY[position] if position < len(HISTORY) else ()
            days: dict[str, list[dict[str, Any]]] = {}
            records = _slack_records(team, history, people, position)
            for said, record in zip(history, records, strict=True):
                day = (START + timedelta(minutes=said.minutes)).date().isoformat()
                days.setdefault(day, []).append(record)
            for day, day_records in days.items():
                archive.writestr(f"{channel['name']}/{day}.json", _pretty(day_records))
        archive.writestr("channels.json", _pretty(index))
        archive.writestr("users.json", _pretty(list(users)))
    return out.getvalue()


def _slack_records(
    team: str, history: tuple[Said, ...], people: Sequence[Mapping[str, Any]], channel: int
) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for n, said in enumerate(history):
        user = people[said.user]
        ts = _ts(said.minutes, channel * 1000 + n)
        if said.joined:
            records.append(
                {
                    "type": "message",
                    "subtype": "channel_join",
                    "ts": ts,
                    "user": user["id"],
                    "text": f"<@{user['id']}> has joined the channel",
                }
            )
            continue
        text = _mentions(said.text, people, "<@{id}>")
        client_msg_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{team}/{user['id']}/{ts}"))
        record: dict[str, Any] = {
            "type": "message",
            "text": text,
            "user": user["id"],
            "ts": ts,
            "client_msg_id": client_msg_id,
            "team": team,
            "user_team": team,
            "source_team": team,
            "user_profile": {
                "avatar_hash": "g" + user["id"].lower()[-6:],
                "image_72": user["profile"].get("image_72", ""),
                "first_name": user["real_name"].split()[0],
                "real_name": user["real_name"],
                "display_name": user["profile"].get("display_name", ""),
                "team": team,
                "name": user["name"],
                "is_restricted": False,
                "is_ultra_restricted": False,
            },
            "blocks": [
                {
                    "type": "rich_text",
                    "block_id": client_msg_id[-5:],
                    "elements": [
                        {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
                    ],
                }
            ],
        }
        if said.reply_to is not None:
            root = records[said.reply_to]
            record["thread_ts"] = root["ts"]
            record["parent_user_id"] = root["user"]
            root["thread_ts"] = root["ts"]
            root.setdefault("replies", []).append({"user": user["id"], "ts": ts})
            root["reply_count"] = len(root["replies"])
            root["reply_users"] = sorted({r["user"] for r in root["replies"]})
            root["reply_users_count"] = len(root["reply_users"])
            root["latest_reply"] = ts
        records.append(record)
    return records


def slack_file_name() -> str:
    """The name Slack gives the download: `<workspace> Slack export <from> - <to>.zip`."""
    minutes = [said.minutes for history in HISTORY for said in history]
    first, last = (START + timedelta(minutes=m) for m in (min(minutes), max(minutes)))
    return f"Acme Slack export {_day(first)} - {_day(last)}.zip"


def _day(moment: datetime) -> str:
    return f"{moment:%b} {moment.day} {moment.year}"


# -- Telegram -----------------------------------------------------------------------------


def telegram_export(
    chats: list[tuple[int, str]], users: list[tuple[int, str, str]]
) -> tuple[bytes, dict[int, int]]:
    """`result.json` of one member's (the first user's) account export holding the
    supergroups `chats` (Bot API id, title), and, per chat, the first message id left for
    what is said live."""
    people = [{"id": user_id, "name": f"{first} {last}"} for user_id, first, last in users]
    exported = []
    next_ids: dict[int, int] = {}
    for position, (chat_id, title) in enumerate(chats):
        history = HISTORY[position] if position < len(HISTORY) else ()
        # What users the stand-in does not have said is not in its chats; the rest is
        # numbered from 1, the replies by the numbers of what they answer.
        ids: dict[int, int] = {}
        messages: list[dict[str, Any]] = []
        for n, said in enumerate(history):
            if said.user < len(people):
                ids[n] = len(messages) + 1
                messages.append(_telegram_message(ids[n], said, people, ids))
        next_ids[chat_id] = len(messages) + 1
        exported.append(
            {
                "name": title,
                "type": "private_supergroup",
                "id": int(str(chat_id).removeprefix("-100")),
                "messages": messages,
            }
        )
    me = users[0]
    document = {
        "about": "Here is the data you requested. Remember: Telegram is ad free, it doesn't "
        "use your data for ad targeting and doesn't sell it to others. Telegram only keeps "
        "the information it needs to function as a secure and feature-rich cloud service.",
        "personal_information": {
            "user_id": me[0],
            "first_name": me[1],
            "last_name": me[2],
            "phone_number": "+44 0000 000000",
            "bio": "",
        },
        "chats": {"about": "This page lists all chats from this export.", "list": exported},
    }
    # tdesktop's layout: one space of indentation a level, non-ASCII as it is.
    return json.dumps(document, indent=1, ensure_ascii=False).encode(), next_ids


def _telegram_message(
    message_id: int, said: Said, people: list[dict[str, Any]], ids: Mapping[int, int]
) -> dict[str, Any]:
    moment = START + timedelta(minutes=said.minutes)
    person = people[said.user]
    head: dict[str, Any] = {
        "id": message_id,
        "type": "service" if said.joined else "message",
        "date": moment.strftime("%Y-%m-%dT%H:%M:%S"),
        "date_unixtime": str(int(moment.timestamp())),
    }
    if said.joined:
        return {
            **head,
            "actor": person["name"],
            "actor_id": f"user{person['id']}",
            "action": "join_group_by_link",
            "inviter": "Group",
            "text": "",
            "text_entities": [],
        }
    head |= {"from": person["name"], "from_id": f"user{person['id']}"}
    if said.reply_to is not None:
        head["reply_to_message_id"] = ids[said.reply_to]
    if "{" not in said.text:
        return {**head, "text": said.text, "text_entities": [{"type": "plain", "text": said.text}]}
    # A mention of a user without a username: a `mention_name` entity with their id.
    before, _, after = said.text.partition("{")
    index, _, rest = after.partition("}")
    named = people[int(index)]
    parts: list[Any] = [
        before,
        {"type": "mention_name", "text": named["name"].split()[0], "user_id": named["id"]},
        rest,
    ]
    entities = [p if isinstance(p, dict) else {"type": "plain", "text": p} for p in parts]
    return {**head, "text": parts, "text_entities": entities}


def _pretty(value: Any) -> bytes:
    # Slack's exports: four spaces of indentation, non-ASCII escaped.
    return json.dumps(value, indent=4).encode()
