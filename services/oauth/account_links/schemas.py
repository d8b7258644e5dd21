"""API shapes of account links. A link's sealed token (an `oauth` link's) never comes out."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from services.oauth.audit.endpoints import Actor
from shared.domain.account_links import MAPPING_PROVIDERS, OAUTH_LINK_PROVIDERS
from shared.kernel.ids import REFUSED_CATEGORIES, PrintableId, describe_character
from shared.kernel.text import printable
from shared.providers.acting import LinkKind
from shared.providers.catalog import CATALOG

# An email's longest (RFC 5321's path, less its brackets): PagerDuty's `From`.
MAX_PROVIDER_USER = 254
# What a provider user may not hold: what an id may not (shared.kernel.ids), but the
# space, which a name between words may (Opsgenie's `user`, a silence's `createdBy`).
_REFUSED = REFUSED_CATEGORIES - {"Zs"}


def acts_by_mapping(provider: str) -> str:
    if provider in MAPPING_PROVIDERS:
        return provider
    if provider in OAUTH_LINK_PROVIDERS:
        raise ValueError(
            f"{provider} has no actions by mapping: its users link their own account with "
            f"POST /api/account-links/{provider}/connect (those by mapping: "
            f"{', '.join(MAPPING_PROVIDERS)})"
        )
    if provider in CATALOG:
        raise ValueError(
            f"{provider} has no actions by mapping (those providers: "
            f"{', '.join(MAPPING_PROVIDERS)})"
        )
    raise ValueError(
        f"no provider {provider[:100]!r} acts by mapping: {', '.join(MAPPING_PROVIDERS)}"
    )


def acts_by_consent(provider: str) -> str:
    if provider in OAUTH_LINK_PROVIDERS:
        return provider
    raise ValueError(
        f"{provider[:100]} users are not linked by their own consent (those providers: "
        f"{', '.join(OAUTH_LINK_PROVIDERS)}; the others by PUT /api/account-links/"
        "{provider}/{chat_user_id})"
    )


def linkable(provider: str) -> str:
    if provider in OAUTH_LINK_PROVIDERS:
        return provider
    return acts_by_mapping(provider)


def _provider_user(value: str) -> str:
    if value != value.strip():
        raise ValueError("starts or ends with whitespace")
    for position, char in enumerate(value):
        if unicodedata.category(char) in _REFUSED:
            raise ValueError(
                f"holds {describe_character(char)} at position {position}: a provider user "
                "holds no control, format (bidi, zero-width) or line-separator characters"
            )
    return value


ProviderUser = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_PROVIDER_USER,
        description="who the chat user is at the provider: PagerDuty's `From` email, "
        "Opsgenie's user, Sentry's user, a silence's `createdBy` (Alertmanager, Grafana)",
    ),
    AfterValidator(_provider_user),
]


class AccountLinkPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider_user: ProviderUser
    name: str | None = Field(
        None, min_length=1, max_length=200, description="the person's name, for people"
    )

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        return printable(value) if value is not None else None


class AccountLinkConnect(BaseModel):
    """Who is to consent: the chat user the link is for."""

    model_config = ConfigDict(extra="forbid")

    chat_user_id: PrintableId = Field(description="the chat product's id of the user")
    return_to: AnyHttpUrl | None = Field(
        None, description="where the callback sends the browser (else it answers JSON)"
    )


class AccountLinkOut(BaseModel):
    """A chat user's link to a provider account: never a token."""

    id: str
    workspace_id: str
    provider: str
    chat_user_id: str
    kind: LinkKind = Field(
        description="`mapping`: a provider user the workspace names, acted for with the "
        "integration's token; `oauth`: the user's own consent and token"
    )
    provider_user: str
    name: str | None
    external_id: str | None = Field(description="the provider's id of the account, if known")
    created_at: datetime
    updated_at: datetime
    created_by: Actor
    status: Literal["connected", "error"] = Field(
        description="`error`: the provider refused an `oauth` link's token even after a "
        "refresh (revoked, or the user lost access); the user's next click asks them to "
        "link again. A `mapping` is always `connected`"
    )
    last_error: str | None = Field(description="why the link is in `error`, as the provider said")
