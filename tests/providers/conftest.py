"""The fake Discord on loopback, one per module, for the Discord provider's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.discord import FakeDiscord
from tests.support import serve


@pytest.fixture(scope="module")
async def discord() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord()
    async with serve(fake.app(), probe="/healthz") as running:
        fake.base_url = running.base_url
        yield fake
