"""The fakes on loopback, one per module, for the provider tests: Discord, Teams, and Slack
with a SlackApi on it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from services.sandbox.discord import FakeDiscord
from services.sandbox.slack import FakeSlack
from services.sandbox.teams import FakeTeams
from shared.kernel.http.tls import tls
from shared.providers.slack.api import SlackApi
from tests.support import serve


@pytest.fixture(scope="module")
async def discord() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord()
    async with serve(fake.app(), probe="/healthz") as running:
        fake.base_url = running.base_url
        yield fake


@pytest.fixture(scope="module")
async def slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    async with serve(fake.app(), probe="/healthz") as running:
        fake.base_url = running.base_url
        yield fake


@pytest.fixture(scope="module")
async def api(slack: FakeSlack) -> AsyncIterator[SlackApi]:
    async with httpx.AsyncClient(verify=tls(), timeout=10.0) as client:
        yield SlackApi(client, slack.base_url + "/api")


@pytest.fixture(scope="module")
async def teams() -> AsyncIterator[FakeTeams]:
    fake = FakeTeams()
    async with serve(fake.app(), probe="/healthz") as running:
        fake.base_url = running.base_url
        yield fake
