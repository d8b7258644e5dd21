"""Acting on the clicks (SPEC §20): each claimed click found on its card, its user's link
looked up, the provider called as them, the outcome said in the item's thread and audited.

For one click, in order:

1. **The card.** The message the click names must be a notification root of the click's
   workspace and channel that carries `acting` (its provider, the item's target, the
   actions it offered): else the click is refused with nothing done (a click naming
   another workspace's message finds nothing). The action must be one the card offered.
2. **Who acts.** The user's account link for the provider (shared.domain.account_links);
   without one the click waits (`waiting_link`) and one reply says how to link, seen by
   them alone: a chat user's in the thread (`visible_to`), a network user's said by their
   network to them alone (`PrivateReplies`: Slack's ephemeral message, Discord's
   ephemeral follow-up, …); for a provider linked by the user's own consent, with their
   link to it (a single-use ticket the oauth service turns into the provider's consent).
   Where their network lets hookhub say nothing to them alone, they are told in the thread
   how an admin starts it, without a ticket. The click runs once they have linked
   (checked every `LINK_CHECK_SECONDS`). An oauth link's token is read (and refreshed if
   due) for the call; one whose grant the provider refused for good asks to link again,
   and so does one the provider answers 401 to, once refreshed and tried again.
3. **Once.** The action on the item is claimed (`Clicks.take_effects`): a second click of
   the same action, by anyone, is answered with who made it and acts no more.
4. **The call.** `Acting.perform` with the integration's settings, on a client holding
   every request to the egress rules (`egress_checked`). A refusal is said and not retried; an
   outage is retried with backoff (services.sync.clicks.queue `BACKOFF`), the thread
   saying when it went through; after `ATTEMPTS` it is said to have failed.
5. **Said and recorded.** A reply in the item's thread (`✓ Acknowledged by Ada (from
   chat)`), its id derived from the click (a retry publishes the same message), and an
   audit entry: chat user, provider user, item, outcome.

A round does this for every click it claimed at once: one read of their cards, one of
their users' links (per workspace and provider), one insert claiming their actions, the
provider's calls side by side, then what they end with in one delete, one publish and one
bulk write (`_Round`): a round's MongoDB writes do not grow with its clicks. The asks said
to network users alone go to their networks side by side before the replies are published;
a round whose last writes failed is taken again, and an ask its first try said is not said
twice (`_said`: the process remembers the last `SAID_KEPT` asks' outcomes; a process that
dies between an ask and its click's write leaves its successor to ask once more).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog

from services.sync.actions.metrics import ActionMetrics
from services.sync.clicks.networks import opened_reply
from services.sync.clicks.queue import IDLE_SECONDS, LEASE, Settled, Worker, next_attempt
from services.sync.clicks.repository import Click, Clicks, Held
from shared.domain.account_links import AccountLink, AccountLinks, ticket_url
from shared.domain.audit import AuditLog, chat_user_entry
from shared.domain.message_map import NOTIFICATION, Copy, MessageMap, ephemeral_id
from shared.domain.oauth.tokens import NotConnected, TokenKeeper
from shared.kernel import errors
from shared.kernel.crypto import SecretBox
from shared.kernel.egress import EgressPolicy, check_url
from shared.kernel.envelopes import Encoded, InboundType, Topic, encode_inbound
from shared.kernel.ids import derived_id, utcnow
from shared.kernel.kafka import EventPublisher
from shared.kernel.mongo import Document
from shared.kernel.settings import Settings
from shared.providers import commonmark as md
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
from shared.providers.chat import PrivateReplies, PrivateReply
from shared.providers.connections import Connections
from shared.providers.notify import Card, card_text

log = structlog.get_logger(__name__)

CLAIM_LIMIT = 50
# Clicks handed over unwritten that a round takes at most: a backlog is acted on in rounds
# of this many, `ROUNDS` at once. Fewer, larger rounds cost MongoDB fewer operations (a
# round's are a few, whatever its size); on the embedded server, 2,100 clicks went through
# at 600-700 a second in rounds of 500, at 380-500 in rounds of 100 (docs/benchmarks.md,
# footnote 23).
HANDED_LIMIT = 500
SAID_KEPT = 10_000  # private asks whose outcome a process remembers (`_said`)
# Rounds acting at once (each its claim's provider calls, then its writes).
ROUNDS = 4
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


@dataclass(frozen=True)
class _Ready:
    """A click found on a card offering its action, by a linked user: to be made."""

    click: Click
    root: Copy
    offered: Offered
    actor: Acting
    label: str
    link: AccountLink
    acting: Document  # what the map keeps beside the root (its `shown` card)


@dataclass(frozen=True)
class _Pending:
    """A root's card shown at once with the state an action left its item in, marked
    pending until the provider's own webhook edits the root (SPEC §20): published only if
    the root still shows the card the click was made on (`source`)."""

    root_id: str
    offers_id: str | None  # the root's item's offers (`Copy.offers_id`)
    source: str
    acting: Document  # the root's `acting`, its actions and `shown` those of the edit
    edit: Encoded


@dataclass
class _Round:
    """What a round's clicks end with, written together once every click is handled: the
    actions let go (one delete), the replies in their threads (one publish), the clicks'
    next states (one bulk write), in that order. A click is settled last: one that is not
    (the process gone, MongoDB away) is claimed again after its lease and says the same
    things again, with the same replies' ids."""

    released: list[tuple[str, Click]] = field(default_factory=list)
    replies: list[Encoded] = field(default_factory=list)
    settled: list[Settled] = field(default_factory=list)
    # Asks to link said by a network to its user alone, each with what the thread is told
    # instead should the network not let that be said.
    private: list[_PrivateAsk] = field(default_factory=list)
    # Clicks that ended before (their events read again): nothing to write.
    dropped: list[str] = field(default_factory=list)
    pending: list[_Pending] = field(default_factory=list)

    def settle(
        self,
        click: Click,
        status: str,
        outcome: dict[str, Any],
        due_at: datetime | None = None,
        **fields: Any,
    ) -> None:
        self.settled.append(Settled(click.id, status, outcome, due_at, fields))


