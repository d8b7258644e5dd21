"""Per-provider knowledge: one package per provider (webhooks now; OAuth and API later)."""

from __future__ import annotations

from shared.providers.base import ProviderWebhooks
from shared.providers.discord.webhooks import WEBHOOKS as DISCORD
from shared.providers.github.webhooks import WEBHOOKS as GITHUB
from shared.providers.jira.webhooks import WEBHOOKS as JIRA
from shared.providers.slack.webhooks import WEBHOOKS as SLACK
from shared.providers.telegram.webhooks import WEBHOOKS as TELEGRAM

WEBHOOK_PROVIDERS: dict[str, ProviderWebhooks] = {
    p.name: p for p in (GITHUB, SLACK, DISCORD, TELEGRAM, JIRA)
}
