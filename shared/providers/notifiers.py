"""The providers that notify (SPEC §12, §16), by name: the ones a subscription can be made
on. A provider folder with a `notify.py` holding a `NOTIFIER` renders its own events; every
other catalog provider that sends webhooks (not the chats, whose messages are synced) is
rendered generically (shared.providers.notify_generic). Nothing else lists them."""

from __future__ import annotations

from collections.abc import Mapping

from shared.providers.catalog import CATALOG, provider_module
from shared.providers.notify import Notifier
from shared.providers.notify_generic import GenericNotifier


def _discover() -> dict[str, Notifier]:
    notifiers: dict[str, Notifier] = {}
    for name, entry in CATALOG.items():
        if not entry.notifies:
            continue
        found = provider_module(name, "notify")
        notifier: Notifier = found.NOTIFIER if found is not None else GenericNotifier(entry)
        assert notifier.name == name, (notifier.name, name)
        notifiers[name] = notifier
    return notifiers


NOTIFIERS: Mapping[str, Notifier] = _discover()
