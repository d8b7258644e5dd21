"""Runs import jobs: takes one under a lease, reads its source conversation by conversation,
and publishes each message as `message.received` (`imported: true`) on
`hookhub.chat.inbound`, entering it in the message map.

Per batch of records: the envelopes are published (in order: one chat channel, one
partition) and the copies written to the map; only then does the conversation's checkpoint
move past them. The checkpoint, the progress and the lease are written together every
`import_progress_seconds` by the job's heartbeat, whatever the job is waiting for (a
pacer, a page, a back-off, a Retry-After), and by a batch's commit when one is due. That
renewal is also how a cancel (a flag on the job) reaches the runner: the moment one reads
the flag, the job's work is cancelled at whatever it awaits, so no provider call starts
after it. An importer killed mid-job leaves a checkpoint at most that old: the replica
that takes the job over publishes again what came after it, with the same envelope ids
(derived from the provider's ids), which the chat product drops as duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from pymongo.errors import PyMongoError

from services.importer.jobs import QUARANTINE_KEPT, JobRepository, LeaseLost
from services.importer.metrics import ImportMetrics
from shared.domain.message_map import Copy, MessageMap, copy_id, inbound_message_id
from shared.domain.operational import publish_integration_event
from shared.domain.usage import UsageCounters
from shared.kernel import tracing
from shared.kernel.envelopes import Encoded, IntegrationEvent, Topic, encode_change, new_event_id
from shared.kernel.errors import HookhubError, Unavailable
from shared.kernel.ids import utcnow
from shared.kernel.kafka import EventPublisher
from shared.kernel.mongo import Document
from shared.providers.chat import (
    Author,
    ChatProvider,
    MessageChange,
    PermanentError,
    ProviderUnreachable,
    RateLimited,
)
from shared.providers.history import Conversation, HistoryRecord
from shared.providers.networks import Source

log = structlog.get_logger(__name__)

# A conversation whose provider is unreachable this many times in a row fails the job
# (it can be resumed); a rate limit is waited out however often it comes.
MAX_UNREACHABLE = 5
# Replies whose thread's first message the job remembers (threads are flat: a reply to one
# of them joins that thread), the most recent kept: about 30 MB at most (measured).
MAX_REMEMBERED_ROOTS = 100_000


class Cancelled(Exception):
    pass


def _source_name(doc: Document) -> str:
    """What a job reads, as `POST /api/imports` names an export (`slack_export`), or the
    provider's API (`slack_api`)."""
    if doc.get("source") == "export":
        return str((doc.get("upload") or {}).get("source") or "slack_export")
    return f"{doc.get('provider')}_api"


@dataclass(eq=False)
class Run:
    """One run of a job by this replica: its work (a task, so that a cancel can end it at
    whatever it awaits), and its renewals."""

    doc: Document
    job: Job | None = None  # once its source is open
    work: asyncio.Task[None] | None = None
    cancelled: bool = False
    last_renewal: float = field(default_factory=time.monotonic)
    renewing: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def id(self) -> str:
        return str(self.doc["_id"])

    def cancel(self) -> None:
        """The job's `cancel_requested` was read: its work ends at once (its next step is
        its CancelledError), not at its next renewal."""
        self.cancelled = True
        if self.work is not None:
            self.work.cancel()


@dataclass(frozen=True)
class Target:
    """Where one conversation's messages go."""

    conversation: Conversation
    channel_id: str
    mapping_id: str | None
    # What decided the destination: `channel_map:<the key that matched>` or `mapping`.
    matched: str | None = None


@dataclass(eq=False)
class Prepared:
    """A batch ready to publish: its envelopes, its map copies, and its counts."""

    last: HistoryRecord  # its checkpoint and share are the conversation's once published
    envelopes: list[Encoded] = field(default_factory=list)
    copies: list[Copy] = field(default_factory=list)
    imported: Counter[str] = field(default_factory=Counter)  # by subtype
    skipped: Counter[str] = field(default_factory=Counter)  # by reason
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    reactions: int = 0
    pages: int = 0


