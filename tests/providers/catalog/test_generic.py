"""The generic sources with each of their options: `hmac` (header, algorithm, encoding,
prefix, separator, what is signed, timestamp header and tolerance, key encoding), `token`
(header and prefix), `basic`, and `standard_webhooks` (its specification's own vector and
the `standardwebhooks` package, Svix's headers too); where each finds the event name and
the delivery id. Signatures are made here with the standard library, not hookhub's code."""

from __future__ import annotations

import base64
import dataclasses
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from shared.providers.base import InboundRequest, SignatureInvalid
from shared.providers.catalog import CATALOG, check_settings
from tests.providers.catalog.support import NOW, declared, inbound

HMAC = declared(CATALOG["hmac"])
TOKEN = declared(CATALOG["token"])
BASIC = declared(CATALOG["basic"])
STANDARD = declared(CATALOG["standard_webhooks"])
BODY = b'{"type": "order.created", "id": "dlv_7", "data": {"kind": "paid"}}'
SECRET = "generic-test-secret"
STAMP = str(int(NOW.timestamp()))


def settings(provider: str, **given: str) -> dict[str, str]:
    """The integration's settings as the API stores them: checked, defaults filled in."""
    checked = check_settings(provider, given, creating=True)
    defaults = {s.name: s.default for s in CATALOG[provider].settings if s.default is not None}
    return {**defaults, **checked}


def request(headers: dict[str, str], config: dict[str, str], body: bytes = BODY) -> InboundRequest:
    public = {n: v for n, v in config.items() if n not in ("secret", "token", "password")}
    return dataclasses.replace(inbound(body, headers), config=public)


def mac(content: bytes, algorithm: str = "sha256", key: bytes = SECRET.encode()) -> bytes:
    return hmac.new(key, content, algorithm).digest()


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_hmac_each_algorithm_and_encoding(algorithm: str, encoding: str) -> None:
    config = settings("hmac", secret=SECRET, header="X-Sig", algorithm=algorithm, encoding=encoding)
    digest = mac(BODY, algorithm)
    value = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    HMAC.verify(request({"x-sig": value}, config), config, NOW)
    other = base64.b64encode(digest).decode() if encoding == "hex" else digest.hex()
    with pytest.raises(SignatureInvalid):  # the other encoding of the same digest
        HMAC.verify(request({"x-sig": other}, config), config, NOW)
    wrong = "sha1" if algorithm != "sha1" else "sha256"
    forged = mac(BODY, wrong)
    with pytest.raises(SignatureInvalid):  # another algorithm
        HMAC.verify(request({"x-sig": forged.hex()}, config), config, NOW)


def test_hmac_prefix_and_several_signatures() -> None:
    config = settings("hmac", secret=SECRET, header="X-Sig", prefix="sha256=", separator=",")
    good = "sha256=" + mac(BODY).hex()
    HMAC.verify(request({"x-sig": good}, config), config, NOW)
    rotated = f"sha256={'0' * 64},{good}"  # signed with the old and the new secret
    HMAC.verify(request({"x-sig": rotated}, config), config, NOW)
    with pytest.raises(SignatureInvalid):  # no prefix where one is said
        HMAC.verify(request({"x-sig": mac(BODY).hex()}, config), config, NOW)
    lone = settings("hmac", secret=SECRET, header="X-Sig", prefix="sha256=")
    with pytest.raises(SignatureInvalid):  # several only with a separator
        HMAC.verify(request({"x-sig": rotated}, lone), lone, NOW)


@pytest.mark.parametrize(
    ("signed", "content"),
    [("timestamp.body", STAMP.encode() + b"." + BODY), ("timestampbody", STAMP.encode() + BODY)],
)
def test_hmac_signed_timestamp_and_its_tolerance(signed: str, content: bytes) -> None:
    config = settings(
        "hmac",
        secret=SECRET,
        header="X-Sig",
        signed=signed,
        timestamp_header="X-Ts",
        tolerance_seconds="60",
    )
    headers = {"x-sig": mac(content).hex(), "x-ts": STAMP}
    HMAC.verify(request(headers, config), config, NOW)
    HMAC.verify(request(headers, config), config, NOW + timedelta(seconds=59))
    with pytest.raises(SignatureInvalid, match="stale"):
        HMAC.verify(request(headers, config), config, NOW + timedelta(seconds=61))
    with pytest.raises(SignatureInvalid):  # the body alone is not what is signed
        HMAC.verify(request({**headers, "x-sig": mac(BODY).hex()}, config), config, NOW)
    with pytest.raises(SignatureInvalid):  # no timestamp
        HMAC.verify(request({"x-sig": headers["x-sig"]}, config), config, NOW)


@pytest.mark.parametrize("form", ["base64", "hex"])
def test_hmac_key_encoding(form: str) -> None:
    key = bytes(range(32))
    text = base64.b64encode(key).decode() if form == "base64" else key.hex()
    config = settings("hmac", secret=text, header="X-Sig", key_encoding=form)
    HMAC.verify(request({"x-sig": mac(BODY, key=key).hex()}, config), config, NOW)
    with pytest.raises(SignatureInvalid):  # the text's own bytes are not the key
        HMAC.verify(request({"x-sig": mac(BODY, key=text.encode()).hex()}, config), config, NOW)


