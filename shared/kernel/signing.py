"""Outgoing webhook signing: Standard Webhooks `webhook-signature` plus the compat header."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import secrets as _secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

SECRET_PREFIX = "whsec_"  # noqa: S105 - the scheme's prefix, not a secret
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
SIGNATURE_VERSION = "v1"

# Headers hookhub itself sets on every delivery. An endpoint's own `headers` must not replace
# them: a user `webhook-signature` or `webhook-id` would make every delivery fail verification
# at the receiver (or, worse, let a configured value masquerade as our signature). The svix-*
# names are here because the svix library reads them in preference to webhook-*, so a stray
# user `svix-signature` would break receivers that verify with svix. The W3C trace context
# is sent only to an endpoint that asks for it (`propagate_trace`), and only as hookhub's.
RESERVED_HEADERS = frozenset(
    {
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
        "traceparent",
        "tracestate",
    }
)

# Framing and hop-by-hop headers belong to the HTTP client: a user `content-length` or
# `transfer-encoding` could desynchronise the request body (request smuggling at a proxy),
# a `host` could route the request somewhere other than the address the egress check vetted.
FORBIDDEN_EXTRA_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    }
)

# RFC 9110 token: anything else is not a header name an HTTP client can send verbatim.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_FORBIDDEN_VALUE_CHARS = re.compile(r"[\r\n\x00]")


def new_secret(nbytes: int = 32) -> str:
    if not MIN_SECRET_BYTES <= nbytes <= MAX_SECRET_BYTES:
        raise ValueError(
            f"secret size must be {MIN_SECRET_BYTES}..{MAX_SECRET_BYTES} bytes, got {nbytes}"
        )
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(nbytes)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret (the prefix is optional, as in the reference libraries)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    # The reference libraries accept unpadded base64, so we pad rather than refuse it.
    padded = encoded + "=" * (-len(encoded) % 4)
    try:
        # validate=True: the libraries silently drop characters outside the standard alphabet,
        # so a url-safe or mistyped secret would give them a different key than the one the
        # user believes they configured. Refusing it here surfaces the mistake instead.
        key = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(
            "webhook secret must be 'whsec_' followed by standard base64 (A-Z a-z 0-9 + /)"
        ) from exc
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def is_valid_secret(secret: str) -> bool:
    # The prefix is required here (unlike secret_key) so stored secrets have one canonical form.
    if not secret.startswith(SECRET_PREFIX):
        return False
    try:
        key = secret_key(secret)
    except ValueError:
        return False
    return MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES


def _signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    return f"{msg_id}.{timestamp}.".encode() + body


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    # hmac.digest: OpenSSL's one-shot HMAC, no HMAC object made (one per attempt and secret).
    return hmac.digest(key, _signed_content(msg_id, timestamp, body), "sha256")


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    digest = _digest(secret_key(secret), msg_id, timestamp, body)
    return f"{SIGNATURE_VERSION}," + base64.b64encode(digest).decode("ascii")


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,` entry per secret, current first, so receivers on either secret verify."""
    if isinstance(secrets, str):
        # A bare string is a Sequence[str] too; iterating it would sign with each character.
        raise TypeError("secrets must be a sequence of secrets, not a single string")
    if not secrets:
        raise ValueError("at least one secret is required to sign a delivery")
    # Deduplicate on the entry, not the secret string: the same key with and without the
    # prefix (or padding) would otherwise be sent twice.
    entries = dict.fromkeys(standard_signature(s, msg_id, timestamp, body) for s in secrets)
    return " ".join(entries)


def compat_signature(secret: str, body: bytes) -> str:
    # SPEC §7: the key is the whole secret string as UTF-8, `whsec_` included, not the decoded
    # bytes, so receivers can verify with a plain `hmac.new(secret.encode(), body, sha256)`.
    return "sha256=" + hmac.digest(secret.encode(), body, "sha256").hex()


def compat_secret(secrets: Sequence[str]) -> str:
    """The secret `x-webhook-signature` is made with: the oldest still valid (`secrets` run
    from the current one to the oldest, as `EndpointSnapshot.signing_secrets` gives them).

    The compat header has room for one value, and receivers of it compare the whole header
    (as with GitHub's `X-Hub-Signature-256`), so a second value would break every one of
    them at the moment of rotation. With the oldest secret, a receiver on the compat header
    keeps verifying through the grace period and moves to the new secret when it ends, the
    time chosen with `grace_seconds` (0 moves it at once). `webhook-signature` carries one
    entry per valid secret, so its receivers can move at any time in between.
    """
    return secrets[-1]


def delivery_headers(
    *,
    msg_id: str,
    timestamp: int,
    body: bytes,
    secrets: Sequence[str],
    event_type: str,
    user_agent: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The request headers of one attempt; `secrets` from the current one to the oldest."""
    if isinstance(secrets, str):
        raise TypeError("secrets must be a sequence of secrets, not a single string")
    if not secrets:
        raise ValueError("at least one secret is required to sign a delivery")
    headers: dict[str, str] = {}
    # Extra headers first, then ours on top: even if a reserved name slipped through the
    # filter below, the signing headers would still win.
    for name, value in (extra or {}).items():
        lowered = name.strip().lower()
        if lowered in RESERVED_HEADERS or lowered in FORBIDDEN_EXTRA_HEADERS:
            continue
        # Ignored rather than raised: a bad header stored before validation existed must not
        # stop deliveries; the API is where such headers are refused.
        if not _HEADER_NAME.fullmatch(lowered) or _FORBIDDEN_VALUE_CHARS.search(value):
            continue
        headers[lowered] = value
    headers.update(
        {
            "content-type": "application/json",
            "user-agent": user_agent,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
            "x-webhook-signature": compat_signature(compat_secret(secrets), body),
            "x-webhook-event": event_type,
        }
    )
    return headers


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_seconds: int = 300,
    now: int | None = None,
) -> bool:
    """Check a delivery as a receiver would; an unusable `secret` raises ValueError."""
    key = secret_key(secret)
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    timestamp_header = lowered.get("webhook-timestamp")
    signature = lowered.get("webhook-signature")
    if not msg_id or not timestamp_header or not signature:
        return False
    # Digits only: the signed string is "{id}.{timestamp}.", so "+1" or " 1" must not be
    # accepted as the same timestamp the sender signed.
    if not timestamp_header.isascii() or not timestamp_header.isdigit():
        return False
    timestamp = int(timestamp_header)
    current = int(time.time()) if now is None else now
    # Both directions: a timestamp far in the future is as much a replay vector as an old one.
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = _digest(key, msg_id, timestamp, body)
    matched = False
    for entry in signature.split():
        version, _, encoded = entry.partition(",")
        if version != SIGNATURE_VERSION:
            continue
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        # No early return: every entry is compared so timing says nothing about which matched.
        matched |= hmac.compare_digest(expected, candidate)
    return matched


def webhook_body(event_type: str, timestamp_iso: str, data: Mapping[str, Any] | Any) -> bytes:
    # orjson writes compact UTF-8 and keeps insertion order (type, timestamp, data); dict()
    # because orjson serialises dict, not arbitrary Mapping implementations.
    body = {"type": event_type, "timestamp": timestamp_iso, "data": data}
    if isinstance(data, Mapping):
        body["data"] = dict(data)
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        # What orjson does not write and a provider may send (an integer over 64 bits):
        # the standard library writes the same compact UTF-8.
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
