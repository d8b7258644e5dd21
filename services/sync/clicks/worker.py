"""Acting on the clicks (SPEC §20): each claimed click found on its card, its user's link
looked up, the provider called as them, the outcome said in the item's thread and audited.

For one click, in order:

1. **The card.** The message the click names must be a notification root of the click's
   workspace and channel that carries `acting` (its provider, the item's target, the
   actions it offered): else the click is refused with nothing done (a click naming
   another workspace's message finds nothing). The action must be one the card offered.
2. **Who acts.** The user's account link for the provider (shared.domain.account_links);
   without one the click waits (`waiting_link`) and one reply in the thread says how to
   link (for a provider linked by the user's own consent, with their link to it: a
   ticket the oauth service turns into the provider's consent); it runs once they have
   linked (checked every `LINK_CHECK_SECONDS`). An oauth link's token is read (and
   refreshed if due) for the call; one whose grant the provider refused for good asks
   to link again.
3. **Once.** The action on the item is claimed (`Clicks.take_effect`): a second click of
   the same action, by anyone, is answered with who made it and acts no more.
4. **The call.** `Acting.perform` with the integration's settings, on a client holding
   every request to the egress rules (`egress_checked`). A refusal is said and not retried; an
   outage is retried with backoff (services.sync.clicks.queue `BACKOFF`), the thread
   saying when it went through; after `ATTEMPTS` it is said to have failed.
5. **Said and recorded.** A reply in the item's thread (`✓ Acknowledged by Ada (from
   chat)`), its id derived from the click (a retry publishes the same message), and an
   audit entry: chat user, provider user, item, outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog

from services.sync.actions.metrics import ActionMetrics
from services.sync.clicks.queue import Worker, next_attempt
from services.sync.clicks.repository import Click, Clicks
from shared.domain.account_links import AccountLink, AccountLinks
from shared.domain.audit import AuditLog, chat_user_entry
from shared.domain.message_map import Copy, MessageMap
from shared.domain.oauth.tokens import NotConnected, TokenKeeper
from shared.kernel import errors
from shared.kernel.egress import EgressPolicy, check_url
from shared.kernel.envelopes import Topic, encode_inbound
from shared.kernel.ids import derived_id, utcnow
from shared.kernel.kafka import EventPublisher
from shared.kernel.mongo import Document
from shared.kernel.settings import Settings
from shared.providers.acting import (
    Acting,
    ActionRefused,
    ActionUnavailable,
    Credentials,
    Link,
    LinkRejected,
    Offered,
    Outcome,
)
from shared.providers.actors import ACTORS, credentials
from shared.providers.catalog import CATALOG
from shared.providers.connections import Connections

log = structlog.get_logger(__name__)

CLAIM_LIMIT = 50
# Connections of the client clicks act through (a claim's clicks at once).
ACTING_CONNECTIONS = CLAIM_LIMIT
# A click on a card whose offers are not in the map yet is looked at again so often.
CARD_ATTEMPTS = 3
CARD_WAIT_SECONDS = 3.0
LINK_CHECK_SECONDS = 5.0


@dataclass
class _Known:
    """A claim's cards (by the id its clicks name) and links (by workspace, provider and
    chat user), read together."""

    cards: dict[str, tuple[Copy, Document]]
    links: dict[tuple[str, str, str], AccountLink] = field(default_factory=dict)


class ClickWorker(Worker):
    round_failed = "sync_clicks_round_failed"

    def __init__(
        self,
        *,
        clicks: Clicks,
        message_map: MessageMap,
        links: AccountLinks,
        connections: Connections,
        client: httpx.AsyncClient,
        publisher: EventPublisher,
        audit: AuditLog,
        settings: Settings,
        owner: str,
        metrics: ActionMetrics,
        actors: Mapping[str, Acting] | None = None,
        user_tokens: TokenKeeper | None = None,
    ) -> None:
        super().__init__()
        self._clicks = clicks
        self._map = message_map
        self._links = links
        self._connections = connections
        self._client = client
        self._publisher = publisher
        self._audit = audit
        self._settings = settings
        self._owner = owner
        self._metrics = metrics
        self._actors = ACTORS if actors is None else actors
        self._user_tokens = user_tokens
        self._links_checked = 0.0

    async def round(self) -> int:
        loop = asyncio.get_running_loop()
        if loop.time() - self._links_checked >= LINK_CHECK_SECONDS:
            self._links_checked = loop.time()
            await self.relink()
        return await self.once()

    async def once(self) -> int:
        """One claim of due clicks, their cards and their users' links read together (a
        query each, not each click's own), each click then acted on; how many."""
        claimed = await self._clicks.claim(self._owner, utcnow(), CLAIM_LIMIT)
        if not claimed:
            return 0
        known = _Known(await self._map.cards(c.message_id for c in claimed))
        groups: dict[tuple[str, str], set[str]] = {}
        for click in claimed:
            found = known.cards.get(click.message_id)
            if found is not None:
                key = (click.workspace_id, str(found[1].get("provider")))
                groups.setdefault(key, set()).add(click.actor_id)
        for (workspace_id, provider), users in groups.items():
            linked = await self._links.of_users(workspace_id, provider, sorted(users))
            known.links.update({(workspace_id, provider, u): k for u, k in linked.items()})
        await asyncio.gather(*(self._act(click, known) for click in claimed))
        return len(claimed)

    async def relink(self) -> None:
        """The clicks waiting for a link whose user has linked since: queued again."""
        waiting = await self._clicks.waiting(utcnow(), 500)
        groups: dict[tuple[str, str], list[Click]] = {}
        for click in waiting:
            if click.provider is not None:
                groups.setdefault((click.workspace_id, click.provider), []).append(click)
        ready: list[str] = []
        for (workspace_id, provider), clicks in groups.items():
            linked = await self._links.of_users(
                workspace_id, provider, [c.actor_id for c in clicks]
            )
            ready += [c.id for c in clicks if c.actor_id in linked]
        await self._clicks.requeue(ready, utcnow())

    # -- one click -------------------------------------------------------------------------

    async def _act(self, click: Click, known: _Known) -> None:
        try:
            await self._handle(click, known)
        except Exception as exc:  # this click's problem, never the worker's
            log.exception("sync_click_failed", click_id=click.id)
            await self._retry_or_fail(click, None, None, f"{type(exc).__name__}: {exc}")

    async def _handle(self, click: Click, known: _Known) -> None:
        found = known.cards.get(click.message_id)
        if found is None and click.attempts < CARD_ATTEMPTS:
            # What a new root offers is written within the writer's flush: look again.
            due = utcnow() + timedelta(seconds=CARD_WAIT_SECONDS)
            await self._clicks.settle(click, "queued", {"text": "looking for the card"}, due)
            return
        if found is None or not self._mine(click, found[0]):
            await self._end(click, "refused", "no card of this channel offers that", None)
            return
        root, acting_doc = found
        offered = Offered.from_doc(acting_doc)
        action = offered.offers(click.action_id)
        actor = self._actors.get(offered.provider)
        if action is None or actor is None:  # an old button, the item changed since
            text = f"{click.who}: that action is not offered on this card now"
            await self._end(click, "refused", text, root)
            return
        link = known.links.get((click.workspace_id, offered.provider, click.actor_id))
        if link is None:
            await self._ask_to_link(click, root, offered.provider, actor)
            return
        held = await self._clicks.take_effect(root.id, click, utcnow())
        if held is not None:
            if held.get("status") == "done":
                text = f"{action.label}: already done by {held.get('by')}"
                await self._end(click, "duplicate", text, root, link)
            else:  # another click is making it: look again after it
                await self._clicks.settle(
                    click, "queued", {"text": "waiting"}, utcnow() + timedelta(seconds=2)
                )
            return
        await self._perform(click, root, offered, actor, action.label, link)

    def _mine(self, click: Click, root: Copy) -> bool:
        return root.workspace_id == click.workspace_id and root.channel_id == click.channel_id

    async def _perform(
        self,
        click: Click,
        root: Copy,
        offered: Offered,
        actor: Acting,
        label: str,
        link: AccountLink,
    ) -> None:
        try:
            integration = await self._connections.integration(root.integration_id)
            given = credentials(integration, self._settings, await self._user_token(link))
            outcome = await self._call(actor, given, offered, click, link)
        except NotConnected:  # the user's own grant is gone: they link again
            await self._clicks.release_effect(root.id, click)
            await self._ask_to_link(click, root, offered.provider, actor)
        except errors.Invalid as exc:  # an address the egress rules refuse (`egress_checked`)
            await self._clicks.release_effect(root.id, click)
            await self._end(click, "refused", f"{label}: {exc.message}", root, link)
        except (ActionRefused, LinkRejected) as exc:
            await self._clicks.release_effect(root.id, click)
            name = _provider_name(offered.provider)
            await self._end(click, "refused", f"{label}: {name} said no: {exc.message}", root, link)
        except (ActionUnavailable, httpx.HTTPError, errors.HookhubError) as exc:
            await self._clicks.release_effect(root.id, click)
            retry_after = getattr(exc, "retry_after", None)
            await self._retry_or_fail(click, root, link, str(exc), retry_after)
        else:
            await self._clicks.effect_done(root.id, click, {"text": outcome.text})
            await self._end(click, "done", _done_text(click, outcome), root, link, outcome)

    async def _user_token(self, link: AccountLink) -> str | None:
        """An oauth link's access token (refreshed first if due); None for a mapping."""
        if link.kind != "oauth" or self._user_tokens is None:
            return None
        return await self._user_tokens.access_token(link.id)

    async def _call(
        self,
        actor: Acting,
        given: Credentials,
        offered: Offered,
        click: Click,
        link: AccountLink,
    ) -> Outcome:
        """The provider's call(s), timed (`hookhub_action_provider_seconds`)."""
        started = time.perf_counter()
        result = "answered"
        try:
            return await actor.perform(
                self._client, given, offered.target, click.action_id, _as_link(link)
            )
        except Exception as exc:
            result = type(exc).__name__
            raise
        finally:
            self._metrics.provider_seconds.labels(
                offered.provider, _action_label(click), result
            ).observe(time.perf_counter() - started)

    async def _retry_or_fail(
        self,
        click: Click,
        root: Copy | None,
        link: AccountLink | None,
        error: str,
        retry_after: float | None = None,
    ) -> None:
        due = next_attempt(click.attempts, retry_after)
        if due is None:
            text = f"{click.action_id}: failed after {click.attempts} attempts: {error}"
            await self._end(click, "failed", text, root, link)
            return
        log.info("sync_click_retry", click_id=click.id, error=error, due_at=due.isoformat())
        await self._clicks.settle(click, "queued", {"text": "retrying", "error": error}, due)

    async def _ask_to_link(self, click: Click, root: Copy, provider: str, actor: Acting) -> None:
        name = _provider_name(provider)
        if actor.link == "oauth":
            ticket = await self._links.issue_ticket(click.workspace_id, provider, click.actor_id)
            text = (
                f"{click.who}, your chat account is not linked to {name} yet: link your own "
                f"{name} account at {link_url(self._settings, ticket)} (for a day). The "
                "action runs once it is."
            )
        else:
            text = (
                f"{click.who}, your chat account is not linked to {name} yet: a workspace "
                f"admin links it in the console (Account links) or with `PUT "
                f"/api/account-links/{provider}/{click.actor_id}`. The action runs once it is."
            )
        await self._reply(click, root, text, "link")
        await self._clicks.settle(
            click, "waiting_link", {"text": "waiting for a link"}, provider=provider
        )

    async def _end(
        self,
        click: Click,
        status: str,
        text: str,
        root: Copy | None,
        link: AccountLink | None = None,
        outcome: Outcome | None = None,
    ) -> None:
        if root is not None:
            await self._reply(click, root, text, "reply")
        provider = root.provider if root is not None else "-"
        self._metrics.actions.labels(provider, _action_label(click), status).inc()
        record: dict[str, Any] = {"text": text}
        if outcome is not None and outcome.reference:
            record["reference"] = outcome.reference
        self._audit_click(click, status, root, link, record)
        await self._clicks.settle(click, status, record)

    async def _reply(self, click: Click, root: Copy, text: str, part: str) -> None:
        encoded = encode_inbound(
            id=derived_id(click.id, part, prefix="msg"),
            type="message.received",
            workspace_id=root.workspace_id,
            channel_id=root.channel_id,
            provider=root.provider,
            integration_id=root.integration_id,
            external_channel_id=root.external_channel_id,
            external_message_id=click.id,
            external_thread_id=root.external_message_id,
            author_name=_provider_name(root.provider),
            avatar_url=None,
            author_external_id=None,
            text=text,
            attachments=[],
            blocks=None,
            thread_id=root.chat_id,
            occurred_at=utcnow(),
        )
        await self._publisher.publish_encoded(Topic.CHAT_INBOUND, [encoded])

    def _audit_click(
        self,
        click: Click,
        status: str,
        root: Copy | None,
        link: AccountLink | None,
        outcome: dict[str, Any],
    ) -> None:
        self._audit.record(
            chat_user_entry(
                workspace_id=click.workspace_id,
                chat_user_id=click.actor_id,
                resource_type="card_action",
                resource_id=click.id,
                action=click.action_id,
                card_action={
                    "result": status,
                    "provider": root.provider if root is not None else None,
                    "provider_user": link.provider_user if link is not None else None,
                    "item": root.external_message_id if root is not None else None,
                    "message_id": click.message_id,
                    "outcome": outcome.get("text"),
                },
            )
        )


