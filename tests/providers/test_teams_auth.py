"""The Bot Framework's JWT on each activity, checked against the stand-in's OpenID metadata
and keys over loopback: a valid one passes, and each requirement of "Authentication with the
Bot Connector API" (and of the SDK's channel_validation.py) refuses on its own."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from services.sandbox.teams import GENERAL, FakeTeams, new_key
from shared.kernel.errors import Unavailable
from shared.kernel.http.tls import tls
from shared.kernel.settings import Settings
from shared.providers.base import InboundRequest, SignatureInvalid
from shared.providers.teams.auth import BotFrameworkAuth, BotFrameworkKeys
from shared.providers.teams.webhooks import TeamsWebhooks

APP_ID = "8b0b9c3e-6a4d-4f4e-9a3b-2c1d0e9f8a7b"
OTHER_KEY = new_key()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(verify=tls(), timeout=5.0) as http:
        yield http


@pytest.fixture
def keys(teams: FakeTeams, client: httpx.AsyncClient) -> BotFrameworkKeys:
    return BotFrameworkKeys(client, teams.metadata_url)


def activity(teams: FakeTeams, **changes: Any) -> dict[str, Any]:
    bot = teams.bots.get(APP_ID) or teams.add_bot(APP_ID)
    made = teams.activity(bot, "message", GENERAL, "ada", "1700000000001", text="hello")
    made.update(changes)
    return made


def test_the_stand_ins_ids_are_the_moment_in_ms_so_a_restart_repeats_none() -> None:
    """Teams' message ids are the moment in ms: a stand-in started again (a restarted `make
    sandbox`) gives none it gave before, which the gateway would take for redeliveries of
    what it had (and publish nothing of)."""
    before = int(time.time() * 1000)
    assert next(FakeTeams()._ids) >= before


async def test_a_valid_activity_is_accepted(teams: FakeTeams, keys: BotFrameworkKeys) -> None:
    made = activity(teams)
    token = teams.token_for(APP_ID)
    claims = await BotFrameworkAuth(keys).verify(f"Bearer {token}", made, APP_ID, datetime.now(UTC))
    assert claims["aud"] == APP_ID and claims["serviceurl"] == teams.service_url


async def refused(
    teams: FakeTeams, keys: BotFrameworkKeys, authorization: str | None, **kw: Any
) -> str:
    made = activity(teams, **kw.pop("activity", {}))
    with pytest.raises(SignatureInvalid) as caught:
        await BotFrameworkAuth(keys).verify(
            authorization, made, kw.pop("app_id", APP_ID), kw.pop("now", datetime.now(UTC))
        )
    return caught.value.message


async def test_a_token_signed_by_another_key_is_refused(
    teams: FakeTeams, keys: BotFrameworkKeys
) -> None:
    forged = teams.token_for(APP_ID, key=OTHER_KEY)  # the stand-in's kid, another key
    assert "signature does not verify" in await refused(teams, keys, f"Bearer {forged}")
    unknown = teams.token_for(APP_ID, key=OTHER_KEY, kid="someone-elses-key")
    assert "key the Bot Framework" in await refused(teams, keys, f"Bearer {unknown}")


async def test_another_audience_is_refused(teams: FakeTeams, keys: BotFrameworkKeys) -> None:
    token = teams.token_for("00000000-0000-4000-8000-000000000000")
    assert "not for this bot" in await refused(teams, keys, f"Bearer {token}")


async def test_another_issuer_is_refused(teams: FakeTeams, keys: BotFrameworkKeys) -> None:
    # The emulator's issuer: a token the SDK's ChannelValidation refuses too.
    token = teams.token_for(
        APP_ID, iss="https://sts.windows.net/d6d49420-f39b-4df7-a1dc-d59a935871db/"
    )
    assert "issuer" in await refused(teams, keys, f"Bearer {token}")


async def test_an_expired_token_is_refused_past_the_clock_skew(
    teams: FakeTeams, keys: BotFrameworkKeys
) -> None:
    now = datetime.now(UTC)
    token = teams.token_for(APP_ID, now=now.timestamp() - 3600, lifetime=600)
    assert "expired" in await refused(teams, keys, f"Bearer {token}", now=now)
    # Within the five minutes of skew, the same token is still good.
    made = activity(teams)
    expiry = now - timedelta(seconds=3000)
    await BotFrameworkAuth(keys).verify(
        f"Bearer {token}", made, APP_ID, expiry + timedelta(seconds=299)
    )
    early = teams.token_for(APP_ID, now=now.timestamp() + 3600)
    assert "not valid yet" in await refused(teams, keys, f"Bearer {early}", now=now)


async def test_a_token_without_exp_is_refused(teams: FakeTeams, keys: BotFrameworkKeys) -> None:
    token = teams.token_for(APP_ID, exp=None)
    assert "lacks a claim" in await refused(teams, keys, f"Bearer {token}")


async def test_another_service_url_is_refused(teams: FakeTeams, keys: BotFrameworkKeys) -> None:
    token = teams.token_for(APP_ID)  # signed for the stand-in's serviceUrl
    message = await refused(
        teams, keys, f"Bearer {token}", activity={"serviceUrl": "https://evil.example/teams/"}
    )
    assert "serviceurl is not the activity's serviceUrl" in message
    missing = teams.token_for(APP_ID, serviceurl=None)
    assert "serviceurl" in await refused(teams, keys, f"Bearer {missing}")


async def test_a_channel_the_key_does_not_endorse_is_refused(
    teams: FakeTeams, keys: BotFrameworkKeys
) -> None:
    token = teams.token_for(APP_ID)
    message = await refused(teams, keys, f"Bearer {token}", activity={"channelId": "webchat"})
    assert "does not endorse" in message


async def test_a_missing_or_malformed_header_is_refused(
    teams: FakeTeams, keys: BotFrameworkKeys
) -> None:
    assert "missing" in await refused(teams, keys, None)
    assert "missing" in await refused(teams, keys, "")
    token = teams.token_for(APP_ID)
    assert "not `Bearer" in await refused(teams, keys, f"Basic {token}")
    assert "not a JWT" in await refused(teams, keys, "Bearer not.a.jwt")


