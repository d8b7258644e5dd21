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

from tests.fakes.slack_export import generate
from tests.importer.conftest import Imports, importer_env
from tests.importer.test_jobs import all_arrived, expected
from tests.support import ServiceProcess


@dataclass
class MidImport:
    """A job a first importer process is running, part-way through."""

    first: ServiceProcess
    job_id: str
    channel_map: dict[str, str]
    ids: set[str]
    env: dict[str, str]
    others: list[ServiceProcess] = field(default_factory=list)

    async def another(self, imports: Imports, log: Path) -> ServiceProcess:
        """A second importer process, ready, answering `imports`' API calls."""
        process = ServiceProcess.start("importer", imports.world.sync_settings, log, **self.env)
        self.others.append(process)
        await process.ready()
        imports.api = httpx.AsyncClient(base_url=process.base_url, timeout=30)
        return process


@asynccontextmanager
async def mid_import(
    imports: Imports,
    tmp_path: Path,
    size: tuple[int, int, int],
    imported: int,
    **env: str,
) -> AsyncIterator[MidImport]:
    """An export of `size` (messages, channels, seed) uploaded to a first importer, which
    has imported at least `imported` messages of it; every process ended on the way out."""
    messages, channels, seed = size
    path = tmp_path / "export.zip"
    generate(path, messages, channels, seed=seed)
    prefix = imports.world.new_id("ch_") + "_"
    channel_map, ids = expected(path, prefix)
    env = {**importer_env(imports.world), **env}
    settings = imports.world.sync_settings
    first = ServiceProcess.start("importer", settings, tmp_path / "first.log", **env)
    state = MidImport(first, "", channel_map, ids, env)
    try:
        await first.ready()
        async with httpx.AsyncClient(base_url=first.base_url, timeout=30) as api:
            answer = await imports.upload(path, channel_map=channel_map, api=api)
            assert answer.status_code == 202, answer.text
            state.job_id = answer.json()["id"]
            while True:
                job = await imports.job(state.job_id, api)
                if job["progress"]["messages_imported"] >= imported:
                    break
                assert job["status"] in ("queued", "running"), job
                await asyncio.sleep(0.1)
        assert job["status"] == "running" and job["progress"]["percent"] < 100
        yield state
    finally:
        for process in (first, *state.others):
            if process.process.poll() is None:
                process.process.terminate()
                process.process.wait(15)


async def test_a_killed_importers_job_is_finished_by_another_from_its_checkpoint(
    bare_imports: Imports, tmp_path: Path
) -> None:
    imports = bare_imports
    async with mid_import(imports, tmp_path, (40_000, 16, 9), imported=2_000) as job:
        job.first.process.send_signal(signal.SIGKILL)
        job.first.process.wait(10)
        await job.another(imports, tmp_path / "second.log")

        done = await imports.until(job.job_id, "completed", "failed", timeout=180)
        assert done["status"] == "completed", done
        assert done["attempts"] == 2
        published = await all_arrived(imports, set(job.channel_map.values()), job.ids)
        # Redone after the checkpoint, never more than a progress interval's worth.
        assert len(published) - len(job.ids) < 20_000


async def test_a_stopping_importer_hands_its_job_back_at_once(
    bare_imports: Imports, tmp_path: Path
) -> None:
    """SIGTERM (a scale-down) hands the running job back within the bounded stop, with its
    checkpoint: another replica takes it at once, not after the lease (a minute here)."""
    imports = bare_imports
    lease = {"HOOKHUB_IMPORT_LEASE_SECONDS": "60"}
    async with mid_import(imports, tmp_path, (20_000, 8, 11), imported=1_000, **lease) as job:
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
