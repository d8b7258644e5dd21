"""SlackHistory (the API import source) against the fake Slack over loopback: every message
and reply once across many pages, the limited tier's pages and pace, 429s and outages,
resuming from any checkpoint, users.list pages, quarantined records, the window."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from services.sandbox.slack import FakeSlack, history_message
from shared.providers.chat import ProviderUnreachable
from shared.providers.history import HistoryRecord
from shared.providers.slack.api import SlackApi
from shared.providers.slack.history import LIMITED, TIER_3, SlackHistory, Tier
from tests.support import FakeClock

BASE = 1_700_000_000
CHANNEL = "C0HIST"


@pytest.fixture
def clock(slack: FakeSlack) -> Iterator[FakeClock]:
    fake_clock = FakeClock()
    slack.clock = fake_clock
    yield fake_clock
    slack.clock = time.monotonic
    slack.limited_app = False
    slack.repeat_thread_root = False
    slack.per_minute.clear()
    slack.programmed.clear()
    slack.listed_as.clear()
    slack.users.clear()
    slack.calls.clear()
    slack.limited = 0


@pytest.fixture
def token(slack: FakeSlack, clock: FakeClock) -> str:
    slack.add_channel(CHANNEL, "history")  # a fresh, empty channel for each test
    return slack.add_bot_token()


def reader(api: SlackApi, clock: FakeClock, tier: Tier = TIER_3, **kwargs: Any) -> SlackHistory:
    return SlackHistory(api, tier, clock=clock, sleep=clock.sleep, **kwargs)


def ts(seconds: float, micro: int = 100) -> str:
    return f"{int(seconds)}.{micro:06d}"


def seed(
    slack: FakeSlack, parents: int, threads: dict[int, int], channel: str = CHANNEL
) -> dict[str, str | None]:
    """`parents` channel messages 10 s apart; parent i of `threads` gets that many replies.
    Returns every message's ts → its root's ts (None for a parent)."""
    messages: list[dict[str, Any]] = []
    expected: dict[str, str | None] = {}
    for i in range(parents):
        root = ts(BASE + i * 10)
        messages.append(history_message(root, "U0ADA", f"parent {i}"))
        expected[root] = None
        for j in range(threads.get(i, 0)):
            reply = f"{BASE + i * 10 + 1}.{j + 1:06d}"
            messages.append(history_message(reply, "U0BEN", f"reply {i}.{j}", thread_ts=root))
            expected[reply] = root
    slack.add_history(channel, messages)
    return expected


async def read(history: SlackHistory, token: str, **kwargs: Any) -> list[HistoryRecord]:
    return [record async for record in history.records(token, CHANNEL, **kwargs)]


def ids(records: list[HistoryRecord]) -> list[str]:
    return [r.change.external_message_id for r in records if r.change is not None]


def calls(slack: FakeSlack, method: str) -> list[Any]:
    return slack.calls_of(method)


@pytest.mark.parametrize("repeat_root", [False, True])
async def test_every_message_and_reply_once_in_order_across_many_pages(
    api: SlackApi, slack: FakeSlack, clock: FakeClock, token: str, repeat_root: bool
) -> None:
    slack.repeat_thread_root = repeat_root
    threads = {i: 1 + i % 7 for i in range(0, 600, 9)} | {300: 45}  # one thread of 3 pages
    expected = seed(slack, 600, threads)
    records = await read(reader(api, clock, Tier(50, 20)), token)

    seen = ids(records)
    assert len(seen) == len(set(seen)) == len(expected) == 600 + sum(threads.values())
    assert set(seen) == set(expected)
    assert not [r for r in records if r.quarantined]
    # Parents newest first; each root followed at once by its replies, oldest first.
    parents = [t for t in seen if expected[t] is None]
    assert parents == sorted(parents, key=Decimal, reverse=True)
    for position, message_ts in enumerate(seen):
        root = expected[message_ts]
        if root is None:
            continue
        previous = seen[position - 1]
        assert previous == root or (
            expected[previous] == root and Decimal(previous) < Decimal(message_ts)
        )
    replies = {
        r.change.external_message_id: r.change.external_thread_id for r in records if r.change
    }
    assert all(replies[t] == root for t, root in expected.items() if root is not None)
    assert all(replies[t] is None for t, root in expected.items() if root is None)
    # Every parent with replies had its thread read, and only those.
    asked = {call.args["ts"] for call in calls(slack, "conversations.replies")}
    assert asked == {ts(BASE + i * 10) for i in threads}
    assert len(calls(slack, "conversations.history")) == 30
    assert all(call.args["limit"] == "20" for call in calls(slack, "conversations.history"))


async def test_limited_app_pages_of_15_spaced_by_the_tier(
    api: SlackApi, slack: FakeSlack, clock: FakeClock, token: str
) -> None:
    slack.limited_app = True
    expected = seed(slack, 40, {5: 20, 30: 3})
    history = reader(api, clock, LIMITED)
    records = await read(history, token)

    assert set(ids(records)) == set(expected) and len(ids(records)) == len(expected)
    history_calls = calls(slack, "conversations.history")
    replies_calls = calls(slack, "conversations.replies")
    assert [call.args["limit"] for call in history_calls + replies_calls] == ["15"] * 6
    assert len(history_calls) == 3 and len(replies_calls) == 3  # 40 = 15+15+10; 21 = 15+6
    # At the tier's pace (1 a minute, of which the import takes 0.8): never a 429, and each
    # method's calls at least 75 s apart on the clock Slack counts with.
    assert slack.limited == 0 and history.rate_limited == 0
    for method_calls in (history_calls, replies_calls):
        gaps = [b.at - a.at for a, b in itertools.pairwise(method_calls)]
        assert gaps and min(gaps) >= 75.0
    assert history.expected_seconds(40, threads=2, replies=23) == 3 * 75.0


async def test_the_limited_tier_is_what_slack_answers_an_ask_for_more(
    api: SlackApi, slack: FakeSlack, clock: FakeClock, token: str
) -> None:
    slack.limited_app = True
    seed(slack, 40, {})
    page = await api.conversations_history(token, CHANNEL, limit=200)
    assert len(page.items) == 15 and page.next_cursor  # capped, not refused
    # Read at Tier 3 while Slack holds the app to 1 a minute: 429s, waited out, nothing lost.
    history = reader(api, clock, TIER_3)
    records = await read(history, token)
    assert len(ids(records)) == 40
    assert history.rate_limited > 0
    assert slack.limited == history.rate_limited


async def test_a_429_waits_retry_after_and_asks_for_the_same_page(
    api: SlackApi, slack: FakeSlack, clock: FakeClock, token: str
) -> None:
    expected = seed(slack, 30, {25: 12})
    history = reader(api, clock, Tier(50, 10))
    records: list[HistoryRecord] = []
    async for record in history.records(token, CHANNEL):
        records.append(record)
        if len(records) == 1:
            slack.rate_limit("conversations.history", retry_after=7)
            slack.rate_limit("conversations.replies", retry_after=5)
    assert set(ids(records)) == set(expected) and len(ids(records)) == len(expected)
    assert history.rate_limited == 2
    assert 7 in clock.slept and 5 in clock.slept
    history_calls = calls(slack, "conversations.history")
    # Four calls for three pages: the limited one was asked again with the same cursor.
    assert len(history_calls) == 4
    assert history_calls[1].args.get("cursor") == history_calls[2].args.get("cursor")
    assert history_calls[1].args.get("cursor")


async def test_an_outage_is_retried_a_few_times_then_raised(
    api: SlackApi, slack: FakeSlack, clock: FakeClock, token: str
) -> None:
    expected = seed(slack, 12, {3: 4})
    slack.fail("conversations.replies", "internal_error", times=2)
    records = await read(reader(api, clock, Tier(50, 5)), token)
    assert set(ids(records)) == set(expected)
    assert len(calls(slack, "conversations.replies")) == 3  # the same page, asked again

    slack.fail("conversations.history", "service_unavailable", status=503, times=10)
    with pytest.raises(ProviderUnreachable):
        await read(reader(api, clock, Tier(50, 5), retries=3), token)
    assert slack.programmed[-1].times == 10 - 4  # one try and three retries


async def test_resume_from_any_checkpoint_yields_the_rest_exactly(
    api: SlackApi, slack: FakeSlack, clock: FakeClock, token: str
) -> None:
    slack.repeat_thread_root = True
    expected = seed(slack, 50, {49: 3, 40: 17, 20: 1, 0: 5})
    slack.corrupt(CHANNEL, ts(BASE + 30 * 10), "not a message")
    history = reader(api, clock, Tier(50, 7))
    full = await read(history, token)
    assert len(full) == len(expected)

    for cut in range(len(full)):
        before = full[: cut + 1]
        calls_before = len(slack.calls)
        rest = await read(history, token, after=before[-1].checkpoint)
        # Nothing lost, nothing twice: a fresh run on (no stored cursor is needed).
        assert ids(before) + ids(rest) == ids(full), cut
        first_history = next(
            c for c in slack.calls[calls_before:] if c.method == "conversations.history"
        )
        assert "cursor" not in first_history.args


async def test_users_list_every_page_deleted_users_and_bots_too(
    api: SlackApi, slack: FakeSlack, clock: FakeClock, token: str
) -> None:
    slack.add_user("U0ADA", "Ada Lovelace", "ada", "https://example.test/ada.png")
    slack.add_user("U0BEN", "Ben Bitdiddle")
    slack.add_user("U0GONE", "Gone Person", deleted=True)
    slack.add_user("U0CIBOT", "CI Bot", "ci", bot_id="B0CI")
    for n in range(3):
        slack.add_user(f"U0X{n}", f"Extra {n}")
    history = SlackHistory(api, users_tier=Tier(20, 3), clock=clock, sleep=clock.sleep)
    users = await history.users(token)

    assert list(users) == ["U0ADA", "U0BEN", "U0GONE", "U0CIBOT", "U0X0", "U0X1", "U0X2"]
    assert users["U0ADA"].name == "ada"
    assert users["U0ADA"].avatar_url == "https://example.test/ada.png"
    assert users["U0BEN"].name == "Ben Bitdiddle"
    assert users["U0GONE"].name == "Gone Person" and users["U0CIBOT"].name == "ci"
    listed = calls(slack, "users.list")
    assert [c.args.get("cursor") is None for c in listed] == [True, False, False]
    assert all(c.args["limit"] == "3" for c in listed)
    gaps = [b.at - a.at for a, b in itertools.pairwise(listed)]
    assert min(gaps) >= 60 / (20 * 0.8)  # Tier 2's pace


async def test_malformed_messages_are_quarantined_where_they_were(
    api: SlackApi, slack: FakeSlack, clock: FakeClock, token: str
) -> None:
    expected = seed(slack, 10, {8: 4})
    slack.corrupt(CHANNEL, ts(BASE + 7 * 10), ["not", "an", "object"])
    no_ts = history_message(ts(BASE + 3 * 10), "U0ADA", "x")
    del no_ts["ts"]
    slack.corrupt(CHANNEL, ts(BASE + 3 * 10), no_ts)
    slack.corrupt(CHANNEL, f"{BASE + 81}.000002", {"type": "message", "ts": "yesterday"})
    records = await read(reader(api, clock, Tier(50, 5)), token)

    quarantined = [r.quarantined for r in records if r.quarantined is not None]
    assert [(q.file, q.position) for q in quarantined] == [
        ("conversations.replies", 2),  # parent 8's thread: root, reply 1, the broken reply 2
        ("conversations.history", 2),  # parent 7 of 9 8 7 6 5: third on the first page
        ("conversations.history", 1),  # parent 3 of 4 3 2 1 0
    ]
    assert quarantined[0].reason == "ts is not a Slack timestamp: 'yesterday'"
    assert quarantined[1].reason == "not a JSON object"
    assert quarantined[2].reason == "no ts"
    broken = {ts(BASE + 70), ts(BASE + 30), f"{BASE + 81}.000002"}
    assert set(ids(records)) == set(expected) - broken


async def test_the_window_its_edges_broadcasts_progress_and_reactions(
    api: SlackApi, slack: FakeSlack, clock: FakeClock, token: str
) -> None:
    seed(slack, 10, {2: 2})  # parents at BASE, BASE+10, ..., BASE+90
    late_reply = history_message(
        ts(BASE + 55), "U0BEN", "after the window", thread_ts=ts(BASE + 20)
    )
    broadcast = history_message(
        ts(BASE + 25),
        "U0BEN",
        "also sent to the channel",
        thread_ts=ts(BASE + 20),
        subtype="thread_broadcast",
    )
    reacted = history_message(
        ts(BASE + 40, 500),
        "U0ADA",
        "liked",
        reactions=[
            {"name": "tada", "users": ["U0BEN", "U0ADA"], "count": 2},
            {"name": "eyes", "users": ["U0BEN"]},
        ],
    )
    slack.add_history(CHANNEL, [late_reply, broadcast, reacted])
    oldest = datetime.fromtimestamp(BASE + 20, UTC).replace(microsecond=100)  # exactly parent 2
    latest = datetime.fromtimestamp(BASE + 50, UTC).replace(microsecond=100)  # exactly parent 5
    records = await read(reader(api, clock), token, oldest=oldest, latest=latest)

    seen = ids(records)
    assert seen == [
        ts(BASE + 40, 500),
        ts(BASE + 40),
        ts(BASE + 30),
        ts(BASE + 25),  # the broadcast, from the channel's history only
        ts(BASE + 20),  # `oldest` is inclusive, `latest` (parent 5) is not
        f"{BASE + 21}.000001",
        f"{BASE + 21}.000002",  # the reply after `latest` is left out
    ]
    done = [r.done for r in records]
    assert done == sorted(done) and 0 < done[0] < 0.5
    assert done[-1] == pytest.approx(1.0)
    assert [r.reactions for r in records][:2] == [3, 0]


async def test_expected_seconds_by_tier(api: SlackApi, clock: FakeClock) -> None:
    limited = reader(api, clock, LIMITED)
    assert limited.seconds_per_request() == 75.0
    assert limited.expected_seconds(150) == 10 * 75.0
    assert limited.expected_seconds(150, threads=40, replies=300) == (40 + 20) * 75.0
    tier3 = reader(api, clock, TIER_3, share=1.0)
    assert tier3.expected_seconds(10_000) == pytest.approx(50 * 1.2)
    with pytest.raises(ValueError):
        reader(api, clock, TIER_3, share=0)
