"""How sync's outbound jobs change hands, against the real MongoDB-protocol server: a
stopping process's outbox jobs (cleared when every outcome was written, as a stopped
worker's when not); jobs run unwritten (services.sync.outbound.unwritten): done at once,
written when they wait, recovered after a crash, left to their holder after a rebalance,
and a message published twice posted once."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from services.sync.mappings.service import MappingDirectory, MappingSnapshot
from services.sync.metrics import SyncMetrics
from services.sync.outbound.intake import Intake
from services.sync.outbound.jobs import Job
from services.sync.outbound.lanes import Lanes
from services.sync.outbound.repository import OUTBOX, PROGRESS, OutboxRepository
from services.sync.outbound.sender import Sender
from services.sync.outbound.unwritten import Unwritten
from shared.domain.message_map import COLLECTION as MAP
from shared.domain.message_map import Copy, MessageMap
from shared.kernel.envelopes import ChatEvent
from shared.kernel.ids import utcnow
from shared.kernel.mongo import BatchedWriter, Database
from shared.kernel.ownership import Ownership
from tests.support import counted, until

LEASE = timedelta(seconds=60)


async def test_jobs_whose_outcomes_the_stop_may_have_left_unwritten_are_taken_as_recovered(
    db: Database,
) -> None:
    """`wrote_all` wrote every outcome: its jobs are cleared and taken as due. `left_some`
    did not, so any of its jobs may have been posted: they stay its own, and whoever takes
    them over looks for the post before making it again."""
    outbox = OutboxRepository(db)
    stopping = {}
    for name in ("wrote_all", "left_some"):
        stopping[name] = Ownership(outbox.workers, outbox.jobs, LEASE, worker_id=name)
        await stopping[name].beat()
        held = {"lease_owner": name, "next_attempt_at": utcnow(), "status": "queued"}
        await outbox.jobs.insert_many([{"_id": f"{name}{n}", "seq": n, **held} for n in (0, 1)])
    assert await stopping["wrote_all"].release(1.0) == 2
    assert await stopping["left_some"].release(1.0, clear=False) == 0
    assert await outbox.jobs.count_documents({"lease_owner": "left_some"}) == 2

    following = Ownership(outbox.workers, outbox.jobs, LEASE, worker_id="next")
    taken = await outbox.claim("next", utcnow(), await following.dead(utcnow()), limit=10)
    assert {doc["_id"]: bool(doc.get("recovered")) for doc in taken} == {
        "wrote_all0": False,
        "wrote_all1": False,
        "left_some0": True,
        "left_some1": True,
    }


class _Held:
    """What the lanes need of a sender, each job held mid-call until the test releases it
    (or at once, `holding=False`); its outcome handed over as the sender does."""

    def __init__(self, unwritten: Unwritten, writer: BatchedWriter, *, holding: bool) -> None:
        self.unwritten, self.writer, self.holding = unwritten, writer, holding
        self.ran: list[Job] = []
        self.released = asyncio.Event()
        # Set: each outcome's write is held until it is cleared (`recorded` waits).
        self.unrecorded = asyncio.Event()
        self.recorded_for = 0

    async def run(self, job: Job) -> None:
        self.ran.append(job)
        if self.holding:
            await self.released.wait()
        self.unwritten.finish(job.id, {"status": "done", "lease_owner": None})

    async def recorded(self) -> None:
        self.recorded_for += 1
        while self.unrecorded.is_set():
            await asyncio.sleep(0.01)
        await self.writer.written()


MAPPING = MappingSnapshot(
    id="map_intake",
    workspace_id="ws_intake",
    integration_id="int_intake",
    provider="slack",
    external_channel_id="C1",
    channel_id="ch_intake",
    direction="both",
    enabled=True,
)


class _Channels:
    """The mapping directory's one question the intake asks: a channel's mappings."""

    def of_channel(self, workspace_id: str, channel_id: str) -> list[MappingSnapshot]:
        wanted = (MAPPING.workspace_id, MAPPING.channel_id)
        return [MAPPING] if (workspace_id, channel_id) == wanted else []


@dataclass
class _Process:
    """A sync process's outbound parts on `db`, its sender a `_Held`."""

    intake: Intake
    sent: _Held
    writer: BatchedWriter
    lanes: Lanes

    @classmethod
    async def start(
        cls,
        db: Database,
        worker: str,
        *,
        holding: bool = True,
        spill_seconds: float = 0.05,
        pace: float = 0.0,
        posts_once: bool = False,
        finds_own_posts: bool = False,
    ) -> _Process:
        outbox = OutboxRepository(db)
        ownership = Ownership(outbox.workers, outbox.jobs, LEASE, worker_id=worker)
        await ownership.beat()
        writer = BatchedWriter(db, interval=0.05)
        writer.start()
        metrics = SyncMetrics(CollectorRegistry())
        unwritten = Unwritten(writer, metrics)
        sent = _Held(unwritten, writer, holding=holding)
        lanes = Lanes(
            cast(Sender, sent),
            lambda _job: pace,
            max_backoff_seconds=1.0,
            unwritten=unwritten,
            unwaited=lambda _provider: posts_once or finds_own_posts,
        )
        intake = Intake(
            mappings=cast(MappingDirectory, _Channels()),
            message_map=MessageMap(db),
            repository=outbox,
            ownership=ownership,
            lanes=lanes,
            unwritten=unwritten,
            metrics=metrics,
            topic="chat-events",
            spill_seconds=spill_seconds,
            posts_once=lambda _provider: posts_once,
            finds_own_posts=lambda _provider: finds_own_posts,
        )
        return cls(intake, sent, writer, lanes)

    async def stop(self) -> None:
        self.sent.released.set()
        await self.lanes.stop(5.0)
        await self.writer.stop(5.0)


