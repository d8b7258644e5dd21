"""HTTP routes of `/api/integrations/{id}/subscriptions`, and of `/api/notification-events`:
the event names a subscription can name (SPEC §4, §12)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from services.sync.subscriptions.repository import SubscriptionRepository
from services.sync.subscriptions.schemas import (
    NotificationEvents,
    SubscriptionCreate,
    SubscriptionOut,
    SubscriptionUpdate,
)
from services.sync.subscriptions.service import SubscriptionService, notification_events, out
from shared.kernel.http.app import from_state
from shared.kernel.http.auth import Authenticated
from shared.kernel.http.errors import MANAGEMENT_ERRORS, also_checked, error_responses
from shared.kernel.http.pagination import Page, PageDep
from shared.providers.connections import InScope

router = APIRouter(
    prefix="/api/integrations/{integration_id}/subscriptions",
    tags=["subscriptions"],
    dependencies=[Authenticated, InScope],
    responses=MANAGEMENT_ERRORS,
)
events_router = APIRouter(
    prefix="/api/notification-events",
    tags=["subscriptions"],
    dependencies=[Authenticated],
    responses=MANAGEMENT_ERRORS,
)

ServiceDep = Annotated[
    SubscriptionService, Depends(from_state("subscription_service", SubscriptionService))
]
RepositoryDep = Annotated[
    SubscriptionRepository,
    Depends(from_state("subscription_repository", SubscriptionRepository)),
]
IntegrationId = Annotated[str, Path(max_length=200)]
SubscriptionId = Annotated[str, Path(max_length=200)]


async def _also_wrong(request: Request, body: dict[str, Any]) -> list[dict[str, Any]]:
    """A wrong filter or template heard with the schema's errors (shared.kernel.http.errors)."""
    service: SubscriptionService = request.app.state.subscription_service
    return await service.also_wrong(request.path_params["integration_id"], body)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SubscriptionOut,
    responses=error_responses(404, 422),
)
@also_checked(_also_wrong)
async def create_subscription(
    integration_id: IntegrationId, body: SubscriptionCreate, service: ServiceDep
) -> SubscriptionOut:
    """Notify a chat channel of a GitHub or Jira integration's events. Unknown event
    names, malformed globs and filters that do not apply to the provider are refused
    (422, each named)."""
    return SubscriptionOut.model_validate(out(await service.create(integration_id, body)))


@router.get("", response_model=Page[SubscriptionOut])
async def list_subscriptions(
    integration_id: IntegrationId, repository: RepositoryDep, page: PageDep
) -> Page[SubscriptionOut]:
    docs, next_cursor = await repository.page(
        integration_id=integration_id, limit=page.limit, cursor=page.cursor
    )
    return Page(
        data=[SubscriptionOut.model_validate(out(d)) for d in docs], next_cursor=next_cursor
    )


@router.get("/{subscription_id}", response_model=SubscriptionOut, responses=error_responses(404))
async def get_subscription(
    integration_id: IntegrationId, subscription_id: SubscriptionId, service: ServiceDep
) -> SubscriptionOut:
    return SubscriptionOut.model_validate(out(await service.get(integration_id, subscription_id)))


@router.patch(
    "/{subscription_id}", response_model=SubscriptionOut, responses=error_responses(404, 422)
)
@also_checked(_also_wrong)
async def update_subscription(
    integration_id: IntegrationId,
    subscription_id: SubscriptionId,
    body: SubscriptionUpdate,
    service: ServiceDep,
) -> SubscriptionOut:
    """Validated as a creation is, on the subscription as it would be after the change;
    `null` clears a filter."""
    return SubscriptionOut.model_validate(
        out(await service.update(integration_id, subscription_id, body))
    )


@router.delete(
    "/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404)
)
async def delete_subscription(
    integration_id: IntegrationId, subscription_id: SubscriptionId, service: ServiceDep
) -> Response:
    await service.delete(integration_id, subscription_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@events_router.get("", response_model=NotificationEvents)
async def list_notification_events(
    provider: Annotated[str, Query(min_length=1, max_length=200)],
) -> NotificationEvents:
    """Every event a subscription of `provider` can name in `events`: each with its kind and
    whether it is among the provider's defaults, the kinds rendered only generically (any
    action of each; `*` for a provider rendered generically) and the filters it takes. A
    chat (Slack, Discord, Telegram): 422 `provider_not_notifying`; a provider the catalog
    lacks: 404 `unknown_provider`."""
    return notification_events(provider)
