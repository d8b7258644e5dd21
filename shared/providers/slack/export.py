"""A Slack export ZIP as an import source: checked whole before any job runs, then read one
conversation at a time and one day file at a time (SPEC §9).

What an export holds (Slack's "How to read Slack data exports"): `channels.json` (public
channels), `groups.json` (private channels), `dms.json` and `mpims.json` (direct and group
messages) when the export covers them, `users.json` (`org_users.json` on Enterprise Grid),
and one folder per conversation with one JSON array per day, `YYYY-MM-DD.json`. Channel,
private channel and group DM folders are named by the conversation's name, DM folders by its
id; some tools name every folder by id, so the id is the fallback.

What is refused at `open` (`ExportRefused`, before any record is read): a file that is not a
ZIP, one without `channels.json`, an index file that is not a JSON array of objects, member
names that could escape a folder or hide (absolute, `..`, backslashes, drive letters, NUL and
other control characters, over-long), too many members, and zip bombs (the sum of the
declared sizes over a limit, or a member whose compression ratio is over a limit). What is
quarantined while reading (the rest is read): a record that is not an object or has no valid
`ts`, a day file that is not a JSON array, is over the day-file limit or cannot be read (bad
CRC, encryption, an unsupported compression method).
"""

from __future__ import annotations

import json
import re
from array import array
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from shared.kernel.zipdir import ZipDirectory
from shared.providers.chat import Author
from shared.providers.exports import (
    UNREADABLE,
    ExportFile,
    ExportLimits,
    ExportRefused,
    checked_members,
    json_type,
    open_archive,
    short,
)
from shared.providers.history import Conversation, HistoryRecord, Quarantined
from shared.providers.slack.messages import author_of, change_of, reactions_of

__all__ = ["ExportLimits", "ExportRefused", "SlackExport"]

# Index files, in the order their conversations are listed, with the kind each one lists.
INDEX_FILES = (
    ("channels.json", "channel"),
    ("groups.json", "group"),
    ("dms.json", "dm"),
    ("mpims.json", "mpim"),
)
USER_FILES = ("users.json", "org_users.json")
DAY_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}\.json$")
TS = re.compile(r"^\d{1,12}(\.\d{1,9})?$")


