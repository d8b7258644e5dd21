"""GitLab's OAuth 2.0 (gitlab.com, or a self-managed instance through
`HOOKHUB_GITLAB_*_URL`): the authorization code flow with PKCE, access tokens that expire
after two hours, refresh tokens that rotate, revocation by RFC 7009.

hookhub asks GitLab for a chat user's own consent only (an account link, SPEC §20: the
card's actions on issues and merge requests act with it), so `post_connect` is the user:
`GET /api/v4/user` ("Get the current user").

Checked against https://docs.gitlab.com/api/oauth2/ (the flows, PKCE "recommended for
both client and server apps", `/oauth/authorize`, `/oauth/token`, `/oauth/revoke` with
`client_id`, `client_secret` and `token`), https://docs.gitlab.com/integration/oauth_provider/
(scopes: `api` for write access to the API) and https://docs.gitlab.com/api/users/
(`GET /user`: `id`, `username`, `name`, `web_url`).
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.domain.oauth.provider import (
    Account,
    AppCredentials,
    OAuthProvider,
    ProviderApi,
    ProviderRefused,
    TokenSet,
)


class GitLabOAuth(OAuthProvider):
    name = "gitlab"
    title = "GitLab"
    authorize_url = "https://gitlab.com/oauth/authorize"
    token_url = "https://gitlab.com/oauth/token"
    revoke_url = "https://gitlab.com/oauth/revoke"
    api_base = "https://gitlab.com/api/v4"
    # `api`: issues and merge requests closed, reopened and assigned as the user.
    scopes = ("api",)
    token_endpoint_auth_method = "client_secret_post"

    async def post_connect(
        self, api: ProviderApi, tokens: TokenSet, callback: Mapping[str, str]
    ) -> Account:
        user = await api.get_json("/user", tokens.access_token)
        if not isinstance(user, dict) or not user.get("id") or not user.get("username"):
            raise ProviderRefused("GitLab /user answered an unexpected shape")
        return Account(
            id=str(user["id"]),  # what `assignee_ids` takes
            name=user.get("name") or user["username"],
            url=user.get("web_url"),
            details={"login": user["username"]},
        )

    async def revoke(
        self, api: ProviderApi, app: AppCredentials, tokens: Mapping[str, str]
    ) -> None:
        assert api.endpoints.revoke_url
        answer = await api.send(
            "POST",
            api.endpoints.revoke_url,
            data={
                "client_id": app.client_id,
                "client_secret": app.client_secret,
                "token": tokens["access_token"],
            },
        )
        # RFC 7009 §2.2: 200 also for a token already invalid.
        api.revoked(answer, done=(200,))


OAUTH = GitLabOAuth()
