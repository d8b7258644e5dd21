"""The generic rendering (SPEC §16) of every catalog provider without a renderer of its own:
who, what, which object, the link, found by common field names and boundedly; quiet unless
a subscription names the event; never fails on any JSON. Held to every catalog provider's
documented sample, parsed as the gateway parses it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.providers.base import InboundRequest
from shared.providers.catalog import CATALOG, Entry
from shared.providers.notifiers import NOTIFIERS
from shared.providers.notify import Unrenderable
from shared.providers.notify_generic import DEPTH, GenericNotifier, generic_notice
from tests.providers.notify_support import HOSTILE, assert_defused, assert_inert, links, plain

SAMPLED = [e for e in CATALOG.values() if e.notifies and e.sample is not None]


def gateway_view(entry: Entry) -> tuple[str, Any]:
    """The sample's event name and payload, as the gateway's parse of it names them."""
    assert entry.sample is not None
    sample = entry.sample
    headers = {
        "content-type": sample.content_type,
        **{k.lower(): v for k, v in sample.headers.items()},
    }
    request = InboundRequest(
        headers=headers, body=sample.body(entry.provider), received_at=datetime.now(UTC)
    )
    assert entry.webhooks is not None
    parsed = entry.webhooks.parse(request)
    payload = parsed.payload
    if not isinstance(payload, dict | list):  # a JSON body kept as its bytes
        payload = json.loads(sample.body(entry.provider))
    return parsed.event_type, payload


@pytest.mark.parametrize("entry", SAMPLED, ids=[e.provider for e in SAMPLED])
def test_every_catalog_sample_renders_generically_naming_its_event(entry: Entry) -> None:
    event, payload = gateway_view(entry)
    notice = GenericNotifier(entry).notice(event, payload)
    assert notice.event == event and notice.quiet is None and not notice.default
    assert notice.text.strip() and f"{entry.name}: {event}" in plain(notice.text)
    assert_inert(notice.text, baseline=f"**{entry.name}**")
    assert notice.card is not None
    assert_defused(notice.card.title)
    for href, _ in links(notice.text):
        assert href.startswith(("https://", "http://"))


@pytest.mark.parametrize("entry", SAMPLED, ids=[e.provider for e in SAMPLED])
def test_every_catalog_sample_renders_through_its_providers_notifier(entry: Entry) -> None:
    """Whichever renders it (its own renderer or the generic one), a provider's documented
    sample, named as the gateway names it, is a notice with text."""
    event, payload = gateway_view(entry)
    notice = NOTIFIERS[entry.provider].notice(event, payload)
    assert notice.text.strip() and notice.event
    assert_inert(notice.text, baseline=notice.text)


def test_who_which_object_and_the_link_by_common_names() -> None:
    payload = {
        "type": "charge.refunded",
        "data": {"object": {"id": "ch_1", "name": "Order 7", "url": "https://x.example/ch_1"}},
        "user": {"login": "ada", "name": "Ada Lovelace", "id": 5},
    }
    notice = generic_notice("Shop", "charge.refunded", payload)
    assert plain(notice.text).strip() == "Shop: charge.refunded by Ada Lovelace: Order 7 (ch_1)"
    assert links(notice.text) == [("https://x.example/ch_1", "Order 7 (ch_1)")]
    assert notice.actor is not None and notice.actor.login == "ada"
    # Links only to http(s), wherever they are.
    bare = generic_notice("Shop", "x", {"url": "javascript:alert(1)", "title": "T"})
    assert links(bare.text) == [] and "T" in plain(bare.text)


def test_it_reads_only_so_deep_and_survives_any_json() -> None:
    deep: dict[str, Any] = {"title": "too deep"}
    for _ in range(DEPTH + 2):
        deep = {"wrapper": deep}
    assert "too deep" not in plain(generic_notice("S", "e", deep).text)
    wide = {f"k{n}": {"title": f"t{n}"} for n in range(5000)}
    assert "t0" in plain(generic_notice("S", "e", wide).text)
    odd: Any
    for odd in ({}, {"user": 5, "title": [], "url": {"href": 7}}, {"data": {"object": "x"}}):
        assert "S: e" in plain(generic_notice("S", "e", odd).text)
    entry = CATALOG["stripe"]
    for body in ([], [1, 2], "text", 7, None):
        assert "Stripe: e" in plain(GenericNotifier(entry).notice("e", body).text)  # type: ignore[arg-type]
    with pytest.raises(Unrenderable):
        GenericNotifier(entry).notice(None, {})


@pytest.mark.parametrize("hostile", HOSTILE)
def test_outside_text_stays_text(hostile: str) -> None:
    payload = {"actor": {"name": hostile}, "title": hostile, "id": hostile, "url": hostile}
    notice = generic_notice("S", "e", payload)
    assert_inert(notice.text, baseline="**S**")
    assert notice.card is not None and notice.actor is not None
    assert_defused(notice.card.title)
    assert_defused(notice.actor.name)
    named = generic_notice("S", hostile, {})
    assert_inert(named.text, baseline="**S**")


def test_the_pages_example_is_what_it_makes_of_asanas_sample() -> None:
    page = (Path(__file__).parents[2] / "docs" / "notifications.md").read_text()
    section = page[page.index("\n## Other services\n") :]
    example = next(line[4:] for line in section.splitlines() if line.startswith("    "))
    event, payload = gateway_view(CATALOG["asana"])
    assert GenericNotifier(CATALOG["asana"]).notice(event, payload).text == example
