"""Bot tokens through TokenKeeper: an integration without an OAuth token is given its sealed
`bot_token`; a rejected bot token cannot be refreshed, so the integration goes to error,
once, however many callers report it."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from services.sandbox.telegram import FakeTelegram
from shared.oauth.tokens import NotConnected
from tests.oauth.flow import keeper, stored
from tests.support import KafkaTap, RunningService, admin_headers

_ids = itertools.count(1)


async def create(oauth: RunningService, provider: str, **settings: str) -> dict[str, Any]:
    answer = await oauth.client.post(
        "/api/integrations",
        json={"provider": provider, "workspace_id": "ws_bots", "settings": settings},
        headers=admin_headers(),
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def new_bot(fake: FakeTelegram) -> str:
    n = next(_ids)
    token = f"{7000 + n}:bot-token-test-{n}"
    fake.add_bot(token, 7000 + n, f"bot_token_{n}_bot")
    return token


async def test_a_telegram_integration_is_given_its_bot_token(
    oauth: RunningService, telegram_api: tuple[FakeTelegram, str]
) -> None:
    token = new_bot(telegram_api[0])
    integration = await create(oauth, "telegram", bot_token=token)
    assert await keeper(oauth).access_token(integration["id"]) == token
    # A token rejected earlier that is no longer the integration's: the current one.
    assert await keeper(oauth).access_token(integration["id"], rejected="1:older") == token
    assert (await stored(oauth, integration["id"]))["status"] == "connected"


async def test_a_discord_bot_token_discord_refuses_is_refused_at_once(
    oauth: RunningService,
) -> None:
    """Checked with GET /users/@me before it is stored (a bot token Discord accepts is
    handed to sync by TokenKeeper: tests/sync, against the fake Discord)."""
    answer = await oauth.client.post(
        "/api/integrations",
        json={"provider": "discord", "workspace_id": "ws_bots", "settings": {"bot_token": "x"}},
        headers=admin_headers(),
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_setting"
    assert "Reset Token" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("provider", "settings", "bot_token"),
    [
        ("github", {"webhook_secret": "whsec-1234567890"}, False),
        ("jira", {"webhook_secret": "whsec-1234567890"}, False),
        ("slack", {"signing_secret": "s"}, True),
        ("discord", {"public_key": "ab" * 32}, True),
    ],
)
async def test_an_integration_with_neither_token_is_told_its_own_way_in(
    oauth: RunningService, provider: str, settings: dict[str, str], bot_token: bool
) -> None:
    integration = await create(oauth, provider, **settings)
    with pytest.raises(NotConnected, match="has no token") as raised:
        await keeper(oauth).access_token(integration["id"])
    message = raised.value.message
    assert "connect it through OAuth: POST /api/auth/oauth/connect" in message
    # Only a provider that takes the setting is told of it: GitHub and Jira refuse it (422).
    assert ("bot_token" in message) is bot_token
    if bot_token:
        assert f"PATCH /api/integrations/{integration['id']}" in message


async def test_a_rejected_bot_token_puts_the_integration_in_error_once(
    oauth: RunningService,
    telegram_api: tuple[FakeTelegram, str],
    integration_events: KafkaTap,
) -> None:
    fake = telegram_api[0]
    token = new_bot(fake)
    integration = await create(oauth, "telegram", bot_token=token)
    tokens = keeper(oauth)

    async def reject() -> BaseException | str:
        try:
            return await tokens.access_token(integration["id"], rejected=token)
        except NotConnected as exc:
            return exc

    outcomes = await asyncio.gather(*(reject() for _ in range(10)))
    assert all(isinstance(o, NotConnected) for o in outcomes), outcomes
    doc = await stored(oauth, integration["id"])
    assert doc["status"] == "error"
    assert "Telegram rejected the bot token" in doc["last_error"]
    assert doc["oauth"]["lease_owner"] is None
    errors = await integration_events.wait_for(
        lambda v: v["type"] == "integration.error" and v["integration_id"] == integration["id"],
        count=2,
        timeout=2,
    )
    assert len(errors) == 1
    assert errors[0]["data"]["reason"] == "bot_token_rejected"
    with pytest.raises(NotConnected, match="is error: Telegram rejected the bot token"):
        await tokens.access_token(integration["id"])

    # A new bot token connects it again, and is what callers get.
    fresh = new_bot(fake)
    answer = await oauth.client.patch(
        f"/api/integrations/{integration['id']}",
        json={"settings": {"bot_token": fresh}},
        headers=admin_headers(),
    )
    assert answer.status_code == 200, answer.text
    assert await tokens.access_token(integration["id"], rejected=token) == fresh
