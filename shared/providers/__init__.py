"""Per-provider knowledge: one package per provider (webhooks, OAuth, API calls)."""

from __future__ import annotations

from shared.oauth.provider import OAuthProvider
from shared.providers.base import ProviderWebhooks
from shared.providers.discord.oauth import OAUTH as DISCORD_OAUTH
from shared.providers.discord.webhooks import WEBHOOKS as DISCORD
from shared.providers.github.oauth import OAUTH as GITHUB_OAUTH
from shared.providers.github.webhooks import WEBHOOKS as GITHUB
from shared.providers.google.oauth import OAUTH as GOOGLE_OAUTH
from shared.providers.jira.oauth import OAUTH as JIRA_OAUTH
from shared.providers.jira.webhooks import WEBHOOKS as JIRA
from shared.providers.slack.oauth import OAUTH as SLACK_OAUTH
from shared.providers.slack.webhooks import WEBHOOKS as SLACK
from shared.providers.telegram.webhooks import WEBHOOKS as TELEGRAM

WEBHOOK_PROVIDERS: dict[str, ProviderWebhooks] = {
    p.name: p for p in (GITHUB, SLACK, DISCORD, TELEGRAM, JIRA)
}

# Providers connected through OAuth (Telegram's bot tokens are given, not granted).
OAUTH_PROVIDERS: dict[str, OAuthProvider] = {
    p.name: p for p in (SLACK_OAUTH, DISCORD_OAUTH, GITHUB_OAUTH, JIRA_OAUTH, GOOGLE_OAUTH)
}
