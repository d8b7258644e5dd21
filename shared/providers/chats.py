"""The chat networks' providers on one HTTP client, as sync and the importer use them
through `shared.providers.chat.ChatProvider`."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from httpx_aiohttp import AiohttpTransport

from shared.domain.integrations.model import IntegrationSnapshot
from shared.kernel import tracing
from shared.kernel.http.tls import limits, tls
from shared.kernel.settings import Settings
from shared.providers.catalog import NETWORKS
from shared.providers.chat import ChatProvider
from shared.providers.networks import AppValues


class _NoCookies(httpx.Cookies):
    """A jar that keeps nothing: the networks' APIs are called for many workspaces on one
    client, and a cookie one of them set must not travel with another's request. (httpx's
    jar also parsed every answer's headers through the standard library's cookie
    machinery: 7-9% of sync's CPU a post, py-spy, `make bench` sync-googlechat.)"""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class GatedClient(httpx.AsyncClient):
    """At most as many requests in flight as the pool has connections; the others wait
    here, for as long as it takes, not in the transport's pool, where httpx's pool timeout
    (aiohttp's `connect` timeout under httpx-aiohttp) would fail a request that only waited
    its turn behind a thousand lanes posting at once. (httpcore's pool, before, also matched
    every waiting request against every connection each time one freed up: 43% of the sync
    process's CPU, py-spy, `make bench` sync.)"""

    def __init__(self, in_flight: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._gate = asyncio.Semaphore(in_flight)
        self._cookies = _NoCookies()

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        async with self._gate:
            return await super().send(request, **kwargs)


def provider_client(max_connections: int, timeout_seconds: float) -> GatedClient:
    """httpx's interface on aiohttp's connection pool (httpx-aiohttp, by an httpx
    maintainer). httpcore's pool checks every connection it holds (is it readable, has it
    expired) each time a request is added or removed: with sync's 200 connections, most of
    them idle while their lanes wait for MongoDB, that was a third of the sync process's CPU
    (py-spy, `make bench` sync-mattermost); on aiohttp's pool a post costs a third of the
    CPU it did (docs/benchmarks.md, footnote 20)."""
    client = GatedClient(
        max_connections,
        timeout=timeout_seconds,
        transport=AiohttpTransport(verify=tls(), limits=limits(max_connections)),
    )
    tracing.instrument_client(client)
    return client


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
