"""HTTP routes of `/api/auth/oauth`: connect (admin), the provider's callback (public), and
a chat user's link ticket (public: the ticket is the proof) that starts their consent."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from services.oauth.connect.schemas import Connected, ConnectRequest, ConnectStarted, Linked
from services.oauth.connect.service import CALLBACK_PATH, ConnectService, Outcome
from shared.domain import audit
from shared.domain.account_links import AccountLinks
from shared.kernel.errors import NotFound
from shared.kernel.http.app import from_state
from shared.kernel.http.auth import Authenticated, CallerDep
from shared.kernel.http.errors import MANAGEMENT_ERRORS, error_response, error_responses

router = APIRouter(prefix="/api/auth/oauth", tags=["oauth"])

ServiceDep = Annotated[ConnectService, Depends(from_state("connect", ConnectService))]
LinksDep = Annotated[AccountLinks, Depends(from_state("account_links", AccountLinks))]
# What a link ticket may be: `secrets.token_urlsafe(32)`'s 43 characters, with room.
Ticket = Annotated[str, Path(min_length=20, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]


@router.post(
    "/connect",
    response_model=ConnectStarted,
    dependencies=[Authenticated],
    responses=MANAGEMENT_ERRORS,
)
async def connect(body: ConnectRequest, service: ServiceDep, caller: CallerDep) -> ConnectStarted:
    """Start connecting: send the user's browser to `authorization_url`."""
    return await service.start(body, {"kind": caller.kind, "id": caller.id})


@router.get(
    "/callback",
    response_model=Connected,
    # No token, no body: a state that is no use (400), the integration gone (404), the
    # provider app not configured (422), the provider unreachable (503).
    responses={
        302: {"description": "to `return_to`, when the connect named one"},
        **error_responses(400, 404, 422, 503),
    },
)
async def callback(request: Request, service: ServiceDep) -> Response:
    """Where the provider sends the browser back (no admin token: the state is the proof)."""
    outcome = await service.finish(dict(request.query_params))
    _audit(request, outcome)
    if outcome.return_to:
        return RedirectResponse(_with_query(outcome.return_to, _report(outcome)), status_code=302)
    if outcome.error is not None:
        error = outcome.error
        return error_response(error.status, error.code, error.message, error.headers)
    if outcome.link is not None:
        link = outcome.link
        return JSONResponse(
            Linked(
                account_link_id=link.id,
                provider=link.provider,
                workspace_id=link.workspace_id,
                chat_user_id=link.chat_user_id,
                provider_user=link.provider_user,
                name=link.name,
            ).model_dump()
        )
    doc = outcome.integration
    assert doc is not None
    return JSONResponse(
        Connected(
            integration_id=doc["_id"],
            provider=doc["provider"],
            workspace_id=doc["workspace_id"],
            status=doc["status"],
            account=doc.get("account"),
        ).model_dump()
    )


@router.get(
    "/link/{ticket}",
    status_code=302,
    response_class=RedirectResponse,
    responses={302: {"description": "to the provider's consent"}, **error_responses(404, 422)},
)
async def link(ticket: Ticket, links: LinksDep, service: ServiceDep) -> RedirectResponse:
    """Where a chat user who is not linked is sent (the link in the reply to their click,
    or to `/hookhub link`): their consent at the provider, for the workspace, provider and
    chat user the ticket names (valid a day; no token: the ticket is the proof)."""
    found = await links.ticket(ticket)
    if found is None:
        raise NotFound(
            "unknown link ticket: it expired or was used to link already; click the action "
            "again, or ask `/hookhub link <provider>`, for a new one"
        )
    started = await service.start_link(
        found["workspace_id"],
        found["provider"],
        found["chat_user_id"],
        {"kind": "chat_user", "id": found["chat_user_id"]},
    )
    return RedirectResponse(started.authorization_url, status_code=302)


def _audit(request: Request, outcome: Outcome) -> None:
    """The one change made with no caller's token (the state is the proof): recorded as
    made by whoever started the connect. A connect started before states said who is not."""
    if outcome.link is not None and outcome.started_by is not None:
        link = outcome.link
        audit.record(
            request.scope,
            audit.Plan("account_link", "connected", "answer"),
            status=302 if outcome.return_to else 200,
            actor=outcome.started_by,
            answer={"id": link.chat_user_id, "workspace_id": link.workspace_id},
        )
        return
    doc = outcome.integration
    plan = audit.plan("GET", CALLBACK_PATH)
    if doc is None or outcome.started_by is None or plan is None:
        return
    audit.record(
        request.scope,
        plan,
        status=302 if outcome.return_to else 200,
        actor=outcome.started_by,
        answer={"id": doc["_id"], "workspace_id": doc["workspace_id"]},
    )


def _report(outcome: Outcome) -> dict[str, str]:
    if outcome.error is not None:
        return {"error": outcome.error.code, "error_description": outcome.error.message}
    if outcome.link is not None:
        link = outcome.link
        return {"account_link_id": link.id, "provider": link.provider, "linked": "true"}
    doc = outcome.integration
    assert doc is not None
    return {"integration_id": doc["_id"], "provider": doc["provider"], "status": doc["status"]}


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))
