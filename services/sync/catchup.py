"""Catch-up: what was written in a provider channel while sync could not hear it, read from
the channel's history and brought to the chat through the inbound pipeline.

When: at a start of sync when no other replica was alive (the service was down: Slack
gave up redelivering, or the gateway was down too), for every inbound mapping of a network
with `history` in its catalog capabilities (Slack, Discord); and for one Discord
integration when its Gateway session could not be resumed (a new session cannot replay
what the old one missed).

From where: each mapping's `inbound_seen_at` (the time of the newest provider message
brought in, written with `last_synced_at`), else the mapping's creation, less a second.
The history is read oldest first through the provider's `history`; a message the map
already holds is skipped (`hookhub_sync_catch_up_messages_total{outcome="known"}`), so
reading again what was already brought in doubles nothing. A catch-up that fails part way
(the provider out of reach, Kafka or MongoDB away) is tried again from the same point
until it is done; a message is in the map only once its envelope is published, so the
retry brings what the failed try did not. Telegram has no history in its
Bot API: it keeps undelivered webhook updates for 24 hours and delivers them again.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog

from services.sync.inbound.service import Inbound
from services.sync.mappings.service import LastSynced
from services.sync.mappings.service import snapshot as mapping_snapshot
from services.sync.metrics import SyncMetrics
from shared.domain.integrations.model import IntegrationSnapshot
from shared.domain.mappings import MappingRepository
from shared.domain.oauth.tokens import NotConnected
from shared.kernel.errors import HookhubError
from shared.kernel.ids import utcnow
from shared.kernel.mongo import Document
from shared.kernel.ownership import Ownership
from shared.providers.catalog import networks_with
from shared.providers.chat import PermanentError, RateLimited
from shared.providers.connections import Connections

log = structlog.get_logger(__name__)

MARGIN = timedelta(seconds=1)
# The longest wait between two tries of a mapping's catch-up (1, 2, 4, ... s before).
MAX_PAUSE_SECONDS = 60.0


class CatchUp:
    def __init__(
        self,
        *,
        connections: Connections,
        repository: MappingRepository,
        inbound: Inbound,
        synced: LastSynced,
        metrics: SyncMetrics,
        max_messages: int,
    ) -> None:
        self._connections = connections
        self._repository = repository
        self._inbound = inbound
        self._synced = synced
        self._metrics = metrics
        self._max = max_messages

    async def at_start(self, ownership: Ownership) -> None:
        """Every integration of a network with a history, when no other replica is alive
        (Discord's are also caught up by their Gateway's new session; the map keeps that
        single)."""
        if await ownership.others_alive(utcnow()):
            log.info("catch_up_skipped", reason="other sync replicas were running")
            return
        for integration_id in await self._repository.integrations_mapped(networks_with("history")):
            await self.integration(integration_id)

    async def integration(self, integration_id: str) -> int:
        """Every inbound mapping of one integration, each from where it was last seen. How
        many messages were brought in."""
        try:
            integration = await self._connections.integration(integration_id)
        except HookhubError:
            return 0
        readable = integration.provider in networks_with("history")
        if not readable or not self._connections.connected(integration):
            return 0
        # What this process saw and has not written yet counts too.
        await self._synced.write(everything=True)
        docs = await self._repository.inbound_of(integration_id)
        total = 0
        for doc in docs:
            total += await self._mapping(integration, doc)
        log.info("caught_up", integration_id=integration_id, mappings=len(docs), messages=total)
        return total

    async def _mapping(self, integration: IntegrationSnapshot, doc: Document) -> int:
        """One mapping's gap, read and brought in. What fails on the way (the provider out
        of reach, Kafka or MongoDB away) is tried again, from the same point, until it is
        done: a live message brought in meanwhile moves the mapping's `inbound_seen_at`
        past the gap, so a later catch-up would never read it. Only a refusal ends it: the
        channel gone, the bot removed, the integration's token revoked."""
        provider = self._connections.provider(integration)
        channel = doc["external_channel_id"]
        since = (doc.get("inbound_seen_at") or doc["created_at"]) - MARGIN
        failures = 0
        while True:
            try:
                changes = await self._connections.call(
                    integration.id,
                    lambda token: provider.history(token, channel, since, self._max),
                )
                recovered = await self._inbound.recovered(
                    integration, mapping_snapshot(doc), changes
                )
                break
            except RateLimited as exc:
                await asyncio.sleep(exc.retry_after)
            except (PermanentError, NotConnected) as exc:  # no retry cures these
                log.warning("catch_up_refused", mapping_id=doc["_id"], error=exc.message)
                return 0
            except Exception as exc:
                if _cancelling():  # a cancel turned into an error on the way: end, not retry
                    raise
                pause = min(2.0**failures, MAX_PAUSE_SECONDS)
                failures += 1
                log.warning(
                    "catch_up_retrying", mapping_id=doc["_id"], error=repr(exc), retry_in=pause
                )
                self._metrics.catch_up_failures.labels(provider.name).inc()
                await asyncio.sleep(pause)
        created = sum(1 for change in changes if change.kind == "created" and not change.ignored)
        self._metrics.caught_up.labels(provider.name, "recovered").inc(recovered)
        self._metrics.caught_up.labels(provider.name, "known").inc(max(0, created - recovered))
        return recovered


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
