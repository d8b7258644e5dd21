"""API shapes of transformations (SPEC §17): an endpoint's `transformation` and the test."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# As long as a template may be (shared.domain.templates).
MAX_CODE_CHARS = 20_000
Method = Literal["POST", "PUT", "PATCH"]
CODE_DESCRIPTION = (
    "JavaScript defining `function handler(webhook)`, called before each attempt with "
    "`{event_type, payload, url, method, headers}` and returning it changed, or "
    "`{cancel: true}`; checked (compiled) when saved"
)


class Transformation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=MAX_CODE_CHARS, description=CODE_DESCRIPTION)
    enabled: bool = True


class TransformationTest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=MAX_CODE_CHARS, description=CODE_DESCRIPTION)
    payload: Any = Field(description="the webhook's body as hookhub would send it")
    event_type: str = Field("webhook.test", min_length=1, max_length=200)


class Webhook(BaseModel):
    """A webhook as a transformation left it (what would be signed and sent)."""

    payload: Any
    url: str
    method: Method
    headers: dict[str, str]


class TransformationTestOut(BaseModel):
    cancel: bool = Field(description="true: the delivery would end `cancelled`, unsent")
    webhook: Webhook | None = Field(description="what would be sent; null when cancelled")
