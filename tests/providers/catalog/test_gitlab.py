"""GitLab: the Secret token in `X-Gitlab-Token`, or a Signing token's Standard Webhooks
signature, as docs.gitlab.com and GitLab's merge requests describe.

The token is not computed: GitLab sends the string the user typed ("The secret token is
sent with the webhook request in the X-Gitlab-Token HTTP header"). A signing token's
signature is made here by `standardwebhooks`, the Standard Webhooks specification's own
library, which GitLab's signing follows (gitlab-org/gitlab!230944: "The signature header
and format follow the Standard Webhooks specification")."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from shared.providers.base import MalformedWebhook, SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog.support import NOW, declared, inbound, signed_sample

ENTRY = CATALOG["gitlab"]
WEBHOOKS = declared(ENTRY)
TOKEN = "a-long-random-secret-token"
# The shape gitlab-org/gitlab!231325 gives ("whsec_<base64> … encoding a 32-byte key").
SIGNING = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
assert ENTRY.sample is not None
BODY = ENTRY.sample.body("gitlab")
HEADERS = {"content-type": "application/json", **ENTRY.sample.headers}
MESSAGE_ID = HEADERS["idempotency-key"]  # GitLab's webhook-id is its Idempotency-Key


def with_token(token: str | None) -> dict[str, str]:
    return {**HEADERS, **({"x-gitlab-token": token} if token is not None else {})}


def test_the_secret_token_is_accepted_and_anything_else_refused() -> None:
    WEBHOOKS.verify(inbound(BODY, with_token(TOKEN)), {"secret_token": TOKEN}, NOW)
    for wrong in ("another-token", TOKEN[:-1], TOKEN + "x", ""):
        with pytest.raises(SignatureInvalid):
            WEBHOOKS.verify(inbound(BODY, with_token(wrong)), {"secret_token": TOKEN}, NOW)
    with pytest.raises(SignatureInvalid, match="x-gitlab-token header is missing"):
        WEBHOOKS.verify(inbound(BODY, with_token(None)), {"secret_token": TOKEN}, NOW)


def test_an_integration_without_either_token_verifies_nothing() -> None:
    with pytest.raises(SignatureInvalid, match="secret_token"):
        WEBHOOKS.verify(inbound(BODY, with_token(TOKEN)), {}, NOW)


def sdk_signed(at: datetime = NOW, secret: str = SIGNING) -> dict[str, str]:
    signature = Webhook(secret).sign(MESSAGE_ID, at, BODY.decode())
    stamp = str(int(at.timestamp()))
    return {
        **HEADERS,
        "webhook-id": MESSAGE_ID,
        "webhook-timestamp": stamp,
        "webhook-signature": signature,
    }


def test_a_signing_tokens_signature_made_by_standardwebhooks_verifies() -> None:
    settings = {"signing_token": SIGNING}
    WEBHOOKS.verify(inbound(BODY, sdk_signed()), settings, NOW)
    # and what the sandbox signs, the library accepts (it checks against the clock)
    request = signed_sample(ENTRY, settings, datetime.now(UTC))
    Webhook(SIGNING).verify(request.body, dict(request.headers))


def test_with_a_signing_token_the_secret_token_alone_is_not_enough() -> None:
    """GitLab sends both headers when both are set; a signing token makes the signature
    the check, so a request with only the (replayable) token is refused."""
    settings = {"signing_token": SIGNING, "secret_token": TOKEN}
    with pytest.raises(SignatureInvalid, match="webhook-signature"):
        WEBHOOKS.verify(inbound(BODY, with_token(TOKEN)), settings, NOW)
    WEBHOOKS.verify(inbound(BODY, {**sdk_signed(), "x-gitlab-token": TOKEN}), settings, NOW)


def test_a_signing_tokens_wrong_stale_or_hex_signature_is_refused() -> None:
    settings = {"signing_token": SIGNING}
    other = "whsec_" + base64.b64encode(b"another key, 32 bytes long......").decode()
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(inbound(BODY, sdk_signed(secret=other)), settings, NOW)
    with pytest.raises(SignatureInvalid, match="stale"):
        WEBHOOKS.verify(inbound(BODY, sdk_signed(at=NOW - timedelta(minutes=6))), settings, NOW)
    headers = sdk_signed()
    content = f"{MESSAGE_ID}.{headers['webhook-timestamp']}.".encode() + BODY
    key = base64.b64decode(SIGNING.removeprefix("whsec_"))
    hex_signature = "v1," + hmac.new(key, content, hashlib.sha256).hexdigest()
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(
            inbound(BODY, {**headers, "webhook-signature": hex_signature}), settings, NOW
        )


def test_event_is_object_kind_with_its_action_and_the_id_the_idempotency_key() -> None:
    parsed = WEBHOOKS.parse(inbound(BODY, HEADERS))
    assert (parsed.event_type, parsed.delivery_id) == ("issue.open", MESSAGE_ID)
    # GitLab before 17.4 sends no Idempotency-Key: its X-Gitlab-Event-UUID then
    older = {k: v for k, v in HEADERS.items() if k != "idempotency-key"}
    assert WEBHOOKS.parse(inbound(BODY, older)).delivery_id == HEADERS["x-gitlab-event-uuid"]


def test_a_push_has_no_action_and_a_member_event_only_an_event_name() -> None:
    push = b'{"object_kind": "push", "event_name": "push", "ref": "refs/heads/master"}'
    assert WEBHOOKS.parse(inbound(push, {"x-gitlab-event": "Push Hook"})).event_type == "push"
    # "Add member to group" of GitLab's webhook_events.md: no object_kind
    member = (
        b'{"created_at": "2020-12-11T04:57:22Z", "group_access": "Guest", '
        b'"group_plan": null, "expires_at": "2020-12-14T00:00:00Z", '
        b'"event_name": "user_add_to_group"}'
    )
    parsed = WEBHOOKS.parse(inbound(member, {"x-gitlab-event": "Member Hook"}))
    assert parsed.event_type == "user_add_to_group"
    assert WEBHOOKS.parse(inbound(b"{}", {"x-gitlab-event": "Emoji Hook"})).event_type == (
        "Emoji Hook"
    )
    with pytest.raises(MalformedWebhook):
        WEBHOOKS.parse(inbound(b"{}", {}))
