"""Microsoft Graph: each notification's `clientState` equal to the integration's, one
envelope per notification, and the `?validationToken=` POST answered as text/plain.

Graph signs nothing and publishes no vector: the bodies are the docs' examples,
https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks (change
notification) and https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events
(lifecycle notification), whose clientState `secretClientValue` is the setting here.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from shared.providers.base import SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog.support import NOW, declared, inbound, signed_sample

ENTRY = CATALOG["microsoft"]
WEBHOOKS = declared(ENTRY)
SETTINGS = {"client_state": "secretClientValue"}


def documented() -> dict[str, Any]:
    assert ENTRY.sample is not None
    loaded: dict[str, Any] = json.loads(ENTRY.sample.body("microsoft"))
    return loaded


# The lifecycle example, with the docs' placeholders filled in.
LIFECYCLE = {
    "subscriptionId": "7a8b9c0d-1111-2222-3333-444455556666",
    "subscriptionExpirationDateTime": "2019-03-20T11:00:00.0000000Z",
    "tenantId": "84bd8158-6d4d-4958-8b9f-9d6445542f95",
    "clientState": "secretClientValue",
    "lifecycleEvent": "reauthorizationRequired",
}


def post(body: dict[str, Any]) -> Any:
    return inbound(json.dumps(body).encode(), {"content-type": "application/json"})


def test_the_docs_notification_verifies_and_is_named_by_its_change_type() -> None:
    request = post(documented())
    WEBHOOKS.verify(request, SETTINGS, NOW)
    parsed = WEBHOOKS.parse(request)
    assert [(e.event_type, e.delivery_id) for e in parsed.events] == [("created", "lsgTZMr9KwAAA")]


def test_every_notification_of_a_batch_must_carry_the_client_state() -> None:
    batch = documented()
    second = {**copy.deepcopy(batch["value"][0]), "id": "second", "changeType": "updated"}
    batch["value"].append(second)
    WEBHOOKS.verify(post(batch), SETTINGS, NOW)
    parsed = WEBHOOKS.parse(post(batch))
    assert [e.event_type for e in parsed.events] == ["created", "updated"]
    for wrong in ("otherClientValue", None, 12):
        forged = copy.deepcopy(batch)
        if wrong is None:
            del forged["value"][1]["clientState"]
        else:
            forged["value"][1]["clientState"] = wrong
        with pytest.raises(SignatureInvalid, match="notification 2 of 2"):
            WEBHOOKS.verify(post(forged), SETTINGS, NOW)
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(post(batch), {"client_state": "otherClientValue"}, NOW)
    for empty in (b'{"value": []}', b"{}", b"[]", b"not json"):
        with pytest.raises(SignatureInvalid):
            WEBHOOKS.verify(inbound(empty, {}), SETTINGS, NOW)


def test_a_lifecycle_notification_is_named_by_its_event_and_deduplicated_by_digest() -> None:
    request = post({"value": [LIFECYCLE]})
    WEBHOOKS.verify(request, SETTINGS, NOW)
    (event,) = WEBHOOKS.parse(request).events
    assert event.event_type == "reauthorizationRequired"
    assert event.delivery_id.startswith("sha256:")  # no `id`: the notification's digest
    assert WEBHOOKS.parse(post({"value": [LIFECYCLE]})).events[0].delivery_id == event.delivery_id


def test_the_validation_request_is_answered_with_the_decoded_token_as_text() -> None:
    """The docs: `POST https://{notificationUrl}?validationToken={opaqueTokenCreatedByMicrosoftGraph}`,
    `Content-Type: text/plain; charset=utf-8`, no body; the query is decoded by then."""
    token = "Validation: Testing client application reachability <b>&</b>"
    request = inbound(
        b"",
        {"content-type": "text/plain; charset=utf-8"},
        query={"validationToken": token},
    )
    reply = WEBHOOKS.handshake(request, SETTINGS)
    assert reply is not None
    assert (reply.status, reply.body, reply.media_type) == (200, token, "text/plain")
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    lower = inbound(b"", {}, query={"validationtoken": "abc"})  # OneDrive's older spelling
    assert (answer := WEBHOOKS.handshake(lower, SETTINGS)) is not None and answer.body == "abc"
    assert WEBHOOKS.handshake(request, None) is None  # the app-level URL answers nothing
    assert WEBHOOKS.handshake(post(documented()), SETTINGS) is None  # a notification
    get = inbound(b"", {}, method="GET", query={"validationToken": token})
    assert WEBHOOKS.handshake(get, SETTINGS) is None  # Graph POSTs it


def test_the_sample_is_sent_with_the_integrations_client_state() -> None:
    settings = ENTRY.examples()
    request = signed_sample(ENTRY, settings)
    assert json.loads(request.body)["value"][0]["clientState"] == settings["client_state"]
    WEBHOOKS.verify(request, settings, NOW)


def test_the_probe() -> None:
    assert ENTRY.handshake_probe is not None
    probe = ENTRY.handshake_probe(SETTINGS, "https://h/x", NOW)
    reply = WEBHOOKS.handshake(
        inbound(probe.body, dict(probe.headers), query=probe.query), SETTINGS
    )
    assert reply is not None and str(reply.body).encode() == probe.answer
