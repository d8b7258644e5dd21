"""API shapes of integrations. Settings go in, never come out: only their names do."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from shared.domain.integrations.model import Status
from shared.kernel.http.patch import Patch
from shared.kernel.ids import PrintableId
from shared.providers.catalog import CATALOG, catalog_entry


def _known(provider: str) -> str:
    # NotFound, not a ValueError: pydantic lets it through, so a misspelt provider is the
    # 404 `unknown_provider` the rest of the API answers (a 422 `invalid` said "schema").
    catalog_entry(provider)
    return provider


# A provider of the catalog (GET /api/provider-catalog), by its name.
ProviderName = Annotated[
    str, AfterValidator(_known), Field(json_schema_extra={"enum": list(CATALOG)})
]

# One webhook per 100 s at the slowest: below that the Retry-After of a refused webhook is
# no number at all (5e-324 made it infinite).
MIN_RATE = 0.01
RATE_DESCRIPTION = (
    "webhooks per second accepted for this integration (0.01-100000); null: the default"
)


class IntegrationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: ProviderName
    workspace_id: PrintableId
    name: str | None = Field(None, max_length=200)
    settings: dict[str, Any] = Field(default_factory=dict)
    # The integration that serves `POST /api/webhooks/{provider}` (the app-level URL) for
    # this workspace; setting it clears the flag on the workspace's other ones.
    is_default: bool = False
    enabled: bool = True
    rate_limit_per_second: float | None = Field(
        None, ge=MIN_RATE, le=100_000, description=RATE_DESCRIPTION
    )


class IntegrationUpdate(Patch):
    clearable = frozenset({"rate_limit_per_second"})

    name: str | None = Field(None, min_length=1, max_length=200)
    settings: dict[str, Any] | None = None
    is_default: bool | None = None
    enabled: bool | None = None
    rate_limit_per_second: float | None = Field(
        None, ge=MIN_RATE, le=100_000, description=RATE_DESCRIPTION
    )


class Account(BaseModel):
    """The provider account; OAuth providers add what identifies it further (`url`, Slack
    `bot_user_id`, and for a Slack `bot_token` also `bot_id` and `app_id`, Jira `cloud_id`
    and `sites`, GitHub `github_id`, Discord `user_id`)."""

    model_config = ConfigDict(extra="allow")

    id: str
    name: str | None = None


class OAuthConnection(BaseModel):
    """The OAuth side of an integration; the tokens themselves are never shown."""

    tokens_configured: list[str] = Field(description="names of the tokens held (sealed)")
    token_type: str | None = None
    scopes: list[str] = Field(default_factory=list)
    expires_at: datetime | None = None
    refreshed_at: datetime | None = None
    refresh_failures: int = 0
    last_refresh_error: str | None = None


class WebhookRefusal(BaseModel):
    """The last webhook the gateway refused for this integration (counted in `error_count`)."""

    code: str = Field(description="`invalid_signature` (401) or `malformed_webhook` (400)")
    message: str = Field(description="why, as the provider was answered")
    at: datetime
    delivery_id: str | None = Field(
        None,
        description="the provider's delivery id, from its header (GitHub X-GitHub-Delivery, "
        "Jira X-Atlassian-Webhook-Identifier); null for the others, whose id is in the body",
    )


class IntegrationOut(BaseModel):
    id: str
    workspace_id: str
    provider: ProviderName
    name: str
    status: Status
    enabled: bool
    is_default: bool
    settings_configured: list[str] = Field(description="names of the write-only settings set")
    config: dict[str, str] = Field(
        default_factory=dict,
        description="the settings that are not secret (a generic source's header, algorithm)",
    )
    account: Account | None
    oauth: OAuthConnection | None = Field(None, description="present once connected by OAuth")
    webhook_url: str | None
    rate_limit_per_second: float | None
    last_event_at: datetime | None
    event_count: int
    error_count: int
    last_error: str | None
    last_webhook_error: WebhookRefusal | None = None
    pending_verification_token: str | None = Field(
        None,
        description="Notion: the verification_token its first POST handed over, to paste "
        "into Notion's Verify form; shown by GET /api/integrations/{id} only until the "
        "first verified event (null afterwards, and in lists)",
    )
    created_at: datetime
    updated_at: datetime


class IntegrationStatus(BaseModel):
    id: str
    provider: ProviderName
    status: Status
    enabled: bool
    last_event_at: datetime | None
    event_count: int
    error_count: int
    last_error: str | None
    last_webhook_error: WebhookRefusal | None = None
    token_expires_at: datetime | None = None
    last_refresh_error: str | None = None


Revocation = Literal["revoked", "pending", "not_offered", "nothing_to_revoke"]


class Disconnected(IntegrationOut):
    revocation: Revocation = Field(
        description="`pending`: the provider could not be reached; hookhub keeps retrying"
    )