def _sender(**parts: Any) -> Sender:
    """A sender with `parts` and nothing else (a test of one of its steps)."""
    names = "connections message_map mappings mapping_repository writer unwritten metrics"
    given: dict[str, Any] = {name: parts.get(name) for name in f"{names} synced usage".split()}
    if "finds_own_posts" in parts:
        given["finds_own_posts"] = parts["finds_own_posts"]
    return Sender(**given)


def _event(n: int) -> ChatEvent:
    """The chat's `message.created` number `n`, as read from partition 0 at offset `n`."""
    event = ChatEvent(
        id=f"evt_intake_{n}",
        type="message.created",
        workspace_id="ws_intake",
        occurred_at=utcnow(),
        data={"message_id": f"msg_intake_{n}", "channel_id": "ch_intake", "text": "hi"},
    )
    event._position = (0, n)
    return event


async def test_a_job_done_at_once_leaves_only_its_offset_to_commit(db: Database) -> None:
    """The batch's wait ends when its job is done, and the outbox never held the job."""
    process = await _Process.start(db, "me_at_once", holding=False)
    try:
        await (await process.intake.events([_event(1)]))
        assert [job.message_id for job in process.sent.ran] == ["msg_intake_1"]
        assert await db[OUTBOX].count_documents({}) == 0
        assert (await db[PROGRESS].find_one({"_id": "chat-events:0"}) or {})["offset"] == 1
    finally:
        await process.stop()


async def test_a_job_still_running_is_written_to_the_outbox_and_its_outcome_after_it(
    db: Database,
) -> None:
    """Held mid-call past the batch's wait: the job is written to the outbox, queued and
    held by this process, and the batch is settled (its offset may be committed) while the
    call goes on; the outcome, set later, lands on the job written."""
    process = await _Process.start(db, "me_spilling")
    try:
        await (await process.intake.events([_event(1)]))
        [job] = process.sent.ran
        doc = await db[OUTBOX].find_one({"_id": job.id})
        assert doc is not None and (doc["status"], doc["lease_owner"]) == ("queued", "me_spilling")
        process.sent.released.set()
        await until(
            lambda: counted(db[OUTBOX], {"_id": job.id, "status": "done"}, 1),
            what="the outcome written on the spilled job",
        )
    finally:
        await process.stop()


