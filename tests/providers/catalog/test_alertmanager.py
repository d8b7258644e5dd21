"""Alertmanager: `http_config`'s `authorization` (type Bearer by default, or another),
`http_headers` or `basic_auth`, as prometheus/alertmanager docs/configuration.md describes
them (Alertmanager signs nothing: no vector, no SDK)."""

from __future__ import annotations

import dataclasses

import pytest

from shared.providers.base import MalformedWebhook
from shared.providers.catalog import CATALOG
from tests.providers.catalog import credentials
from tests.providers.catalog.credentials import TOKEN, sample
from tests.providers.catalog.support import declared

ENTRY = CATALOG["alertmanager"]
WEBHOOKS = declared(ENTRY)


def test_authorization_credentials_and_http_headers() -> None:
    credentials.check_header_token(ENTRY)


def test_basic_auth() -> None:
    credentials.check_basic(ENTRY)


def test_nothing_configured_is_refused() -> None:
    credentials.check_nothing_configured(ENTRY, "token, or username and password")


def test_the_event_is_the_groups_status_and_the_id_the_bodys_digest() -> None:
    credentials.check_body_digest(ENTRY, {"token": TOKEN})
    assert WEBHOOKS.parse(sample(ENTRY, {})).event_type == "firing"
    # Alertmanager's JSON encoder ends the body with a newline.
    resolved = b'{"version":"4","status":"resolved","alerts":[]}\n'
    request = sample(ENTRY, {})
    assert WEBHOOKS.parse(dataclasses.replace(request, body=resolved)).event_type == "resolved"
    with pytest.raises(MalformedWebhook, match="no event name in `status`"):
        WEBHOOKS.parse(dataclasses.replace(request, body=b'{"version":"4"}'))
