"""The oauth service's background work: tokens refreshed ahead of expiry (integrations' and
chat users' oauth account links'), revocations retried.

Every replica runs it; the refresh lease (shared.domain.oauth.tokens) and the revocation claim
(services/oauth/revocations) make sure each piece of work is done by one of them.
"""

from __future__ import annotations

import asyncio

import structlog

from services.oauth.revocations.service import Revoker
from shared.domain.account_links import LinkTokens
from shared.domain.integrations.repository import IntegrationRepository
from shared.domain.oauth.tokens import LinkTokenKeeper, TokenKeeper
from shared.kernel.ids import utcnow

log = structlog.get_logger(__name__)

_BATCH = 100
_CONCURRENT_REFRESHES = 8


class Maintenance:
    def __init__(
        self,
        integrations: IntegrationRepository,
        keeper: TokenKeeper,
        revoker: Revoker,
        poll_seconds: float,
        *,
        links: LinkTokens | None = None,
        link_keeper: LinkTokenKeeper | None = None,
    ) -> None:
        self._integrations = integrations
        self._keeper = keeper
        self._revoker = revoker
        self._poll_seconds = poll_seconds
        self._links = links
        self._link_keeper = link_keeper

    async def run(self) -> None:
        while True:
            await self.once()
            await asyncio.sleep(self._poll_seconds)

    async def once(self) -> None:
        try:
            await self.refresh_due()
            await self.retry_revocations()
        except Exception as exc:  # the database may be away; the next pass tries again
            log.warning("oauth_maintenance_failed", error=repr(exc))

    async def refresh_due(self) -> None:
        now = utcnow()
        due = [(self._keeper, i) for i in await self._integrations.due_for_refresh(now, _BATCH)]
        if self._links is not None and self._link_keeper is not None:
            due += [(self._link_keeper, i) for i in await self._links.due_for_refresh(now, _BATCH)]
        slots = asyncio.Semaphore(_CONCURRENT_REFRESHES)

        async def refresh(keeper: TokenKeeper, doc_id: str) -> None:
            async with slots:
                await keeper.refresh_if_due(doc_id)

        await asyncio.gather(*(refresh(k, i) for k, i in due))

    async def retry_revocations(self) -> int:
        return await self._revoker.retry_due()
