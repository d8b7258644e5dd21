"""Twilio: `X-Twilio-Signature` checked against Twilio's SDK and its tests' vectors."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qsl, urlencode

import pytest
from twilio.request_validator import RequestValidator

from shared.providers.base import InboundRequest, SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog.support import NOW, declared, inbound

ENTRY = CATALOG["twilio"]
WEBHOOKS = declared(ENTRY)
FORM = "application/x-www-form-urlencoded"

# twilio/twilio-python tests/unit/test_request_validator.py (commit 30368b08, MIT).
TOKEN = "12345"
URI = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}
EXPECTED = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
JSON_BODY = '{"property": "value", "boolean": true}'
BODY_HASH = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
URI_WITH_BODY = URI + "&bodySHA256=" + BODY_HASH
JSON_SIGNATURE = "a9nBmqA0ju/hNViExpshrM61xv4="


def request(
    signature: str | None,
    body: bytes | str = urlencode(PARAMS),
    url: str = URI,
    content_type: str = FORM,
    headers: dict[str, str] | None = None,
) -> InboundRequest:
    sent = {"content-type": content_type, **(headers or {})}
    if signature is not None:
        sent["x-twilio-signature"] = signature
    raw = body.encode() if isinstance(body, str) else body
    return inbound(raw, sent, url=url)


def settings(**extra: str) -> dict[str, str]:
    return {"auth_token": TOKEN, **extra}


def test_the_sdk_tests_vectors_verify() -> None:
    WEBHOOKS.verify(request(EXPECTED), settings(), NOW)
    # A repeated parameter: each distinct value, sorted (MultiDict in the SDK's test).
    repeated = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    WEBHOOKS.verify(request("IK+Dwps556ElfBT0I3Rgjkr1wJU=", urlencode(repeated)), settings(), NOW)
    # A JSON body: the URL alone is signed, and carries the body's SHA-256.
    json = request(JSON_SIGNATURE, JSON_BODY, URI_WITH_BODY, "application/json")
    WEBHOOKS.verify(json, settings(), NOW)


@pytest.mark.parametrize(
    ("url", "signature"),
    [
        ("https://mycompany.com:1234/myapp.php?foo=1&bar=2", EXPECTED),  # signed without
        ("https://mycompany.com/myapp.php?foo=1&bar=2", "kvajT1Ptam85bY51eRf/AJRuM3w="),  # :443
        ("http://mycompany.com/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4="),  # :80
        ("http://mycompany.com:1234/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
    ],
    ids=["port-stripped", "443-added", "80-added", "port-as-called"],
)
def test_the_url_with_and_without_its_port(url: str, signature: str) -> None:
    """The SDK's tests: Twilio's signing is "inconsistent" about ports."""
    WEBHOOKS.verify(request(signature, url=url), settings(), NOW)


def test_what_hookhub_signs_is_what_twilios_sdk_computes() -> None:
    url = "https://hooks.example.com/api/webhooks/twilio/int_1"
    body, headers = ENTRY.signed_sample(settings(), url, NOW)
    validator = RequestValidator(TOKEN)
    params = dict(parse_qsl(body.decode()))
    assert headers["X-Twilio-Signature"] == validator.compute_signature(url, params)
    assert validator.validate(url, params, headers["X-Twilio-Signature"])
    WEBHOOKS.verify(request(headers["X-Twilio-Signature"], body, url), settings(), NOW)


def test_a_shared_key_signs_with_the_algorithm_its_settings_header_names() -> None:
    shared = "webhooks_sharedkey_secret"
    sdk = RequestValidator(shared).compute_signature(URI, PARAMS, algorithm="HMAC_SHA256")
    rule = {
        "x-twilio-webhooks-signature-settings": "key=webhooks_sharedkey_01,algorithm=HMAC_SHA256"
    }
    WEBHOOKS.verify(request(sdk, headers=rule), settings(shared_key=shared), NOW)
    with pytest.raises(SignatureInvalid, match="shared_key"):
        WEBHOOKS.verify(request(sdk, headers=rule), settings(), NOW)
    with pytest.raises(SignatureInvalid):  # the Auth Token's SHA-1 is not what the rule signs
        WEBHOOKS.verify(request(EXPECTED, headers=rule), settings(shared_key=shared), NOW)
    with pytest.raises(SignatureInvalid):  # nor is the SharedKey's without the header
        WEBHOOKS.verify(request(sdk), settings(shared_key=shared), NOW)
    unknown = {"x-twilio-webhooks-signature-settings": "key=k,algorithm=HMAC_MD5"}
    with pytest.raises(SignatureInvalid, match="unknown algorithm"):
        WEBHOOKS.verify(request(sdk, headers=unknown), settings(shared_key=shared), NOW)


@pytest.mark.parametrize(
    "signed",
    [
        request(RequestValidator("54321").compute_signature(URI, PARAMS)),
        request(base64.b64decode(EXPECTED).hex()),
        request(None),
        request(EXPECTED, url=URI.replace("foo=1", "foo=2")),
        request(EXPECTED, urlencode({**PARAMS, "Digits": "4321"})),
        request(EXPECTED, urlencode({**PARAMS, "Extra": "x"})),  # every parameter is signed
    ],
    ids=["another-token", "hex", "missing", "another-query", "another-value", "a-parameter-more"],
)
def test_what_twilio_did_not_sign_is_refused(signed: InboundRequest) -> None:
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(signed, settings(), NOW)


def test_a_json_body_must_be_the_one_the_url_names() -> None:
    other = request(JSON_SIGNATURE, '{"property": "other"}', URI_WITH_BODY, "application/json")
    with pytest.raises(SignatureInvalid, match="bodySHA256"):
        WEBHOOKS.verify(other, settings(), NOW)
    url_only = hmac.new(TOKEN.encode(), URI.encode(), hashlib.sha1).digest()
    unsigned_body = request(base64.b64encode(url_only).decode(), JSON_BODY, URI, "application/json")
    with pytest.raises(SignatureInvalid, match="bodySHA256"):
        WEBHOOKS.verify(unsigned_body, settings(), NOW)


def test_the_event_is_the_status_twilio_reports() -> None:
    status = {
        "MessageSid": "SM1",
        "MessageStatus": "delivered",
        "SmsStatus": "delivered",
        "AccountSid": "AC1",
    }
    parsed = WEBHOOKS.parse(request(None, urlencode(status)))
    assert (parsed.event_type, parsed.account_id) == ("delivered", "AC1")
    incoming = {"MessageSid": "SM2", "SmsStatus": "received", "Body": "Ahoy"}
    assert WEBHOOKS.parse(request(None, urlencode(incoming))).event_type == "received"
    call = {"CallSid": "CA1", "CallStatus": "ringing"}
    assert WEBHOOKS.parse(request(None, urlencode(call))).event_type == "ringing"
    conversation = {"EventType": "onMessageAdded", "MessageStatus": "sent"}
    assert WEBHOOKS.parse(request(None, urlencode(conversation))).event_type == "onMessageAdded"
    assert WEBHOOKS.parse(request(EXPECTED)).event_type == "webhook"  # the SDK's gather


def test_the_idempotency_token_is_the_delivery_id_and_twiml_the_answer() -> None:
    token = {"i-twilio-idempotency-token": "idem-1"}
    parsed = WEBHOOKS.parse(request(EXPECTED, headers=token))
    assert parsed.delivery_id == "idem-1"
    assert WEBHOOKS.delivery_id_header == "I-Twilio-Idempotency-Token"
    body = urlencode(PARAMS).encode()
    assert (
        WEBHOOKS.parse(request(EXPECTED)).delivery_id
        == "sha256:" + hashlib.sha256(body).hexdigest()
    )
    assert (parsed.reply.status, parsed.reply.body, parsed.reply.media_type) == (
        200,
        b"<Response></Response>",
        "text/xml",
    )
    assert WEBHOOKS.handshake(request(EXPECTED), settings()) is None
