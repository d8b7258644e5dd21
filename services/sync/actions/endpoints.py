"""HTTP routes of `/api/integrations/{id}/actions` (SPEC §10)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Response, status

from services.sync.actions.schemas import IssueCreate, IssueCreated
from services.sync.actions.service import Actions
from shared.errors import BadRequest
from shared.http.app import from_state
from shared.http.auth import Authenticated
from shared.http.errors import MANAGEMENT_ERRORS, error_responses

router = APIRouter(
    prefix="/api/integrations/{integration_id}/actions",
    tags=["actions"],
    dependencies=[Authenticated],
    responses=MANAGEMENT_ERRORS,
)

ServiceDep = Annotated[Actions, Depends(from_state("actions", Actions))]
IntegrationId = Annotated[str, Path(max_length=200)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="1-200 printable ASCII characters: a retried call with the same key and "
        "body returns the first answer and creates nothing twice (kept 24 hours per "
        "integration)",
    ),
]
# As the incoming webhooks' Idempotency-Key (1-200 characters), printable ASCII only.
_KEY = re.compile(r"[\x21-\x7e]{1,200}")


@router.post(
    "/create-issue",
    status_code=status.HTTP_201_CREATED,
    response_model=IssueCreated,
    responses=error_responses(409, 422, 503),
)
async def create_issue(
    integration_id: IntegrationId,
    body: IssueCreate,
    service: ServiceDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> IssueCreated:
    """A GitHub issue (`repo`, `title`, ...) or a Jira issue (`project_key`, `summary`, ...)
    with the integration's OAuth token, the chat `message` quoted in it. A retry with the
    same `Idempotency-Key` and body answers the same (`Idempotent-Replayed: true`)."""
    if idempotency_key is not None and not _KEY.fullmatch(idempotency_key):
        raise BadRequest(
            "Idempotency-Key must be 1-200 printable ASCII characters, without spaces",
            code="bad_idempotency_key",
        )
    answer = await service.create_issue(integration_id, body, idempotency_key)
    response.status_code = answer.status
    if answer.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return IssueCreated.model_validate(answer.body)
