"""API shapes of channel mappings (SPEC §4)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.kernel.http.patch import Patch
from shared.kernel.ids import PrintableId

Direction = Literal["both", "inbound", "outbound"]


class MappingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_channel_id: PrintableId
    channel_id: PrintableId
    direction: Direction = "both"
    enabled: bool = True


class MappingUpdate(Patch):
    direction: Direction | None = None
    enabled: bool | None = None


class MappingError(BaseModel):
    code: str
    message: str
    at: datetime


class MappingOut(BaseModel):
    id: str
    workspace_id: str
    integration_id: str
    provider: str
    external_channel_id: str
    external_channel_name: str | None = None
    channel_id: str
    direction: Direction
    enabled: bool
    # `error` while the last attempt to sync through the mapping failed for a reason that
    # retrying cannot change (the bot left the channel, the token was revoked); `ok` else.
    status: Literal["ok", "error"]
    last_error: MappingError | None = None
    error_count: int = 0
    last_synced_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
