"""Twitch's EventSub webhooks: `Twitch-Eventsub-Message-Signature: sha256=<hex>`, the
HMAC-SHA256 of `Twitch-Eventsub-Message-Id` + `Twitch-Eventsub-Message-Timestamp` + the raw
body (nothing between), keyed by the `transport.secret` given when subscribing (its text);
the timestamp is RFC 3339 with nanoseconds, at most ten minutes old (hookhub: ten minutes
either way).

Checked against Twitch's "Getting Events Using Webhook Callbacks" and the EventSub
overview ("Guarding against replay attacks": a message_timestamp older than 10 minutes,
an id seen before), and the vector of twitch-rs/twitch_api's tests (a request of Twitch's
CLI). Twitch has no SDK on PyPI. Every message is signed, the subscription's verification
too: its challenge is answered after the signature checks (`control`), as raw text.
A `revocation` (Twitch ended the subscription) is published, named `revocation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import orjson

from shared.providers.base import InboundRequest, MalformedWebhook, Reply
from shared.providers.catalog import Entry, Probe, Sample, Setting
from shared.providers.declared import Declared, Fields, Found, FromHeader, echoed
from shared.providers.schemes import BODY, HeaderValue, Hmac, Window

MESSAGE_ID = "twitch-eventsub-message-id"
TIMESTAMP = "twitch-eventsub-message-timestamp"
MESSAGE_TYPE = "twitch-eventsub-message-type"

SCHEME = Hmac(
    "twitch-eventsub-message-signature",
    setting="secret",
    prefix="sha256=",
    signed=(HeaderValue(MESSAGE_ID), HeaderValue(TIMESTAMP), BODY),
    window=Window(600, header=TIMESTAMP, unit="rfc3339"),
)


def _verification(request: InboundRequest, fields: Fields) -> Reply | None:
    """`webhook_callback_verification`: "the response body must contain the raw challenge
    string only", with a 200 (the Content-Length is the challenge's)."""
    if (request.header(MESSAGE_TYPE) or "").strip() != "webhook_callback_verification":
        return None
    challenge = fields.get(("challenge",))
    if not isinstance(challenge, str) or not challenge:
        raise MalformedWebhook("a webhook_callback_verification without its `challenge`")
    return echoed(challenge)


def _event(request: InboundRequest, fields: Fields) -> str | None:
    if (request.header(MESSAGE_TYPE) or "").strip() == "revocation":
        return "revocation"
    found = fields.get(("subscription", "type"))
    return found if isinstance(found, str) and found else None


WEBHOOKS = Declared(
    name="twitch",
    scheme=SCHEME,
    event=Found(_event, "`subscription.type` (`revocation` for a revocation)"),
    # "If Twitch resends the message, the message ID will be the same."
    delivery_id=FromHeader(MESSAGE_ID),
    control=_verification,
)

# The verification request of Twitch's docs ("Responding to a challenge request").
_CHALLENGE_BODY = (
    b'{"challenge":"pogchamp-kappa-360noscope-vohiyo","subscription":{"id":'
    b'"f1c2a387-161a-49f9-a165-0f21d7a4e1c4","status":"webhook_callback_verification_pending",'
    b'"type":"channel.follow","version":"1","cost":1,"condition":{"broadcaster_user_id":'
    b'"12826"},"transport":{"method":"webhook","callback":'
    b'"https://example.com/webhooks/callback"},"created_at":"2019-11-16T10:11:12.634234626Z"}}'
)


def _probe(settings: Mapping[str, str], url: str, now: datetime) -> Probe:
    headers = {
        "content-type": "application/json",
        MESSAGE_ID: f"hookhub-probe-{int(now.timestamp())}",
        "twitch-eventsub-message-retry": "0",
        MESSAGE_TYPE: "webhook_callback_verification",
        "twitch-eventsub-subscription-type": "channel.follow",
        "twitch-eventsub-subscription-version": "1",
    }
    unsigned = InboundRequest(headers=headers, body=_CHALLENGE_BODY, received_at=now, url=url)
    signed = {**headers, **SCHEME.sign(unsigned, settings, now)}
    challenge: str = orjson.loads(_CHALLENGE_BODY)["challenge"]
    return Probe(
        method="POST", headers=signed, body=_CHALLENGE_BODY, status=200, answer=challenge.encode()
    )


ENTRY = Entry(
    provider="twitch",
    name="Twitch",
    category="social",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            "secret",
            "the secret you give as `transport.secret` when subscribing: 10 to 100 ASCII "
            "characters you choose",
            pattern=r"[ -~]{10,100}",
        ),
    ),
    events=(
        "channel.follow",
        "stream.online",
        "stream.offline",
        "channel.update",
        "channel.subscribe",
        "channel.subscription.gift",
        "channel.cheer",
        "channel.raid",
        "channel.ban",
        "channel.channel_points_custom_reward_redemption.add",
        "channel.chat.message",
        "user.authorization.revoke",
        "revocation",
    ),
    setup=(
        "Choose a secret of 10 to 100 ASCII characters (`openssl rand -hex 32`) and save it "
        "here as secret.",
        "With an app access token of your Twitch application (https://dev.twitch.tv/console"
        '/apps): POST https://api.twitch.tv/helix/eventsub/subscriptions {"type": '
        '"stream.online", "version": "1", "condition": {"broadcaster_user_id": "<id>"}, '
        '"transport": {"method": "webhook", "callback": "{webhook_url}", "secret": "<the '
        'same secret>"}}.',
        "Twitch sends a signed challenge, which hookhub answers; GET /helix/eventsub/"
        "subscriptions then shows the subscription enabled.",
    ),
    docs_url="https://dev.twitch.tv/docs/eventsub/handling-webhook-events",
    handshake="webhook_callback_verification (signed, like every message): the challenge "
    "answered as raw text",
    sample=Sample(
        "channel.follow.json",
        headers={
            "twitch-eventsub-message-id": "befa7b53-d79d-478f-86b9-120f112b044e",
            "twitch-eventsub-message-retry": "0",
            "twitch-eventsub-message-type": "notification",
            "twitch-eventsub-subscription-type": "channel.follow",
            "twitch-eventsub-subscription-version": "1",
        },
    ),
    handshake_probe=_probe,
)
