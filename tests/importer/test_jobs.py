"""Jobs under a lease: progress while running, cancel within seconds and resume, and an
importer killed with SIGKILL mid-job whose job another replica finishes from the checkpoint
with nothing lost (duplicates only with the same ids).

A job that must still be running when the test acts on it is held there by construction
(a source that stops until the test releases it, a fake page answered only when released,
a Retry-After longer than the test), never by being big enough for the machine's speed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.sandbox.discord import GET_CHANNEL_MESSAGES
from services.sandbox.slack import history_message
from shared.domain.message_map import inbound_message_id
from shared.providers.exports import ExportReader
from shared.providers.history import Conversation, HistoryRecord
from shared.providers.networks import Source
from shared.providers.slack.export import SlackExport
from tests.importer.conftest import Imports
from tests.importer.test_api import start
from tests.slack_export import generate
from tests.support import admin_headers

HISTORY = "conversations.history"
# SPEC §9: "cancel stops it within seconds"; the tests' importer renews every 0.5 s, so a
# cancel is heard in about that. The bound is loose so that a loaded machine cannot fail it;
# the Retry-After the rate-limited tests cancel during (RETRY_AFTER) is far longer, so they
# still show that a cancel does not wait one out.
CANCEL_SECONDS = 30.0
RETRY_AFTER = 120


def expected(path: Path, channel_prefix: str) -> tuple[dict[str, str], set[str]]:
    """The channel map sending every conversation to a chat channel of its own, and the
    envelope ids the import must publish (read with the export reader)."""
    with SlackExport.open(path) as export:
        channel_map = {c.id: f"{channel_prefix}{c.id}" for c in export.conversations}
        return channel_map, expected_ids(export, export.team_id or "export")


def expected_ids(export: ExportReader, account: str) -> set[str]:
    """The envelope ids an import of the export publishes, with this account in them."""
    return {
        inbound_message_id(export.provider, account, c.id, r.change.external_message_id)
        for c in export.conversations
        for r in export.records(c)
        if r.change is not None and not r.change.ignored
    }


class HeldSource:
    """A job's source whose records stop after the first `after` until `released` is set:
    the job is running, part-way, for as long as the test wants."""

    def __init__(self, inner: Source, after: int, released: asyncio.Event) -> None:
        self._inner = inner
        self._after = after
        self._released = released
        self.given = 0
        self.reached = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def records(
        self, conversation: Conversation, after: dict[str, Any] | None
    ) -> AsyncIterator[HistoryRecord]:
        async with contextlib.aclosing(self._inner.records(conversation, after)) as records:  # type: ignore[type-var]
            async for record in records:
                if self.given >= self._after and not self._released.is_set():
                    self.reached.set()
                    await self._released.wait()
                self.given += 1
                yield record


def held_sources(
    imports: Imports, monkeypatch: pytest.MonkeyPatch, after: int, released: asyncio.Event
) -> list[HeldSource]:
    """Every source the in-process importer opens from now on, held after `after` records
    until `released` (appended as they are opened)."""
    held: list[HeldSource] = []
    service = imports.service
    assert service is not None
    opened = service._source

    async def held_source(*args: Any) -> Source:
        held.append(HeldSource(await opened(*args), after, released))
        return held[-1]

    monkeypatch.setattr(service, "_source", held_source)
    return held


async def cancel_heard(imports: Imports, job_id: str) -> dict[str, Any]:
    """The job cancelled through the API, and `cancelled` within the promised seconds."""
    answer = await imports.api.post(f"/api/imports/{job_id}/cancel", headers=admin_headers())
    assert answer.status_code == 202, answer.text
    return await imports.until(job_id, "cancelled", timeout=CANCEL_SECONDS)


async def test_a_running_import_reports_progress_is_cancelled_within_seconds_and_resumes(
    imports: Imports, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "export.zip"
    generate(path, 3_000, 4)
    prefix = imports.world.new_id("ch_") + "_"
    channel_map, ids = expected(path, prefix)
    # The export's records stop after 1,000 until released: the job cannot end before.
    released = asyncio.Event()
    held = held_sources(imports, monkeypatch, 1_000, released)
    answer = await imports.upload(path, channel_map=channel_map)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]

    deadline = time.monotonic() + 60
    while True:
        job = await imports.job(job_id)
        if job["progress"]["messages_imported"] > 0:
            break
        assert job["status"] in ("queued", "running"), job
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.1)
    assert job["status"] == "running"
    assert 0 < job["progress"]["percent"] < 100
    assert job["progress"]["eta_seconds"] > 0  # the time left, from the pace so far
    await asyncio.wait_for(held[0].reached.wait(), 60)

    cancelled = await cancel_heard(imports, job_id)
    assert cancelled["progress"]["percent"] < 100
    assert held[0].given == 1_000  # nothing read past the hold
    again = await imports.api.post(f"/api/imports/{job_id}/cancel", headers=admin_headers())
    assert again.status_code == 409

    released.set()
    resumed = await imports.api.post(f"/api/imports/{job_id}/resume", headers=admin_headers())
    assert resumed.status_code == 202, resumed.text
    done = await imports.until(job_id, "completed", "failed", timeout=120)
    assert done["status"] == "completed", done
    await all_arrived(imports, set(channel_map.values()), ids)
    assert (
        await imports.api.post(f"/api/imports/{job_id}/resume", headers=admin_headers())
    ).status_code == 409


async def test_a_slack_import_waiting_for_a_page_is_cancelled_and_asks_for_no_other(
    imports: Imports,
) -> None:
    world = imports.world
    external, channel = world.slack_channel(), world.new_id("ch_")
    base = 1709251200
    world.slack.add_history(
        external, [history_message(f"{base + n}.000100", "U0IMPA", f"m{n}") for n in range(450)]
    )
    held = world.slack.hold(HISTORY, external, after=1)  # page 1 answered, page 2 held
    job = await start(
        imports, world.slack_integration, channel_ids=[external], channel_map={external: channel}
    )
    await asyncio.wait_for(held.reached.wait(), 60)
    asked = len(world.slack.calls_of(HISTORY))
    try:
        cancelled = await cancel_heard(imports, job["id"])
    finally:
        held.release()
    assert len(world.slack.calls_of(HISTORY)) == asked, "a page was asked for after the cancel"
    assert cancelled["progress"]["percent"] < 100

    # What page 1 brought stays; resumed, the job reads the rest.
    resumed = await imports.api.post(f"/api/imports/{job['id']}/resume", headers=admin_headers())
    assert resumed.status_code == 202, resumed.text
    done = await imports.until(job["id"], "completed", "failed", timeout=60)
    assert done["status"] == "completed", done
    got = {e["id"] for e in await imports.inbox.of_channel(channel, 450)}
    assert len(got) == 450


async def all_arrived(imports: Imports, channels: set[str], ids: set[str]) -> list[str]:
    """Every expected id arrived (and no other); the ids published, duplicates included."""
    deadline = time.monotonic() + 60
    while True:
        await imports.inbox.poll()
        published = [e["id"] for e in imports.inbox.envelopes if e["channel_id"] in channels]
        if set(published) >= ids or time.monotonic() > deadline:
            break
    assert ids - set(published) == set(), f"{len(ids - set(published))} messages lost"
    assert set(published) - ids == set()
    return published


# Last in the module: the Retry-Afters below hold these providers' later calls of the same
# methods in this importer for a while after the tests end.


async def test_a_slack_import_waiting_out_a_retry_after_is_cancelled_within_seconds(
    imports: Imports,
) -> None:
    world = imports.world
    external, channel = world.slack_channel(), world.new_id("ch_")
    world.slack.add_history(external, [history_message("1709251200.000100", "U0IMPA", "m")])
    limited = world.slack.limited
    # Longer than the cancel may take: the pacer waits it out after the 429.
    world.slack.rate_limit(HISTORY, external, retry_after=RETRY_AFTER)
    job = await start(
        imports, world.slack_integration, channel_ids=[external], channel_map={external: channel}
    )
    deadline = time.monotonic() + 60
    while world.slack.limited == limited:
        assert time.monotonic() < deadline, "the import never asked for the channel's history"
        await asyncio.sleep(0.05)
    asked = len(world.slack.calls_of(HISTORY))
    await cancel_heard(imports, job["id"])
    assert len(world.slack.calls_of(HISTORY)) == asked, "a page was asked for after the cancel"


async def test_a_discord_import_waiting_out_a_retry_after_is_cancelled_within_seconds(
    imports: Imports,
) -> None:
    world, discord = imports.world, imports.world.discord
    external, channel = world.discord_channel(), world.new_id("ch_")
    discord.add_user("1300000000000000001", "grace", global_name="Grace")
    discord.post_silently(external, "1300000000000000001", "m")
    limited = discord.rate_limited
    discord.rate_limit_next(1, route=GET_CHANNEL_MESSAGES, major=external, retry_after=RETRY_AFTER)
    job = await start(
        imports, world.discord_integration, channel_ids=[external], channel_map={external: channel}
    )
    deadline = time.monotonic() + 60
    while discord.rate_limited == limited:
        assert time.monotonic() < deadline, "the import never asked for the channel's messages"
        await asyncio.sleep(0.05)
    asked = len(discord.sent(GET_CHANNEL_MESSAGES))
    await cancel_heard(imports, job["id"])
    assert len(discord.sent(GET_CHANNEL_MESSAGES)) == asked, "a page was asked for after the cancel"
