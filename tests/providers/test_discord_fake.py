"""The fake Discord pinned against Discord's documented wire format: REST errors and their
codes, permissions as a client computes them, history order, webhooks, rate-limit headers and
429 bodies; the Gateway's Hello, Identify → READY, dispatches, Resume and close codes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from services.sandbox.discord import (
    ALL,
    CREATE_MESSAGE,
    EXECUTE_WEBHOOK,
    GUILD_MESSAGES,
    GUILDS,
    MANAGE_WEBHOOKS,
    MESSAGE_CONTENT,
    SEND_MESSAGES,
    VIEW_CHANNEL,
    FakeDiscord,
)
from services.sandbox.oauth_server import REDIRECT_URI
from shared.kernel.http.tls import tls
from shared.providers.base import InboundRequest, SignatureInvalid
from shared.providers.discord.webhooks import WEBHOOKS
from tests.support import serve

TOKEN = "MTAwMDAwMDAwMDAwMDAwMDAx.fake.bot-token"
BOT_ID = "1000000000000000001"
APP_ID = "1000000000000000002"
GUILD = "1100000000000000001"
CHANNEL = "1200000000000000001"
OTHER_CHANNEL = "1200000000000000002"
ADA = "1300000000000000001"
INTENTS = GUILDS | GUILD_MESSAGES | MESSAGE_CONTENT


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    discord = FakeDiscord(heartbeat_interval_ms=1000)
    discord.add_bot(TOKEN, BOT_ID, "hookhub", APP_ID)
    discord.add_guild(GUILD, "Acme")
    discord.add_channel(CHANNEL, GUILD, "general")
    discord.add_channel(OTHER_CHANNEL, GUILD, "random")
    discord.add_user(ADA, "ada", global_name="Ada Lovelace", avatar="a1b2")
    async with serve(discord.app(), probe="/healthz") as running:
        discord.base_url = running.base_url
        yield discord


@pytest.fixture
async def api(fake: FakeDiscord) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        verify=tls(), base_url=fake.base_url + "/api/v10", headers={"Authorization": f"Bot {TOKEN}"}
    ) as client:
        yield client


def error(answer: httpx.Response) -> tuple[int, int, str]:
    body = answer.json()
    return answer.status_code, body["code"], body["message"]


# -- REST ------------------------------------------------------------------------------------


async def test_a_missing_or_wrong_bot_token_is_a_401(fake: FakeDiscord) -> None:
    async with httpx.AsyncClient(verify=tls(), base_url=fake.base_url + "/api/v10") as anonymous:
        assert error(await anonymous.get("/users/@me")) == (401, 0, "401: Unauthorized")
        wrong = {"Authorization": "Bot not-the-token"}
        assert error(await anonymous.get("/users/@me", headers=wrong))[0] == 401
        bearer = {"Authorization": f"Bearer {TOKEN}"}  # a bot token goes with the Bot scheme
        assert error(await anonymous.get("/users/@me", headers=bearer))[0] == 401
        me = await anonymous.get("/users/@me", headers={"Authorization": f"Bot {TOKEN}"})
    assert me.status_code == 200
    assert me.json()["id"] == BOT_ID and me.json()["bot"] is True


async def test_permissions_are_encoded_as_discord_encodes_them(
    fake: FakeDiscord, api: httpx.AsyncClient
) -> None:
    fake.add_channel("1200000000000000009", GUILD, "read-only", permissions=VIEW_CHANNEL)
    channel = (await api.get("/channels/1200000000000000009")).json()
    assert channel["guild_id"] == GUILD and channel["type"] == 0
    assert channel["permission_overwrites"] == [
        {"id": BOT_ID, "type": 1, "allow": str(VIEW_CHANNEL), "deny": "0"}
    ]
    roles = (await api.get(f"/guilds/{GUILD}/roles")).json()
    assert [(r["id"], r["name"], r["permissions"]) for r in roles] == [(GUILD, "@everyone", "0")]
    member = (await api.get(f"/guilds/{GUILD}/members/{BOT_ID}")).json()
    assert member["roles"] == [] and member["user"]["id"] == BOT_ID

    assert error(await api.get("/channels/1299999999999999999")) == (
        404,
        10003,
        "Unknown Channel",
    )
    fake.add_channel("1200000000000000010", GUILD, "hidden", permissions=SEND_MESSAGES)
    assert error(await api.get("/channels/1200000000000000010")) == (403, 50001, "Missing Access")
    assert error(await api.get("/channels/not-a-snowflake"))[:2] == (400, 50035)
    denied = await api.post("/channels/1200000000000000009/messages", json={"content": "hi"})
    assert error(denied) == (403, 50013, "Missing Permissions")


async def test_create_edit_delete_and_replies(fake: FakeDiscord, api: httpx.AsyncClient) -> None:
    ada = await fake.user_sends(CHANNEL, ADA, "hello <@1000000000000000001>")
    assert ada["mentions"][0]["id"] == BOT_ID

    too_long = await api.post(f"/channels/{CHANNEL}/messages", json={"content": "x" * 2001})
    assert error(too_long)[:2] == (400, 50035)
    assert too_long.json()["errors"]["content"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
    empty = await api.post(f"/channels/{CHANNEL}/messages", json={"content": ""})
    assert error(empty) == (400, 50006, "Cannot send an empty message")

    reply = await api.post(
        f"/channels/{CHANNEL}/messages",
        json={"content": "**Grace**\nindeed", "message_reference": {"message_id": ada["id"]}},
    )
    assert reply.status_code == 200
    body = reply.json()
    assert body["type"] == 19 and body["author"]["id"] == BOT_ID
    assert body["message_reference"]["message_id"] == ada["id"]
    assert body["referenced_message"]["id"] == ada["id"]
    assert int(body["id"]) > int(ada["id"])

    gone = await api.post(
        f"/channels/{CHANNEL}/messages",
        json={"content": "x", "message_reference": {"message_id": "1400000000000000000"}},
    )
    assert error(gone)[:2] == (400, 50035)
    assert gone.json()["errors"]["message_reference"]["_errors"][0]["message"] == "Unknown message"

    edited = await api.patch(f"/channels/{CHANNEL}/messages/{body['id']}", json={"content": "v2"})
    assert edited.json()["content"] == "v2" and edited.json()["edited_timestamp"]
    not_ours = await api.patch(f"/channels/{CHANNEL}/messages/{ada['id']}", json={"content": "x"})
    assert error(not_ours) == (403, 50005, "Cannot edit a message authored by another user")
    missing = await api.delete(f"/channels/{CHANNEL}/messages/1400000000000000000")
    assert error(missing) == (404, 10008, "Unknown Message")
    assert (await api.delete(f"/channels/{CHANNEL}/messages/{body['id']}")).status_code == 204
    assert [m["id"] for m in fake.messages(CHANNEL)] == [ada["id"]]


async def test_history_is_newest_first_whatever_the_anchor(
    fake: FakeDiscord, api: httpx.AsyncClient
) -> None:
    ids = [fake.post_silently(CHANNEL, ADA, f"m{i}")["id"] for i in range(6)]
    assert ids == sorted(ids, key=int)

    async def page(**params: Any) -> list[str]:
        answer = await api.get(f"/channels/{CHANNEL}/messages", params=params)
        assert answer.status_code == 200, answer.text
        return [m["id"] for m in answer.json()]

    assert await page() == ids[::-1]
    assert await page(limit=2) == [ids[5], ids[4]]
    # after: the oldest ones after the anchor, still newest first.
    assert await page(after=ids[1], limit=2) == [ids[3], ids[2]]
    assert await page(before=ids[3], limit=2) == [ids[2], ids[1]]
    assert await page(after=ids[5]) == []
    for bad in (0, 101, "x"):
        assert error(await api.get(f"/channels/{CHANNEL}/messages", params={"limit": bad}))[:2] == (
            400,
            50035,
        )

    fake.add_channel("1200000000000000011", GUILD, "no-history", permissions=VIEW_CHANNEL)
    fake.post_silently("1200000000000000011", ADA, "unseen")
    assert (await api.get("/channels/1200000000000000011/messages")).json() == []


async def test_webhooks_as_discord_answers_them(fake: FakeDiscord, api: httpx.AsyncClient) -> None:
    for name in ("", "x" * 81, "Clyde", "my discord bridge"):
        refused = await api.post(f"/channels/{CHANNEL}/webhooks", json={"name": name})
        assert error(refused)[:2] == (400, 50035), name
        assert "name" in refused.json()["errors"]
    fake.add_channel("1200000000000000012", GUILD, "no-hooks", permissions=ALL & ~MANAGE_WEBHOOKS)
    denied = await api.post("/channels/1200000000000000012/webhooks", json={"name": "hookhub"})
    assert error(denied) == (403, 50013, "Missing Permissions")

    foreign = fake.add_webhook(CHANNEL, "someone else's", application_id="1999999999999999999")
    created = await api.post(f"/channels/{CHANNEL}/webhooks", json={"name": "hookhub"})
    assert created.status_code == 200
    hook = created.json()
    assert hook["type"] == 1 and hook["application_id"] == APP_ID
    assert hook["channel_id"] == CHANNEL and hook["token"]
    listed = (await api.get(f"/channels/{CHANNEL}/webhooks")).json()
    by_id = {w["id"]: w for w in listed}
    assert by_id[hook["id"]]["token"] == hook["token"]
    assert "token" not in by_id[foreign.id]  # another application's token is not shown

    async with httpx.AsyncClient(verify=tls(), base_url=fake.base_url + "/api/v10") as anonymous:
        url = f"/webhooks/{hook['id']}/{hook['token']}"
        ada = fake.post_silently(CHANNEL, ADA, "question")
        posted = await anonymous.post(
            url,
            params={"wait": "true"},
            json={
                "content": "hi @everyone",
                "username": "Grace Hopper",
                "avatar_url": "https://example.com/g.png",
                "allowed_mentions": {"parse": []},
                "message_reference": {"message_id": ada["id"]},
            },
        )
        assert posted.status_code == 200, posted.text
        message = posted.json()
        assert message["webhook_id"] == hook["id"] and message["application_id"] == APP_ID
        assert message["author"]["id"] == hook["id"]
        assert message["author"]["username"] == "Grace Hopper"
        assert message["author"]["bot"] is True
        assert message["mention_everyone"] is False
        # A webhook cannot reply: the reference is ignored.
        assert message["type"] == 0 and "message_reference" not in message

        no_wait = await anonymous.post(url, json={"content": "fire and forget"})
        assert no_wait.status_code == 204 and no_wait.content == b""
        clyde = await anonymous.post(url, json={"content": "x", "username": "clyde"})
        assert error(clyde)[:2] == (400, 50035)

        bad_token = await anonymous.post(f"/webhooks/{hook['id']}/wrong", json={"content": "x"})
        assert error(bad_token) == (401, 50027, "Invalid Webhook Token")
        unknown = await anonymous.post("/webhooks/1500000000000000000/t", json={"content": "x"})
        assert error(unknown) == (404, 10015, "Unknown Webhook")

        edit = await anonymous.patch(f"{url}/messages/{message['id']}", json={"content": "v2"})
        assert edit.status_code == 200 and edit.json()["content"] == "v2"
        not_its = await anonymous.patch(f"{url}/messages/{ada['id']}", json={"content": "x"})
        assert error(not_its) == (404, 10008, "Unknown Message")
        deleted = await anonymous.delete(f"{url}/messages/{message['id']}")
        assert deleted.status_code == 204
    assert message["id"] not in {m["id"] for m in fake.messages(CHANNEL)}
    assert fake.sent(EXECUTE_WEBHOOK)[0].json["username"] == "Grace Hopper"


async def test_a_bucket_past_its_limit_answers_429_for_that_channel_only(
    fake: FakeDiscord, api: httpx.AsyncClient
) -> None:
    fake.set_rate_limit(CREATE_MESSAGE, 2, 0.6, major=CHANNEL)
    first = await api.post(f"/channels/{CHANNEL}/messages", json={"content": "1"})
    second = await api.post(f"/channels/{CHANNEL}/messages", json={"content": "2"})
    assert first.headers["X-RateLimit-Limit"] == "2"
    assert (first.headers["X-RateLimit-Remaining"], second.headers["X-RateLimit-Remaining"]) == (
        "1",
        "0",
    )
    assert 0 < float(second.headers["X-RateLimit-Reset-After"]) <= 0.6
    assert float(second.headers["X-RateLimit-Reset"]) > time.time()

    limited = await api.post(f"/channels/{CHANNEL}/messages", json={"content": "3"})
    assert limited.status_code == 429
    body = limited.json()
    assert body["message"] == "You are being rate limited." and body["global"] is False
    assert 0 < body["retry_after"] <= 0.6
    assert limited.headers["Retry-After"] == "1"
    assert limited.headers["X-RateLimit-Scope"] == "user"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert len(fake.messages(CHANNEL)) == 2

    other = await api.post(f"/channels/{OTHER_CHANNEL}/messages", json={"content": "flows"})
    assert other.status_code == 200
    # The bucket names the route, not the channel.
    assert other.headers["X-RateLimit-Bucket"] == first.headers["X-RateLimit-Bucket"]
    assert other.headers["X-RateLimit-Limit"] == "50"

    await asyncio.sleep(body["retry_after"] + 0.05)
    again = await api.post(f"/channels/{CHANNEL}/messages", json={"content": "3"})
    assert again.status_code == 200 and again.headers["X-RateLimit-Remaining"] == "1"


async def test_global_429_and_server_errors_on_demand(
    fake: FakeDiscord, api: httpx.AsyncClient
) -> None:
    fake.rate_limit_next(is_global=True, retry_after=0.25)
    limited = await api.get("/users/@me")
    assert limited.status_code == 429
    assert limited.json() == {
        "message": "You are being rate limited.",
        "retry_after": 0.25,
        "global": True,
    }
    assert limited.headers["X-RateLimit-Global"] == "true"
    assert limited.headers["X-RateLimit-Scope"] == "global"
    fake.fail_next(2, status=502)
    assert (await api.get("/users/@me")).status_code == 502
    assert (await api.get("/users/@me")).status_code == 502
    assert (await api.get("/users/@me")).status_code == 200
    assert fake.rate_limited == 1


async def test_the_oauth2_side_on_the_same_server(fake: FakeDiscord) -> None:
    """Bot authorisation with PKCE: the callback adds guild_id, the token answer names the
    guild; the access token reads /users/@me as the user, not the bot, and makes no bot
    calls; revoking it (RFC 7009, HTTP Basic) ends it."""
    verifier = "v" * 64
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    query = {
        "client_id": fake.client.client_id,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": "bot identify guilds",
        "state": "s1",
        "code_challenge": challenge.decode().rstrip("="),
        "code_challenge_method": "S256",
    }
    app = httpx.BasicAuth(fake.client.client_id, fake.client.client_secret)
    async with httpx.AsyncClient(verify=tls(), base_url=fake.base_url) as client:
        consent = await client.get("/oauth2/authorize", params=query)
        callback = dict(parse_qsl(urlsplit(consent.headers["location"]).query))
        assert callback["state"] == "s1" and callback["guild_id"] == "G0GUILD"
        form = {"grant_type": "authorization_code", "code": callback["code"]}
        form |= {"redirect_uri": REDIRECT_URI, "code_verifier": verifier}
        granted = (await client.post("/api/oauth2/token", data=form, auth=app)).json()
        assert granted["token_type"] == "Bearer" and granted["guild"]["id"] == "G0GUILD"
        assert {"access_token", "expires_in", "refresh_token", "scope"} <= set(granted)
        bearer = {"Authorization": f"Bearer {granted['access_token']}"}
        me = await client.get("/api/v10/users/@me", headers=bearer)
        assert me.status_code == 200 and me.json()["id"] == "U0USER"
        assert error(await client.get(f"/api/v10/channels/{CHANNEL}", headers=bearer))[0] == 401
        revoked = await client.post(
            "/api/oauth2/token/revoke", data={"token": granted["refresh_token"]}, auth=app
        )
        assert revoked.status_code == 200
        assert error(await client.get("/api/v10/users/@me", headers=bearer))[0] == 401


# -- Gateway -----------------------------------------------------------------------------------


async def gateway_url(api: httpx.AsyncClient) -> str:
    answer = await api.get("/gateway/bot")
    assert answer.status_code == 200
    url: str = answer.json()["url"]
    return url + "?v=10&encoding=json"


async def receive(ws: ClientConnection) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
    return payload


async def send(ws: ClientConnection, op: int, data: Any) -> None:
    await ws.send(json.dumps({"op": op, "d": data}))


async def identify(ws: ClientConnection, token: str = TOKEN, intents: int = INTENTS) -> None:
    properties = {"os": "linux", "browser": "hookhub", "device": "hookhub"}
    await send(ws, 2, {"token": token, "intents": intents, "properties": properties})


async def closed_with(ws: ClientConnection) -> int | None:
    """The close code the server sent (None: the connection was cut without one)."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    return closed.value.rcvd.code if closed.value.rcvd is not None else None


