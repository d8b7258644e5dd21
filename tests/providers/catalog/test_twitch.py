"""Twitch EventSub: `sha256=` hex HMAC of message id + timestamp + body, ten minutes, and the
signed challenge answered as raw text, as Twitch's "Handling webhook events" says."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from shared.providers.base import InboundRequest, MalformedWebhook, SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog.support import NOW, declared, inbound

ENTRY = CATALOG["twitch"]
WEBHOOKS = declared(ENTRY)

# twitch-rs/twitch_api (MIT OR Apache-2.0), src/eventsub/mod.rs, test `verify_request`: a
# notification sent by Twitch's CLI (`twitch event trigger`), its secret and signature.
CLI_SECRET = "secretabcd"
CLI_AT = datetime(2021, 2, 19, 23, 47, tzinfo=UTC)
CLI_HEADERS = {
    "content-type": "application/json",
    "twitch-eventsub-message-id": "ae2ff348-e102-16be-a3eb-6830c1bf38d2",
    "twitch-eventsub-message-retry": "0",
    "twitch-eventsub-message-signature": (
        "sha256=d10f5bd9474b7ac7bd7105eb79c2d52768b4d0cd2a135982c3bf5a1d59a78823"
    ),
    "twitch-eventsub-message-timestamp": "2021-02-19T23:47:00.8091512Z",
    "twitch-eventsub-message-type": "notification",
    "twitch-eventsub-subscription-type": "channel.follow",
    "twitch-eventsub-subscription-version": "1",
}
CLI_BODY = (
    b'{"subscription":{"id":"ae2ff348-e102-16be-a3eb-6830c1bf38d2","status":"enabled",'
    b'"type":"channel.follow","version":"1","condition":{"broadcaster_user_id":"44429626"},'
    b'"transport":{"method":"webhook","callback":"null"},"created_at":'
    b'"2021-02-19T23:47:00.7621315Z"},"event":{"user_id":"28408015","user_login":'
    b'"testFromUser","user_name":"testFromUser","broadcaster_user_id":"44429626",'
    b'"broadcaster_user_login":"44429626","broadcaster_user_name":"testBroadcaster"}}'
)
SECRET = "s3cre77890ab"
STAMP = "2024-06-01T12:00:00.123456789Z"  # NOW, in nanoseconds as Twitch writes it
MESSAGE_ID = "befa7b53-d79d-478f-86b9-120f112b044e"


def signature(
    body: bytes, stamp: str = STAMP, message_id: str = MESSAGE_ID, secret: str = SECRET
) -> str:
    """The docs' JS sample: HMAC_PREFIX 'sha256=' + hex HMAC of id + timestamp + body."""
    mac = hmac.new(secret.encode(), (message_id + stamp).encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def request(
    body: bytes, sig: str | None, kind: str = "notification", stamp: str = STAMP
) -> InboundRequest:
    headers = {
        "content-type": "application/json",
        "twitch-eventsub-message-id": MESSAGE_ID,
        "twitch-eventsub-message-timestamp": stamp,
        "twitch-eventsub-message-type": kind,
    }
    if sig is not None:
        headers["twitch-eventsub-message-signature"] = sig
    return inbound(body, headers)


assert ENTRY.sample is not None
BODY = ENTRY.sample.body("twitch")


def test_the_twitch_cli_vector_verifies() -> None:
    assert len(CLI_BODY) == 458  # its Content-Length
    cli = inbound(CLI_BODY, CLI_HEADERS)
    WEBHOOKS.verify(cli, {"secret": CLI_SECRET}, CLI_AT)
    parsed = WEBHOOKS.parse(cli)
    assert (parsed.event_type, parsed.delivery_id) == (
        "channel.follow",
        "ae2ff348-e102-16be-a3eb-6830c1bf38d2",
    )
    with pytest.raises(SignatureInvalid, match="stale"):
        WEBHOOKS.verify(cli, {"secret": CLI_SECRET}, CLI_AT + timedelta(minutes=11))


def test_the_docs_recipe_verifies_and_is_what_hookhub_signs() -> None:
    WEBHOOKS.verify(request(BODY, signature(BODY)), {"secret": SECRET}, NOW)
    _, headers = ENTRY.signed_sample({"secret": SECRET}, "https://h/x", NOW)
    stamp = headers["twitch-eventsub-message-timestamp"]
    assert headers["twitch-eventsub-message-signature"] == signature(BODY, stamp)


@pytest.mark.parametrize(
    "sig",
    [
        signature(BODY, secret="another secret"),
        signature(BODY, message_id="another id"),
        signature(BODY, stamp="2024-06-01T12:00:00.123456788Z"),
        signature(BODY + b" "),
        signature(BODY).removeprefix("sha256="),
        "sha256=" + base64.b64encode(bytes.fromhex(signature(BODY)[7:])).decode(),
        None,
    ],
    ids=[
        "other-secret",
        "other-id",
        "other-timestamp",
        "other-body",
        "no-prefix",
        "base64",
        "missing",
    ],
)
def test_what_twitch_would_not_send_is_refused(sig: str | None) -> None:
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(request(BODY, sig), {"secret": SECRET}, NOW)


def test_ten_minutes_either_way() -> None:
    for seconds in (-600, 600):
        stamp = (NOW + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
        WEBHOOKS.verify(request(BODY, signature(BODY, stamp), stamp=stamp), {"secret": SECRET}, NOW)
    for seconds in (-601, 601):
        stamp = (NOW + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
        with pytest.raises(SignatureInvalid, match="stale"):
            WEBHOOKS.verify(
                request(BODY, signature(BODY, stamp), stamp=stamp), {"secret": SECRET}, NOW
            )


def test_the_challenge_is_answered_as_raw_text_once_verified() -> None:
    assert ENTRY.handshake_probe is not None
    probe = ENTRY.handshake_probe({"secret": SECRET}, "https://h/x", NOW)
    challenge = inbound(probe.body, probe.headers)
    assert WEBHOOKS.handshake(challenge, {"secret": SECRET}) is None  # not before verifying
    WEBHOOKS.verify(challenge, {"secret": SECRET}, NOW)
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(challenge, {"secret": "another secret"}, NOW)
    parsed = WEBHOOKS.parse(challenge)
    assert parsed.publish is False
    assert (parsed.reply.status, parsed.reply.body, parsed.reply.media_type) == (
        200,
        "pogchamp-kappa-360noscope-vohiyo",
        "text/plain",
    )
    assert probe.answer == b"pogchamp-kappa-360noscope-vohiyo"
    with pytest.raises(MalformedWebhook, match="challenge"):
        WEBHOOKS.parse(request(b'{"subscription": {}}', None, "webhook_callback_verification"))


def test_a_revocation_is_published_as_revocation() -> None:
    # The docs' revocation body: no `event`, the reason in `subscription.status`.
    body = (
        b'{"subscription":{"id":"f1c2a387-161a-49f9-a165-0f21d7a4e1c4","status":'
        b'"authorization_revoked","type":"channel.follow","cost":1,"version":"1",'
        b'"condition":{"broadcaster_user_id":"12826"},"transport":{"method":"webhook",'
        b'"callback":"https://example.com/webhooks/callback"},"created_at":'
        b'"2019-11-16T10:11:12.634234626Z"}}'
    )
    parsed = WEBHOOKS.parse(request(body, None, "revocation"))
    assert (parsed.event_type, parsed.delivery_id, parsed.publish) == (
        "revocation",
        MESSAGE_ID,
        True,
    )
    assert WEBHOOKS.parse(request(BODY, None)).event_type == "channel.follow"
