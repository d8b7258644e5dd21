"""What the actings that act with the integration's API key, as the provider user the
workspace mapped the clicking chat user to, on one item by its id share (SPEC §20;
PagerDuty's incidents, Opsgenie's alerts): the card offers what the item's state allows,
the target is the item's id, and each click is checked for what it needs (the item, an
action offered, the key, the linked user) before the provider's `act` makes its calls
(shared.providers.acting.call)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from shared.providers.acting import (
    ActionRefused,
    Credentials,
    Link,
    LinkKind,
    LinkRejected,
    Outcome,
)
from shared.providers.ids import str_field
from shared.providers.notify import CardAction, Notice


@dataclass(frozen=True)
class Asked:
    """One click, checked: the item's id, the action, the integration's API key, the linked
    provider user, the API's base URL, and what is being done (`PagerDuty resolve PT4KHLK`,
    what its errors say first)."""

    client: httpx.AsyncClient
    item: str
    action_id: str
    key: str
    user: str
    base: str
    what: str


class KeyedActing:
    """An acting on one item by its id (`target_key` in the target), with the integration's
    API key (`settings[0]`), as the mapped user; `offered` says what each state of the item
    (its card's `state`) offers. A provider's `act` makes the calls."""

    name: str
    title: str  # the provider, as people read it
    link: LinkKind = "mapping"
    settings: tuple[str, ...]
    target_key: str
    api_base: str  # the provider's own, where the credentials name none
    offered: Mapping[str, tuple[CardAction, ...]]

    def offers(self, notice: Notice) -> tuple[CardAction, ...]:
        state = notice.item_card.state if notice.item_card is not None else None
        return self.offered.get(state or "", ())

    def target(self, notice: Notice) -> Mapping[str, Any] | None:
        return {self.target_key: notice.item} if notice.item else None

    async def perform(
        self,
        client: httpx.AsyncClient,
        credentials: Credentials,
        target: Mapping[str, Any],
        action_id: str,
        who: Link,
    ) -> Outcome:
        item = str_field(target, self.target_key)
        if item is None:
            raise ActionRefused(f"{self.title}: the card names nothing to act on")
        if all(action_id != a.id for actions in self.offered.values() for a in actions):
            raise ActionRefused(f"{self.title}: no action {action_id!r}")
        key = credentials.settings.get(self.settings[0])
        if not isinstance(key, str) or not key.strip():
            # An integration without it offers no actions: refused, not retried.
            raise ActionRefused(f"{self.title}: the integration has no {self.settings[0]}")
        if not who.provider_user:
            raise LinkRejected(
                f"{self.title}: no {self.title} user is linked to {who.chat_user_id}"
            )
        base = (credentials.api_base or self.api_base).rstrip("/")
        what = f"{self.title} {action_id} {item}"
        return await self.act(
            Asked(client, item, action_id, key.strip(), who.provider_user, base, what)
        )

    async def act(self, asked: Asked) -> Outcome:
        """The action's call(s). Raises ActionRefused, ActionUnavailable, LinkRejected."""
        raise NotImplementedError