async def test_identify_ready_and_dispatches_with_sequence_numbers(
    fake: FakeDiscord, api: httpx.AsyncClient
) -> None:
    before = (await api.get("/gateway/bot")).json()["session_start_limit"]
    async with connect(await gateway_url(api)) as ws:
        hello = await receive(ws)
        assert hello["op"] == 10 and hello["d"] == {"heartbeat_interval": 1000}
        await send(ws, 1, None)
        assert (await receive(ws))["op"] == 11
        await identify(ws)
        ready = await receive(ws)
        assert (ready["op"], ready["t"], ready["s"]) == (0, "READY", 1)
        assert ready["d"]["v"] == 10 and ready["d"]["user"]["id"] == BOT_ID
        assert ready["d"]["guilds"] == [{"id": GUILD, "unavailable": True}]
        assert ready["d"]["application"]["id"] == APP_ID
        assert ready["d"]["resume_gateway_url"].endswith("/resume-gateway")
        guild = await receive(ws)
        assert (guild["t"], guild["s"], guild["d"]["id"]) == ("GUILD_CREATE", 2, GUILD)
        assert {c["id"] for c in guild["d"]["channels"]} == {CHANNEL, OTHER_CHANNEL}

        sent = await fake.user_sends(CHANNEL, ADA, "hello")
        created = await receive(ws)
        assert (created["t"], created["s"]) == ("MESSAGE_CREATE", 3)
        assert created["d"]["id"] == sent["id"] and created["d"]["content"] == "hello"
        assert created["d"]["guild_id"] == GUILD and created["d"]["author"]["id"] == ADA
        assert "member" in created["d"]

        # Our own sends come back too: that is the echo sync must recognise.
        ours = (await api.post(f"/channels/{CHANNEL}/messages", json={"content": "x"})).json()
        echo = await receive(ws)
        assert (echo["t"], echo["s"], echo["d"]["id"]) == ("MESSAGE_CREATE", 4, ours["id"])
        assert echo["d"]["author"]["id"] == BOT_ID
        await fake.user_edits(CHANNEL, sent["id"], "hello again")
        update = await receive(ws)
        assert update["t"] == "MESSAGE_UPDATE" and update["d"]["edited_timestamp"]
        await fake.user_bulk_deletes(CHANNEL, [sent["id"], ours["id"]])
        bulk = await receive(ws)
        assert bulk["t"] == "MESSAGE_DELETE_BULK"
        assert bulk["d"] == {
            "ids": [sent["id"], ours["id"]],
            "channel_id": CHANNEL,
            "guild_id": GUILD,
        }
        assert fake.connections == 1 and fake.identifies == 1
    after = (await api.get("/gateway/bot")).json()["session_start_limit"]
    assert after["remaining"] == before["remaining"] - 1


