"""Slack OAuth v2: bot token at the top of `oauth.v2.access`, the user's under `authed_user`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from shared.domain.oauth.provider import (
    Account,
    AppCredentials,
    OAuthProvider,
    ProviderApi,
    ProviderRefused,
    TokenSet,
    standard_token,
)
from shared.kernel.settings import Settings

# Answers to auth.revoke that mean there is nothing left to revoke.
_ALREADY_GONE = frozenset({"invalid_auth", "token_revoked", "token_expired", "not_authed"})


class SlackOAuth(OAuthProvider):
    name = "slack"
    title = "Slack"
    authorize_url = "https://slack.com/oauth/v2/authorize"
    token_url = "https://slack.com/api/oauth.v2.access"
    revoke_url = "https://slack.com/api/auth.revoke"
    api_base = "https://slack.com/api"
    # Sync needs `chat:write.customize` to post as the chat's author (username/icon_url),
    # and `groups:*` for private channels.
    scopes = (
        "channels:history",
        "channels:read",
        "chat:write",
        "chat:write.customize",
        "files:read",
        "groups:history",
        "groups:read",
        "users:read",
        "users:read.email",
    )
    scope_separator = ","
    permanent_errors = frozenset({"invalid_grant", "invalid_refresh_token", "token_revoked"})

    def uses_pkce(self, settings: Settings) -> bool:
        return settings.slack_pkce  # only apps that enabled PKCE in their settings take it

    def parse_token(self, body: Mapping[str, Any]) -> TokenSet:
        user = body.get("authed_user") or {}
        if body.get("access_token"):
            tokens = standard_token(body, "Slack oauth.v2.access answer")
            extra = {"user_access_token": user["access_token"]} if user.get("access_token") else {}
        elif user.get("access_token"):  # a user-token-only install: no bot scopes asked
            tokens, extra = standard_token(user, "Slack oauth.v2.access answer"), {}
        else:
            raise ProviderRefused("Slack oauth.v2.access answered without a token")
        return replace(
            tokens,
            extra=extra,
            facts={
                "team": body.get("team"),
                "enterprise": body.get("enterprise"),
                "bot_user_id": body.get("bot_user_id"),
                "app_id": body.get("app_id"),
                "authed_user_id": user.get("id"),
            },
        )

    def parse_refreshed(self, body: Mapping[str, Any]) -> TokenSet:
        # A refresh answers flat: the token that was refreshed, at the top.
        return standard_token(body, "Slack token refresh")

    async def _call(self, api: ProviderApi, method: str, token: str) -> dict[str, Any]:
        answer = await api.send(
            "POST", api.endpoints.api(f"/{method}"), headers={"Authorization": f"Bearer {token}"}
        )
        try:
            data = answer.json()
        except ValueError as exc:
            raise ProviderRefused(f"Slack {method} answered without JSON") from exc
        if not isinstance(data, dict) or not data.get("ok"):
            error = str(data.get("error", answer.status_code)) if isinstance(data, dict) else ""
            raise ProviderRefused(f"Slack {method} refused: {error}", error=error)
        return data

    async def post_connect(
        self, api: ProviderApi, tokens: TokenSet, callback: Mapping[str, str]
    ) -> Account:
        info = await self._call(api, "auth.test", tokens.access_token)
        team_id = info.get("team_id") or (tokens.facts.get("team") or {}).get("id")
        if not team_id:
            raise ProviderRefused("Slack auth.test named no team")
        return Account(
            id=str(team_id),
            name=info.get("team"),
            url=info.get("url"),
            details={"bot_user_id": info.get("user_id"), "bot_id": info.get("bot_id")},
        )

    async def revoke(
        self, api: ProviderApi, app: AppCredentials, tokens: Mapping[str, str]
    ) -> None:
        for name in ("access_token", "user_access_token"):
            if tokens.get(name):
                try:
                    await self._call(api, "auth.revoke", tokens[name])
                except ProviderRefused as exc:
                    if exc.error not in _ALREADY_GONE:
                        raise


OAUTH = SlackOAuth()
