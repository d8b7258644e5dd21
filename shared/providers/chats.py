"""The chat networks' providers on one HTTP client, as sync and the importer use them
through `shared.providers.chat.ChatProvider`."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from shared.domain.integrations.model import IntegrationSnapshot
from shared.kernel.http.tls import limits, tls
from shared.kernel.settings import Settings
from shared.providers.catalog import NETWORKS
from shared.providers.chat import ChatProvider
from shared.providers.networks import AppValues


class GatedClient(httpx.AsyncClient):
    """At most as many requests in flight as the pool has connections; the others wait
    here. httpcore matches every waiting request against every connection each time one
    frees up: with a thousand lanes posting at once, that matching took 43% of the sync
    process's CPU (py-spy, `make bench` sync)."""

    def __init__(self, in_flight: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._gate = asyncio.Semaphore(in_flight)

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        async with self._gate:
            return await super().send(request, **kwargs)


def provider_client(max_connections: int, timeout_seconds: float) -> GatedClient:
    return GatedClient(
        max_connections,
        verify=tls(),
        timeout=timeout_seconds,
        limits=limits(max_connections),
    )


def chat_providers(
    settings: Settings, client: httpx.AsyncClient, app: AppValues
) -> dict[str, ChatProvider]:
    """Every network's provider; `app`: a network's app settings (Slack's history reads
    are paced to its app's `history_tier`)."""
    return {name: network.chat(settings, client, app) for name, network in NETWORKS.items()}


def network_credential(integration: IntegrationSnapshot) -> str | None:
    """The credential its network builds from the integration's settings, if it builds one
    (`Network.credential`)."""
    network = NETWORKS.get(integration.provider)
    return None if network is None else network.credential(integration)
