"""How many deliveries one process holds in memory (HOOKHUB_DELIVERY_MAX_HELD): a backlog
beyond it waits in MongoDB, held by nobody, and comes in as room frees.

The endpoint holds every request until the test lets them go, so nothing leaves the lanes
meanwhile: what the process holds then is the most it took on."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any, cast

import orjson
import pytest
from pymongo.errors import NetworkTimeout

from services.delivery.app import definition
from services.delivery.deliveries import service as fan_out_module
from services.delivery.deliveries.dispatcher import Dispatcher
from services.delivery.deliveries.fifo import Run, key_id
from services.delivery.deliveries.service import Event, FanOut, Scheduler, delivery_doc
from shared.domain.platform import create_app
from shared.kernel.ids import isoformat, utcnow
from shared.kernel.mongo import Collection
from shared.kernel.signing import webhook_body
from tests.delivery.conftest import settings_for
from tests.infra import Infra
from tests.support import RunningService, admin_headers, counted, serve, until
from tests.webhook_sink import WebhookSink

MAX_HELD = 5
Sink = tuple[WebhookSink, str]


@pytest.fixture(scope="module")
async def delivery(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningService]:
    # Fan-out does not wait for room here unless a test says so (`FanOut.room_wait`), and
    # what the lanes hold unrecorded stays unrecorded for as long as the endpoint holds it.
    settings = settings_for(
        infra,
        tmp_path_factory,
        delivery_max_held=MAX_HELD,
        delivery_fanout_wait_seconds=0,
        delivery_hold_seconds=3600,
    )
    async with serve(create_app(definition(), settings)) as running:
        yield running


class Peak(set[str]):
    """`Dispatcher.held`, remembering the most it ever held."""

    def __init__(self, items: Iterable[str]) -> None:
        super().__init__(items)
        self.most = len(self)

    def add(self, item: str) -> None:
        super().add(item)
        self.most = max(self.most, len(self))


def _state(delivery: RunningService) -> Any:
    return cast(Any, delivery.app).state


def _watched(delivery: RunningService, lane_limit: int = MAX_HELD) -> tuple[Dispatcher, Peak]:
    """The dispatcher, its `held` remembering its peak. One endpoint may take the whole room
    unless `lane_limit` says otherwise (its share is a quarter by default: one delivery of
    five)."""
    dispatcher: Dispatcher = _state(delivery).dispatcher
    dispatcher.held = peak = Peak(dispatcher.held)
    dispatcher.lane_limit = lane_limit
    return dispatcher, peak


def _polls_stopped(monkeypatch: pytest.MonkeyPatch, scheduler: Scheduler) -> Any:
    """The scheduler's own polls stopped (put back with the returned `poll`): a poll takes
    half the free room while its claim is out, so a fan-out meanwhile holds less and writes
    the rest for the scheduler — on a loaded machine, now and then."""
    poll = scheduler.poll

    async def no_claim() -> bool:
        return False

    monkeypatch.setattr(scheduler, "poll", no_claim)
    return poll


async def _endpoint(
    delivery: RunningService, url: str, workspace: str, max_concurrency: int = 10, **fields: Any
) -> str:
    # Ten connections (the default), more than the process may hold: the bound is what
    # limits here, not the lane.
    body = {
        "workspace_id": workspace,
        "url": url,
        "events": ["*"],
        "max_concurrency": max_concurrency,
        **fields,
    }
    answer = await delivery.client.post(
        "/api/outgoing-webhooks", json=body, headers=admin_headers()
    )
    assert answer.status_code == 201, answer.text
    endpoint_id: str = answer.json()["id"]
    return endpoint_id


def _events(workspace: str, count: int) -> list[Event]:
    return [
        Event(f"evt_{uuid.uuid4().hex}", workspace, "message.created", utcnow(), {"n": n})
        for n in range(count)
    ]


def _gated(sink: Sink) -> tuple[str, str, asyncio.Event]:
    """A path on the sink that answers nothing until the returned event is set."""
    fake, base_url = sink
    path = "/held/" + uuid.uuid4().hex[:8]
    gate = asyncio.Event()
    fake.on(path, 200, gate=gate)
    return path, base_url + path, gate


async def _answering(
    delivery: RunningService, sink: Sink, name: str, workspace: str
) -> tuple[str, str]:
    """A path on the sink that answers 200 at once, and an endpoint for it: (path, id)."""
    fake, base_url = sink
    path = f"/{name}/" + uuid.uuid4().hex[:8]
    fake.on(path, 200)
    return path, await _endpoint(delivery, base_url + path, workspace)


async def _all_sent_once(
    delivery: RunningService, sink: Sink, path: str, endpoint_id: str, count: int
) -> None:
    deliveries: Collection = _state(delivery).delivery_repository.deliveries
    done = {"endpoint_id": endpoint_id, "status": "completed"}
    await until(lambda: counted(deliveries, done, count), what=f"{count} deliveries completed")
    received = sink[0].at(path)
    assert len(received) == count
    assert len({r.headers["webhook-id"] for r in received}) == count


def _metric(delivery: RunningService, name: str, **labels: str) -> float | None:
    value: float | None = _state(delivery).runtime.registry.get_sample_value(name, labels)
    return value


async def test_a_fan_out_beyond_the_room_is_written_unheld_and_each_sent_once(
    delivery: RunningService, sink: Sink
) -> None:
    path, url, gate = _gated(sink)
    workspace = "ws_held_fan_out"
    endpoint_id = await _endpoint(delivery, url, workspace)
    fan_out: FanOut = _state(delivery).fan_out
    scheduler: Scheduler = _state(delivery).scheduler
    deliveries: Collection = _state(delivery).delivery_repository.deliveries
    dispatcher, peak = _watched(delivery)
    unheld_before = _metric(delivery, "hookhub_delivery_written_unheld_total") or 0.0
    try:
        # Two batches at once, as the chat and provider consumers fan out.
        first, second = await asyncio.gather(
            fan_out.events(_events(workspace, 10)), fan_out.events(_events(workspace, 10))
        )
        assert first.made + second.made == 20
        assert len(dispatcher.held) == MAX_HELD
        assert _metric(delivery, "hookhub_delivery_held") == MAX_HELD
        assert _metric(delivery, "hookhub_delivery_held_limit") == MAX_HELD
        unheld_now = _metric(delivery, "hookhub_delivery_written_unheld_total")
        assert unheld_now == unheld_before + 15
        await sink[0].wait_for(path, MAX_HELD)  # out, and held there

        # Those held are not written until their outcome is (the batches' offsets wait).
        docs = await deliveries.find({"endpoint_id": endpoint_id}).to_list()
        assert len(docs) == 15
        assert not {d["_id"] for d in docs} & set(dispatcher.held)
        waiting = [d for d in docs if d["lease_owner"] is None]
        assert len(waiting) == 15
        assert {d["status"] for d in waiting} == {"pending"}
        assert all(d["next_attempt_at"] <= utcnow() for d in waiting)  # due: for anyone

        assert await scheduler.poll() is False  # full: it claims nothing
        assert len(dispatcher.held) == MAX_HELD
        assert len(sink[0].at(path)) == MAX_HELD
    finally:
        gate.set()
    # The rest come in as the lanes free room, by the scheduler.
    await _all_sent_once(delivery, sink, path, endpoint_id, 20)
    assert peak.most == MAX_HELD
    assert not dispatcher.held


async def test_the_scheduler_claims_no_more_than_the_room_left(
    delivery: RunningService, sink: Sink
) -> None:
    path, url, gate = _gated(sink)
    workspace = "ws_held_scheduler"
    endpoint_id = await _endpoint(delivery, url, workspace)
    state = _state(delivery)
    fan_out: FanOut = state.fan_out
    scheduler: Scheduler = state.scheduler
    deliveries: Collection = state.delivery_repository.deliveries
    dispatcher, peak = _watched(delivery)
    try:
        await fan_out.events(_events(workspace, 2))
        assert len(dispatcher.held) == 2
        # Ten due and held by nobody, as a stopping process or a full fan-out leaves them.
        endpoint = state.endpoint_cache.get(endpoint_id)
        now = utcnow()
        unheld = [
            delivery_doc(
                endpoint=endpoint,
                event_id=event.id,
                event_type=event.type,
                occurred_at=event.occurred_at,
                body=b"{}",
                now=now,
                owner=None,
            )
            for event in _events(workspace, 10)
        ]
        await state.delivery_repository.insert_new(unheld)
        await scheduler.poll()  # and the running scheduler's own polls
        await until(lambda: len(dispatcher.held) >= MAX_HELD, what="the room taken")
        assert len(dispatcher.held) == MAX_HELD
        assert await scheduler.poll() is False
        left = {"endpoint_id": endpoint_id, "lease_owner": None, "status": "pending"}
        assert await deliveries.count_documents(left) == 7
        await sink[0].wait_for(path, MAX_HELD)
        assert len(sink[0].at(path)) == MAX_HELD
    finally:
        gate.set()
    await _all_sent_once(delivery, sink, path, endpoint_id, 12)
    assert peak.most == MAX_HELD


async def test_one_endpoint_takes_no_more_than_its_share_and_the_claim_leaves_the_rest(
    delivery: RunningService, sink: Sink
) -> None:
    """An endpoint that answers only at its timeout, with a backlog, holds its share of the
    room and no more: another endpoint's deliveries still find room, and the scheduler does
    not claim more of the slow one's while its share is taken."""
    slow_path, slow_url, slow_gate = _gated(sink)
    other_path, other_url, other_gate = _gated(sink)
    workspace = "ws_held_share"
    slow = await _endpoint(delivery, slow_url, workspace)
    state = _state(delivery)
    fan_out: FanOut = state.fan_out
    scheduler: Scheduler = state.scheduler
    deliveries: Collection = state.delivery_repository.deliveries
    dispatcher, peak = _watched(delivery, lane_limit=2)
    try:
        await fan_out.events(_events(workspace, 8))  # only the slow endpoint exists yet
        assert len(dispatcher.held) == 2
        assert dispatcher.full_lanes() == [slow]
        await sink[0].wait_for(slow_path, 2)
        other = await _endpoint(delivery, other_url, workspace)
        await until(lambda: state.endpoint_cache.get(other) is not None, what="cached")
        # Room is left (5 - 2): the other endpoint's two get it; the slow one's part of the
        # batch, and its six waiting in MongoDB, stay there while its share is taken.
        await fan_out.events(_events(workspace, 2))
        await sink[0].wait_for(other_path, 2)
        assert await scheduler.poll() is False
        # The slow endpoint's two held are not written: the eight waiting are.
        assert await deliveries.count_documents({"endpoint_id": slow}) == 8
        assert len(dispatcher.held) == 4
        other_gate.set()
        await _all_sent_once(delivery, sink, other_path, other, 2)
        # The other endpoint done: room for three, none of it for the slow one's backlog.
        await scheduler.poll()
        assert len(dispatcher.held) == 2
        waiting = {"endpoint_id": slow, "lease_owner": None, "status": "pending"}
        assert (
            await deliveries.count_documents(waiting) == 8
        )  # 6 of the first batch, 2 of the second
    finally:
        slow_gate.set()
        other_gate.set()
    await _all_sent_once(delivery, sink, slow_path, slow, 10)
    assert peak.most <= MAX_HELD


