"""GitHub OAuth apps (and GitHub App user tokens, which expire and rotate their refresh)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl

import httpx

from shared.domain.oauth.provider import (
    Account,
    AppCredentials,
    OAuthProvider,
    ProviderApi,
    ProviderRefused,
    TokenSet,
)

_ACCEPT = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}


class GitHubOAuth(OAuthProvider):
    name = "github"
    title = "GitHub"
    authorize_url = "https://github.com/login/oauth/authorize"
    token_url = "https://github.com/login/oauth/access_token"
    # None: `DELETE {api_base}/applications/{client_id}/token` (an override may use {client_id}).
    revoke_url = None
    api_base = "https://api.github.com"
    scopes = ("repo", "read:org", "read:user")
    permanent_errors = frozenset({"invalid_grant", "bad_refresh_token"})

    def fix_token_response(self, response: httpx.Response) -> httpx.Response:
        # GitHub answers form-encoded unless asked for JSON (Authlib asks; we do not rely on it).
        media_type = response.headers.get("content-type", "").split(";", 1)[0].strip()
        if media_type != "application/x-www-form-urlencoded":
            return response
        return type(response)(
            response.status_code,
            json=dict(parse_qsl(response.text, keep_blank_values=False)),
            request=response.request,
        )

    async def post_connect(
        self, api: ProviderApi, tokens: TokenSet, callback: Mapping[str, str]
    ) -> Account:
        user = await api.get_json("/user", tokens.access_token, _ACCEPT)
        if not isinstance(user, dict) or not user.get("login"):
            raise ProviderRefused("GitHub /user answered an unexpected shape")
        return Account(
            id=str(user["login"]),  # what webhooks name the owner by (repository.owner.login)
            name=user.get("name") or user["login"],
            url=user.get("html_url"),
            details={"github_id": user.get("id")},
        )

    async def revoke(
        self, api: ProviderApi, app: AppCredentials, tokens: Mapping[str, str]
    ) -> None:
        template = api.endpoints.revoke_url or api.endpoints.api("/applications/{client_id}/token")
        answer = await api.send(
            "DELETE",
            template.format(client_id=app.client_id),
            json={"access_token": tokens["access_token"]},
            headers=_ACCEPT,
            auth=httpx.BasicAuth(app.client_id, app.client_secret),
        )
        # 404/422: the token is unknown or already revoked.
        api.revoked(answer, done=(204, 404, 422))


OAUTH = GitHubOAuth()
