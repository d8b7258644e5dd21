"""Cards' offers read from the provider (SPEC §20, Jira's transitions, GitHub's labels): what
a webhook does not carry, read beside the notifications consumer and shown by editing the
root card.

A provider whose `Acting` also `ReadsOffers` (Jira: the transitions the issue's workflow
offers from its status now, `GET …/issue/{key}/transitions`; GitHub: the repository's
labels the item does not carry, `GET /repos/{owner}/{repo}/labels`) has each root card it
posts or edits followed by a read: the notifications consumer writes one job per root
(`card_offer_reads`, its `_id` the root's id) once the card is on Kafka, with the card as
it published it (`edit`: the fields of its `message.edited`). A later post or edit of the
root replaces the job (its `source`, the envelope it follows, says which is current), so
a status change is read again, after the webhook's edit of the card.

The reader (one in each sync replica) claims due jobs under a lease, one job a root at a
time, and for each:

1. **With whose token.** The integration's own (a Jira integration connected by OAuth:
   the admin who connected it) when it has one; else the token of the workspace's most
   recently linked user of the provider (an account link by consent) whose sites include
   the issue's (Jira's; GitHub has no sites).
   The card then shows the transitions *that* account may make; a click is still made
   with the clicker's own token, which re-reads them (shared.providers.jira.acting), so
   nobody does more than Jira lets them. No token at all: the card keeps what the
   webhook offers ("Assign to me"). A token Jira answers 401 to is refreshed once and the
   read made again, as a click's is; refused again, a user's link is marked broken (they
   are asked to link at their next click) and the read ends.
2. **Read**, every request held to the egress rules (the click worker's client). Atlassian's
   reference ("Get transitions", https://developer.atlassian.com/cloud/jira/platform/rest/
   v3/api-group-issues/#api-rest-api-3-issue-issueidorkey-transitions-get) answers the
   transitions the token's user can make from the issue's status, none for a user without
   the *Transition issues* permission, and leaves out those failing a condition
   (`includeUnavailableTransitions` false); `expand=transitions.fields` is not asked for.
3. **Shown**: the root's `acting.actions` in the map set to the webhook's offers and the
   read ones, then a `message.edited` of the root with them (its id derived from the job's
   source: a read made again publishes the same edit, which the chat drops). The map is
   written first: the chat's `message.updated` of the root makes the networks' buttons
   from it, and a click right after it finds the transitions.
4. **Settled** `done` unless the job was replaced meanwhile (then it is read again). An
   outage is retried with the clicks' backoff; a refusal (the account may not see the
   issue) ends it, the card unchanged.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import structlog
from pymongo import DESCENDING, ReturnDocument, UpdateOne

from services.sync.clicks.queue import LEASE, Worker, next_attempt
from shared.domain.account_links import COLLECTION as LINKS
from shared.domain.account_links import CONNECTED, AccountLinks
from shared.domain.integrations.repository import COLLECTION as INTEGRATIONS
from shared.domain.message_map import NOTIFICATION, MessageMap
from shared.domain.oauth.tokens import NotConnected, TokenKeeper
from shared.kernel.cache import Kept
from shared.kernel.envelopes import Topic, encode_inbound
from shared.kernel.ids import derived_id, utcnow
from shared.kernel.kafka import EventPublisher
from shared.kernel.mongo import Database, Document, Index
from shared.kernel.settings import Settings
from shared.providers.acting import (
    ActionRefused,
    CardAction,
    Credentials,
    LinkRejected,
    Offered,
    ReadsOffers,
)
from shared.providers.actors import ACTORS, credentials
from shared.providers.connections import Connections
from shared.providers.jira.acting import site_of

log = structlog.get_logger(__name__)

READS = "card_offer_reads"
INDEXES = [
    Index(READS, [("status", 1), ("due_at", 1)]),
    Index(READS, [("expires_at", 1)], {"expireAfterSeconds": 0}),
    # The reader's fallback: a workspace's newest connected oauth link of a provider.
    Index(LINKS, [("workspace_id", 1), ("provider", 1), ("kind", 1), ("updated_at", -1)]),
]
CLAIM_LIMIT = 10
KEPT_INTEGRATIONS = 10_000  # integrations whose readers a replica keeps (`Readers`)
# A job is kept so long after its card (TTL on `expires_at`).
KEPT = timedelta(days=1)

# The providers whose cards' offers are read (their `Acting` reads offers): found once.
READERS: dict[str, ReadsOffers] = {
    name: actor for name, actor in ACTORS.items() if isinstance(actor, ReadsOffers)
}


def read_job(
    root_id: str, offers: str | None, source: str, acting: Document, edit: Document
) -> Document:
    """The job of reading a root's offers after the envelope `source` showed its card:
    `offers` the root's item's offers (`Copy.offers_id`), `acting` what the card offered
    (the webhook's), `edit` the fields of the root's edit (encode_inbound's, without type,
    id and actions)."""
    return {
        "_id": root_id,
        "offers": offers,
        "source": source,
        "acting": acting,
        "edit": edit,
    }


class Readers:
    """Whether anyone's token could read a root's offers: the integration's own (connected
    through OAuth) or a linked user's of the provider in its workspace. A root nobody could
    read for gets no job: a busy GitHub repository's cards, in a workspace where nobody has
    linked GitHub, would each cost MongoDB a job written, claimed and settled for nothing.

    Kept per replica for each integration: a yes `YES_KEPT` seconds (a job that then finds
    nobody ends at once), a no `NO_KEPT` (MongoDB asked again at most so often: the first
    card after someone links is read, unless a card of the same integration asked less
    than that before)."""

    YES_KEPT = 60.0
    NO_KEPT = 2.0

    def __init__(self, db: Database) -> None:
        self._links = db[LINKS]
        self._integrations = db[INTEGRATIONS]
        self._kept: Kept[str, bool] = Kept(KEPT_INTEGRATIONS)

    async def any(self, workspace_id: str, provider: str, integration_id: str) -> bool:
        kept = self._kept.fresh(integration_id)
        if kept is not None:
            return kept[0]
        found = await self._integrations.find_one(
            {"_id": integration_id, "tokens.access_token": {"$exists": True}}, {"_id": 1}
        ) or await self._links.find_one(
            {
                "workspace_id": workspace_id,
                "provider": provider,
                "kind": "oauth",
                "status": CONNECTED,
            },
            {"_id": 1},
        )
        self._kept.put(integration_id, found is not None, self.YES_KEPT if found else self.NO_KEPT)
        return found is not None


def _asker(job: Document) -> tuple[str, str, str]:
    """Whose cards a job's root is: its workspace, provider and integration."""
    return job["edit"]["workspace_id"], job["acting"]["provider"], job["edit"]["integration_id"]


