"""Google Chat as a chat network: a Chat app on hookhub's HTTP endpoint, posting through
the Chat API as its service account.

- Credential: the integration's own service account key (`service_account_json`), not a
  token TokenKeeper keeps: `credential()` hands it to `GoogleChatChat` as `token`, and the
  access tokens are had from it (`auth.AccessTokens`).
- Events: Chat's interaction events, POSTed to the integration's webhook URL and verified
  by the gateway (`GoogleChatWebhooks`, a `KeyedWebhooks`: Google's certificates fetched
  before `verify`); sync reads them off `hookhub.provider.events` as Telegram's.
- No history: listing a space's messages (`spaces.messages.list`) is documented with user
  authentication; app authentication (`chat.app.messages.readonly`) is a Developer Preview
  needing an administrator's approval. No catch-up, no import through the API."""

from __future__ import annotations

import httpx

from shared.domain.integrations.model import IntegrationSnapshot
from shared.kernel.settings import Settings
from shared.providers.googlechat.api import GoogleChatApi
from shared.providers.googlechat.auth import AccessTokens, Endpoints
from shared.providers.googlechat.messages import GoogleChatChat
from shared.providers.networks import AppValues, Network

SERVICE_ACCOUNT = "service_account_json"


def endpoints(settings: Settings) -> Endpoints:
    """Where Google is for these settings (the sandbox's stand-in, or Google's own)."""
    return Endpoints(
        api_base=settings.googlechat_api_base,
        token_url=settings.googlechat_token_url,
        oauth2_certs_url=settings.googlechat_oauth2_certs_url,
        chat_certs_url=settings.googlechat_chat_certs_url,
    )


class GoogleChatNetwork(Network):
    name = "googlechat"
    no_history = (
        "Google Chat lists a space's messages to a user's authorization; a Chat app's own "
        "(chat.app.messages.readonly) is a Developer Preview needing an administrator's "
        "approval: there is nothing to import"
    )

    def chat(self, settings: Settings, client: httpx.AsyncClient, app: AppValues) -> GoogleChatChat:
        where = endpoints(settings)
        return GoogleChatChat(
            GoogleChatApi(client, where.api_base, AccessTokens(client, where.token_url))
        )

    def credential(self, integration: IntegrationSnapshot) -> str | None:
        """The service account key file (a secret setting): what every call is made with."""
        return integration.secrets.get(SERVICE_ACCOUNT) or ""


NETWORK = GoogleChatNetwork()
