"""API shapes of the event type catalog (SPEC §17): a type's JSON Schema and examples."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.kernel.envelopes import EVENT_TYPE_PATTERN
from shared.kernel.http.patch import Patch
from shared.kernel.ids import PrintableId

MAX_EXAMPLES = 20
SCHEMA_DESCRIPTION = (
    "A JSON Schema 2020-12 of the event's `data` (what a subscriber receives as `data`). "
    "References must stay inside the schema (`#/$defs/…`): hookhub fetches nothing."
)
ENFORCE_DESCRIPTION = (
    "Refuse events of this type whose `data` fails the schema: 422 at POST /api/events, "
    "dead-lettered from hookhub.chat.events. False: the schema documents only."
)
WORKSPACE_DESCRIPTION = (
    "The workspace whose own type this is; absent or null: a global type (admin token "
    "only). A workspace's own type shadows a global one of the same name, for it alone."
)


class EventTypeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(pattern=EVENT_TYPE_PATTERN, max_length=200)
    workspace_id: PrintableId | None = Field(None, description=WORKSPACE_DESCRIPTION)
    description: str = Field("", max_length=2000)
    json_schema: dict[str, Any] = Field(
        default_factory=dict, alias="schema", description=SCHEMA_DESCRIPTION
    )
    examples: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=MAX_EXAMPLES,
        description="examples of `data`, each valid against the schema",
    )
    deprecated: bool = False
    enforce: bool = Field(False, description=ENFORCE_DESCRIPTION)


class EventTypeUpdate(Patch):
    model_config = ConfigDict(populate_by_name=True)

    description: str | None = Field(None, max_length=2000)
    json_schema: dict[str, Any] | None = Field(None, alias="schema", description=SCHEMA_DESCRIPTION)
    examples: list[dict[str, Any]] | None = Field(None, max_length=MAX_EXAMPLES)
    deprecated: bool | None = None
    enforce: bool | None = Field(None, description=ENFORCE_DESCRIPTION)


class EventTypeOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    name: str
    workspace_id: str | None = Field(description="null: a global type")
    description: str
    json_schema: dict[str, Any] = Field(alias="schema")
    examples: list[dict[str, Any]]
    deprecated: bool
    enforce: bool
    created_at: datetime
    updated_at: datetime
