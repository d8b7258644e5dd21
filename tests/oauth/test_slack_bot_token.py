"""Slack integrations with a hand-installed app's bot token (`settings.bot_token`, xoxb-…):
checked with auth.test (and bots.info for the app id), sealed, never shown, re-checked when
PATCHed, forgotten (not revoked) on disconnect."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.sandbox.oauth_server import FakeAuthorizationServer
from services.sandbox.slack import FakeSlack
from tests.oauth.flow import box_of, keeper, stored
from tests.support import RunningService, admin_headers

WORKSPACE = "ws_slack_bot"


@pytest.fixture
def slack(providers: dict[str, FakeAuthorizationServer]) -> FakeSlack:
    fake = providers["slack"]
    assert isinstance(fake, FakeSlack)
    fake.programmed.clear()
    return fake


async def create(oauth: RunningService, **settings: str) -> httpx.Response:
    return await oauth.client.post(
        "/api/integrations",
        json={"provider": "slack", "workspace_id": WORKSPACE, "settings": settings},
        headers=admin_headers(),
    )


async def count(oauth: RunningService) -> int:
    answer = await oauth.client.get(
        "/api/integrations",
        params={"workspace_id": WORKSPACE, "limit": 200},
        headers=admin_headers(),
    )
    assert answer.status_code == 200, answer.text
    return len(answer.json()["data"])


def error_of(answer: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = answer.json()["error"]
    return error


async def test_a_bot_token_is_checked_and_sealed(oauth: RunningService, slack: FakeSlack) -> None:
    token = slack.add_bot_token()
    answer = await create(oauth, bot_token=token, signing_secret="s3cret-signing")
    assert answer.status_code == 201, answer.text
    integration = answer.json()
    assert integration["status"] == "connected"
    assert integration["account"] == {
        "id": "T0TEAM",
        "name": "Acme",
        "url": "https://acme.slack.com/",
        "bot_user_id": "U0BOT",
        "bot_id": "B0BOT",
        "app_id": "A0APP",
    }
    assert sorted(integration["settings_configured"]) == ["bot_token", "signing_secret"]
    assert token not in answer.text
    shown = await oauth.client.get(
        f"/api/integrations/{integration['id']}", headers=admin_headers()
    )
    assert token not in shown.text
    doc = await stored(oauth, integration["id"])
    assert doc["secrets"]["bot_token"] != token
    assert box_of(oauth).decrypt(doc["secrets"]["bot_token"]) == token
    checked = slack.calls_of("auth.test")[-1]
    assert checked.token == token
    # What sync and actions call Slack with.
    assert await keeper(oauth).access_token(integration["id"]) == token


@pytest.mark.parametrize("token", ["xoxp-user-token", "xoxe.xoxb-rotating", "ghp_abc", "xoxb"])
async def test_only_bot_tokens_are_taken(
    oauth: RunningService, slack: FakeSlack, token: str
) -> None:
    calls = len(slack.calls)
    before = await count(oauth)
    answer = await create(oauth, bot_token=token)
    assert answer.status_code == 422, answer.text
    assert error_of(answer)["code"] == "invalid_setting"
    assert "xoxb-" in error_of(answer)["message"]
    assert len(slack.calls) == calls  # refused before asking Slack
    assert await count(oauth) == before


async def test_a_token_slack_rejects_is_refused_clearly(
    oauth: RunningService, slack: FakeSlack
) -> None:
    before = await count(oauth)
    answer = await create(oauth, bot_token="xoxb-never-issued-by-slack")
    assert answer.status_code == 422, answer.text
    assert error_of(answer)["code"] == "invalid_setting"
    assert "invalid_auth" in error_of(answer)["message"]
    assert await count(oauth) == before


async def test_slack_unreachable_is_a_503_and_nothing_is_kept(
    oauth: RunningService, slack: FakeSlack
) -> None:
    token = slack.add_bot_token()
    before = await count(oauth)
    slack.fail("auth.test", "", status=503)
    answer = await create(oauth, bot_token=token)
    assert answer.status_code == 503, answer.text
    assert await count(oauth) == before
    slack.rate_limit("auth.test", retry_after=3)
    limited = await create(oauth, bot_token=token)
    assert limited.status_code == 429, limited.text
    assert limited.headers["retry-after"] == "3"
    assert await count(oauth) == before


async def test_without_users_read_the_app_id_is_unknown(
    oauth: RunningService, slack: FakeSlack
) -> None:
    slack.fail("bots.info", "missing_scope")
    answer = await create(oauth, bot_token=slack.add_bot_token())
    assert answer.status_code == 201, answer.text
    assert answer.json()["account"]["app_id"] is None
    assert answer.json()["account"]["bot_id"] == "B0BOT"


async def test_patching_the_bot_token_checks_it_again(
    oauth: RunningService, slack: FakeSlack
) -> None:
    first, second = slack.add_bot_token(), slack.add_bot_token()
    created = (await create(oauth, bot_token=first)).json()
    url = f"/api/integrations/{created['id']}"

    refused = await oauth.client.patch(
        url, json={"settings": {"bot_token": "xoxb-revoked-long-ago"}}, headers=admin_headers()
    )
    assert refused.status_code == 422, refused.text
    doc = await stored(oauth, created["id"])
    assert box_of(oauth).decrypt(doc["secrets"]["bot_token"]) == first  # the old one stays

    answer = await oauth.client.patch(
        url, json={"settings": {"bot_token": second}}, headers=admin_headers()
    )
    assert answer.status_code == 200, answer.text
    assert slack.calls_of("auth.test")[-1].token == second
    assert answer.json()["status"] == "connected"
    doc = await stored(oauth, created["id"])
    assert box_of(oauth).decrypt(doc["secrets"]["bot_token"]) == second

    # Another setting alone does not ask Slack.
    checks = len(slack.calls_of("auth.test"))
    answer = await oauth.client.patch(
        url, json={"settings": {"signing_secret": "other"}}, headers=admin_headers()
    )
    assert answer.status_code == 200, answer.text
    assert len(slack.calls_of("auth.test")) == checks


async def test_disconnect_forgets_the_bot_token_without_revoking_it(
    oauth: RunningService, slack: FakeSlack
) -> None:
    token = slack.add_bot_token()
    created = (await create(oauth, bot_token=token, signing_secret="kept")).json()
    answer = await oauth.client.post(
        f"/api/integrations/{created['id']}/disconnect", headers=admin_headers()
    )
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["revocation"]) == (
        "disconnected",
        "not_offered",
    )
    assert answer.json()["settings_configured"] == ["signing_secret"]
    assert token in slack.bot_tokens and token not in slack.revoked
    # Connected again with a bot token.
    again = await oauth.client.patch(
        f"/api/integrations/{created['id']}",
        json={"settings": {"bot_token": token}},
        headers=admin_headers(),
    )
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "connected"