async def test_resume_replays_what_the_session_missed(
    fake: FakeDiscord, api: httpx.AsyncClient
) -> None:
    async with connect(await gateway_url(api)) as ws:
        await receive(ws)
        await identify(ws)
        ready = (await receive(ws))["d"]
        assert (await receive(ws))["s"] == 2
        await fake.drop()
        assert await closed_with(ws) is None  # cut, no close frame
    first = await fake.user_sends(CHANNEL, ADA, "while away 1")
    second = await fake.user_sends(CHANNEL, ADA, "while away 2")

    async with connect(ready["resume_gateway_url"] + "?v=10&encoding=json") as ws:
        await receive(ws)
        await send(ws, 6, {"token": TOKEN, "session_id": ready["session_id"], "seq": 2})
        replayed = [await receive(ws) for _ in range(3)]
        assert [(p["t"], p["s"]) for p in replayed] == [
            ("MESSAGE_CREATE", 3),
            ("MESSAGE_CREATE", 4),
            ("RESUMED", 5),
        ]
        assert [p["d"].get("id") for p in replayed[:2]] == [first["id"], second["id"]]
    assert fake.resumes == 1 and fake.identifies == 1
    assert fake.paths == ["/gateway", "/resume-gateway"]


async def test_an_invalidated_session_cannot_resume(
    fake: FakeDiscord, api: httpx.AsyncClient
) -> None:
    async with connect(await gateway_url(api)) as ws:
        await receive(ws)
        await identify(ws)
        session_id = (await receive(ws))["d"]["session_id"]
        await receive(ws)
        await fake.invalidate_sessions(resumable=False)
        assert await receive(ws) == {"op": 9, "d": False, "s": None, "t": None}
    async with connect(await gateway_url(api)) as ws:
        await receive(ws)
        await send(ws, 6, {"token": TOKEN, "session_id": session_id, "seq": 2})
        assert (await receive(ws))["op"] == 9
        await send(ws, 6, {"token": TOKEN, "session_id": "unknown", "seq": 1})
        assert (await receive(ws))["d"] is False