class SlackExport(ExportFile):
    """An opened, checked export (an `ExportReader`). Use `SlackExport.open(path)`, as a
    context manager. Its `account` is the Slack team the export's users and channels name
    (None when none does)."""

    provider = "slack"

    def __init__(
        self,
        archive: ZipDirectory,
        limits: ExportLimits,
        conversations: list[Conversation],
        users: dict[str, Author],
        team_id: str | None,
        days: dict[str, array[int]],
    ) -> None:
        self._archive = archive
        self.limits = limits
        self.conversations = conversations
        self._users = users
        self.account: str | None = team_id
        # Per conversation, its day files' member numbers in date order: 4 bytes a day file.
        self._days = days

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, limits: ExportLimits | None = None) -> SlackExport:
        """Check the export from its central directory and its index files, and keep it open
        for reading. Raises `ExportRefused` saying what is wrong."""
        limits = limits or ExportLimits()
        archive = open_archive(path, limits)
        try:
            return cls._checked(archive, limits)
        except BaseException:
            archive.close()
            raise

    @classmethod
    def _checked(cls, archive: ZipDirectory, limits: ExportLimits) -> SlackExport:
        root, folders = _members(archive, limits)
        indexes = {
            file: _index(archive, root + file, limits)
            for file, _ in INDEX_FILES + tuple((file, "") for file in USER_FILES)
        }
        conversations = _conversations(indexes)
        users: dict[str, Author] = {}
        teams: Counter[str] = Counter()
        for file in USER_FILES:
            for user in indexes[file] or []:
                user_id = _str(user.get("id"))
                if user_id is None:
                    continue
                users.setdefault(user_id, author_of(user, user_id))
                team = _str(user.get("team_id"))
                if team:
                    teams[team] += 1
        days: dict[str, array[int]] = {}
        for conversation in conversations:
            wanted = (
                (conversation.id, conversation.name)
                if conversation.kind == "dm"
                else (conversation.name, conversation.id)
            )
            found = next((folders[folder] for folder in wanted if folder in folders), array("I"))
            days[conversation.id] = array("I", sorted(found, key=archive.name))
        export = cls(archive, limits, conversations, users, None, days)
        export.account = (
            teams.most_common(1)[0][0] if teams else _channel_team(indexes) or export._peek_team()
        )
        return export

    @property
    def team_id(self) -> str | None:
        """The export's Slack team: its `account`."""
        return self.account

    # -- reading -------------------------------------------------------------------------------

    def users(self) -> dict[str, Author]:
        """The export's people (`users.json`, and `org_users.json` on Enterprise Grid) by id."""
        return dict(self._users)

    def size(self, conversation: Conversation) -> int:
        """Uncompressed bytes of the conversation's day files (what `done` is a share of)."""
        return sum(map(self._archive.file_size, self._days.get(conversation.id, ())))

    def day_files(self, conversation: Conversation) -> list[str]:
        """The member names of the conversation's day files, in date order."""
        return [self._archive.name(day) for day in self._days.get(conversation.id, ())]

    def records(
        self, conversation: Conversation, after: Mapping[str, Any] | None = None
    ) -> Iterator[HistoryRecord]:
        """The conversation's messages, day file by day file in date order, each in its
        file's order, one day file in memory at a time; the first record read from a day
        file has `page_start`. Each record's checkpoint is
        `{"file": member, "index": i}` (`"index": None` after a day file quarantined whole);
        `after=` one of them goes on right after it."""
        days = self._days.get(conversation.id, array("I"))
        total = self.size(conversation) or 1
        after_file, after_index = _resume_point(after)
        if after_file is not None and after_file not in self.day_files(conversation):
            raise ValueError(f"{after_file!r} is not a day file of {conversation.id}")
        before = 0
        for day in days:
            name = self._archive.name(day)
            size = self._archive.file_size(day)
            start = 0
            if after_file is not None:
                if name < after_file or (name == after_file and after_index is None):
                    before += size
                    continue
                if name == after_file:
                    start = after_index + 1 if after_index is not None else 0
            records, problem = self._read_day(day)
            if problem is not None:
                before += size
                yield HistoryRecord(
                    checkpoint={"file": name, "index": None},
                    quarantined=Quarantined(name, None, problem),
                    done=min(1.0, before / total),
                    page_start=True,
                )
                continue
            count = len(records)
            for index in range(start, count):
                record = records[index]
                records[index] = None  # what has been yielded is not kept while the file is read
                done = min(1.0, (before + size * (index + 1) / count) / total)
                found = _record(conversation.id, name, index, record, done)
                yield replace(found, page_start=True) if index == start else found
            before += size

    def _read_day(self, day: int) -> tuple[list[Any], str | None]:
        limit = self.limits.max_day_file_bytes
        size = self._archive.file_size(day)
        if size > limit:
            return [], f"the day file is {size} bytes, over the limit of {limit}"
        try:
            data = self._archive.read(day)
        except UNREADABLE as exc:
            return [], f"the day file cannot be read: {exc}"
        try:
            records = orjson.loads(data)
        except orjson.JSONDecodeError:
            # orjson refuses a little that Python's parser takes (NaN, lone surrogates):
            # the standard parser decides, and words the error.
            try:
                records = json.loads(data)
            except (ValueError, RecursionError) as exc:
                return [], f"the day file is not JSON: {short(exc)}"
        if not isinstance(records, list):
            return [], f"the day file is not a JSON array but {json_type(records)}"
        return records, None

    def _peek_team(self) -> str | None:
        """The `team` of the first message that names one, in the first day file read."""
        for conversation in self.conversations:
            for day in self._days.get(conversation.id, array("I"))[:1]:
                records, problem = self._read_day(day)
                for record in records if problem is None else []:
                    if isinstance(record, Mapping) and _str(record.get("team")):
                        return _str(record.get("team"))
        return None

    # -- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        self._archive.close()


# -- one record ----------------------------------------------------------------------------------


def _record(channel: str, file: str, index: int, record: Any, done: float) -> HistoryRecord:
    checkpoint = {"file": file, "index": index}

    def quarantined(reason: str) -> HistoryRecord:
        return HistoryRecord(checkpoint, quarantined=Quarantined(file, index, reason), done=done)

    if not isinstance(record, Mapping):
        return quarantined(f"the record is not a JSON object but {json_type(record)}")
    ts = record.get("ts")
    if not isinstance(ts, str) or not TS.match(ts):
        return quarantined("the record has no valid ts")
    change = change_of(channel, record)
    if change is None:
        return quarantined("the record is not a message")
    return HistoryRecord(checkpoint, change=change, done=done, reactions=reactions_of(record))


