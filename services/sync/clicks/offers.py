"""What a notification root's card offers (SPEC §20): its provider's actions for the item
as it is now, and the target they act on, for integrations that can act
(shared.providers.actors.can_act: the provider has an `Acting` and the integration every
setting it needs)."""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from shared.domain.integrations.model import IntegrationSnapshot
from shared.kernel.errors import HookhubError
from shared.providers.acting import Offered
from shared.providers.actors import ACTORS, can_act
from shared.providers.connections import Connections
from shared.providers.notify import Notice

log = structlog.get_logger(__name__)


class CardOffers:
    def __init__(self, connections: Connections) -> None:
        self._connections = connections
        self._integrations: dict[str, IntegrationSnapshot | None] = {}

    async def prepare(self, integration_ids: Iterable[str], providers: Iterable[str]) -> None:
        """The batch's integrations of providers that act, read (from the connections'
        cache) before its cards are made."""
        if not set(providers) & set(ACTORS):
            return
        self._integrations = {}
        for integration_id in set(integration_ids):
            try:
                self._integrations[integration_id] = await self._connections.integration(
                    integration_id
                )
            except HookhubError as exc:  # gone meanwhile: its cards offer nothing
                log.info("card_offers_unavailable", integration_id=integration_id, error=str(exc))
                self._integrations[integration_id] = None

    def of(self, integration_id: str, notice: Notice) -> Offered | None:
        integration = self._integrations.get(integration_id)
        acting = can_act(integration) if integration is not None else None
        if acting is None:
            return None
        target = acting.target(notice)
        if target is None:
            return None
        return Offered(acting.name, acting.offers(notice), target)