@dataclass(frozen=True)
class _PrivateAsk:
    """An ask to link for a network's user: `text` for them alone (their ticket's URL in
    it, for a provider linked by consent), `public` the thread's reply, naming no secret,
    should their network not let it be said to them alone."""

    click: Click
    provider: str
    text: str
    public: Encoded
    ticket: str | None = None
    again: bool = False  # their link stopped working: a new ask, not the first one again

    @property
    def tag(self) -> str:
        """The ask's id at the network (and `_said`'s key): the same when a round is taken
        again, another when a link that worked stopped."""
        return derived_id(self.click.id, "relink" if self.again else "link", prefix="prv")


@dataclass
class _Handed:
    """A click the intake handed over unwritten (services.sync.clicks.intake): its document
    as it would be written (running, leased to this process), and what its batch waits for
    (`settled`: it is written, with its outcome or spilled)."""

    doc: Document
    settled: asyncio.Future[None]
    written: bool = False  # spilled: in MongoDB, held by this process while it acts
    taken: bool = False  # in a round


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
        box: SecretBox | None = None,
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
        # Opens what a network gave to answer its user alone (sealed with the click).
        self._box = box
        self._links_checked = 0.0
        self._claimed_at = 0.0
        self._handed: dict[str, _Handed] = {}
        # The private asks said, by tag, with whether to the user alone (`_say_privately`).
        self._said: OrderedDict[str, bool] = OrderedDict()
        # A spill and a round's last writes are not interleaved: a click's outcome is an
        # insert while it is not written, an update once it is.
        self._writing = asyncio.Lock()
        self._leaving: asyncio.Task[None] | None = None
        self._rounds = asyncio.Semaphore(ROUNDS)
        self._acting: set[asyncio.Task[None]] = set()

    # -- clicks handed over unwritten ------------------------------------------------------

    def hand(self, docs: list[Document]) -> list[asyncio.Future[None]]:
        """Clicks read by the outbound consumer and not in MongoDB, acted on by this
        process's next round without being written first: each written once, with its
        outcome (an insert rather than a claim's and an outcome's updates). The futures are
        done once each is written; those its batch waits longer for are spilled (`spill`)."""
        loop = asyncio.get_running_loop()
        lease = utcnow() + LEASE
        waits = []
        for doc in docs:
            handed = self._handed.get(doc["_id"])
            if handed is None:
                leased = {
                    **doc,
                    "status": "running",
                    "attempts": 1,
                    "lease_owner": self._owner,
                    "lease_until": lease,
                }
                handed = self._handed[doc["_id"]] = _Handed(leased, loop.create_future())
            waits.append(handed.settled)
        if self._stopping:
            self._leave()
        else:
            self.wake()
        return waits

    async def spill(self, ids: Iterable[str] | None = None) -> int:
        """These clicks handed over (every one, by default) written now, running and leased
        to this process, which goes on acting on them: for a batch that waited long enough,
        and for partitions taken away (their next owner, reading the clicks again, finds
        them written and leaves them). How many were written."""
        async with self._writing:
            chosen = self._unwritten(ids)
            await self._clicks.accept([h.doc for h in chosen])
            for handed in chosen:
                handed.written = True
                _settle(handed.settled)
        return len(chosen)

    def _unwritten(self, ids: Iterable[str] | None) -> list[_Handed]:
        wanted = self._handed.keys() if ids is None else ids
        return [h for i in wanted if (h := self._handed.get(i)) is not None and not h.written]

    def stop(self) -> None:
        super().stop()
        self._leave()

    def _leave(self) -> None:
        """At the stop: the clicks handed over and not taken by a round left queued, for any
        replica to claim (written so; those spilled already, their lease let go)."""
        if self._leaving is None or self._leaving.done():
            self._leaving = asyncio.get_running_loop().create_task(self._left())

    async def _left(self) -> None:
        async with self._writing:
            left = [h for h in self._handed.values() if not h.taken]
            now = utcnow()
            queued = {"status": "queued", "due_at": now, "attempts": 0}
            unwritten = [_without_lease({**h.doc, **queued}) for h in left if not h.written]
            await self._clicks.accept(unwritten)
            await self._clicks.settle_all(
                [
                    Settled(h.doc["_id"], "queued", {"text": "left at a stop"}, now)
                    for h in left
                    if h.written
                ]
            )
            for handed in left:
                self._handed.pop(handed.doc["_id"], None)
                _settle(handed.settled)

    async def round(self) -> int:
        loop = asyncio.get_running_loop()
        if loop.time() - self._links_checked >= LINK_CHECK_SECONDS:
            self._links_checked = loop.time()
            await self.relink()
        return await self.once()

    async def once(self) -> int:
        """One claim of due clicks, acted on together (`_act_on`) while the next round
        claims more (`ROUNDS` at once: a click slow at its provider holds its round's
        writes, not the clicks after it); how many."""
        await self._rounds.acquire()
        try:
            claimed = self._take_handed()
            loop = asyncio.get_running_loop()
            if not claimed or loop.time() - self._claimed_at >= IDLE_SECONDS:
                # The queue's: clicks queued again, spilled by a process gone, waiting no more.
                self._claimed_at = loop.time()
                claimed += await self._clicks.claim(self._owner, utcnow(), CLAIM_LIMIT)
        except BaseException:
            self._rounds.release()
            raise
        if not claimed:
            self._rounds.release()
            return 0
        acting = loop.create_task(self._act_on(claimed))
        self._acting.add(acting)
        acting.add_done_callback(self._acted)
        return len(claimed)

    def _acted(self, task: asyncio.Task[None]) -> None:
        self._acting.discard(task)
        self._rounds.release()

    async def run(self) -> None:
        await super().run()
        if self._acting:  # the rounds under way end (the stop's cap bounds the wait)
            await asyncio.wait(set(self._acting))

    async def _act_on(self, claimed: list[Click]) -> None:
        """The claimed clicks acted on: their cards and their users' links read together (a
        query each, not each click's own), the actions they make claimed in one insert, the
        provider called for each at once, and what they end with written together
        (`_Round`)."""
        try:
            known = await self._known(claimed)
            done = _Round()
            ready = [r for c in claimed if (r := await self._ready(c, known, done)) is not None]
            wanted = [(r.root.id, r.click) for r in ready]
            held = await self._clicks.take_effects(wanted, utcnow())
            await asyncio.gather(*(self._make(r, held.get(r.click.id), done) for r in ready))
            await self._write(done)
        except Exception as exc:  # MongoDB or Kafka away: the clicks are taken again
            log.warning(self.round_failed, error=repr(exc))
            for click in claimed:
                handed = self._handed.get(click.id)
                if handed is not None:
                    handed.taken = False

    def _take_handed(self) -> list[Click]:
        taken = [h for h in self._handed.values() if not h.taken][:HANDED_LIMIT]
        for handed in taken:
            handed.taken = True
        return [Click.from_doc(h.doc) for h in taken]

    async def _write(self, done: _Round) -> None:
        """What the round's clicks end with (`_Round`): a click handed over unwritten is
        inserted with its outcome, any other updated."""
        await self._clicks.release_effects(done.released)
        said = await asyncio.gather(*(self._say_privately(ask) for ask in done.private))
        done.replies += [a.public for a, alone in zip(done.private, said, strict=True) if not alone]
        edits = [p.edit for p in await self._still_shown(done.pending)]
        await self._publisher.publish_encoded(Topic.CHAT_INBOUND, [*done.replies, *edits])
        async with self._writing:
            unwritten: list[tuple[Document, Settled]] = []
            written: list[Settled] = []
            for settled in done.settled:
                handed = self._handed.get(settled.id)
                if handed is not None and not handed.written:
                    unwritten.append((handed.doc, settled))
                else:
                    written.append(settled)
            await self._clicks.record(unwritten)
            await self._clicks.settle_all(written)
        for click_id in [*(s.id for s in done.settled), *done.dropped]:
            handed = self._handed.pop(click_id, None)
            if handed is not None:
                _settle(handed.settled)

    async def _known(self, claimed: list[Click]) -> _Known:
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
        return known

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

    async def _ready(self, click: Click, known: _Known, done: _Round) -> _Ready | None:
        """The click made ready to act on; else what it ends with, in `done`."""
        try:
            return await self._check(click, known, done)
        except Exception as exc:  # this click's problem, never the round's
            log.exception("sync_click_failed", click_id=click.id)
            self._retry_or_fail(click, None, None, f"{type(exc).__name__}: {exc}", done)
            return None

    async def _check(self, click: Click, known: _Known, done: _Round) -> _Ready | None:
        found = known.cards.get(click.message_id)
        if found is None and click.attempts < CARD_ATTEMPTS:
            # What a new root offers is written within the writer's flush: look again.
            due = utcnow() + timedelta(seconds=CARD_WAIT_SECONDS)
            done.settle(click, "queued", {"text": "looking for the card"}, due)
            return None
        if found is None or not self._mine(click, found[0]):
            self._end(click, "refused", "no card of this channel offers that", None, done)
            return None
        root, acting_doc = found
        offered = Offered.from_doc(acting_doc)
        action = offered.offers(click.action_id)
        actor = self._actors.get(offered.provider)
        if action is None or actor is None:  # an old button, the item changed since
            text = f"{click.who}: that action is not offered on this card now"
            self._end(click, "refused", text, root, done)
            return None
        link = known.links.get((click.workspace_id, offered.provider, click.actor_id))
        if link is None:
            await self._ask_to_link(click, root, offered.provider, actor, done)
            return None
        return _Ready(click, root, offered, actor, action.label, link, acting_doc)

    def _mine(self, click: Click, root: Copy) -> bool:
        return root.workspace_id == click.workspace_id and root.channel_id == click.channel_id

    async def _make(self, ready: _Ready, held: Held | None, done: _Round) -> None:
        click = ready.click
        if held is not None:
            if held.own:  # read again (published twice): ended, recorded, said
                done.dropped.append(click.id)
            elif held.done:
                text = f"{ready.label}: already done by {held.by}"
                self._end(click, "duplicate", text, ready.root, done, ready.link)
            else:  # another click is making it: look again after it
                due = utcnow() + timedelta(seconds=2)
                done.settle(click, "queued", {"text": "waiting"}, due)
            return
        try:
            await self._perform(ready, done)
        except Exception as exc:  # this click's problem, never the round's
            log.exception("sync_click_failed", click_id=click.id)
            done.released.append((ready.root.id, click))
            error = f"{type(exc).__name__}: {exc}"
            self._retry_or_fail(click, ready.root, ready.link, error, done)

    async def _perform(self, ready: _Ready, done: _Round) -> None:
        click, root, label, link = ready.click, ready.root, ready.label, ready.link
        try:
            integration = await self._connections.integration(root.integration_id)
            token = await self._user_token(link)
            given = credentials(integration, self._settings, token)
            try:
                outcome = await self._call(ready.actor, given, ready.offered, click, link)
            except LinkRejected:
                if token is None or self._user_tokens is None:
                    raise  # a mapping the provider does not know: said no
                # The user's own token refused (401): refreshed once (NotConnected when
                # the provider will not), the action tried once more with the new one.
                fresh = await self._user_tokens.access_token(link.id, rejected=token)
                given = credentials(integration, self._settings, fresh)
                try:
                    outcome = await self._call(ready.actor, given, ready.offered, click, link)
                except LinkRejected as again:
                    await self._links.mark_broken(link.id, again.message)
                    raise NotConnected(again.message) from again
        except NotConnected:  # the user's own grant is gone: they link again
            done.released.append((root.id, click))
            await self._ask_to_link(
                click, root, ready.offered.provider, ready.actor, done, again=True
            )
        except errors.Invalid as exc:  # an address the egress rules refuse (`egress_checked`)
            done.released.append((root.id, click))
            self._end(click, "refused", f"{label}: {exc.message}", root, done, link)
        except (ActionRefused, LinkRejected) as exc:
            done.released.append((root.id, click))
            name = _provider_name(ready.offered.provider)
            text = f"{label}: {name} said no: {exc.message}"
            self._end(click, "refused", text, root, done, link)
        except (ActionUnavailable, httpx.HTTPError, errors.HookhubError) as exc:
            done.released.append((root.id, click))
            retry_after = getattr(exc, "retry_after", None)
            self._retry_or_fail(click, root, link, str(exc), done, retry_after)
        else:
            self._end(click, "done", _done_text(click, outcome), root, done, link, outcome)
            if outcome.state:
                self._pending(ready, outcome.state, done)

    def _pending(self, ready: _Ready, state: str, done: _Round) -> None:
        """The root's card edited at once with the item's new state, marked pending, and
        without the action made (its other actions kept until the provider's webhook says
        what the item offers now). Its id derives from the click: made again, the chat
        drops it."""
        shown = ready.acting.get("shown")
        if not isinstance(shown, Mapping) or not isinstance(shown.get("card"), Mapping):
            return  # a root posted before its card was kept: left to the webhook
        card = Card.from_dict(shown["card"])
        actions = tuple(a for a in card.actions if a.id != ready.click.action_id)
        card = replace(card, state=f"{state} (pending)", actions=actions)
        root, edit_id = ready.root, derived_id(ready.click.id, "pending", prefix="msg")
        edit = _about(
            root,
            id=edit_id,
            type="message.edited",
            external_message_id=edit_id,
            external_thread_id=None,
            thread_id=None,
            text=card_text(card),
            message_id=root.chat_id,
            card=card.as_dict(),
        )
        acting = {
            **ready.acting,
            "actions": [a.as_dict() for a in actions],
            "shown": {"source": edit.id, "card": card.as_dict()},
        }
        source = str(shown.get("source"))
        done.pending.append(_Pending(root.id, root.offers_id, source, acting, edit))

    async def _still_shown(self, pending: list[_Pending]) -> list[_Pending]:
        """Those whose roots still show the card their clicks were made on: a root the
        provider's webhook edited meanwhile shows what the provider says, not a guess. The
        map's actions are written first, as for any edit of a root (the networks' buttons
        are made from them when the chat publishes the edit)."""
        if not pending:
            return []
        current = await self._map.acting_of({p.root_id: p.offers_id for p in pending})
        kept = [
            p
            for p in pending
            if (current.get(p.root_id) or {}).get("shown", {}).get("source") == p.source
        ]
        await self._map.set_acting(
            {p.root_id: p.acting for p in kept}, {p.root_id: p.offers_id for p in kept}
        )
        return kept

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

    def _retry_or_fail(
        self,
        click: Click,
        root: Copy | None,
        link: AccountLink | None,
        error: str,
        done: _Round,
        retry_after: float | None = None,
    ) -> None:
        due = next_attempt(click.attempts, retry_after)
        if due is None:
            text = f"{click.action_id}: failed after {click.attempts} attempts: {error}"
            self._end(click, "failed", text, root, done, link)
            return
        log.info("sync_click_retry", click_id=click.id, error=error, due_at=due.isoformat())
        done.settle(click, "queued", {"text": "retrying", "error": error}, due)

    async def _ask_to_link(
        self,
        click: Click,
        root: Copy,
        provider: str,
        actor: Acting,
        done: _Round,
        *,
        again: bool = False,
    ) -> None:
        """One reply saying how to link, seen by the user alone: a chat user's in the
        thread (`visible_to`), a network user's said by their network (`_say_privately`);
        for a provider linked by consent it carries their ticket, which links whoever
        opens it. Where a network user's network cannot say it to them alone, the thread
        is told how an admin starts it, with no ticket. `again`: their link stopped working
        (the provider refused its grant, or its token after a refresh)."""
        name = _provider_name(provider)
        lost = (
            f"{click.who}, {name} no longer takes the {name} account you linked" if again else None
        )
        if click.network is None:
            visible_to = click.actor_id
            if actor.link == "oauth":
                ticket = await self._links.issue_ticket(
                    click.workspace_id, provider, click.actor_id, click.who
                )
                opening = (
                    f"{click.who}, your chat account is not linked to {name} yet: link your "
                    f"own {name} account"
                )
                text = _with_ticket(opening, lost, ticket_url(self._settings.public_url, ticket))
            else:
                text = self._admin_links(click, provider, name, lost)
            done.replies.append(self._reply(click, root, text, "link", visible_to))
            self._metrics.link_asks.labels(provider, "chat", "private").inc()
        else:
            await self._ask_network_user(click, root, provider, actor, done, lost)
        done.settle(click, "waiting_link", {"text": "waiting for a link"}, provider=provider)

    async def _ask_network_user(
        self,
        click: Click,
        root: Copy,
        provider: str,
        actor: Acting,
        done: _Round,
        lost: str | None,
    ) -> None:
        """A network user's ask: for their eyes alone where their network can say it
        (`_say_privately`, with their ticket), else in the thread, naming no secret."""
        name = _provider_name(provider)
        if actor.link == "oauth":
            public = (
                f"{lost}, and a link to link it again cannot be handed to you privately in "
                if lost
                else f"{click.who}, acting on {name} takes your own {name} account, linked "
                "by your consent, and its link cannot be handed to you privately in "
            ) + (
                f"{_provider_name(str(click.network))}: a workspace admin starts it for "
                f"`{click.actor_id}` in the console (Account links) or with `POST "
                f"/api/account-links/{provider}/connect`. The action runs once it is."
            )
        else:
            public = self._admin_links(click, provider, name, lost)
        reply = self._reply(click, root, public, "link")
        if not self._can_say_privately(click):
            done.replies.append(reply)
            self._metrics.link_asks.labels(provider, str(click.network), "public").inc()
            return
        ticket = None
        text = public
        if actor.link == "oauth":
            ticket = await self._links.issue_ticket(
                click.workspace_id, provider, click.actor_id, click.who
            )
            url = ticket_url(self._settings.public_url, ticket)
            # CommonMark, as every reply: the network writes the link as its own.
            linked = md.link(md.text(url, len(url)), url)
            opening = f"{click.who}, acting on {name} takes your own {name} account: link it"
            text = _with_ticket(opening, lost, linked)
        done.private.append(_PrivateAsk(click, provider, text, reply, ticket, lost is not None))

    @staticmethod
    def _admin_links(click: Click, provider: str, name: str, lost: str | None) -> str:
        """How a provider linked by a mapping is linked: by an admin (nothing secret)."""
        opening = (
            f"{lost}: a workspace admin links it again"
            if lost
            else f"{click.who}, your chat account is not linked to {name} yet: a workspace "
            "admin links it"
        )
        return (
            f"{opening} in the console (Account links) or with `PUT "
            f"/api/account-links/{provider}/{click.actor_id}`. The action runs once it is."
        )

    def _can_say_privately(self, click: Click) -> bool:
        via = click.via
        network = self._connections.providers.get(via.provider) if via is not None else None
        return (
            via is not None
            and isinstance(network, PrivateReplies)
            and via.integration_id is not None
            and via.user_id is not None
            and via.external_channel_id is not None
        )

    async def _say_privately(self, ask: _PrivateAsk) -> bool:
        """The ask said by the click's network to its user alone; False (the thread is told
        instead) where the network would not, or could not now. A ticket that was not
        handed over is dropped."""
        click, via, tag = ask.click, ask.click.via, ask.tag
        said = self._said.get(tag)
        if said is not None:  # a round taken again: said by its first try (with its ticket)
            if ask.ticket is not None:
                await self._links.drop_ticket(ask.ticket)
            return said
        alone = False
        try:
            if via is not None and via.integration_id and via.user_id:
                network = self._connections.providers.get(via.provider)
                if isinstance(network, PrivateReplies):
                    reply = PrivateReply(
                        external_channel_id=via.external_channel_id or "",
                        external_message_id=via.external_message_id or "",
                        user_id=via.user_id,
                        text=ask.text,
                        tag=tag,
                        reply=opened_reply(self._box, via.reply),
                    )
                    alone = await self._connections.call(
                        via.integration_id,
                        lambda token: network.reply_privately(token, reply),
                    )
        except Exception as exc:  # the network away, a token refused: said in the thread
            log.warning("sync_click_private_ask_failed", click_id=click.id, error=repr(exc))
        self._metrics.link_asks.labels(
            ask.provider, str(click.network), "private" if alone else "public"
        ).inc()
        if not alone and ask.ticket is not None:
            await self._links.drop_ticket(ask.ticket)
        self._said[tag] = alone
        while len(self._said) > SAID_KEPT:
            self._said.popitem(last=False)
        return alone

    def _end(
        self,
        click: Click,
        status: str,
        text: str,
        root: Copy | None,
        done: _Round,
        link: AccountLink | None = None,
        outcome: Outcome | None = None,
    ) -> None:
        if root is not None:
            done.replies.append(self._reply(click, root, text, "reply"))
        provider = root.provider if root is not None else "-"
        self._metrics.actions.labels(provider, _action_label(click), status).inc()
        record: dict[str, Any] = {"text": text}
        if outcome is not None and outcome.reference:
            record["reference"] = outcome.reference
        self._audit_click(click, status, root, link, record)
        done.settle(click, status, record)

    def _reply(
        self, click: Click, root: Copy, text: str, part: str, visible_to: str | None = None
    ) -> Encoded:
        return _about(
            root,
            id=ephemeral_id(click.id, part) if visible_to is not None else reply_id(click.id, part),
            type="message.received",
            external_message_id=click.id,
            external_thread_id=root.external_message_id,
            thread_id=root.chat_id,
            text=text,
            visible_to=visible_to,
        )

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


