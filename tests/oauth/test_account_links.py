"""Account links (SPEC §20 "Who acts"): a workspace maps its chat users to the provider
accounts they act as; put, read, listed by pages, replaced (its creation kept), deleted
and audited; a workspace's key or portal session sees and changes its own workspace's
only; a bad link refused naming the field."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from fastapi import FastAPI

from services.sandbox import FakeAtlassian, FakeGitHub, FakeGitLab
from services.sandbox.oauth_server import FakeAuthorizationServer
from shared.domain import audit
from shared.domain.account_links import AccountLinks
from shared.domain.oauth.tokens import LinkTokenKeeper
from shared.kernel.ids import utcnow
from tests.oauth.flow import consent
from tests.oauth.test_api_keys import bearer
from tests.support import RunningService, admin_headers

BASE = "/api/account-links"


def _workspace() -> str:
    return f"ws_{uuid.uuid4().hex[:8]}"


def _app(oauth: RunningService) -> FastAPI:
    assert isinstance(oauth.app, FastAPI)
    return oauth.app


async def _put(
    oauth: RunningService,
    path: str,
    body: dict[str, Any],
    workspace: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    params = {"workspace_id": workspace} if workspace else {}
    return await oauth.client.put(
        f"{BASE}/{path}", json=body, params=params, headers=headers or admin_headers()
    )


async def _admin(oauth: RunningService, method: str, path: str, **params: str) -> Any:
    return await oauth.client.request(method, path, params=params, headers=admin_headers())


async def test_a_link_is_put_read_replaced_listed_and_deleted(oauth: RunningService) -> None:
    ws = _workspace()
    made = await _put(oauth, "pagerduty/u_ada", {"provider_user": "ada@example.com"}, ws)
    assert made.status_code == 201, made.text
    link = made.json()
    assert link["id"].startswith("lnk_") and link["workspace_id"] == ws
    assert (link["provider"], link["chat_user_id"], link["kind"]) == (
        "pagerduty",
        "u_ada",
        "mapping",
    )
    assert (link["provider_user"], link["name"], link["external_id"]) == (
        "ada@example.com",
        None,
        None,
    )
    assert link["created_by"] == {"kind": "admin", "id": "admin"}
    read = await _admin(oauth, "GET", f"{BASE}/pagerduty/u_ada", workspace_id=ws)
    assert read.status_code == 200 and read.json() == link

    replaced = await _put(
        oauth, "pagerduty/u_ada", {"provider_user": "ada@corp.example", "name": "Ada Lovelace"}, ws
    )
    assert replaced.status_code == 200, replaced.text
    again = replaced.json()
    assert again["id"] == link["id"] and again["created_at"] == link["created_at"]
    assert again["updated_at"] >= link["updated_at"]
    assert (again["provider_user"], again["name"]) == ("ada@corp.example", "Ada Lovelace")
    read = await _admin(oauth, "GET", f"{BASE}/pagerduty/u_ada", workspace_id=ws)
    assert read.json() == again
    # Another provider's link of the same user is another link.
    other = await _put(oauth, "opsgenie/u_ada", {"provider_user": "ada"}, ws)
    assert other.status_code == 201 and other.json()["id"] != link["id"]

    # What sync's click worker reads: the clicking users' links, the unlinked absent.
    links = _app(oauth).state.account_links
    assert isinstance(links, AccountLinks)
    found = await links.of_users(ws, "pagerduty", ["u_ada", "u_bob"])
    assert list(found) == ["u_ada"] and found["u_ada"].to_public()["provider_user"] == (
        "ada@corp.example"
    )
    listed = (await _admin(oauth, "GET", BASE, workspace_id=ws, provider="pagerduty")).json()
    assert listed == {"data": [again], "next_cursor": None}

    deleted = await _admin(oauth, "DELETE", f"{BASE}/pagerduty/u_ada", workspace_id=ws)
    assert deleted.status_code == 204
    gone = await _admin(oauth, "GET", f"{BASE}/pagerduty/u_ada", workspace_id=ws)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    twice = await _admin(oauth, "DELETE", f"{BASE}/pagerduty/u_ada", workspace_id=ws)
    assert twice.status_code == 404
    assert await links.of_users(ws, "pagerduty", ["u_ada"]) == {}
    left = (await _admin(oauth, "GET", BASE, workspace_id=ws)).json()["data"]
    assert [item["provider"] for item in left] == ["opsgenie"]


async def test_a_workspace_s_key_and_portal_session_see_and_change_their_own_only(
    oauth: RunningService,
) -> None:
    mine, theirs = _workspace(), _workspace()
    key = await _admin_json(
        oauth, f"/api/workspaces/{mine}/api-keys", {"name": "bot", "scopes": ["read", "write"]}
    )
    session = await _admin_json(oauth, f"/api/workspaces/{mine}/portal-sessions", {})
    theirs_link = (await _put(oauth, "sentry/u_1", {"provider_user": "theirs"}, theirs)).json()

    path = f"{BASE}/sentry/u_1"
    # Mine has no link of u_1 yet: without workspace_id, a key asks in its own.
    assert (await oauth.client.get(path, headers=bearer(key["key"]))).status_code == 404
    for headers in (bearer(key["key"]), bearer(session["token"])):
        # Theirs is not there for mine, named: neither read nor deleted.
        read = await oauth.client.get(path, params={"workspace_id": theirs}, headers=headers)
        assert read.status_code == 404, read.text
        gone = await oauth.client.delete(path, params={"workspace_id": theirs}, headers=headers)
        assert gone.status_code == 404, gone.text
        listed = await oauth.client.get(BASE, params={"workspace_id": theirs}, headers=headers)
        assert listed.status_code == 200 and theirs_link["id"] not in listed.text
        assert {link["workspace_id"] for link in listed.json()["data"]} <= {mine}
        # Nor made there: 403, as creating in another workspace is.
        refused = await _put(oauth, "sentry/u_1", {"provider_user": "mine"}, theirs, headers)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "other_workspace"
        # In its own workspace, without naming it.
        made = await _put(oauth, "sentry/u_1", {"provider_user": "mine"}, headers=headers)
        assert made.status_code in (200, 201), made.text
        assert made.json()["workspace_id"] == mine
        own = await oauth.client.get(path, headers=headers)
        assert own.status_code == 200 and own.json()["provider_user"] == "mine"

    ours = (await _admin(oauth, "GET", f"{BASE}/sentry/u_1", workspace_id=mine)).json()
    assert ours["created_by"] == {"kind": "key", "id": key["id"]}  # made first, kept
    unchanged = await _admin(oauth, "GET", f"{BASE}/sentry/u_1", workspace_id=theirs)
    assert unchanged.json() == theirs_link


async def _admin_json(oauth: RunningService, path: str, body: dict[str, Any]) -> Any:
    answer = await oauth.client.post(path, json=body, headers=admin_headers())
    assert answer.status_code == 201, answer.text
    return answer.json()


@pytest.mark.parametrize(
    ("path", "body", "params", "loc", "says"),
    [
        ("pagerduty/u_1", {}, {"workspace_id": "ws_x"}, ["body", "provider_user"], "required"),
        (
            "pagerduty/u_1",
            {"provider_user": "a" * 243 + "@example.com"},  # 255 characters
            {"workspace_id": "ws_x"},
            ["body", "provider_user"],
            "254",
        ),
        (
            "pagerduty/u_1",
            {"provider_user": "ada\u202e@example.com"},
            {"workspace_id": "ws_x"},
            ["body", "provider_user"],
            "U+202E",
        ),
        (
            "pagerdoody/u_1",
            {"provider_user": "ada@example.com"},
            {"workspace_id": "ws_x"},
            ["path", "provider"],
            "pagerduty",
        ),
        (
            "github/u_1",
            {"provider_user": "ada"},
            {"workspace_id": "ws_x"},
            ["path", "provider"],
            "no actions by mapping",
        ),
        (
            "pagerduty/u%201",
            {"provider_user": "ada@example.com"},
            {"workspace_id": "ws_x"},
            ["path", "chat_user_id"],
            "U+0020",
        ),
        ("pagerduty/u_1", {"provider_user": "ada@example.com"}, {}, ["query", "workspace_id"], ""),
    ],
)
async def test_a_bad_link_is_refused_naming_the_field(
    oauth: RunningService,
    path: str,
    body: dict[str, Any],
    params: dict[str, str],
    loc: list[str],
    says: str,
) -> None:
    answer = await oauth.client.put(
        f"{BASE}/{path}", json=body, params=params, headers=admin_headers()
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert [detail["loc"] for detail in error["details"]] == [loc]
    assert says in error["details"][0]["message"]
    assert (await _admin(oauth, "GET", BASE, workspace_id="ws_x")).json()["data"] == []


async def test_puts_and_deletes_are_audited(oauth: RunningService) -> None:
    ws = _workspace()
    await _put(oauth, "alertmanager/u_ops", {"provider_user": "Ops Team", "name": "Ops"}, ws)
    deleted = await _admin(oauth, "DELETE", f"{BASE}/alertmanager/u_ops", workspace_id=ws)
    assert deleted.status_code == 204
    await _app(oauth).state.audit.writer.written()
    entries = (
        await _admin(
            oauth, "GET", "/api/audit-events", workspace_id=ws, resource_type="account_link"
        )
    ).json()["data"]
    route = "/api/account-links/{provider}/{chat_user_id}"
    seen = [(e["action"], e["method"], e["resource_id"], e["fields"], e["status"]) for e in entries]
    assert seen == [
        ("delete", "DELETE", "u_ops", [], 204),
        ("put", "PUT", "u_ops", ["name", "provider_user"], 201),
    ]
    for entry in entries:
        # The admin's DELETE answers no body: its workspace is the link's it found.
        assert (entry["workspace_id"], entry["route"], entry["actor"]["id"]) == (ws, route, "admin")
    assert audit.plan("PUT", route) is not None


async def test_the_list_is_cursor_paginated_and_filtered(oauth: RunningService) -> None:
    ws = _workspace()
    users = [f"u_{n}" for n in range(5)]
    for user in users:
        made = await _put(oauth, f"grafana/{user}", {"provider_user": f"{user}@example.com"}, ws)
        assert made.status_code == 201
    await _put(oauth, "opsgenie/u_0", {"provider_user": "zero"}, ws)

    pages: list[list[str]] = []
    cursor = None
    while True:
        params = {"workspace_id": ws, "provider": "grafana", "limit": "2"}
        answer = await _admin(
            oauth, "GET", BASE, **params, **({"cursor": cursor} if cursor else {})
        )
        assert answer.status_code == 200, answer.text
        page = answer.json()
        pages.append([link["chat_user_id"] for link in page["data"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(page) for page in pages] == [2, 2, 1]
    assert sorted(user for page in pages for user in page) == users
    of_user = (await _admin(oauth, "GET", BASE, workspace_id=ws, chat_user_id="u_0")).json()
    assert sorted(link["provider"] for link in of_user["data"]) == ["grafana", "opsgenie"]
    bad = await _admin(oauth, "GET", BASE, workspace_id=ws, cursor="nope!")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"


# -- links by the user's own consent (GitHub, GitLab, Jira) ---------------------------------


async def _consent_link(
    oauth: RunningService,
    providers: dict[str, FakeAuthorizationServer],
    provider: str,
    ws: str,
    chat_user: str,
    user: str,
) -> dict[str, Any]:
    """POST …/connect, the user's consent at the stand-in (as `user`), the callback."""
    started = await oauth.client.post(
        f"{BASE}/{provider}/connect",
        json={"chat_user_id": chat_user},
        params={"workspace_id": ws},
        headers=admin_headers(),
    )
    assert started.status_code == 200, started.text
    providers[provider].user = user
    answer = await oauth.client.get(
        "/api/auth/oauth/callback", params=await consent(started.json()["authorization_url"])
    )
    assert answer.status_code == 200, answer.text
    linked: dict[str, Any] = answer.json()
    return linked


