"""Google OAuth 2.0: offline access with forced consent (else no refresh token), user info."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from shared.domain.oauth.provider import (
    Account,
    AppCredentials,
    OAuthProvider,
    ProviderApi,
    ProviderRefused,
    TokenSet,
)


class GoogleOAuth(OAuthProvider):
    name = "google"
    title = "Google"
    authorize_url = "https://accounts.google.com/o/oauth2/v2/auth"
    token_url = "https://oauth2.googleapis.com/token"
    revoke_url = "https://oauth2.googleapis.com/revoke"
    api_base = "https://openidconnect.googleapis.com"
    scopes = ("openid", "email", "profile")
    # Without prompt=consent a second authorisation returns no refresh token.
    authorize_params = MappingProxyType(
        {"access_type": "offline", "prompt": "consent", "include_granted_scopes": "true"}
    )
    token_endpoint_auth_method = "client_secret_post"

    async def post_connect(
        self, api: ProviderApi, tokens: TokenSet, callback: Mapping[str, str]
    ) -> Account:
        info = await api.get_json("/v1/userinfo", tokens.access_token)
        if not isinstance(info, dict) or not info.get("sub"):
            raise ProviderRefused("Google userinfo answered an unexpected shape")
        return Account(
            id=str(info["sub"]),
            name=info.get("email") or info.get("name"),
            details={"email": info.get("email")},
        )

    async def revoke(
        self, api: ProviderApi, app: AppCredentials, tokens: Mapping[str, str]
    ) -> None:
        # Revoking the refresh token revokes the grant; 400 invalid_token: already gone.
        assert api.endpoints.revoke_url
        answer = await api.send(
            "POST",
            api.endpoints.revoke_url,
            data={"token": tokens.get("refresh_token") or tokens["access_token"]},
        )
        api.revoked(answer, done=(200, 400))


OAUTH = GoogleOAuth()
