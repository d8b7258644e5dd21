"""HTTP routes of `/api/integrations/{id}/actions` (SPEC §10).

A `create-issue` body is GitHub's or Jira's, by the integration's provider; the schema is
their union, which pydantic reports per member (`function-after[…, GitHubIssueCreate]`).
A body that fits neither is answered with what is wrong for *this* integration's provider
alone, each place named as the caller wrote it (`body`, `body.title`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from services.sync.actions.schemas import IssueBody, IssueCreate, IssueCreated
from services.sync.actions.service import Actions
from shared.kernel.errors import BadRequest
from shared.kernel.http.app import from_state
from shared.kernel.http.auth import Authenticated
from shared.kernel.http.errors import MANAGEMENT_ERRORS, error_responses
from shared.providers.connections import InScope


def for_the_body(errors: Sequence[Any], expected: type[IssueBody]) -> list[dict[str, Any]]:
    """The body's errors as `expected` (the integration's provider's body) has them, the
    union member pydantic names after `body` left out of each place."""
    kept = []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        if len(loc) >= 2 and loc[0] == "body" and isinstance(loc[1], str):
            member = re.findall(r"\w+", loc[1])
            if member and member[-1] in (m.__name__ for m in IssueBody.__subclasses__()):
                if member[-1] != expected.__name__:
                    continue  # the other provider's reading of the body
                error = {**error, "loc": (loc[0], *loc[2:])}
                if error.get("type") in ("model_type", "model_attributes_type"):
                    error["msg"] = "the body is a JSON object"
        kept.append(error)
    return kept


class _IssueBodyRoute(APIRoute):
    """A route whose body errors are told for the integration's provider (the module's
    docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                actions: Actions = request.app.state.actions
                _, expected = await actions.issue_body(request.path_params["integration_id"])
                raise RequestValidationError(
                    for_the_body(exc.errors(), expected), body=exc.body
                ) from None

        return handle


router = APIRouter(
    prefix="/api/integrations/{integration_id}/actions",
    tags=["actions"],
    # InScope first: an integration that is not there is 404, whatever the body.
    dependencies=[Authenticated, InScope],
    responses=MANAGEMENT_ERRORS,
    route_class=_IssueBodyRoute,
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