async def test_events_a_crashed_process_handed_to_its_lanes_are_taken_as_recovered(
    db: Database,
) -> None:
    """`crashed` raised its partition's mark to offset 2 and died mid-call on the first
    post (nothing committed, nothing spilled): whoever reads those events again marks that
    post `recovered` (the sender looks for it before making it). Not the second: a lane
    runs one job at a time, so it had not begun; nor the later event's."""
    crashed = await _Process.start(db, "me_crashed", spill_seconds=60.0)
    abandoned = await crashed.intake.events([_event(1), _event(2)])
    await until(lambda: len(crashed.sent.ran) == 1, what="the first call under way")
    following = await _Process.start(db, "me_following", holding=False)
    try:
        events = [_event(1), _event(2), _event(3)]
        await (await following.intake.events(events))
        assert {job.message_id: job.recovered for job in following.sent.ran} == {
            "msg_intake_1": True,
            "msg_intake_2": False,
            "msg_intake_3": False,
        }
        # Looked for from the event's time, not the job's making: the events come again
        # after a rebalance, longer after their post than the search's slack.
        recovered = following.sent.ran[0]
        assert recovered.queued_at == events[0].occurred_at
        assert following.sent.ran[1].queued_at > events[1].occurred_at
        assert (await db[PROGRESS].find_one({"_id": "chat-events:0"}) or {})["offset"] == 3
    finally:
        crashed.sent.released.set()  # the "crashed" one's calls end, its batch with them
        await abandoned
        await asyncio.gather(crashed.stop(), following.stop())


@pytest.mark.parametrize(
    ("network", "looked_for"),
    [("posts_once", (False, False)), ("finds_own_posts", (True, True))],
)
async def test_where_a_lane_does_not_wait_every_post_read_again_may_have_been_made(
    db: Database, network: str, looked_for: tuple[bool, bool]
) -> None:
    """Two kinds of network let a lane go on without waiting for its post's copy to be
    written, so after a crash any of the events read again may have been posted. Where a
    post made again is the same message (Google Chat's requestId, Matrix's txnId:
    `Network.posts_once`), each is simply made again, none marked `recovered` (no search).
    Where the network's history finds our posts by their tag at a cost a recovery can pay
    per post (Mattermost: `Network.finds_own_posts`), each the map does not hold is marked
    `recovered` (looked for before it is made), not only each channel's first."""
    kind = {network: True}
    crashed = await _Process.start(db, f"{network}_crashed", holding=False, **kind)
    crashed.sent.unrecorded.set()  # no outcome's write ever comes
    abandoned = await crashed.intake.events([_event(1), _event(2)])
    # Both posts made though neither copy was written: the lane did not wait.
    await until(lambda: len(crashed.sent.ran) == 2, what="both posts made")
    assert crashed.sent.recorded_for == 0
    following = await _Process.start(db, f"{network}_following", holding=False, **kind)
    try:
        await (await following.intake.events([_event(1), _event(2), _event(3)]))
        assert {job.message_id: job.recovered for job in following.sent.ran} == {
            "msg_intake_1": looked_for[0],
            "msg_intake_2": looked_for[1],
            "msg_intake_3": False,
        }
    finally:
        crashed.sent.unrecorded.clear()
        await abandoned
        await asyncio.gather(crashed.stop(), following.stop())


async def test_a_lane_waits_for_each_posts_copy_where_a_post_could_be_made_twice(
    db: Database,
) -> None:
    """Elsewhere the lane waits for its post's copy to be written before the next post: a
    crash leaves at most the post in flight unrecorded per channel."""
    process = await _Process.start(db, "waiting", holding=False)
    process.sent.unrecorded.set()
    done = await process.intake.events([_event(1), _event(2)])
    try:
        await until(lambda: process.sent.recorded_for == 1, what="the first post's wait")
        assert [job.message_id for job in process.sent.ran] == ["msg_intake_1"]
    finally:
        process.sent.unrecorded.clear()
        await done
        await process.stop()
    assert [job.message_id for job in process.sent.ran] == ["msg_intake_1", "msg_intake_2"]


