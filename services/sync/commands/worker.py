"""Running the slash commands (SPEC §20): each claimed command run for the chat user who
typed it, in their workspace only (shared.domain.tenancy confines every read and write of
the run to it, as it confines a workspace key's request), answered in their channel and,
when it changed something, audited as their change.

- `subscribe <provider>[:<integration id>] <target> [key=value …]`: a subscription of the
  workspace's integration of the provider, posting into the channel, made by the
  subscription service as `POST /api/integrations/{id}/subscriptions` makes it (whatever
  it refuses is answered with its message). Its id derives from the command's, so a
  command run again (a lease that ran out) finds it made.
- `unsubscribe <subscription id>` or `unsubscribe <provider>[:<integration id>] <target>`:
  one of the channel's subscriptions deleted by the service.
- `list`: the channel's subscriptions. `link <provider>`: how the user is linked to act
  from cards, and whether they are. `help`, and anything else: the usage.

The answer is a `message.received` on `hookhub.chat.inbound` in the channel, from
`hookhub`, its id derived from the command's (run again, it publishes the same message);
its text is CommonMark in which every word of the user's is escaped
(shared.providers.commonmark). An outage (MongoDB, Kafka) is retried with the clicks'
backoff (services.sync.clicks.queue).

A command typed in a network (`Command.via`: services.sync.commands.networks) runs the
same way as the network user (`slack:U024BE7LH`) in the chat channel its network channel
is mapped to; the network is answered too, as it answers a command
(shared.providers.chat.Commanded): what concerns the user alone (`link`) is said to them
alone there, where the network can, and never to the chat (which cannot show a network's
user a message alone); a channel mapped to no chat channel is told so there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import ValidationError

from services.sync.clicks.networks import opened_reply
from services.sync.clicks.queue import Worker, next_attempt
from services.sync.commands.repository import Command, Commands
from services.sync.commands.words import (
    EVERYTHING,
    KEYS,
    Refused,
    invocation,
    reference,
    subscription_fields,
    target_field,
)
from services.sync.subscriptions.repository import SubscriptionRepository
from services.sync.subscriptions.schemas import SubscriptionCreate
from services.sync.subscriptions.service import SubscriptionService, notification_events
from shared.domain import tenancy
from shared.domain.account_links import (
    MAPPING_PROVIDERS,
    OAUTH_LINK_PROVIDERS,
    AccountLinks,
    ticket_url,
)
from shared.domain.audit import AuditLog, chat_user_entry, field_names
from shared.domain.integrations.model import IntegrationSnapshot
from shared.domain.message_map import NOTIFICATION, ephemeral_id
from shared.kernel.crypto import SecretBox
from shared.kernel.envelopes import Topic, encode_inbound
from shared.kernel.errors import HookhubError
from shared.kernel.ids import derived_id, utcnow
from shared.kernel.kafka import EventPublisher
from shared.kernel.mongo import Document
from shared.providers import commonmark as md
from shared.providers.catalog import CATALOG, catalog_entry
from shared.providers.chat import Commanded, PermanentError
from shared.providers.connections import Connections

log = structlog.get_logger(__name__)

CLAIM_LIMIT = 20
# The most subscriptions `list` shows.
LIST_LIMIT = 20
# How much of a refusal's message is answered.
MESSAGE_CHARS = 1_000
AUTHOR = "hookhub"

SUBSCRIBE = "`/hookhub subscribe <provider> <target> [filters]`"
UNSUBSCRIBE = (
    "`/hookhub unsubscribe <subscription id>` or `/hookhub unsubscribe <provider> <target>`"
)
LINK = "`/hookhub link <provider>`"
USAGE = "\n".join(
    [
        "hookhub in this channel:",
        f"- {SUBSCRIBE}: post a provider's events here. The target is what they are about: "
        "`owner/repo` (GitHub), a project key (Jira), `*` for all (alerting providers). "
        "Filters are `key=value` words, lists comma-separated: "
        f"{', '.join(f'`{key}`' for key in KEYS)} (`events=pull_request.*,issues.opened`, "
        "`branches=main`, `labels=bug`). Where the workspace has several integrations of "
        "the provider, name one as `<provider>:<integration id>`.",
        f"- {UNSUBSCRIBE}: stop one of this channel's subscriptions.",
        "- `/hookhub list`: this channel's subscriptions.",
        f"- {LINK}: how your chat account is linked to act from cards.",
    ]
)
# What an answer opens with when the service refused the command.
REFUSED = {
    "subscribe": "Not subscribed",
    "unsubscribe": "Not unsubscribed",
    "list": "Not listed",
    "link": "Not said",
}


@dataclass(frozen=True)
class Answer:
    text: str
    # The subscription changed (`create`, `delete`) and the fields the body set.
    change: tuple[str, Document, list[str]] | None = None
    # Said to the user who asked alone (`visible_to`): what is about them (`link`).
    private: bool = False
    # Not kept to be said again (a ticket is kept by its fingerprint only): a command run
    # again decides again.
    kept: bool = True


def answer_id(command_id: str) -> str:
    """The answer's envelope id. Hookhub's own message, which no provider copy stands for:
    named as notifications are (shared.domain.message_map.NOTIFICATION), so the outbound
    consumer does not wait for a copy when the chat tells of it."""
    return derived_id(command_id, "answer", prefix=NOTIFICATION[:-1])


class CommandWorker(Worker):
    round_failed = "sync_commands_round_failed"

    def __init__(
        self,
        *,
        commands: Commands,
        subscriptions: SubscriptionService,
        repository: SubscriptionRepository,
        connections: Connections,
        links: AccountLinks,
        publisher: EventPublisher,
        audit: AuditLog,
        owner: str,
        public_url: str,
        box: SecretBox,
    ) -> None:
        super().__init__()
        self._box = box
        self._public_url = public_url
        self._commands = commands
        self._subscriptions = subscriptions
        self._repository = repository
        self._connections = connections
        self._links = links
        self._publisher = publisher
        self._audit = audit
        self._owner = owner

    async def round(self) -> int:
        """One claim of due commands, each run; how many."""
        claimed = await self._commands.claim(self._owner, utcnow(), CLAIM_LIMIT)
        await asyncio.gather(*(self._run(command) for command in claimed))
        return len(claimed)

    async def _run(self, command: Command) -> None:
        # A task of its own (gather): the confinement ends with it.
        tenancy.enter(command.workspace_id)
        try:
            if command.answer is not None:
                answer = Answer(command.answer, private=command.answer_private)
            else:
                answer = await self._decide(command)
                if answer.change is not None:
                    self._audit_change(command, *answer.change)
                if answer.kept:
                    await self._commands.answered(command, answer.text, answer.private)
            await self._say(command, answer)
            await self._commands.settle(command, "done", {"verb": invocation(command.text).verb})
        except Exception as exc:  # this command's problem, never the worker's
            log.exception("sync_command_failed", command_id=command.id)
            error = f"{type(exc).__name__}: {exc}"
            due = next_attempt(command.attempts)
            status = "failed" if due is None else "queued"
            await self._commands.settle(command, status, {"error": error}, due)

    async def _decide(self, command: Command) -> Answer:
        asked = invocation(command.text)
        if command.channel_id is None:
            return _unmapped(command)
        handlers: dict[str, Callable[[Command, Sequence[str]], Awaitable[Answer]]] = {
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
            "list": self._list,
            "link": self._link,
        }
        handler = handlers.get(asked.verb)
        if handler is None:
            unknown = asked.verb != "help"
            return Answer(
                f"{md.code(asked.verb)} is no hookhub command.\n{USAGE}" if unknown else USAGE
            )
        try:
            return await handler(command, asked.args)
        except Refused as exc:
            said = str(exc)
        except HookhubError as exc:
            if not 400 <= exc.status < 500:
                raise  # an outage: tried again
            said = md.text(exc.message, MESSAGE_CHARS)
        return Answer(f"{REFUSED[asked.verb]}: {said}")

    # -- the commands ----------------------------------------------------------------------

    async def _subscribe(self, command: Command, args: Sequence[str]) -> Answer:
        if len(args) < 2:
            raise Refused(f"it takes {SUBSCRIBE}")
        integration = await self._integration(command, args[0])
        provider = integration.provider
        # Its filters, and the service's refusal of a provider that takes no subscriptions.
        filters = notification_events(provider).filters
        fields = subscription_fields(args[2:], args[1], target_field(filters), _name(provider))
        subscription_id = derived_id(command.id, prefix="sub")
        made = await self._repository.get(subscription_id)
        if made is not None:  # run again after it was made
            return Answer(f"Subscribed this channel to {_described(made)}.")
        body = {"channel_id": command.channel, **fields}
        try:
            valid = SubscriptionCreate.model_validate(body)
        except ValidationError as exc:
            found = [_schema_problem(error) for error in exc.errors()]
            found += [
                detail["message"]
                for detail in await self._subscriptions.also_wrong(integration.id, body)
            ]
            raise Refused(md.text("; ".join(found), MESSAGE_CHARS)) from None
        doc = await self._subscriptions.create(integration.id, valid, subscription_id)
        text = f"Subscribed this channel to {_described(doc)}."
        return Answer(text, ("create", doc, field_names(body)))

    async def _unsubscribe(self, command: Command, args: Sequence[str]) -> Answer:
        if len(args) == 1:
            doc = await self._repository.get(args[0])
            if doc is None or not _in_channel(doc, command):
                raise Refused(f"no subscription {md.code(args[0])} posts into this channel")
        elif len(args) == 2:
            doc = await self._matching(command, args[0], args[1])
        else:
            raise Refused(f"it takes {UNSUBSCRIBE}")
        await self._subscriptions.delete(doc["integration_id"], doc["_id"])
        return Answer(f"Unsubscribed this channel from {_described(doc)}.", ("delete", doc, []))

    async def _list(self, command: Command, args: Sequence[str]) -> Answer:
        docs = await self._repository.of_channel(
            command.workspace_id, command.channel, LIST_LIMIT + 1
        )
        if not docs:
            return Answer(f"No subscription posts into this channel: {SUBSCRIBE} makes one.")
        lines = ["This channel's subscriptions:"]
        lines += [f"- {_described(doc)}" for doc in docs[:LIST_LIMIT]]
        if len(docs) > LIST_LIMIT:
            lines.append("- and more: the console and the API list them all.")
        return Answer("\n".join(lines))

    async def _link(self, command: Command, args: Sequence[str]) -> Answer:
        """How the user is linked to `provider`, said to them alone. A provider linked by
        the user's own consent: their ticket to link (again, when the provider refused
        their grant for good), which only they may see."""
        if len(args) != 1:
            raise Refused(f"it takes {LINK}")
        provider = args[0].lower()
        name = md.text(catalog_entry(provider).name)
        if provider in OAUTH_LINK_PROVIDERS:
            who = command.actor_id
            link = (await self._links.of_users(command.workspace_id, provider, [who])).get(who)
            if link is not None:
                return Answer(
                    f"You are linked to {name} as {md.code(link.provider_user)}: your "
                    "clicks on its cards act as that account.",
                    private=True,
                )
            if command.via is not None and not command.via.get("private_answers"):
                # A ticket links whoever opens it: never said where all can read it.
                network = md.text(_name(command.via["provider"]))
                return Answer(
                    f"{md.code(who)}, your own {name} account is linked by your consent, "
                    f"and {network} cannot show you its link alone: a workspace admin starts "
                    f"it for {md.code(who)} in the console (Account links) or with "
                    f"{md.code(f'POST /api/account-links/{provider}/connect')}.",
                    private=True,
                )
            ticket = await self._links.issue_ticket(
                command.workspace_id, provider, who, command.actor_name
            )
            return Answer(
                f"Link your own {name} account at {ticket_url(self._public_url, ticket)} "
                "(once, within a day; only you see this): your clicks on its cards then "
                "act as that account.",
                private=True,
                kept=False,
            )
        if provider not in MAPPING_PROVIDERS:
            linked = ", ".join(_name(p) for p in (*MAPPING_PROVIDERS, *OAUTH_LINK_PROVIDERS))
            return Answer(
                f"{name} accounts are not linked to chat users: the providers acted "
                f"on from cards as the person who clicks are linked ({linked}).",
                private=True,
            )
        route = md.code(f"PUT /api/account-links/{provider}/{command.actor_id}")
        where = f"in the console (Account links) or with {route}"
        link = await self._links.get(command.workspace_id, provider, command.actor_id)
        if link is not None:
            return Answer(
                f"You are linked to {name} as {md.code(link.provider_user)}: a "
                f"workspace admin changes it {where}.",
                private=True,
            )
        return Answer(
            f"You are not linked to {name} yet: a workspace admin links your chat "
            f'account to your {name} user {where} and `{{"provider_user": "…"}}`.',
            private=True,
        )

    # -- what they act on ------------------------------------------------------------------

    async def _integration(self, command: Command, word: str) -> IntegrationSnapshot:
        """The workspace's integration the word names: `<provider>:<id>`, or the only one
        of `<provider>`."""
        provider, integration_id = reference(word)
        if integration_id is not None:
            # Another workspace's is not found (the run is confined to this one).
            integration = await self._connections.integration(integration_id)
            if integration.provider != provider:
                raise Refused(
                    f"{md.code(integration_id)} is a {_name(integration.provider)} "
                    f"integration, not {md.text(_name(provider))}"
                )
            return integration
        found = await self._connections.integrations_of(command.workspace_id, provider)
        if len(found) == 1:
            return found[0]
        name = md.text(catalog_entry(provider).name)  # a misspelt provider: said so
        if not found:
            raise Refused(f"this workspace has no {name} integration: connect one first")
        names = ", ".join(md.code(f"{provider}:{integration.id}") for integration in found)
        raise Refused(f"this workspace has {len(found)} {name} integrations: name one ({names})")

    async def _matching(self, command: Command, word: str, target: str) -> Document:
        """The channel's one subscription of the provider (and integration) on `target`."""
        provider, integration_id = reference(word)
        wanted = ["*"] if target in EVERYTHING else [target.lower()]
        docs = await self._repository.of_channel(command.workspace_id, command.channel, 500)
        found = [
            doc
            for doc in docs
            if doc["provider"] == provider
            and integration_id in (None, doc["integration_id"])
            and [t.lower() for t in _targets(doc)] == wanted
        ]
        if len(found) == 1:
            return found[0]
        if not found:
            raise Refused(
                f"no {md.text(_name(provider))} subscription of {md.code(target)} posts into "
                "this channel (`/hookhub list` shows them)"
            )
        ids = ", ".join(md.code(doc["_id"]) for doc in found)
        raise Refused(f"{len(found)} subscriptions match: name one by its id ({ids})")

    # -- said and recorded -----------------------------------------------------------------

    async def _say(self, command: Command, answer: Answer) -> None:
        """In the chat channel (to the user alone, `visible_to`, when private); for a
        command typed in a network, there too, and what is private there only."""
        via = command.via
        if via is not None:
            private = command.channel_id is None or (
                answer.private and bool(via.get("private_answers"))
            )
            await self._answer_network(command, via, answer.text, private)
            if private:
                return
        await self._publish(command, answer, private=answer.private and via is None)

    async def _answer_network(
        self, command: Command, via: Document, text: str, private: bool
    ) -> None:
        """The network's own answer to the command (Commanded.answer); a refusal (its
        response URL or token expired) ends it unsaid there, an outage is tried again."""
        integration = await self._connections.integration(via["integration_id"])
        network = self._connections.provider(integration)
        if not isinstance(network, Commanded):
            return
        reply = opened_reply(self._box, via.get("reply"))
        try:
            await self._connections.call(
                integration.id,
                lambda token: network.answer(
                    token, via["external_channel_id"], reply, text, private
                ),
            )
        except PermanentError as exc:
            log.warning("sync_command_not_answered", command_id=command.id, error=exc.error)

    async def _publish(self, command: Command, answer: Answer, *, private: bool) -> None:
        encoded = encode_inbound(
            id=ephemeral_id(command.id, "answer") if private else answer_id(command.id),
            type="message.received",
            workspace_id=command.workspace_id,
            channel_id=command.channel,
            provider=AUTHOR,
            integration_id=AUTHOR,
            external_channel_id=None,
            external_message_id=command.id,
            external_thread_id=None,
            author_name=AUTHOR,
            avatar_url=None,
            author_external_id=None,
            text=answer.text,
            attachments=[],
            blocks=None,
            thread_id=None,
            occurred_at=utcnow(),
            visible_to=command.actor_id if private else None,
        )
        await self._publisher.publish_encoded(Topic.CHAT_INBOUND, [encoded])

    def _audit_change(
        self, command: Command, action: str, doc: Document, fields: list[str]
    ) -> None:
        self._audit.record(
            chat_user_entry(
                workspace_id=command.workspace_id,
                chat_user_id=command.actor_id,
                resource_type="subscription",
                resource_id=doc["_id"],
                action=action,
                fields=fields,
                command={
                    "id": command.id,
                    "name": invocation(command.text).verb,
                    "channel_id": command.channel_id,
                    "integration_id": doc["integration_id"],
                },
            )
        )


