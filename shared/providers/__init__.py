"""Per-provider knowledge: one package per provider (webhooks, OAuth, API calls, its catalog
entry); `catalog.CATALOG` gathers them."""

from __future__ import annotations

from shared.domain.oauth.provider import OAuthProvider
from shared.providers.catalog import CATALOG, WEBHOOK_PROVIDERS
from shared.providers.discord.oauth import OAUTH as DISCORD_OAUTH
from shared.providers.github.oauth import OAUTH as GITHUB_OAUTH
from shared.providers.gitlab.oauth import OAUTH as GITLAB_OAUTH
from shared.providers.google.oauth import OAUTH as GOOGLE_OAUTH
from shared.providers.jira.oauth import OAUTH as JIRA_OAUTH
from shared.providers.slack.oauth import OAUTH as SLACK_OAUTH

__all__ = ["CATALOG", "OAUTH_PROVIDERS", "WEBHOOK_PROVIDERS"]

# Providers connected through OAuth (Telegram's bot tokens are given, not granted): an
# integration's connection, or a chat user's own consent (GitLab's only so far: account
# links, shared.domain.account_links.OAUTH_LINK_PROVIDERS).
OAUTH_PROVIDERS: dict[str, OAuthProvider] = {
    p.name: p
    for p in (SLACK_OAUTH, DISCORD_OAUTH, GITHUB_OAUTH, JIRA_OAUTH, GOOGLE_OAUTH, GITLAB_OAUTH)
}
