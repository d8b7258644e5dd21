"""The Google Chat stand-in on loopback, and hookhub's Google Chat pieces pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from services.sandbox.googlechat import CHAT_ISSUER, FakeGoogleChat
from shared.kernel.http.tls import tls
from shared.providers.googlechat.api import GoogleChatApi
from shared.providers.googlechat.auth import AccessTokens, Endpoints
from shared.providers.googlechat.messages import GoogleChatChat
from tests.support import serve


async def running_fake() -> AsyncIterator[FakeGoogleChat]:
    chat = FakeGoogleChat()
    async with serve(chat.app(), probe="/healthz") as running:
        chat.base_url = running.base_url
        yield chat


async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(verify=tls(), timeout=10.0) as http:
        yield http


def endpoints(fake: FakeGoogleChat) -> Endpoints:
    return Endpoints(
        api_base=fake.base_url,
        token_url=fake.base_url + "/token",
        oauth2_certs_url=fake.base_url + "/oauth2/v1/certs",
        chat_certs_url=fake.base_url + "/service_accounts/v1/metadata/x509/" + CHAT_ISSUER,
    )


def chat_provider(fake: FakeGoogleChat, client: httpx.AsyncClient) -> GoogleChatChat:
    tokens = AccessTokens(client, fake.base_url + "/token")
    return GoogleChatChat(GoogleChatApi(client, fake.base_url, tokens))
