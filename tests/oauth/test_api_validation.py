"""What the integrations and provider-app API refuse: 4xx, never a 500.

A PATCH with `null` (or a rate of 5e-324) was stored, and from then on the integration's
GET, `/status`, `/disconnect` and every list of its workspace answered 500.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import pytest

from tests.support import RunningService, admin_headers


async def _integration(oauth: RunningService, workspace_id: str) -> dict[str, Any]:
    body = {"provider": "github", "workspace_id": workspace_id, "settings": {"webhook_secret": "s"}}
    answer = await oauth.client.post("/api/integrations", json=body, headers=admin_headers())
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


@pytest.mark.parametrize(
    "patch",
    [
        {"name": None},
        {"name": ""},
        {"enabled": None},
        {"is_default": None},
        {"settings": None},
        {"rate_limit_per_second": 5e-324},
        {"rate_limit_per_second": 0},
        {"enabled": 0, "is_default": None, "name": "", "rate_limit_per_second": 5e-324},
    ],
)
async def test_a_patch_with_null_empty_or_tiny_values_is_refused(
    oauth: RunningService, patch: dict[str, Any]
) -> None:
    workspace = "ws_" + uuid.uuid4().hex[:6]
    created = await _integration(oauth, workspace)
    answer = await oauth.client.patch(
        f"/api/integrations/{created['id']}", json=patch, headers=admin_headers()
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid"
    for path in ("", "/status"):
        read = await oauth.client.get(
            f"/api/integrations/{created['id']}{path}", headers=admin_headers()
        )
        assert read.status_code == 200, read.text
    listed = await oauth.client.get(
        "/api/integrations", params={"workspace_id": workspace}, headers=admin_headers()
    )
    assert [i["id"] for i in listed.json()["data"]] == [created["id"]]
    disconnected = await oauth.client.post(
        f"/api/integrations/{created['id']}/disconnect", headers=admin_headers()
    )
    assert disconnected.status_code == 200, disconnected.text


async def test_null_clears_the_rate_limit(oauth: RunningService) -> None:
    created = await _integration(oauth, "ws_" + uuid.uuid4().hex[:6])
    for value in (2.5, None):
        answer = await oauth.client.patch(
            f"/api/integrations/{created['id']}",
            json={"rate_limit_per_second": value},
            headers=admin_headers(),
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["rate_limit_per_second"] == value


async def test_a_list_filtered_by_any_workspace_answers(oauth: RunningService) -> None:
    for workspace in ("0", "", "\x11", "é"):
        listed = await oauth.client.get(
            "/api/integrations", params={"workspace_id": workspace}, headers=admin_headers()
        )
        assert listed.status_code == 200, listed.text


@pytest.mark.parametrize("odd_id", ["%11", "a%0Ab", "%C2%8A%C2%9A%03%F3%9F%B3%88%3F"])
async def test_ids_with_control_or_non_ascii_characters_are_not_found(
    oauth: RunningService, odd_id: str
) -> None:
    for method, route in (
        ("GET", "/api/integrations/{}"),
        ("GET", "/api/integrations/{}/status"),
        ("POST", "/api/integrations/{}/disconnect"),
        ("DELETE", "/api/integrations/{}"),
    ):
        answer = await oauth.client.request(method, route.format(odd_id), headers=admin_headers())
        assert answer.status_code == 404, (method, route, answer.text)
    for method in ("GET", "PUT", "DELETE"):
        answer = await oauth.client.request(
            method, f"/api/providers/{odd_id}", json={}, headers=admin_headers()
        )
        # A provider the catalog lacks, as any misspelt one (it was a 422 `invalid`).
        assert answer.status_code == 404, (method, answer.text)
        assert answer.json()["error"]["code"] == "unknown_provider"


async def test_provider_apps_are_listed_in_the_list_format(oauth: RunningService) -> None:
    listed = await oauth.client.get("/api/providers", headers=admin_headers())
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert set(body) == {"data", "next_cursor"}
    assert body["next_cursor"] is None
    assert {app["provider"] for app in body["data"]} >= {"slack", "github", "telegram"}


async def test_a_provider_app_value_copied_with_an_example_s_ellipsis_is_refused(
    oauth: RunningService,
) -> None:
    """`{"client_id": "Ov23li…"}` from the docs' example is not a client id: refused (422)
    and nothing stored, not kept to fail at the provider later."""
    for body in (
        {"client_id": "Ov23li…"},
        {"client_id": "Ov23li abc"},
        {"client_secret": "…"},
        {"client_secret": "abc\n"},
        {"signing_secret": "sécret"},
    ):
        answer = await oauth.client.put("/api/providers/github", json=body, headers=admin_headers())
        assert answer.status_code == 422, (body, answer.text)
        assert "printable ASCII" in answer.text
    app = await oauth.client.get("/api/providers/github", headers=admin_headers())
    assert app.json()["source"] != "api"
    fine = await oauth.client.put(
        "/api/providers/github",
        json={"client_id": "Ov23liA1b2C3d4E5f6G7", "client_secret": "0123abcd" * 5},
        headers=admin_headers(),
    )
    assert fine.status_code == 200 and fine.json()["client_id"] == "Ov23liA1b2C3d4E5f6G7"
    await oauth.client.delete("/api/providers/github", headers=admin_headers())


@pytest.mark.parametrize(
    ("workspace", "named"),
    [
        ("ws\u202e\x00", "U+202E (RIGHT-TO-LEFT OVERRIDE) at position 2"),
        ("ws\x00", "U+0000 (a control character) at position 2"),
        ("w" * 201, "at most 200 characters"),
    ],
)
async def test_a_workspace_id_with_unseen_characters_or_overlong_is_refused_naming_it(
    oauth: RunningService, workspace: str, named: str
) -> None:
    """Once stored (201), and shown in the console as another workspace's name."""
    body = {"provider": "github", "workspace_id": workspace, "settings": {"webhook_secret": "s"}}
    created = await oauth.client.post("/api/integrations", json=body, headers=admin_headers())
    assert created.status_code == 422, created.text
    [detail] = created.json()["error"]["details"]
    assert detail["loc"] == ["body", "workspace_id"] and named in detail["message"]
    keys = await oauth.client.post(
        f"/api/workspaces/{quote(workspace)}/api-keys",
        json={"name": "k", "scopes": ["read"]},
        headers=admin_headers(),
    )
    assert keys.status_code == 422, keys.text
    [detail] = keys.json()["error"]["details"]
    assert detail["loc"] == ["path", "workspace_id"] and named in detail["message"]


