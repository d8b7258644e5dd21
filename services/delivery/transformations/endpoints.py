"""HTTP route of `/api/transformations/test` (SPEC §17)."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends

from services.delivery.transformations.schemas import TransformationTest, TransformationTestOut
from services.delivery.transformations.service import (
    Cancelled,
    Outgoing,
    TransformationFailure,
    Transformer,
    webhook_of,
)
from shared.domain import tenancy
from shared.kernel.http.app import from_state
from shared.kernel.http.auth import Authenticated
from shared.kernel.http.errors import MANAGEMENT_ERRORS

router = APIRouter(
    prefix="/api/transformations",
    tags=["transformations"],
    dependencies=[Authenticated],
    responses=MANAGEMENT_ERRORS,
)

TransformerDep = Annotated[Transformer, Depends(from_state("tried_transformer", Transformer))]
# Where the tried webhook would go: a name no one owns (RFC 2606), not a real endpoint.
SAMPLE_URL = "https://receiver.example/webhooks"


@router.post("/test", response_model=TransformationTestOut)
async def test_transformation(
    body: TransformationTest, transformer: TransformerDep
) -> TransformationTestOut:
    """Run `code` once on `payload` (in a fresh isolate, within the limits of a real run),
    as it would run before an attempt to `https://receiver.example/webhooks` with no extra
    headers: 200 with the webhook it leaves (or `cancel: true`), or 422 `transformation_error`
    with the message and, where V8 says, the `line` and `column`."""
    sample = Outgoing("POST", SAMPLE_URL, orjson.dumps(body.payload), {})
    # In the workspace's own queue of the sandbox (its fair share), not every workspace's.
    scope = tenancy.current() or ""
    outcome = await transformer.apply(body.code, body.event_type, sample, scope=scope, use="test")
    if isinstance(outcome, TransformationFailure):
        outcome.raise_invalid()
    if isinstance(outcome, Cancelled):
        return TransformationTestOut(cancel=True, webhook=None)
    assert isinstance(outcome, Outgoing)
    return TransformationTestOut(cancel=False, webhook=webhook_of(outcome))
