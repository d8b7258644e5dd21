"""API shapes of import jobs (SPEC §4, §9)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.kernel.ids import PrintableId
from shared.kernel.mongo import Document

ExternalId = PrintableId
ChannelMap = dict[
    Annotated[str, StringConstraints(min_length=1, max_length=200)],
    PrintableId,
]
Status = Literal["queued", "running", "completed", "failed", "cancelled"]


class ApiImportCreate(BaseModel):
    """`POST /api/integrations/{id}/import`."""

    model_config = ConfigDict(extra="forbid")

    channel_ids: list[ExternalId] = Field(default_factory=list, max_length=1000)
    guild_ids: list[ExternalId] = Field(default_factory=list, max_length=100)
    # ISO dates (the whole day) or date-times; absent: from the beginning, until now.
    start_date: date | datetime | None = None
    end_date: date | datetime | None = None
    channel_map: ChannelMap = Field(default_factory=dict, max_length=10_000)
    dry_run: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> ApiImportCreate:
        if self.start_date and self.end_date and _day(self.start_date) > _day(self.end_date):
            raise ValueError("start_date is after end_date")
        return self

    def params(self) -> dict[str, Any]:
        return {
            "channel_ids": self.channel_ids,
            "guild_ids": self.guild_ids,
            "start_date": self.start_date.isoformat() if self.start_date else None,
            "end_date": self.end_date.isoformat() if self.end_date else None,
            "channel_map": self.channel_map,
            "dry_run": self.dry_run,
        }


def _day(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


class Progress(BaseModel):
    channels_total: int = 0
    channels_done: int = 0
    messages_imported: int = 0
    messages_skipped: int = 0
    messages_quarantined: int = 0
    errors: int = 0
    percent: float = 0.0
    # From the pace so far (None until there is one); an API import also says what the
    # provider's tier alone makes it take (`expected_seconds` in `report`).
    eta_seconds: float | None = None


class Quarantined(BaseModel):
    external_channel_id: str | None = None
    file: str
    position: int | None = None
    reason: str


class ChannelReport(BaseModel):
    external_channel_id: str
    name: str
    channel_id: str
    # What chose `channel_id`: `channel_map:<the key that matched>` (the provider's id, the
    # id as the export writes it, the name or `#name`) or `mapping` (the integration's).
    matched: str | None = None
    imported: int = 0
    skipped: int = 0
    quarantined: int = 0


class SkippedChannel(BaseModel):
    external_channel_id: str
    name: str
    reason: str


class Report(BaseModel):
    # Imported messages by subtype ("message" for a plain one), and skipped ones as
    # "skipped:<subtype>" (joins, topic changes, tombstones, ...) or
    # "skipped:posted_by_hookhub" (a copy hookhub posted there: its original is in the chat).
    by_subtype: dict[str, int] = Field(default_factory=dict)
    channels: list[ChannelReport] = Field(default_factory=list)
    skipped_channels: list[SkippedChannel] = Field(default_factory=list)
    # Files of an export left out whole (a DiscordChatExporter ZIP's `.json` member that is
    # not a channel's export): the first 100 (file, reason), and how many in all.
    skipped_files: list[Quarantined] = Field(default_factory=list)
    skipped_files_total: int = 0
    # Channels that could not be read (the bot is not in them, they are gone).
    failed_channels: list[SkippedChannel] = Field(default_factory=list)
    # The first 100 records left out (file, position, reason); all are counted.
    quarantined: list[Quarantined] = Field(default_factory=list)
    quarantined_total: int = 0
    # The envelope has no place for reactions: how many the imported messages had.
    reactions: int = 0
    # API imports: how fast the provider lets the job read (Slack: the app's tier,
    # `seconds_per_request`, and what a channel of 10,000 messages takes at that pace).
    pace: dict[str, Any] | None = None


class Upload(BaseModel):
    filename: str | None = None
    size: int
    # What the file is (POST /api/imports' `source`).
    source: str = "slack_export"
    # The provider account in the envelope ids (shared.domain.message_map.inbound_message_id):
    # the integration's, as live sync has it; without one, the export's team or guild, or
    # `export` (a Telegram export without a bot, a Slack export naming no team).
    account: str | None = None
    team_id: str | None = None  # a Slack export's team
    guild_id: str | None = None  # a DiscordChatExporter export's server
    conversations: int = 0
    # When the file was removed (HOOKHUB_IMPORT_UPLOAD_RETENTION after a failed or
    # cancelled job ended): the job can no longer be resumed.
    removed_at: datetime | None = None


class ImportJobOut(BaseModel):
    id: str
    workspace_id: str
    integration_id: str | None = None
    provider: str
    source: Literal["api", "export"]
    status: Status
    dry_run: bool = False
    params: dict[str, Any] = Field(default_factory=dict)
    upload: Upload | None = None
    progress: Progress
    report: Report | None = None
    error: str | None = None
    cancel_requested: bool = False
    attempts: int = 0
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


def out(doc: Document) -> ImportJobOut:
    params = dict(doc.get("params") or {})
    upload = doc.get("upload")
    return ImportJobOut.model_validate(
        {
            **doc,
            "id": doc["_id"],
            "dry_run": bool(params.get("dry_run")),
            "params": params,
            "upload": {k: v for k, v in upload.items() if k != "file_id"} if upload else None,
        }
    )
