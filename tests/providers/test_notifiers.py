"""Which providers notify (SPEC §16): every catalog provider sending webhooks but the chats,
each with its own renderer or the generic one, and what a subscription may name of each."""

from __future__ import annotations

from shared.providers.catalog import CATALOG
from shared.providers.notifiers import NOTIFIERS
from shared.providers.notify import known
from shared.providers.notify_generic import GenericNotifier


def test_every_provider_sending_webhooks_notifies_but_the_chats() -> None:
    sending = {name for name, entry in CATALOG.items() if entry.webhooks is not None}
    chats = {name for name, entry in CATALOG.items() if entry.category == "chat"}
    assert {"slack", "discord", "telegram"} <= chats
    assert set(NOTIFIERS) == sending - chats
    for name, notifier in NOTIFIERS.items():
        assert notifier.name == name
        assert "notifications" in CATALOG[name].capabilities
    # Their own renderers where a folder has one.
    for name in ("github", "jira", "alertmanager"):
        assert not isinstance(NOTIFIERS[name], GenericNotifier)


def test_a_generically_rendered_provider_takes_any_event_name_and_notifies_none_unasked() -> None:
    generic = [n for n in NOTIFIERS.values() if isinstance(n, GenericNotifier)]
    assert generic
    for notifier in generic:
        assert known(notifier, "anything.it_sends") and notifier.default_events == ()
        notice = notifier.notice("some.event", {})
        assert notice.event == "some.event" and not notice.default
    # A provider with a renderer of its own takes only the names it renders.
    assert not known(NOTIFIERS["alertmanager"], "anything")
