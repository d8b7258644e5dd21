"""Mappings: created only for a channel the provider confirms the bot can see; read by the
sync pipelines from a per-replica cache, by chat channel (outbound) and by provider channel
(inbound)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from pymongo.errors import DuplicateKeyError

from services.sync.mappings.schemas import MappingCreate, MappingUpdate
from shared.domain.mappings import INBOUND, OUTBOUND, Address, MappingRepository, live_key
from shared.kernel.cache import RefreshingCache
from shared.kernel.errors import Conflict, Invalid, NotFound
from shared.kernel.ids import new_id, utcnow
from shared.kernel.mongo import Document
from shared.providers.chat import MessageChange, PermanentError
from shared.providers.connections import Connections

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class MappingSnapshot:
    id: str
    workspace_id: str
    integration_id: str
    provider: str
    external_channel_id: str
    channel_id: str
    direction: str
    enabled: bool
    # Its last attempt was refused for good (status `error`).
    failing: bool = False
    # Where the network's last verified event said to call the channel back (Teams'
    # serviceUrl), when, and the channel's team: `Inbound` keeps them (docs/sync.md).
    service_url: str | None = None
    service_url_at: datetime | None = None
    external_team_id: str | None = None

    @property
    def inbound(self) -> bool:
        return self.enabled and self.direction in INBOUND

    @property
    def outbound(self) -> bool:
        return self.enabled and self.direction in OUTBOUND


def snapshot(doc: Document) -> MappingSnapshot:
    return MappingSnapshot(
        id=doc["_id"],
        workspace_id=doc["workspace_id"],
        integration_id=doc["integration_id"],
        provider=doc["provider"],
        external_channel_id=doc["external_channel_id"],
        channel_id=doc["channel_id"],
        direction=doc["direction"],
        enabled=bool(doc.get("enabled", True)),
        failing=bool(doc.get("failing", False)),
        service_url=doc.get("service_url"),
        service_url_at=doc.get("service_url_at"),
        external_team_id=doc.get("external_team_id"),
    )


class MappingDirectory:
    """The cached mappings, looked up by chat channel and by provider channel."""

    def __init__(self, cache: RefreshingCache[str, MappingSnapshot]) -> None:
        self.cache = cache
        self._version = -1
        self._by_channel: dict[tuple[str, str], list[MappingSnapshot]] = {}
        self._by_external: dict[tuple[str, str], list[MappingSnapshot]] = {}
        # (provider, team or channel) → the newest serviceUrl kept, and when it was said;
        # (provider, channel) → its team.
        self._service_urls: dict[tuple[str, str], tuple[datetime, str]] = {}
        self._teams: dict[tuple[str, str], str] = {}

    def _index(self) -> None:
        if self._version == self.cache.version:
            return
        by_channel: dict[tuple[str, str], list[MappingSnapshot]] = defaultdict(list)
        by_external: dict[tuple[str, str], list[MappingSnapshot]] = defaultdict(list)
        service_urls: dict[tuple[str, str], tuple[datetime, str]] = {}
        teams: dict[tuple[str, str], str] = {}
        for mapping in self.cache.values():
            by_channel[(mapping.workspace_id, mapping.channel_id)].append(mapping)
            by_external[(mapping.integration_id, mapping.external_channel_id)].append(mapping)
            if mapping.service_url and mapping.service_url_at:
                team = mapping.external_team_id or mapping.external_channel_id
                teams[(mapping.provider, mapping.external_channel_id)] = team
                said = (mapping.service_url_at, mapping.service_url)
                service_urls[(mapping.provider, team)] = max(
                    said, service_urls.get((mapping.provider, team), said)
                )
        self._by_channel, self._by_external = dict(by_channel), dict(by_external)
        self._service_urls, self._teams = service_urls, teams
        self._version = self.cache.version

    def of_channel(self, workspace_id: str, channel_id: str) -> list[MappingSnapshot]:
        self._index()
        return self._by_channel.get((workspace_id, channel_id), [])

    def of_external(self, integration_id: str, external_channel_id: str) -> list[MappingSnapshot]:
        self._index()
        return self._by_external.get((integration_id, external_channel_id), [])

    def service_url(self, provider: str, external_channel_id: str) -> str | None:
        """The newest serviceUrl kept for the channel's team (a channel whose team is not
        known: its own, or, a Teams General channel being its team, its team's)."""
        self._index()
        team = self._teams.get((provider, external_channel_id), external_channel_id)
        kept = self._service_urls.get((provider, team))
        return kept[1] if kept else None

    def get(self, mapping_id: str) -> MappingSnapshot | None:
        return self.cache.get(mapping_id)

    def all(self) -> list[MappingSnapshot]:
        return self.cache.values()