async def test_notions_verification_token_is_shown_until_the_first_verified_event(
    oauth: RunningService,
) -> None:
    """The token Notion's first POST handed over (kept sealed by the gateway, as
    `keep_secrets` does) is what the user pastes into Notion: GET shows it while no
    verified event has come; lists never do; after an event, GET does not either."""
    workspace = "ws_" + uuid.uuid4().hex[:6]
    body = {"provider": "notion", "workspace_id": workspace}
    answer = await oauth.client.post("/api/integrations", json=body, headers=admin_headers())
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["pending_verification_token"] is None
    path = f"/api/integrations/{created['id']}"
    assert (await oauth.client.get(path, headers=admin_headers())).json()[
        "pending_verification_token"
    ] is None  # nothing handed over yet
    token = "secret_tMrlL1qK5vuQAh1b6cZGhFChZTSYJlce98V0pYn7yBl"  # Notion's docs' example
    repository = oauth.app.state.integration_repository  # type: ignore[attr-defined]
    box = oauth.app.state.runtime.secrets  # type: ignore[attr-defined]
    assert await repository.keep_secrets(created["id"], {"verification_token": box.encrypt(token)})
    shown = (await oauth.client.get(path, headers=admin_headers())).json()
    assert shown["pending_verification_token"] == token
    assert shown["settings_configured"] == ["verification_token"]
    listed = await oauth.client.get(
        "/api/integrations", params={"workspace_id": workspace}, headers=admin_headers()
    )
    assert [i["pending_verification_token"] for i in listed.json()["data"]] == [None]
    db = oauth.app.state.runtime.db  # type: ignore[attr-defined]
    await db.integrations.update_one({"_id": created["id"]}, {"$inc": {"event_count": 1}})
    after = (await oauth.client.get(path, headers=admin_headers())).json()
    assert after["event_count"] == 1 and after["pending_verification_token"] is None


@pytest.mark.parametrize(
    ("provider", "settings", "patch", "problem"),
    [
        # A required setting is replaced, never cleared.
        ("stripe", {"signing_secret": "whsec_abc"}, {"signing_secret": None}, "is required"),
        # The first six's settings connect bots and webhooks: replaced, not cleared.
        ("github", {"webhook_secret": "s3cret"}, {"webhook_secret": None}, "not cleared"),
        ("hmac", {"secret": "s", "header": "X-Sig"}, {"no_such": None}, "takes no setting"),
    ],
    ids=["required", "first-six", "unknown"],
)
async def test_a_setting_cleared_with_null_only_when_optional(
    oauth: RunningService,
    provider: str,
    settings: dict[str, str],
    patch: dict[str, Any],
    problem: str,
) -> None:
    body = {
        "provider": provider,
        "workspace_id": "ws_" + uuid.uuid4().hex[:6],
        "settings": settings,
    }
    created = await oauth.client.post("/api/integrations", json=body, headers=admin_headers())
    assert created.status_code == 201, created.text
    path = f"/api/integrations/{created.json()['id']}"
    refused = await oauth.client.patch(path, json={"settings": patch}, headers=admin_headers())
    assert refused.status_code == 422, refused.text
    assert problem in refused.json()["error"]["message"]
    kept = (await oauth.client.get(path, headers=admin_headers())).json()
    assert kept["settings_configured"] == created.json()["settings_configured"]
    assert set(settings) <= set(kept["settings_configured"])


