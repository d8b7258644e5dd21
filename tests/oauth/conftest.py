"""An oauth service on a real port, with every provider faked on loopback, one per module."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.oauth.app import definition
from services.sandbox import FAKES
from services.sandbox.oauth_server import FakeAuthorizationServer
from services.sandbox.telegram import FakeTelegram
from shared.domain.platform import create_app
from shared.kernel.envelopes import Topic
from shared.kernel.settings import ServiceSettings
from tests.infra import Infra
from tests.support import KafkaTap, RunningService, make_settings, new_namespace, serve


@pytest.fixture(scope="module")
async def providers() -> AsyncIterator[dict[str, FakeAuthorizationServer]]:
    fakes = {name: cls() for name, cls in FAKES.items()}
    async with contextlib.AsyncExitStack() as stack:
        for fake in fakes.values():
            running = await stack.enter_async_context(serve(fake.app(), probe="/healthz"))
            fake.base_url = running.base_url
        yield fakes


def provider_settings(providers: dict[str, FakeAuthorizationServer]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for fake in providers.values():
        values.update(fake.hookhub_settings(fake.base_url))
    return values


@pytest.fixture(scope="module")
def oauth_settings(
    infra: Infra,
    tmp_path_factory: pytest.TempPathFactory,
    providers: dict[str, FakeAuthorizationServer],
    telegram_api: tuple[FakeTelegram, str],
) -> ServiceSettings:
    return make_settings(
        ServiceSettings,
        infra,
        new_namespace(),
        tmp_path_factory.mktemp("oauth"),
        telegram_api_base=telegram_api[1],
        # The loop runs once at start; tests drive refreshes and retries themselves.
        oauth_poll_seconds=3600,
        **provider_settings(providers),
    )


@pytest.fixture(scope="module")
async def oauth(oauth_settings: ServiceSettings) -> AsyncIterator[RunningService]:
    async with serve(create_app(definition(), oauth_settings)) as running:
        yield running


@pytest.fixture
async def integration_events(
    oauth: RunningService, oauth_settings: ServiceSettings
) -> AsyncIterator[KafkaTap]:
    async with KafkaTap.of(oauth_settings, Topic.INTEGRATION_EVENTS) as tap:
        yield tap


@pytest.fixture
async def operational_events(
    oauth: RunningService, oauth_settings: ServiceSettings
) -> AsyncIterator[KafkaTap]:
    async with KafkaTap.of(oauth_settings, Topic.OPERATIONAL_EVENTS) as tap:
        yield tap
