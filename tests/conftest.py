"""Session-wide fixtures: one real broker and database server for the whole run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from shared.mongo import Database
from tests.fakes.telegram import FakeTelegram
from tests.infra import Infra, provide_infra
from tests.support import new_namespace, serve


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    with provide_infra() as provided:
        yield provided


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def db(infra: Infra) -> AsyncIterator[Database]:
    """A fresh database on the session's server, with the services' client options."""
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(infra.mongo_uri, tz_aware=True)
    name = f"hookhub_{new_namespace()}"
    yield client[name]
    await client.drop_database(name)
    await client.close()


@pytest.fixture(scope="module")
async def telegram_api() -> AsyncIterator[tuple[FakeTelegram, str]]:
    """The fake Telegram Bot API and its base URL (`HOOKHUB_TELEGRAM_API_BASE`)."""
    fake = FakeTelegram()
    async with serve(fake.app(), probe="/healthz") as running:
        yield fake, running.base_url