async def test_an_optional_setting_cleared_with_null_is_forgotten(oauth: RunningService) -> None:
    body = {
        "provider": "hmac",
        "workspace_id": "ws_" + uuid.uuid4().hex[:6],
        "settings": {"secret": "s", "header": "X-Sig", "prefix": "sha256="},
    }
    created = await oauth.client.post("/api/integrations", json=body, headers=admin_headers())
    assert created.status_code == 201, created.text
    assert created.json()["config"]["prefix"] == "sha256="
    path = f"/api/integrations/{created.json()['id']}"
    cleared = await oauth.client.patch(
        path, json={"settings": {"prefix": None}}, headers=admin_headers()
    )
    assert cleared.status_code == 200, cleared.text
    assert "prefix" not in cleared.json()["config"]
    assert "prefix" not in cleared.json()["settings_configured"]


async def test_a_setting_that_is_a_number_takes_a_json_number(oauth: RunningService) -> None:
    """`tolerance_seconds: 300` was refused (`invalid_setting`): only `"300"` was taken. A
    number is kept as its digits, as every setting is; what is refused says what was
    expected and what was given."""
    body = {
        "provider": "hmac",
        "workspace_id": "ws_" + uuid.uuid4().hex[:6],
        "settings": {"secret": "s", "header": "X-Sig", "tolerance_seconds": 600},
    }
    created = await oauth.client.post("/api/integrations", json=body, headers=admin_headers())
    assert created.status_code == 201, created.text
    assert created.json()["config"]["tolerance_seconds"] == "600"
    path = f"/api/integrations/{created.json()['id']}"
    for given, kept in ((120, "120"), (90.0, "90"), ("45", "45")):
        patched = await oauth.client.patch(
            path, json={"settings": {"tolerance_seconds": given}}, headers=admin_headers()
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["config"]["tolerance_seconds"] == kept
    for settings, said in (
        (
            {"tolerance_seconds": 1.5},
            "must be a whole number (a JSON number, or a string of its digits), not the number 1.5",
        ),
        ({"tolerance_seconds": True}, "must be a whole number"),
        ({"tolerance_seconds": [300]}, "not an array"),
        ({"header": 5}, "setting header must be a non-empty string, not the number 5"),
        ({"header": ""}, "setting header must be a non-empty string, not an empty string"),
    ):
        refused = await oauth.client.patch(
            path, json={"settings": settings}, headers=admin_headers()
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == "invalid_setting"
        assert said in refused.json()["error"]["message"], refused.text
    kept_config = (await oauth.client.get(path, headers=admin_headers())).json()["config"]
    assert (kept_config["tolerance_seconds"], kept_config["header"]) == ("45", "X-Sig")
    catalog = await oauth.client.get("/api/provider-catalog/hmac", headers=admin_headers())
    types = {s["name"]: s["type"] for s in catalog.json()["settings"]}
    assert (types["tolerance_seconds"], types["header"]) == ("integer", "text")


async def test_a_misspelt_provider_is_404_unknown_provider(oauth: RunningService) -> None:
    # A new user's `githb` was a 422 `invalid` ("does not match the schema"), though the
    # error table lists 404 `unknown_provider` for it, as the webhook ingress answers.
    created = await oauth.client.post(
        "/api/integrations",
        json={"provider": "githb", "workspace_id": "ws_typo", "settings": {}},
        headers=admin_headers(),
    )
    read = [
        await oauth.client.request(method, f"/api/{path}", headers=admin_headers())
        for method, path in (
            ("GET", "provider-catalog/githb"),
            ("GET", "providers/githb"),
            ("DELETE", "providers/githb"),
        )
    ]
    for answer in (created, *read):
        assert answer.status_code == 404, answer.text
        error = answer.json()["error"]
        assert error["code"] == "unknown_provider", error
        assert "'githb'" in error["message"] and "/api/provider-catalog" in error["message"]
    nothing = await oauth.client.get(
        "/api/integrations", params={"workspace_id": "ws_typo"}, headers=admin_headers()
    )
    assert nothing.json()["data"] == []


async def test_a_provider_without_an_app_is_404_naming_those_with_one(
    oauth: RunningService,
) -> None:
    answer = await oauth.client.get("/api/providers/stripe", headers=admin_headers())
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] == "not_found"
    assert "stripe has no provider app" in answer.json()["error"]["message"]
    assert "slack, discord, github" in answer.json()["error"]["message"]


async def test_a_malformed_json_body_is_400_saying_where(oauth: RunningService) -> None:
    # The comma after "github" is missing: line 3, column 3, where the parser stopped.
    body = b'{\n  "provider": "github"\n  "workspace_id": "ws_1"\n}'
    answer = await oauth.client.post(
        "/api/integrations",
        content=body,
        headers={**admin_headers(), "content-type": "application/json"},
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "malformed_json"
    assert (error["line"], error["column"]) == (3, 3)
    assert error["message"] == (
        "request body is not valid JSON: Expecting ',' delimiter at line 3, column 3"
    )
