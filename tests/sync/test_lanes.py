"""Lanes on their own: per-channel order and pacing, a limited channel waiting alone."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import cast

from services.sync.outbound.jobs import Job
from services.sync.outbound.lanes import Lanes
from services.sync.outbound.sender import Retry, Sender
from shared.providers.chat import RateLimited
from tests.support import until

JOB = Job(
    id="",
    seq=0,
    op="post",
    mapping_id="",
    integration_id="int_1",
    provider="slack",
    external_channel_id="C1",
    workspace_id="ws",
    channel_id="ch",
    message_id="m",
    thread_id=None,
    text="",
    author_name="Ada",
    author_avatar_url=None,
    attachments=(),
    queued_at=datetime.now(UTC),
)


class Recorder:
    """Stands in for the Sender: records when each job ran; scripted failures; `hold` keeps
    a job's call in flight until released."""

    def __init__(self, failures: dict[str, list[Exception]] | None = None) -> None:
        self.ran: list[tuple[str, float]] = []
        self._failures = failures or {}
        self.hold: dict[str, asyncio.Event] = {}

    async def run(self, job: Job) -> None:
        self.ran.append((job.id, time.monotonic()))
        if job.id in self.hold:
            await self.hold[job.id].wait()
        script = self._failures.get(job.id)
        if script:
            raise script.pop(0)

    async def recorded(self) -> None:
        return None


def _job(mapping_id: str, seq: int) -> Job:
    return replace(JOB, id=f"{mapping_id}-{seq}", seq=seq, mapping_id=mapping_id)


async def _drain(lanes: Lanes, count: int, recorder: Recorder) -> None:
    async with asyncio.timeout(30):
        while len({job for job, _ in recorder.ran}) < count:
            await asyncio.sleep(0.01)


async def test_each_channel_is_paced_and_ordered_on_its_own() -> None:
    recorder = Recorder()
    lanes = Lanes(cast(Sender, recorder), lambda job: 0.2, max_backoff_seconds=1)
    for seq in (3, 1, 2):  # out of order: a dead process's jobs come back late
        lanes.submit(_job("a", seq))
    lanes.submit(_job("b", 1))
    lanes.submit(_job("a", 1))  # held already: not run twice
    await _drain(lanes, 4, recorder)
    order = [job for job, _ in recorder.ran]
    assert [job for job in order if job.startswith("a")] == ["a-1", "a-2", "a-3"]
    when = dict(recorder.ran)
    assert when["b-1"] < when["a-2"]  # not behind channel a's pace
    assert when["a-2"] - when["a-1"] >= 0.19 and when["a-3"] - when["a-2"] >= 0.19
    await lanes.stop(1)


async def test_a_rate_limited_channel_waits_alone_and_passing_failures_back_off() -> None:
    failures: dict[str, list[Exception]] = {
        "a-1": [RateLimited("slow down", retry_after=0.5)],
        "b-1": [Retry("unreachable"), Retry("unreachable")],
    }
    recorder = Recorder(failures)
    lanes = Lanes(cast(Sender, recorder), lambda job: 0.0, max_backoff_seconds=0.3)
    started = time.monotonic()
    lanes.submit(_job("a", 1))
    lanes.submit(_job("a", 2))
    lanes.submit(_job("b", 1))
    lanes.submit(_job("c", 1))
    await _drain(lanes, 4, recorder)
    # Every run and retry done (a-1 twice, b-1 three times), and nothing left to run.
    await until(lambda: len(recorder.ran) >= 7 and not lanes.depth(), what="the retries")
    runs: dict[str, list[float]] = {}
    for job, at in recorder.ran:
        runs.setdefault(job, []).append(at - started)
    assert runs["c-1"][0] < runs["a-1"][1] and runs["c-1"][0] < runs["b-1"][1]
    assert len(runs["a-1"]) == 2 and runs["a-1"][1] >= 0.5  # Retry-After waited out
    assert runs["a-2"][0] >= runs["a-1"][1]  # and the order kept behind it
    assert len(runs["b-1"]) == 3  # backed off twice (the 0.3 s cap), then done
    assert runs["b-1"][1] - runs["b-1"][0] >= 0.29 and runs["b-1"][2] - runs["b-1"][1] >= 0.29
    assert not lanes.depth()
    await lanes.stop(1)


async def test_a_job_taken_over_while_another_is_in_flight_runs_once_each() -> None:
    recorder = Recorder()
    recorder.hold["a-5"] = asyncio.Event()
    lanes = Lanes(cast(Sender, recorder), lambda job: 0.0, max_backoff_seconds=1)
    lanes.submit(_job("a", 5))
    await until(lambda: lanes.in_flight(), what="a-5 in flight")  # held there
    lanes.submit(_job("a", 2))  # an older job, from a dead process
    assert lanes.depth()["slack"][0] == 2
    recorder.hold["a-5"].set()
    await _drain(lanes, 2, recorder)
    await until(lambda: not lanes.depth(), what="the lane empty")  # nothing more to run
    assert [job for job, _ in recorder.ran] == ["a-5", "a-2"]
    await lanes.stop(1)


async def test_the_pace_holds_for_a_message_arriving_after_its_lane_ran_dry() -> None:
    recorder = Recorder()
    lanes = Lanes(cast(Sender, recorder), lambda job: 0.5, max_backoff_seconds=1)
    lanes.submit(_job("a", 1))
    await _drain(lanes, 1, recorder)
    await until(lambda: not lanes.depth(), what="the lane gone")  # nothing left in it
    lanes.submit(_job("a", 2))
    await _drain(lanes, 2, recorder)
    when = dict(recorder.ran)
    assert when["a-2"] - when["a-1"] >= 0.49
    await lanes.stop(1)