class LastSynced:
    """When each mapping last synced a message, kept in memory and written every few
    seconds: at once for a mapping in error (so that its status turns `ok` promptly), at
    most once a minute for the others (a thousand busy channels are a thousand writes a
    minute, not a thousand every few seconds)."""

    def __init__(
        self,
        repository: MappingRepository,
        mappings: MappingDirectory,
        *,
        every_seconds: float = 60.0,
        poll_seconds: float = 2.0,
    ) -> None:
        self._repository = repository
        self._mappings = mappings
        self._every = every_seconds
        self._poll = poll_seconds
        self._pending: dict[str, datetime] = {}
        self._inbound: dict[str, datetime] = {}
        self._written: dict[str, float] = {}
        # Service URLs heard that the mapping does not hold yet: written at the next round.
        self._addresses: dict[str, Address] = {}

    def saw(self, mapping_id: str, at: datetime, inbound: datetime | None = None) -> None:
        """`inbound`: when the provider message that came in was written (the catch-up
        reads a channel's history from the latest of these)."""
        self._pending[mapping_id] = at
        if inbound is not None:
            known = self._inbound.get(mapping_id)
            self._inbound[mapping_id] = inbound if known is None else max(known, inbound)

    def addressed(self, mapping: MappingSnapshot, change: MessageChange) -> None:
        """A verified event said where to call its channel back (`change.service_url`):
        kept in the mapping when it holds another (rare: a message's worth of writes is
        one comparison), at the next round, not the minute's cadence (another replica's
        outbound reads it from its mapping cache)."""
        if not change.service_url or (
            mapping.service_url == change.service_url
            and mapping.external_team_id == change.external_team_id
        ):
            return
        pending = self._addresses.get(mapping.id)
        if pending is None or pending.at <= change.occurred_at:
            self._addresses[mapping.id] = Address(
                change.service_url, change.external_team_id, change.occurred_at
            )

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._poll)
            try:
                await self.write()
            except Exception as exc:  # kept for the next round
                log.warning("last_synced_write_failed", error=repr(exc))

    async def write(self, everything: bool = False) -> None:
        """What is due (`everything`: all that is pending, at a stop), and the service
        URLs heard."""
        if self._addresses:
            addresses, self._addresses = self._addresses, {}
            try:
                await self._repository.addressed(addresses)
            except BaseException:
                self._addresses = {**addresses, **self._addresses}
                raise
        now = time.monotonic()
        due = {}
        for mapping_id, at in self._pending.items():
            mapping = self._mappings.get(mapping_id)
            failing = mapping is not None and mapping.failing
            if everything or failing or now - self._written.get(mapping_id, -1e9) >= self._every:
                due[mapping_id] = at
        if not due:
            return
        seen = {m: self._inbound[m] for m in due if m in self._inbound}
        await self._repository.synced(due, seen)
        for mapping_id in due:
            self._pending.pop(mapping_id, None)
            self._inbound.pop(mapping_id, None)
            self._written[mapping_id] = now


