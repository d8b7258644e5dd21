"""Imports between real services: the sync world (gateway, oauth, sync, the fakes of Slack,
Telegram and Discord) plus an importer, on the session's broker and database. The chat
product is played by the tests: it reads `hookhub.chat.inbound`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from services.importer.app import definition as importer_definition
from services.importer.service import ImportService
from shared.domain.platform import create_app
from shared.kernel.envelopes import Topic
from shared.kernel.http.tls import tls
from shared.kernel.settings import ImporterSettings
from tests.infra import Infra
from tests.support import KafkaTap, admin_headers, serve
from tests.sync.conftest import World, build_world

# What an importer of the tests runs with (and `hookhub serve importer` reads).
IMPORTER_ENV = {
    "HOOKHUB_IMPORT_LEASE_SECONDS": "3",
    "HOOKHUB_IMPORT_POLL_SECONDS": "0.2",
    "HOOKHUB_IMPORT_PROGRESS_SECONDS": "0.5",
    "HOOKHUB_IMPORT_BATCH_SIZE": "200",
    "HOOKHUB_IMPORT_MAX_UPLOAD_BYTES": str(8 * 2**20),
}


def importer_settings(world: World, **overrides: Any) -> ImporterSettings:
    base = world.sync_settings.model_dump()
    values = {k: v for k, v in base.items() if k in ImporterSettings.model_fields}
    values.update({k.removeprefix("HOOKHUB_").lower(): v for k, v in IMPORTER_ENV.items()})
    values.update(overrides)
    return ImporterSettings.model_validate(values)


def importer_env(world: World) -> dict[str, str]:
    s = world.sync_settings
    return {
        **IMPORTER_ENV,
        "HOOKHUB_SLACK_API_BASE": s.slack_api_base,
        "HOOKHUB_TELEGRAM_API_BASE": s.telegram_api_base,
        "HOOKHUB_DISCORD_API_BASE": s.discord_api_base,
    }


@dataclass
class Inbox:
    """What the chat product received on `hookhub.chat.inbound`, parsed once."""

    tap: KafkaTap
    envelopes: list[dict[str, Any]] = field(default_factory=list)

    async def poll(self) -> None:
        for record in await self.tap.poll(0.2):
            self.envelopes.append(orjson.loads(record.value))

    async def of_channel(
        self, channel_id: str, count: int, timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        """At least `count` envelopes of the channel (all of them, once that many came)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.envelopes if e["channel_id"] == channel_id]
            if len(found) >= count or time.monotonic() > deadline:
                assert len(found) >= count, f"{len(found)} of {count} envelopes arrived"
                return found
            await self.poll()

    async def settle(self, seconds: float = 1.0) -> None:
        """Read what else arrives for `seconds` (to see that nothing more does)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await self.poll()


@dataclass
class Imports:
    world: World
    api: httpx.AsyncClient
    inbox: Inbox
    events: KafkaTap
    # The in-process importer's service (None when the tests start importer processes).
    service: ImportService | None = None

    async def upload(
        self,
        path: Path,
        *,
        channel_map: dict[str, str] | None = None,
        dry_run: bool | None = None,
        workspace_id: str | None = None,
        api: httpx.AsyncClient | None = None,
    ) -> httpx.Response:
        data = {"workspace_id": workspace_id or self.world.chat.workspace_id}
        if channel_map is not None:
            data["channel_map"] = orjson.dumps(channel_map).decode()
        if dry_run is not None:
            data["dry_run"] = "true" if dry_run else "false"
        with path.open("rb") as file:
            return await (api or self.api).post(
                "/api/imports",
                data=data,
                files={"file": (path.name, file, "application/zip")},
                headers=admin_headers(),
            )

    async def job(self, job_id: str, api: httpx.AsyncClient | None = None) -> dict[str, Any]:
        answer = await (api or self.api).get(f"/api/imports/{job_id}", headers=admin_headers())
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    async def until(
        self,
        job_id: str,
        *statuses: str,
        timeout: float = 60.0,
        api: httpx.AsyncClient | None = None,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = await self.job(job_id, api)
            if job["status"] in statuses:
                return job
            assert time.monotonic() < deadline, f"job is {job['status']}, not {statuses}: {job}"
            await asyncio.sleep(0.1)

    async def count(self) -> int:
        answer = await self.api.get("/api/imports?limit=200", headers=admin_headers())
        assert answer.status_code == 200, answer.text
        return len(answer.json()["data"])


@pytest.fixture(scope="module")
async def imports(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Imports]:
    async with build_imports(infra, tmp_path_factory.mktemp("import"), in_process=True) as built:
        yield built


@pytest.fixture(scope="module")
async def bare_imports(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Imports]:
    """No importer of its own: the tests start `hookhub serve importer` processes."""
    async with build_imports(infra, tmp_path_factory.mktemp("import"), in_process=False) as built:
        yield built


@contextlib.asynccontextmanager
async def build_imports(
    infra: Infra, data_dir: Path, *, in_process: bool
) -> AsyncIterator[Imports]:
    async with build_world(infra, data_dir, with_sync=True) as world:
        settings = importer_settings(world)
        async with contextlib.AsyncExitStack() as stack:
            service = None
            if in_process:
                app = create_app(importer_definition(), settings)
                api = (await stack.enter_async_context(serve(app))).client
                service = app.state.import_service
            else:
                api = await stack.enter_async_context(
                    httpx.AsyncClient(verify=tls(), base_url="http://127.0.0.1:9", timeout=30)
                )
            tap = await stack.enter_async_context(KafkaTap.of(settings, Topic.CHAT_INBOUND))
            events = await stack.enter_async_context(
                KafkaTap.of(settings, Topic.INTEGRATION_EVENTS)
            )
            yield Imports(world, api, Inbox(tap), events, service)