class OfferReads:
    """The `card_offer_reads` collection: one job per root, replaced by a later card."""

    def __init__(self, db: Database) -> None:
        self._reads = db[READS]
        self._readers = Readers(db)

    async def want(self, jobs: Iterable[Document]) -> int:
        """The jobs written queued, replacing a root's earlier one (one bulk write); those
        nobody could read for (`Readers`) are not written."""
        jobs = list(jobs)
        readable = {key for key in {_asker(job) for job in jobs} if await self._readers.any(*key)}
        jobs = [job for job in jobs if _asker(job) in readable]
        now = utcnow()
        writes = [
            UpdateOne(
                {"_id": job["_id"]},
                {
                    "$set": {
                        **{name: value for name, value in job.items() if name != "_id"},
                        "status": "queued",
                        "due_at": now,
                        "attempts": 0,
                        "expires_at": now + KEPT,
                    }
                },
                upsert=True,
            )
            for job in jobs
        ]
        if writes:
            await self._reads.bulk_write(writes, ordered=False)
        return len(writes)

    async def claim(self, owner: str, limit: int) -> list[Document]:
        """Due jobs whose root no other reader holds (a root's reads one at a time, so an
        older read's edit never follows a newer one's)."""
        claimed: list[Document] = []
        now = utcnow()
        while len(claimed) < limit:
            doc = await self._reads.find_one_and_update(
                {
                    "$or": [
                        {
                            "status": "queued",
                            "due_at": {"$lte": now},
                            "lease_until": {"$not": {"$gt": now}},
                        },
                        # A reader gone mid-read: its lease ran out.
                        {"status": "running", "lease_until": {"$lte": now}},
                    ]
                },
                {
                    "$set": {"status": "running", "lease_owner": owner, "lease_until": now + LEASE},
                    "$inc": {"attempts": 1},
                },
                return_document=ReturnDocument.AFTER,
            )
            if doc is None:
                break
            claimed.append(doc)
        return claimed

    async def settle(self, job: Document, status: str, due_at: Any = None) -> None:
        """Ended (or queued again at `due_at`) unless a later card replaced it meanwhile,
        which stays queued; the lease let go either way."""
        changes: Document = {"status": status, "lease_until": None, "lease_owner": None}
        if due_at is not None:
            changes["due_at"] = due_at
        replaced = await self._reads.update_one(
            {"_id": job["_id"], "source": job["source"]}, {"$set": changes}
        )
        if replaced.matched_count == 0:
            await self._reads.update_one(
                {"_id": job["_id"]}, {"$set": {"lease_until": None, "lease_owner": None}}
            )


@dataclass(frozen=True)
class _Token:
    """Whose token a read is made with: the integration's (`holder` its id), else a linked
    user's (`holder` and `link_id` the link's id), and the keeper that refreshes it."""

    credentials: Credentials
    keeper: TokenKeeper
    holder: str
    link_id: str | None = None


