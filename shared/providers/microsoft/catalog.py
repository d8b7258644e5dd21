"""Microsoft Graph change notifications: no signature; every notification of the body's
`value[]` carries the subscription's `clientState`, which must equal the integration's
`client_state` (compared in constant time; one that does not match refuses the request).
Each notification is its own envelope: `event_type` is its `changeType` (`created`,
`updated`, `deleted`), or `lifecycleEvent` for lifecycle notifications (`missed`,
`subscriptionRemoved`, `reauthorizationRequired`), which have no `changeType`;
`delivery_id` its `id` when Graph gives one (it is optional), else its digest.

The validation request: when a subscription is made (and at times after), Graph POSTs to
the URL with `?validationToken=<token>` and no body, and wants, within 10 s, 200 with the
URL-decoded token as `text/plain`.

Checked against https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks
(notificationUrl validation, change notification example),
https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events and
https://learn.microsoft.com/en-us/graph/api/resources/changenotification. Graph's Python
SDK (`msgraph-sdk`) has no helper for either check.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from shared.kernel.crypto import constant_time_equal
from shared.providers.base import InboundRequest, MalformedWebhook, Reply, SignatureInvalid
from shared.providers.catalog import Entry, Probe, Sample, Setting
from shared.providers.declared import Declared, FirstOf, FromJson, Split, echoed
from shared.providers.ids import decode_json_object, required_secret
from shared.providers.schemes import KeyedBy

CLIENT_STATE = "client_state"
_PLACEHOLDER = b'"clientState":"secretClientValue"'  # in the docs' example


def notifications(payload: Any) -> Sequence[Any]:
    found = payload.get("value") if isinstance(payload, dict) else None
    return found if isinstance(found, list) else []


@dataclass(frozen=True)
class ClientState(KeyedBy):
    """Every notification's `clientState` equals the integration's `client_state`: a
    token, carried in the body (so no header of its own)."""

    setting: str = CLIENT_STATE
    name: str = "token"

    @property
    def headers(self) -> tuple[str, ...]:
        return ()

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        expected = required_secret(secrets, self.setting)
        try:
            items = notifications(decode_json_object(request.body))
        except MalformedWebhook as exc:
            raise SignatureInvalid(f"no clientState to check: {exc.message}") from exc
        if not items:
            raise SignatureInvalid("the body has no notifications (`value`) to check")
        # Every item is compared, whatever the first ones gave: the time says nothing.
        matched = [
            isinstance(item, dict)
            and isinstance(item.get("clientState"), str)
            and constant_time_equal(item["clientState"], expected)
            for item in items
        ]
        if not all(matched):
            raise SignatureInvalid(
                f"the clientState of notification {matched.index(False) + 1} of "
                f"{len(items)} is not the integration's client_state"
            )

    def sign(
        self, request: InboundRequest, secrets: Mapping[str, str], now: datetime
    ) -> dict[str, str]:
        return {}  # what authenticates is in the body (`GraphEntry.signed_sample`)


def validation(request: InboundRequest, settings: Mapping[str, str]) -> Reply | None:
    """Graph's validation POST: the decoded token back as text/plain (never as HTML)."""
    # The query is decoded already; OneDrive's older docs spell it `validationtoken`.
    token = request.query.get("validationToken", request.query.get("validationtoken"))
    if request.method != "POST" or token is None:
        return None
    if not token or len(token) > 4096:
        return Reply(400, {"error": "validationToken is empty or longer than 4096 characters"})
    return echoed(token)


WEBHOOKS = Declared(
    name="microsoft",
    scheme=ClientState(),
    event=FirstOf((FromJson("changeType"), FromJson("lifecycleEvent"))),
    split=Split(
        notifications,
        event=FirstOf((FromJson("changeType"), FromJson("lifecycleEvent"))),
        # Graph's `id` is optional: without it, the notification's digest (its
        # subscriptionId, resource and changeType among what it covers).
        delivery_id=FromJson("id"),
    ),
    handshakes=(validation,),
)


@dataclass(frozen=True)
class GraphEntry(Entry):
    """The docs' example sent with the integration's clientState in each notification:
    the only way a Graph notification is authentic."""

    def signed_sample(
        self, settings: Mapping[str, str], url: str, now: datetime, sample: Sample | None = None
    ) -> tuple[bytes, dict[str, str]]:
        sample = sample or self.sample
        assert sample is not None
        body = sample.body(self.provider)
        if sample.stamped is not None:
            body = sample.stamped(body, now)
        assert _PLACEHOLDER in body, "the sample holds the docs' clientState placeholder"
        state = orjson.dumps(settings[CLIENT_STATE])
        body = body.replace(_PLACEHOLDER, b'"clientState":' + state)
        return body, {"content-type": sample.content_type, **sample.headers}


def _probe(settings: Mapping[str, str], url: str, now: datetime) -> Probe:
    token = f"Validation: Testing client application reachability {int(now.timestamp())}"
    return Probe(
        "POST",
        query={"validationToken": token},
        headers={"content-type": "text/plain; charset=utf-8"},
        answer=token.encode(),
        answer_headers={"content-type": "text/plain; charset=utf-8"},
    )


ENTRY = GraphEntry(
    provider="microsoft",
    name="Microsoft Graph (Outlook, Teams, OneDrive)",
    category="productivity",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            CLIENT_STATE,
            "the clientState given when making the subscription (at most 255 characters; "
            "the same for every subscription sent to this integration's URL)",
            pattern=r"[\x20-\x7e]{1,255}",
        ),
    ),
    events=(
        "created",
        "updated",
        "deleted",
        "missed",
        "subscriptionRemoved",
        "reauthorizationRequired",
    ),
    setup=(
        "Choose a clientState (`openssl rand -hex 32`) and save it here as client_state.",
        "Make the subscription with Graph (an app registered in Microsoft Entra ID with the "
        "permission the resource needs): POST https://graph.microsoft.com/v1.0/subscriptions "
        '{"changeType": '
        '"created,updated", "notificationUrl": "{webhook_url}", "lifecycleNotificationUrl": '
        '"{webhook_url}", "resource": "/me/mailfolders(\'inbox\')/messages", '
        '"expirationDateTime": "<within the resource\'s limit>", "clientState": "<the same '
        'value>"}. Graph validates the URL first, which hookhub answers.',
        "Renew the subscription before it expires (PATCH /subscriptions/{id}); a "
        "reauthorizationRequired notification says when.",
    ),
    handshake=(
        "Graph's validation POST ?validationToken=… is answered 200 with the decoded token "
        "as text/plain."
    ),
    docs_url="https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks",
    sample=Sample("created.json"),
    example_settings=lambda: {CLIENT_STATE: secrets.token_hex(32)},
    handshake_probe=_probe,
)