def _resume_point(after: Mapping[str, Any] | None) -> tuple[str | None, int | None]:
    if not after:
        return None, None
    file = after.get("file")
    index = after.get("index")
    if not isinstance(file, str):
        raise ValueError(f"not a checkpoint of a Slack export: {dict(after)!r}")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool)):
        raise ValueError(f"not a checkpoint of a Slack export: {dict(after)!r}")
    return file, index


# -- the archive's directory ---------------------------------------------------------------------


def _members(archive: ZipDirectory, limits: ExportLimits) -> tuple[str, dict[str, array[int]]]:
    """Every member checked (its name, the sizes), in one pass over the directory, and where
    the index files are (the root) with the day files (`<folder>/YYYY-MM-DD.json`) by folder,
    as member numbers; other members are not read."""
    root = _root(archive)
    folders: dict[str, array[int]] = {}
    one_top = True
    for member, name in checked_members(archive, limits):
        if root is None:
            continue
        if not name.startswith(root):
            one_top = one_top and name == root[:-1]
            continue
        folder, _, day = name[len(root) :].partition("/")
        if folder and DAY_FILE.match(day):
            found = folders.get(folder)
            if found is None:
                folders[folder] = found = array("I")
            found.append(member)
    if root is None or not one_top:
        raise ExportRefused(
            "no_channels_json", "the ZIP has no channels.json: it is not a Slack export"
        )
    return root, folders


def _root(archive: ZipDirectory) -> str | None:
    """Where the index files are: the top, or the one folder everything sits in (an export
    unpacked and zipped again; `_members` sees that everything does)."""
    if archive.find("channels.json") is not None:
        return ""
    top = archive.name(0).split("/", 1)[0] if len(archive) else ""
    return f"{top}/" if archive.find(f"{top}/channels.json") is not None else None


# -- the index files -----------------------------------------------------------------------------


def _index(
    archive: ZipDirectory, name: str, limits: ExportLimits
) -> list[Mapping[str, Any]] | None:
    """An index file read whole: a JSON array of objects, or None when it is not there."""
    member = archive.find(name)
    if member is None:
        return None

    def refuse(why: str) -> ExportRefused:
        return ExportRefused("malformed_index", f"{name} {why}")

    size = archive.file_size(member)
    if size > limits.max_index_bytes:
        raise refuse(f"is {size} bytes, over the limit of {limits.max_index_bytes}")
    try:
        found = json.loads(archive.read(member))
    except RecursionError as exc:
        raise refuse("is nested too deep") from exc
    except (*UNREADABLE, ValueError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise refuse(f"cannot be read: {short(exc)}") from exc
    if not isinstance(found, list):
        raise refuse(f"is not a JSON array but {json_type(found)}")
    for position, item in enumerate(found):
        if not isinstance(item, dict):
            raise refuse(f"item {position} is not a JSON object but {json_type(item)}")
    return found


def _conversations(indexes: Mapping[str, list[Mapping[str, Any]] | None]) -> list[Conversation]:
    conversations: list[Conversation] = []
    seen: set[str] = set()
    for file, kind in INDEX_FILES:
        for position, item in enumerate(indexes[file] or []):
            conversation_id = _str(item.get("id"))
            if conversation_id is None:
                raise ExportRefused(
                    "malformed_index", f"{file} item {position} has no conversation id"
                )
            if conversation_id in seen:
                continue
            seen.add(conversation_id)
            members = item.get("members")
            conversations.append(
                Conversation(
                    id=conversation_id,
                    name=_str(item.get("name")) or conversation_id,
                    kind=kind,
                    members=tuple(member for member in members or () if isinstance(member, str))
                    if isinstance(members, list)
                    else (),
                )
            )
    return conversations


def _channel_team(indexes: Mapping[str, list[Mapping[str, Any]] | None]) -> str | None:
    for file, _ in INDEX_FILES:
        for item in indexes[file] or []:
            team = _str(item.get("context_team_id"))
            shared = item.get("shared_team_ids")
            if team is None and isinstance(shared, list) and shared:
                team = _str(shared[0])
            if team:
                return team
    return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
