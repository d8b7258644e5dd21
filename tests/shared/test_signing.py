"""Outgoing signatures: published vectors, and verification by the reference libraries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable

import pytest
import standardwebhooks.webhooks
import svix.webhooks

from shared.kernel.signing import (
    compat_signature,
    delivery_headers,
    is_valid_secret,
    new_secret,
    secret_key,
    signature_header,
    standard_signature,
    verify,
    webhook_body,
)

# The two published Standard Webhooks vectors (corpus README).
VECTORS = [
    (
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    ),
    (
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        1649367553,
        b'{"email":"test@example.com","username":"test_user"}',
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
    ),
]

BODY = webhook_body(
    "message.created",
    "2024-05-01T12:00:00Z",
    {"id": "msg_1", "text": "héllo ✓", "channel_id": "ch_1"},
)


def _std_verify(secret: str, headers: dict[str, str], body: bytes) -> None:
    standardwebhooks.webhooks.Webhook(secret).verify(body, headers)


def _svix_verify(secret: str, headers: dict[str, str], body: bytes) -> None:
    svix.webhooks.Webhook(secret).verify(body, headers)


LIBRARIES: list[Callable[[str, dict[str, str], bytes], None]] = [_std_verify, _svix_verify]
LIBRARY_ERRORS = (
    standardwebhooks.webhooks.WebhookVerificationError,
    svix.webhooks.WebhookVerificationError,
)


def _headers(secrets: list[str], *, body: bytes = BODY, timestamp: int | None = None):
    return delivery_headers(
        msg_id="msg_2Lk8vVnBq1",
        timestamp=int(time.time()) if timestamp is None else timestamp,
        body=body,
        secrets=secrets,
        event_type="message.created",
        user_agent="hookhub/0.1.0",
    )


@pytest.mark.parametrize(("secret", "msg_id", "timestamp", "body", "expected"), VECTORS)
def test_published_vectors(
    secret: str, msg_id: str, timestamp: int, body: bytes, expected: str
) -> None:
    assert standard_signature(secret, msg_id, timestamp, body) == expected
    assert signature_header([secret], msg_id, timestamp, body) == expected
    # Our verifier agrees, at the vector's own time.
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    headers["webhook-signature"] = expected
    assert verify(secret, headers, body, now=timestamp)
    assert not verify(secret, headers, body + b" ", now=timestamp)


@pytest.mark.parametrize("library", LIBRARIES, ids=["standardwebhooks", "svix"])
def test_libraries_verify_a_single_secret(library: Callable[..., None]) -> None:
    secret = new_secret()
    headers = _headers([secret])
    library(secret, headers, BODY)
    # Header names are case-insensitive for receivers; the libraries lower-case them.
    library(secret, {k.title(): v for k, v in headers.items()}, BODY)
    assert verify(secret, headers, BODY)


@pytest.mark.parametrize("library", LIBRARIES, ids=["standardwebhooks", "svix"])
def test_rotation_header_verifies_with_either_secret(library: Callable[..., None]) -> None:
    old, new = new_secret(), new_secret()
    headers = _headers([new, old])
    entries = headers["webhook-signature"].split(" ")
    assert len(entries) == 2
    assert all(entry.startswith("v1,") for entry in entries)
    for secret in (new, old):
        library(secret, headers, BODY)
        assert verify(secret, headers, BODY)
    stranger = new_secret()
    with pytest.raises(LIBRARY_ERRORS):
        library(stranger, headers, BODY)
    assert not verify(stranger, headers, BODY)


def test_rotation_order_is_current_first_and_duplicates_are_dropped() -> None:
    old, new = new_secret(), new_secret()
    ts = 1700000000
    header = signature_header([new, old, new], "msg_1", ts, BODY)
    assert header.split(" ") == [
        standard_signature(new, "msg_1", ts, BODY),
        standard_signature(old, "msg_1", ts, BODY),
    ]
    # The same key without the prefix is the same signature, so it is not repeated.
    assert signature_header([new, new.removeprefix("whsec_")], "msg_1", ts, BODY) == (
        standard_signature(new, "msg_1", ts, BODY)
    )
    with pytest.raises(ValueError, match="at least one secret"):
        signature_header([], "msg_1", ts, BODY)
    with pytest.raises(TypeError):
        signature_header(new, "msg_1", ts, BODY)


@pytest.mark.parametrize("library", LIBRARIES, ids=["standardwebhooks", "svix"])
def test_tampering_is_rejected(library: Callable[..., None]) -> None:
    secret = new_secret()
    headers = _headers([secret])

    tampered = BODY.replace(b"msg_1", b"msg_2")
    assert tampered != BODY
    with pytest.raises(LIBRARY_ERRORS):
        library(secret, headers, tampered)
    assert not verify(secret, headers, tampered)

    wrong = new_secret()
    with pytest.raises(LIBRARY_ERRORS):
        library(wrong, headers, BODY)
    assert not verify(wrong, headers, BODY)

    stale = _headers([secret], timestamp=int(time.time()) - 600)
    with pytest.raises(LIBRARY_ERRORS, match="too old"):
        library(secret, stale, BODY)
    assert not verify(secret, stale, BODY)

    future = _headers([secret], timestamp=int(time.time()) + 600)
    with pytest.raises(LIBRARY_ERRORS, match="too new"):
        library(secret, future, BODY)
    assert not verify(secret, future, BODY)

    # A signature over the same body with a different id does not carry over.
    moved = dict(headers, **{"webhook-id": "msg_other"})
    with pytest.raises(LIBRARY_ERRORS):
        library(secret, moved, BODY)
    assert not verify(secret, moved, BODY)


def test_our_verifier_edges() -> None:
    secret = new_secret()
    now = 1700000000
    headers = _headers([secret], timestamp=now)
    assert verify(secret, headers, BODY, now=now + 300)
    assert not verify(secret, headers, BODY, now=now + 301)
    assert not verify(secret, headers, BODY, now=now - 301)
    assert verify(secret, headers, BODY, now=now + 3000, tolerance_seconds=3000)
    for missing in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        partial = {k: v for k, v in headers.items() if k != missing}
        assert not verify(secret, partial, BODY, now=now)
    for bad_ts in ("+1700000000", " 1700000000", "1700000000.0", "", "abc"):
        assert not verify(secret, dict(headers, **{"webhook-timestamp": bad_ts}), BODY, now=now)
    good = headers["webhook-signature"]
    # Any matching entry passes, whatever else is around it; other versions are ignored.
    mixed = f"v2,{good[3:]} v1,!!notbase64 garbage {good}"
    assert verify(secret, dict(headers, **{"webhook-signature": mixed}), BODY, now=now)
    other_version = "v1a," + good[3:]
    assert not verify(secret, dict(headers, **{"webhook-signature": other_version}), BODY, now=now)
    with pytest.raises(ValueError, match="base64"):
        verify("whsec_not*base64", headers, BODY, now=now)


def test_compat_signature_is_hmac_of_the_whole_secret_string() -> None:
    secret = new_secret()
    expected = "sha256=" + hmac.new(secret.encode(), BODY, hashlib.sha256).hexdigest()
    assert compat_signature(secret, BODY) == expected
    # Not the decoded key: that would be the Standard Webhooks key, not the compat one.
    decoded = "sha256=" + hmac.new(secret_key(secret), BODY, hashlib.sha256).hexdigest()
    assert compat_signature(secret, BODY) != decoded
    # GitHub's published vector uses the same construction.
    assert compat_signature("It's a Secret to Everybody", b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


def test_delivery_headers_are_complete_and_sign_compat_with_the_oldest_valid_secret() -> None:
    """During a rotation `x-webhook-signature` stays on the secret its receivers have (the
    oldest still valid) until the grace period ends; `webhook-signature` carries both."""
    old, new = new_secret(), new_secret()
    headers = delivery_headers(
        msg_id="msg_abc",
        timestamp=1700000000,
        body=BODY,
        secrets=[new, old],
        event_type="message.created",
        user_agent="hookhub/0.1.0",
    )
    assert headers == {
        "content-type": "application/json",
        "user-agent": "hookhub/0.1.0",
        "webhook-id": "msg_abc",
        "webhook-timestamp": "1700000000",
        "webhook-signature": signature_header([new, old], "msg_abc", 1700000000, BODY),
        "x-webhook-signature": compat_signature(old, BODY),
        "x-webhook-event": "message.created",
    }
    # Three valid secrets (two rotations inside one grace period): still the oldest.
    oldest = new_secret()
    during = delivery_headers(
        msg_id="m",
        timestamp=1,
        body=BODY,
        secrets=[new, old, oldest],
        event_type="e",
        user_agent="u",
    )
    assert during["x-webhook-signature"] == compat_signature(oldest, BODY)
    # Once the grace period has ended only the new one is left, and the compat header is on it.
    after = delivery_headers(
        msg_id="m", timestamp=1, body=BODY, secrets=[new], event_type="e", user_agent="u"
    )
    assert after["x-webhook-signature"] == compat_signature(new, BODY)
    with pytest.raises(ValueError, match="at least one secret"):
        delivery_headers(
            msg_id="m", timestamp=1, body=b"{}", secrets=[], event_type="e", user_agent="u"
        )


def test_extra_headers_cannot_override_signing_or_framing_headers() -> None:
    secret = new_secret()
    ts = int(time.time())
    reference = delivery_headers(
        msg_id="msg_abc",
        timestamp=ts,
        body=BODY,
        secrets=[secret],
        event_type="message.created",
        user_agent="hookhub/0.1.0",
    )
    protected = [
        "content-type",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "x-webhook-signature",
        "x-webhook-event",
        "svix-id",
        "svix-timestamp",
        "svix-signature",
    ]
    framing = ["host", "content-length", "transfer-encoding", "connection"]
    extra: dict[str, str] = {}
    for name in protected + framing:
        for variant in (name, name.upper(), name.title(), f" {name.swapcase()} "):
            extra[variant] = "evil"
    extra["X-Tenant"] = "acme"
    extra["X-Bad\r\nInjected"] = "x"
    extra["X-Split"] = "a\r\nwebhook-signature: v1,forged"
    headers = delivery_headers(
        msg_id="msg_abc",
        timestamp=ts,
        body=BODY,
        secrets=[secret],
        event_type="message.created",
        user_agent="hookhub/0.1.0",
        extra=extra,
    )
    assert headers == {**reference, "x-tenant": "acme"}
    assert "evil" not in headers.values()
    # Still verifiable by both libraries, including svix, which prefers svix-* headers.
    _std_verify(secret, headers, BODY)
    _svix_verify(secret, headers, BODY)


def test_new_secret_sizes_and_randomness() -> None:
    for nbytes in (24, 32, 64):
        secret = new_secret(nbytes)
        assert secret.startswith("whsec_")
        assert len(secret_key(secret)) == nbytes
        assert is_valid_secret(secret)
    assert len(secret_key(new_secret())) == 32
    for nbytes in (0, 16, 23, 65):
        with pytest.raises(ValueError, match=r"24\.\.64"):
            new_secret(nbytes)
    batch = {new_secret() for _ in range(200)}
    assert len(batch) == 200
    keys = [secret_key(s) for s in batch]
    # Every byte position varies across the batch: not a counter, not a fixed prefix.
    assert all(len({k[i] for k in keys}) > 1 for i in range(32))
    # Roughly half the bits set: a broken generator (zeros, repeated byte) would fail this.
    ones = sum(bin(b).count("1") for k in keys for b in k)
    assert 0.45 < ones / (200 * 32 * 8) < 0.55


def test_secret_key_and_validity_edges() -> None:
    raw = bytes(range(24))
    encoded = base64.b64encode(raw).decode()
    assert secret_key("whsec_" + encoded) == raw
    # Without the prefix it is still read as base64, as the reference libraries do...
    assert secret_key(encoded) == raw
    assert standardwebhooks.webhooks.Webhook(encoded)._whsecret == raw
    # ...but only the prefixed form is accepted from users.
    assert not is_valid_secret(encoded)
    assert is_valid_secret("whsec_" + encoded)
    # Unpadded base64 is accepted, as by the libraries.
    odd = base64.b64encode(bytes(range(25))).decode()
    assert odd.endswith("=")
    assert secret_key("whsec_" + odd.rstrip("=")) == bytes(range(25))
    assert is_valid_secret("whsec_" + odd.rstrip("="))

    too_short = "whsec_" + base64.b64encode(bytes(23)).decode()
    too_long = "whsec_" + base64.b64encode(bytes(65)).decode()
    assert not is_valid_secret(too_short)
    assert not is_valid_secret(too_long)
    assert is_valid_secret("whsec_" + base64.b64encode(bytes(64)).decode())
    url_safe = "whsec_" + base64.urlsafe_b64encode(b"\xfb\xff" * 16).decode()
    assert "-" in url_safe or "_" in url_safe[6:]
    for bad in ("whsec_", "whsec_not base64!", url_safe, "whsec_" + encoded + "A"):
        assert not is_valid_secret(bad), bad
    assert not is_valid_secret("")
    with pytest.raises(ValueError, match="standard base64"):
        secret_key("whsec_%%%%")
    with pytest.raises(ValueError, match="empty"):
        secret_key("whsec_")


def test_webhook_body_is_compact_ordered_utf8() -> None:
    body = webhook_body("message.created", "2024-05-01T12:00:00Z", {"b": 1, "a": [1, 2]})
    assert body == (
        b'{"type":"message.created","timestamp":"2024-05-01T12:00:00Z","data":{"b":1,"a":[1,2]}}'
    )
    assert list(json.loads(BODY)) == ["type", "timestamp", "data"]
    assert b" " not in body
    # Non-ASCII is sent as UTF-8, not \u escapes, and survives a round trip.
    assert "héllo ✓".encode() in BODY
    assert json.loads(BODY)["data"]["text"] == "héllo ✓"