def _unmapped(command: Command) -> Answer:
    """A command typed in a network channel that is bridged to no chat channel."""
    via = command.via or {}
    network = md.text(_name(str(via.get("provider"))))
    route = md.code(f"POST /api/integrations/{via.get('integration_id')}/mappings")
    return Answer(
        f"This {network} channel is not bridged to a chat channel, and hookhub's commands "
        "act on the chat channel a channel is bridged to: a workspace admin maps it "
        f"({route}), then ask again.",
        private=True,
    )


def _in_channel(doc: Document, command: Command) -> bool:
    return bool(
        doc["workspace_id"] == command.workspace_id and doc["channel_id"] == command.channel_id
    )


def _name(provider: str) -> str:
    entry = CATALOG.get(provider)
    return entry.name if entry is not None else provider


def _targets(doc: Document) -> list[str]:
    """What a subscription is about: its repositories or projects, else everything."""
    return [str(t) for t in doc.get("repositories") or doc.get("projects") or ["*"]]


def _described(doc: Document) -> str:
    """One line of a subscription, its values escaped: provider, target, events, id."""
    events = doc.get("events")
    shown = f"events {md.code(', '.join(events))}" if events else "its default events"
    off = "" if doc.get("enabled", True) else " (disabled)"
    return (
        f"{md.text(_name(doc['provider']))} {md.code(', '.join(_targets(doc)))}, "
        f"{shown} ({md.code(doc['_id'])}){off}"
    )


def _schema_problem(error: Any) -> str:
    """A schema error as the API's 422 names it: where, then what."""
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {error.get('msg', '')}" if where else str(error.get("msg", ""))