async def test_keys_are_fetched_once_and_again_for_an_unknown_kid_later(
    teams: FakeTeams, client: httpx.AsyncClient
) -> None:
    now = [1000.0]
    keys = BotFrameworkKeys(client, teams.metadata_url, clock=lambda: now[0])
    auth = BotFrameworkAuth(keys)
    made = activity(teams)
    for _ in range(3):
        await auth.verify(f"Bearer {teams.token_for(APP_ID)}", made, APP_ID, datetime.now(UTC))
    assert keys.fetches == 1
    # A kid it does not hold, right after a fetch: refused without fetching again.
    stray = teams.token_for(APP_ID, kid="rotated-key")
    with pytest.raises(SignatureInvalid):
        await auth.verify(f"Bearer {stray}", made, APP_ID, datetime.now(UTC))
    assert keys.fetches == 1
    # Microsoft rotates its keys: a later token with the new kid fetches them again.
    old_kid, old_key = teams.kid, teams.key
    teams.kid, teams.key = "rotated-key", OTHER_KEY
    try:
        now[0] += 600
        rotated = teams.token_for(APP_ID)
        await auth.verify(f"Bearer {rotated}", made, APP_ID, datetime.now(UTC))
        assert keys.fetches == 2
    finally:
        teams.kid, teams.key = old_kid, old_key
    now[0] += 24 * 3600  # a day on, the keys are fetched again whatever the kid
    await auth.verify(f"Bearer {teams.token_for(APP_ID)}", made, APP_ID, datetime.now(UTC))
    assert keys.fetches == 3


async def test_the_webhooks_verify_with_prepared_keys_and_parse(
    teams: FakeTeams, keys: BotFrameworkKeys
) -> None:
    webhooks = TeamsWebhooks(keys)
    made = activity(teams)
    import orjson

    request = InboundRequest(
        headers={"authorization": f"Bearer {teams.token_for(APP_ID)}"},
        body=orjson.dumps(made),
        received_at=datetime.now(UTC),
        config={"app_id": APP_ID},
    )
    with pytest.raises(SignatureInvalid):  # no key fetched yet: refused, never accepted
        webhooks.verify(request, {}, datetime.now(UTC))
    await webhooks.prepare(request)
    webhooks.verify(request, {}, datetime.now(UTC))
    with pytest.raises(SignatureInvalid):
        webhooks.verify(
            request, {"app_id": "5c1f3f0e-0000-4000-8000-000000000000"}, datetime.now(UTC)
        )
    parsed = webhooks.parse(request)
    assert parsed.event_type == "message"
    assert parsed.delivery_id == "message:1700000000001"
    assert parsed.account_id == APP_ID
    assert parsed.reply.status == 200 and parsed.reply.body is None


async def test_keys_that_cannot_be_fetched_refuse_with_the_reason(
    teams: FakeTeams, client: httpx.AsyncClient
) -> None:
    keys = BotFrameworkKeys(client, f"{teams.base_url}/v1/.well-known/nothing-here")
    message = await refused(teams, keys, f"Bearer {teams.token_for(APP_ID)}")
    assert (
        message == "cannot check the bearer token: the Bot Framework OpenID metadata answered 404"
    )


async def test_webhooks_whose_keys_cannot_be_fetched_answer_503_not_401(
    teams: FakeTeams, client: httpx.AsyncClient
) -> None:
    """Our outage, not a forged request: the gateway answers 503, so the Bot Framework
    sends the activity again. Keys are the ones `start` points at (a Settings field)."""
    webhooks = TeamsWebhooks()
    request = InboundRequest(
        headers={"authorization": f"Bearer {teams.token_for(APP_ID)}"},
        body=orjson.dumps(activity(teams)),
        received_at=datetime.now(UTC),
        config={"app_id": APP_ID},
    )
    with pytest.raises(Unavailable):  # not started: no client to fetch with
        await webhooks.prepare(request)
    webhooks.start(
        Settings(teams_openid_metadata_url=f"{teams.base_url}/v1/.well-known/nothing-here"),
        client,
    )
    with pytest.raises(Unavailable, match="OpenID metadata answered 404"):
        await webhooks.prepare(request)
    webhooks.start(Settings(teams_openid_metadata_url=teams.metadata_url), client)
    await webhooks.prepare(request)
    webhooks.verify(request, {}, datetime.now(UTC))