def _with_ticket(opening: str, lost: str | None, url: str) -> str:
    """An ask to link by consent, with the user's ticket's `url`: `opening` for a user
    not linked yet, `lost` for one whose link stopped working."""
    said = f"{lost}: link it again at {url}" if lost else f"{opening} at {url}"
    return said + " (once, within a day; only you see this). The action runs once it is."


def reply_id(click_id: str, part: str) -> str:
    """A reply's envelope id, derived from the click (a retry publishes the same message).
    Hookhub's own message, which no provider copy stands for: named as notifications are
    (shared.domain.message_map.NOTIFICATION), so the outbound consumer does not wait for a
    copy when the chat tells of it, and writes its CommonMark in each network's markup."""
    return derived_id(click_id, part, prefix=NOTIFICATION[:-1])


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _without_lease(doc: Document) -> Document:
    return {k: v for k, v in doc.items() if k not in ("lease_owner", "lease_until")}


def egress_checked(client: httpx.AsyncClient, settings: Settings) -> httpx.AsyncClient:
    """`client` holding every request to the egress rules before it is sent: an action's
    address may come from outside (an integration's `api_url`, an alert group's
    `externalURL`). A refused one raises `errors.Invalid` (the click says why)."""
    policy = EgressPolicy.from_setting(settings.egress_allow_cidrs)

    async def check(request: httpx.Request) -> None:
        check_url(str(request.url), policy)

    client.event_hooks["request"] = [*client.event_hooks["request"], check]
    return client


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