async def test_close_codes_for_bad_identifies(fake: FakeDiscord, api: httpx.AsyncClient) -> None:
    fake.add_bot(
        "no-content-token",
        "1000000000000000003",
        "quiet",
        "1000000000000000004",
        message_content_intent=False,
    )
    url = await gateway_url(api)
    cases: list[tuple[Any, int]] = [
        (lambda ws: identify(ws, token="no-content-token"), 4014),
        (lambda ws: identify(ws, token="wrong"), 4004),
        (lambda ws: identify(ws, intents=1 << 40), 4013),
        (lambda ws: send(ws, 3, {"status": "online"}), 4003),
        (lambda ws: ws.send("not json"), 4002),
    ]
    for action, code in cases:
        async with connect(url) as ws:
            await receive(ws)
            await action(ws)
            assert await closed_with(ws) == code
    assert fake.refused_identifies("no-content-token") == 1
    assert [code for _, code in fake.refused] == [4014, 4004, 4013]
    async with connect(url) as ws:
        await receive(ws)
        await identify(ws, token="no-content-token", intents=GUILDS | GUILD_MESSAGES)
        assert (await receive(ws))["t"] == "READY"
        await receive(ws)
        await fake.user_sends(CHANNEL, ADA, "secret")
        assert (await receive(ws))["d"]["content"] == ""  # no MESSAGE_CONTENT intent
        await fake.user_sends(CHANNEL, ADA, "hey <@1000000000000000003>")
        assert (await receive(ws))["d"]["content"] == "hey <@1000000000000000003>"
        await identify(ws, token="no-content-token", intents=GUILDS)
        assert await closed_with(ws) == 4005


