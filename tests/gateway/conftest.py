"""A gateway on a real port, against the session's broker and database, one per module;
the single origin in front of it when a test asks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.edge import create_edge_app, edge_protocol
from services.gateway.app import definition
from shared.domain.platform import create_app
from shared.kernel.envelopes import Topic
from shared.kernel.settings import GatewaySettings
from tests.infra import Infra
from tests.support import KafkaTap, RunningService, make_settings, new_namespace, serve


@pytest.fixture(scope="module")
def gateway_settings(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> GatewaySettings:
    data_dir: Path = tmp_path_factory.mktemp("gateway")
    return make_settings(GatewaySettings, infra, new_namespace(), data_dir)


@pytest.fixture(scope="module")
async def gateway(gateway_settings: GatewaySettings) -> AsyncIterator[RunningService]:
    async with serve(create_app(definition(), gateway_settings)) as running:
        yield running


@pytest.fixture(scope="module")
async def edge(gateway: RunningService) -> AsyncIterator[RunningService]:
    """The single origin in front of the module's gateway, as users reach it."""
    app = create_edge_app({"gateway": gateway.base_url})
    async with serve(app, probe="/healthz", http=edge_protocol()) as running:
        yield running


@pytest.fixture
async def inbound(
    gateway: RunningService, gateway_settings: GatewaySettings
) -> AsyncIterator[KafkaTap]:
    async with KafkaTap.of(gateway_settings, Topic.CHAT_INBOUND) as tap:
        yield tap
