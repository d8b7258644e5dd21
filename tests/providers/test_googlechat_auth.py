"""Google Chat's bearer tokens verified against the stand-in's certificates, in both forms
Google documents (developers.google.com/workspace/chat/verify-requests-from-chat): a
chat@system JWT for a project number audience, a Google ID token with `email`
chat@system for an endpoint URL audience; and the service account's access token fetched
once and kept until it expires."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest

from services.sandbox.googlechat import FakeGoogleChat, rsa_key
from shared.providers.base import SignatureInvalid
from shared.providers.chat import TokenRejected
from shared.providers.googlechat.api import GoogleChatApi
from shared.providers.googlechat.auth import (
    CHAT_MESSAGES_READONLY,
    AccessTokens,
    Certs,
    DelegationRefused,
    verify_bearer,
)
from tests.providers.googlechat_support import endpoints, http_client, running_fake

PROJECT = "1234567890"  # the verify page's example project number
URL = "https://hookhub.example/api/webhooks/googlechat/int_1"


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeGoogleChat]:
    async for chat in running_fake():
        yield chat


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async for http in http_client():
        yield http


@pytest.fixture
async def certs(fake: FakeGoogleChat, client: httpx.AsyncClient) -> Certs:
    kept = Certs()
    where = endpoints(fake)
    await kept.load(client, where.chat_certs_url)
    await kept.load(client, where.oauth2_certs_url)
    return kept


def check(
    fake: FakeGoogleChat, certs: Certs, header: str | None, audience: str = PROJECT
) -> Mapping[str, Any]:
    return verify_bearer(header, audience, certs, endpoints(fake))


def test_a_project_number_token_is_accepted(fake: FakeGoogleChat, certs: Certs) -> None:
    claims = check(fake, certs, "Bearer " + fake.bearer(audience=PROJECT))
    assert claims["iss"] == "chat@system.gserviceaccount.com" and claims["aud"] == PROJECT


def test_an_endpoint_url_id_token_is_accepted(fake: FakeGoogleChat, certs: Certs) -> None:
    claims = check(fake, certs, "Bearer " + fake.bearer(audience=URL), URL)
    assert claims["email"] == "chat@system.gserviceaccount.com" and claims["aud"] == URL


@pytest.mark.parametrize(
    ("forge", "said"),
    [
        ({"key": rsa_key()}, "Could not verify token signature"),
        ({"key_id": "another-kid"}, "Certificate for key id another-kid not found"),
        ({"audience": "9876543210"}, "wrong audience"),
        ({"issuer": "someone@example.iam.gserviceaccount.com"}, "issuer"),
        ({"issued": -7200, "lifetime": 3600}, "Token expired"),
        ({"issued": 600}, "Token used too early"),
    ],
    ids=["another-key", "unknown-kid", "another-audience", "another-issuer", "expired", "future"],
)
def test_a_forged_or_stale_project_number_token_is_refused(
    fake: FakeGoogleChat, certs: Certs, forge: dict[str, Any], said: str
) -> None:
    if "issued" in forge:  # seconds from now, when the test runs (not when it was collected)
        forge = {**forge, "issued": time.time() + forge["issued"]}
    with pytest.raises(SignatureInvalid, match=said):
        check(fake, certs, "Bearer " + fake.bearer(**forge))


@pytest.mark.parametrize(
    ("forge", "said"),
    [
        ({"email": "someone@example.com"}, "not chat@system.gserviceaccount.com"),
        ({"issuer": "https://evil.example"}, "not Google's"),
        ({"audience": URL + "/other"}, "wrong audience"),
        ({"key": rsa_key()}, "Could not verify token signature"),
    ],
    ids=["another-email", "another-issuer", "another-url", "another-key"],
)
def test_a_forged_id_token_is_refused(
    fake: FakeGoogleChat, certs: Certs, forge: dict[str, Any], said: str
) -> None:
    forge = {"audience": URL, **forge}
    with pytest.raises(SignatureInvalid, match=said):
        check(fake, certs, "Bearer " + fake.bearer(**forge), URL)


def test_a_chat_system_jwt_is_no_id_token_and_back(fake: FakeGoogleChat, certs: Certs) -> None:
    """A chat@system JWT for a URL audience is refused (issuer), and an ID token made out
    to a number is no chat@system JWT."""
    with pytest.raises(SignatureInvalid, match="not Google's"):
        check(
            fake,
            certs,
            "Bearer " + fake.bearer(audience=URL, issuer="chat@system.gserviceaccount.com"),
            URL,
        )
    with pytest.raises(SignatureInvalid, match=r"issuer 'https://accounts\.google\.com'"):
        check(fake, certs, "Bearer " + fake.bearer(issuer="https://accounts.google.com"))


@pytest.mark.parametrize(
    ("header", "said"),
    [
        (None, "Authorization header is missing"),
        ("", "Authorization header is missing"),
        ("Basic dXNlcjpwYXNz", "not `Bearer <token>`"),
        ("Bearer ", "not `Bearer <token>`"),
        ("Bearer not.a.jwt", "not valid"),
    ],
)
def test_a_missing_or_malformed_header_is_refused(
    fake: FakeGoogleChat, certs: Certs, header: str | None, said: str
) -> None:
    with pytest.raises(SignatureInvalid, match=said):
        check(fake, certs, header)


def test_without_the_certificates_nothing_verifies(fake: FakeGoogleChat) -> None:
    with pytest.raises(SignatureInvalid, match="no certificates loaded"):
        check(fake, Certs(), "Bearer " + fake.bearer())


async def test_certificates_are_kept_for_their_max_age(
    fake: FakeGoogleChat, client: httpx.AsyncClient
) -> None:
    now = [1000.0]
    kept = Certs(clock=lambda: now[0])
    url = endpoints(fake).chat_certs_url
    await kept.load(client, url)
    await kept.load(client, url)
    assert kept.fetches == 1
    now[0] += 3601  # the stand-in says max-age=3600
    await kept.load(client, url)
    assert kept.fetches == 2


# -- the service account's access token -------------------------------------------------------


async def test_one_token_serves_many_calls_until_it_expires(
    fake: FakeGoogleChat, client: httpx.AsyncClient
) -> None:
    fake.token_seconds = 3600
    tokens = AccessTokens(client, fake.base_url + "/token")
    api = GoogleChatApi(client, fake.base_url, tokens)
    key = fake.service_account_json()
    before = fake.token_requests
    for _ in range(5):
        await api.get_space(key, "spaces/AAAAsandbox")
    assert tokens.requests == 1 and fake.token_requests == before + 1


async def test_a_token_close_to_expiry_is_replaced(
    fake: FakeGoogleChat, client: httpx.AsyncClient
) -> None:
    """google-auth takes a token for expired 3 min 45 s early: one living 60 s is asked for
    again on every call."""
    fake.token_seconds = 60
    try:
        tokens = AccessTokens(client, fake.base_url + "/token")
        api = GoogleChatApi(client, fake.base_url, tokens)
        key = fake.service_account_json()
        for _ in range(3):
            await api.get_space(key, "spaces/AAAAsandbox")
        assert tokens.requests == 3
    finally:
        fake.token_seconds = 3600


async def test_a_token_the_api_refuses_is_asked_for_again(
    fake: FakeGoogleChat, client: httpx.AsyncClient
) -> None:
    tokens = AccessTokens(client, fake.base_url + "/token")
    api = GoogleChatApi(client, fake.base_url, tokens)
    key = fake.service_account_json()
    await api.get_space(key, "spaces/AAAAsandbox")
    fake.expire_tokens()
    with pytest.raises(TokenRejected, match="UNAUTHENTICATED"):
        await api.get_space(key, "spaces/AAAAsandbox")
    await api.get_space(key, "spaces/AAAAsandbox")
    assert tokens.requests == 2


async def test_a_key_google_does_not_know_is_refused(
    fake: FakeGoogleChat, client: httpx.AsyncClient
) -> None:
    other = FakeGoogleChat(base_url=fake.base_url)  # another key, same email
    tokens = AccessTokens(client, fake.base_url + "/token")
    with pytest.raises(TokenRejected, match="invalid_grant"):
        await tokens.token(other.service_account_json())


async def test_calls_at_once_share_one_token_request(
    fake: FakeGoogleChat, client: httpx.AsyncClient
) -> None:
    tokens = AccessTokens(client, fake.base_url + "/token")
    key = fake.service_account_json()
    got = await asyncio.gather(*(tokens.token(key) for _ in range(5)))
    assert len(set(got)) == 1 and tokens.requests == 1


async def test_a_token_is_kept_per_user_and_scope_and_a_delegated_one_renewed_at_once(
    fake: FakeGoogleChat, client: httpx.AsyncClient
) -> None:
    """Domain-wide delegation through google-auth's `with_subject`/`with_scopes`: one token
    for the app, one for each user it acts as; a delegated token the API refuses (401) is
    asked for again within the call (not through TokenKeeper: the key itself is fine)."""
    tokens = AccessTokens(client, fake.base_url + "/token")
    api = GoogleChatApi(client, fake.base_url, tokens)
    key = fake.service_account_json()
    readonly = (CHAT_MESSAGES_READONLY,)
    app = await tokens.token(key)
    alice = await tokens.token(key, "alice@example.com", readonly)
    assert await tokens.token(key, "alice@example.com", readonly) == alice
    assert len({app, alice, await tokens.token(key, "bob@example.com", readonly)}) == 3
    assert tokens.requests == 3
    assert fake.token_users[alice] == "alice" and app not in fake.token_users
    fake.expire_tokens()
    page = await api.list_messages(key, "spaces/AAAAsandbox", as_user="alice@example.com")
    assert page.next_page_token is None and tokens.requests == 4


async def test_a_user_outside_the_workspace_is_a_refused_delegation(
    fake: FakeGoogleChat, client: httpx.AsyncClient
) -> None:
    tokens = AccessTokens(client, fake.base_url + "/token")
    with pytest.raises(DelegationRefused, match=r"invalid_grant.*import_as"):
        await tokens.token(
            fake.service_account_json(), "mallory@elsewhere.example", (CHAT_MESSAGES_READONLY,)
        )