async def test_reconnect_acks_and_the_heartbeat_deadline(
    fake: FakeDiscord, api: httpx.AsyncClient
) -> None:
    async with connect(await gateway_url(api)) as ws:
        await receive(ws)
        await fake.request_reconnect()
        assert (await receive(ws))["op"] == 7
        await fake.stop_acks()
        await send(ws, 1, None)
        await fake.request_heartbeat()
        assert (await receive(ws))["op"] == 1  # no ACK came before the server's request
        await fake.resume_acks()
        await send(ws, 1, None)
        assert (await receive(ws))["op"] == 11
        started = time.monotonic()
        # No more heartbeats: closed 4009 after the interval (1 s) and its grace (0.5 s).
        assert await closed_with(ws) == 4009
        assert 1.0 < time.monotonic() - started < 3.0
    assert fake.connections == 0


# -- interactions ------------------------------------------------------------------------------


def _endpoint(public_key: str | None, seen: list[dict[str, Any]]) -> Starlette:
    """An Interactions Endpoint: with `public_key`, verified as the gateway verifies Discord's
    requests (shared/providers/discord/webhooks.py); without, it trusts everything."""

    async def interactions(request: Request) -> Response:
        inbound = InboundRequest(
            {k.lower(): v for k, v in request.headers.items()},
            await request.body(),
            datetime.now(UTC),
        )
        if public_key is not None:
            try:
                WEBHOOKS.verify(inbound, {"public_key": public_key}, inbound.received_at)
            except SignatureInvalid:
                return PlainTextResponse("invalid request signature", 401)
        parsed = WEBHOOKS.parse(inbound)
        seen.append(dict(parsed.payload))
        assert parsed.reply is not None
        return JSONResponse(parsed.reply.body, parsed.reply.status)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[Route("/healthz", healthz), Route("/interactions", interactions, methods=["POST"])]
    )


