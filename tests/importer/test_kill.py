"""An importer stopped mid-job: killed with SIGKILL, another replica (here: a process
started after the kill) takes the job when its lease expires and finishes it from the
checkpoint, with nothing lost and duplicates only with the same ids; stopped with SIGTERM
(a scale-down), it hands the job back at once."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from services.sandbox.slack import TEAM_ID, Hold, history_message
from shared.domain.message_map import inbound_message_id
from shared.kernel.http.tls import tls
from tests.importer.conftest import Imports, importer_env
from tests.importer.test_jobs import HISTORY, all_arrived
from tests.support import ServiceProcess, admin_headers

PAGE = 200  # conversations.history's page at Slack's Tier 3
HELD_AT = 3  # the page the fake Slack holds: the two before it are imported


@dataclass
class MidImport:
    """A job a first importer process is running, held part-way by construction."""

    first: ServiceProcess
    job_id: str
    channel_map: dict[str, str]
    ids: set[str]
    env: dict[str, str]
    held: Hold
    others: list[ServiceProcess] = field(default_factory=list)

    async def another(self, imports: Imports, log: Path) -> ServiceProcess:
        """A second importer process, ready, answering `imports`' API calls; the held page
        is answered from now on."""
        self.held.release()
        process = ServiceProcess.start("importer", imports.world.sync_settings, log, **self.env)
        self.others.append(process)
        await process.ready()
        imports.api = httpx.AsyncClient(verify=tls(), base_url=process.base_url, timeout=30)
        return process


@asynccontextmanager
async def mid_import(
    imports: Imports, tmp_path: Path, pages: int, **env: str
) -> AsyncIterator[MidImport]:
    """A Slack API import of one channel of `pages` full pages, run by a first importer
    process and held by the fake Slack at page `HELD_AT`: the pages before it imported and
    checkpointed, the rest unread, for as long as the test needs (not for as long as the
    machine is slow enough). Every process ended on the way out."""
    world = imports.world
    external, channel = world.slack_channel(), world.new_id("ch_")
    messages = [
        history_message(f"{1709251200 + n}.000100", "U0KILL", f"m{n}") for n in range(pages * PAGE)
    ]
    world.slack.add_history(external, messages)
    ids = {inbound_message_id("slack", TEAM_ID, external, m["ts"]) for m in messages}
    held = world.slack.hold(HISTORY, external, after=HELD_AT - 1)
    env = {**importer_env(imports.world), **env}
    first = ServiceProcess.start("importer", world.sync_settings, tmp_path / "first.log", **env)
    state = MidImport(first, "", {external: channel}, ids, env, held)
    try:
        await first.ready()
        async with httpx.AsyncClient(verify=tls(), base_url=first.base_url, timeout=30) as api:
            answer = await api.post(
                f"/api/integrations/{world.slack_integration}/import",
                json={"channel_ids": [external], "channel_map": state.channel_map},
                headers=admin_headers(),
            )
            assert answer.status_code == 202, answer.text
            state.job_id = answer.json()["id"]
            await asyncio.wait_for(held.reached.wait(), 60)
            # Of the pages before the held one, a batch (200 here) at least is committed
            # (the rest may wait in the batch being filled); the job's heartbeat writes it.
            imported = PAGE
            deadline = asyncio.get_running_loop().time() + 30
            while True:
                job = await imports.job(state.job_id, api)
                if job["progress"]["messages_imported"] >= imported:
                    break
                assert job["status"] == "running", job
                assert asyncio.get_running_loop().time() < deadline, job["progress"]
                await asyncio.sleep(0.1)
        assert job["status"] == "running", job
        assert job["progress"]["messages_imported"] <= (HELD_AT - 1) * PAGE, job
        yield state
    finally:
        held.release()
        for process in (first, *state.others):
            if process.process.poll() is None:
                process.process.terminate()
                process.process.wait(15)


async def test_a_killed_importers_job_is_finished_by_another_from_its_checkpoint(
    bare_imports: Imports, tmp_path: Path
) -> None:
    imports = bare_imports
    async with mid_import(imports, tmp_path, pages=5) as job:
        job.first.process.send_signal(signal.SIGKILL)
        job.first.process.wait(10)
        await job.another(imports, tmp_path / "second.log")

        done = await imports.until(job.job_id, "completed", "failed", timeout=180)
        assert done["status"] == "completed", done
        assert done["attempts"] == 2
        published = await all_arrived(imports, set(job.channel_map.values()), job.ids)
        # The first importer, held at a page, had published at most the pages before it and
        # checkpointed a batch of them at least: redone, at most the rest.
        assert len(published) - len(job.ids) <= (HELD_AT - 1) * PAGE - PAGE


async def test_a_stopping_importer_hands_its_job_back_at_once(
    bare_imports: Imports, tmp_path: Path
) -> None:
    """SIGTERM (a scale-down) hands the running job back within the bounded stop, with its
    checkpoint: another replica takes it at once, not after the lease (a minute here)."""
    imports = bare_imports
    lease = {"HOOKHUB_IMPORT_LEASE_SECONDS": "60"}
    async with mid_import(imports, tmp_path, pages=5, **lease) as job:
        took = await job.first.stop()
        bound = imports.world.sync_settings.shutdown_seconds
        assert took < bound, f"stopped in {took:.1f} s"
        handed = [
            line for line in job.first.log_lines() if line.get("event") == "import_handed_back"
        ]
        assert handed, "the stopping importer did not hand its job back"

        await job.another(imports, tmp_path / "second.log")
        # Taken at once: well inside the 60 s lease the first replica held.
        deadline = asyncio.get_running_loop().time() + 20
        while (await imports.job(job.job_id))["attempts"] < 2:
            assert asyncio.get_running_loop().time() < deadline, "not taken over in 20 s"
            await asyncio.sleep(0.1)
        done = await imports.until(job.job_id, "completed", "failed", timeout=120)
        assert done["status"] == "completed", done
        await all_arrived(imports, set(job.channel_map.values()), job.ids)