def egress_checked(client: httpx.AsyncClient, settings: Settings) -> httpx.AsyncClient:
    """`client` holding every request to the egress rules before it is sent: an action's
    address may come from outside (an integration's `api_url`, an alert group's
    `externalURL`). A refused one raises `errors.Invalid` (the click says why)."""
    policy = EgressPolicy.from_setting(settings.egress_allow_cidrs)

    async def check(request: httpx.Request) -> None:
        check_url(str(request.url), policy)

    client.event_hooks["request"] = [*client.event_hooks["request"], check]
    return client


def link_url(settings: Settings, ticket: str) -> str:
    """Where a chat user links their own account (the oauth service's public route)."""
    return f"{settings.public_url.rstrip('/')}/api/auth/oauth/link/{ticket}"


def _as_link(link: AccountLink) -> Link:
    return Link(
        chat_user_id=link.chat_user_id,
        kind=link.kind,
        provider_user=link.provider_user,
        external_id=link.external_id,
        name=link.name,
        account=link.account,
    )


def _action_label(click: Click) -> str:
    """The action as a metric's label: a card's own ids are few (`acknowledge`,
    `silence:1h`); anything else a chat sent is one label."""
    action = click.action_id
    plain = action.replace(":", "").replace("_", "").isalnum()
    return action if len(action) <= 40 and plain else "other"


def _provider_name(provider: str) -> str:
    entry = CATALOG.get(provider)
    return entry.name if entry is not None else provider


def _done_text(click: Click, outcome: Outcome) -> str:
    text = f"✓ {outcome.text[:1].upper()}{outcome.text[1:]} by {click.who} (from chat)"
    if click.attempts > 1:
        text += f", after {click.attempts} attempts ({_hhmm(utcnow())} UTC)"
    return text


def _hhmm(at: datetime) -> str:
    return at.strftime("%H:%M")
