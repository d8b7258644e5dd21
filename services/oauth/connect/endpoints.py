"""HTTP routes of `/api/auth/oauth`: connect (admin), the provider's callback (public), and
a chat user's link ticket (public: the ticket is the proof) that starts their consent."""

from __future__ import annotations

import html
from typing import Annotated
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from services.oauth.connect.schemas import Connected, ConnectRequest, ConnectStarted, Linked
from services.oauth.connect.service import CALLBACK_PATH, ConnectService, Outcome
from shared.domain import audit
from shared.domain.account_links import AccountLinks
from shared.kernel.errors import Forbidden
from shared.kernel.http.app import from_state
from shared.kernel.http.auth import Authenticated, CallerDep
from shared.kernel.http.errors import MANAGEMENT_ERRORS, error_response, error_responses
from shared.kernel.mongo import Document
from shared.providers.catalog import CATALOG, catalog_entry

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
        200: {
            "description": "the integration connected, or the account linked (a browser "
            "that asks for HTML is shown a page saying so)",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
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
        if "text/html" in request.headers.get("accept", ""):
            # A chat user back from their consent, in the browser their link opened.
            linked = _linked(link.provider, link.chat_user_id, outcome.chat_user_name, link.name)
            return HTMLResponse(_page(linked, None, "Linked"), headers=PAGE_HEADERS)
        return JSONResponse(
            Linked(
                account_link_id=link.id,
                provider=link.provider,
                workspace_id=link.workspace_id,
                chat_user_id=link.chat_user_id,
                chat_user_name=outcome.chat_user_name,
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
    # An HTML page (the errors are JSON, as every route's, but for the page that says the
    # ticket is unknown).
    responses={
        200: {
            "description": "whom the ticket links, and a button to go on",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        404: {
            **error_responses(404)[404],
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        **error_responses(422, 503),
    },
)
async def link_page(ticket: Ticket, links: LinksDep) -> HTMLResponse:
    """Where a chat user who is not linked is sent (the link in the ephemeral reply to
    their click, or to `/hookhub link`): a page naming the chat user, the workspace and the
    provider the ticket links, whose button spends it on that provider's consent. Opening
    it spends nothing (a chat's link preview opens it too); someone else's ticket says
    whose it is. No token: the ticket is the proof."""
    found = await links.ticket(ticket)
    if found is None:
        return HTMLResponse(_page(_UNKNOWN, None), status_code=404, headers=PAGE_HEADERS)
    return HTMLResponse(_page(_confirm(found), ticket), headers=PAGE_HEADERS)


@router.post(
    "/link/{ticket}",
    status_code=303,
    response_class=RedirectResponse,
    responses={
        303: {"description": "to the provider's consent"},
        **error_responses(403, 404, 422, 503),
    },
)
async def link(ticket: Ticket, request: Request, links: LinksDep, service: ServiceDep) -> Response:
    """The page's button: the ticket spent (once; the first to spend it wins) on the
    consent of the chat user it names, at its provider. Only from the page itself (its
    `Origin`): another site's form cannot send a browser to consent for a ticket it holds."""
    if not service.is_own_origin(request.headers.get("origin")):
        raise Forbidden("a link ticket is spent from its own page only", code="cross_origin")
    found = await links.take_ticket(ticket)
    if found is None:
        return HTMLResponse(_page(_UNKNOWN, None), status_code=404, headers=PAGE_HEADERS)
    started = await service.start_link(
        found["workspace_id"],
        found["provider"],
        found["chat_user_id"],
        {"kind": "chat_user", "id": found["chat_user_id"]},
        chat_user_name=found.get("chat_user_name"),
    )
    return RedirectResponse(started.authorization_url, status_code=303)


# The ticket's page: nothing loaded, never framed (its button is what links), nothing
# cached, and its address (the ticket) sent to no other origin as a referrer. Not
# `no-referrer`: under it a browser sends its form's POST with `Origin: null` (Fetch,
# "append a request Origin header"), which `link` refuses, so the button never worked
# (Chromium, tried). No `form-action`: its form's answer redirects to the provider, which
# browsers would hold to it.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_UNKNOWN = (
    "<p>This link is unknown: it expired, or was used already. Click the action again, or "
    "ask <code>/hookhub link &lt;provider&gt;</code>, for a new one.</p>"
)


def _confirm(found: Document) -> str:
    provider = html.escape(catalog_entry(found["provider"]).name)
    user = html.escape(found["chat_user_id"])
    named = found.get("chat_user_name")
    who = (
        f"<strong>{html.escape(named)}</strong> (<code>{user}</code>)"
        if named
        else (f"<code>{user}</code>")
    )
    workspace = html.escape(found["workspace_id"])
    kind = html.escape(_kind_of_user(found["chat_user_id"]))
    return (
        f"<p>This links the {kind} {who} of workspace <code>{workspace}</code> to "
        f"your {provider} account: actions they click on cards will then be made at "
        f"{provider} as you.</p>\n"
        f"<p><strong>If you are not that {kind}, stop here</strong>: this link was "
        f"meant for them alone.</p>\n"
    )


def _kind_of_user(chat_user_id: str) -> str:
    """Who a ticket names: a chat user, or a bridged network's user (`slack:U024BE7LH`,
    whose click in Slack asked for it: "Slack user")."""
    network, _, user = chat_user_id.partition(":")
    entry = CATALOG.get(network) if user else None
    if entry is not None and "sync" in entry.capabilities:
        return f"{entry.name} user"
    return "chat user"


def _linked(provider: str, chat_user_id: str, chat_user_name: str | None, name: str | None) -> str:
    """The page after a link's consent: who is linked to whom."""
    provider_name = html.escape(catalog_entry(provider).name)
    user = html.escape(chat_user_id)
    who = (
        f"<strong>{html.escape(chat_user_name)}</strong> (<code>{user}</code>)"
        if chat_user_name
        else f"<code>{user}</code>"
    )
    account = f" as <strong>{html.escape(name)}</strong>" if name else ""
    return (
        f"<p>{who} is linked to your {provider_name} account{account}: actions they click "
        f"on cards are made at {provider_name} as you (one clicked before runs now). You "
        f"may close this page.</p>\n"
    )


def _page(body: str, ticket: str | None, heading: str = "Link your account") -> str:
    form = (
        f'<form method="post" action="{html.escape(ticket)}">'
        '<button type="submit">Continue to the provider</button></form>\n'
        if ticket is not None
        else ""
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>hookhub: link your account</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1"></head>\n'
        f"<body><main><h1>{heading}</h1>\n{body}{form}</main></body></html>\n"
    )


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
