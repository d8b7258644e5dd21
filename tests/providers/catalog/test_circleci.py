"""CircleCI: `circleci-signature: v1=<hex>`, HMAC-SHA256 of the raw body keyed by the
webhook's secret token, checked against the example signatures of CircleCI's docs.

The vectors are the table "example signatures for given request bodies" and the Python
example of https://circleci.com/docs/webhooks/ (circleci/circleci-docs
`jekyll/_cci2/webhooks.md`, MIT). CircleCI publishes no Python SDK with a webhook helper."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from shared.providers.base import MalformedWebhook, SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog.support import NOW, declared, inbound, signed_sample

ENTRY = CATALOG["circleci"]
WEBHOOKS = declared(ENTRY)
assert ENTRY.sample is not None
SAMPLE = ENTRY.sample.body("circleci")

# (body, secret, v1 signature): the docs' table, and its Python example's `foo`.
DOCUMENTED = [
    (b"hello world", "secret", "734cc62f32841568f45715aeb9f4d7891324e6d948e4c6c60c0621cdac48623a"),
    (
        b"lalala",
        "another-secret",
        "daa220016c8f29a8b214fbfc3671aeec2145cfb1e6790184ffb38b6d0425fa00",
    ),
    (
        b"an-important-request-payload",
        "hunter123",
        "9be2242094a9a8c00c64306f382a7f9d691de910b4a266f67bd314ef18ac49fa",
    ),
    (b"foo", "secret", "773ba44693c7553d6ee20f61ea5d2757a9a4f4a44d2841ae4e95b52e4cd62db4"),
]


def signed(body: bytes, header: str | None) -> tuple[bytes, dict[str, str]]:
    headers = {"content-type": "application/json"}
    if header is not None:
        headers["circleci-signature"] = header
    return body, headers


@pytest.mark.parametrize(("body", "secret", "signature"), DOCUMENTED)
def test_circlecis_documented_signatures_verify(body: bytes, secret: str, signature: str) -> None:
    settings = {"signing_secret": secret}
    WEBHOOKS.verify(inbound(*signed(body, f"v1={signature}")), settings, NOW)
    # later versions beside it are ignored, not refused
    WEBHOOKS.verify(inbound(*signed(body, f"v1={signature},v2=xyz,v3=abc")), settings, NOW)
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(inbound(*signed(body, f"v1={signature}")), {"signing_secret": "x"}, NOW)


def test_the_docs_invalid_example_and_a_missing_header_are_refused() -> None:
    settings = {"signing_secret": "secret"}
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(inbound(*signed(b"foo", "v1=not-a-valid-signature")), settings, NOW)
    with pytest.raises(SignatureInvalid, match="circleci-signature header is missing"):
        WEBHOOKS.verify(inbound(*signed(b"foo", None)), settings, NOW)


def test_only_v1_is_checked_and_only_as_hex() -> None:
    body, secret, signature = DOCUMENTED[0]
    settings = {"signing_secret": secret}
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    for header in (
        f"v2={signature}",  # another version's value is no v1
        signature,  # no version at all
        "v1=" + base64.b64encode(digest).decode(),  # base64 is not CircleCI's hex
    ):
        with pytest.raises(SignatureInvalid):
            WEBHOOKS.verify(inbound(*signed(body, header)), settings, NOW)


def test_the_sample_signed_is_what_circleci_sends() -> None:
    settings = {"signing_secret": "secret"}
    request = signed_sample(ENTRY, settings)
    expected = hmac.new(b"secret", SAMPLE, hashlib.sha256).hexdigest()
    assert request.header("circleci-signature") == f"v1={expected}"


def test_event_is_type_and_the_id_the_events_id() -> None:
    parsed = WEBHOOKS.parse(inbound(SAMPLE, {"content-type": "application/json"}))
    assert (parsed.event_type, parsed.delivery_id) == (
        "workflow-completed",
        "3888f21b-eaa7-38e3-8f3d-75a63bba8895",
    )
    with pytest.raises(MalformedWebhook, match="`type`"):
        WEBHOOKS.parse(inbound(b'{"id": "x"}', {}))
