"""HTTP route of `/api/templates/test` (SPEC §16)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from services.sync.templates.schemas import TemplatePreview, TemplateTest, TemplateTestOut
from shared.domain import tenancy
from shared.domain.templates import TemplateFailure, Templates, event_of
from shared.kernel.errors import Invalid
from shared.kernel.http.app import from_state
from shared.kernel.http.auth import Authenticated
from shared.kernel.http.errors import MANAGEMENT_ERRORS
from shared.providers.templated import card_of, text_of

router = APIRouter(
    prefix="/api/templates",
    tags=["templates"],
    dependencies=[Authenticated],
    responses=MANAGEMENT_ERRORS,
)

TemplatesDep = Annotated[Templates, Depends(from_state("templates", Templates))]


@router.post("/test", response_model=TemplateTestOut)
async def test_template(body: TemplateTest, templates: TemplatesDep) -> TemplateTestOut:
    """Run `template` once on `payload` (in a fresh isolate, within the limits of a real
    run): 200 with the result and how the chat would show it, or 422 with `code`
    `template_error`, `template_timeout`, `template_memory` or `bad_result`, the message
    and, where V8 says, the `line` and `column`."""
    event = event_of(body.provider, body.event_type, body.payload, body.headers)
    # In the workspace's own queue of the sandbox (its fair share), not every workspace's.
    scope = tenancy.current() or ""
    outcome = await templates.render(body.template, event, use="test", scope=scope)
    if isinstance(outcome, TemplateFailure):
        error = outcome.as_error()
        raise Invalid(error.pop("message"), code=error.pop("code"), extra=error)
    card = card_of(outcome)
    return TemplateTestOut(
        result=outcome.model_dump(exclude_none=True),
        notice=TemplatePreview(
            text="" if outcome.skip else text_of(outcome),
            card=card.as_dict() if card is not None and not outcome.skip else None,
        ),
    )
