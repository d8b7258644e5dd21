"""The bot's access token and the Bot Connector calls against the Teams stand-in over
loopback: one token for many calls and a new one after its expiry (a clock the test moves),
send / reply / edit / delete, each refusal sorted into the chat contract's errors, 429 with
its Retry-After, and the serviceUrl held to the egress rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from services.sandbox.teams import DESIGN, GENERAL, Channel, FakeTeams
from shared.domain.oauth.provider import ProviderUnreachable
from shared.kernel.egress import EgressPolicy
from shared.kernel.http.tls import tls
from shared.providers.chat import (
    Author,
    OutboundPost,
    PermanentError,
    RateLimited,
    TokenRejected,
)
from shared.providers.teams.api import REFRESH_MARGIN, AppTokens, TeamsApi, refusal
from shared.providers.teams.messages import TeamsChat

LOOPBACK = EgressPolicy.from_setting("127.0.0.0/8,::1/128")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(verify=tls(), timeout=5.0) as http:
        yield http


class Clock:
    def __init__(self) -> None:
        self.now = 50_000.0

    def __call__(self) -> float:
        return self.now


def tokens_for(teams: FakeTeams, client: httpx.AsyncClient, clock: Clock, **kw: str) -> AppTokens:
    bot = teams.add_bot()
    return AppTokens(
        client,
        bot.app_id,
        kw.get("password", bot.password),
        tenant=kw.get("tenant", bot.tenant),
        login_base=teams.base_url,
        clock=clock,
    )


def chat(teams: FakeTeams, client: httpx.AsyncClient, tokens: AppTokens) -> TeamsChat:
    app_id = tokens.app_id
    return TeamsChat(TeamsApi(client, LOOPBACK), app_id, service_url=teams.service_url)


def post(text: str, thread: str | None = None) -> OutboundPost:
    return OutboundPost(text=text, author=Author("Ada"), thread_external_id=thread)


async def test_one_token_serves_many_sends_and_a_new_one_comes_after_expiry(
    teams: FakeTeams, client: httpx.AsyncClient
) -> None:
    clock = Clock()
    tokens = tokens_for(teams, client, clock)
    teams_chat = chat(teams, client, tokens)
    before = len(teams.token_requests)
    for n in range(5):
        await teams_chat.post(await tokens.token(), GENERAL, post(f"hello {n}"))
    assert tokens.requests == 1 and len(teams.token_requests) == before + 1
    sent = teams.token_requests[-1]
    assert sent["grant_type"] == "client_credentials"
    assert sent["scope"] == "https://api.botframework.com/.default"
    assert sent["client_id"] == tokens.app_id
    first = await tokens.token()
    # Just before the refresh margin the token is still used; at it, a new one is asked.
    clock.now += teams.token_lifetime - REFRESH_MARGIN - 1
    assert await tokens.token() == first and tokens.requests == 1
    clock.now += 1
    second = await tokens.token()
    assert second != first and tokens.requests == 2
    await teams_chat.post(second, GENERAL, post("after the refresh"))


async def test_wrong_credentials_are_token_rejected(
    teams: FakeTeams, client: httpx.AsyncClient
) -> None:
    tokens = tokens_for(teams, client, Clock(), password="not-the-secret")
    with pytest.raises(TokenRejected) as caught:
        await tokens.token()
    assert caught.value.error == "invalid_client" and "AADSTS7000215" in caught.value.message
    assert "Trace ID" not in caught.value.message  # the first line only
    other_tenant = tokens_for(teams, client, Clock(), tenant="3b8f1f2e-0000-4000-8000-000000000001")
    with pytest.raises(TokenRejected) as wrong_tenant:
        await other_tenant.token()
    assert wrong_tenant.value.error == "unauthorized_client"


async def test_post_reply_edit_delete(teams: FakeTeams, client: httpx.AsyncClient) -> None:
    tokens = tokens_for(teams, client, Clock())
    teams_chat = chat(teams, client, tokens)
    token = await tokens.token()
    root = await teams_chat.post(token, DESIGN, post("the root"))
    stored = teams.message(DESIGN, root.external_message_id)
    assert stored is not None and stored["textFormat"] == "xml"
    assert stored["text"] == "<b>Ada</b><br>the root"
    assert root.external_thread_id is None

    reply = await teams_chat.post(token, DESIGN, post("a reply", root.external_message_id))
    assert reply.external_thread_id == root.external_message_id
    method, path, _ = teams.calls[-1]
    # The reply went to the thread's conversation: the channel's id with ;messageid=<root>.
    assert method == "POST" and f";messageid={root.external_message_id}/activities" in path
    replied = teams.message(DESIGN, reply.external_message_id)
    assert replied is not None and replied["replyToId"] == root.external_message_id

    await teams_chat.edit(token, DESIGN, reply.external_message_id, post("edited"))
    assert teams.calls[-1][0] == "PUT"
    edited = teams.message(DESIGN, reply.external_message_id)
    assert edited is not None and edited["text"] == "<b>Ada</b><br>edited"

    await teams_chat.delete(token, DESIGN, reply.external_message_id)
    assert teams.message(DESIGN, reply.external_message_id) is None
    # Deleting it again is no failure; editing it is the message's own problem.
    await teams_chat.delete(token, DESIGN, reply.external_message_id)
    with pytest.raises(PermanentError) as gone:
        await teams_chat.edit(token, DESIGN, reply.external_message_id, post("again"))
    assert (gone.value.error, gone.value.scope) == ("message_not_found", "message")


async def test_429_is_rate_limited_with_its_retry_after(
    teams: FakeTeams, client: httpx.AsyncClient
) -> None:
    tokens = tokens_for(teams, client, Clock())
    teams_chat = chat(teams, client, tokens)
    token = await tokens.token()
    teams.throttle(retry_after=17)
    with pytest.raises(RateLimited) as caught:
        await teams_chat.post(token, GENERAL, post("too fast"))
    assert caught.value.retry_after == 17.0 and "Throttled" in caught.value.message
    await teams_chat.post(token, GENERAL, post("in time"))  # the limit was for one call


async def test_refusals_are_sorted(teams: FakeTeams, client: httpx.AsyncClient) -> None:
    tokens = tokens_for(teams, client, Clock())
    teams_chat = chat(teams, client, tokens)
    token = await tokens.token()
    with pytest.raises(TokenRejected):
        await teams_chat.post("not-a-token-it-issued", GENERAL, post("hi"))
    with pytest.raises(PermanentError) as missing:
        await teams_chat.post(token, "19:nothere@thread.tacv2", post("hi"))
    assert (missing.value.error, missing.value.scope) == ("conversation_not_found", "channel")
    extra = "19:removed0000000000000000000000000@thread.tacv2"
    teams.channels[extra] = Channel(extra, "Removed")
    teams.remove_bot(extra)
    with pytest.raises(PermanentError) as removed:
        await teams_chat.post(token, extra, post("hi"))
    assert (removed.value.error, removed.value.scope) == ("bot_not_member", "channel")


async def test_a_service_url_the_egress_rules_refuse_is_never_called(
    teams: FakeTeams, client: httpx.AsyncClient
) -> None:
    tokens = tokens_for(teams, client, Clock())
    token = await tokens.token()
    strict = TeamsChat(
        TeamsApi(client, EgressPolicy()), tokens.app_id, service_url=teams.service_url
    )
    calls = len(teams.calls)
    with pytest.raises(PermanentError) as refused:
        await strict.post(token, GENERAL, post("hi"))
    assert refused.value.error == "service_url_refused" and "non-public" in refused.value.message
    for url in (
        "http://169.254.169.254/",
        "https://metadata.google.internal/",
        "file:///etc/x",
        "http://smba.trafficmanager.net/teams/",  # not https, not an allow-listed address
    ):
        with pytest.raises(PermanentError):
            await TeamsApi(client, LOOPBACK).send(token, url, GENERAL, {"type": "message"})
    assert len(teams.calls) == calls  # the token never left


@pytest.mark.parametrize(
    ("status", "code", "kind", "error", "scope"),
    [
        # "Status code responses", Teams platform docs (build-conversational-capability).
        (403, "ConversationBlockedByUser", PermanentError, "bot_blocked", "channel"),
        (403, "BotDisabledByAdmin", PermanentError, "bot_disabled", "channel"),
        (401, "BotNotRegistered", PermanentError, "bot_not_registered", "integration"),
        (404, "ConversationNotFound", PermanentError, "conversation_not_found", "channel"),
        (413, "MessageSizeTooBig", PermanentError, "msg_too_long", "message"),
        (400, "BadArgument", PermanentError, "BadArgument", "message"),
    ],
)
def test_documented_status_codes_are_sorted(
    status: int, code: str, kind: type[Exception], error: str, scope: str
) -> None:
    answer = httpx.Response(status, json={"error": {"code": code, "message": "said"}})
    found = refusal("Send to Conversation", answer)
    assert type(found) is kind
    assert isinstance(found, PermanentError) and (found.error, found.scope) == (error, scope)


def test_412_and_5xx_are_passing_failures() -> None:
    # "Optimize your bot with rate limiting": retry 412, 502 and 504 as well as 429.
    for status in (412, 502, 504):
        answer = httpx.Response(status, json={"error": {"code": "PreconditionFailed"}})
        assert isinstance(refusal("Update Activity", answer), ProviderUnreachable)
    dated = httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    limited = refusal("Send to Conversation", dated)
    assert isinstance(limited, RateLimited) and limited.retry_after == 0.0


async def test_callers_at_once_share_one_token_request(
    teams: FakeTeams, client: httpx.AsyncClient
) -> None:
    tokens = tokens_for(teams, client, Clock())
    got = await asyncio.gather(*(tokens.token() for _ in range(10)))
    assert len(set(got)) == 1 and tokens.requests == 1
    tokens.forget()  # the Connector said 401 with it: the next caller asks again
    assert await tokens.token() != got[0] and tokens.requests == 2
