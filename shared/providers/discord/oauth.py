"""Discord OAuth2: bot authorisation names the guild in the token answer; RFC 7009 revocation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import httpx

from shared.domain.oauth.provider import (
    Account,
    AppCredentials,
    OAuthProvider,
    ProviderApi,
    ProviderRefused,
    TokenSet,
)


class DiscordOAuth(OAuthProvider):
    name = "discord"
    title = "Discord"
    authorize_url = "https://discord.com/oauth2/authorize"
    token_url = "https://discord.com/api/oauth2/token"
    revoke_url = "https://discord.com/api/oauth2/token/revoke"
    api_base = "https://discord.com/api/v10"
    scopes = ("bot", "identify", "guilds")

    def parse_token(self, body: Mapping[str, Any]) -> TokenSet:
        tokens = super().parse_token(body)
        guild = body.get("guild")
        if not isinstance(guild, dict):
            return tokens
        return replace(tokens, facts={"guild": {"id": guild.get("id"), "name": guild.get("name")}})

    async def post_connect(
        self, api: ProviderApi, tokens: TokenSet, callback: Mapping[str, str]
    ) -> Account:
        me = await api.get_json("/users/@me", tokens.access_token)
        if not isinstance(me, dict) or not me.get("id"):
            raise ProviderRefused("Discord /users/@me answered an unexpected shape")
        guild = tokens.facts.get("guild") or {}
        guild_id = guild.get("id") or callback.get("guild_id")
        user = {"user_id": str(me["id"]), "username": me.get("username")}
        if guild_id:
            return Account(id=str(guild_id), name=guild.get("name"), details=user)
        return Account(id=str(me["id"]), name=me.get("global_name") or me.get("username"))

    async def revoke(
        self, api: ProviderApi, app: AppCredentials, tokens: Mapping[str, str]
    ) -> None:
        # Revoking the refresh token ends the whole grant, access token included.
        hint = "refresh_token" if tokens.get("refresh_token") else "access_token"
        assert api.endpoints.revoke_url
        answer = await api.send(
            "POST",
            api.endpoints.revoke_url,
            data={"token": tokens[hint], "token_type_hint": hint},
            auth=httpx.BasicAuth(app.client_id, app.client_secret),
        )
        # RFC 7009 §2.2: an invalid token is answered 200 too; 400 is a token already gone.
        api.revoked(answer, done=(200, 204, 400))


OAUTH = DiscordOAuth()