async def test_a_lane_waiting_for_its_copy_has_it_written_now_not_at_the_writers_interval(
    db: Database,
) -> None:
    """The wait above is a group commit: the writer is hurried (what other lanes hand over
    meanwhile goes in the same write), so a busy lane does not sit out the interval."""
    writer = BatchedWriter(db, interval=3600.0)
    writer.start()
    sender = _sender(writer=writer)
    writer.insert_once(MAP, "copy_hurried", {"mapping_id": "map_hurried"})
    try:
        await asyncio.wait_for(sender.recorded(), 30.0)
        assert await db[MAP].find_one({"_id": "copy_hurried"}) is not None
    finally:
        await writer.stop(5.0)


async def test_partitions_taken_away_leave_their_running_jobs_written_for_the_next_owner(
    db: Database,
) -> None:
    """A rebalance: the jobs still running are written to the outbox before the partition
    goes, and the next owner, reading the event again, leaves the job to its holder."""
    leaving = await _Process.start(db, "me_leaving", spill_seconds=60.0)
    following = await _Process.start(db, "me_taking", holding=False)
    try:
        rest = await leaving.intake.events([_event(1)])
        await until(lambda: leaving.sent.ran, what="the call under way")
        await leaving.intake.revoked()
        assert await counted(db[OUTBOX], {"lease_owner": "me_leaving", "status": "queued"}, 1)
        await (await following.intake.events([_event(1)]))
        assert following.sent.ran == []
        leaving.sent.released.set()
        await rest
        await until(
            lambda: counted(db[OUTBOX], {"status": "done"}, 1), what="the leaving holder's outcome"
        )
    finally:
        await asyncio.gather(leaving.stop(), following.stop())


async def test_a_message_published_again_is_posted_once(db: Database) -> None:
    """The chat publishes `message.created` twice: while the first post runs (its lane has
    it) and after its copy is in the map, the second makes no job. (Nothing is spilled:
    the batches wait for the job as long as it takes.)"""
    process = await _Process.start(db, "me_twice", spill_seconds=60.0)
    try:
        first = await process.intake.events([_event(1)])
        await until(lambda: process.sent.ran, what="the call under way")
        again = _event(1)
        again._position = (0, 7)
        second = await process.intake.events([again])
        process.sent.released.set()
        await asyncio.gather(first, second)
        [job] = process.sent.ran
        assert await db[OUTBOX].count_documents({}) == 0
        copy = Copy.new(
            workspace_id="ws_intake",
            channel_id="ch_intake",
            provider="slack",
            integration_id="int_intake",
            mapping_id=MAPPING.id,
            external_channel_id="C1",
            external_message_id="1.0001",
            external_thread_id=None,
            origin="outbound",
            chat_message_id=job.message_id,
        )
        await db[MAP].insert_one(copy.to_doc(utcnow()))
        again._position = (0, 8)
        await (await process.intake.events([again]))
        assert len(process.sent.ran) == 1
    finally:
        await process.stop()


async def test_a_batch_read_while_the_lanes_stop_is_written_for_the_release(db: Database) -> None:
    """The lanes stopped (the stop under way) before a last batch was handled: its job,
    which no lane runs, is written to the outbox held by this process, for the release to
    hand over, and the batch settles: its offset is committed with nothing lost."""
    process = await _Process.start(db, "me_stopping", spill_seconds=60.0)
    try:
        await process.lanes.stop(0.0)
        await (await process.intake.events([_event(1)]))
        assert process.sent.ran == []
        assert await counted(db[OUTBOX], {"lease_owner": "me_stopping", "status": "queued"}, 1)
    finally:
        await process.stop()