def test_hmac_event_and_delivery_id_where_the_integration_says() -> None:
    config = settings("hmac", secret=SECRET, header="X-Sig")
    headers = {"x-sig": mac(BODY).hex()}
    parsed = HMAC.parse(request(headers, config))
    assert parsed.event_type == "order.created"  # the body's `type` by default
    assert parsed.delivery_id.startswith("sha256:")  # else the body's digest
    by_path = settings("hmac", secret=SECRET, header="X-Sig", event_path="data.kind", id_path="id")
    parsed = HMAC.parse(request(headers, by_path))
    assert (parsed.event_type, parsed.delivery_id) == ("paid", "dlv_7")
    by_header = settings(
        "hmac", secret=SECRET, header="X-Sig", event_header="X-Event", id_header="X-Id"
    )
    parsed = HMAC.parse(request({**headers, "x-event": "refund", "x-id": "d-9"}, by_header))
    assert (parsed.event_type, parsed.delivery_id) == ("refund", "d-9")
    unnamed = HMAC.parse(request(headers, config, b'{"data": 1}'))
    assert unnamed.event_type == "webhook"


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ({"algorithm": "md5"}, "one of sha1, sha256, sha512"),
        ({"encoding": "base32"}, "one of hex, base64"),
        ({"header": "X Sig"}, "not valid"),
        ({"signed": "body.timestamp"}, "one of body"),
        ({"tolerance_seconds": "forever"}, "not valid"),
    ],
)
def test_hmac_settings_out_of_their_choices_are_refused(
    given: dict[str, str], problem: str
) -> None:
    from shared.kernel.errors import Invalid

    with pytest.raises(Invalid, match=problem):
        check_settings("hmac", {"secret": SECRET, "header": "X-Sig", **given}, creating=True)


def test_token_on_authorization_is_a_bearer_token_by_default() -> None:
    config = settings("token", token="t0k3n")
    TOKEN.verify(request({"authorization": "Bearer t0k3n"}, config), config, NOW)
    TOKEN.verify(request({"authorization": "bearer t0k3n"}, config), config, NOW)
    for wrong in ("t0k3n", "Bearer other", "Basic t0k3n"):
        with pytest.raises(SignatureInvalid):
            TOKEN.verify(request({"authorization": wrong}, config), config, NOW)


def test_token_in_a_header_of_the_integrations_choosing_with_or_without_a_prefix() -> None:
    bare = settings("token", token="t0k3n", header="X-Api-Key")
    TOKEN.verify(request({"x-api-key": "t0k3n"}, bare), bare, NOW)
    with pytest.raises(SignatureInvalid):
        TOKEN.verify(request({"authorization": "Bearer t0k3n"}, bare), bare, NOW)
    prefixed = settings("token", token="t0k3n", header="X-Auth", prefix="Token")
    TOKEN.verify(request({"x-auth": "Token t0k3n"}, prefixed), prefixed, NOW)
    with pytest.raises(SignatureInvalid):
        TOKEN.verify(request({"x-auth": "t0k3n"}, prefixed), prefixed, NOW)


def test_basic_credentials() -> None:
    config = settings("basic", username="sender", password="pa:ss")
    header = httpx.BasicAuth("sender", "pa:ss")._auth_header  # httpx's own encoding
    BASIC.verify(request({"authorization": header}, config), config, NOW)
    for wrong in (httpx.BasicAuth("sender", "other")._auth_header, "Bearer x", "Basic !!"):
        with pytest.raises(SignatureInvalid):
            BASIC.verify(request({"authorization": wrong}, config), config, NOW)


# standard-webhooks/standard-webhooks libraries/python tests: test_sign_function (MIT).
SW_KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_STAMP = 1614265330
SW_BODY = b'{"test": 2432232314}'
SW_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
SW_AT = datetime.fromtimestamp(SW_STAMP, tz=UTC)


@pytest.mark.parametrize("family", ["webhook", "svix"])
def test_standard_webhooks_published_vector_under_both_header_families(family: str) -> None:
    config = {"signing_secret": SW_KEY}
    headers = {
        f"{family}-id": SW_ID,
        f"{family}-timestamp": str(SW_STAMP),
        f"{family}-signature": SW_SIGNATURE,
    }
    req = inbound(SW_BODY, headers)
    STANDARD.verify(req, config, SW_AT)
    tampered = {**headers, f"{family}-signature": SW_SIGNATURE[:-2] + "A="}
    with pytest.raises(SignatureInvalid):
        STANDARD.verify(inbound(SW_BODY, tampered), config, SW_AT)
    # An unknown version is passed over; one valid v1 among others suffices.
    several = {**headers, f"{family}-signature": f"v2,{SW_SIGNATURE[3:]} v1,AAAA {SW_SIGNATURE}"}
    STANDARD.verify(inbound(SW_BODY, several), config, SW_AT)
    with pytest.raises(SignatureInvalid, match="stale"):
        STANDARD.verify(req, config, SW_AT + timedelta(minutes=6))


def test_standard_webhooks_signed_by_the_package_and_ours_verified_by_it() -> None:
    config = settings("standard_webhooks", signing_secret=SW_KEY)
    signer = Webhook(SW_KEY)
    body = b'{"type": "user.created", "data": {"id": "u_1"}}'
    signature = signer.sign("msg_1", NOW, body.decode())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": STAMP, "webhook-signature": signature}
    STANDARD.verify(inbound(body, headers), config, NOW)
    parsed = STANDARD.parse(inbound(body, headers))
    assert (parsed.event_type, parsed.delivery_id) == ("user.created", "msg_1")
    entry = CATALOG["standard_webhooks"]
    sample, sent = entry.signed_sample(config, "https://h/x", datetime.now(UTC))
    payload: Any = signer.verify(sample, sent)
    assert payload["type"] == "email.delivered"
