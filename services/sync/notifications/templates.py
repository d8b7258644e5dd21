"""Subscriptions' templates (SPEC §16) in the notifications consumer: the posts of a batch
whose subscription has a template, rendered by it instead of the provider's renderer.

The renderer has rendered the event and the subscription's filters have taken it (they
judge the renderer's facts: a template changes how a notification looks, not which events
a subscription takes). Then the batch's templates run together in the sandbox (at most 50
ms each, bounded in number at once, off the consumer's event loop); a post whose template
gave a result is shown as it says (shared.providers.templated.notice_of) or, with `skip`, left out
and counted as filtered (reason `template`). A post whose template failed (an error, a
time-out, memory, a bad result, or suspended after failures in a row) keeps the renderer's
notice: the failure is counted and kept as the subscription's `last_error`. A template
runs once per event in a workspace, however many of its subscriptions carry it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import orjson

from services.sync.notifications.post import Post
from services.sync.subscriptions.repository import COLLECTION as SUBSCRIPTIONS
from shared.domain import claim_check
from shared.domain.templates import TemplateFailure, TemplateResult, Templates, event_of
from shared.kernel.errors import NotFound
from shared.kernel.mongo import BatchedWriter, Database
from shared.providers.notify import Notice
from shared.providers.templated import notice_of

SKIPPED = "template"


class PostTemplates:
    def __init__(self, templates: Templates, *, db: Database, counts: BatchedWriter) -> None:
        self._templates = templates
        self._db = db
        self._counts = counts

    async def render(self, posts: list[Post], skipped: list[tuple[Post, str]]) -> list[Post]:
        """`posts` as their templates show them; those a template skips are added to
        `skipped`."""
        templated = [post for post in posts if post.subscription.template]
        if not templated:
            return posts
        payloads = await self._payloads(templated)
        # One run per event and template of a workspace: subscriptions of several channels
        # with the same template get its one result (each failure is each one's error); a
        # template's runs of the batch, batched in the sandbox.
        runs: dict[tuple[str, str], dict[str, Post]] = {}
        for post in templated:
            workspace, template, event = _run_key(post)
            runs.setdefault((workspace, template), {}).setdefault(event, post)
        outcomes = await asyncio.gather(
            *(self._run(template, posts, payloads) for template, posts in runs.items())
        )
        rendered = {
            (workspace, template, event): outcome
            for ((workspace, template), posts), given in zip(runs.items(), outcomes, strict=True)
            for event, outcome in zip(posts, given, strict=True)
        }
        kept: list[Post] = []
        # A result shown once for all the posts of its event (they share the renderer's
        # notice): its text and card made and defused once.
        shown: dict[tuple[tuple[str, str, str], int], Notice] = {}
        for post in posts:
            key = _run_key(post)
            outcome = rendered.get(key) if post.subscription.template else None
            if isinstance(outcome, TemplateResult):
                if outcome.skip:
                    skipped.append((post, SKIPPED))
                    continue
                notice = shown.get((key, id(post.notice)))
                if notice is None:
                    notice = shown[key, id(post.notice)] = notice_of(outcome, post.notice)
                post = dataclasses.replace(post, notice=notice)
            elif isinstance(outcome, TemplateFailure):
                error = outcome.as_last_error()
                self._counts.set_fields(SUBSCRIPTIONS, post.subscription.id, {"last_error": error})
            kept.append(post)
        return kept

    async def _run(
        self, template: tuple[str, str], posts: dict[str, Post], payloads: dict[str, Any]
    ) -> list[TemplateResult | TemplateFailure]:
        """A workspace's template over its events of the batch (one post each)."""
        workspace, source = template
        events = [
            event_of(post.event.provider, post.notice.event, payloads.get(post.event.id))
            for post in posts.values()
        ]
        return await self._templates.render_many(
            source, events, use="subscription", scope=workspace
        )

    async def _payloads(self, posts: list[Post]) -> dict[str, Any]:
        """Each event's payload, by envelope id: a claim-checked one read once (the
        renderer read it too, but kept only its notice)."""
        payloads: dict[str, Any] = {}
        for post in posts:
            event = post.event
            if event.id in payloads:
                continue
            if event.payload_ref:
                try:
                    payloads[event.id] = orjson.loads(
                        await claim_check.load(self._db, event.payload_ref)
                    )
                except (NotFound, orjson.JSONDecodeError):
                    payloads[event.id] = None  # the renderer had it; gone since
            else:
                payloads[event.id] = event.payload
        return payloads


def _run_key(post: Post) -> tuple[str, str, str]:
    """What a template's run depends on: the workspace (its isolates' scope), the template,
    the event (its payload and, through the notice, its name)."""
    return (post.subscription.workspace_id, post.subscription.template or "", post.event.id)
