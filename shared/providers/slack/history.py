"""Slack's Web API as an import source (SPEC §9): a conversation's messages and thread replies
(`conversations.history`, `conversations.replies`) and the workspace's users (`users.list`),
read at the app's rate-limit tier and resumable right after any record.

Order. `conversations.history` lists a channel newest first, and Slack offers no other
order: records come newest parent first, each parent followed by its thread's replies,
oldest first (a reply's thread id is its root's, so the order does not matter to the ids).

Window. A job's `oldest` and `latest` make the window [oldest, latest): a message sent at
`oldest` is in, one sent at `latest` is not. A thread belongs to its root: a root inside the
window brings its replies sent before `latest`; a root before `oldest` brings none (Slack
lists no replies without their root, so they cannot be found; a reply also sent to the
channel, `thread_broadcast`, is listed by the channel's history and imported from there,
never twice).

Checkpoint (what a record carries, to resume right after it): `{"latest": <ts>, "thread":
<ts|None>, "reply": <ts|None>}`. `latest` is the oldest parent already yielded: a resume
reads the channel's history again before it (`inclusive=false`), with a fresh cursor
(Slack's cursors do not outlive a run). `thread` is a root whose replies were not all
yielded yet, `reply` the last one that was: a resume first reads that thread's replies
after it. Nothing is lost; a message is yielded twice only when the importer stored an
older checkpoint than the last record it published, and then with the same ids.

Pacing. Slack limits each method per app and workspace: Tier 3 (50+ a minute) for
`conversations.history|replies` of Marketplace and internal (customer-built) apps; 1 a
minute and 15 messages a page for commercially distributed apps outside the Marketplace
(new installs since 2025-05-29, existing ones from 2026-03-03), a larger `limit` being
capped, not refused; `users.list` Tier 2 (20+ a minute). The tier is the provider app's
setting (`Tier`); the import keeps to `share` of it (0.8 by default) per token and method,
so that live sync's own calls of the same methods (catch-up after a gap, looking up an
ambiguous post) still find room; sync's live path (Events API, `chat.*` writes) uses other
methods and is not touched by an import at all. A 429 waits its `Retry-After` and asks for
the same page again, never skips it; an outage is retried with backoff a few times, then
raised (the job's checkpoint is where it resumes).
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.providers.chat import (
    Author,
    MessageChange,
    PermanentError,
    ProviderUnreachable,
    RateLimited,
)
from shared.providers.history import HistoryRecord, Quarantined
from shared.providers.slack.api import Page, SlackApi
from shared.providers.slack.limits import (
    HISTORY,
    LIMITED,
    REPLIES,
    TIER_2,
    TIER_3,
    Clock,
    Pacer,
    Sleep,
    Tier,
)
from shared.providers.slack.messages import author_of, change_of, reactions_of

__all__ = [
    "IMPORT_SHARE",
    "LIMITED",
    "TIER_2",
    "TIER_3",
    "SlackHistory",
    "Tier",
]

USERS = "users.list"


# The part of a tier an import uses: the rest is left to live sync's calls of the same methods.
IMPORT_SHARE = 0.8
# An outage (5xx, no answer) is retried this many times, waiting 1, 2, 4, 8 s, then raised.
UNREACHABLE_RETRIES = 4
MAX_BACKOFF = 30.0

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class _Checkpoint:
    latest: str | None = None
    thread: str | None = None
    reply: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"latest": self.latest, "thread": self.thread, "reply": self.reply}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> _Checkpoint:
        if not data:
            return cls()
        values = {key: data.get(key) for key in ("latest", "thread", "reply")}
        for key, value in values.items():
            if value is not None and _key(value) is None:
                raise ValueError(f"not a Slack history checkpoint: {key}={value!r}")
        return cls(**values)


class SlackHistory:
    """Reads for one provider app (its `tier`); one instance is shared by the jobs of that
    app in a process, so that they pace together per token."""

    def __init__(
        self,
        api: SlackApi,
        tier: Tier = TIER_3,
        *,
        users_tier: Tier = TIER_2,
        share: float = IMPORT_SHARE,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        retries: int = UNREACHABLE_RETRIES,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError("share is the part of the tier an import uses: 0 < share <= 1")
        self.api = api
        self.tier = tier
        self.users_tier = users_tier
        self.share = share
        self._clock = clock
        self._sleep = sleep
        self._retries = retries
        self._pacers: dict[tuple[str, str], Pacer] = {}
        self.rate_limited = 0  # 429s answered to these reads, for the job's metrics

    # -- what a job shows --------------------------------------------------------------------

    def seconds_per_request(self, method: str = HISTORY) -> float:
        tier = self.users_tier if method == USERS else self.tier
        return 60.0 / (tier.per_minute * self.share)

    def expected_seconds(self, messages: int, threads: int = 0, replies: int = 0) -> float:
        """How long reading `messages` channel messages, `threads` of them with `replies`
        replies in all, takes at least at this pace. The two methods are paced apart and
        asked in turn, so the busier one sets the time."""
        page = self.tier.page_size
        history_requests = max(1, math.ceil(messages / page))
        # Each thread is a request at least; a long one a request per page.
        reply_requests = threads + replies // page
        return max(history_requests, reply_requests) * self.seconds_per_request(HISTORY)

    # -- users -------------------------------------------------------------------------------

    async def users(self, token: str) -> dict[str, Author]:
        """Every user of the workspace (deleted ones and bots too: old messages name them),
        by id, as authors."""
        found: dict[str, Author] = {}
        cursor: str | None = None
        while True:
            page = await self._call(
                token,
                USERS,
                functools.partial(
                    self.api.users_list, token, cursor=cursor, limit=self.users_tier.page_size
                ),
            )
            for user in page.items:
                user_id = user.get("id")
                if isinstance(user_id, str) and user_id:
                    found[user_id] = author_of(user)
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    # -- messages ----------------------------------------------------------------------------

    async def records(
        self,
        token: str,
        channel_id: str,
        *,
        oldest: datetime | None = None,
        latest: datetime | None = None,
        after: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[HistoryRecord]:
        """The channel's records in [oldest, latest), newest parent first, each thread's
        replies after their root; from right after `after` (a record's checkpoint)."""
        state = _Checkpoint.from_dict(after)
        end = _slack_ts(latest) if latest is not None else None
        # Exclusive on both sides for Slack; one microsecond earlier makes `oldest` inclusive.
        since = _slack_ts(oldest, minus_one=True) if oldest is not None else None
        progress = await self._progress(token, channel_id, oldest, latest)

        checkpoint = state
        if state.thread is not None:
            async for record in self._thread(
                token, channel_id, state.thread, state.reply, end, progress(state.thread)
            ):
                yield record
            checkpoint = _Checkpoint(state.latest)

        before = _earlier(state.latest, end)
        cursor: str | None = None
        while True:
            try:
                page = await self._call(
                    token,
                    HISTORY,
                    functools.partial(
                        self.api.conversations_history,
                        token,
                        channel_id,
                        cursor=cursor,
                        oldest=since,
                        latest=before,
                        inclusive=False,
                        limit=self.tier.page_size,
                    ),
                )
            except PermanentError as exc:
                if exc.error != "invalid_cursor" or cursor is None:
                    raise
                # Pages are read whole before the next is asked for: the last parent done
                # is exactly where the expired cursor pointed.
                before, cursor = _earlier(checkpoint.latest, end), None
                continue
            for position, message in _entries(page):
                change = _change(channel_id, message)
                if message is None or change is None:
                    yield HistoryRecord(
                        checkpoint=checkpoint.as_dict(),
                        quarantined=Quarantined(HISTORY, position, _why(message)),
                        done=progress(checkpoint.latest),
                        page_start=position == 0,
                    )
                    continue
                ts = change.external_message_id
                threaded = _has_replies(message, ts)
                checkpoint = _Checkpoint(ts, ts if threaded else None)
                done = progress(ts)
                yield HistoryRecord(
                    checkpoint=checkpoint.as_dict(),
                    change=change,
                    done=done,
                    reactions=reactions_of(message),
                    page_start=position == 0,
                )
                if threaded:
                    async for record in self._thread(token, channel_id, ts, None, end, done):
                        yield record
                    checkpoint = _Checkpoint(ts)
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def _thread(
        self,
        token: str,
        channel_id: str,
        root: str,
        after_reply: str | None,
        end: str | None,
        done: float,
    ) -> AsyncIterator[HistoryRecord]:
        """The replies of `root` after `after_reply`, before `end`, oldest first."""
        floor = _key(after_reply) if after_reply is not None else _key(root)
        ceiling = _key(end) if end is not None else None
        checkpoint = _Checkpoint(root, root, after_reply)
        cursor: str | None = None
        while True:
            try:
                page = await self._call(
                    token,
                    REPLIES,
                    functools.partial(
                        self.api.conversations_replies,
                        token,
                        channel_id,
                        root,
                        cursor=cursor,
                        oldest=after_reply,
                        latest=end,
                        limit=self.tier.page_size,
                    ),
                )
            except PermanentError as exc:
                if exc.error == "thread_not_found":
                    return  # the root was deleted since it was listed, its replies with it
                raise
            for position, message in _entries(page):
                change = _change(channel_id, message)
                if message is None or change is None:
                    yield HistoryRecord(
                        checkpoint=checkpoint.as_dict(),
                        quarantined=Quarantined(REPLIES, position, _why(message)),
                        done=done,
                        page_start=position == 0,
                    )
                    continue
                ts = change.external_message_id
                key = _key(ts)
                if key is None or floor is None or key <= floor:
                    continue  # the root, repeated at the head of a page, or one already read
                if ceiling is not None and key >= ceiling:
                    continue
                if change.subtype == "thread_broadcast":
                    continue  # listed by the channel's history too: imported from there
                checkpoint = _Checkpoint(root, root, ts)
                yield HistoryRecord(
                    checkpoint=checkpoint.as_dict(),
                    change=change,
                    done=done,
                    reactions=reactions_of(message),
                    page_start=position == 0,
                )
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # -- pacing ------------------------------------------------------------------------------

    def _pacer(self, token: str, method: str) -> Pacer:
        pacer = self._pacers.get((token, method))
        if pacer is None:
            pacer = Pacer(self.seconds_per_request(method), self._clock, self._sleep)
            self._pacers[(token, method)] = pacer
        return pacer

    async def _call(self, token: str, method: str, request: Callable[[], Awaitable[Page]]) -> Page:
        """One page, paced; asked again after a 429 (when Slack says) or an outage (with
        backoff, a few times)."""
        pacer = self._pacer(token, method)
        failures = 0
        while True:
            await pacer.wait()
            try:
                return await request()
            except RateLimited as exc:
                self.rate_limited += 1
                pacer.hold(exc.retry_after)
            except ProviderUnreachable:
                failures += 1
                if failures > self._retries:
                    raise
                pacer.hold(min(MAX_BACKOFF, 2.0 ** (failures - 1)))

    async def _progress(
        self, token: str, channel_id: str, oldest: datetime | None, latest: datetime | None
    ) -> Callable[[str | None], float]:
        """The share of the window read once the history is at a ts (newest first: from
        `latest` down to `oldest`). Without `oldest`, the channel's creation is the start."""
        end = latest.timestamp() if latest is not None else time.time()
        start: float | None = oldest.timestamp() if oldest is not None else None
        if start is None:
            try:
                info = await self.api.conversations_info(token, channel_id)
            except (PermanentError, ProviderUnreachable, RateLimited):
                info = {}
            created = info.get("created")
            start = float(created) if isinstance(created, int | float) else None

        def done(ts: str | None) -> float:
            key = _key(ts) if ts is not None else None
            if key is None or start is None or end <= start:
                return 0.0
            return min(1.0, max(0.0, (end - float(key)) / (end - start)))

        return done


def _slack_ts(when: datetime, *, minus_one: bool = False) -> str:
    """A time as Slack's `seconds.micro`, exactly (a float loses the last digit)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    micros = (when - _EPOCH) // _MICROSECOND - (1 if minus_one else 0)
    micros = max(0, micros)
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _key(ts: Any) -> Decimal | None:
    if not isinstance(ts, str) or not ts:
        return None
    try:
        key = Decimal(ts)
    except InvalidOperation:
        return None
    return key if key.is_finite() else None


def _earlier(first: str | None, second: str | None) -> str | None:
    """The earlier of two ts, either of which may be missing."""
    if first is None or second is None:
        return first or second
    first_key, second_key = _key(first), _key(second)
    if first_key is None or second_key is None:
        return first if second_key is None else second
    return first if first_key <= second_key else second


def _entries(page: Page) -> list[tuple[int, dict[str, Any] | None]]:
    """The page's entries at their positions in Slack's list, None where not an object."""
    entries: list[tuple[int, dict[str, Any] | None]] = [(i, None) for i in page.dropped]
    items = iter(page.items)
    dropped = set(page.dropped)
    total = len(page.items) + len(page.dropped)
    entries.extend((i, next(items)) for i in range(total) if i not in dropped)
    return sorted(entries, key=lambda entry: entry[0])


def _change(channel_id: str, message: Mapping[str, Any] | None) -> MessageChange | None:
    """The message as a change; None when it cannot be one (no object, no usable ts)."""
    if message is None or _key(message.get("ts")) is None:
        return None
    return change_of(channel_id, message)


def _why(message: Mapping[str, Any] | None) -> str:
    if message is None:
        return "not a JSON object"
    if "ts" not in message:
        return "no ts"
    return f"ts is not a Slack timestamp: {str(message.get('ts'))[:40]!r}"


def _has_replies(message: Mapping[str, Any], ts: str) -> bool:
    count = message.get("reply_count")
    if isinstance(count, int) and count > 0:
        return True
    latest_reply = message.get("latest_reply")
    return message.get("thread_ts") == ts and isinstance(latest_reply, str) and latest_reply != ts
