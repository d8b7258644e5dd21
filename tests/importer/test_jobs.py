"""Jobs under a lease: progress while running, cancel within seconds and resume, and an
importer killed with SIGKILL mid-job whose job another replica finishes from the checkpoint
with nothing lost (duplicates only with the same ids)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from shared.message_map import inbound_message_id
from shared.providers.slack.export import SlackExport
from tests.fakes.slack_export import generate
from tests.importer.conftest import Imports
from tests.support import admin_headers


def expected(path: Path, channel_prefix: str) -> tuple[dict[str, str], set[str]]:
    """The channel map sending every conversation to a chat channel of its own, and the
    envelope ids the import must publish (read with the export reader)."""
    with SlackExport.open(path) as export:
        team = export.team_id or "export"
        channel_map = {c.id: f"{channel_prefix}{c.id}" for c in export.conversations}
        ids = {
            inbound_message_id("slack", team, c.id, r.change.external_message_id)
            for c in export.conversations
            for r in export.records(c)
            if r.change is not None and not r.change.ignored
        }
    return channel_map, ids


async def test_a_running_import_reports_progress_is_cancelled_within_seconds_and_resumes(
    imports: Imports, tmp_path: Path
) -> None:
    path = tmp_path / "big.zip"
    generate(path, 30_000, 12)
    prefix = imports.world.new_id("ch_") + "_"
    channel_map, ids = expected(path, prefix)
    answer = await imports.upload(path, channel_map=channel_map)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]

    seen: list[float] = []
    while True:
        job = await imports.job(job_id)
        if job["status"] == "running" and job["progress"]["messages_imported"] > 0:
            seen.append(job["progress"]["percent"])
        if len(seen) >= 2 and seen[-1] > seen[0] and seen[-1] >= 2:
            break  # progress moves while running
        assert job["status"] in ("queued", "running"), job
        await asyncio.sleep(0.2)
    assert 0 < seen[-1] < 100
    assert job["progress"]["eta_seconds"] > 0  # the time left, from the pace so far

    asked = time.monotonic()
    cancel = await imports.api.post(f"/api/imports/{job_id}/cancel", headers=admin_headers())
    assert cancel.status_code == 202, cancel.text
    cancelled = await imports.until(job_id, "cancelled", timeout=5.0)
    assert time.monotonic() - asked < 5.0
    assert cancelled["progress"]["percent"] < 100
    again = await imports.api.post(f"/api/imports/{job_id}/cancel", headers=admin_headers())
    assert again.status_code == 409

    resumed = await imports.api.post(f"/api/imports/{job_id}/resume", headers=admin_headers())
    assert resumed.status_code == 202, resumed.text
    done = await imports.until(job_id, "completed", "failed", timeout=120)
    assert done["status"] == "completed", done
    await all_arrived(imports, set(channel_map.values()), ids)
    assert (
        await imports.api.post(f"/api/imports/{job_id}/resume", headers=admin_headers())
    ).status_code == 409


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
