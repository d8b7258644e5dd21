"""Every provider of the catalog keeps the contract: a complete entry, its documented sample
signed by its scheme verifies and parses, and what is forged, unsigned or stale is refused.

Each provider's own tests (test_<provider>.py) check its scheme against the provider's
published vectors and official SDK; these check that no provider skips the basics.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from pathlib import Path

import pytest

from shared.providers.base import SignatureInvalid
from shared.providers.catalog import CATALOG, CATEGORIES, Entry
from shared.providers.schemes import AnyOf
from tests.providers.catalog.support import DECLARED, NOW, declared, signed_sample

ids = [e.provider for e in DECLARED]


@pytest.mark.parametrize("entry", CATALOG.values(), ids=list(CATALOG))
def test_every_entry_is_complete(entry: Entry) -> None:
    assert entry.name and entry.category in CATEGORIES
    assert entry.docs_url.startswith("https://")
    assert entry.setup and all(step.strip() for step in entry.setup)
    names = [s.name for s in entry.settings]
    assert len(names) == len(set(names))
    assert all(s.description for s in entry.settings)
    if entry.webhooks is not None:
        assert entry.events or entry.category == "generic", "the events a user can pick"
        assert entry.verification_json() is not None
        assert set(entry.webhooks.secret_fields) <= set(names), "the scheme's settings exist"
        shown = entry.to_json("https://h.example/api/webhooks/x/int_1")
        urls = [step for step in shown["setup"] if "https://h.example/" in step]
        assert urls or entry.provider == "telegram", "a setup step says where the URL goes"


@pytest.mark.parametrize("entry", DECLARED, ids=ids)
def test_the_documented_sample_signed_verifies_and_parses(entry: Entry) -> None:
    webhooks = declared(entry)
    settings = entry.examples()
    request = signed_sample(entry, settings)
    webhooks.verify(request, settings, NOW)
    parsed = webhooks.parse(request)
    events = parsed.events or (parsed,)
    for event in events:
        assert event.event_type and event.delivery_id
        assert event.event_type in entry.events or entry.provider in _OPEN_EVENT_NAMES, (
            f"{event.event_type} of the sample is among the catalog's events"
        )


# Generic sources name their events as configured: the catalog cannot list them.
_OPEN_EVENT_NAMES = {"hmac", "token", "basic", "standard_webhooks"}


@pytest.mark.parametrize("entry", DECLARED, ids=ids)
def test_another_secret_a_changed_body_and_no_signature_are_refused(entry: Entry) -> None:
    webhooks = declared(entry)
    settings = entry.examples()
    request = signed_sample(entry, settings)
    other = entry.examples()
    assert other != settings
    with pytest.raises(SignatureInvalid):
        webhooks.verify(request, other, NOW)
    assert entry.sample is not None
    sent = {k.lower() for k in (*entry.sample.headers, "content-type")}
    # The documented sample as it is: without what signing added (headers, the query's
    # token; Mailgun's signature and Microsoft Graph's clientState are in the body).
    unsigned = dataclasses.replace(
        request,
        headers={k: v for k, v in request.headers.items() if k in sent},
        body=entry.sample.body(entry.provider),
        query={},
    )
    with pytest.raises(SignatureInvalid):
        webhooks.verify(unsigned, settings, NOW)
    # A token does not cover the body (nor does a sender's choice of one: GitLab's);
    # Mailgun signs a timestamp and token, not its event.
    scheme = webhooks.scheme
    chosen = scheme.chosen(settings) if isinstance(scheme, AnyOf) else scheme
    if chosen is not None and chosen.name not in ("token", "basic", "mailgun"):
        # A form body (Twilio's) has no brace to change: a trailing space changes its last value.
        body = request.body.replace(b"}", b" }", 1) if b"}" in request.body else request.body + b" "
        changed = dataclasses.replace(request, body=body)
        with pytest.raises(SignatureInvalid):
            webhooks.verify(changed, settings, NOW)


@pytest.mark.parametrize("entry", DECLARED, ids=ids)
def test_a_stale_signature_is_refused_where_the_provider_signs_a_time(entry: Entry) -> None:
    webhooks = declared(entry)
    settings = entry.examples()
    old = signed_sample(entry, settings, NOW - timedelta(hours=1))
    if old.headers == signed_sample(entry, settings).headers:
        pytest.skip(f"{entry.provider} signs no time: a redelivery is the dedupe's")
    with pytest.raises(SignatureInvalid, match="stale"):
        webhooks.verify(old, settings, NOW)


@pytest.mark.parametrize("entry", DECLARED, ids=ids)
def test_a_handshake_is_only_an_integrations(entry: Entry) -> None:
    """On the app-level URL (no integration: settings None) nothing is answered; nor, for
    a provider without a handshake, on an integration's."""
    webhooks = declared(entry)
    settings = entry.examples()
    request = signed_sample(entry, settings)
    assert webhooks.handshake(request, None) is None
    if entry.handshake is None:
        assert webhooks.handshake(request, settings) is None


def test_the_docs_table_lists_every_catalog_provider() -> None:
    """docs/providers.md's catalog table has a row for each provider that takes webhooks,
    and each row's link finds its section."""
    text = (Path(__file__).parents[3] / "docs" / "providers.md").read_text()
    for entry in DECLARED:
        assert f"(`{entry.provider}`) |" in text, f"no row for {entry.provider}"
    headings = {
        re.sub(r"[^a-z0-9 _-]", "", h.lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", text, re.M)
    }
    links = re.findall(r"^\| \[[^]]+\]\(#([^)]+)\) \(`", text, re.M)
    assert links and set(links) <= headings, set(links) - headings