def _about(
    root: Copy,
    *,
    id: str,
    type: InboundType,
    external_message_id: str,
    external_thread_id: str | None,
    thread_id: str | None,
    text: str,
    **more: Any,
) -> Encoded:
    """hookhub's own message about a card: a reply in its root's thread, or the root's
    edit, in the root's channel, from its provider, authored as the provider by name."""
    return encode_inbound(
        id=id,
        type=type,
        workspace_id=root.workspace_id,
        channel_id=root.channel_id,
        provider=root.provider,
        integration_id=root.integration_id,
        external_channel_id=root.external_channel_id,
        external_message_id=external_message_id,
        external_thread_id=external_thread_id,
        author_name=_provider_name(root.provider),
        avatar_url=None,
        author_external_id=None,
        text=text,
        attachments=[],
        blocks=None,
        thread_id=thread_id,
        occurred_at=utcnow(),
        **more,
    )


def _provider_name(provider: str) -> str:
    entry = CATALOG.get(provider)
    return entry.name if entry is not None else provider


def _done_text(click: Click, outcome: Outcome) -> str:
    text = f"✓ {outcome.text[:1].upper()}{outcome.text[1:]} by {click.who} ({_clicked_in(click)})"
    if click.attempts > 1:
        text += f", after {click.attempts} attempts ({_hhmm(utcnow())} UTC)"
    return text


def _clicked_in(click: Click) -> str:
    """`from chat`, or `from Slack` for a click of a network's button (`Click.network`)."""
    entry = CATALOG.get(click.network) if click.network else None
    return f"from {entry.name}" if entry is not None else "from chat"


def _hhmm(at: datetime) -> str:
    return at.strftime("%H:%M")
