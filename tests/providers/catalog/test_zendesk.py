"""Zendesk: `X-Zendesk-Webhook-Signature`, base64 HMAC-SHA256 of timestamp + body, checked
against the vectors published beside Zendesk's docs."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from shared.providers.base import InboundRequest, SignatureInvalid
from shared.providers.catalog import CATALOG
from shared.providers.schemes import Hmac
from tests.providers.catalog.support import NOW, declared, inbound

ENTRY = CATALOG["zendesk"]
WEBHOOKS = declared(ENTRY)
SECRET = "HRkRd4BeOAoUkfZr-mhauJT64rvBASlJRoIyPsd3zeA="
STAMP = "2024-06-01T12:00:00Z"  # NOW

# aaronellington/zendesk-go (MIT), zendesk/webhook_test.go Test_WebhookVerifySignature_200:
# Zendesk's test secret (the one its "Test webhook" panel signs with), timestamp `1234`,
# and zendesk/test_files/requests/webhook/user/group_membership_created.json (its bytes).
GO_SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
GO_BODY = (
    b'{\n\t"type": "zen:event-type:user.group_membership_created",\n\t"account_id": 12514403,'
    b'\n\t"id": "6b9bbadf-5725-4e92-bebe-7b71011bf5f1",\n\t"subject": "zen:user:6596848315901",'
    b'\n\t"time": "2099-07-04T05:33:18Z",\n\t"zendesk_event_version": "2022-06-20",\n\t"detail": '
    b'{\n\t\t"created_at": "2099-07-04T05:27:58Z",\n\t\t"default_group_id": "0",\n\t\t"email": '
    b'"user.name@example.com",\n\t\t"external_id": "",\n\t\t"id": "6596848315901",\n\t\t'
    b'"organization_id": "0",\n\t\t"role": "end-user",\n\t\t"updated_at": "2099-07-04T05:33:18Z"'
    b'\n\t},\n\t"event": { "group": { "id": "1" } }\n}\n'
)
GO_SIGNATURE = "10IqYzYTLHRftNsNE+im0DeOM6/JactIRuy0XCHJ9B8="


def request(
    signature: str | None, stamp: str | None = STAMP, body: bytes = b'{"say": "hello"}'
) -> InboundRequest:
    headers = {"content-type": "application/json", "x-zendesk-webhook-invocation-id": "8350205582"}
    if signature is not None:
        headers["x-zendesk-webhook-signature"] = signature
    if stamp is not None:
        headers["x-zendesk-webhook-signature-timestamp"] = stamp
    return inbound(body, headers)


def signature(stamp: str = STAMP, body: bytes = b'{"say": "hello"}', secret: str = SECRET) -> str:
    """The docs: base64(HMACSHA256(TIMESTAMP + BODY)), the secret's text as the key."""
    mac = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def test_the_published_vector_verifies() -> None:
    assert len(GO_BODY) == 534
    scheme = WEBHOOKS.scheme
    assert isinstance(scheme, Hmac)
    unwindowed = dataclasses.replace(scheme, window=None)
    unwindowed.verify(request(GO_SIGNATURE, "1234", GO_BODY), {"signing_secret": GO_SECRET}, NOW)
    # `1234` is no time Zendesk sends: with the window, it is refused as such.
    with pytest.raises(SignatureInvalid, match="RFC 3339"):
        WEBHOOKS.verify(request(GO_SIGNATURE, "1234", GO_BODY), {"signing_secret": GO_SECRET}, NOW)


