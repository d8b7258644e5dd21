"""API shapes of the OAuth connect flow."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from shared.kernel.ids import PrintableId

OAuthProviderName = Literal["slack", "discord", "github", "jira", "google"]
Scope = Annotated[str, Field(pattern=r"^[^\s,]+$", max_length=200)]


class ConnectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: OAuthProviderName
    workspace_id: PrintableId
    scopes: list[Scope] | None = Field(
        None, min_length=1, max_length=100, description="default: the provider's (README)"
    )
    return_to: AnyHttpUrl | None = Field(
        None, description="where the callback sends the browser (else it answers JSON)"
    )
    integration_id: str | None = Field(
        None, max_length=200, description="attach the tokens to this existing integration"
    )
    name: str | None = Field(None, max_length=200)


class ConnectStarted(BaseModel):
    authorization_url: str
    state: str
    redirect_uri: str
    expires_at: datetime


class Connected(BaseModel):
    integration_id: str
    provider: str
    workspace_id: str
    status: str
    account: dict[str, Any] | None


class Linked(BaseModel):
    """A chat user's account link the callback made (its token is never shown)."""

    account_link_id: str
    provider: str
    workspace_id: str
    chat_user_id: str
    # The chat user as the chat named them when their ticket was issued, if it did.
    chat_user_name: str | None = None
    provider_user: str
    name: str | None
