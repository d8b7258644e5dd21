"""Grafana: the contact point's HMAC Signature (grafana/alerting http/hmac.go), else its
Authorization header or Basic credentials. Grafana has no Python SDK; its own test
(grafana/alerting http/hmac_test.go, AGPL-3.0) gives inputs and recomputes the expected
hex as `hmac.New(sha256.New, secret)` over `{ts}:` + body: the vectors below are those
inputs, the expected values computed the same way."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.providers.base import InboundRequest, SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog import credentials
from tests.providers.catalog.credentials import TOKEN, sample
from tests.providers.catalog.support import NOW, declared, inbound, signed_sample

ENTRY = CATALOG["grafana"]
SAMPLES = Path(__file__).parents[3] / "shared" / "providers" / "grafana" / "samples"
WEBHOOKS = declared(ENTRY)
BODY = b"test message"  # hmac_test.go: secret "secret", body "test message"
NO_TIMESTAMP = "3bcebf43c85d20bba6e3b6ba278af1d2ba3ab0d57de271b0ad30b833e851c5a6"
# The test's mock clock starts at Unix 0: `0:test message`.
AT_ZERO = "ac18a483a582b60a883e974541afe25aa1026136163e94665649743324183ef1"
STAMP = 1700000000
AT_STAMP = "36fa366a807205a13fc507ea4413374566ad5808c7ca7653f94d121fe5e64c2d"
WITH_TIMESTAMP = {
    "hmac_secret": "secret",
    "signature_header": "X-Signature",
    "timestamp_header": "X-Timestamp",
}


def request(headers: dict[str, str], body: bytes = BODY) -> InboundRequest:
    return inbound(body, headers)


def test_the_vectors_of_grafanas_test() -> None:
    settings = {"hmac_secret": "secret", "signature_header": "X-Signature"}
    WEBHOOKS.verify(request({"X-Signature": NO_TIMESTAMP}), settings, NOW)
    zero = datetime.fromtimestamp(0, UTC)
    WEBHOOKS.verify(request({"X-Signature": AT_ZERO, "X-Timestamp": "0"}), WITH_TIMESTAMP, zero)
    at = datetime.fromtimestamp(STAMP, UTC)
    headers = {"X-Signature": AT_STAMP, "X-Timestamp": str(STAMP)}
    WEBHOOKS.verify(request(headers), WITH_TIMESTAMP, at)
    # and what hookhub signs is what Grafana's code computes
    signed = WEBHOOKS.scheme.sign(request({}), WITH_TIMESTAMP, at)
    assert signed == {"x-signature": AT_STAMP, "x-timestamp": str(STAMP)}


def test_an_empty_header_field_is_either_default_name() -> None:
    """The docs name X-Grafana-Alerting-Signature; with the field empty, Grafana's code
    signs in X-Grafana-Alert-Signature ("Empty header uses default")."""
    settings = {"hmac_secret": "secret"}
    for name in ("X-Grafana-Alerting-Signature", "X-Grafana-Alert-Signature"):
        WEBHOOKS.verify(request({name: NO_TIMESTAMP}), settings, NOW)
    assert WEBHOOKS.scheme.sign(request({}), settings, NOW) == {
        "x-grafana-alert-signature": NO_TIMESTAMP
    }
    with pytest.raises(SignatureInvalid, match="X-Grafana-Alerting-Signature header is missing"):
        WEBHOOKS.verify(request({"X-Signature": NO_TIMESTAMP}), settings, NOW)
    named = {**settings, "signature_header": "X-Grafana-Alerting-Signature"}
    with pytest.raises(SignatureInvalid, match="missing"):  # the name set is the one taken
        WEBHOOKS.verify(request({"X-Grafana-Alert-Signature": NO_TIMESTAMP}), named, NOW)


def test_wrong_missing_and_other_encodings_are_refused() -> None:
    settings = {"hmac_secret": "secret", "signature_header": "X-Signature"}
    for value in (
        NO_TIMESTAMP[:-1] + "0",
        base64.b64encode(bytes.fromhex(NO_TIMESTAMP)).decode(),  # base64, not hex
        "sha256=" + NO_TIMESTAMP,  # Grafana sends no prefix
    ):
        with pytest.raises(SignatureInvalid):
            WEBHOOKS.verify(request({"X-Signature": value}), settings, NOW)
    with pytest.raises(SignatureInvalid, match="missing"):
        WEBHOOKS.verify(request({}), settings, NOW)
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(
            request({"X-Signature": NO_TIMESTAMP}), {**settings, "hmac_secret": "x"}, NOW
        )


def test_a_timestamp_header_is_signed_and_five_minutes_either_way() -> None:
    def signed_at(stamp: int) -> InboundRequest:
        digest = hmac.new(b"secret", f"{stamp}:".encode() + BODY, hashlib.sha256).hexdigest()
        return request({"X-Signature": digest, "X-Timestamp": str(stamp)})

    now = int(NOW.timestamp())
    for offset in (-300, 300):
        WEBHOOKS.verify(signed_at(now + offset), WITH_TIMESTAMP, NOW)
    for offset in (-301, 301):
        with pytest.raises(SignatureInvalid, match="stale"):
            WEBHOOKS.verify(signed_at(now + offset), WITH_TIMESTAMP, NOW)
    # The body alone signed, or the timestamp left out, while one is configured: refused.
    with pytest.raises(SignatureInvalid, match="does not match"):
        WEBHOOKS.verify(
            request({"X-Signature": NO_TIMESTAMP, "X-Timestamp": str(now)}), WITH_TIMESTAMP, NOW
        )
    with pytest.raises(SignatureInvalid, match="x-timestamp"):
        WEBHOOKS.verify(request({"X-Signature": NO_TIMESTAMP}), WITH_TIMESTAMP, NOW)


def test_the_sample_signed_an_hour_ago_is_stale() -> None:
    settings = ENTRY.examples()
    old = signed_sample(ENTRY, settings, NOW - timedelta(hours=1))
    assert "x-grafana-alerting-timestamp" in old.headers
    with pytest.raises(SignatureInvalid, match="stale"):
        WEBHOOKS.verify(old, settings, NOW)


def test_authorization_header_and_extra_headers_without_hmac() -> None:
    credentials.check_header_token(ENTRY)


def test_basic_authentication_without_hmac() -> None:
    credentials.check_basic(ENTRY)


def test_the_hmac_when_set_is_what_is_checked() -> None:
    settings = {"hmac_secret": "secret", "token": TOKEN}
    with pytest.raises(SignatureInvalid, match="X-Grafana-Alerting-Signature"):
        WEBHOOKS.verify(sample(ENTRY, {"Authorization": f"Bearer {TOKEN}"}), settings, NOW)
    credentials.check_nothing_configured(ENTRY, "hmac_secret, or token, or username and password")


def test_the_event_is_the_status_and_the_id_the_bodys_digest() -> None:
    credentials.check_body_digest(ENTRY, ENTRY.examples())
    parsed = WEBHOOKS.parse(sample(ENTRY, {}))
    assert parsed.event_type == "firing"
    resolved = sample(ENTRY, {}).body.replace(
        b'"status": "firing",\n  "orgId"', b'"status": "resolved",\n  "orgId"'
    )
    assert WEBHOOKS.parse(dataclasses.replace(sample(ENTRY, {}), body=resolved)).event_type == (
        "resolved"
    )


def test_legacy_alerting_s_event_is_its_state() -> None:
    # Grafana's legacy dashboard alerts (Zulip's capture, shared/providers/grafana/samples)
    # have no `status`: the rule's `state` names the event.
    body = (SAMPLES / "legacy_alerting.json").read_bytes()
    parsed = WEBHOOKS.parse(dataclasses.replace(sample(ENTRY, {}), body=body))
    assert parsed.event_type == "alerting"