def test_the_old_pages_order_is_refused() -> None:
    """The page's earlier version: base64(HMACSHA256((BODY)(TIMESTAMP))), with this vector
    (SIGNING_SECRET, BODY, TIMESTAMP, SIGNATURE of its NodeJS sample). The current page
    reverses the order; the old vector must fail, the same values in today's order pass."""
    at = datetime(2021, 7, 25, 10, 0, tzinfo=UTC)
    old = "tRDSF7URY8BLCDlaBcQ7FHu051Zk+aAB0NKMP53teMw="
    settings = {"signing_secret": SECRET}
    with pytest.raises(SignatureInvalid, match="does not match"):
        WEBHOOKS.verify(request(old, "2021-07-25T10:00:00Z"), settings, at)
    current = signature("2021-07-25T10:00:00Z")
    assert current == "Rry/4TtIdFyawtXXp8QdI6tlAUUQ/5kL1OTp5qo/ZIk="
    WEBHOOKS.verify(request(current, "2021-07-25T10:00:00Z"), settings, at)


def test_ten_minutes_either_way() -> None:
    settings = {"signing_secret": SECRET}
    for minutes in (-10, 10):
        stamp = (NOW + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
        WEBHOOKS.verify(request(signature(stamp), stamp), settings, NOW)
    for seconds in (-601, 601):
        stamp = (NOW + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
        with pytest.raises(SignatureInvalid, match="stale"):
            WEBHOOKS.verify(request(signature(stamp), stamp), settings, NOW)


@pytest.mark.parametrize(
    ("sig", "stamp"),
    [
        (signature(secret="another secret"), STAMP),
        (
            hmac.new(
                SECRET.encode(), STAMP.encode() + b'{"say": "hello"}', hashlib.sha256
            ).hexdigest(),
            STAMP,
        ),
        (signature(), "2024-06-01T12:00:01Z"),  # another time than the one signed
        (signature(), None),
        (None, STAMP),
        (
            base64.b64encode(
                hmac.new(
                    base64.b64decode(SECRET.replace("-", "+")),
                    STAMP.encode() + b'{"say": "hello"}',
                    hashlib.sha256,
                ).digest()
            ).decode(),
            STAMP,
        ),
    ],
    ids=["other-secret", "hex", "other-timestamp", "no-timestamp", "missing", "decoded-key"],
)
def test_what_zendesk_would_not_send_is_refused(sig: str | None, stamp: str | None) -> None:
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(request(sig, stamp), {"signing_secret": SECRET}, NOW)


def test_event_type_delivery_id_and_account() -> None:
    assert ENTRY.sample is not None
    sample = inbound(ENTRY.sample.body("zendesk"), ENTRY.sample.headers)
    parsed = WEBHOOKS.parse(sample)
    assert (parsed.event_type, parsed.delivery_id, parsed.account_id) == (
        "zen:event-type:user.active_changed",
        "8350205582",
        "123456",
    )
    # A trigger's body is the admin's own: no `type`, so it is a `trigger`.
    trigger = WEBHOOKS.parse(request(None, body=b'{"ticket_id": "42", "status": "solved"}'))
    assert (trigger.event_type, trigger.delivery_id) == ("trigger", "8350205582")
    form = dataclasses.replace(
        request(None, body=b"ticket_id=42&status=solved"),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert WEBHOOKS.parse(form).payload == {"ticket_id": "42", "status": "solved"}


def test_no_handshake() -> None:
    assert WEBHOOKS.handshake(request(None), {"signing_secret": SECRET}) is None


@pytest.mark.parametrize(
    "stamp",
    [str(int(NOW.timestamp())), "2024-06-01", "2024-06-01T12:00:00", "2024-13-01T12:00:00Z"],
    ids=["unix", "date", "no-offset", "month-13"],
)
def test_a_timestamp_that_is_no_rfc3339_time_is_refused(stamp: str) -> None:
    with pytest.raises(SignatureInvalid, match="RFC 3339"):
        WEBHOOKS.verify(request(signature(stamp), stamp), {"signing_secret": SECRET}, NOW)


def test_an_offset_is_a_time_like_any() -> None:
    stamp = "2024-06-01T05:00:00-07:00"  # NOW
    WEBHOOKS.verify(request(signature(stamp), stamp), {"signing_secret": SECRET}, NOW)