@dataclass
class Tally:
    """The job's progress and report as they grow; written with each renewal."""

    channels_total: int = 0
    channels_done: int = 0
    imported: int = 0
    skipped: int = 0
    quarantined_total: int = 0
    errors: int = 0
    reactions: int = 0
    by_subtype: Counter[str] = field(default_factory=Counter)
    by_channel: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped_channels: list[dict[str, Any]] = field(default_factory=list)
    # Files of an export left out whole (a ZIP's `.json` member that is not one of its
    # exports): the first 100, and how many in all.
    skipped_files: list[dict[str, Any]] = field(default_factory=list)
    skipped_files_total: int = 0
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    failed_channels: list[dict[str, Any]] = field(default_factory=list)
    pace: dict[str, Any] | None = None
    # Conversation weights, for the percent: done ones whole, the current one in part.
    weights: dict[str, int] = field(default_factory=dict)
    done_share: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_job(cls, job: Document) -> Tally:
        """What an earlier run of the job counted (the job goes on from its checkpoint)."""
        report = job.get("report") or {}
        progress = job.get("progress") or {}
        tally = cls(
            imported=int(progress.get("messages_imported") or 0),
            skipped=int(progress.get("messages_skipped") or 0),
            quarantined_total=int(progress.get("messages_quarantined") or 0),
            errors=int(progress.get("errors") or 0),
            reactions=int(report.get("reactions") or 0),
        )
        tally.by_subtype.update(report.get("by_subtype") or {})
        tally.by_channel = {
            row["external_channel_id"]: dict(row) for row in report.get("channels") or []
        }
        tally.quarantined = list(report.get("quarantined") or [])
        tally.failed_channels = list(report.get("failed_channels") or [])
        return tally

    def channel(
        self, conversation: Conversation, channel_id: str, matched: str | None = None
    ) -> dict[str, Any]:
        row = self.by_channel.get(conversation.id)
        if row is None:
            row = self.by_channel[conversation.id] = {
                "external_channel_id": conversation.id,
                "name": conversation.name,
                "channel_id": channel_id,
                "matched": matched,
                "imported": 0,
                "skipped": 0,
                "quarantined": 0,
            }
        return row

    def percent(self) -> float:
        total = sum(self.weights.values())
        if not total:
            return 100.0 if self.channels_total == 0 else 0.0
        done = sum(self.weights[c] * share for c, share in self.done_share.items())
        return round(min(100.0, 100.0 * done / total), 1)

    def progress(self, eta_seconds: float | None) -> dict[str, Any]:
        return {
            "channels_total": self.channels_total,
            "channels_done": self.channels_done,
            "messages_imported": self.imported,
            "messages_skipped": self.skipped,
            "messages_quarantined": self.quarantined_total,
            "errors": self.errors,
            "percent": self.percent(),
            "eta_seconds": eta_seconds,
        }

    def report(self) -> dict[str, Any]:
        return {
            "by_subtype": dict(self.by_subtype),
            "channels": list(self.by_channel.values()),
            "skipped_channels": self.skipped_channels,
            "skipped_files": self.skipped_files,
            "skipped_files_total": self.skipped_files_total,
            "failed_channels": self.failed_channels,
            "quarantined": self.quarantined,
            "quarantined_total": self.quarantined_total,
            "reactions": self.reactions,
            "pace": self.pace,
        }


@dataclass
class Job:
    """One job as this replica runs it."""

    run: Run
    source: Source
    provider: ChatProvider
    targets: list[Target]
    tally: Tally
    checkpoint: dict[str, Any]
    dry_run: bool
    integration_id: str | None
    users: dict[str, Author] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    share_at_start: float = 0.0
    # (channel, reply) → the first message of its thread, for the replies read last.
    roots: OrderedDict[tuple[str, str], str] = field(default_factory=OrderedDict)

    def thread_root(self, change: MessageChange, parent: str, held: Copy | None) -> str:
        """The first message of the chain the change replies into (threads are flat): the
        root its parent was threaded under, as this job read it or as the message map has
        it, else the parent itself. An export's reader has already followed the chain
        (through its first pass); an API source reads parents before their replies."""
        channel = change.external_channel_id
        root = self.roots.get((channel, parent))
        if root is None and held is not None and held.external_thread_id:
            root = held.external_thread_id
        root = root or parent
        self.roots[(channel, change.external_message_id)] = root
        if len(self.roots) > MAX_REMEMBERED_ROOTS:
            self.roots.popitem(last=False)
        return root

    @property
    def doc(self) -> Document:
        return self.run.doc

    @property
    def id(self) -> str:
        return str(self.doc["_id"])

    def eta(self) -> float | None:
        percent = self.tally.percent()
        done = percent - self.share_at_start
        if done <= 0.5:
            return None
        elapsed = time.monotonic() - self.started
        return round(elapsed * (100.0 - percent) / done, 1)


OpenJob = Callable[
    [Document], Awaitable[tuple[Source, ChatProvider, list[Target], list[dict[str, Any]]]]
]


