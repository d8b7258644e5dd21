"""UptimeRobot: a custom header (Team and Enterprise) or a token in the URL, nothing signed
(UptimeRobot's "Webhook Integration" help page); the body is the template hookhub's setup
gives (Zulip's), sent as JSON or as POST parameters."""

from __future__ import annotations

import dataclasses
from urllib.parse import urlencode

import pytest

from shared.providers.base import MalformedWebhook, SignatureInvalid
from shared.providers.catalog import CATALOG
from shared.providers.uptimerobot.catalog import TEMPLATE
from tests.providers.catalog import credentials
from tests.providers.catalog.credentials import TOKEN, sample
from tests.providers.catalog.support import NOW, declared

ENTRY = CATALOG["uptimerobot"]
WEBHOOKS = declared(ENTRY)


def test_a_custom_header_holds_the_token() -> None:
    credentials.check_header_token(ENTRY)


def test_or_the_url_does() -> None:
    credentials.check_url_token(ENTRY, {"url_token": TOKEN})


def test_the_header_token_when_set_is_what_is_checked() -> None:
    settings = {"token": TOKEN, "url_token": TOKEN}
    with pytest.raises(SignatureInvalid, match="authorization header is missing"):
        WEBHOOKS.verify(sample(ENTRY, {}, {"token": TOKEN}), settings, NOW)
    assert ENTRY.sender_url(settings, "https://h/x") == "https://h/x"
    credentials.check_nothing_configured(ENTRY, "token, or url_token")


def test_the_event_is_the_friendly_alert_type_as_json_or_form() -> None:
    credentials.check_body_digest(ENTRY, {"token": TOKEN})
    request = sample(ENTRY, {})
    assert WEBHOOKS.parse(request).event_type == "Down"
    assert '"alert_type_friendly_name":"*alertTypeFriendlyName*"' in TEMPLATE
    form = urlencode({"monitor_url": "server1.example.com", "alert_type_friendly_name": "Up"})
    as_form = dataclasses.replace(
        request,
        body=form.encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert WEBHOOKS.parse(as_form).event_type == "Up"
    with pytest.raises(MalformedWebhook, match="no event name in `alert_type_friendly_name`"):
        WEBHOOKS.parse(dataclasses.replace(request, body=b'{"alert_type":"1"}'))


def test_zulip_s_earlier_template_names_the_event_as_uptimerobot_does() -> None:
    # {"monitorID":"*monitorID*", …, "alertTypeFriendlyName":"*alertTypeFriendlyName*"}:
    # Zulip's capture of it (shared/providers/uptimerobot/samples/down.json).
    body = b'{"monitorID": "784350743", "alertType": "1", "alertTypeFriendlyName": "Down"}'
    assert WEBHOOKS.parse(dataclasses.replace(sample(ENTRY, {}), body=body)).event_type == "Down"
    assert '"monitor_id":"*monitorID*"' in TEMPLATE
