"""An importer killed with SIGKILL mid-job: another replica (here: a process started after
the kill) takes the job when its lease expires and finishes it from the checkpoint, with
nothing lost and duplicates only with the same ids."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx

from tests.fakes.slack_export import generate
from tests.importer.conftest import Imports, importer_env
from tests.importer.test_jobs import all_arrived, expected
from tests.support import ServiceProcess


async def test_a_killed_importers_job_is_finished_by_another_from_its_checkpoint(
    bare_imports: Imports, tmp_path: Path
) -> None:
    imports = bare_imports
    path = tmp_path / "kill.zip"
    generate(path, 40_000, 16, seed=9)
    prefix = imports.world.new_id("ch_") + "_"
    channel_map, ids = expected(path, prefix)
    env = importer_env(imports.world)
    settings = imports.world.sync_settings
    first = ServiceProcess.start("importer", settings, tmp_path / "first.log", **env)
    second = None
    try:
        await first.ready()
        async with httpx.AsyncClient(base_url=first.base_url, timeout=30) as api:
            answer = await imports.upload(path, channel_map=channel_map, api=api)
            assert answer.status_code == 202, answer.text
            job_id = answer.json()["id"]
            while True:
                job = await imports.job(job_id, api)
                if job["progress"]["messages_imported"] >= 2_000:
                    break
                assert job["status"] in ("queued", "running"), job
                await asyncio.sleep(0.1)
        assert job["status"] == "running" and job["progress"]["percent"] < 100
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
        second = ServiceProcess.start("importer", settings, tmp_path / "second.log", **env)
        await second.ready()
        imports.api = httpx.AsyncClient(base_url=second.base_url, timeout=30)

        done = await imports.until(job_id, "completed", "failed", timeout=180)
        assert done["status"] == "completed", done
        assert done["attempts"] == 2
        published = await all_arrived(imports, set(channel_map.values()), ids)
        # Redone after the checkpoint, never more than a progress interval's worth.
        assert len(published) - len(ids) < 20_000
    finally:
        for process in (first, second):
            if process is not None and process.process.poll() is None:
                process.process.terminate()
                process.process.wait(15)


async def test_a_stopping_importer_hands_its_job_back_at_once(
    bare_imports: Imports, tmp_path: Path
) -> None:
    """SIGTERM (a scale-down) hands the running job back within the bounded stop, with its
    checkpoint: another replica takes it at once, not after the lease (a minute here)."""
    imports = bare_imports
    path = tmp_path / "stop.zip"
    generate(path, 20_000, 8, seed=11)
    prefix = imports.world.new_id("ch_") + "_"
    channel_map, ids = expected(path, prefix)
    env = {**importer_env(imports.world), "HOOKHUB_IMPORT_LEASE_SECONDS": "60"}
    settings = imports.world.sync_settings
    first = ServiceProcess.start("importer", settings, tmp_path / "first.log", **env)
    second = None
    try:
        await first.ready()
        async with httpx.AsyncClient(base_url=first.base_url, timeout=30) as api:
            answer = await imports.upload(path, channel_map=channel_map, api=api)
            assert answer.status_code == 202, answer.text
            job_id = answer.json()["id"]
            while (await imports.job(job_id, api))["progress"]["messages_imported"] < 1_000:
                await asyncio.sleep(0.1)
        took = await first.stop()
        assert took < settings.shutdown_seconds, f"stopped in {took:.1f} s"
        handed = [line for line in first.log_lines() if line.get("event") == "import_handed_back"]
        assert handed, "the stopping importer did not hand its job back"

        second = ServiceProcess.start("importer", settings, tmp_path / "second.log", **env)
        await second.ready()
        imports.api = httpx.AsyncClient(base_url=second.base_url, timeout=30)
        # Taken at once: well inside the 60 s lease the first replica held.
        deadline = asyncio.get_running_loop().time() + 20
        while (await imports.job(job_id))["attempts"] < 2:
            assert asyncio.get_running_loop().time() < deadline, "not taken over in 20 s"
            await asyncio.sleep(0.1)
        done = await imports.until(job_id, "completed", "failed", timeout=120)
        assert done["status"] == "completed", done
        await all_arrived(imports, set(channel_map.values()), ids)
    finally:
        for process in (first, second):
            if process is not None and process.process.poll() is None:
                process.process.terminate()
                process.process.wait(15)
