"""Session-wide fixtures: one real broker and database server for the whole run."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.sandbox.telegram import FakeTelegram
from shared.kernel.mongo import Database
from tests.infra import Infra, provide_infra
from tests.support import new_namespace, serve

# The suite's tracing is its own (no exporter; the tests that read spans set up theirs):
# a developer's OTEL_* variables (an exporter, OTEL_SDK_DISABLED) would change what the
# services do under test, and what the processes they start inherit.
for _name in [name for name in os.environ if name.startswith("OTEL_")]:
    del os.environ[_name]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`-n N` (`make test`): whole modules per worker, the slowest first (tests/parallel.py);
    another `--dist` chosen on the command line is xdist's own."""
    if config.getoption("dist") != "load":
        return None
    from tests.parallel import StackScheduling

    return StackScheduling(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Tells each worker that the controller schedules with StackScheduling: a worker's own
    `dist` option is "no" (xdist sets "load" for `-n` in the controller only), so it could
    not tell, and its collection would stay in file order."""
    if node.config.getoption("dist") == "load":
        node.workerinput["hookhub_stack_order"] = True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and workerinput.get("hookhub_stack_order"):
        from tests.parallel import in_queue_order

        items[:] = in_queue_order(items)


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


@pytest.fixture(scope="session", autouse=True)
async def _tasks_end_with_the_run() -> AsyncIterator[None]:
    """At the end of the run, every task still on the session's loop must end when
    cancelled: one that does not would hold the loop's close (and the run) until the
    timeout. Those are named here with where they wait, instead."""
    yield
    current = asyncio.current_task()
    left = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
    for task in left:
        task.cancel()
    if not left:
        return
    _, stuck = await asyncio.wait(left, timeout=10)
    if stuck:
        where = io.StringIO()
        for task in stuck:
            task.print_stack(limit=8, file=where)
        pytest.fail(f"{len(stuck)} tasks ignored cancellation:\n{where.getvalue()}")
