"""HTTP routes of `/api/account-links` (SPEC §20 "Who acts"): a workspace's mapping of its
chat users to the provider accounts they act as.

A link's address is its workspace, provider and chat user. A workspace's key or portal
session acts in its own workspace: `workspace_id` may be left out, and naming another
finds nothing there (404) and cannot make a link there (403 `other_workspace`). The admin
token names the workspace with `workspace_id`. The list shows a key its own workspace's
links whatever `workspace_id` asks, and the admin every workspace's without one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status
from pydantic import AfterValidator

from services.oauth.account_links.schemas import AccountLinkOut, AccountLinkPut, acts_by_mapping
from shared.domain import tenancy
from shared.domain.account_links import MAPPING_PROVIDERS, AccountLink, AccountLinks
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
# For now the providers linked by a mapping; the acting registry will say which providers
# can be linked at all (oauth links come with `POST …/{provider}/connect`).
Provider = Annotated[
    str,
    Path(max_length=100, json_schema_extra={"enum": list(MAPPING_PROVIDERS)}),
    AfterValidator(acts_by_mapping),
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
    provider: Provider,
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
    provider: Provider, chat_user_id: ChatUserId, workspace_id: Workspace, links: LinksDep
) -> Response:
    """Unlink: the chat user's clicks act at the provider no more until linked again."""
    if not await links.delete(workspace_id, provider, chat_user_id):
        raise _not_found(workspace_id, provider, chat_user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
