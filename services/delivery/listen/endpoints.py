"""HTTP and WebSocket routes of `hookhub listen` (SPEC §21, docs/listen.md): the listening
endpoint made or found again, the socket a listener connects, and the hop a delivery
takes to the replica holding that socket."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, WebSocket, status
from fastapi.responses import JSONResponse
from starlette.requests import HTTPConnection

from services.delivery.destinations.base import Answer
from services.delivery.listen import protocol
from services.delivery.listen.relay import HOP_HEADER, HOP_PATH, Listeners
from services.delivery.listen.service import (
    ListenEndpointCreate,
    ListenEndpointOut,
    listening_endpoint,
)
from services.delivery.outgoing_webhooks.endpoints import CacheDep, RepositoryDep, ServiceDep
from services.delivery.outgoing_webhooks.endpoints import endpoint_out as shown_endpoint
from services.delivery.outgoing_webhooks.service import EndpointService
from shared.domain import audit
from shared.kernel.errors import Conflict, Forbidden, HookhubError, Invalid
from shared.kernel.http.app import from_state
from shared.kernel.http.auth import Authenticated, Caller, CallerDep, access_of, permit
from shared.kernel.http.errors import MANAGEMENT_ERRORS, ErrorResponse, response_for
from shared.kernel.http.limits import max_body
from shared.kernel.mongo import Document

ListenersDep = Annotated[Listeners, Depends(from_state("listeners", Listeners))]
MAX_FORWARD_TO = 2000


class UpgradeRequired(HookhubError):
    status = 426
    code = "upgrade_required"


router = APIRouter(
    prefix="/api/listen",
    tags=["listen"],
    dependencies=[Authenticated],
    responses=MANAGEMENT_ERRORS,
)
# The socket itself: FastAPI leaves WebSocket routes out of the OpenAPI document, where
# `GET /api/listen` (a handshake without its upgrade) stands for it.
socket_router = APIRouter()
# Replica to replica: not public (the edge routes nothing under /internal).
hop_router = APIRouter(include_in_schema=False)


@router.post(
    "/endpoints",
    response_model=ListenEndpointOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": ListenEndpointOut, "description": "Found again (`created` false, no secret)"}
    },
)
async def make_or_find_listening_endpoint(
    body: ListenEndpointCreate,
    request: Request,
    response: Response,
    caller: CallerDep,
    service: ServiceDep,
    repository: RepositoryDep,
    cache: CacheDep,
) -> ListenEndpointOut:
    """The caller's listening endpoint for these events and this name: made (201, with its
    signing secret, shown this once) or found again (200), so that a listener restarted
    with the same key, name and events gets what waited for it."""
    doc, secret = await listening_endpoint(service, repository, caller, body)
    cache.apply(doc)
    if secret is None:
        response.status_code = status.HTTP_200_OK
    else:  # a find changes nothing: only a creation is recorded (audit.ROUTES says why)
        audit.record(
            request.scope,
            audit.Plan("outgoing_webhook", "create", "answer"),
            status=status.HTTP_201_CREATED,
            actor={"kind": caller.kind, "id": caller.id},
            actor_workspace=caller.workspace_id,
            body=body.model_dump(exclude_unset=True),
            answer={"id": doc["_id"], "workspace_id": doc["workspace_id"]},
        )
    return ListenEndpointOut.model_validate(
        {**shown_endpoint(doc), "created": secret is not None, "secret": secret}
    )


@router.get(
    "",
    responses={
        101: {"description": "Switched to the WebSocket: the listener's session (docs/listen.md)"},
        409: {"model": ErrorResponse, "description": "The endpoint is not a listening one"},
        426: {
            "model": ErrorResponse,
            "description": "Not a WebSocket handshake (`upgrade_required`): connect with "
            "`Upgrade: websocket` to listen",
        },
    },
    status_code=status.HTTP_101_SWITCHING_PROTOCOLS,
    response_class=Response,
)
async def listen(
    caller: CallerDep,
    service: ServiceDep,
    endpoint_id: Annotated[str, Query(min_length=1, max_length=200)],
    forward_to: Annotated[str, Query(max_length=MAX_FORWARD_TO)] = "",
) -> Response:
    """The listener's WebSocket (`hookhub listen`): with `Upgrade: websocket`, answered
    101 and kept open; the endpoint's deliveries then come down it as frames and its
    answers go up (docs/listen.md). `forward_to` is where the listener forwards them,
    shown in the attempt log. One session per endpoint: a new one replaces the last (close
    code 4000). Needs a key that can write. Without the upgrade: 426."""
    await _listening(caller, service, endpoint_id)
    raise UpgradeRequired(
        "connect with a WebSocket handshake (Upgrade: websocket) to listen",
        headers={"Upgrade": "websocket", "Connection": "Upgrade"},
    )


@socket_router.websocket("/api/listen")
async def listen_socket(websocket: WebSocket) -> None:
    listeners: Listeners = websocket.app.state.listeners
    try:
        caller, endpoint, forward_to = await _admitted(websocket)
    except Exception as exc:  # in the SPEC §4 format, as any route's (a bug: a 500)
        await _deny(websocket, response_for(exc))
        return
    await websocket.accept()
    try:
        session = await listeners.open(
            endpoint,
            forward_to=forward_to,
            caller=caller,
            authorization=websocket.headers.get("authorization", ""),
            send=websocket.send_text,
            close=lambda code, reason: websocket.close(code, reason),
        )
    except Exception as exc:  # MongoDB away: the listener tries again
        await websocket.close(1011, f"not registered: {type(exc).__name__}"[:120])
        return
    why = "the listener left"
    try:
        await websocket.send_text(protocol.ready(session.session_id, endpoint))
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                why = f"the socket closed ({message.get('code', 1005)})"
                break
            text = message.get("text")
            session.answered(text if text is not None else message.get("bytes") or b"")
    except Exception as exc:  # the socket broke mid-frame
        why = f"the socket broke: {type(exc).__name__}"
    finally:
        await listeners.closed(session, why)


@hop_router.post(HOP_PATH, dependencies=[max_body("listen_hop_max_body_bytes")])
async def hop(endpoint_id: str, request: Request, listeners: ListenersDep) -> JSONResponse:
    """A delivery another replica hands to the socket held here (relay.py)."""
    if not listeners.hop_allowed(request.headers.get(HOP_HEADER)):
        return response_for(Forbidden("only a delivery replica hands deliveries over"))
    try:
        body = await request.json()
    except ValueError:
        body = None
    answer = await listeners.hopped(endpoint_id, body)
    return JSONResponse(_answer_doc(answer))


def _answer_doc(answer: Answer) -> Document:
    return {
        "status_code": answer.status_code,
        "body": answer.body,
        "error": answer.error,
        "headers": answer.headers,
        "reached": answer.reached,
    }


async def _admitted(websocket: WebSocket) -> tuple[Caller, Document, str]:
    """The handshake's caller, endpoint and local URL, or the error it is refused with."""
    caller = await access_of(websocket.app).identify_header(websocket.headers.get("authorization"))
    endpoint_id = websocket.query_params.get("endpoint_id", "")
    forward_to = websocket.query_params.get("forward_to", "")
    if not 1 <= len(endpoint_id) <= 200:
        raise Invalid("endpoint_id: the listening endpoint's id is required (1-200 characters)")
    if len(forward_to) > MAX_FORWARD_TO:
        raise Invalid(f"forward_to: at most {MAX_FORWARD_TO} characters")
    service: EndpointService = websocket.app.state.endpoint_service
    access = access_of(websocket.app)
    access.confine(caller)
    try:
        endpoint = await _listening(caller, service, endpoint_id)
    finally:
        access.confine(None)
    return caller, endpoint, forward_to


async def _listening(caller: Caller, service: EndpointService, endpoint_id: str) -> Document:
    """The listening endpoint the caller names, in its workspace; listening takes an
    endpoint's deliveries, so a `read` key may not."""
    permit(caller, "POST", admin_only=False)
    endpoint = await service.get(endpoint_id)
    if (endpoint.get("destination") or {}).get("type") != "listen":
        raise Conflict(
            f"outgoing webhook {endpoint_id} does not listen: its destination is not "
            '`{"type": "listen"}` (PATCH it so, or run hookhub listen --events)',
            code="not_listening",
        )
    return endpoint


async def _deny(connection: HTTPConnection, answer: JSONResponse) -> None:
    """A refused handshake answered with its HTTP error (uvicorn's denial extension), or
    closed with 1008 where the server cannot answer one."""
    websocket: Any = connection
    try:
        await websocket.send_denial_response(answer)
    except RuntimeError:
        await websocket.close(1008, "refused")
