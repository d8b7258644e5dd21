"""Microsoft Teams in the provider catalog: a bot (Azure Bot resource, Microsoft App ID and
password) whose messaging endpoint is the integration's URL."""

from __future__ import annotations

from shared.providers.catalog import Entry, Setting
from shared.providers.teams.api import MULTI_TENANT
from shared.providers.teams.messages import DEFAULT_SERVICE_URL
from shared.providers.teams.network import APP_PASSWORD, NETWORK, SERVICE_URL, TENANT
from shared.providers.teams.webhooks import APP_ID, WEBHOOKS

_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

ENTRY = Entry(
    provider="teams",
    name="Microsoft Teams",
    category="chat",
    capabilities=("webhooks", "sync"),
    network=NETWORK,
    webhooks=WEBHOOKS,
    verification=("bot_framework_jwt", ("authorization",)),
    settings=(
        Setting(
            APP_ID,
            "the bot's Microsoft App ID (Azure Bot → Configuration), a GUID: the audience of "
            "every token Teams sends",
            secret=False,
            pattern=_GUID,
            refusal="app_id must be the bot's Microsoft App ID, a GUID",
        ),
        Setting(
            APP_PASSWORD,
            "a client secret of the bot's app registration (Azure Bot → Configuration → "
            "Manage Password → New client secret): sealed, never shown again",
        ),
        Setting(
            TENANT,
            "the Microsoft Entra tenant id of a single-tenant bot; botframework.com for a "
            "multi-tenant one",
            secret=False,
            required=False,
            default=MULTI_TENANT,
            pattern=rf"{_GUID}|botframework\.com",
            refusal="tenant must be a tenant id (a GUID) or botframework.com",
        ),
        Setting(
            SERVICE_URL,
            "the Connector URL to post to before Teams has sent the bot an activity from a "
            f"channel (later, each channel's own serviceUrl is used); none: {DEFAULT_SERVICE_URL} "
            "(hookhub's teams_service_url), the public cloud's. Held to the egress rules: "
            "https, or http to an allow-listed address",
            secret=False,
            required=False,
            pattern=r"https?://[^\s]+",
            refusal="service_url must be an http(s) URL",
        ),
    ),
    events=("message", "messageUpdate", "messageDelete", "conversationUpdate"),
    setup=(
        "In the Azure portal, create an Azure Bot (or use the Teams Developer Portal's Bot "
        "management): copy its Microsoft App ID here as app_id, and a new client secret as "
        "app_password; for a single-tenant bot, its tenant id as tenant.",
        "Azure Bot → Configuration → Messaging endpoint: {webhook_url}",
        "Azure Bot → Channels: add Microsoft Teams.",
        "Add the bot to a Teams app (manifest `bots`, scope `team`), install it in the team, "
        "and @mention it in each channel to sync (or grant it ChannelMessage.Read.Group by "
        "resource-specific consent to receive every channel message).",
    ),
    docs_url="https://learn.microsoft.com/en-us/azure/bot-service/rest-api/bot-framework-rest-connector-authentication",
)