def _link_tokens(oauth: RunningService) -> LinkTokenKeeper:
    found: LinkTokenKeeper = _app(oauth).state.link_token_keeper
    return found


async def test_a_user_links_github_by_consent_sealed_refreshed_and_revoked_when_unlinked(
    oauth: RunningService, providers: dict[str, FakeAuthorizationServer]
) -> None:
    github = providers["github"]
    assert isinstance(github, FakeGitHub)
    github.profiles["ada-gh"] = {"login": "ada", "id": 1001, "name": "Ada Lovelace"}
    ws = _workspace()
    started = await oauth.client.post(
        f"{BASE}/github/connect",
        json={"chat_user_id": "u_ada"},
        params={"workspace_id": ws},
        headers=admin_headers(),
    )
    assert started.status_code == 200, started.text
    url = started.json()["authorization_url"]
    asked = dict(parse_qsl(urlsplit(url).query))
    # Bound by an unguessable state, with PKCE (GitHub takes it).
    assert len(asked["state"]) >= 43 and asked["code_challenge_method"] == "S256"
    github.user = "ada-gh"
    back = await consent(url)
    answer = await oauth.client.get("/api/auth/oauth/callback", params=back)
    assert answer.status_code == 200, answer.text
    linked = answer.json()
    assert (linked["provider"], linked["chat_user_id"], linked["provider_user"]) == (
        "github",
        "u_ada",
        "ada",
    )
    # The state is spent: the same callback again makes nothing.
    again = await oauth.client.get("/api/auth/oauth/callback", params=back)
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_state"

    shown = await _admin(oauth, "GET", f"{BASE}/github/u_ada", workspace_id=ws)
    assert shown.status_code == 200, shown.text
    link = shown.json()
    assert (link["kind"], link["provider_user"], link["name"], link["external_id"]) == (
        "oauth",
        "ada",
        "Ada Lovelace",
        "ada",
    )
    listed = await _admin(oauth, "GET", BASE, workspace_id=ws)
    doc = await _app(oauth).state.runtime.db.account_links.find_one({"_id": link["id"]})
    assert doc is not None
    opened = _app(oauth).state.runtime.secrets.decrypt(doc["tokens"]["access_token"])
    assert opened.startswith("ghu_") and github.valid(opened)
    # Sealed at rest, never shown: not in what the routes answer, not in the clear in MongoDB.
    for said in (answer.text, shown.text, listed.text):
        assert opened not in said and "token" not in said
    assert opened not in str(doc)

    # Refreshed as an integration's token is: due, the keeper spends the refresh token.
    refreshes = github.refresh_grants
    await _app(oauth).state.runtime.db.account_links.update_one(
        {"_id": link["id"]},
        {"$set": {"oauth.expires_at": utcnow() - timedelta(seconds=1)}},
    )
    fresh = await _link_tokens(oauth).access_token(link["id"])
    assert github.refresh_grants == refreshes + 1 and fresh != opened and github.valid(fresh)

    # Unlinked: the token is revoked at GitHub, the link and its tokens gone.
    gone = await _admin(oauth, "DELETE", f"{BASE}/github/u_ada", workspace_id=ws)
    assert gone.status_code == 204, gone.text
    assert fresh in github.deleted and not github.valid(fresh)
    assert await _app(oauth).state.runtime.db.account_links.find_one({"_id": link["id"]}) is None


