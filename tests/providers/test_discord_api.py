"""The Discord REST client against the fake over loopback: each refusal sorted into the chat
contract's errors, and Discord's rate limits kept from its headers (a bucket known to be
empty refuses before sending, for its channel only; a global 429 holds the whole bot)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import httpx
import pytest

from services.sandbox.discord import (
    ALL,
    CREATE_MESSAGE,
    EDIT_MESSAGE,
    EXECUTE_WEBHOOK,
    GET_CHANNEL,
    GET_CHANNEL_MESSAGES,
    SEND_MESSAGES,
    VIEW_CHANNEL,
    FakeDiscord,
)
from shared.domain.oauth.provider import ProviderUnreachable
from shared.kernel.embedded import free_port
from shared.kernel.http.tls import tls
from shared.kernel.settings import Settings
from shared.providers.chat import PermanentError, RateLimited, TokenRejected
from shared.providers.discord.api import (
    USER_AGENT,
    Buckets,
    DiscordApi,
    DiscordRateLimited,
    RouteKey,
    WebhookGone,
    base_url,
)

_ids = itertools.count(1)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(verify=tls(), timeout=5.0) as http:
        yield http


@pytest.fixture
def api(discord: FakeDiscord, client: httpx.AsyncClient) -> DiscordApi:
    return DiscordApi(client, discord.base_url + "/api/v10")


def bot(fake: FakeDiscord) -> str:
    n = next(_ids)
    token = f"bot-token-{n}.api-test"
    fake.add_bot(token, str(7_000_000_000 + n), f"api-test-{n}", str(7_100_000_000 + n))
    return token


def channel(fake: FakeDiscord, permissions: int = ALL) -> str:
    guild_id, channel_id = fake.snowflake(), fake.snowflake()
    if guild_id not in fake.guilds:
        fake.add_guild(guild_id, f"guild {guild_id}")
    fake.add_channel(channel_id, guild_id, f"chan-{channel_id[-4:]}", permissions=permissions)
    return channel_id


def test_base_url_is_the_setting_else_discords() -> None:
    assert base_url(Settings()) == "https://discord.com/api/v10"
    assert base_url(Settings(discord_api_base="http://127.0.0.1:9/api/v10")) == (
        "http://127.0.0.1:9/api/v10"
    )


async def test_bot_calls_carry_the_bot_token_and_webhook_calls_none(
    discord: FakeDiscord, api: DiscordApi
) -> None:
    token, chan = bot(discord), channel(discord)
    me = await api.me(token)
    app = await api.application(token)
    assert me["id"] == discord.bots[token].user_id and me["bot"] is True
    assert app["id"] == discord.bots[token].application_id != me["id"]
    assert (await api.gateway_bot(token))["url"].startswith("ws://")
    found = await api.channel(token, chan)
    assert found["id"] == chan and found["guild_id"] == discord.channels[chan].guild_id
    roles = await api.guild_roles(token, found["guild_id"])
    assert [r["id"] for r in roles] == [found["guild_id"]]  # @everyone's id is the guild's
    member = await api.guild_member(token, found["guild_id"], me["id"])
    assert member["user"]["id"] == me["id"]
    hook = await api.create_webhook(token, chan)
    assert hook["application_id"] == app["id"] and hook["name"] == "hookhub"
    assert [h["id"] for h in await api.channel_webhooks(token, chan)] == [hook["id"]]
    made = await api.execute_webhook(
        hook["id"], hook["token"], {"content": "hi", "username": "Ada"}, wait=True
    )
    assert made is not None and made["webhook_id"] == hook["id"] and made["content"] == "hi"
    assert await api.execute_webhook(hook["id"], hook["token"], {"content": "no wait"}, False) is (
        None
    )
    by_route = {r.route: r for r in discord.requests if r.path.startswith(f"/channels/{chan}")}
    assert by_route[GET_CHANNEL].headers["authorization"] == f"Bot {token}"
    assert by_route[GET_CHANNEL].headers["user-agent"] == USER_AGENT
    executed = [
        r for r in discord.sent(EXECUTE_WEBHOOK) if r.path.startswith(f"/webhooks/{hook['id']}")
    ]
    assert [r.query.get("wait") for r in executed] == ["true", "false"]
    assert all("authorization" not in r.headers for r in executed)


async def test_messages_as_the_bot_and_one_page_of_history(
    discord: FakeDiscord, api: DiscordApi
) -> None:
    token, chan = bot(discord), channel(discord)
    sent = [await api.create_message(token, chan, {"content": f"m{i}"}) for i in range(5)]
    ids = [m["id"] for m in sent]
    edited = await api.edit_message(token, chan, ids[0], {"content": "m0!"})
    assert edited["content"] == "m0!" and edited["edited_timestamp"]
    # Newest first, whatever the anchor; the caller pages.
    assert [m["id"] for m in await api.messages(token, chan, after=ids[0], limit=2)] == [
        ids[2],
        ids[1],
    ]
    assert [m["id"] for m in await api.messages(token, chan, before=ids[2])] == [ids[1], ids[0]]
    assert [m["id"] for m in await api.messages(token, chan, limit=1)] == [ids[4]]
    assert discord.sent(GET_CHANNEL_MESSAGES)[-1].query == {"limit": "1"}
    with pytest.raises(ValueError, match="one of after and before"):
        await api.messages(token, chan, after=ids[0], before=ids[4])
    with pytest.raises(ValueError, match="1 to 100"):
        await api.messages(token, chan, limit=101)
    assert await api.delete_message(token, chan, ids[4]) is True
    assert await api.delete_message(token, chan, ids[4]) is False  # already gone: no failure


async def test_an_unknown_token_is_rejected(discord: FakeDiscord, api: DiscordApi) -> None:
    chan = channel(discord)
    with pytest.raises(TokenRejected) as caught:
        await api.create_message("revoked-token", chan, {"content": "hi"})
    assert (caught.value.error, caught.value.scope) == ("unauthorized", "integration")
    with pytest.raises(TokenRejected):
        await api.me("bad\ntoken")  # cannot even be sent


@pytest.mark.parametrize(
    ("permissions", "call", "error"),
    [
        (0, "channel", "missing_access"),  # Discord's answer without View Channel
        (VIEW_CHANNEL, "post", "missing_permissions"),
        (VIEW_CHANNEL | SEND_MESSAGES, "webhook", "missing_permissions"),
    ],
)
async def test_missing_access_and_permissions_break_the_channel(
    discord: FakeDiscord, api: DiscordApi, permissions: int, call: str, error: str
) -> None:
    token, chan = bot(discord), channel(discord, permissions)
    calls = {
        "channel": lambda: api.channel(token, chan),
        "post": lambda: api.create_message(token, chan, {"content": "hi"}),
        "webhook": lambda: api.create_webhook(token, chan),
    }
    with pytest.raises(PermanentError) as caught:
        await calls[call]()
    assert (caught.value.error, caught.value.scope) == (error, "channel")
    assert not isinstance(caught.value, TokenRejected)


async def test_unknown_things_are_scoped(discord: FakeDiscord, api: DiscordApi) -> None:
    token, chan = bot(discord), channel(discord)
    for call, error, scope in [
        (api.channel(token, "1234"), "unknown_channel", "channel"),
        (api.guild_roles(token, "1234"), "unknown_guild", "channel"),
        (api.edit_message(token, chan, "1234", {"content": "x"}), "unknown_message", "message"),
        # 50035 Invalid Form Body: 2,001 characters; an id that is no snowflake.
        (api.create_message(token, chan, {"content": "x" * 2001}), "invalid_form_body", "message"),
        (api.create_message(token, chan, {"content": "  "}), "empty_message", "message"),
    ]:
        with pytest.raises(PermanentError) as caught:
            await call
        assert (caught.value.error, caught.value.scope) == (error, scope), error


async def test_editing_someone_elses_message_is_refused_for_that_message(
    discord: FakeDiscord, api: DiscordApi
) -> None:
    token, chan = bot(discord), channel(discord)
    discord.add_user("4242", "ada")
    theirs = discord.post_silently(chan, "4242", "mine")
    with pytest.raises(PermanentError) as caught:
        await api.edit_message(token, chan, theirs["id"], {"content": "x"})
    assert (caught.value.error, caught.value.scope) == ("not_author", "message")


async def test_a_webhook_that_is_gone_says_so(discord: FakeDiscord, api: DiscordApi) -> None:
    token, chan = bot(discord), channel(discord)
    hook = await api.create_webhook(token, chan)
    made = await api.execute_webhook(hook["id"], hook["token"], {"content": "one"})
    assert made is not None
    # The webhook's own messages only: another message is unknown to it.
    other = await api.create_message(token, chan, {"content": "as the bot"})
    with pytest.raises(PermanentError) as not_its:
        await api.edit_webhook_message(hook["id"], hook["token"], other["id"], {"content": "x"})
    assert not_its.value.error == "unknown_message"
    assert await api.delete_webhook_message(hook["id"], hook["token"], other["id"]) is False
    with pytest.raises(WebhookGone) as wrong_token:
        await api.execute_webhook(hook["id"], "not-its-token", {"content": "x"})
    assert (wrong_token.value.error, wrong_token.value.scope) == (
        "invalid_webhook_token",
        "channel",
    )
    del discord.webhooks[hook["id"]]
    for call in (
        api.execute_webhook(hook["id"], hook["token"], {"content": "two"}),
        api.edit_webhook_message(hook["id"], hook["token"], made["id"], {"content": "x"}),
        api.delete_webhook_message(hook["id"], hook["token"], made["id"]),
    ):
        with pytest.raises(WebhookGone) as gone:
            await call
        assert (gone.value.error, gone.value.scope) == ("unknown_webhook", "channel")


async def test_too_many_webhooks_breaks_the_channel(discord: FakeDiscord, api: DiscordApi) -> None:
    token, chan = bot(discord), channel(discord)
    for n in range(15):
        discord.add_webhook(chan, f"someone else's {n}")
    with pytest.raises(PermanentError) as caught:
        await api.create_webhook(token, chan)
    assert (caught.value.error, caught.value.scope) == ("max_webhooks", "channel")


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_unreachable(discord: FakeDiscord, api: DiscordApi, status: int) -> None:
    token, chan = bot(discord), channel(discord)
    discord.fail_next(status=status, route=GET_CHANNEL)
    with pytest.raises(ProviderUnreachable, match=str(status)):
        await api.channel(token, chan)
    assert (await api.channel(token, chan))["id"] == chan


async def test_no_answer_and_a_timeout_are_unreachable(
    discord: FakeDiscord, client: httpx.AsyncClient
) -> None:
    nobody = DiscordApi(client, f"http://127.0.0.1:{free_port()}/api/v10")
    with pytest.raises(ProviderUnreachable, match="no answer"):
        await nobody.me("token")
    async with httpx.AsyncClient(verify=tls(), timeout=httpx.Timeout(1e-6)) as impatient:
        with pytest.raises(ProviderUnreachable):
            await DiscordApi(impatient, discord.base_url + "/api/v10").me(bot(discord))


async def test_a_wrong_base_url_is_an_integration_error(
    discord: FakeDiscord, client: httpx.AsyncClient
) -> None:
    # The fake's root answers 404 without Discord's JSON: not Discord speaking.
    wrong = DiscordApi(client, discord.base_url + "/not-the-api")
    with pytest.raises(PermanentError) as caught:
        await wrong.me(bot(discord))
    assert (caught.value.error, caught.value.scope) == ("http_404", "integration")


# -- rate limits ------------------------------------------------------------------------------


async def test_an_exhausted_bucket_refuses_before_sending_for_its_channel_only(
    discord: FakeDiscord, api: DiscordApi
) -> None:
    token, busy, other = bot(discord), channel(discord), channel(discord)
    discord.set_rate_limit(CREATE_MESSAGE, 2, 5.0, major=busy)
    await api.create_message(token, busy, {"content": "1"})
    await api.create_message(token, busy, {"content": "2"})  # answered Remaining: 0
    sent, answered = len(discord.sent(CREATE_MESSAGE)), discord.rate_limited
    with pytest.raises(RateLimited) as caught:
        await api.create_message(token, busy, {"content": "3"})
    assert isinstance(caught.value, DiscordRateLimited) and caught.value.sent is False
    assert 4 < caught.value.retry_after <= 5.0
    assert caught.value.bucket is not None and not caught.value.is_global
    assert len(discord.sent(CREATE_MESSAGE)) == sent  # never sent
    # The same bucket on another channel, and another route on the busy one, go through.
    await api.create_message(token, other, {"content": "elsewhere"})
    await api.channel(token, busy)
    assert discord.rate_limited == answered and api.buckets.answered_429 == 0
    assert api.buckets.held == 1


async def test_a_429_is_rate_limited_with_its_retry_after_and_held_for_the_channel(
    discord: FakeDiscord, api: DiscordApi
) -> None:
    token, busy, other = bot(discord), channel(discord), channel(discord)
    await api.create_message(token, busy, {"content": "learns the bucket"})
    discord.rate_limit_next(route=CREATE_MESSAGE, major=busy, retry_after=30.5)
    with pytest.raises(DiscordRateLimited) as caught:
        await api.create_message(token, busy, {"content": "x"})
    assert caught.value.retry_after == 30.5 and caught.value.sent is True
    assert not caught.value.is_global and caught.value.headers == {"Retry-After": "31"}
    assert api.buckets.answered_429 == 1 and api.buckets.invalid == 1
    sent = len(discord.sent(CREATE_MESSAGE))
    with pytest.raises(DiscordRateLimited) as held:
        await api.create_message(token, busy, {"content": "x"})
    assert held.value.sent is False and 29 < held.value.retry_after <= 30.5
    assert len(discord.sent(CREATE_MESSAGE)) == sent
    await api.create_message(token, other, {"content": "flows"})


async def test_a_global_429_holds_every_request_of_that_bot(
    discord: FakeDiscord, api: DiscordApi
) -> None:
    token, chan, other = bot(discord), channel(discord), channel(discord)
    discord.rate_limit_next(route=CREATE_MESSAGE, retry_after=20.0, is_global=True)
    with pytest.raises(DiscordRateLimited) as caught:
        await api.create_message(token, chan, {"content": "x"})
    assert caught.value.is_global and caught.value.retry_after == 20.0
    assert "global" in caught.value.message
    before = len(discord.requests)
    for call in (api.channel(token, other), api.me(token)):
        with pytest.raises(DiscordRateLimited) as held:
            await call
        assert held.value.is_global and held.value.sent is False
    assert len(discord.requests) == before
    assert api.buckets.global_429 == 1
    await api.me(bot(discord))  # another bot is not held


async def test_buckets_learn_which_routes_share_a_bucket() -> None:
    # Two routes that Discord says share one bucket share what is left of it.
    now = [100.0]
    buckets = Buckets(clock=lambda: now[0])
    edit = RouteKey("bot", "PATCH /channels/{channel_id}/messages/{message_id}", "1")
    delete = RouteKey("bot", "DELETE /channels/{channel_id}/messages/{message_id}", "1")
    shared = httpx.Headers(
        {
            "X-RateLimit-Bucket": "abcd1234",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset-After": "1.5",
        }
    )
    buckets.before(delete)
    buckets.after(delete, 204, httpx.Headers({"X-RateLimit-Bucket": "abcd1234"}), None)
    buckets.before(edit)
    assert buckets.after(edit, 200, shared, {}) is None
    with pytest.raises(DiscordRateLimited) as caught:
        buckets.before(delete)
    assert caught.value.retry_after == 1.5 and caught.value.bucket == "abcd1234"
    buckets.before(RouteKey("bot", edit.route, "2"))  # another channel
    now[0] += 1.5
    buckets.before(delete)


async def test_concurrent_requests_do_not_overrun_what_is_left(
    discord: FakeDiscord, api: DiscordApi
) -> None:
    token, chan = bot(discord), channel(discord)
    discord.set_rate_limit(EDIT_MESSAGE, 3, 5.0, major=chan)
    message = await api.create_message(token, chan, {"content": "x"})
    await api.edit_message(token, chan, message["id"], {"content": "0"})  # 2 left
    answered = discord.rate_limited
    results = await asyncio.gather(
        *(api.edit_message(token, chan, message["id"], {"content": str(i)}) for i in range(4)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, DiscordRateLimited) for r in results) == 2
    assert discord.rate_limited == answered  # no 429: the client held what the bucket had not


def test_a_429_without_a_body_field_waits_what_the_headers_say() -> None:
    now = [0.0]
    buckets = Buckets(clock=lambda: now[0])
    key = RouteKey("bot", "POST /channels/{channel_id}/messages", "1")
    # A shared resource's limit: Retry-After only, and not one of our invalid requests.
    shared = httpx.Headers({"Retry-After": "7", "X-RateLimit-Scope": "shared"})
    limited = buckets.after(key, 429, shared, {"message": "The resource is being rate limited."})
    assert limited is not None and limited.retry_after == 7.0 and not limited.is_global
    assert buckets.invalid == 0 and buckets.answered_429 == 1
    with pytest.raises(DiscordRateLimited):
        buckets.before(key)
    # No JSON at all (Cloudflare's own refusal): every request of the bot waits.
    limited = buckets.after(key, 429, httpx.Headers({"Retry-After": "3"}), None)
    assert limited is not None and limited.is_global and limited.retry_after == 3.0
    with pytest.raises(DiscordRateLimited) as held:
        buckets.before(RouteKey("bot", "GET /users/@me", ""))
    assert held.value.is_global and buckets.invalid == 1
    now[0] = 7.0
    buckets.before(key)
