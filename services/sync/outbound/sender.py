"""Runs one outbox job against its provider and decides its outcome.

Outcomes are written batched (the copy into the message map first, then the job's status
in the same flush), so a job costs no MongoDB round trip of its own on the way; a job the
outbox never held and that was done writes its copy alone (services.sync.outbound.unwritten).
What the lane must do about a failure is the exception it gets back: `RateLimited` (wait, same job
again), `Retry` (back off, same job again); anything else was decided here.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta

import structlog

from services.sync.mappings.service import LastSynced, MappingDirectory
from services.sync.metrics import SyncMetrics
from services.sync.outbound.jobs import Job
from services.sync.outbound.unwritten import Unwritten
from shared.domain.mappings import MappingRepository
from shared.domain.message_map import COLLECTION as MAP
from shared.domain.message_map import Copy, MessageMap
from shared.domain.oauth.tokens import NotConnected
from shared.domain.usage import UsageCounters
from shared.kernel import tracing
from shared.kernel.errors import HookhubError, NotFound
from shared.kernel.ids import utcnow
from shared.kernel.mongo import BatchedWriter, Document
from shared.providers.chat import (
    Attachment,
    Author,
    CardAction,
    ChatProvider,
    OutboundPost,
    PermanentError,
    Posted,
    RateLimited,
)
from shared.providers.connections import Connections

log = structlog.get_logger(__name__)

RECENT_COPIES = 100_000
# Looked for with the provider's history after a crash: posts made this long before the
# job was queued are not ours (clocks differ a little).
FIND_POST_SLACK = timedelta(seconds=30)


class Retry(Exception):
    """A passing failure (provider unreachable, MongoDB down): the same job, later."""


class Sender:
    def __init__(
        self,
        *,
        connections: Connections,
        message_map: MessageMap,
        mappings: MappingDirectory,
        mapping_repository: MappingRepository,
        writer: BatchedWriter,
        unwritten: Unwritten,
        metrics: SyncMetrics,
        synced: LastSynced,
        usage: UsageCounters,
        finds_own_posts: Callable[[str], bool] = lambda provider: False,
    ) -> None:
        self._connections = connections
        self._map = message_map
        self._mappings = mappings
        self._mapping_repository = mapping_repository
        self._writer = writer
        self._unwritten = unwritten
        self._metrics = metrics
        # Mappings that synced a message, and when: written every few seconds.
        self._synced = synced
        self._usage = usage
        # Providers whose lanes do not wait for each copy (`Network.finds_own_posts`): any
        # of a dead process's posts there may have been made unrecorded.
        self._finds_own_posts = finds_own_posts
        # Copies posted by this process, by (mapping, chat message): what an edit or a
        # reply right behind a post needs, before the batched write has stored it.
        self._recent: OrderedDict[tuple[str, str], Copy] = OrderedDict()

    async def run(self, job: Job) -> None:
        """The job's attempt, in its chat event's trace: the provider's API calls (their
        CLIENT spans) are the event's."""
        with tracing.span(
            f"sync {job.op}",
            context=job.trace,
            provider=job.provider,
            integration_id=job.integration_id,
            workspace_id=job.workspace_id,
            mapping_id=job.mapping_id,
            job_id=job.id,
        ):
            await self._run(job)

    async def _run(self, job: Job) -> None:
        mapping = self._mappings.get(job.mapping_id)
        if mapping is None or not mapping.outbound:
            self._finish(job, "skipped", "the mapping was deleted, disabled or made inbound-only")
            return
        try:
            integration = await self._connections.integration(job.integration_id)
            if not integration.enabled:
                self._finish(job, "skipped", "the integration is disabled")
                return
            if not self._connections.connected(integration):
                raise NotConnected(f"integration {integration.id} is {integration.status}")
            provider = self._connections.provider(integration)
            if job.op == "post":
                await self._post(job, provider)
            elif job.op == "edit":
                await self._edit(job, provider)
            else:
                await self._delete(job, provider)
        except RateLimited:
            self._metrics.rate_limited.labels(job.provider).inc()
            raise
        except PermanentError as exc:
            await self._refused(job, exc.error, exc.message, exc.scope)
        except NotConnected as exc:
            # The integration's own status says why (TokenKeeper set it): the mapping only.
            await self._refused(job, exc.code, exc.message, "mapping")
        except NotFound as exc:
            self._finish(job, "skipped", exc.message)
        except HookhubError as exc:  # ProviderUnreachable and the like
            raise Retry(exc.message) from exc
        except Exception as exc:
            log.exception("sync_job_crashed", job_id=job.id)
            raise Retry(repr(exc)) from exc

    async def taken_over(self, jobs: list[Job]) -> list[Job]:
        """Jobs taken from a dead process (`claim`, in `seq` order), with `recovered` left
        only on the posts that can have been made unrecorded: of each mapping's, those the
        map holds (finished from it, without a call) and the first it does not hold. A lane
        posts one job at a time and moves on once its copy is written (`recorded`), so the
        posts after that first one were not made: they are made without looking for them in
        the network's history (a read each, which Slack limits per workspace: after a kill,
        a channel's backlog took a second and a half a post). Where lanes do not wait
        because our posts are found again (`finds_own_posts`), each one the map does not
        hold keeps it."""
        looked_for = [job for job in jobs if job.recovered and job.op == "post"]
        if not looked_for:
            return jobs
        try:
            copies = await self._map.of_messages({job.message_id for job in looked_for})
        except Exception as exc:  # claimed already: run them, each looked for, as before
            log.warning("sync_taken_over_unread", error=repr(exc))
            return jobs
        held = {
            (copy.mapping_id, chat_id)
            for copy in copies
            for chat_id in (copy.chat_message_id, copy.inbound_id)
            if chat_id
        }
        first: set[str] = set()
        taken: list[Job] = []
        for job in jobs:
            if job.recovered and job.op == "post" and (job.mapping_id, job.message_id) not in held:
                if job.mapping_id in first and not self._finds_own_posts(job.provider):
                    job = dataclasses.replace(job, recovered=False)
                first.add(job.mapping_id)
            taken.append(job)
        return taken

    async def recorded(self) -> None:
        """Until the outcomes handed to the writer so far are in MongoDB: a lane moves on
        only then, so a crash can leave at most the job in flight unrecorded.

        The writer is hurried rather than left to its interval: a group commit, whatever
        the other lanes handed over meanwhile going in the same write, which begins as
        soon as the one under way ends. Waiting for the interval instead left a busy lane
        idle for most of each post (docs/benchmarks.md, footnote 26)."""
        self._writer.hurry()
        await self._writer.written()

    # -- the three operations -------------------------------------------------------------

    async def _post(self, job: Job, provider: ChatProvider) -> None:
        if (job.mapping_id, job.message_id) in self._recent:
            # The chat published the message again while the first post's copy was on its
            # way to the map (a later one finds it there, and no job is made).
            self._finish(job, "done", None)
            return
        thread = None
        if job.thread_id:
            root = await self._copy(job.thread_id, job.mapping_id)
            # A thread's root, never a reply (Slack: "use its parent instead").
            thread = (root.external_thread_id or root.external_message_id) if root else None
        if job.recovered and await self._already_posted(job, provider, thread):
            return
        post = _outbound(job, thread)
        posted = await self._connections.call(
            job.integration_id, lambda token: provider.post(token, job.external_channel_id, post)
        )
        self._record(job, posted, thread)

    async def _already_posted(self, job: Job, provider: ChatProvider, thread: str | None) -> bool:
        """After a crash between a post and its record: is the post there already? The map
        may have it (the record was written, the job's status not); else the provider's
        history, where it can say (Slack, by the tag on our posts)."""
        if await self._copy(job.message_id, job.mapping_id) is not None:
            self._finish(job, "done", None)
            return True
        since = job.queued_at - FIND_POST_SLACK
        found = await self._connections.call(
            job.integration_id,
            lambda token: provider.find_post(
                token, job.external_channel_id, job.message_id, since, thread
            ),
        )
        if found is None:
            return False
        log.info("sync_post_found_after_crash", job_id=job.id, external=found.external_message_id)
        self._record(job, found, found.external_thread_id)
        return True

    async def _edit(self, job: Job, provider: ChatProvider) -> None:
        copy = await self._ours(job)
        if copy is None:
            return
        post = _outbound(job, None)
        await self._connections.call(
            job.integration_id,
            lambda token: provider.edit(
                token, job.external_channel_id, copy.external_message_id, post
            ),
        )
        self._finish(job, "done", None)

    async def _delete(self, job: Job, provider: ChatProvider) -> None:
        copy = await self._ours(job)
        if copy is None:
            return
        await self._connections.call(
            job.integration_id,
            lambda token: provider.delete(token, job.external_channel_id, copy.external_message_id),
        )
        self._finish(job, "done", None)

    async def _ours(self, job: Job) -> Copy | None:
        """The copy an edit or delete acts on, or None (the job finished as skipped): an
        edit of a message the map does not know is never posted as a new one."""
        copy = await self._copy(job.message_id, job.mapping_id)
        if copy is None:
            self._metrics.unknown.labels(job.provider, job.op).inc()
            self._finish(job, "skipped", "the message map holds no copy of this message here")
            return None
        if copy.origin != "outbound":
            self._finish(job, "skipped", "the copy here was written by a provider user")
            return None
        return copy

    # -- the map and outcomes -------------------------------------------------------------

    async def _copy(self, chat_id: str, mapping_id: str) -> Copy | None:
        recent = self._recent.get((mapping_id, chat_id))
        if recent is not None:
            self._metrics.map_lookups.labels("memory").inc()
            return recent
        self._metrics.map_lookups.labels("mongodb").inc()
        return await self._map.copy_in(chat_id, mapping_id)

    def _record(self, job: Job, posted: Posted, thread: str | None) -> None:
        copy = Copy.new(
            workspace_id=job.workspace_id,
            channel_id=job.channel_id,
            provider=job.provider,
            integration_id=job.integration_id,
            mapping_id=job.mapping_id,
            external_channel_id=job.external_channel_id,
            external_message_id=posted.external_message_id,
            external_thread_id=posted.external_thread_id or thread,
            origin="outbound",
            chat_message_id=job.message_id,
            external_thread_key=posted.external_thread_key,
        )
        self._recent[(job.mapping_id, job.message_id)] = copy
        while len(self._recent) > RECENT_COPIES:
            self._recent.popitem(last=False)
        # Before the job's status in the same flush (inserts go first).
        self._writer.insert_once(MAP, copy.id, copy.to_doc(utcnow()))
        self._finish(job, "done", None)

    async def _refused(self, job: Job, code: str, message: str, scope: str) -> None:
        """Failed for good: the job; and, unless only this message was refused, the mapping
        (`last_error`, `error_count`, status `error`) and the integration (its `last_error`;
        its status too when the refusal concerns the whole connection)."""
        log.warning("sync_job_refused", job_id=job.id, error=code, message=message)
        self._finish(job, "failed", f"{code}: {message}")
        if scope == "message":
            return
        doc = await self._mapping_repository.record_error(job.mapping_id, code, message)
        if doc is not None:
            self._mappings.cache.apply(doc)
        if scope != "mapping":
            await self._connections.refused(
                job.integration_id, code, message, whole=scope == "integration"
            )

    def _finish(self, job: Job, status: str, error: str | None) -> None:
        now = utcnow()
        self._metrics.messages.labels(job.provider, "outbound", status).inc()
        if status == "done":
            self._synced.saw(job.mapping_id, now)
            if job.op == "post":  # a message relayed (its edits and deletes are not others)
                self._usage.count(job.workspace_id, "messages_synced")
        outcome: Document = {
            "status": status,
            "error": error,
            "finished_at": now,
            # The message itself is not kept once it is sent (finished jobs stay a week).
            "text": "",
            "attachments": [],
            "lease_owner": None,
            "next_attempt_at": None,
        }
        # A job never written leaves nothing when done (services.sync.outbound.unwritten).
        self._unwritten.finish(job.id, outcome)


def _outbound(job: Job, thread: str | None) -> OutboundPost:
    """The job's message as a provider posts it (`thread`: its root's id there, a reply)."""
    return OutboundPost(
        text=job.text,
        author=Author(job.author_name, job.author_avatar_url),
        thread_external_id=thread,
        attachments=tuple(Attachment(url=a["url"], name=a.get("name")) for a in job.attachments),
        tag=job.message_id,
        actions=None
        if job.actions is None
        else tuple(CardAction.from_dict(a) for a in job.actions),
        markup="commonmark" if job.markup == "commonmark" else "plain",
    )
