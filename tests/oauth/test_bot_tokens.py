"""Bot tokens through TokenKeeper: an integration without an OAuth token is given its sealed
`bot_token`; a rejected bot token cannot be refreshed, so the integration goes to error,
once, however many callers report it."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from typing import Any

import httpx
import pytest

from services.sandbox.discord import FakeDiscord
from services.sandbox.oauth_server import FakeAuthorizationServer
from services.sandbox.telegram import FakeTelegram
from shared.domain.integrations.repository import IntegrationRepository
from shared.domain.oauth.tokens import NotConnected
from tests.oauth.flow import keeper, stored
from tests.support import KafkaTap, RunningService, admin_headers

_ids = itertools.count(1)


async def create(oauth: RunningService, provider: str, **settings: str) -> dict[str, Any]:
    return await create_in(oauth, provider, "ws_bots", **settings)


async def create_in(
    oauth: RunningService, provider: str, workspace_id: str, **settings: str
) -> dict[str, Any]:
    answer = await oauth.client.post(
        "/api/integrations",
        json={"provider": provider, "workspace_id": workspace_id, "settings": settings},
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
    operational_events: KafkaTap,
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
    [operational] = await operational_events.wait_for(
        lambda v: v["data"].get("integration_id") == integration["id"]
    )
    assert operational["type"] == "operational.integration.error"
    assert operational["data"]["reason"] == "bot_token_rejected"
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


# -- one bot, one integration ----------------------------------------------------------------


async def attempt(
    oauth: RunningService, provider: str, workspace_id: str, bot_token: str
) -> httpx.Response:
    return await oauth.client.post(
        "/api/integrations",
        json={"provider": provider, "workspace_id": workspace_id, "settings": {"bot_token": bot_token}},
        headers=admin_headers(),
    )  # fmt: skip


def refused_for_the_bot(answer: httpx.Response, *, unnamed: tuple[str, ...]) -> str:
    """A 409 `bot_in_use` whose message names none of `unnamed` (another workspace, and
    an integration there): the message."""
    assert answer.status_code == 409, answer.text
    error = answer.json()["error"]
    assert error["code"] == "bot_in_use", error
    assert "one bot is one integration" in error["message"]
    for word in unnamed:
        assert word not in error["message"], error["message"]
    return str(error["message"])


async def test_a_second_integration_of_a_telegram_bot_is_refused_and_the_first_keeps_it(
    oauth: RunningService, telegram_api: tuple[FakeTelegram, str]
) -> None:
    """The probe's case: a second integration took the bot's webhook (201) while the first
    still said `connected`. Keyed by the bot (getMe's id), not by the token's text."""
    fake = telegram_api[0]
    token = new_bot(fake)
    bot_id = int(token.split(":")[0])
    first_ws, other_ws = "ws_tg_" + uuid.uuid4().hex[:6], "ws_tg_" + uuid.uuid4().hex[:6]
    first = await create_in(oauth, "telegram", first_ws, bot_token=token)
    hooked = fake.webhooks[token]["url"]
    assert hooked.endswith(first["id"])

    # Same workspace: the holder is named; another workspace: neither it nor its integration.
    same = refused_for_the_bot(await attempt(oauth, "telegram", first_ws, token), unnamed=())
    assert first["id"] in same
    refused_for_the_bot(
        await attempt(oauth, "telegram", other_ws, token), unnamed=(first_ws, first["id"])
    )
    # A reset token of the same bot (the same id, other text) is the same bot.
    reset = f"{bot_id}:reset-{uuid.uuid4().hex}"
    fake.add_bot(reset, bot_id, f"bot_token_{bot_id}_bot")
    refused_for_the_bot(
        await attempt(oauth, "telegram", other_ws, reset), unnamed=(first_ws, first["id"])
    )
    # Nothing was taken: the webhook is the first's, which is connected and alone.
    assert fake.webhooks[token]["url"] == hooked and reset not in fake.webhooks
    assert (await stored(oauth, first["id"]))["status"] == "connected"
    listed = await oauth.client.get(
        "/api/integrations", params={"workspace_id": other_ws}, headers=admin_headers()
    )
    assert listed.json()["data"] == []

    # Changing another integration's settings to this bot is refused the same way.
    elsewhere = await create_in(oauth, "telegram", other_ws, bot_token=new_bot(fake))
    moved = await oauth.client.patch(
        f"/api/integrations/{elsewhere['id']}",
        json={"settings": {"bot_token": reset}},
        headers=admin_headers(),
    )
    refused_for_the_bot(moved, unnamed=(first_ws, first["id"]))
    assert (await stored(oauth, elsewhere["id"]))["account"] == elsewhere["account"]

    # Deleting the first frees the bot.
    deleted = await oauth.client.delete(f"/api/integrations/{first['id']}", headers=admin_headers())
    assert deleted.status_code == 204, deleted.text
    second = await attempt(oauth, "telegram", other_ws, reset)
    assert second.status_code == 201, second.text
    assert fake.webhooks[reset]["url"].endswith(second.json()["id"])


async def test_two_creates_of_one_telegram_bot_at_once_make_one_integration(
    oauth: RunningService,
    telegram_api: tuple[FakeTelegram, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Held by a unique index, not only by the look before the insert: both creates have
    looked (and found the bot free) before either inserts."""
    fake = telegram_api[0]
    token = new_bot(fake)
    both = asyncio.Event()
    looked: list[str] = []
    look = IntegrationRepository.bot_holder

    async def bot_holder(self: IntegrationRepository, *args: Any, **kwargs: Any) -> Any:
        found = await look(self, *args, **kwargs)
        looked.append(args[0])
        if len(looked) == 2:
            both.set()
        await both.wait()
        return found

    monkeypatch.setattr(IntegrationRepository, "bot_holder", bot_holder)
    answers = await asyncio.gather(
        attempt(oauth, "telegram", "ws_race_" + uuid.uuid4().hex[:6], token),
        attempt(oauth, "telegram", "ws_race_" + uuid.uuid4().hex[:6], token),
    )
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    [made] = [a.json() for a in answers if a.status_code == 201]
    refused_for_the_bot(
        next(a for a in answers if a.status_code == 409), unnamed=(made["workspace_id"],)
    )
    # The loser never pointed the bot's webhook at itself.
    assert fake.webhooks[token]["url"].endswith(made["id"])
    assert len([c for c in fake.calls if c == (token, "setWebhook")]) == 1


async def test_a_second_integration_of_a_discord_bot_is_refused_in_any_workspace(
    oauth: RunningService, providers: dict[str, FakeAuthorizationServer]
) -> None:
    """The probe's case: one bot token in two workspaces brought one server's messages to
    both. Keyed by the bot user (/users/@me), not by the token's text."""
    discord = providers["discord"]
    assert isinstance(discord, FakeDiscord)
    n = next(_ids)
    user_id, app_id = f"14000000000000{n:05d}", f"14100000000000{n:05d}"
    token = f"MTQw{n}.Gbot.one-bot-one-integration-{uuid.uuid4().hex}"
    discord.add_bot(token, user_id, f"bot{n}", app_id)
    first_ws, other_ws = "ws_dc_" + uuid.uuid4().hex[:6], "ws_dc_" + uuid.uuid4().hex[:6]
    first = await create_in(oauth, "discord", first_ws, bot_token=token)
    assert first["account"]["id"] == user_id

    assert first["id"] in refused_for_the_bot(
        await attempt(oauth, "discord", first_ws, token), unnamed=()
    )
    refused_for_the_bot(
        await attempt(oauth, "discord", other_ws, token), unnamed=(first_ws, first["id"])
    )
    reset = f"MTQw{n}.Greset.{uuid.uuid4().hex}"
    discord.add_bot(reset, user_id, f"bot{n}", app_id)
    refused_for_the_bot(
        await attempt(oauth, "discord", other_ws, reset), unnamed=(first_ws, first["id"])
    )
    # A Discord integration without a bot (a public key only) holds no bot.
    keyed = await create_in(oauth, "discord", other_ws, public_key="cd" * 32)
    moved = await oauth.client.patch(
        f"/api/integrations/{keyed['id']}",
        json={"settings": {"bot_token": reset}},
        headers=admin_headers(),
    )
    refused_for_the_bot(moved, unnamed=(first_ws, first["id"]))

    deleted = await oauth.client.delete(f"/api/integrations/{first['id']}", headers=admin_headers())
    assert deleted.status_code == 204, deleted.text
    moved = await oauth.client.patch(
        f"/api/integrations/{keyed['id']}",
        json={"settings": {"bot_token": reset}},
        headers=admin_headers(),
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["account"]["id"] == user_id
