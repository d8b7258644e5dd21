"""Atlassian OAuth 2.0 (3LO) for Jira Cloud: rotating refresh tokens, a cloud id per site."""

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


class JiraOAuth(OAuthProvider):
    name = "jira"
    title = "Jira"
    authorize_url = "https://auth.atlassian.com/authorize"
    token_url = "https://auth.atlassian.com/oauth/token"
    revoke_url = None
    api_base = "https://api.atlassian.com"
    scopes = ("read:jira-work", "write:jira-work", "read:jira-user", "offline_access")
    pkce = False  # Atlassian's authorization server does not take PKCE
    authorize_params = MappingProxyType({"audience": "api.atlassian.com", "prompt": "consent"})
    token_endpoint_auth_method = "client_secret_post"
    # Atlassian answers a dead refresh token with 403 unauthorized_client.
    permanent_errors = frozenset({"invalid_grant", "unauthorized_client"})
    revocable = False  # users remove the app under their Atlassian account's connected apps

    async def post_connect(
        self, api: ProviderApi, tokens: TokenSet, callback: Mapping[str, str]
    ) -> Account:
        sites = await api.get_json("/oauth/token/accessible-resources", tokens.access_token)
        if not isinstance(sites, list) or not sites or not isinstance(sites[0], dict):
            raise ProviderRefused("the Atlassian account gave access to no Jira site")
        site = sites[0]
        return Account(
            id=str(site["id"]),  # the cloud id: API calls go to /ex/jira/{cloud_id}/...
            name=site.get("name"),
            url=site.get("url"),
            details={
                "cloud_id": str(site["id"]),
                "sites": [
                    {"id": s.get("id"), "name": s.get("name"), "url": s.get("url")}
                    for s in sites
                    if isinstance(s, dict)
                ],
            },
        )

    async def whoami(self, api: ProviderApi, tokens: TokenSet) -> Account:
        """The Atlassian account that consented, as Jira names it (`accountId`, what
        "assign to me" sends), and every site the token reaches (an action goes to the
        site of its issue): `GET /ex/jira/{cloud_id}/rest/api/3/myself` on the first site
        ("Get current user", scope `read:jira-user`,
        https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-myself/)."""
        sites = await self.post_connect(api, tokens, {})
        cloud_id = sites.details["cloud_id"]
        me = await api.get_json(f"/ex/jira/{cloud_id}/rest/api/3/myself", tokens.access_token)
        if not isinstance(me, dict) or not me.get("accountId"):
            raise ProviderRefused("Jira /myself answered an unexpected shape")
        return Account(
            id=str(me["accountId"]),
            name=me.get("displayName") or None,
            details={"sites": sites.details["sites"]},
        )

    async def revoke(
        self, api: ProviderApi, app: AppCredentials, tokens: Mapping[str, str]
    ) -> None:
        return None


OAUTH = JiraOAuth()
