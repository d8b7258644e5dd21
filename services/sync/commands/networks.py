"""hookhub's command typed in the bridged networks (SPEC §20): Slack and Mattermost slash
commands, Discord application commands, Telegram bot commands, Google Chat slash commands,
a Teams message to the bot. Verified by the gateway as each network signs its requests,
they are written on the chat's command queue (services.sync.commands.repository) for the
command worker to run, as the chat's own `command.invoked`: the same words, the same
subscription service, the same audit.

The inbound consumer hands each batch of provider events here before its messages, so a
command is written before the batch's offsets are committed. A command runs as the network
user, `<network>:<user id>` (services.sync.clicks.networks.network_user: the chat user id
their account links are kept under), in the chat channel the network channel is mapped to
within the integration the request was verified for; a channel mapped to none is written
all the same, to be answered so. Its id derives from the network's invocation id, so an
invocation sent again runs once. Where it came from and how the network takes its answer
(`via`) stay with it until it is answered (docs/acting.md, "Commands in the networks").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import structlog

from services.sync.clicks.networks import NAME_CHARS, network_user, sealed_reply
from services.sync.clicks.queue import queued_as
from services.sync.commands.repository import TEXT_CHARS, Commands
from services.sync.commands.words import NAME
from services.sync.mappings.service import MappingDirectory
from services.sync.metrics import SyncMetrics
from shared.domain.integrations.model import IntegrationSnapshot
from shared.kernel.crypto import SecretBox
from shared.kernel.envelopes import ProviderEvent
from shared.kernel.errors import HookhubError
from shared.kernel.ids import derived_id, id_problem, utcnow
from shared.kernel.mongo import Document
from shared.providers.chat import Commanded, Invocation
from shared.providers.connections import Connections

log = structlog.get_logger(__name__)


class NetworkCommands:
    def __init__(
        self,
        *,
        connections: Connections,
        mappings: MappingDirectory,
        commands: Commands,
        wake: Callable[[], None],
        metrics: SyncMetrics,
        box: SecretBox,
    ) -> None:
        self._box = box
        self._connections = connections
        self._mappings = mappings
        self._commands = commands
        self._wake = wake
        self._metrics = metrics
        # The networks with commands, found once (every provider event passes here).
        self._commanded: dict[str, Commanded] = {
            name: provider
            for name, provider in connections.providers.items()
            if isinstance(provider, Commanded)
        }

    async def accept(self, events: list[ProviderEvent]) -> None:
        """The batch's commands written to the command queue (once each), and the command
        worker woken."""
        now = utcnow()
        docs: list[Document] = []
        for event in events:
            found = self._invocations(event)
            if not found:
                continue
            try:
                integration = await self._connections.integration(event.integration_id)
            except HookhubError:
                continue
            for invocation in found:
                doc = await self._doc(event.provider, integration, invocation)
                if doc is not None:
                    docs.append(queued_as(doc.pop("_id"), integration.workspace_id, now, doc))
        if docs and await self._commands.accept(docs):
            self._wake()

    def _invocations(self, event: ProviderEvent) -> list[Invocation]:
        network = self._commanded.get(event.provider)
        # A command is never so large that the gateway stored its body aside.
        if network is None or event.payload_ref or not isinstance(event.payload, Mapping):
            return []
        try:
            return network.commands(event.event_type, event.payload)
        except Exception:  # a provider module must not stop the partition on one payload
            log.exception("provider_commands_failed", envelope_id=event.id)
            return []

    async def _doc(
        self, provider: str, integration: IntegrationSnapshot, invocation: Invocation
    ) -> Document | None:
        """The command's document (its `_id` among the fields), or None for one that is
        not ours to run."""
        if invocation.addressed_to is not None and not await self._ours(
            integration, invocation.addressed_to
        ):
            return None  # `/hookhub@another_bot`
        actor = network_user(provider, invocation.user_id)
        if id_problem(actor) is not None or len(invocation.text) > TEXT_CHARS:
            self._metrics.messages.labels(provider, "inbound", "invalid").inc()
            return None
        mapped = [
            m
            for m in self._mappings.of_external(integration.id, invocation.external_channel_id)
            if m.enabled
        ]
        network = self._commanded[provider]
        return {
            "_id": derived_id(provider, integration.id, invocation.interaction_id, prefix="cmd"),
            "channel_id": mapped[0].channel_id if mapped else None,
            "text": f"{NAME} {invocation.text}",
            "actor": {"id": actor, "name": await self._name(integration, invocation)},
            "via": {
                "provider": provider,
                "integration_id": integration.id,
                "interaction_id": invocation.interaction_id,
                "external_channel_id": invocation.external_channel_id,
                # Sealed: a response URL or an interaction's token posts as the app.
                "reply": sealed_reply(self._box, invocation.reply),
                "private_answers": network.private_answers,
            },
        }

    async def _ours(self, integration: IntegrationSnapshot, addressed_to: str) -> bool:
        try:
            identity = await self._connections.identity(integration)
        except Exception:  # the bot unknown for now: taken as ours (it was sent to us)
            return True
        return identity.name is None or identity.name.lower() == addressed_to.lower()

    async def _name(self, integration: IntegrationSnapshot, invocation: Invocation) -> str:
        """Who typed it, as the network shows them (cached, as the authors of the messages
        brought in), else as the invocation names them."""
        author = await self._connections.author(integration, invocation.user_id)
        name = author.name if author is not None else invocation.user_name
        return str(name or invocation.user_id)[:NAME_CHARS]
