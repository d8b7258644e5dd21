"""A notification on its way to one subscription's channel (`Post`): what the pipeline
(service.py) threads and publishes, and the templates (templates.py) render."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from services.sync.notifications.directory import SubscriptionSnapshot
from shared.domain.message_map import Copy, copy_id, notification_id, offers_id
from shared.kernel.envelopes import ProviderEvent
from shared.providers.catalog import CATALOG
from shared.providers.notify import Notice


@dataclass(frozen=True)
class Post:
    """One notification for one subscription."""

    event: ProviderEvent
    subscription: SubscriptionSnapshot
    notice: Notice
    # An event the subscription leaves out (not among its `events`) about an item whose
    # thread is in its channel: only the root is edited to the item as it is now, nothing
    # is posted (SPEC §20: a card's state and actions follow the item).
    card_only: bool = False

    @property
    def source(self) -> str:
        """What the envelope ids derive from: what happened, else the delivery."""
        return self.notice.occurrence or self.event.delivery_id

    @functools.cached_property
    def id(self) -> str:
        return notification_id(self.subscription.id, self.source, "post")

    @property
    def edit_id(self) -> str:
        return notification_id(self.subscription.id, self.source, "root")

    @functools.cached_property
    def root_id(self) -> str | None:
        """The map's id of the item's root in this channel, for a threaded notification: a
        copy whose provider coordinates are the item in the chat channel (one per both)."""
        if not self.subscription.threads or self.notice.item is None:
            return None
        channel = self.subscription.channel_id
        return copy_id(self.event.provider, self.event.integration_id, channel, self.notice.item)

    @property
    def needs_root(self) -> bool:
        """Whether this post is made only where its item has a root (Notice.needs_root;
        `needs_root_by_default` for a subscription that took it by default)."""
        notice = self.notice
        return notice.needs_root or (
            notice.needs_root_by_default and self.subscription.filters.events is None
        )

    @property
    def actor_name(self) -> str:
        """Who made this change, as the root says: the actor, else the service."""
        actor = self.notice.actor
        return actor.name if actor is not None else nobody(self.event.provider)

    def root_copy(self, generation: int) -> Copy:
        """The map's copy of the root of the item's thread `generation` in this channel (0:
        `root_id`; a later one: the item named `<item>~<generation>`)."""
        assert self.notice.item is not None
        item = self.notice.item if generation == 0 else f"{self.notice.item}~{generation}"
        return Copy.new(
            workspace_id=self.subscription.workspace_id,
            channel_id=self.subscription.channel_id,
            provider=self.event.provider,
            integration_id=self.event.integration_id,
            mapping_id=None,
            external_channel_id=self.subscription.channel_id,
            external_message_id=item,
            origin="notification",
            inbound_id=self.id,
            # Every root of the item (in any channel, of any thread) shares its offers.
            offers_id=offers_id(self.event.integration_id, self.notice.item),
        )


def nobody(provider: str) -> str:
    """The author of a notification whose payload names nobody: the service itself."""
    entry = CATALOG.get(provider)
    return entry.name if entry is not None else provider
