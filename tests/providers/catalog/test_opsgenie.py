"""Opsgenie: a custom header of the Webhook integration holds the token (Opsgenie signs
nothing: no vector; `opsgenie-sdk` on PyPI is a REST client with nothing to verify)."""

from __future__ import annotations

import dataclasses

import pytest

from shared.providers.base import MalformedWebhook, SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog import credentials
from tests.providers.catalog.credentials import TOKEN, sample
from tests.providers.catalog.support import NOW, declared

ENTRY = CATALOG["opsgenie"]
WEBHOOKS = declared(ENTRY)


def test_a_custom_header_holds_the_token() -> None:
    credentials.check_header_token(ENTRY)


def test_the_token_is_required() -> None:
    assert [s.name for s in ENTRY.settings if s.required] == ["token"]
    with pytest.raises(SignatureInvalid, match="'token' is not set"):
        WEBHOOKS.verify(sample(ENTRY, {"Authorization": f"Bearer {TOKEN}"}), {}, NOW)


def test_the_event_is_the_action_and_the_id_the_bodys_digest() -> None:
    credentials.check_body_digest(ENTRY, {"token": TOKEN})
    request = sample(ENTRY, {})
    assert WEBHOOKS.parse(request).event_type == "Create"
    # Zulip's captured acknowledgement (zulip/zulip zerver/webhooks/opsgenie/fixtures,
    # Apache-2.0), cut to its action and its nanosecond updatedAt.
    acknowledged = b'{"action":"Acknowledge","alert":{"updatedAt":1502709956288000110}}'
    assert WEBHOOKS.parse(dataclasses.replace(request, body=acknowledged)).event_type == (
        "Acknowledge"
    )
    with pytest.raises(MalformedWebhook, match="no event name in `action`"):
        WEBHOOKS.parse(dataclasses.replace(request, body=b'{"alert":{}}'))