async def test_interactions_are_signed_as_discord_signs_them(
    fake: FakeDiscord, api: httpx.AsyncClient
) -> None:
    """The application's `verify_key` checks what the fake sends (Ed25519 over the
    timestamp and the body); an Interactions Endpoint URL is saved only once it answered a
    signed PING with a PONG and refused a forged one, as Discord checks it."""
    public_key = (await api.get("/oauth2/applications/@me")).json()["verify_key"]
    assert public_key == fake.bots[TOKEN].public_key and len(bytes.fromhex(public_key)) == 32
    seen: list[dict[str, Any]] = []
    async with serve(_endpoint(None, seen), probe="/healthz") as careless:
        refused = await api.patch(
            "/applications/@me",
            json={"interactions_endpoint_url": careless.base_url + "/interactions"},
        )
        assert refused.status_code == 400, refused.text
        assert refused.json()["errors"]["interactions_endpoint_url"]["_errors"][0]["code"] == (
            "APPLICATION_INTERACTIONS_ENDPOINT_URL_INVALID"
        )
    assert fake.bots[TOKEN].interactions_endpoint_url is None
    seen.clear()
    async with serve(_endpoint(public_key, seen), probe="/healthz") as endpoint:
        url = endpoint.base_url + "/interactions"
        saved = await api.patch("/applications/@me", json={"interactions_endpoint_url": url})
        assert saved.status_code == 200, saved.text
        assert saved.json()["interactions_endpoint_url"] == url
        assert [s["type"] for s in seen] == [1]  # the PING; the forged one never got in
        status, answer = await fake.interact(TOKEN, CHANNEL, ADA, "deploy", {"text": "api"})
    assert (status, answer) == (200, {"type": 5, "data": {"flags": 64}})
    command = seen[-1]
    assert command["type"] == 2 and command["application_id"] == APP_ID
    assert command["data"]["name"] == "deploy"
    assert command["data"]["options"] == [{"name": "text", "type": 3, "value": "api"}]
    assert command["channel_id"] == CHANNEL and command["member"]["user"]["id"] == ADA
