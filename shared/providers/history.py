"""What an import source yields (SPEC §9), whatever it reads: Slack's or Discord's API pages,
or a Slack export's day files.

A source reads one conversation at a time, in order, and yields `HistoryRecord`s. Each
record carries its `checkpoint`: what the source needs to go on right after it, which the
importer stores as it publishes and hands back (`after=`) when a job resumes. A record that
cannot be read is yielded too, `quarantined`, so the import goes on and the report says what
was left out and where.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.providers.chat import MessageChange

__all__ = ["Conversation", "HistoryRecord", "Quarantined"]


@dataclass(frozen=True)
class Quarantined:
    """A record left out: where it was (`file`: an export member or an API method; `position`:
    its index in that file or page) and why."""

    file: str
    position: int | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "position": self.position, "reason": self.reason}


@dataclass(frozen=True)
class Conversation:
    """A channel (or private group, DM, group DM) a source can read."""

    id: str
    name: str
    kind: str = "channel"  # channel | group | dm | mpim | thread
    members: tuple[str, ...] = ()
    # Other ids the file writes for it (a Telegram chat's bare `"id"`, where `id` is the
    # Bot API's `-100…` form): `channel_map` finds it by these too.
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class HistoryRecord:
    """One message of a conversation's history (`change`, a `created` change; `ignored` set
    when the policy skips it, `subtype` naming it), or one that could not be read
    (`quarantined`). `done` is the share of the conversation read so far (0 to 1, for the
    job's percent), `reactions` how many reactions the message had (the envelope has no
    place for them: they are counted in the report). `page_start`: the first record of an
    API page or an export's day file (the importer counts pages fetched by it)."""

    checkpoint: dict[str, Any]
    change: MessageChange | None = None
    quarantined: Quarantined | None = None
    done: float = 0.0
    reactions: int = 0
    page_start: bool = False
