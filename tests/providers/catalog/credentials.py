"""Checks of the credentials a sender that signs nothing is given (shared/providers/
credentials.py), for each provider offering them: a token in a header, Basic credentials, a
token in the URL. The requests are built as the senders' docs describe them, the Basic
header by httpx (not by hookhub's code)."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from shared.kernel.errors import Invalid
from shared.providers.base import InboundRequest, SignatureInvalid
from shared.providers.catalog import Entry, check_settings
from shared.providers.declared import Declared
from shared.providers.ids import derived_delivery_id
from shared.providers.schemes import Unsignable
from tests.providers.catalog.support import NOW, URL, declared, inbound, signed_sample

TOKEN = "3f6c1c0c5e2b4f7a9d8e1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6"


def sample(
    entry: Entry, headers: dict[str, str], query: dict[str, str] | None = None
) -> InboundRequest:
    assert entry.sample is not None
    return inbound(
        entry.sample.body(entry.provider),
        {"content-type": entry.sample.content_type, **headers},
        url=URL.format(provider=entry.provider),
        query=query,
    )


def refused(
    webhooks: Declared, request: InboundRequest, settings: dict[str, str], match: str
) -> None:
    with pytest.raises(SignatureInvalid, match=match):
        webhooks.verify(request, settings, NOW)


def check_header_token(entry: Entry) -> None:
    """`Authorization: Bearer <token>` by default; the scheme word the sender is set to
    (`prefix`); a custom header (`header`) holding the token alone."""
    webhooks = declared(entry)
    settings = {"token": TOKEN}
    webhooks.verify(sample(entry, {"Authorization": f"Bearer {TOKEN}"}), settings, NOW)
    webhooks.verify(sample(entry, {"Authorization": f"bearer {TOKEN}"}), settings, NOW)
    refused(webhooks, sample(entry, {"Authorization": f"Bearer {TOKEN[:-1]}0"}), settings, "token")
    refused(webhooks, sample(entry, {"Authorization": TOKEN}), settings, "Bearer")
    refused(webhooks, sample(entry, {}), settings, "missing")
    refused(webhooks, sample(entry, {"X-Token": TOKEN}), settings, "missing")

    typed = {**settings, "prefix": "Token"}  # Alertmanager's authorization.type, Grafana's Scheme
    webhooks.verify(sample(entry, {"Authorization": f"Token {TOKEN}"}), typed, NOW)
    refused(webhooks, sample(entry, {"Authorization": f"Bearer {TOKEN}"}), typed, "Token")

    custom = {**settings, "header": "X-Hookhub-Token"}
    webhooks.verify(sample(entry, {"X-Hookhub-Token": TOKEN}), custom, NOW)
    refused(webhooks, sample(entry, {"Authorization": f"Bearer {TOKEN}"}), custom, "missing")
    refused(webhooks, sample(entry, {"X-Hookhub-Token": f"Bearer {TOKEN}"}), custom, "token")


def basic_header(username: str, password: str) -> str:
    request = httpx.Request("POST", "https://h")
    built = next(httpx.BasicAuth(username, password).auth_flow(request))
    return built.headers["authorization"]


def check_basic(entry: Entry) -> None:
    """Basic credentials when no token is set; a token, when set, is what is checked."""
    webhooks = declared(entry)
    settings = {"username": "alerts", "password": TOKEN}
    webhooks.verify(sample(entry, {"Authorization": basic_header("alerts", TOKEN)}), settings, NOW)
    wrong = basic_header("alerts", TOKEN[:-1] + "0")
    refused(webhooks, sample(entry, {"Authorization": wrong}), settings, "do not match")
    refused(webhooks, sample(entry, {"Authorization": f"Bearer {TOKEN}"}), settings, "Basic")
    refused(webhooks, sample(entry, {}), settings, "Basic")
    both = {**settings, "token": TOKEN}
    refused(
        webhooks, sample(entry, {"Authorization": basic_header("alerts", TOKEN)}), both, "Bearer"
    )
    webhooks.verify(sample(entry, {"Authorization": f"Bearer {TOKEN}"}), both, NOW)


def check_nothing_configured(entry: Entry, needs: str) -> None:
    """An integration is made with one of the sender's ways set, or refused saying which;
    one whose settings were cleared since verifies nothing."""
    with pytest.raises(Invalid, match=f"^{entry.provider} needs one way to check its sender: "):
        check_settings(entry.provider, {}, creating=True)
    with pytest.raises(Invalid) as caught:
        check_settings(entry.provider, {"prefix": "Token"}, creating=True)  # no token
    assert caught.value.message.endswith(needs)
    webhooks = declared(entry)
    request = sample(entry, {"Authorization": f"Bearer {TOKEN}"})
    refused(webhooks, request, {}, "cannot verify: set one of the integration settings")


def check_url_token(entry: Entry, settings: dict[str, str]) -> None:
    """`?token=<url_token>` in the URL the sender was given; a header is no substitute."""
    webhooks = declared(entry)
    token = settings["url_token"]
    url = entry.sender_url(settings, URL.format(provider=entry.provider))
    assert url == URL.format(provider=entry.provider) + "?token=" + token
    webhooks.verify(sample(entry, {}, {"token": token}), settings, NOW)
    refused(webhooks, sample(entry, {}, {"token": token[:-1] + "0"}), settings, "token")
    refused(webhooks, sample(entry, {}, {}), settings, "query parameter token is missing")
    refused(webhooks, sample(entry, {"Authorization": f"Bearer {token}"}), settings, "missing")
    # The sandbox sends the sample to the URL the sender was given, and to no other.
    webhooks.verify(signed_sample(entry, settings), settings, NOW)
    with pytest.raises(Unsignable, match=r"\?token=<token>"):
        entry.signed_sample(settings, URL.format(provider=entry.provider), NOW)


def check_body_digest(entry: Entry, settings: dict[str, str]) -> None:
    """No delivery id: the body's SHA-256, the same on a retry (the same bytes)."""
    webhooks = declared(entry)
    request = sample(entry, {"Authorization": f"Bearer {TOKEN}"})
    parsed = webhooks.parse(request)
    assert parsed.delivery_id == derived_delivery_id(request.body)
    changed = dataclasses.replace(request, body=request.body.replace(b"}", b" }", 1))
    assert webhooks.parse(changed).delivery_id != parsed.delivery_id
    assert webhooks.handshake(request, None) is None
    assert webhooks.handshake(request, settings) is None  # none of these has a handshake