class Runner:
    def __init__(
        self,
        *,
        jobs: JobRepository,
        open_job: OpenJob,
        completed: Callable[[Document], Awaitable[None]],
        message_map: MessageMap,
        publisher: EventPublisher,
        metrics: ImportMetrics,
        owner: str,
        batch_size: int,
        progress_seconds: float,
        poll_seconds: float,
        usage: UsageCounters,
    ) -> None:
        self._jobs = jobs
        self._open_job = open_job
        self._completed = completed
        self._map = message_map
        self._publisher = publisher
        self._metrics = metrics
        self.owner = owner
        self._batch = batch_size
        self._progress_seconds = progress_seconds
        self._poll = poll_seconds
        self._usage = usage

    async def run(self, ready: Callable[[], bool]) -> None:
        """Take a job, run it, look for the next; one job at a time per replica. Only
        once `ready()` (Kafka connected: a job publishes)."""
        while True:
            if not ready():
                await asyncio.sleep(self._poll)
                continue
            try:
                doc = await self._jobs.take(self.owner)
            except Exception as exc:  # MongoDB away: try again later
                log.warning("import_take_failed", error=repr(exc))
                doc = None
            if doc is None:
                await asyncio.sleep(self._poll)
                continue
            await self.run_job(doc)

    async def run_job(self, doc: Document) -> None:
        """The job run by this replica, in a trace of its own: its reads, publishes and
        events under one span."""
        with tracing.span(
            f"import {_source_name(doc)}",
            root=True,
            workspace_id=doc.get("workspace_id"),
            integration_id=doc.get("integration_id"),
            provider=doc.get("provider"),
            job_id=str(doc["_id"]),
        ):
            await self._run_job(doc)

    async def _run_job(self, doc: Document) -> None:
        log.info("import_started", job_id=doc["_id"], attempt=doc.get("attempts"))
        run = Run(doc)
        try:
            await self._heeding(run, self._import(run))
            assert run.job is not None
            await self._finish(run.job, "completed")
        except Cancelled:
            await self._finish(run.job or run, "cancelled")
        except LeaseLost:
            log.warning("import_lease_lost", job_id=doc["_id"])
        except asyncio.CancelledError:
            # The process is stopping: the job goes back at its checkpoint, for another
            # replica at once rather than after the lease.
            if run.job is not None:
                with contextlib.suppress(Exception):
                    await self._jobs.hand_back(run.id, self.owner, self._state(run.job))
                    log.info("import_handed_back", job_id=run.id)
            raise
        except Exception as exc:
            reason = exc.message if isinstance(exc, HookhubError) else repr(exc)
            log.exception("import_failed", job_id=doc["_id"], error=reason)
            await self._fail(doc, run.job, reason)
        finally:
            if run.job is not None:
                with contextlib.suppress(Exception):
                    await run.job.source.close()

    async def _heeding(self, run: Run, work: Coroutine[Any, Any, None]) -> None:
        """`work` as a task beside the job's heartbeat. A cancel read by either ends the
        work where it waits (Cancelled); a lost lease ends it too (LeaseLost)."""
        run.work = asyncio.ensure_future(work)
        beat = asyncio.ensure_future(self._heartbeat(run))
        try:
            await asyncio.wait({run.work, beat}, return_when=asyncio.FIRST_COMPLETED)
            if not run.work.done():  # the heartbeat ended: the lease is lost
                run.work.cancel()
                await asyncio.wait({run.work})
                beat.result()
            if run.cancelled and (run.work.cancelled() or run.work.exception() is not None):
                raise Cancelled()
            run.work.result()
        finally:
            for task in (run.work, beat):
                task.cancel()
            await asyncio.gather(run.work, beat, return_exceptions=True)

    async def _heartbeat(self, run: Run) -> None:
        """The job renewed every progress interval whatever its work awaits: the lease
        kept, the progress written, a cancel heard. Ends only with LeaseLost."""
        while True:
            due = run.last_renewal + self._progress_seconds
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            try:
                await self._renew(run)
            except PyMongoError as exc:  # MongoDB away for a moment: the lease has room
                log.warning("import_renewal_failed", job_id=run.id, error=repr(exc))
                await asyncio.sleep(self._progress_seconds)

    async def _import(self, run: Run) -> None:
        doc = run.doc
        source, provider, targets, skipped = await self._open_job(doc)
        tally = Tally.from_job(doc)
        tally.skipped_channels = skipped
        tally.skipped_files, tally.skipped_files_total = source.left_out()
        tally.pace = source.pace()
        tally.channels_total = len(targets)
        checkpoint = dict(doc.get("checkpoint") or {})
        job = run.job = Job(
            run=run,
            source=source,
            provider=provider,
            targets=targets,
            tally=tally,
            checkpoint=checkpoint,
            dry_run=bool((doc.get("params") or {}).get("dry_run")),
            integration_id=doc.get("integration_id"),
        )
        for target in targets:
            tally.weights[target.conversation.id] = source.size(target.conversation)
            tally.channel(target.conversation, target.channel_id, target.matched)
            state = checkpoint.get(target.conversation.id) or {}
            if state.get("done"):
                tally.done_share[target.conversation.id] = 1.0
                tally.channels_done += 1
        job.users = await source.users()
        job.started = time.monotonic()
        job.share_at_start = tally.percent()
        if doc.get("attempts", 1) <= 1:
            await self._announce(job, "started")
        await self._renew(run, force=True)
        for target in targets:
            if (checkpoint.get(target.conversation.id) or {}).get("done"):
                continue
            await self._conversation(job, target)

    # -- one conversation ----------------------------------------------------------------

    async def _conversation(self, job: Job, target: Target) -> None:
        conversation = target.conversation
        unreachable = 0
        while True:
            after = (job.checkpoint.get(conversation.id) or {}).get("after")
            try:
                await self._read(job, target, job.source.records(conversation, after))
                break
            except RateLimited as exc:
                self._metrics.rate_limited.labels(job.source.provider).inc()
                await asyncio.sleep(exc.retry_after)
            except (ProviderUnreachable, Unavailable, PyMongoError) as exc:
                # The provider, Kafka or MongoDB away for a moment: the read goes on from
                # the checkpoint after a pause; for long, the job fails (and can resume).
                unreachable += 1
                if unreachable >= MAX_UNREACHABLE:
                    raise
                log.warning("import_paused", job_id=job.id, error=repr(exc))
                await asyncio.sleep(min(60.0, 2.0**unreachable))
            except PermanentError as exc:
                if exc.scope == "integration":
                    raise
                # This channel cannot be read (bot not in it, channel gone): reported, and
                # the job goes on with the others.
                job.tally.errors += 1
                job.tally.failed_channels.append(
                    {
                        "external_channel_id": conversation.id,
                        "name": conversation.name,
                        "reason": f"{exc.error}: {exc.message}",
                    }
                )
                break
        job.checkpoint[conversation.id] = {
            **(job.checkpoint.get(conversation.id) or {}),
            "done": True,
        }
        job.tally.done_share[conversation.id] = 1.0
        job.tally.channels_done += 1
        # Written with the next renewal: lost in a crash, the conversation is read again
        # from its last checkpoint, which yields nothing more.
        await self._renew(job.run)

    async def _read(self, job: Job, target: Target, records: AsyncIterator[HistoryRecord]) -> None:
        """Batches of records, each prepared while the one before it is published: batch N
        is handed to Kafka only once N-1 is acknowledged and checkpointed, so the checkpoint
        and the topic's order are as if one at a time."""
        batch: list[HistoryRecord] = []
        filled_at = time.monotonic()
        committing: asyncio.Future[None] | None = None

        async def hand_on(full: list[HistoryRecord]) -> None:
            nonlocal committing
            prepared = await self._prepare(job, target, full)
            if committing is not None:
                await committing
            committing = asyncio.ensure_future(self._commit(job, target, prepared))

        try:
            try:
                async for record in records:
                    batch.append(record)
                    now = time.monotonic()
                    if len(batch) >= self._batch or now - filled_at >= self._progress_seconds:
                        full, batch, filled_at = batch, [], now
                        await hand_on(full)
            except LeaseLost:
                raise
            except Exception:
                # The source stopped on a rate limit or an outage: what it gave is published
                # and checkpointed first, so the read goes on after it (else a source allowed
                # a page at a time would read its first page for ever).
                if batch:
                    await hand_on(batch)
                if committing is not None:
                    await committing
                raise
            if batch:
                await hand_on(batch)
            if committing is not None:
                await committing
        finally:
            if committing is not None and not committing.done():
                committing.cancel()
                await asyncio.gather(committing, return_exceptions=True)

    async def _prepare(self, job: Job, target: Target, batch: list[HistoryRecord]) -> Prepared:
        """A batch's envelopes and map copies, and what it adds to the tally (added once
        Kafka has them, so the tally and the checkpoint written together agree)."""
        conversation = target.conversation
        known = await self._known(job, conversation, batch)
        prepared = Prepared(batch[-1])
        for record in batch:
            prepared.reactions += record.reactions
            prepared.pages += record.page_start
            if record.quarantined is not None:
                prepared.quarantined.append(
                    {"external_channel_id": conversation.id, **record.quarantined.as_dict()}
                )
                continue
            change = record.change
            if change is None:
                continue
            subtype = change.subtype or "message"
            held = self._held(job, known, change.external_channel_id, change.external_message_id)
            if change.ignored or (held is not None and held.origin == "outbound"):
                # A notice the policy skips, or a message hookhub itself posted there (its
                # original is already in the chat).
                # A skipped message says why in its kind: a plain one skipped had nothing
                # to bridge (`empty`), never `skipped:message`.
                why = (change.subtype or "empty") if change.ignored else "posted_by_hookhub"
                prepared.skipped[why] += 1
                continue
            parent = change.external_thread_id
            if parent and parent != change.external_message_id:
                parent_copy = self._held(job, known, change.external_channel_id, parent)
                root = job.thread_root(change, parent, parent_copy)
                if root != parent:
                    change = replace(change, external_thread_id=root)
            envelope = await self._envelope(job, target, change, known)
            prepared.envelopes.append(envelope)
            prepared.imported[subtype] += 1
            if job.integration_id is not None:
                prepared.copies.append(
                    Copy.new(
                        workspace_id=str(job.doc["workspace_id"]),
                        channel_id=target.channel_id,
                        provider=job.source.provider,
                        integration_id=job.integration_id,
                        mapping_id=target.mapping_id,
                        external_channel_id=change.external_channel_id,
                        external_message_id=change.external_message_id,
                        external_thread_id=change.external_thread_id,
                        origin="import",
                        inbound_id=envelope.id,
                        # A Google Chat thread's name: sync finds the root of a live reply
                        # to an imported thread by it.
                        external_thread_key=change.external_thread_key,
                    )
                )
        return prepared

    async def _commit(self, job: Job, target: Target, prepared: Prepared) -> None:
        """Published, entered in the map, counted, checkpointed."""
        if prepared.envelopes and not job.dry_run:
            await self._publisher.publish_encoded(Topic.CHAT_INBOUND, prepared.envelopes)
            if prepared.copies:
                await self._map.insert(prepared.copies)
            self._usage.count(
                str(job.doc["workspace_id"]), "messages_imported", len(prepared.envelopes)
            )
        conversation, tally, provider = target.conversation, job.tally, job.source.provider
        row = tally.channel(conversation, target.channel_id)
        imported = sum(prepared.imported.values())
        skipped = sum(prepared.skipped.values())
        quarantined = len(prepared.quarantined)
        tally.imported += imported
        tally.skipped += skipped
        tally.quarantined_total += quarantined
        tally.reactions += prepared.reactions
        tally.by_subtype.update(prepared.imported)
        tally.by_subtype.update({f"skipped:{r}": n for r, n in prepared.skipped.items()})
        room = max(0, QUARANTINE_KEPT - len(tally.quarantined))
        tally.quarantined.extend(prepared.quarantined[:room])
        row["imported"] += imported
        row["skipped"] += skipped
        row["quarantined"] += quarantined
        for outcome, count in (
            ("imported", imported),
            ("skipped", skipped),
            ("quarantined", quarantined),
        ):
            if count:
                self._metrics.messages.labels(provider, outcome).inc(count)
        if prepared.pages:
            self._metrics.pages.labels(provider, job.doc.get("source") or "api").inc(prepared.pages)
        state = job.checkpoint.setdefault(conversation.id, {})
        state["after"] = prepared.last.checkpoint
        tally.done_share[conversation.id] = prepared.last.done
        await self._renew(job.run)

    def _held(self, job: Job, known: dict[str, Copy], channel: str, message: str) -> Copy | None:
        """The map's copy of a message, among those read for the batch. Without an
        integration none were read: no id is hashed per message for nothing."""
        if not known:
            return None
        return known.get(copy_id(job.source.provider, job.integration_id or "", channel, message))

    async def _known(
        self, job: Job, conversation: Conversation, batch: list[HistoryRecord]
    ) -> dict[str, Copy]:
        """The map's copies of the batch's messages and of their threads' roots: messages
        hookhub posted there itself, and roots the chat knows by its own id."""
        if job.integration_id is None:
            return {}
        wanted = set()
        for record in batch:
            change = record.change
            if change is None:
                continue
            for message in (change.external_message_id, change.external_thread_id):
                if message:
                    wanted.add(
                        copy_id(
                            job.source.provider,
                            job.integration_id,
                            change.external_channel_id,
                            message,
                        )
                    )
        return await self._map.by_ids(wanted)

    async def _envelope(
        self, job: Job, target: Target, change: MessageChange, known: dict[str, Copy]
    ) -> Encoded:
        provider, account = job.source.provider, job.source.account
        user_id = change.sender.user_id
        author = change.author or (job.users.get(user_id) if user_id else None)
        if author is None:
            author = Author(name=user_id or change.sender.bot_id or "unknown", external_id=user_id)

        async def users(found_id: str) -> Author | None:
            return job.users.get(found_id)

        thread_id = None
        root = change.external_thread_id
        if root and root != change.external_message_id:
            held = self._held(job, known, change.external_channel_id, root)
            thread_id = (held.chat_id if held is not None else None) or inbound_message_id(
                provider, account, change.external_channel_id, root
            )
        return encode_change(
            change,
            author,
            id=inbound_message_id(
                provider, account, change.external_channel_id, change.external_message_id
            ),
            type="message.received",
            workspace_id=str(job.doc["workspace_id"]),
            channel_id=target.channel_id,
            provider=provider,
            integration_id=job.integration_id or "",
            text=await job.provider.render(change.text, users),
            thread_id=thread_id,
            imported=True,
        )

    # -- the job document ------------------------------------------------------------------

    def _state(self, job: Job) -> dict[str, Any]:
        return {
            "progress": job.tally.progress(job.eta()),
            "report": job.tally.report(),
            "checkpoint": job.checkpoint,
        }

    async def _renew(self, run: Run, force: bool = False) -> None:
        """The lease extended and, once the job is open, its state written (at most every
        progress interval unless forced); a cancel found on the job ends its work."""
        async with run.renewing:  # the heartbeat's and a commit's, one after the other
            now = time.monotonic()
            if not force and now - run.last_renewal < self._progress_seconds:
                return
            run.last_renewal = now
            job = run.job
            fields = self._state(job) if job is not None else {}
            if job is not None and run.doc.get("started_at") is None:
                fields["started_at"] = run.doc["started_at"] = utcnow()
            doc = await self._jobs.renew(run.id, self.owner, fields)
        if doc.get("cancel_requested"):
            run.cancel()
        elif job is not None:
            await self._announce(job, "progress")

    async def _finish(self, job: Job | Run, status: str) -> None:
        """The job ended; one cancelled before its source was open has no state to write."""
        fields = self._state(job) if isinstance(job, Job) else {}
        if status == "completed":
            fields["progress"]["percent"] = 100.0
            fields["progress"]["eta_seconds"] = 0
        done = await self._jobs.finish(job.id, self.owner, status, fields)  # type: ignore[arg-type]
        if done is None:
            return
        self._metrics.jobs_finished.labels(status).inc()
        if status == "completed" and isinstance(job, Job):
            await self._announce(job, "completed")
            await self._completed(done)
        log.info("import_" + status, job_id=job.id, **fields.get("progress", {}))

    async def _fail(self, doc: Document, job: Job | None, reason: str) -> None:
        fields: dict[str, Any] = {"error": reason[:1000]}
        if job is not None:
            fields.update(self._state(job))
        with contextlib.suppress(Exception):
            done = await self._jobs.finish(str(doc["_id"]), self.owner, "failed", fields)
            if done is not None:
                self._metrics.jobs_finished.labels("failed").inc()
                await self._announce_doc(done, "failed", {"error": reason[:1000]})

    async def _announce(self, job: Job, kind: str) -> None:
        data = {"job_id": job.id, "progress": job.tally.progress(job.eta())}
        await self._announce_doc(job.doc, kind, data)

    async def _announce_doc(self, doc: Document, kind: str, data: dict[str, Any]) -> None:
        event = IntegrationEvent(
            id=new_event_id(),
            type=f"import.{kind}",
            workspace_id=str(doc["workspace_id"]),
            integration_id=doc.get("integration_id") or "",
            provider=str(doc["provider"]),
            data={"job_id": str(doc["_id"]), "source": doc.get("source"), **data},
        )
        try:
            await publish_integration_event(self._publisher, event)
        except HookhubError as exc:  # the job document is what counts
            log.warning("import_event_not_published", kind=kind, error=exc.message)
