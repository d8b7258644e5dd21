"""The provider ingress pipeline's parts: secrets, routing, dedupe, rate limits, envelopes."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from services.gateway.provider_webhooks.repository import SeenDeliveries
from services.gateway.provider_webhooks.window import SeenWindow
from shared.domain.integrations.model import IntegrationSnapshot, Status
from shared.kernel.cache import RecentIds
from shared.kernel.envelopes import ProviderEvent
from shared.kernel.errors import Forbidden, NotFound, RateLimited
from shared.kernel.ids import derived_id
from shared.providers.base import InboundRequest, ParsedWebhook, ProviderWebhooks, SignatureInvalid
from shared.providers.ids import JsonBody


class AppSecrets:
    """App-level secrets: `PUT /api/providers/{provider}` (cached), else the environment
    (SPEC §3). An integration's own setting wins over both."""

    def __init__(
        self,
        environment: Mapping[str, Mapping[str, str]],
        apps: Callable[[str], Mapping[str, str] | None] = lambda _: None,
    ) -> None:
        self._environment = environment  # without empty values (apps.from_environment)
        self._apps = apps
        # Merged per integration, kept while neither the snapshot nor the app changes.
        self._merged: dict[str, tuple[object, object, dict[str, str]]] = {}

    def for_provider(self, provider: str) -> dict[str, str]:
        return {**self._environment.get(provider, {}), **(self._apps(provider) or {})}

    def for_integration(self, integration: IntegrationSnapshot) -> dict[str, str]:
        app = self._apps(integration.provider)
        known = self._merged.get(integration.id)
        if known is not None and known[0] is integration and known[1] is app:
            return known[2]
        merged = {
            **self.for_provider(integration.provider),
            **integration.config,
            **integration.secrets,
        }
        self._merged[integration.id] = (integration, app, merged)
        return merged


def check_usable(integration: IntegrationSnapshot | None, provider: str) -> IntegrationSnapshot:
    if integration is None or integration.provider != provider:
        raise NotFound(f"no {provider} integration with this id", code="unknown_integration")
    if integration.status == Status.DISCONNECTED:
        raise Forbidden(
            "this integration is disconnected; connect it again (POST /api/auth/oauth/connect "
            "with its integration_id) or create a new one",
            code="integration_disconnected",
        )
    if not integration.enabled:
        raise Forbidden("this integration is disabled", code="integration_disabled")
    return integration


def verify_app_level(
    webhooks: ProviderWebhooks,
    request: InboundRequest,
    defaults: list[IntegrationSnapshot],
    integrations: list[IntegrationSnapshot],
    app_secrets: AppSecrets,
) -> tuple[IntegrationSnapshot, ParsedWebhook]:
    """`POST /api/webhooks/{provider}`: find the integration a request belongs to.

    With an app-level secret (one Slack app for many workspaces), verify with it, then
    route by the account the payload names, else to the single default integration.
    Without one, the default integrations' own secrets are tried; the one that verifies
    the signature is the one the request is for.
    """
    app_secret = app_secrets.for_provider(webhooks.name)
    if app_secret:
        webhooks.verify(request, app_secret, request.received_at)
        parsed = webhooks.parse(request)
        for integration in integrations:
            if parsed.account_id and integration.account_id == parsed.account_id:
                return integration, parsed
        if len(defaults) == 1:
            return defaults[0], parsed
        raise NotFound(
            f"no {webhooks.name} integration for account {parsed.account_id or '?'} and no "
            "single default integration",
            code="unknown_integration",
        )
    if not defaults:
        raise NotFound(
            f"no default {webhooks.name} integration; use /api/webhooks/{webhooks.name}/<id>",
            code="unknown_integration",
        )
    for integration in defaults:
        try:
            webhooks.verify(request, app_secrets.for_integration(integration), request.received_at)
        except SignatureInvalid:
            continue
        return integration, webhooks.parse(request)
    raise SignatureInvalid("signature does not match any default integration")


def envelope_for(
    integration: IntegrationSnapshot, parsed: ParsedWebhook, request: InboundRequest
) -> ProviderEvent:
    # Built from values already checked (the ids are ours, the time is aware): validating
    # them again would cost a tenth of a webhook's handling (docs/benchmarks.md).
    return ProviderEvent.model_construct(
        id=derived_id(integration.provider, integration.id, parsed.delivery_id),
        provider=integration.provider,
        integration_id=integration.id,
        workspace_id=integration.workspace_id,
        event_type=parsed.event_type,
        delivery_id=parsed.delivery_id,
        received_at=request.received_at,
        # Left out for a body that is the payload: the envelope's bytes splice it in.
        payload=None if isinstance(parsed.payload, JsonBody) else parsed.payload,
    )


class Deduplicator:
    """Suppresses envelope ids seen recently by any replica.

    Ids this replica published lately are answered from `recent` (which also covers them
    until the window has read them back from MongoDB); ids the in-memory window cannot
    hold are new; only the rest (redeliveries, and the window's false positives) are
    looked up in MongoDB. Fails open: if MongoDB cannot answer, the webhook is
    published anyway (consumers dedupe by id too), because losing a webhook is worse than
    publishing it twice.
    """

    def __init__(
        self,
        recent: RecentIds,
        shared: SeenDeliveries,
        window: timedelta,
        memory: SeenWindow | None = None,
    ) -> None:
        self._recent = recent
        self._shared = shared
        self._window = window
        self._memory = memory

    async def seen(self, envelope_id: str) -> bool:
        if envelope_id in self._recent:
            return True
        memory = self._memory
        if memory is not None and memory.ready and not memory.might_contain(envelope_id):
            return False
        try:
            return await self._shared.contains(envelope_id)
        except Exception:
            return False

    def remember(self, envelope_id: str, now: datetime) -> None:
        """Called once the envelope is on Kafka; written to MongoDB in the next batch."""
        self._recent.add(envelope_id)
        self._shared.record(envelope_id, now + self._window)


class RateLimiter:
    """A token bucket per integration (per replica): `rate` per second, bursts of 2 s."""

    def __init__(self, default_rate: float) -> None:
        self._default_rate = default_rate
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, integration: IntegrationSnapshot) -> None:
        rate = integration.rate_limit_per_second or self._default_rate
        capacity = max(rate * 2, 1.0)
        now = time.monotonic()
        tokens, last = self._buckets.get(integration.id, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rate)
        if tokens < 1:
            self._buckets[integration.id] = (tokens, now)
            raise RateLimited(
                f"more than {rate:g} webhooks per second for this integration",
                retry_after=math.ceil((1 - tokens) / rate),
            )
        self._buckets[integration.id] = (tokens - 1, now)
