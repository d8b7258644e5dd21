"""Statuspage: a webhook subscription is a URL and an email, nothing signed, so the URL's
`?token=` is all there is (Atlassian's "Enable webhook notifications"); the event is named
from which object the body carries (zulip/zulip's captured deliveries)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from shared.kernel.errors import Invalid
from shared.providers.base import MalformedWebhook
from shared.providers.catalog import CATALOG, Sample, check_settings
from tests.providers.catalog import credentials
from tests.providers.catalog.credentials import TOKEN, sample
from tests.providers.catalog.support import declared

ENTRY = CATALOG["statuspage"]
WEBHOOKS = declared(ENTRY)


def test_the_token_is_in_the_url() -> None:
    credentials.check_url_token(ENTRY, {"url_token": TOKEN})
    assert [s.name for s in ENTRY.settings if s.required] == ["url_token"]
    assert ENTRY.to_json()["verification"] == {"scheme": "token", "headers": []}
    with pytest.raises(Invalid, match="setting url_token is not valid: a long random token"):
        check_settings("statuspage", {"url_token": "guessable"}, creating=True)


def test_a_component_update_and_an_incident_are_named_by_their_status() -> None:
    credentials.check_body_digest(ENTRY, {"url_token": TOKEN})
    request = sample(ENTRY, {})
    assert WEBHOOKS.parse(request).event_type == "component.under_maintenance"
    incident = Sample("incident_created.json").body("statuspage")
    assert WEBHOOKS.parse(dataclasses.replace(request, body=incident)).event_type == (
        "incident.identified"
    )
    resolved = json.loads(incident)
    resolved["incident"]["status"] = "resolved"
    body = json.dumps(resolved).encode()
    assert WEBHOOKS.parse(dataclasses.replace(request, body=body)).event_type == (
        "incident.resolved"
    )
    with pytest.raises(MalformedWebhook, match=r"`incident\.status` or"):
        WEBHOOKS.parse(dataclasses.replace(request, body=b'{"meta":{},"page":{}}'))