async def test_a_batch_is_written_a_piece_at_a_time(
    delivery: RunningService, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's deliveries are built and handed over a piece at a time (`FANOUT_PIECE`,
    half the room, fewer when their bodies add up to `FANOUT_PIECE_BYTES`): a backlog is
    never in memory whole. MongoDB is asked which are written once for as many as a piece
    can hold (a replay's deliveries are written already), not once a piece; each delivery
    is sent once all the same."""
    fake, base_url = sink
    paths = ["/pieces/" + uuid.uuid4().hex[:8] for _ in range(2)]
    for path in paths:
        fake.on(path, 200)
    workspace = "ws_held_pieces"
    first = await _endpoint(delivery, base_url + paths[0], workspace)
    second = await _endpoint(delivery, base_url + paths[1], workspace)
    state = _state(delivery)
    await until(lambda: state.endpoint_cache.get(second) is not None, what="cached")
    repository = state.delivery_repository
    fan_out: FanOut = state.fan_out
    poll = _polls_stopped(monkeypatch, state.scheduler)  # the room is the fan-out's alone
    lookups: list[int] = []
    pieces: list[int] = []
    existing, hand_over = repository.existing, fan_out._hand_over

    async def looked_up(ids: list[str]) -> set[str]:
        lookups.append(len(ids))
        found: set[str] = await existing(ids)
        return found

    async def handed_over(docs: list[Any], *args: Any) -> None:
        pieces.append(len(docs))
        await hand_over(docs, *args)

    monkeypatch.setattr(repository, "existing", looked_up)
    monkeypatch.setattr(fan_out, "_hand_over", handed_over)
    # Half the room (5) at most: two a piece, looked up all at once.
    assert (await fan_out.events(_events(workspace, 5))).made == 10
    assert pieces == [2, 2, 2, 2, 2]
    assert lookups == [10]
    # A body's worth of bytes each: one at a time, and looked up one at a time.
    lookups.clear()
    pieces.clear()
    events = _events(workspace, 3)
    body = webhook_body("message.created", isoformat(events[0].occurred_at), {"n": 0})
    monkeypatch.setattr(fan_out_module, "FANOUT_PIECE_BYTES", len(body))
    fanned = await fan_out.events(events)
    assert fanned.made == 6
    assert pieces == [1] * 6
    assert lookups == [1] * 6
    # The same events again once recorded: found written, none new, none sent twice.
    await fan_out.recorded(fanned)
    assert (await fan_out.events(events)).made == 0
    monkeypatch.setattr(state.scheduler, "poll", poll)  # for any written for the scheduler
    for endpoint, path in ((first, paths[0]), (second, paths[1])):
        await _all_sent_once(delivery, sink, path, endpoint, 8)


async def test_a_delivery_written_between_its_batchs_lookup_and_its_piece_is_not_sent_again(
    delivery: RunningService, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch read twice (a seek back): when the second reading looks its deliveries up,
    the first reading's is out, not in MongoDB; it is recorded and written before the
    second reading's piece is handed over, so neither the lookup nor the lanes have it
    then. It is not made or sent again."""
    path, url, gate = _gated(sink)
    workspace = "ws_held_passed"
    endpoint = await _endpoint(delivery, url, workspace)
    state = _state(delivery)
    await until(lambda: state.endpoint_cache.get(endpoint) is not None, what="cached")
    dispatcher: Dispatcher = state.dispatcher
    fan_out: FanOut = state.fan_out
    events = _events(workspace, 1)
    first = await fan_out.events(events)
    assert first.made == 1
    repository = state.delivery_repository
    existing = repository.existing

    async def read_then_written(ids: list[str]) -> set[str]:
        found: set[str] = await existing(ids)
        assert not found, "out at the sink: not written yet"
        gate.set()
        await fan_out.recorded(first)
        assert not any(dispatcher.has(delivery_id) for delivery_id in ids)
        return found

    monkeypatch.setattr(repository, "existing", read_then_written)
    again = await fan_out.events(events)
    assert again.made == 0
    assert not again.owed
    await _all_sent_once(delivery, sink, path, endpoint, 1)


async def test_fan_out_waits_for_room_and_leaves_the_backlog_in_kafka(
    delivery: RunningService, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `room_wait`, a piece the process has no room for waits until the lanes have
    sent enough (the batch's offsets with it), rather than be written for the scheduler to
    claim."""
    path, url, gate = _gated(sink)
    workspace = "ws_held_wait"
    endpoint = await _endpoint(delivery, url, workspace)
    state = _state(delivery)
    fan_out: FanOut = state.fan_out
    deliveries: Collection = state.delivery_repository.deliveries
    dispatcher, peak = _watched(delivery)
    unheld_before = _metric(delivery, "hookhub_delivery_written_unheld_total") or 0.0

    # The earlier tests' outcomes written and their room free (a delivery keeps its room
    # until its outcome is written), and the running scheduler claiming nothing meanwhile (a
    # claim holds half the free room while it is out): else only one piece fits below.
    _polls_stopped(monkeypatch, state.scheduler)
    await until(lambda: dispatcher.free == MAX_HELD, what="the room free")
    fan_out.room_wait = 600.0
    try:
        # Pieces of two (half the room): two fit, the third waits for room.
        writing = asyncio.ensure_future(fan_out.events(_events(workspace, 6)))
        await until(lambda: dispatcher.waiting == 1, what="fan-out waiting for room")
        assert len(dispatcher.held) == 4
        # Held unrecorded: none written (the rest waits in Kafka, the offsets with it).
        assert await deliveries.count_documents({"endpoint_id": endpoint}) == 0
        assert not writing.done()
        # A batch that makes no delivery (no endpoint wants it) does not wait for room.
        nothing = fan_out.events(_events("ws_held_nobody", 3))
        assert (await asyncio.wait_for(nothing, 60)).made == 0
        gate.set()
        assert (await writing).made == 6
    finally:
        fan_out.room_wait = 0.0
        gate.set()
    await _all_sent_once(delivery, sink, path, endpoint, 6)
    assert _metric(delivery, "hookhub_delivery_written_unheld_total") == unheld_before
    assert peak.most <= MAX_HELD


async def test_fan_out_waits_for_a_moving_lane_and_writes_past_one_behind(
    delivery: RunningService, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An endpoint's share of the room taken (here 2): while its lane moves (its oldest
    delivery handed over within the hold bound), fan-out waits for it, and a backlog to one
    quick endpoint stays in Kafka rather than go through the scheduler; once the lane is
    behind (a slow endpoint), what is beyond its share is written for any process at once."""
    moving_path, moving_url, moving_gate = _gated(sink)
    behind_path, behind_url, behind_gate = _gated(sink)
    moving = await _endpoint(delivery, moving_url, "ws_held_lane_moving")
    behind = await _endpoint(delivery, behind_url, "ws_held_lane_behind")
    state = _state(delivery)
    fan_out: FanOut = state.fan_out
    deliveries: Collection = state.delivery_repository.deliveries
    dispatcher, peak = _watched(delivery, lane_limit=2)
    _polls_stopped(monkeypatch, state.scheduler)
    await until(lambda: dispatcher.free == MAX_HELD, what="the room free")
    unheld_before = _metric(delivery, "hookhub_delivery_written_unheld_total") or 0.0
    fan_out.room_wait = 600.0
    try:
        writing = asyncio.ensure_future(fan_out.events(_events("ws_held_lane_moving", 4)))
        await until(lambda: dispatcher.waiting == 1, what="fan-out waiting for the lane")
        await sink[0].wait_for(moving_path, 2)
        assert len(dispatcher.held) == 2
        assert await deliveries.count_documents({"endpoint_id": moving}) == 0
        moving_gate.set()
        assert (await writing).made == 4
        assert _metric(delivery, "hookhub_delivery_written_unheld_total") == unheld_before
        await _all_sent_once(delivery, sink, moving_path, moving, 4)

        # Behind: its oldest delivery has waited past the bound (here, any wait at all).
        monkeypatch.setattr(dispatcher, "hold_seconds", 0.0)
        assert (await fan_out.events(_events("ws_held_lane_behind", 4))).made == 4
        assert _metric(delivery, "hookhub_delivery_written_unheld_total") == unheld_before + 2
        waiting = {"endpoint_id": behind, "lease_owner": None, "status": "pending"}
        assert await deliveries.count_documents(waiting) == 2
    finally:
        fan_out.room_wait = 0.0
        moving_gate.set()
        behind_gate.set()
    monkeypatch.undo()  # the scheduler claims the two written
    await _all_sent_once(delivery, sink, behind_path, behind, 4)
    assert peak.most <= MAX_HELD


def _keyed(workspace: str, key: str, count: int) -> list[Event]:
    """A FIFO key's events, in its order."""
    return [
        Event(
            f"evt_{uuid.uuid4().hex}",
            workspace,
            "message.created",
            utcnow(),
            {"n": n},
            False,
            key,
            n,
        )
        for n in range(count)
    ]


async def _head_and_one_behind(
    delivery: RunningService, sink: Sink, workspace: str
) -> tuple[str, str, asyncio.Event, list[Event], Run]:
    """A FIFO endpoint on a gated path and its key's first two events fanned out: the head
    out (held at the sink), the second behind it, having waited half the hold bound (its
    hand-over put back by that much)."""
    path, url, gate = _gated(sink)
    endpoint = await _endpoint(delivery, url, workspace, ordering="fifo")
    dispatcher: Dispatcher = _state(delivery).dispatcher
    events = _keyed(workspace, "k", 4)
    assert (await _state(delivery).fan_out.events(events[:2])).made == 2
    await sink[0].wait_for(path, 1)
    run = dispatcher.runs.by_id[key_id(endpoint, "k")]
    assert [job.sequence for job in run.jobs] == [0, 1]
    run.jobs[1].since -= dispatcher.hold_seconds / 2
    return path, endpoint, gate, events, run


async def test_fan_out_waits_for_a_fifo_key_fed_faster_than_it_moves(
    delivery: RunningService, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FIFO key's delivery behind its head has waited half the hold bound while the key
    moves (its head went out within the bound): fan-out waits for the key rather than hand
    it more, which would wait past the bound behind their heads and each be written pending
    and then updated; once the head ends the rest follow, in order, each written once with
    its outcome, none queued in MongoDB. A key that does not move (its head out past the
    bound) is not waited for."""
    state = _state(delivery)
    fan_out: FanOut = state.fan_out
    dispatcher, peak = _watched(delivery)
    _polls_stopped(monkeypatch, state.scheduler)
    held_before = _metric(delivery, "hookhub_delivery_written_held_total") or 0.0
    queued_before = _fifo_queued(delivery)
    sent: list[tuple[str, str]] = []
    gates: list[asyncio.Event] = []
    fan_out.room_wait = 600.0
    try:
        await until(lambda: dispatcher.free == MAX_HELD, what="the room free")
        path, endpoint, gate, events, run = await _head_and_one_behind(
            delivery, sink, "ws_held_fifo_moving"
        )
        sent.append((path, endpoint))
        gates.append(gate)
        writing = asyncio.ensure_future(fan_out.events(events[2:]))
        await until(lambda: dispatcher.waiting == 1, what="fan-out waiting for the key")
        # For the key: the room and the endpoint's share are there.
        assert dispatcher.free >= 2 and dispatcher.lane_room(endpoint) >= 2
        assert len(run.jobs) == 2
        gate.set()
        assert (await writing).made == 2
        await _all_sent_once(delivery, sink, path, endpoint, 4)

        await until(lambda: dispatcher.free == MAX_HELD, what="the room free")
        path, endpoint, gate, events, run = await _head_and_one_behind(
            delivery, sink, "ws_held_fifo_stuck"
        )
        sent.append((path, endpoint))
        gates.append(gate)
        run.moved -= dispatcher.hold_seconds  # its head out for the whole bound
        more = fan_out.events(events[2:])
        assert (await asyncio.wait_for(more, 60)).made == 2
        assert [job.sequence for job in run.jobs] == [0, 1, 2, 3]
    finally:
        fan_out.room_wait = 0.0
        for opened in gates:
            opened.set()
    for path, endpoint in sent:
        await _all_sent_once(delivery, sink, path, endpoint, 4)
        assert [orjson.loads(r.body)["data"]["n"] for r in sink[0].at(path)] == [0, 1, 2, 3]
    # Each written once, with its outcome: none pending past the bound, none queued.
    assert _metric(delivery, "hookhub_delivery_written_held_total") == held_before
    assert _fifo_queued(delivery) == queued_before
    assert peak.most <= MAX_HELD


def _fifo_queued(delivery: RunningService) -> float:
    return sum(
        _metric(delivery, "hookhub_delivery_fifo_queued_total", reason=reason) or 0.0
        for reason in ("room", "behind", "elsewhere")
    )


async def test_a_batch_read_again_while_its_deliveries_are_out_sends_each_once(
    delivery: RunningService, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch fanned out again (a rewind) while its deliveries are still out, unrecorded:
    not found in MongoDB, but not sent again either; the second reading waits for the same
    records as the first."""
    path, url, gate = _gated(sink)
    workspace = "ws_held_again"
    endpoint = await _endpoint(delivery, url, workspace)
    state = _state(delivery)
    fan_out: FanOut = state.fan_out
    dispatcher, _ = _watched(delivery)
    # A poll out while the batch fans out would leave one delivery written for the
    # scheduler, found by the second reading rather than owed.
    claim = _polls_stopped(monkeypatch, state.scheduler)
    await until(lambda: dispatcher.free == MAX_HELD, what="the room free")
    events = _events(workspace, 2)
    try:
        first = await fan_out.events(events)
        await sink[0].wait_for(path, 2)
        again = await fan_out.events(events)
        assert again.owed == first.owed and len(again.owed) == 2
        assert not any(recorded.done() for recorded in again.owed)
        assert len(dispatcher.held) == 2
    finally:
        gate.set()
        monkeypatch.setattr(state.scheduler, "poll", claim)
    await fan_out.recorded(again)
    await _all_sent_once(delivery, sink, path, endpoint, 2)


async def test_a_revoke_writes_what_is_out_unrecorded_and_the_new_owner_leaves_it(
    delivery: RunningService, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebalance without a crash: before a fan-out consumer's partitions go to another
    member, every delivery handed over unrecorded is written, held by this process (`active`
    the one out, `pending` those queued behind it), and its batch's record is done. The new
    owner, fanning the batch out again, finds them all and makes none; what is handed over
    until the partitions are assigned again is written at once; each is sent once."""
    path, url, gate = _gated(sink)
    workspace = "ws_held_revoked"
    # One connection: one delivery out, the others queued behind it.
    endpoint = await _endpoint(delivery, url, workspace, max_concurrency=1)
    state = _state(delivery)
    fan_out: FanOut = state.fan_out
    deliveries: Collection = state.delivery_repository.deliveries
    dispatcher, _ = _watched(delivery)
    # A poll's claim out while the batch fans out would leave one written for the scheduler.
    claim = _polls_stopped(monkeypatch, state.scheduler)
    await until(lambda: dispatcher.free == MAX_HELD, what="the room free")
    events = _events(workspace, 3)
    try:
        first = await fan_out.events(events)
        await sink[0].wait_for(path, 1)
        assert await deliveries.count_documents({"endpoint_id": endpoint}) == 0
        assert len(first.owed) == 3 and not any(recorded.done() for recorded in first.owed)
        await dispatcher.revoked("fanout")
        try:
            assert all(recorded.done() for recorded in first.owed)
            await fan_out.recorded(first)  # none was cut off
            docs = await deliveries.find({"endpoint_id": endpoint}).to_list()
            assert sorted(doc["status"] for doc in docs) == ["active", "pending", "pending"]
            assert {doc["lease_owner"] for doc in docs} == {state.ownership.id}
            again = await fan_out.events(events)
            assert again.made == 0 and again.owed == []
            late = await fan_out.events(_events(workspace, 1))
            assert late.made == 1 and all(recorded.done() for recorded in late.owed)
            await fan_out.recorded(late)
            assert await deliveries.count_documents({"endpoint_id": endpoint}) == 4
        finally:
            dispatcher.assigned("fanout")
    finally:
        gate.set()
        monkeypatch.setattr(state.scheduler, "poll", claim)
    await _all_sent_once(delivery, sink, path, endpoint, 4)


async def test_a_delivery_keeps_its_room_until_its_outcome_is_written(
    delivery: RunningService, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sent and answered, but its outcome not yet in MongoDB (the writer held): the room
    stays taken, so fan-out writes what comes meanwhile for the scheduler and the scheduler
    claims nothing; once the writer has written, the room is free again."""
    workspace = "ws_held_unwritten"
    path, endpoint = await _answering(delivery, sink, "unwritten", workspace)
    state = _state(delivery)
    fan_out: FanOut = state.fan_out
    scheduler: Scheduler = state.scheduler
    deliveries: Collection = state.delivery_repository.deliveries
    dispatcher, peak = _watched(delivery)
    writer = state.delivery_writer
    flush = writer._flush
    gate = asyncio.Event()
    # The earlier tests' outcomes written and their room free: the writer is held below.
    await until(lambda: dispatcher.free == MAX_HELD, what="the room free")

    async def held_flush() -> None:
        await gate.wait()
        await flush()

    monkeypatch.setattr(writer, "_flush", held_flush)
    claim = _polls_stopped(monkeypatch, scheduler)  # this test polls by hand
    try:
        assert (await fan_out.events(_events(workspace, MAX_HELD))).made == MAX_HELD
        await sink[0].wait_for(path, MAX_HELD)
        await until(lambda: not dispatcher.held, what="the lanes done")
        assert dispatcher.free == 0
        assert _metric(delivery, "hookhub_delivery_outcomes_unwritten") == MAX_HELD
        # Written with their outcome, which is not written yet: none is.
        assert await deliveries.count_documents({"endpoint_id": endpoint}) == 0
        unheld_before = _metric(delivery, "hookhub_delivery_written_unheld_total") or 0.0
        assert (await fan_out.events(_events(workspace, 3))).made == 3
        assert _metric(delivery, "hookhub_delivery_written_unheld_total") == unheld_before + 3
        assert await claim() is False
        assert not dispatcher.held
    finally:
        gate.set()
        monkeypatch.setattr(scheduler, "poll", claim)
    await _all_sent_once(delivery, sink, path, endpoint, MAX_HELD + 3)
    await until(lambda: dispatcher.free == MAX_HELD, what="the room free again")
    assert _metric(delivery, "hookhub_delivery_outcomes_unwritten") == 0
    assert peak.most <= MAX_HELD


async def test_no_more_attempts_are_out_at_once_than_the_process_allows(
    delivery: RunningService, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HOOKHUB_DELIVERY_MAX_IN_FLIGHT, here 2: two endpoints of ten connections each, two
    deliveries each, every request held by the endpoint. Two are out; the lanes' other
    workers have taken their deliveries and wait for a slot."""
    paths, gates, endpoints = [], [], []
    for name in ("one", "two"):
        path, url, gate = _gated(sink)
        paths.append(path)
        gates.append(gate)
        endpoints.append(await _endpoint(delivery, url, f"ws_held_slots_{name}"))
    state = _state(delivery)
    dispatcher, _ = _watched(delivery)
    monkeypatch.setattr(dispatcher, "_slots", asyncio.Semaphore(2))
    claim = _polls_stopped(monkeypatch, state.scheduler)
    try:
        for name in ("one", "two"):
            assert (await state.fan_out.events(_events(f"ws_held_slots_{name}", 2))).made == 2
        await until(lambda: _metric(delivery, "hookhub_delivery_in_flight") == 2, what="2 out")
        # The two out may both be the first endpoint's, before the second has a lane.
        await until(lambda: all(e in dispatcher._lanes for e in endpoints), what="both lanes")
        lanes = [dispatcher._lanes[endpoint] for endpoint in endpoints]
        await until(lambda: all(lane.queue.empty() for lane in lanes), what="all taken")
        assert len(dispatcher.held) == 4
        assert sum(len(sink[0].at(path)) for path in paths) == 2
    finally:
        for gate in gates:
            gate.set()
        monkeypatch.setattr(state.scheduler, "poll", claim)
    for endpoint, path in zip(endpoints, paths, strict=True):
        await _all_sent_once(delivery, sink, path, endpoint, 2)
    assert _metric(delivery, "hookhub_delivery_in_flight") == 0


async def test_one_endpoint_has_no_more_than_its_share_of_the_attempts_in_flight(
    delivery: RunningService, sink: Sink
) -> None:
    """Its `max_concurrency` 10, but a lane has at most a quarter of the process's slots
    (here 2): a hanging endpoint cannot take them all, and another one's are sent."""
    path, url, gate = _gated(sink)
    workspace = "ws_held_lane_slots"
    endpoint = await _endpoint(delivery, url, workspace)
    other_path, other = await _answering(delivery, sink, "other", "ws_held_lane_slots_other")
    state = _state(delivery)
    dispatcher, _ = _watched(delivery)
    share = dispatcher.lane_slots
    dispatcher.lane_slots = 2  # before the endpoints' lanes are made
    try:
        assert (await state.fan_out.events(_events(workspace, 4))).made == 4
        await sink[0].wait_for(path, 2)
        assert len(dispatcher._lanes[endpoint].workers) == 2
        assert (await state.fan_out.events(_events("ws_held_lane_slots_other", 1))).made == 1
        await _all_sent_once(delivery, sink, other_path, other, 1)
        assert len(sink[0].at(path)) == 2
    finally:
        gate.set()
        dispatcher.lane_slots = share
    await _all_sent_once(delivery, sink, path, endpoint, 4)


async def test_deliveries_a_failed_write_made_all_the_same_are_taken_back(
    delivery: RunningService, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fan-out that writes before it sends (`FanOut.event`, a test send): MongoDB wrote
    the deliveries but the write raised (a timeout after the write). Asked again, it finds
    them written, held by this process and by no lane. The scheduler's upkeep takes them
    back, and each is sent once."""
    fake = sink[0]
    workspace = "ws_held_unanswered"
    path, endpoint = await _answering(delivery, sink, "unanswered", workspace)
    state = _state(delivery)
    fan_out: FanOut = state.fan_out
    scheduler: Scheduler = state.scheduler
    repository = state.delivery_repository
    insert_new = repository.insert_new
    # The running scheduler's upkeep takes back too (every UPKEEP_SECONDS): here only the
    # test does, so that what is sent before it is seen.
    take_back = scheduler.take_back

    async def not_now() -> int:
        return 0

    monkeypatch.setattr(scheduler, "take_back", not_now)

    async def written_then_timed_out(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        await insert_new(docs)
        raise NetworkTimeout("timed out")

    events = _events(workspace, 2)
    await _fails_once(fan_out, events, repository, written_then_timed_out, monkeypatch)
    assert await _written(fan_out, events) == 0  # asked again: written already
    mine = {"endpoint_id": endpoint, "lease_owner": state.ownership.id, "status": "pending"}
    assert await repository.deliveries.count_documents(mine) == 2
    assert fake.at(path) == []
    assert await take_back() == 2
    await _all_sent_once(delivery, sink, path, endpoint, 2)
    assert await take_back() == 0

    # A write that raised without writing: the replay makes them and hands them to the
    # lanes itself; nothing is left to take back.
    async def timed_out(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        raise NetworkTimeout("timed out")

    events = _events(workspace, 2)
    await _fails_once(fan_out, events, repository, timed_out, monkeypatch)
    assert state.dispatcher.unanswered
    assert await _written(fan_out, events) == 2
    assert not state.dispatcher.unanswered
    await _all_sent_once(delivery, sink, path, endpoint, 4)


async def _fails_once(
    fan_out: FanOut,
    events: list[Event],
    repository: Any,
    insert_new: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fan each of `events` out (written first) with `insert_new` in place of the
    repository's, which raises."""
    real = repository.insert_new
    monkeypatch.setattr(repository, "insert_new", insert_new)
    for event in events:
        with pytest.raises(NetworkTimeout):
            await _written(fan_out, [event])
    monkeypatch.setattr(repository, "insert_new", real)


async def _written(fan_out: FanOut, events: list[Event]) -> int:
    """Each event fanned out written before it is sent; how many deliveries were new."""
    made = 0
    for e in events:
        made += len(
            await fan_out.event(
                event_id=e.id,
                workspace_id=e.workspace_id,
                event_type=e.type,
                occurred_at=e.occurred_at,
                data=e.data,
            )
        )
    return made
