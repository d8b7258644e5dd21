"""The enabled subscriptions, cached and indexed for the notifications consumer: by
integration, and within one by the repository their `repositories` filter names exactly
(an event from a repository is matched against the few subscriptions that name it and
those that name none or use a glob, not against all of them)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.sync.subscriptions.filters import Filters, filters_of
from shared.kernel.cache import RefreshingCache
from shared.kernel.mongo import Document

_GLOB = frozenset("*?[")


@dataclass(frozen=True)
class SubscriptionSnapshot:
    id: str
    workspace_id: str
    integration_id: str
    provider: str
    channel_id: str
    threads: bool
    created_at: datetime
    filters: Filters
    # The subscription's template (SPEC §16), run by services.sync.notifications.templates.
    template: str | None = None
    # The lower-cased repositories of a `repositories` filter without globs, else None.
    exact_repositories: frozenset[str] | None = field(default=None)


def snapshot(doc: Document) -> SubscriptionSnapshot:
    created = doc["created_at"]
    if created.tzinfo is None:  # MongoDB gives naive UTC times back
        created = created.replace(tzinfo=UTC)
    filters = filters_of(doc)
    repositories = filters.repositories
    exact = None
    if repositories is not None and not any(_GLOB & set(r) for r in repositories):
        exact = frozenset(r.lower() for r in repositories)
    return SubscriptionSnapshot(
        id=doc["_id"],
        workspace_id=doc["workspace_id"],
        integration_id=doc["integration_id"],
        provider=doc["provider"],
        channel_id=doc["channel_id"],
        threads=doc.get("threads", "item") != "off",
        created_at=created,
        filters=filters,
        template=doc.get("template"),
        exact_repositories=exact,
    )


def _age(subscription: SubscriptionSnapshot) -> tuple[datetime, str]:
    return subscription.created_at, subscription.id


@dataclass
class _Integration:
    by_repository: dict[str, list[SubscriptionSnapshot]] = field(
        default_factory=lambda: defaultdict(list)
    )
    rest: list[SubscriptionSnapshot] = field(default_factory=list)
    every: list[SubscriptionSnapshot] = field(default_factory=list)


class SubscriptionDirectory:
    def __init__(self, cache: RefreshingCache[str, SubscriptionSnapshot]) -> None:
        self.cache = cache
        self._version = -1
        self._by_integration: dict[str, _Integration] = {}

    def _index(self) -> None:
        if self._version == self.cache.version:
            return
        index: dict[str, _Integration] = defaultdict(_Integration)
        for sub in sorted(self.cache.values(), key=_age):
            if not sub.filters.enabled:
                continue
            entry = index[sub.integration_id]
            entry.every.append(sub)
            if sub.exact_repositories is None:
                entry.rest.append(sub)
            else:
                for repository in sub.exact_repositories:
                    entry.by_repository[repository].append(sub)
        # A repository's list holds those naming it and those naming none, oldest first:
        # merged here once, not at every event.
        for entry in index.values():
            entry.by_repository = {
                repository: sorted([*named, *entry.rest], key=_age)
                for repository, named in entry.by_repository.items()
            }
        self._by_integration = dict(index)
        self._version = self.cache.version

    def has(self, integration_id: str) -> bool:
        """Whether an integration has an enabled subscription (if not, its events are not
        even rendered)."""
        self._index()
        return integration_id in self._by_integration

    def of(self, integration_id: str, repository: str | None) -> list[SubscriptionSnapshot]:
        """The enabled subscriptions of an integration that may take an event from
        `repository` (every one, for an event that names none), oldest first."""
        self._index()
        entry = self._by_integration.get(integration_id)
        if entry is None:
            return []
        if repository is None:
            return entry.every
        return entry.by_repository.get(repository.lower(), entry.rest)

    def apply(self, doc: Document) -> None:
        """A subscription as this replica just wrote it."""
        self.cache.apply(doc)

    async def covering(self, moment: datetime) -> None:
        await self.cache.covering(moment)
