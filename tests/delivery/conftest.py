"""A delivery service and a webhook sink on loopback, against the session's broker and database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.delivery.app import definition
from shared.domain.platform import create_app
from shared.kernel.settings import DeliverySettings
from tests.infra import Infra
from tests.support import RunningService, make_settings, new_namespace, serve
from tests.webhook_sink import WebhookSink


def settings_for(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory, **overrides: Any
) -> DeliverySettings:
    """A module's delivery service: its own namespace, loopback reachable, quick polls."""
    return make_settings(
        DeliverySettings,
        infra,
        new_namespace(),
        tmp_path_factory.mktemp("delivery"),
        **{
            "egress_allow_cidrs": "127.0.0.0/8",
            "scheduler_poll_seconds": 0.2,
            "lease_seconds": 10,
            **overrides,
        },
    )


@pytest.fixture(scope="module")
def delivery_settings(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> DeliverySettings:
    return settings_for(infra, tmp_path_factory)


@pytest.fixture(scope="module")
async def delivery(delivery_settings: DeliverySettings) -> AsyncIterator[RunningService]:
    async with serve(create_app(definition(), delivery_settings)) as running:
        yield running


@pytest.fixture(scope="module")
async def sink() -> AsyncIterator[tuple[WebhookSink, str]]:
    fake = WebhookSink()
    async with serve(fake.app(), probe="/healthz") as running:
        yield fake, running.base_url