async def test_a_job_its_channels_pace_holds_is_written_at_once(db: Database) -> None:
    """A channel written to once every 1.5 s: of two messages read together, the second
    would wait a pace before it runs, so it is written to the outbox at once (the batch
    does not wait for it), and the first, running, is not."""
    process = await _Process.start(db, "me_paced", spill_seconds=60.0, pace=1.5)
    try:
        rest = await process.intake.events([_event(1), _event(2)])
        await until(
            lambda: counted(db[OUTBOX], {"message_id": "msg_intake_2", "status": "queued"}, 1),
            what="the paced job written",
        )
        assert await db[OUTBOX].count_documents({"message_id": "msg_intake_1"}) == 0
        process.sent.released.set()
        await rest
    finally:
        await process.stop()


def _taken(
    mapping_id: str, message_id: str, seq: int, op: str = "post", provider: str = "slack"
) -> Job:
    """A job as `claim` hands over a dead process's: `recovered`."""
    return Job(
        id=f"job_{message_id}",
        seq=seq,
        op=cast(Any, op),
        mapping_id=mapping_id,
        integration_id="int_intake",
        provider=provider,
        external_channel_id=f"C_{mapping_id}",
        workspace_id="ws_intake",
        channel_id="ch_intake",
        message_id=message_id,
        thread_id=None,
        text=message_id,
        author_name="Ada",
        author_avatar_url=None,
        attachments=(),
        queued_at=utcnow(),
        recovered=True,
    )


async def test_of_a_dead_process_s_posts_only_the_first_the_map_lacks_is_looked_for(
    db: Database,
) -> None:
    """A lane posts one job at a time and moves on once its copy is written: of a channel's
    posts taken from the dead, those the map holds are finished from it, and only the first
    it lacks can have been made. That one is looked for in the network's history; the rest
    are posted without a history read each (Slack limits them per workspace)."""
    the_map = MessageMap(db)
    await the_map.insert(
        [
            Copy.new(
                workspace_id="ws_intake",
                channel_id="ch_intake",
                provider="slack",
                integration_id="int_intake",
                mapping_id="map_a",
                external_channel_id="C_map_a",
                external_message_id="1.0",
                origin="outbound",
                chat_message_id="a0",
            )
        ]
    )
    sender = _sender(message_map=the_map)
    jobs = [
        _taken("map_a", "a0", 1),  # its copy written, its status not
        _taken("map_b", "b0", 2),
        _taken("map_a", "a1", 3),  # in flight at the kill, perhaps
        _taken("map_a", "a2", 4),
        _taken("map_b", "b1", 5, op="edit"),  # an edit is made again, looked for or not
        _taken("map_b", "b2", 6),
    ]
    taken = await sender.taken_over(jobs)
    assert [job.id for job in taken] == [job.id for job in jobs]
    assert {job.message_id: job.recovered for job in taken} == {
        "a0": True,
        "b0": True,
        "a1": True,
        "a2": False,
        "b1": True,
        "b2": False,
    }


async def test_of_a_dead_process_s_posts_where_ours_are_found_again_each_is_looked_for(
    db: Database,
) -> None:
    """Where lanes do not wait for each copy (`Network.finds_own_posts`), any post of a dead
    process's the map lacks may have been made: each keeps `recovered`; those the map holds
    are finished from it as anywhere."""
    the_map = MessageMap(db)
    sender = _sender(message_map=the_map, finds_own_posts=lambda p: p == "mattermost")
    jobs = [
        _taken("map_m", "m0", 1, provider="mattermost"),
        _taken("map_m", "m1", 2, provider="mattermost"),
        _taken("map_s", "s0", 3),
        _taken("map_s", "s1", 4),
    ]
    taken = await sender.taken_over(jobs)
    assert {job.message_id: job.recovered for job in taken} == {
        "m0": True,
        "m1": True,
        "s0": True,
        "s1": False,
    }
