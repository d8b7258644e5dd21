"""API shapes of notification subscriptions (SPEC §12)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.domain.templates import MAX_TEMPLATE_CHARS
from shared.kernel.http.patch import Patch
from shared.kernel.ids import PrintableId

Threads = Literal["item", "off"]
# An event name, glob, label, login or key; emptiness and spaces are the service's to
# refuse, naming the value.
Value = Annotated[str, StringConstraints(max_length=200)]


class LabelFilter(BaseModel):
    """Pull requests and issues with any of `any`, all of `all`, none of `none`
    (names compared without regard to case, as GitHub does)."""

    model_config = ConfigDict(extra="forbid")

    any: list[Value] | None = Field(None, max_length=100)
    all: list[Value] | None = Field(None, max_length=100)
    none: list[Value] | None = Field(None, max_length=100)


class AuthorFilter(BaseModel):
    """`exclude`: logins or globs (`dependabot*`) left out; `bots: false` leaves out every
    bot (GitHub `sender.type == "Bot"` or a `[bot]` login, Jira app accounts)."""

    model_config = ConfigDict(extra="forbid")

    exclude: list[Value] | None = Field(None, max_length=100)
    bots: bool = True


class SubscriptionFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[Value] | None = Field(None, max_length=200)
    exclude_events: list[Value] | None = Field(None, max_length=200)
    repositories: list[Value] | None = Field(None, max_length=500)
    projects: list[Value] | None = Field(None, max_length=200)
    branches: list[Value] | None = Field(None, max_length=100)
    labels: LabelFilter | None = None
    authors: AuthorFilter | None = None
    drafts: bool | None = None
    # JavaScript `function handler(event)` rendering the subscription's notifications
    # (SPEC §16, docs/notifications.md#templates); checked at save.
    template: str | None = Field(None, max_length=MAX_TEMPLATE_CHARS)


class SubscriptionCreate(SubscriptionFields):
    channel_id: PrintableId
    threads: Threads = "item"
    enabled: bool = True


class SubscriptionUpdate(Patch, SubscriptionFields):
    """The filters as on creation (`null` clears those in `clearable`), and the rest."""

    clearable: ClassVar[frozenset[str]] = frozenset(
        {"events", "exclude_events", "repositories", "projects", "branches", "labels", "authors"}
    ) | {"template"}

    channel_id: str | None = Field(None, min_length=1, max_length=200, pattern=r"^[^\s]+$")
    threads: Threads | None = None
    enabled: bool | None = None


class SubscriptionError(BaseModel):
    code: str
    message: str
    # Where in the template, for a template's error.
    line: int | None = None
    column: int | None = None
    at: datetime


class SubscriptionOut(BaseModel):
    id: str
    workspace_id: str
    integration_id: str
    provider: str
    channel_id: str
    # None: the provider's default events (docs/notifications.md).
    events: list[Value] | None = None
    exclude_events: list[Value] | None = None
    repositories: list[Value] | None = None
    projects: list[Value] | None = None
    branches: list[Value] | None = None
    labels: LabelFilter | None = None
    authors: AuthorFilter | None = None
    drafts: bool = False
    threads: Threads = "item"
    enabled: bool = True
    template: str | None = None
    notified_count: int = 0
    filtered_count: int = 0
    last_notified_at: datetime | None = None
    last_error: SubscriptionError | None = None
    created_at: datetime
    updated_at: datetime


class NotificationEvent(BaseModel):
    name: str
    # Its kind: the name before the dot (`pull_request`), or the whole name (`push`).
    group: str
    # Whether a subscription without `events` notifies it (docs/notifications.md).
    default: bool


class NotificationEvents(BaseModel):
    provider: str
    # Every event the provider renders specifically, by name.
    events: list[NotificationEvent]
    # The event kinds rendered only generically: any action of each (`star`, `star.*`);
    # `*` where any event the provider sends can be named (a provider rendered generically).
    generic: list[str]
    # The filters its subscriptions take (the others are refused).
    filters: list[str]
