"""HTTP routes of `/api/account-links` (SPEC §20 "Who acts"): a workspace's mapping of its
chat users to the provider accounts they act as: named by the workspace (`PUT`, the
providers acting with the integration's token for a named user), or granted by the user's
own consent (`POST …/{provider}/connect`: GitHub, GitLab, Jira; the provider's OAuth, the
user's token sealed in the link and never shown). Deleting an oauth link revokes its token
at the provider.

A link's address is its workspace, provider and chat user. A workspace's key or portal
session acts in its own workspace: `workspace_id` may be left out, and naming another
finds nothing there (404) and cannot make a link there (403 `other_workspace`). The admin
token names the workspace with `workspace_id`. The list shows a key its own workspace's
links whatever `workspace_id` asks, and the admin every workspace's without one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status
from pydantic import AfterValidator

from services.oauth.account_links.schemas import (
    AccountLinkConnect,
    AccountLinkOut,
    AccountLinkPut,
    acts_by_consent,
    acts_by_mapping,
    linkable,
)
from services.oauth.connect.schemas import ConnectStarted
from services.oauth.connect.service import ConnectService
from shared.domain import tenancy
from shared.domain.account_links import (
    MAPPING_PROVIDERS,
    OAUTH_LINK_PROVIDERS,
    AccountLink,
    AccountLinks,
)
from shared.kernel.errors import Invalid, NotFound
from shared.kernel.http.app import from_state
from shared.kernel.http.auth import Authenticated, CallerDep
from shared.kernel.http.errors import MANAGEMENT_ERRORS
from shared.kernel.http.pagination import Page, PageDep
from shared.kernel.ids import PrintableId

router = APIRouter(
    prefix="/api/account-links",
    tags=["account links"],
    dependencies=[Authenticated],
    responses=MANAGEMENT_ERRORS,
)

LinksDep = Annotated[AccountLinks, Depends(from_state("account_links", AccountLinks))]
ConnectDep = Annotated[ConnectService, Depends(from_state("connect", ConnectService))]
# The providers linked by a mapping (PUT), by the user's consent (connect), or either.
MappedProvider = Annotated[
    str,
    Path(max_length=100, json_schema_extra={"enum": list(MAPPING_PROVIDERS)}),
    AfterValidator(acts_by_mapping),
]
ConsentProvider = Annotated[
    str,
    Path(max_length=100, json_schema_extra={"enum": list(OAUTH_LINK_PROVIDERS)}),
    AfterValidator(acts_by_consent),
]
Provider = Annotated[
    str,
    Path(
        max_length=100,
        json_schema_extra={"enum": [*MAPPING_PROVIDERS, *OAUTH_LINK_PROVIDERS]},
    ),
    AfterValidator(linkable),
]
ChatUserId = Annotated[PrintableId, Path(description="the chat product's id of the user")]
Filter = Annotated[str | None, Query(max_length=200)]
_WORKSPACE = (
    "the workspace of the link: the admin token names it; a key's or portal session's is "
    "its own (another answers 404, or 403 for a PUT)"
)


async def _workspace(
    workspace_id: Annotated[PrintableId | None, Query(description=_WORKSPACE)] = None,
) -> str:
    chosen = workspace_id or tenancy.current()
    if chosen is None:
        message = "the admin token names the link's workspace: give workspace_id"
        raise Invalid(
            message, extra={"details": [{"loc": ["query", "workspace_id"], "message": message}]}
        )
    return chosen


Workspace = Annotated[str, Depends(_workspace)]


def _out(link: AccountLink) -> AccountLinkOut:
    return AccountLinkOut.model_validate(link.to_public())


def _not_found(workspace_id: str, provider: str, chat_user_id: str) -> NotFound:
    return NotFound(f"no {provider} link of chat user {chat_user_id} in workspace {workspace_id}")


@router.put(
    "/{provider}/{chat_user_id}",
    response_model=AccountLinkOut,
    responses={201: {"model": AccountLinkOut, "description": "The link was made"}},
)
async def put_account_link(
    provider: MappedProvider,
    chat_user_id: ChatUserId,
    body: AccountLinkPut,
    workspace_id: Workspace,
    links: LinksDep,
    caller: CallerDep,
    response: Response,
) -> AccountLinkOut:
    """Link the chat user to `provider_user`, the account the provider's actions name
    (201), or replace the link (200: `created_at` and `created_by` kept)."""
    link, created = await links.put(
        workspace_id,
        provider,
        chat_user_id,
        kind="mapping",
        provider_user=body.provider_user,
        name=body.name,
        created_by={"kind": caller.kind, "id": caller.id},
    )
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return _out(link)


@router.post("/{provider}/connect", response_model=ConnectStarted)
async def connect_account_link(
    provider: ConsentProvider,
    body: AccountLinkConnect,
    workspace_id: Workspace,
    service: ConnectDep,
    caller: CallerDep,
) -> ConnectStarted:
    """Start linking the chat user by their own consent at `provider`: send their browser
    to `authorization_url` (valid 10 minutes, once); the callback makes the link."""
    return await service.start_link(
        workspace_id,
        provider,
        body.chat_user_id,
        {"kind": caller.kind, "id": caller.id},
        str(body.return_to) if body.return_to else None,
    )


@router.get("", response_model=Page[AccountLinkOut])
async def list_account_links(
    links: LinksDep,
    page: PageDep,
    workspace_id: Filter = None,
    provider: Filter = None,
    chat_user_id: Filter = None,
) -> Page[AccountLinkOut]:
    found, next_cursor = await links.list(
        workspace_id, provider, chat_user_id, cursor=page.cursor, limit=page.limit
    )
    return Page(data=[_out(link) for link in found], next_cursor=next_cursor)


@router.get("/{provider}/{chat_user_id}", response_model=AccountLinkOut)
async def get_account_link(
    provider: Provider, chat_user_id: ChatUserId, workspace_id: Workspace, links: LinksDep
) -> AccountLinkOut:
    link = await links.get(workspace_id, provider, chat_user_id)
    if link is None:
        raise _not_found(workspace_id, provider, chat_user_id)
    return _out(link)


@router.delete("/{provider}/{chat_user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_account_link(
    provider: Provider,
    chat_user_id: ChatUserId,
    workspace_id: Workspace,
    links: LinksDep,
    service: ConnectDep,
) -> Response:
    """Unlink: the chat user's clicks act at the provider no more until linked again; an
    oauth link's token is revoked at the provider (or left to the revocation retries)."""
    removed = await links.remove(workspace_id, provider, chat_user_id)
    if removed is None:
        raise _not_found(workspace_id, provider, chat_user_id)
    await service.forget_link(removed)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
