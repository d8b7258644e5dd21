"""The fakes on loopback, one per module, for the provider tests: Discord, Teams, and Slack
with a SlackApi on it; the REST APIs acted on from the channel (PagerDuty, Opsgenie), and a
plain client to act with."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from services.sandbox import FakeOpsgenie, FakePagerDuty
from services.sandbox.discord import FakeDiscord
from services.sandbox.slack import FakeSlack
from services.sandbox.teams import FakeTeams
from shared.kernel.http.tls import tls
from shared.providers.slack.api import SlackApi
from tests.support import served


@pytest.fixture(scope="module")
async def discord() -> AsyncIterator[FakeDiscord]:
    async with served(FakeDiscord()) as fake:
        yield fake


@pytest.fixture(scope="module")
async def slack() -> AsyncIterator[FakeSlack]:
    async with served(FakeSlack()) as fake:
        yield fake


@pytest.fixture(scope="module")
async def api(slack: FakeSlack) -> AsyncIterator[SlackApi]:
    async with httpx.AsyncClient(verify=tls(), timeout=10.0) as client:
        yield SlackApi(client, slack.base_url + "/api")


@pytest.fixture(scope="module")
async def teams() -> AsyncIterator[FakeTeams]:
    async with served(FakeTeams()) as fake:
        yield fake


@pytest.fixture(scope="module")
async def pagerduty_api() -> AsyncIterator[FakePagerDuty]:
    async with served(FakePagerDuty()) as fake:
        yield fake


@pytest.fixture(scope="module")
async def opsgenie_api() -> AsyncIterator[FakeOpsgenie]:
    async with served(FakeOpsgenie()) as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A plain client, as the one a provider's acting is given."""
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client