def mapping_doc(
    *,
    workspace_id: str,
    integration_id: str,
    provider: str,
    external_channel_id: str,
    external_channel_name: str | None,
    body: MappingCreate,
) -> Document:
    """A new mapping as it is stored, of a channel the provider has confirmed."""
    now = utcnow()
    return {
        "_id": new_id("map"),
        "workspace_id": workspace_id,
        "integration_id": integration_id,
        "provider": provider,
        "external_channel_id": external_channel_id,
        "external_channel_name": external_channel_name,
        # One chat channel may have several mappings; one provider channel has one, so a
        # provider message is one chat message (with one envelope id) wherever it goes.
        "live_key": live_key(integration_id, external_channel_id),
        "channel_id": body.channel_id,
        "direction": body.direction,
        "enabled": body.enabled,
        "last_error": None,
        "error_count": 0,
        "failing": False,
        "last_synced_at": None,
        "created_at": now,
        "updated_at": now,
        "deleted_at": None,
    }


class ChannelNotUsable(Invalid):
    code = "channel_not_usable"


class MappingService:
    def __init__(
        self,
        repository: MappingRepository,
        connections: Connections,
        cache: RefreshingCache[str, MappingSnapshot],
    ) -> None:
        self._repository = repository
        self._connections = connections
        self._cache = cache

    async def get(self, integration_id: str, mapping_id: str) -> Document:
        doc = await self._repository.get(mapping_id)
        if doc is None or doc["integration_id"] != integration_id:
            raise NotFound(f"mapping {mapping_id} not found on integration {integration_id}")
        return doc

    async def create(self, integration_id: str, body: MappingCreate) -> Document:
        integration = await self._connections.integration(integration_id)
        provider = self._connections.provider(integration)
        if not self._connections.connected(integration):
            state = "disabled" if not integration.enabled else integration.status
            raise Conflict(
                f"integration {integration_id} is {state}: connect it before mapping channels",
                code="integration_not_connected",
            )
        try:
            channel = await self._connections.call(
                integration_id, lambda token: provider.channel(token, body.external_channel_id)
            )
        except PermanentError as exc:
            raise ChannelNotUsable(
                f"{integration.provider} will not let the bot use channel "
                f"{body.external_channel_id} ({exc.error}): {exc.message}"
            ) from exc
        # The provider's own id for the channel (a Telegram `@name` becomes its number,
        # which is how its updates name it).
        external_channel_id = channel.id or body.external_channel_id
        doc = mapping_doc(
            workspace_id=integration.workspace_id,
            integration_id=integration_id,
            provider=integration.provider,
            external_channel_id=external_channel_id,
            external_channel_name=channel.name,
            body=body,
        )
        try:
            await self._repository.insert(doc)
        except DuplicateKeyError as exc:
            same = await self._repository.of_external(integration_id, external_channel_id)
            raise Conflict(
                f"channel {external_channel_id} is mapped already"
                + (
                    f" (mapping {same['_id']}, to chat channel {same['channel_id']})"
                    if same
                    else ""
                )
                + "; a chat channel may have several mappings, a provider channel one",
                code="mapping_exists",
            ) from exc
        self._cache.apply(doc)
        return doc

    async def update(self, integration_id: str, mapping_id: str, body: MappingUpdate) -> Document:
        await self.get(integration_id, mapping_id)
        fields = body.model_dump(exclude_unset=True)
        if body.enabled:
            fields["failing"] = False  # enabled again: the next message tries afresh
        updated = await self._repository.update(mapping_id, fields)
        if updated is None:
            raise NotFound(f"mapping {mapping_id} not found on integration {integration_id}")
        self._cache.apply(updated)
        return updated

    async def delete(self, integration_id: str, mapping_id: str) -> None:
        await self.get(integration_id, mapping_id)
        deleted = await self._repository.remove(mapping_id)
        if deleted is not None:
            self._cache.apply(deleted)


def out(doc: Document) -> dict[str, Any]:
    failing = bool(doc.get("failing"))
    return {**doc, "id": doc["_id"], "status": "error" if failing else "ok"}
