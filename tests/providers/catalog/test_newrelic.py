"""New Relic: a Webhook destination's token (`Authorization: <prefix> <token>`), custom
header or Basic credentials, as newrelic/terraform-provider-newrelic's
notification_destination docs describe them (New Relic signs nothing: no vector; the
`newrelic` package on PyPI is the APM agent)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from shared.providers.base import MalformedWebhook, SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog import credentials
from tests.providers.catalog.credentials import TOKEN, sample
from tests.providers.catalog.support import NOW, declared

ENTRY = CATALOG["newrelic"]
WEBHOOKS = declared(ENTRY)
SAMPLES = Path(__file__).parents[3] / "shared" / "providers" / "newrelic" / "samples"


def test_the_destinations_token_and_custom_headers() -> None:
    credentials.check_header_token(ENTRY)


def test_a_prefix_ending_in_equals_takes_the_token_as_it_follows() -> None:
    """The provider's docs show `prefix = "Token token="` (PagerDuty's form)."""
    settings = {"token": TOKEN, "prefix": "Token token="}
    WEBHOOKS.verify(sample(ENTRY, {"Authorization": f"Token token={TOKEN}"}), settings, NOW)
    WEBHOOKS.verify(sample(ENTRY, {"Authorization": f"Token token= {TOKEN}"}), settings, NOW)
    with pytest.raises(SignatureInvalid, match="does not start with"):
        WEBHOOKS.verify(sample(ENTRY, {"Authorization": f"Bearer {TOKEN}"}), settings, NOW)


def test_basic_auth() -> None:
    credentials.check_basic(ENTRY)


def test_nothing_configured_is_refused() -> None:
    credentials.check_nothing_configured(ENTRY, "token, or username and password")


def test_the_event_is_the_issues_state_and_the_id_the_bodys_digest() -> None:
    credentials.check_body_digest(ENTRY, {"token": TOKEN})
    request = sample(ENTRY, {})
    assert WEBHOOKS.parse(request).event_type == "CREATED"
    closed = request.body.replace(b'"state": "CREATED"', b'"state": "CLOSED"')
    assert WEBHOOKS.parse(dataclasses.replace(request, body=closed)).event_type == "CLOSED"
    with pytest.raises(MalformedWebhook, match="no event name in `state`"):
        WEBHOOKS.parse(dataclasses.replace(request, body=b'{"id":"x"}'))


def test_the_legacy_policy_webhook_s_event_is_its_current_state() -> None:
    # Zulip's capture of a legacy alert policy webhook (shared/providers/newrelic/samples).
    body = (SAMPLES / "incident_open.json").read_bytes()
    request = dataclasses.replace(sample(ENTRY, {}), body=body)
    assert WEBHOOKS.parse(request).event_type == "open"
