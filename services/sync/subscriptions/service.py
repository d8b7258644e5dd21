"""Subscriptions: created and changed only on a GitHub or Jira integration that exists,
with filters that the provider's notices carry and event names its renderers know."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from services.sync.subscriptions.filters import FILTERS, problems
from services.sync.subscriptions.repository import SubscriptionRepository
from services.sync.subscriptions.schemas import (
    NotificationEvent,
    NotificationEvents,
    SubscriptionCreate,
    SubscriptionFields,
    SubscriptionUpdate,
)
from shared.domain.templates import Templates
from shared.kernel.errors import Invalid, NotFound
from shared.kernel.ids import new_id, utcnow_ms
from shared.kernel.mongo import Document
from shared.providers.catalog import catalog_entry
from shared.providers.connections import Connections
from shared.providers.notifiers import NOTIFIERS
from shared.providers.notify import Notifier, any_matches

# What a subscription stores of its body (the rest is the service's).
FIELDS = (
    "channel_id",
    "events",
    "exclude_events",
    "repositories",
    "projects",
    "branches",
    "labels",
    "authors",
    "drafts",
    "threads",
    "enabled",
    "template",
)


class NotANotifyingIntegration(Invalid):
    code = "provider_not_notifying"


class InvalidSubscription(Invalid):
    code = "invalid_subscription"


class SubscriptionService:
    def __init__(
        self,
        repository: SubscriptionRepository,
        connections: Connections,
        applied: Callable[[Document], None] = lambda _: None,
        templates: Templates | None = None,
    ) -> None:
        """`applied`: told of every subscription this replica writes (the notifications
        consumer's cache has it at once); `templates` checks a template at save."""
        self._repository = repository
        self._connections = connections
        self._applied = applied
        self._templates = templates

    async def _notifier(self, integration_id: str) -> tuple[Any, Notifier]:
        integration = await self._connections.integration(integration_id)
        return integration, _notifier_of(integration.provider)

    async def get(self, integration_id: str, subscription_id: str) -> Document:
        doc = await self._repository.get(subscription_id)
        if doc is None or doc["integration_id"] != integration_id:
            raise NotFound(
                f"subscription {subscription_id} not found on integration {integration_id}"
            )
        return doc

    async def create(
        self, integration_id: str, body: SubscriptionCreate, subscription_id: str | None = None
    ) -> Document:
        """`subscription_id`: the new subscription's, for a caller that may ask twice (a
        slash command run again after a lease ran out); a new one by default."""
        integration, notifier = await self._notifier(integration_id)
        fields = body.model_dump(exclude_none=True)
        await self._check(integration.provider, notifier, fields, fields.get("template"))
        now = utcnow_ms()
        doc: dict[str, Any] = {
            "_id": subscription_id or new_id("sub"),
            "workspace_id": integration.workspace_id,
            "integration_id": integration_id,
            "provider": integration.provider,
            **{name: fields.get(name) for name in FIELDS},
            "notified_count": 0,
            "filtered_count": 0,
            "last_notified_at": None,
            "last_error": None,
            "created_at": now,
            "updated_at": now,
            "deleted_at": None,
        }
        await self._repository.insert(doc)
        self._applied(doc)
        return doc

    async def update(
        self, integration_id: str, subscription_id: str, body: SubscriptionUpdate
    ) -> Document:
        integration, notifier = await self._notifier(integration_id)
        current = await self.get(integration_id, subscription_id)
        changes = body.model_dump(exclude_unset=True)
        merged = {name: current.get(name) for name in FIELDS} | changes
        await self._check(
            integration.provider,
            notifier,
            {k: v for k, v in merged.items() if v is not None},
            changes.get("template"),
        )
        updated = await self._repository.update(subscription_id, changes)
        if updated is None:
            raise NotFound(
                f"subscription {subscription_id} not found on integration {integration_id}"
            )
        self._applied(updated)
        return updated

    async def _check(
        self, provider: str, notifier: Notifier, fields: dict[str, Any], template: str | None
    ) -> None:
        """Everything wrong with a subscription at once, its template's error among them: a
        form with a wrong filter and a template that does not compile hears of both (it
        heard of the filter, then of the template)."""
        found, refused = await self._wrong(provider, notifier, fields, template)
        if refused is not None and not found:
            raise refused  # 422 invalid_template, its line and column as fields
        if refused is not None:
            found.append(refused.message)
        if found:
            extra = refused.extra if refused is not None else None
            raise InvalidSubscription("; ".join(found), extra=extra)

    async def _wrong(
        self, provider: str, notifier: Notifier, fields: dict[str, Any], template: str | None
    ) -> tuple[list[str], Invalid | None]:
        """What is wrong with `fields` (each named) and the template's refusal, if any."""
        found = problems(provider, notifier, fields)
        if template is not None and self._templates is not None:
            try:
                await self._templates.check(template)
            except Invalid as refused:
                return found, refused
        return found, None

    async def also_wrong(self, integration_id: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        """For a body the schema refused: what `_check` finds wrong in its filters and
        template that are well-formed each on its own (the others are the schema's), as
        details of that 422."""
        integration, notifier = await self._notifier(integration_id)
        fields: dict[str, Any] = {}
        for name in SubscriptionFields.model_fields:
            if body.get(name) is None:
                continue
            try:
                one = SubscriptionFields.model_validate({name: body[name]})
            except ValidationError:
                continue
            fields[name] = one.model_dump(exclude_none=True)[name]
        found, refused = await self._wrong(
            integration.provider, notifier, fields, fields.get("template")
        )
        details = [{"loc": ["body"], "message": message} for message in found]
        if refused is not None:
            details.append({"loc": ["body", "template"], "message": refused.message})
        return details

    async def delete(self, integration_id: str, subscription_id: str) -> None:
        await self.get(integration_id, subscription_id)
        tombstone = await self._repository.remove(subscription_id)
        if tombstone is not None:
            self._applied(tombstone)


def _notifier_of(provider: str) -> Notifier:
    notifier = NOTIFIERS.get(provider)
    if notifier is None:
        catalog_entry(provider)  # a misspelt name: 404 `unknown_provider`
        raise NotANotifyingIntegration(
            f"{provider} integrations take no subscriptions: a chat's messages are synced"
            " through mappings; every other provider that sends webhooks takes them"
        )
    return notifier


def notification_events(provider: str) -> NotificationEvents:
    """The event names a `provider` subscription's `events` can name, for choosing them."""
    notifier = _notifier_of(provider)
    return NotificationEvents(
        provider=provider,
        events=[
            NotificationEvent(
                name=name,
                group=name.split(".", 1)[0],
                default=any_matches(notifier.default_events, name),
            )
            for name in sorted(notifier.events)
        ],
        generic=sorted(notifier.generic_events),
        filters=[name for name in FILTERS if name in notifier.filters],
    )


def out(doc: Document) -> dict[str, Any]:
    return {**doc, "id": doc["_id"], "drafts": bool(doc.get("drafts"))}
