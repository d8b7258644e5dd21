"""Microsoft Teams as a chat network: a Bot Framework bot (Azure Bot) whose messaging
endpoint is the integration's webhook URL, posting through the Bot Connector.

- Credential: the integration's own settings (`app_id`, secret `app_password`, `tenant`)
  as compact JSON (`messages.Credential`), not a token TokenKeeper keeps; `TeamsChat` has
  the bot's access token from it by client credentials (`api.AppTokens`, cached per bot
  until shortly before expiry, one request shared by concurrent callers). `identity()`
  asks for a token, so settings Microsoft's login refuses are a 422 at create.
- Events: activities POSTed to the webhook URL, verified by the gateway (`TeamsWebhooks`,
  a `KeyedWebhooks`: the Bot Framework's OpenID keys fetched before `verify`); sync reads
  them off `hookhub.provider.events` as Telegram's.
- serviceUrl: each verified activity's, per team (and channel), kept by sync in the
  channel's mapping for restarts and replicas (`TeamsChat.recall`, docs/sync.md), else the
  integration's `service_url` setting, else `Settings.teams_service_url`; always held to
  the egress rules.
- No history: the Bot Connector gives a bot no way to read a channel's messages."""

from __future__ import annotations

import httpx

from shared.domain.integrations.model import IntegrationSnapshot
from shared.kernel.egress import EgressPolicy
from shared.kernel.settings import Settings
from shared.providers.networks import AppValues, Network
from shared.providers.teams.api import MULTI_TENANT, TeamsApi
from shared.providers.teams.messages import Credential, TeamsChat

APP_ID = "app_id"
APP_PASSWORD = "app_password"  # noqa: S105 - a setting's name
TENANT = "tenant"
SERVICE_URL = "service_url"


class TeamsNetwork(Network):
    name = "teams"
    no_history = (
        "the Bot Framework gives a Teams bot no way to read a channel's messages: "
        "there is nothing to import"
    )

    def chat(self, settings: Settings, client: httpx.AsyncClient, app: AppValues) -> TeamsChat:
        return TeamsChat(
            TeamsApi(client, EgressPolicy.from_setting(settings.egress_allow_cidrs)),
            service_url=settings.teams_service_url,
            client=client,
            login_base=settings.teams_login_base,
        )

    def credential(self, integration: IntegrationSnapshot) -> str | None:
        """The bot's app id, password and tenant: what every call's token is had with."""
        config, secrets = integration.config, integration.secrets
        app_id = str(secrets.get(APP_ID) or config.get(APP_ID) or "")
        password = str(secrets.get(APP_PASSWORD) or "")
        tenant = str(config.get(TENANT) or secrets.get(TENANT) or MULTI_TENANT)
        service_url = str(config.get(SERVICE_URL) or "")
        return Credential(app_id, password, tenant, service_url).encode()


NETWORK = TeamsNetwork()