class OfferReader(Worker):
    round_failed = "sync_offer_reads_round_failed"

    def __init__(
        self,
        *,
        reads: OfferReads,
        db: Database,
        message_map: MessageMap,
        connections: Connections,
        tokens: TokenKeeper,
        user_tokens: TokenKeeper | None,
        client: httpx.AsyncClient,
        publisher: EventPublisher,
        settings: Settings,
        owner: str,
    ) -> None:
        super().__init__()
        self._reads = reads
        self._links = AccountLinks(db)
        self._integrations = db[INTEGRATIONS]
        self._map = message_map
        self._connections = connections
        self._tokens = tokens
        self._user_tokens = user_tokens
        self._client = client
        self._publisher = publisher
        self._settings = settings
        self._owner = owner

    async def round(self) -> int:
        claimed = await self._reads.claim(self._owner, CLAIM_LIMIT)
        await asyncio.gather(*(self._read(job) for job in claimed))
        return len(claimed)

    async def _read(self, job: Document) -> None:
        offered = Offered.from_doc(job["acting"])
        reader = READERS.get(offered.provider)
        try:
            given = await self._credentials(job, offered) if reader is not None else None
            if reader is None or given is None:
                await self._reads.settle(job, "done")
                return
            read = await self._read_offers(reader, given, offered)
            await self._show(job, offered, read)
            await self._reads.settle(job, "done")
        except (ActionRefused, LinkRejected, NotConnected) as exc:
            log.info("sync_offers_not_read", root_id=job["_id"], error=str(exc))
            await self._reads.settle(job, "refused")
        except Exception as exc:  # Jira away (ActionUnavailable), MongoDB, Kafka, a bug
            due = next_attempt(int(job.get("attempts", 1)), getattr(exc, "retry_after", None))
            log.info("sync_offers_read_retry", root_id=job["_id"], error=repr(exc))
            await self._reads.settle(job, "queued" if due else "failed", due)

    async def _read_offers(
        self, reader: ReadsOffers, given: _Token, offered: Offered
    ) -> tuple[CardAction, ...]:
        """The offers read with `given`'s token; a 401 has it refreshed once (NotConnected
        when the provider will not) and the read made again (module docstring, 1)."""
        try:
            return await reader.read_offers(self._client, given.credentials, offered.target)
        except LinkRejected:
            rejected = given.credentials.user_token
            fresh = await given.keeper.access_token(given.holder, rejected=rejected)
            credentials = dataclasses.replace(given.credentials, user_token=fresh)
            try:
                return await reader.read_offers(self._client, credentials, offered.target)
            except LinkRejected as again:
                if given.link_id is not None:
                    await self._links.mark_broken(given.link_id, again.message)
                raise

    async def _credentials(self, job: Document, offered: Offered) -> _Token | None:
        """The integration's own token, else the newest linked user's who reaches the
        item's site (module docstring, 1); None: nobody's."""
        integration = await self._connections.integration(job["edit"]["integration_id"])
        given = credentials(integration, self._settings)
        # The sites its token reaches, as its connect learnt them (not in the snapshot).
        doc = await self._integrations.find_one({"_id": integration.id}, {"account": 1})
        settings = {**given.settings, **_sites((doc or {}).get("account"))}
        try:
            token = await self._tokens.access_token(integration.id)
        except NotConnected:
            token = None
        if token:
            own = Credentials(settings, given.api_base, token)
            return _Token(own, self._tokens, integration.id)
        if self._user_tokens is None:
            return None
        site = site_of(str(offered.target.get("site") or ""))
        query = {
            "workspace_id": integration.workspace_id,
            "provider": offered.provider,
            "kind": "oauth",
            "status": CONNECTED,
        }
        newest = self._links.collection.find(query).sort("updated_at", DESCENDING)
        async for link in newest.limit(20):
            sites = _sites(link.get("account"))
            if site is None or any(
                site_of(str(s.get("url") or "")) == site for s in sites.get("sites", ())
            ):
                token = await self._user_tokens.access_token(link["_id"])
                theirs = Credentials({**settings, **sites}, given.api_base, token)
                return _Token(theirs, self._user_tokens, link["_id"], link["_id"])
        return None

    async def _show(self, job: Document, offered: Offered, read: tuple[CardAction, ...]) -> None:
        """The read offers beside the webhook's, written beside the root with the card that
        shows them (`shown`: a click's pending edit is made from it), then that card
        published as the root's edit."""
        ids = {a.id for a in read}
        actions = (*(a for a in offered.actions if a.id not in ids), *read)
        edit = dict(job["edit"])
        card = {**edit.pop("card"), "actions": [a.as_dict() for a in actions]}
        edit_id = derived_id(job["_id"], job["source"], "offers", prefix=NOTIFICATION[:-1])
        acting = Offered(offered.provider, actions, offered.target).to_doc()
        await self._map.set_acting(
            {job["_id"]: {**acting, "shown": {"source": edit_id, "card": card}}},
            {job["_id"]: job.get("offers")},
        )
        envelope = encode_inbound(id=edit_id, type="message.edited", card=card, **edit)
        await self._publisher.publish_encoded(Topic.CHAT_INBOUND, [envelope])


def _sites(account: Mapping[str, Any] | None) -> dict[str, Any]:
    """`{"sites": [...]}` where an account (an integration's, a link's) names Jira sites."""
    sites = (account or {}).get("sites")
    return (
        {"sites": [s for s in sites if isinstance(s, Mapping)]} if isinstance(sites, list) else {}
    )
