"""Clicks on cards' buttons in the bridged networks (SPEC §20): the networks' own
interactions (Slack `block_actions`, Discord components, Teams `adaptiveCard/action`,
Mattermost post actions, Google Chat `CARD_CLICKED`, Telegram `callback_query`), verified by the
gateway as each network signs them, written on the chat's click queue
(services.sync.clicks.repository) for the click worker to act on, as the chat's own clicks.

The inbound consumer hands each batch of provider events here before its messages, so a
click is written before the batch's offsets are committed. A click is taken for what the
network says of it, never for what its button carries: the clicked message is looked up in
the map by its network coordinates within the event's integration (its copy id), and must
be a post of ours of a chat message; the click then names that chat message, in its chat
channel and the integration's workspace. A message of another integration (another
workspace's) is not found: nothing is written. The click's id derives from the network's
interaction id, so an interaction sent again is the same click, acted on once.

Who clicked is the network user, as `<network>:<user id>` (`slack:U024BE7LH`): the chat
user id their account link is kept under (docs/acting.md, "Clicks in the networks"). What
the network gives to answer them alone (`Click.reply`: Discord's interaction token among
it) is kept with the click, sealed, for the click worker's private ask to link.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from services.sync.clicks.queue import queued_as
from services.sync.clicks.repository import ACTION_ID_CHARS, Clicks
from services.sync.metrics import SyncMetrics
from shared.domain.integrations.model import IntegrationSnapshot
from shared.domain.message_map import MessageMap, copy_id
from shared.kernel.crypto import SecretBox
from shared.kernel.envelopes import ProviderEvent
from shared.kernel.errors import HookhubError
from shared.kernel.ids import derived_id, id_problem, utcnow
from shared.kernel.mongo import Document
from shared.providers import commonmark as md
from shared.providers.chat import Click, Interactive
from shared.providers.connections import Connections

log = structlog.get_logger(__name__)

NAME_CHARS = 200


def sealed_reply(box: SecretBox, reply: Mapping[str, str]) -> str | None:
    """What a network gave to answer its user (an interaction's token, a response URL),
    sealed: for the minutes it works, it lets whoever holds it post as the app."""
    return box.encrypt(json.dumps(dict(reply))) if reply else None


def opened_reply(box: SecretBox | None, sealed: object) -> dict[str, str]:
    """`sealed_reply`'s, opened: nothing, should it not open (a key gone since: the network
    is then answered without it)."""
    if not isinstance(sealed, str) or not sealed or box is None:
        return {}
    try:
        opened = json.loads(box.decrypt(sealed))
    except Exception:
        log.warning("sync_network_reply_unreadable")
        return {}
    return {str(k): str(v) for k, v in opened.items()} if isinstance(opened, dict) else {}


def network_user(provider: str, user_id: str) -> str:
    """The chat user id a network user's clicks act as (their account links' key)."""
    return f"{provider}:{user_id}"


@dataclass(frozen=True)
class _Clicked:
    event: ProviderEvent
    integration: IntegrationSnapshot
    click: Click

    @property
    def copy_id(self) -> str:
        return copy_id(
            self.event.provider,
            self.integration.id,
            self.click.external_channel_id,
            self.click.external_message_id,
        )


class NetworkClicks:
    def __init__(
        self,
        *,
        connections: Connections,
        message_map: MessageMap,
        clicks: Clicks,
        wake: Callable[[], None],
        metrics: SyncMetrics,
        box: SecretBox,
    ) -> None:
        self._connections = connections
        self._box = box
        self._map = message_map
        self._clicks = clicks
        self._wake = wake
        self._metrics = metrics
        # The networks with buttons, found once (a Protocol's isinstance is not cheap, and
        # every provider event of the inbound consumer passes here).
        self._interactive: dict[str, Interactive] = {
            name: provider
            for name, provider in connections.providers.items()
            if isinstance(provider, Interactive)
        }

    async def accept(self, events: list[ProviderEvent]) -> None:
        """The batch's clicks on our cards written to the click queue (once each), and
        the click worker woken."""
        clicked = [found for event in events for found in await self._clicked(event)]
        if not clicked:
            return
        copies = await self._map.by_ids(c.copy_id for c in clicked)
        now = utcnow()
        docs: list[Document] = []
        for found in clicked:
            provider, click = found.event.provider, found.click
            copy = copies.get(found.copy_id)
            if (
                copy is None
                or copy.origin != "outbound"
                or copy.chat_message_id is None
                or copy.workspace_id != found.integration.workspace_id
                or click.chat_message_id not in (None, copy.chat_message_id)
            ):
                log.info(
                    "network_click_unknown_message",
                    provider=provider,
                    integration_id=found.integration.id,
                    external_channel_id=click.external_channel_id,
                    external_message_id=click.external_message_id,
                )
                self._metrics.clicks.labels(provider, "unknown").inc()
                continue
            actor = network_user(provider, click.user_id)
            if id_problem(actor) is not None or not 0 < len(click.action_id) <= ACTION_ID_CHARS:
                self._metrics.clicks.labels(provider, "invalid").inc()
                continue
            name = await self._name(found)
            fields = {
                "channel_id": copy.channel_id,
                "message_id": copy.chat_message_id,
                "action_id": click.action_id,
                "actor": {"id": actor, "name": name},
                "via": {
                    "provider": provider,
                    "integration_id": found.integration.id,
                    "interaction_id": click.interaction_id,
                    "external_channel_id": click.external_channel_id,
                    "external_message_id": click.external_message_id,
                    "user_id": click.user_id,
                    **self._reply(click),
                },
            }
            click_id = derived_id(
                provider, found.integration.id, click.interaction_id, prefix="clk"
            )
            docs.append(queued_as(click_id, found.integration.workspace_id, now, fields))
            self._metrics.clicks.labels(provider, "queued").inc()
        if docs and await self._clicks.accept(docs):
            self._wake()

    def _reply(self, click: Click) -> dict[str, str]:
        """What answers the user alone (an interaction's token among it), sealed. Not
        among the fields `hookhub keys rotate` rewrites: a click is answered within
        seconds, and one that a removed key no longer opens is answered in the thread."""
        sealed = sealed_reply(self._box, click.reply)
        return {"reply": sealed} if sealed is not None else {}

    async def _clicked(self, event: ProviderEvent) -> list[_Clicked]:
        provider = self._interactive.get(event.provider)
        # An interaction is never so large that the gateway stored its body aside.
        if provider is None or event.payload_ref or not isinstance(event.payload, Mapping):
            return []
        try:
            clicks = provider.clicks(event.event_type, event.payload)
        except Exception:  # a provider module must not stop the partition on one payload
            log.exception("provider_clicks_failed", envelope_id=event.id)
            return []
        if not clicks:
            return []
        try:
            integration = await self._connections.integration(event.integration_id)
        except HookhubError:
            return []
        return [_Clicked(event, integration, click) for click in clicks]

    async def _name(self, found: _Clicked) -> str:
        """How the thread names who clicked: their display name at the network (cached, as
        the authors of the messages brought in), else what the interaction says; as
        CommonMark text that renders as itself (the worker's replies say it: a name is no
        link, no mention)."""
        click = found.click
        author = await self._connections.author(found.integration, click.user_id)
        name = author.name if author is not None else click.user_name or click.user_id
        return md.text(name, NAME_CHARS)