async def test_jira_and_gitlab_links_name_the_user_as_their_apis_do(
    oauth: RunningService, providers: dict[str, FakeAuthorizationServer]
) -> None:
    jira, gitlab = providers["jira"], providers["gitlab"]
    assert isinstance(jira, FakeAtlassian) and isinstance(gitlab, FakeGitLab)
    jira.people["ada-at"] = {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Ada"}
    gitlab.profiles["ada-gl"] = {"id": 4242, "username": "ada", "name": "Ada L"}
    ws = _workspace()
    at_jira = await _consent_link(oauth, providers, "jira", ws, "u_ada", "ada-at")
    at_gitlab = await _consent_link(oauth, providers, "gitlab", ws, "u_ada", "ada-gl")
    assert at_jira["provider_user"] == "5b10ac8d82e05b22cc7d4ef5"
    assert at_gitlab["provider_user"] == "ada"
    links = AccountLinks(_app(oauth).state.runtime.db)
    found = await links.of_users(ws, "jira", ["u_ada"])
    assert found["u_ada"].external_id == "5b10ac8d82e05b22cc7d4ef5"
    assert found["u_ada"].account["sites"] == [
        {"id": jira.cloud_id, "name": "acme", "url": jira.site_url}
    ]
    gitlab_link = (await links.of_users(ws, "gitlab", ["u_ada"]))["u_ada"]
    assert (gitlab_link.external_id, gitlab_link.name) == ("4242", "Ada L")
    # GitLab's code exchange carried the PKCE verifier its authorization was bound to.
    assert gitlab.authorize_requests[-1]["code_challenge_method"] == "S256"
    assert gitlab.token_requests[-1]["code_verifier"]


async def test_a_link_ticket_names_its_user_and_starts_their_consent_once(
    oauth: RunningService, providers: dict[str, FakeAuthorizationServer]
) -> None:
    """A ticket's page names whom it links and spends nothing; its button, from the page
    only, spends it on that user's consent, once."""
    ws = _workspace()
    links = AccountLinks(_app(oauth).state.runtime.db)
    ticket = await links.issue_ticket(ws, "github", "u_bob", "Bob <b>")
    url = f"/api/auth/oauth/link/{ticket}"
    page = await oauth.client.get(url)
    assert page.status_code == 200, page.text
    assert "<strong>Bob &lt;b&gt;</strong> (<code>u_bob</code>)" in page.text, page.text
    # Its address to no other site; its own form's POST keeps its Origin (a browser sends
    # `Origin: null` from a page whose policy is no-referrer).
    assert page.headers["referrer-policy"] == "same-origin"
    for origin in ({}, {"origin": "https://elsewhere.example"}):
        assert (await oauth.client.post(url, headers=origin)).status_code == 403
    opened = await oauth.client.post(url, headers={"origin": "http://hookhub.test"})
    assert opened.status_code == 303, opened.text
    to = opened.headers["location"]
    assert to.startswith(providers["github"].base_url + "/login/oauth/authorize?")
    answer = await oauth.client.get("/api/auth/oauth/callback", params=await consent(to))
    assert answer.status_code == 200, answer.text
    linked = answer.json()
    assert (linked["chat_user_id"], linked["workspace_id"]) == ("u_bob", ws)
    assert linked["chat_user_name"] == "Bob <b>"
    # Spent; one never issued is not found either.
    for used in (ticket, "x" * 43):
        assert (await oauth.client.get(f"/api/auth/oauth/link/{used}")).status_code == 404
        spent = f"/api/auth/oauth/link/{used}"
        assert (
            await oauth.client.post(spent, headers={"origin": "http://hookhub.test"})
        ).status_code == 404


async def test_connect_takes_the_providers_linked_by_consent_only(oauth: RunningService) -> None:
    answer = await oauth.client.post(
        f"{BASE}/pagerduty/connect",
        json={"chat_user_id": "u_1"},
        params={"workspace_id": "ws_x"},
        headers=admin_headers(),
    )
    assert answer.status_code == 422, answer.text
    assert "not linked by their own consent" in answer.json()["error"]["details"][0]["message"]
