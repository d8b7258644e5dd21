"""The sandbox as a newcomer uses it (SPEC §2): `hookhub run --sandbox`, then nothing but the
origin: the stand-ins' credentials from `/sandbox/api/state`, integrations made with them,
users writing through `/sandbox/api/…`, and hookhub's posts read back from the stand-ins.
Slack, Discord and Telegram both ways, a user's edit and delete in every network that tells
of them, a GitHub event onto hookhub.provider.events, an API import from the sandbox's Slack,
OAuth through a stand-in's consent page and the page at `/sandbox/` in Chromium."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pytest
from cryptography.fernet import Fernet

from services.sandbox.catalog import posted_by_default, samples, sendable
from shared.kernel.embedded import free_port
from shared.kernel.http.tls import tls
from shared.providers.catalog import CATALOG
from tests.e2e.stack import REPOSITORY, Stack, http_base, start_stack, wait_ready
from tests.providers import telegram_exports as tg
from tests.support import KafkaTap, until

pytestmark = pytest.mark.e2e
T = TypeVar("T")


@pytest.fixture(scope="module")
def sandbox_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("sandbox") / ".hookhub"
    ports = {"http": http_base(), "kafka": free_port(), "mongo": free_port()}
    _INTEGRATIONS.clear()
    # The networks' pacing a tenth of theirs: a Telegram group's 3 s a message made the
    # seven-network bridge wait 15 s for six messages in one group. Pacing is held to the
    # networks' limits elsewhere (tests/sync: a 429 storm, each network's own limit).
    started = start_stack(
        data_dir, ports, settings={"HOOKHUB_SYNC_PACE_FACTOR": "0.1"}, args=["--sandbox"]
    )
    try:
        wait_ready(started)
        yield started
    finally:
        if started.process.poll() is None:
            os.killpg(started.process.pid, signal.SIGKILL)


@contextlib.asynccontextmanager
async def _hub(stack: Stack) -> AsyncIterator[Hub]:
    """The stack's origin, with the admin token."""
    token = (stack.data_dir / "admin_token").read_text().strip()
    async with httpx.AsyncClient(
        verify=tls(),
        base_url=stack.origin,
        timeout=20,
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield Hub(client, stack)


@pytest.fixture
async def hub(sandbox_stack: Stack) -> AsyncIterator[Hub]:
    async with _hub(sandbox_stack) as found:
        yield found


_INTEGRATIONS: dict[str, dict[str, Any]] = {}
# The chat channel every network's first channel is mapped to, as a newcomer bridges them.
BRIDGED = "ch_everyone"


class Hub:
    def __init__(self, client: httpx.AsyncClient, stack: Stack) -> None:
        self.client = client
        self.stack = stack

    async def state(self) -> dict[str, Any]:
        answer = await self.client.get("/sandbox/api/state")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def post(self, path: str, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
        answer = await self.client.post(path, json=body)
        assert answer.status_code == status, f"{path}: {answer.status_code} {answer.text}"
        return dict(answer.json())

    async def integration(self, provider: str, settings: dict[str, Any]) -> dict[str, Any]:
        """The module's one integration of `provider` (made on first use): as a newcomer
        has one. Slack's events come to one app-level URL and are routed by team to the
        first integration of that team; a second one would hold mappings none reaches."""
        made = _INTEGRATIONS.get(provider)
        if made is None:
            made = _INTEGRATIONS[provider] = await self.post(
                "/api/integrations",
                {"provider": provider, "workspace_id": "ws_demo", "settings": settings},
            )
        return made

    async def mapping(self, integration: str, external: str, channel: str) -> None:
        await self.post(
            f"/api/integrations/{integration}/mappings",
            {"external_channel_id": external, "channel_id": channel},
        )

    async def mapped(self, integration: str, external: str, new: str = "") -> str:
        """The chat channel `external` is mapped to: another test's mapping of it, or `new`
        (else a new one) mapped here (an external channel has one mapping per
        integration)."""
        answer = await self.client.get(
            f"/api/integrations/{integration}/mappings", params={"limit": "100"}
        )
        assert answer.status_code == 200, answer.text
        for mapping in answer.json()["data"]:
            if mapping["external_channel_id"] == external:
                return str(mapping["channel_id"])
        channel = new or "ch_mapped_" + uuid.uuid4().hex[:6]
        await self.mapping(integration, external, channel)
        return channel

    async def imported(self, job: dict[str, Any]) -> dict[str, Any]:
        """The import job once it has ended, completed."""

        async def ended() -> dict[str, Any] | None:
            found = (await self.client.get(f"/api/imports/{job['id']}")).json()
            return found if found["status"] in ("completed", "failed") else None

        done = dict(await until(ended, timeout=60, what="the import"))
        assert done["status"] == "completed", done
        return done

    async def chat_message(self, channel: str, text: str, **data: str) -> None:
        """The chat product's message; `data`: more of it (`inbound_id`: the message it
        brought in from a network, which is not posted back there)."""
        message_id = "m_" + uuid.uuid4().hex[:8]
        await self.post(
            "/api/events",
            {
                "id": "evt_" + message_id,
                "type": "message.created",
                "workspace_id": "ws_demo",
                "occurred_at": "2026-11-25T10:00:00Z",
                "actor": {"id": "u_ada", "name": "Ada"},
                "data": {"message_id": message_id, "channel_id": channel, "text": text, **data},
            },
            status=202,
        )

    async def posted(self, provider: str, channel: str, text: str) -> dict[str, Any]:
        """hookhub's post of `text` in the stand-in's channel, once it is there."""

        async def find() -> dict[str, Any] | None:
            answer = await self.client.get(f"/sandbox/api/{provider}/channels/{channel}/messages")
            assert answer.status_code == 200, answer.text
            found = [m for m in answer.json()["items"] if text in m["text"]]
            return found[0] if found else None

        return dict(await until(find, timeout=30, what=f"hookhub's post in {provider}"))

    def tap(self, topic: str) -> KafkaTap:
        return KafkaTap(self.stack.kafka_bootstrap, topic)


async def _both_ways(hub: Hub, provider: str, settings: dict[str, Any]) -> None:
    state = await hub.state()
    world = state[provider]
    integration = await hub.integration(provider, settings)
    assert integration["status"] == "connected", integration
    external = world["channels"][0]["id"]
    channel = await hub.mapped(integration["id"], external, BRIDGED)
    if provider == "discord":
        # The Gateway connection a sync replica opens within a second of the mapping.
        await until(lambda: _discord_connected(hub), timeout=30, what="sync on Discord's Gateway")
    if provider == "mattermost":
        # The bot's WebSocket, opened by a sync replica as Discord's Gateway is.
        await until(lambda: _connected(hub, provider), timeout=30, what="sync on the WebSocket")

    # Outbound: a chat user writes in the page's chat; hookhub posts it into the stand-in,
    # under their name.
    text_out = f"deploy {uuid.uuid4().hex[:6]} done"
    written = await hub.post(
        "/sandbox/api/chat/messages", {"channel": channel, "user": "u_bob", "text": text_out}
    )
    assert written["delivered"] == 202, written
    post = await hub.posted(provider, external, text_out)
    assert post["from_hookhub"] is True
    _by(post, "Bob Baker", text_out)

    # Inbound: a user writes in the stand-in; hookhub publishes it for the chat product.
    user = world["users"][0]
    text_in = f"hello from {provider} {uuid.uuid4().hex[:6]}"
    async with hub.tap("hookhub.chat.inbound") as tap:
        sent = await hub.post(
            f"/sandbox/api/{provider}/messages",
            {"channel": external, "user": user["id"], "text": text_in},
        )
        assert sent["id"] and sent["delivered"] in (200, True), sent
        [received] = await tap.wait_for(lambda v: v.get("text") == text_in, timeout=30)
    assert received["type"] == "message.received"
    assert received["channel_id"] == channel
    assert received["author"]["external_id"] == user["id"], received["author"]
    # The user's message is in the stand-in's channel too, and not marked as hookhub's.
    mine = await hub.posted(provider, external, text_in)
    assert mine["from_hookhub"] is False
    ours = {"id": written["id"], "text": text_out, "post": post["id"]}
    await _threads_and_changes_from_the_chat(
        hub, provider, (channel, external), sent, received, ours
    )


def _by(post: dict[str, Any], name: str, text: str) -> None:
    """hookhub's post reads as `name`'s `text`: under their name, or with it on its first
    line (where the bot itself posts), and no markup left in it."""
    shown = post["text"]
    assert post["user"]["name"] == name or shown.startswith(name + "\n"), post
    assert shown.endswith(text), post
    assert not re.search(r"</?b>|\*\*|&lt;|&amp;", shown), post


async def _threads_and_changes_from_the_chat(
    hub: Hub,
    provider: str,
    channels: tuple[str, str],
    sent: dict[str, Any],
    received: dict[str, Any],
    ours: dict[str, str],
) -> None:
    """As a newcomer tries it in the page: the chat answers the network user's message in
    its thread, and the network user answers the chat's in its thread, each reply threaded
    on the other side; the chat's user edits and deletes their message, and the network's
    copy follows. `channels`: the chat's and the network's; `sent` and `received`: the
    network user's message there and as hookhub handed it; `ours`: the chat's message (its
    `id`, `text`) and hookhub's `post` of it in the network."""
    channel, external = channels

    async def in_chat() -> list[dict[str, Any]]:
        answer = await hub.client.get(f"/sandbox/api/chat/channels/{channel}/messages")
        return list(answer.json()["items"]) if answer.status_code == 200 else []

    async def kept_in_chat() -> bool:
        return any(m["id"] == received["id"] for m in await in_chat())

    await until(kept_in_chat, timeout=30, what="the network's message in the page's chat")
    answer = f"on it {uuid.uuid4().hex[:6]}"
    await hub.post(
        "/sandbox/api/chat/messages",
        {"channel": channel, "user": "u_carol", "text": answer, "thread": received["id"]},
    )
    reply = await hub.posted(provider, external, answer)
    assert reply["thread"] == sent["id"], (provider, reply)
    _by(reply, "Carol Chen", answer)

    user = (await hub.state())[provider]["users"][-1]
    back = f"thanks {uuid.uuid4().hex[:6]}"
    async with hub.tap("hookhub.chat.inbound") as tap:
        await hub.post(
            f"/sandbox/api/{provider}/messages",
            {"channel": external, "user": user["id"], "text": back, "thread": ours["post"]},
        )
        [answered] = await tap.wait_for(_with_text(back), timeout=30)
    assert answered["thread_id"] == ours["id"], (provider, answered)

    edited = f"{ours['text']}, edited"
    path = f"/sandbox/api/chat/messages/{ours['id']}"
    await hub.post(f"{path}/edit", {"channel": channel, "text": edited}, 200)
    now = await hub.posted(provider, external, edited)
    assert now["id"] == ours["post"] and now["edited"] is True, (provider, now)
    await hub.post(f"{path}/delete", {"channel": channel}, 200)

    async def gone() -> bool:
        listed = await hub.client.get(f"/sandbox/api/{provider}/channels/{external}/messages")
        return all(m["id"] != ours["post"] for m in listed.json()["items"])

    await until(gone, timeout=30, what=f"the chat's delete in {provider}")


async def _discord_connected(hub: Hub) -> bool:
    return bool((await hub.state())["discord"]["connected"])


async def test_slack_both_ways_through_the_stand_in(hub: Hub) -> None:
    state = await hub.state()
    await _both_ways(hub, "slack", {"bot_token": state["slack"]["bot_token"]})


async def test_discord_both_ways_through_the_stand_in(hub: Hub) -> None:
    """With the state's bot token and public key: messages both ways, and the sandbox's
    signed interactions verified by the integration (its webhook URL set as the
    application's Interactions Endpoint URL, as in Discord's Developer Portal)."""
    discord = (await hub.state())["discord"]
    assert re.fullmatch(r"[0-9a-f]{64}", discord["public_key"]), discord
    settings = {"bot_token": discord["bot_token"], "public_key": discord["public_key"]}
    await _both_ways(hub, "discord", settings)
    integration = await hub.integration("discord", settings)

    # Discord saves the URL once a signed PING got its PONG (and a forged one a 401).
    edit = await hub.client.patch(
        discord["api_base"] + "/applications/@me",
        json={"interactions_endpoint_url": integration["webhook_url"]},
        headers={"Authorization": f"Bot {discord['bot_token']}"},
    )
    assert edit.status_code == 200, edit.text
    assert edit.json()["verify_key"] == discord["public_key"]
    assert (await hub.state())["discord"]["interactions_url"] == integration["webhook_url"]

    user = discord["users"][0]
    async with hub.tap("hookhub.provider.events") as tap:
        sent = await hub.post(
            "/sandbox/api/discord/interactions",
            {"channel": discord["channels"][0]["id"], "user": user["id"], "command": "deploy",
             "text": "api"},
        )  # fmt: skip
        assert sent["delivered"] == 200, sent
        # Deferred, for the user alone: the answer comes from a consumer.
        assert sent["response"] == {"type": 5, "data": {"flags": 64}}
        [event] = await tap.wait_for(
            lambda v: (
                v.get("integration_id") == integration["id"]
                and v.get("event_type") == "application_command"
            ),
            timeout=30,
        )
    assert event["payload"]["data"]["name"] == "deploy"
    assert event["payload"]["member"]["user"]["id"] == user["id"]
    await _second_integration_refused(hub, "discord", discord["bot_token"])


async def test_hookhub_typed_in_the_sandbox_s_slack_runs_in_the_mapped_chat_channel(
    hub: Hub,
) -> None:
    """`/hookhub list` typed in the sandbox's Slack box is Slack's signed slash command:
    hookhub answers it at once (an empty 200) and in the chat channel the Slack channel is
    mapped to; every network takes one (Matrix's is the message `!hookhub …`)."""
    state = await hub.state()
    assert {n for n, c in state["chats"].items() if not c["can"]["command"]} == set()
    integration = await hub.integration("slack", {"bot_token": state["slack"]["bot_token"]})
    external = state["slack"]["channels"][0]["id"]
    channel = await hub.mapped(integration["id"], external, BRIDGED)
    user = state["slack"]["users"][0]
    async with hub.tap("hookhub.chat.inbound") as tap:
        sent = await hub.post(
            "/sandbox/api/slack/commands",
            {"channel": external, "user": user["id"], "text": "/hookhub list"},
        )
        assert sent["delivered"] == 200, sent
        [said] = await tap.wait_for(
            lambda v: v.get("channel_id") == channel and v["author"]["name"] == "hookhub",
            timeout=30,
        )
    assert "subscription" in said["text"], said


async def _connected(hub: Hub, provider: str) -> bool:
    return bool((await hub.state())[provider]["connected"])


@pytest.mark.parametrize(
    ("network", "who", "shown_as"),
    [("mattermost", "Ada Lovelace", "Ada Lovelace"), ("googlechat", "Alice", "Alice")],
)
async def test_an_incident_acknowledged_with_a_networks_own_button(
    hub: Hub, network: str, who: str, shown_as: str
) -> None:
    """Mattermost's and Google Chat's buttons in the page: a PagerDuty card in a channel
    bridged there, acknowledged by one of the network's people (linked by their email, as
    every clicking person of the sandbox): one call at PagerDuty as them, said in the
    thread, from that network."""
    state = await hub.state()
    world = state[network]
    if network == "mattermost":
        settings = {"server_url": world["server_url"], "bot_token": world["bot_token"]}
    else:
        settings = {k: world[k] for k in ("service_account_json", "audience")}
    integration = await hub.integration(network, settings)
    external = world["channels"][0]["id"]
    channel = await hub.mapped(integration["id"], external, BRIDGED)
    card, incident, posted = await _incident_in(hub, network, external, channel)
    clicked = await hub.post(
        f"/sandbox/api/{network}/click",
        {"channel": external, "message": posted["id"], "action": "acknowledge", "user": who},
    )
    assert clicked["delivered"] == 200, clicked
    name = CATALOG[network].name
    said = await _replied(hub, channel, card["id"], f"Acknowledged by {shown_as} (from {name})")
    assert said["text"].startswith("✓"), said
    pagerduty = (await hub.state())["pagerduty"]
    [acted] = [i for i in pagerduty["incidents"] if i["id"] == incident]
    email = f"{who.split()[0].lower()}@example.com"
    assert acted["status"] == "acknowledged" and acted["acknowledged_by"] == [email], acted


async def test_mattermost_both_ways_through_the_stand_in(hub: Hub) -> None:
    """The sandbox's Mattermost server (REST and WebSocket under /sandbox/mattermost) is an
    integration's `server_url`, with its bot's token."""
    mattermost = (await hub.state())["mattermost"]
    settings = {"server_url": mattermost["server_url"], "bot_token": mattermost["bot_token"]}
    await _both_ways(hub, "mattermost", settings)


async def test_matrix_both_ways_through_the_stand_in(hub: Hub) -> None:
    """The sandbox's homeserver (under /sandbox/matrix) has hookhub's appservice registered
    with the sandbox's tokens; its transactions go to the matrix integration's webhook URL."""
    state = await hub.state()
    await _both_ways(hub, "matrix", state["chats"]["matrix"]["settings"])
    assert (await hub.state())["matrix"]["appservice_url"].startswith(
        hub.stack.origin + "/api/webhooks/matrix/"
    )


async def test_telegram_both_ways_through_the_stand_in(hub: Hub) -> None:
    state = await hub.state()
    await _both_ways(hub, "telegram", {"bot_token": state["telegram"]["bot_token"]})
    # hookhub pointed the bot's webhook at itself when the integration was made.
    webhook = (await hub.state())["telegram"]["webhook"]
    assert webhook.startswith(hub.stack.origin + "/api/webhooks/telegram/")
    # The probe's case: the same bot again, in another workspace, took the webhook (201).
    await _second_integration_refused(hub, "telegram", state["telegram"]["bot_token"])
    assert (await hub.state())["telegram"]["webhook"] == webhook


async def test_one_chat_channel_bridged_to_every_network_passes_each_message_on_once(
    hub: Hub,
) -> None:
    """As a newcomer bridges them: every network's first channel mapped to one chat
    channel, with the settings the sandbox's page gives. A user writes in each network; the
    chat product keeps the message and announces it as its own, naming the message it
    brought in (`inbound_id`: the page's "pass on"): each other network then shows it once,
    and the network it came from never again."""
    state = await hub.state()
    channels = await _bridge_every_network(hub, state)
    networks = sorted(channels)
    said: dict[str, str] = {}
    async with hub.tap("hookhub.chat.inbound") as tap:
        for network in networks:
            text = said[network] = f"hello everyone from {network} {uuid.uuid4().hex[:6]}"
            user = state[network]["users"][0]
            await hub.post(
                f"/sandbox/api/{network}/messages",
                {"channel": channels[network], "user": user["id"], "text": text},
            )
            [received] = await tap.wait_for(_with_text(text), timeout=30)
            assert received["channel_id"] == BRIDGED, received
            # The page's "pass on": the chat's message.created naming it (inbound_id).
            passed = f"/sandbox/api/chat/messages/{received['id']}/pass_on"
            await until(
                functools.partial(_passed_on, hub, passed), timeout=30, what="it in the chat"
            )

    async def holding(network: str, text: str) -> list[dict[str, Any]]:
        answer = await hub.client.get(
            f"/sandbox/api/{network}/channels/{channels[network]}/messages"
        )
        assert answer.status_code == 200, answer.text
        return [m for m in answer.json()["items"] if text in m["text"]]

    for origin, text in said.items():
        for network in networks:
            if network != origin:
                await until(
                    functools.partial(holding, network, text),
                    timeout=30,
                    what=f"{text} in {network}",
                )
    for origin, text in said.items():
        for network in networks:
            found = await holding(network, text)
            assert len(found) == 1, (origin, network, found)
            assert found[0]["from_hookhub"] is (network != origin), (origin, network, found)


async def _passed_on(hub: Hub, path: str) -> bool:
    """Passed on once the page's chat holds it (404 until it has read it)."""
    answer = await hub.client.post(path, json={"channel": BRIDGED})
    assert answer.status_code in (200, 404), answer.text
    return answer.status_code == 200


async def _bridge_every_network(hub: Hub, state: dict[str, Any]) -> dict[str, str]:
    """Every network's first channel mapped to BRIDGED with the settings the page gives, as
    a newcomer bridges them, once sync is connected to each: network → that channel."""
    channels = {}
    for network in sorted(state["chats"]):
        integration = await hub.integration(network, state["chats"][network]["settings"])
        assert integration["status"] == "connected", integration
        channels[network] = state[network]["channels"][0]["id"]
        assert await hub.mapped(integration["id"], channels[network], BRIDGED) == BRIDGED

    async def connected() -> bool:  # networks whose events come over sync's own connection
        now = await hub.state()
        return all(now[network].get("connected", True) for network in channels)

    await until(connected, timeout=30, what="sync connected to every network")
    return channels


def _with_text(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda v: v.get("text") == text


def _changing(message_id: str, kind: str) -> Callable[[dict[str, Any]], bool]:
    return lambda v: v.get("message_id") == message_id and v["type"] == kind


async def test_a_users_edit_and_delete_reach_the_chat_where_the_network_tells_of_them(
    hub: Hub,
) -> None:
    """In every network, a user's message edited, then deleted, through the page's routes:
    `message.edited` (the new text) and `message.deleted` on hookhub.chat.inbound, each
    naming the message hookhub brought in. Where the network tells a bot nothing of it
    (Telegram's deletes; Google Chat's edits and deletes) the route is a 422 saying so, and
    the state does not offer it. hookhub's own post is not a user's to change."""
    state = await hub.state()
    chats = state["chats"]
    assert {n for n, c in chats.items() if not c["can"]["edit"]} == {"googlechat"}
    assert {n for n, c in chats.items() if not c["can"]["delete"]} == {"googlechat", "telegram"}
    channels = await _bridge_every_network(hub, state)
    kinds = {"edit": "message.edited", "delete": "message.deleted"}
    async with hub.tap("hookhub.chat.inbound") as tap:
        for network, external in channels.items():
            text = f"to change in {network} {uuid.uuid4().hex[:6]}"
            sent = await hub.post(
                f"/sandbox/api/{network}/messages",
                {"channel": external, "user": state[network]["users"][0]["id"], "text": text},
            )
            [received] = await tap.wait_for(_with_text(text), timeout=30)
            path = f"/sandbox/api/{network}/messages/{quote(sent['id'], safe='')}"
            changes = {"edit": {"channel": external, "text": f"{text}, edited"}}
            changes["delete"] = {"channel": external}
            for action, body in changes.items():
                if not chats[network]["can"][action]:
                    refused = await hub.post(f"{path}/{action}", body, 422)
                    assert refused["error"] == {
                        "code": "unsupported",
                        "message": chats[network]["cannot"][action],
                    }, network
                    assert chats[network]["name"] in refused["error"]["message"]
                    continue
                done = await hub.post(f"{path}/{action}", body, 200)
                assert done["id"] == sent["id"] and done["delivered"] in (200, True), done
                found = await tap.wait_for(_changing(received["id"], kinds[action]), timeout=30)
                assert len(found) == 1, (network, action, done, found)
                [change] = found
                assert change["channel_id"] == BRIDGED, change
                if action == "edit":
                    assert change["text"] == body["text"], change
                    shown = await hub.posted(network, external, body["text"])
                    assert shown["edited"] is True, shown
            listed = await hub.client.get(f"/sandbox/api/{network}/channels/{external}/messages")
            kept = [m["id"] for m in listed.json()["items"]]
            assert (sent["id"] in kept) is not chats[network]["can"]["delete"], network

    # hookhub's post is the chat product's to change; a message not there is a 404.
    slack = channels["slack"]
    posted = f"hookhub's own {uuid.uuid4().hex[:6]}"
    await hub.chat_message(BRIDGED, posted)
    ours = await hub.posted("slack", slack, posted)
    refused = await hub.post(
        f"/sandbox/api/slack/messages/{ours['id']}/delete", {"channel": slack}, 422
    )
    assert refused["error"]["code"] == "hookhub_post", refused
    await hub.post("/sandbox/api/slack/messages/1.000001/delete", {"channel": slack}, 404)


async def test_googlechat_both_ways_through_the_stand_in(hub: Hub) -> None:
    """With the state's service account key and project number: the Chat app's endpoint is
    found from the integration (its webhook URL), its events signed by the stand-in's key."""
    googlechat = (await hub.state())["googlechat"]
    settings = {
        "service_account_json": googlechat["service_account_json"],
        "audience": googlechat["audience"],
    }
    await _both_ways(hub, "googlechat", settings)
    assert (await hub.state())["googlechat"]["endpoint_url"].startswith(
        hub.stack.origin + "/api/webhooks/googlechat/"
    )


async def _second_integration_refused(hub: Hub, provider: str, bot_token: str) -> None:
    """A second integration of the sandbox's bot, in another workspace: 409 `bot_in_use`,
    naming neither the first's workspace nor the first."""
    first = await hub.integration(provider, {})
    answer = await hub.client.post(
        "/api/integrations",
        json={"provider": provider, "workspace_id": "ws_probe", "settings": {"bot_token": bot_token}},
    )  # fmt: skip
    assert answer.status_code == 409, answer.text
    error = answer.json()["error"]
    assert error["code"] == "bot_in_use"
    assert "ws_demo" not in error["message"] and first["id"] not in error["message"]
    assert (await hub.client.get(f"/api/integrations/{first['id']}")).json()["status"] == (
        "connected"
    )


async def test_a_github_event_from_the_sandbox_reaches_provider_events(hub: Hub) -> None:
    state = await hub.state()
    integration = await hub.integration(
        "github", {"webhook_secret": state["github"]["webhook_secret"]}
    )
    title = f"Add the widget endpoint {uuid.uuid4().hex[:6]}"
    async with hub.tap("hookhub.provider.events") as tap:
        sent = await hub.post(
            "/sandbox/api/github/events", {"event": "pull_request.opened", "title": title}
        )
        ours = [d for d in sent["deliveries"] if integration["id"] in d["url"]]
        assert ours and ours[0]["ok"] is True, sent
        [event] = await tap.wait_for(
            lambda v: v.get("integration_id") == integration["id"], timeout=30
        )
    assert event["provider"] == "github"
    assert event["event_type"] == "pull_request"
    assert event["payload"]["action"] == "opened"
    assert event["payload"]["pull_request"]["title"] == title


async def test_the_sandbox_log_is_json_lines_like_every_other(hub: Hub) -> None:
    """`.hookhub/logs/sandbox.log`, like the services' logs: one JSON object a line, uvicorn's
    and the stand-ins' own lines (a webhook the GitHub stand-in delivered) alike."""
    state = await hub.state()
    await hub.integration("github", {"webhook_secret": state["github"]["webhook_secret"]})
    title = f"Logged {uuid.uuid4().hex[:6]}"
    await hub.post("/sandbox/api/github/events", {"event": "issues.opened", "title": title})
    log = hub.stack.data_dir / "logs" / "sandbox.log"

    async def logged() -> list[str] | None:
        lines = [line for line in log.read_text().splitlines() if line.strip()]
        return lines if any("sandbox_webhook_delivered" in line for line in lines) else None

    lines = await until(logged, timeout=30, what="the stand-in's delivery in sandbox.log")
    not_json = [line for line in lines if not _json_object(line)]
    assert not not_json, not_json[:5]
    delivered = [
        entry
        for entry in map(json.loads, lines)
        if entry.get("event") == "sandbox_webhook_delivered"
    ]
    assert delivered[-1]["service"] == "sandbox", delivered[-1]
    assert delivered[-1]["webhook"] == "issues", delivered[-1]


def _json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


async def test_an_api_import_from_the_sandbox_slack(hub: Hub) -> None:
    state = await hub.state()
    slack = state["slack"]
    integration = await hub.integration("slack", {"bot_token": slack["bot_token"]})
    external = slack["channels"][-1]["id"]
    texts = [f"old news {n} {uuid.uuid4().hex[:6]}" for n in range(3)]
    for text in texts:
        await hub.post(
            "/sandbox/api/slack/messages",
            {"channel": external, "user": slack["users"][1]["id"], "text": text},
        )
    channel = "ch_import_" + uuid.uuid4().hex[:6]
    async with hub.tap("hookhub.chat.inbound") as tap:
        job = await hub.post(
            f"/api/integrations/{integration['id']}/import",
            {"channel_ids": [external], "channel_map": {external: channel}},
            status=202,
        )

        async def finished() -> dict[str, Any] | None:
            answer = (await hub.client.get(f"/api/imports/{job['id']}")).json()
            return answer if answer["status"] in ("completed", "failed") else None

        done = await until(finished, timeout=60, what="the import")
        assert done["status"] == "completed", done
        imported = await tap.wait_for(
            lambda v: v.get("channel_id") == channel and v.get("imported") is True,
            count=len(texts),
            timeout=30,
        )
    assert {m["text"] for m in imported} >= set(texts)


async def test_a_telegram_message_synced_live_and_imported_from_an_export_is_one_envelope(
    hub: Hub, tmp_path: Path
) -> None:
    """A newcomer's bot syncs the sandbox's supergroup; a message said there live, then the
    chat's Telegram Desktop export uploaded: the export's copy has the live one's id."""
    state = await hub.state()
    telegram = state["telegram"]
    integration = await hub.integration("telegram", {"bot_token": telegram["bot_token"]})
    chat = telegram["channels"][-1]
    assert chat["id"].startswith("-100"), chat  # a supergroup, as the Bot API names it
    channel = "ch_tg_" + uuid.uuid4().hex[:6]
    await hub.mapping(integration["id"], chat["id"], channel)
    user = telegram["users"][0]
    text = f"said live {uuid.uuid4().hex[:6]}"
    async with hub.tap("hookhub.chat.inbound") as tap:
        await hub.post(
            "/sandbox/api/telegram/messages",
            {"channel": chat["id"], "user": user["id"], "text": text},
        )
        [live] = await tap.wait_for(lambda v: v.get("text") == text, timeout=30)
        message_id = int(live["source"]["external_message_id"])
        said = tg.message(message_id, text, sender=(user["name"], f"user{user['id']}"))
        export_id = int(chat["id"].removeprefix("-100"))  # the export's id of a supergroup
        path = tmp_path / "result.json"
        path.write_bytes(
            tg.chat_export(tg.chat(chat["name"], "public_supergroup", export_id, [said]))
        )
        with path.open("rb") as file:
            answer = await hub.client.post(
                "/api/imports",
                data={"workspace_id": "ws_demo", "source": "telegram_export"},
                files={"file": ("result.json", file, "application/json")},
            )
        assert answer.status_code == 202, answer.text
        job = answer.json()
        assert job["integration_id"] == integration["id"]

        async def finished() -> dict[str, Any] | None:
            found = (await hub.client.get(f"/api/imports/{job['id']}")).json()
            return found if found["status"] in ("completed", "failed") else None

        done = await until(finished, timeout=60, what="the import")
        assert done["status"] == "completed", done
        [imported] = await tap.wait_for(
            lambda v: v.get("channel_id") == channel and v.get("imported") is True, timeout=30
        )
    assert imported["id"] == live["id"]


@pytest.mark.parametrize(
    ("provider", "source", "external", "texts"),
    [
        (
            "slack",
            "slack_export",
            "C0DEPLOYS",
            [
                "Deploying widgets v2.3.0 to staging.",
                "Staging looks good: error rate flat, p95 latency 180 ms.",
                "Ship it to production after the 3pm freeze lifts.",
            ],
        ),
        (
            "telegram",
            "telegram_export",
            "-1001000000001",
            [
                "Morning all! Standup in 10 minutes, same room as last week.",
                "On my way. I'll bring the release notes draft.",
                "Thanks Bob, can you share the link here too?",
                "Here: https://wiki.example.com/release-notes/2025-10",
                "Welcome aboard 🎉",
            ],
        ),
    ],
)
async def test_the_sandbox_s_sample_export_downloads_and_imports_into_its_mapped_channel(
    hub: Hub, provider: str, source: str, external: str, texts: list[str]
) -> None:
    """A newcomer downloads the sandbox's sample export of a provider, as the page links it,
    and uploads it as it is: the importer takes it for the sandbox's integration, whose
    mapping of the channel says where the history goes, and publishes every message."""
    state = await hub.state()
    integration = await hub.integration(provider, {"bot_token": state[provider]["bot_token"]})
    channel = await hub.mapped(integration["id"], external)
    download = await hub.client.get(f"/sandbox/api/exports/{provider}")
    assert download.status_code == 200, download.text
    disposition = download.headers["content-disposition"]
    assert disposition.startswith("attachment; filename="), disposition
    name = disposition.split("filename=")[1].strip('"')
    assert name.endswith(".zip" if provider == "slack" else "result.json"), name

    async with hub.tap("hookhub.chat.inbound") as tap:
        answer = await hub.client.post(
            "/api/imports",
            data={"workspace_id": "ws_demo", "source": source},
            files={"file": (name, download.content, download.headers["content-type"])},
        )
        assert answer.status_code == 202, answer.text
        assert answer.json()["integration_id"] == integration["id"]
        await hub.imported(answer.json())
        imported = await tap.wait_for(
            lambda v: (
                v.get("channel_id") == channel
                and v.get("imported") is True
                and v["source"]["provider"] == provider
            ),
            count=len(texts),
            timeout=30,
        )
    by_text = {m["text"]: m for m in imported}
    assert sorted(by_text) == sorted(texts), sorted(by_text)
    assert all(m["occurred_at"].startswith("2025-10-0") for m in imported), imported
    # A reply is threaded under the message it answers.
    reply = by_text[texts[2]]
    assert reply["thread_id"] == by_text[texts[0] if provider == "slack" else texts[1]]["id"]


async def test_the_sandbox_sends_every_catalog_provider_s_webhook_signed(hub: Hub) -> None:
    """Each provider's documented sample, signed for the sandbox's own integration of it
    (made on first use), accepted by hookhub and on hookhub.provider.events; sent again, the
    same integration and a redelivery (200, published once)."""
    listed = await hub.client.get("/sandbox/api/webhooks")
    assert listed.status_code == 200, listed.text
    assert [i["provider"] for i in listed.json()["items"]] == list(sendable())
    async with hub.tap("hookhub.provider.events") as tap:
        sent: dict[str, dict[str, Any]] = {}
        for provider in sendable():
            answer = await hub.post(f"/sandbox/api/webhooks/{provider}", {})
            assert answer["status"] == 200 and answer["outcome"] == "accepted", answer
            assert answer["webhook_url"] == (
                f"{hub.stack.origin}/api/webhooks/{provider}/{answer['integration_id']}"
            )
            assert answer["event_type"], answer
            assert answer["sent_headers"], answer
            sent[answer["integration_id"]] = answer

        async def arrived() -> bool:
            await tap.poll()
            return set(sent) <= {v.get("integration_id") for v in tap.values()}

        await until(arrived, timeout=30, what="every provider's webhook on provider.events")
        again = await hub.post("/sandbox/api/webhooks/stripe", {})
        assert again["status"] == 200 and again["integration_id"] in sent, again
        # A 200 alone would not tell it from the first: the answer says it.
        assert again["outcome"] == "duplicate" and again["notification"] is None, again
        await tap.poll()
    # The sandbox's own integrations are shared with the module's other tests (a
    # PagerDuty card's webhook may be on the topic too): each answer is one of its
    # integration's envelopes.
    for integration_id, answer in sent.items():
        envelopes = [
            (v["provider"], v["event_type"], v["workspace_id"])
            for v in tap.values()
            if v.get("integration_id") == integration_id
        ]
        wanted = (answer["provider"], answer["event_type"], "ws_demo")
        assert wanted in envelopes, (wanted, envelopes)
    listing = (await hub.client.get("/sandbox/api/webhooks")).json()["items"]
    assert {i["integration_id"] for i in listing} == set(sent)


async def test_the_sandbox_signs_for_a_users_integration_with_the_settings_given(
    hub: Hub,
) -> None:
    secret = "whsec_" + uuid.uuid4().hex
    made = await hub.post(
        "/api/integrations",
        {"provider": "stripe", "workspace_id": "ws_demo", "settings": {"signing_secret": secret}},
    )
    mine = made["id"]
    unsigned = await hub.post("/sandbox/api/webhooks/stripe", {"integration_id": mine}, 422)
    assert unsigned["error"]["code"] == "settings_required"
    assert "never returns a secret" in unsigned["error"]["message"]
    wrong = await hub.post(
        "/sandbox/api/webhooks/stripe",
        {"integration_id": mine, "settings": {"signing_secret": "whsec_other"}},
    )
    assert wrong["status"] == 401, wrong
    assert wrong["answer"]["error"]["code"] == "invalid_signature"
    async with hub.tap("hookhub.provider.events") as tap:
        right = await hub.post(
            "/sandbox/api/webhooks/stripe",
            {"integration_id": mine, "settings": {"signing_secret": secret}},
        )
        assert right["status"] == 200, right
        assert right["integration_id"] == mine and right["webhook_url"] == made["webhook_url"]
        assert right["sent_headers"]["stripe-signature"].startswith("t="), right
        [event] = await tap.wait_for(lambda v: v.get("integration_id") == mine, timeout=30)
    # Not the catalog's `setup_intent.created`, which no default subscription posts.
    assert event["event_type"] == right["event_type"] == "charge.dispute.created"
    other = await hub.post(
        "/sandbox/api/webhooks/hmac",
        {"integration_id": mine, "settings": {"secret": "x"}},
        422,
    )
    assert other["error"]["message"] == f"integration {mine} takes stripe webhooks, not hmac's"
    alerts = await hub.post(
        "/api/integrations",
        {"provider": "alertmanager", "workspace_id": "ws_demo", "settings": {"token": "t"}},
    )
    misdirected = await hub.post(
        "/sandbox/api/webhooks/stripe",
        {"integration_id": alerts["id"], "settings": {"signing_secret": secret}},
        422,
    )
    assert misdirected["error"]["message"] == (
        f"integration {alerts['id']} takes alertmanager webhooks, not stripe's"
    )
    elsewhere = await hub.post(
        "/sandbox/api/webhooks/stripe",
        {"integration_id": f"{mine}/mappings", "settings": {"signing_secret": secret}},
        422,
    )
    assert "an integration's id" in elsewhere["error"]["message"]
    # A sender offering a choice (GitLab's secret token or signing token): the one the
    # integration was made with is enough.
    token = "tok-" + uuid.uuid4().hex
    gitlab = await hub.post(
        "/api/integrations",
        {"provider": "gitlab", "workspace_id": "ws_demo", "settings": {"secret_token": token}},
    )
    sent = await hub.post(
        "/sandbox/api/webhooks/gitlab",
        {"integration_id": gitlab["id"], "settings": {"secret_token": token}},
    )
    assert sent["status"] == 200, sent
    unknown = await hub.post("/sandbox/api/webhooks/slack", {}, 404)
    assert "GET /sandbox/api/webhooks" in unknown["error"]["message"]


async def test_an_alert_that_fires_and_resolves_is_one_thread_in_the_chat(hub: Hub) -> None:
    """docs/notifications.md's walk-through: an Alertmanager integration and a subscription,
    the sandbox sends Alertmanager's firing sample, then its resolved one: one thread, its
    root edited to resolved."""
    token = uuid.uuid4().hex
    made = await hub.post(
        "/api/integrations",
        {"provider": "alertmanager", "workspace_id": "ws_demo", "settings": {"token": token}},
    )
    channel = "ch_alerts_" + uuid.uuid4().hex[:6]
    await hub.post(f"/api/integrations/{made['id']}/subscriptions", {"channel_id": channel})
    mine = {"integration_id": made["id"], "settings": {"token": token}}
    unknown = await hub.post("/sandbox/api/webhooks/alertmanager", {**mine, "sample": "x"}, 422)
    assert "firing.json, resolved.json" in unknown["error"]["message"]
    async with hub.tap("hookhub.chat.inbound") as tap:
        for sample in ("firing.json", "resolved.json"):
            sent = await hub.post("/sandbox/api/webhooks/alertmanager", {**mine, "sample": sample})
            assert sent["status"] == 200 and sent["event_type"] == sample[:-5], sent
        root, resolved, edit = await tap.wait_for(
            lambda v: v["channel_id"] == channel, count=3, timeout=30
        )
    assert root["type"] == "message.received" and "thread_id" not in root
    assert root["card"]["state"] == "firing" and "FIRING:2" in root["text"]
    assert resolved["thread_id"] == root["id"] and "RESOLVED" in resolved["text"]
    assert edit["type"] == "message.edited" and edit["message_id"] == root["id"]
    assert edit["card"]["state"] == "resolved" and edit["card"]["color"] == "#1f883d"
    assert {f["name"] for f in edit["card"]["fields"]} >= {"By", "Open for"}
    # A sample whose provider sends a delivery id in a header is a delivery of its own.
    pagerduty = await hub.post(
        "/sandbox/api/webhooks/pagerduty", {"sample": "incident_triggered.json"}
    )
    assert pagerduty["status"] == 200 and pagerduty["event_type"] == "incident.triggered"
    assert pagerduty["sent_headers"]["x-webhook-id"] != "01BWDWL3P0RBTW7CM9GDXDTPNV"
    # Where the event's name is a header, the files do not hold it: the catalog sample only.
    header = await hub.post("/sandbox/api/webhooks/bitbucket", {"sample": "other.json"}, 422)
    assert "names the event in a header" in header["error"]["message"]


async def _card(hub: Hub, provider: str, channel: str, sample: str | None = None) -> dict[str, Any]:
    """A new item of `provider` made at its stand-in and its webhook sent to the sandbox's
    own integration, subscribed into `channel`: its root, once the chat has it (not a card
    another test left in the channel)."""
    body: dict[str, Any] = {"fresh": True, "channel_id": channel}
    if sample:
        body["sample"] = sample
    listed = await hub.client.get(f"/sandbox/api/chat/channels/{channel}/messages")
    before = (
        {m["id"] for m in listed.json().get("items", [])} if listed.status_code == 200 else set()
    )
    sent = await hub.post(f"/sandbox/api/webhooks/{provider}", body)
    assert sent["status"] == 200 and sent["outcome"] == "accepted", sent

    async def root() -> dict[str, Any] | None:
        answer = await hub.client.get(f"/sandbox/api/chat/channels/{channel}/messages")
        found = [
            m
            for m in answer.json().get("items", [])
            if (m["card"] or {}).get("actions") and m["id"] not in before
        ]
        return found[0] if answer.status_code == 200 and found else None

    return dict(await until(root, timeout=30, what=f"the {provider} card in the chat"))


async def _incident_in(
    hub: Hub, network: str, external: str, channel: str
) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """A new PagerDuty incident's card in chat channel `channel`, bridged to the network's
    `external`: the chat's card, the incident's id, and the card in the network once it
    shows its buttons (acknowledge first)."""
    card = await _card(hub, "pagerduty", channel, "incident_triggered.json")
    incident = card["card"]["url"].rsplit("/", 1)[-1]

    async def shown() -> dict[str, Any] | None:
        answer = await hub.client.get(f"/sandbox/api/{network}/channels/{external}/messages")
        found = [m for m in answer.json()["items"] if incident in m["text"] and m["buttons"]]
        return found[0] if found else None

    posted = await until(shown, timeout=30, what=f"the card with its buttons in {network}")
    assert posted["buttons"][0]["action"] == "acknowledge", posted
    return card, incident, dict(posted)


async def _replied(hub: Hub, channel: str, root: str, text: str) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        answer = await hub.client.get(f"/sandbox/api/chat/channels/{channel}/messages")
        found = [m for m in answer.json()["items"] if m["thread"] == root and text in m["text"]]
        return found[0] if found else None

    return dict(await until(find, timeout=30, what=f"{text!r} in the card's thread"))


async def test_an_alert_silenced_from_the_chat_acts_at_the_stand_in_as_the_linked_user(
    hub: Hub,
) -> None:
    """Issue #62's first trial: an Alertmanager alert fires (a group of its own, at the
    sandbox's integration, which acts on the sandbox's Alertmanager), Carol silences it
    from the chat: one silence, made by her linked name, said in the thread."""
    channel = "ch_alerts_" + uuid.uuid4().hex[:6]
    card = await _card(hub, "alertmanager", channel)
    assert card["card"]["actions"][0]["id"] == "silence:1h", card
    before = len((await hub.state())["alertmanager"]["calls"])
    clicked = await hub.post(
        "/sandbox/api/chat/click",
        {"channel": channel, "message": card["id"], "action": "silence:1h", "user": "u_carol"},
    )
    assert clicked["delivered"] == 202, clicked
    reply = await _replied(hub, channel, card["id"], "Silenced for 1 h")
    assert "Carol Chen" in reply["text"] and "(from chat)" in reply["text"], reply
    alertmanager = (await hub.state())["alertmanager"]
    assert [c["as"] for c in alertmanager["calls"][before:]] == ["carol@example.com"]
    [silence] = [s for s in alertmanager["silences"] if s["created_by"] == "carol@example.com"]
    assert {m["name"] for m in silence["matchers"]} >= {"alertname", "sandbox"}


async def test_an_incident_acknowledged_from_slack_and_resolved_from_the_chat(hub: Hub) -> None:
    """Issue #62's second trial: a PagerDuty incident's card in a chat channel bridged to
    Slack; Alice acknowledges it with Slack's button, Bob resolves it from the chat: each
    one call at the PagerDuty stand-in, `From` their linked email."""
    state = await hub.state()
    slack = await hub.integration("slack", {"bot_token": state["slack"]["bot_token"]})
    external = state["slack"]["channels"][2]["id"]
    channel = await hub.mapped(slack["id"], external)
    card, incident, posted = await _incident_in(hub, "slack", external, channel)
    unknown = await hub.post(
        "/sandbox/api/slack/click",
        {"channel": external, "message": posted["id"], "action": "close", "user": "Alice Archer"},
        422,
    )
    assert "acknowledge" in unknown["error"]["message"]
    clicked = await hub.post(
        "/sandbox/api/slack/click",
        {
            "channel": external,
            "message": posted["id"],
            "action": "acknowledge",
            "user": "Alice Archer",
        },
    )
    assert clicked["delivered"] == 200, clicked
    # Named as Slack names her (her user name there), the click from Slack.
    said = await _replied(hub, channel, card["id"], "Acknowledged by alice (from Slack)")
    assert said["text"].startswith("✓"), said
    await hub.post(
        "/sandbox/api/chat/click",
        {"channel": channel, "message": card["id"], "action": "resolve", "user": "Bob Baker"},
    )
    said = await _replied(hub, channel, card["id"], "Resolved by Bob Baker")
    assert "(from chat)" in said["text"], said
    pagerduty = (await hub.state())["pagerduty"]
    [acted] = [i for i in pagerduty["incidents"] if i["id"] == incident]
    assert acted["status"] == "resolved", acted
    assert (acted["acknowledged_by"], acted["resolved_by"]) == (
        ["alice@example.com"],
        "bob@example.com",
    )
    puts = [c["as"] for c in pagerduty["calls"] if c["method"] == "PUT" and incident in c["path"]]
    assert puts == ["alice@example.com", "bob@example.com"], pagerduty["calls"]


def test_the_sample_sent_first_is_one_a_default_subscription_posts() -> None:
    """For every provider with a sample a subscription of its default events posts, the
    sandbox sends one such first (the catalog's where it is one): Stripe's catalog sample,
    `setup_intent.created`, is not; Alertmanager's first fires, its second resolves."""
    for provider, entry in sendable().items():
        first, *others = samples(entry)
        if posted_by_default(entry, first) is None:
            assert not [n for n in others if posted_by_default(entry, n)], provider
    stripe = samples(sendable()["stripe"])
    assert stripe[0] != "setup_intent.created.json" and "setup_intent.created.json" in stripe
    assert samples(sendable()["alertmanager"]) == ["firing.json", "resolved.json"]


async def test_the_sandbox_says_when_an_event_is_filtered_or_a_redelivery(hub: Hub) -> None:
    """Stripe with a subscription of its defaults, as a newcomer makes it: the catalog's
    `setup_intent.created` is said to be left out (it was a silent 200), the sample sent
    first is posted in the channel, and its second send is said to be a redelivery."""
    secret = "whsec_" + uuid.uuid4().hex
    made = await hub.post(
        "/api/integrations",
        {"provider": "stripe", "workspace_id": "ws_demo", "settings": {"signing_secret": secret}},
    )
    channel = "ch_payments_" + uuid.uuid4().hex[:6]
    subscription = await hub.post(
        f"/api/integrations/{made['id']}/subscriptions", {"channel_id": channel}
    )
    mine = {"integration_id": made["id"], "settings": {"signing_secret": secret}}
    left_out = await hub.post(
        "/sandbox/api/webhooks/stripe", {**mine, "sample": "setup_intent.created.json"}
    )
    assert left_out["status"] == 200 and left_out["outcome"] == "accepted", left_out
    told = left_out["notification"]
    assert told["event"] == "setup_intent.created" and told["default"] is False, told
    assert told["subscriptions"] == [
        {"id": subscription["id"], "channel_id": channel, "left_out": "event"}
    ]
    async with hub.tap("hookhub.chat.inbound") as tap:
        first = await hub.post("/sandbox/api/webhooks/stripe", mine)
        assert first["outcome"] == "accepted", first
        assert first["notification"]["subscriptions"][0]["left_out"] is None, first
        [posted] = await tap.wait_for(lambda v: v["channel_id"] == channel, timeout=30)
    assert posted["type"] == "message.received" and "thread_id" not in posted, posted
    again = await hub.post("/sandbox/api/webhooks/stripe", mine)
    assert again["status"] == 200 and again["outcome"] == "duplicate", again
    assert again["sample"] == first["sample"] and again["notification"] is None


def test_an_unknown_sample_export_is_a_404(sandbox_stack: Stack) -> None:
    answer = httpx.get(sandbox_stack.origin + "/sandbox/api/exports/jira", timeout=20)
    assert answer.status_code == 404
    assert "'jira' is not one of slack, telegram" in answer.json()["error"]["message"]


# -- in Chromium -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    from tests.console.conftest import CHROMIUM, CHROMIUM_ARGS, need_chromium

    need_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _outside_playwright(work: Coroutine[Any, Any, T]) -> T:
    """Runs `work` to its end on a thread of its own: Playwright's sync API holds an event
    loop in this one."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


def _screenshot(page: Any, name: str) -> None:
    out = REPOSITORY / "test-output" / "sandbox"
    out.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out / f"{name}.png"), full_page=True)


def test_oauth_connect_through_the_consent_page(sandbox_stack: Stack, browser: Any) -> None:
    token = (sandbox_stack.data_dir / "admin_token").read_text().strip()
    auth = {"Authorization": f"Bearer {token}"}
    started = httpx.post(
        sandbox_stack.origin + "/api/auth/oauth/connect",
        json={"provider": "github", "workspace_id": "ws_demo"},
        headers=auth,
        timeout=20,
    )
    assert started.status_code in (200, 201), started.text
    url = started.json()["authorization_url"]
    assert url.startswith(sandbox_stack.origin + "/sandbox/github/")
    page = browser.new_page()
    try:
        page.goto(url)
        assert page.get_by_role("heading", name="GitHub (sandbox)").is_visible()
        _screenshot(page, "consent")
        page.get_by_role("button", name="Allow").click()
        page.wait_for_url(sandbox_stack.origin + "/**", timeout=30_000)
        assert "/sandbox/" not in page.url
    finally:
        page.close()
    integration_id = started.json().get("integration_id")
    listed = httpx.get(
        sandbox_stack.origin + "/api/integrations?provider=github", headers=auth, timeout=20
    ).json()["data"]
    connected = [
        i
        for i in listed
        if i["status"] == "connected"
        and (integration_id is None or i["id"] == integration_id)
        and i.get("account")
    ]
    assert connected, listed


def test_the_sandbox_page_shows_a_post_and_sends_a_users_message(
    sandbox_stack: Stack, browser: Any
) -> None:
    async def prepare() -> tuple[str, str, str, str]:
        async with _hub(sandbox_stack) as hub:
            state = await hub.state()
            integration = await hub.integration("slack", {"bot_token": state["slack"]["bot_token"]})
            external = state["slack"]["channels"][1]["id"]
            channel = "ch_page_" + uuid.uuid4().hex[:6]
            await hub.mapping(integration["id"], external, channel)
            text = f"posted by hookhub {uuid.uuid4().hex[:6]}"
            await hub.chat_message(channel, text)
            await hub.posted("slack", external, text)
            return state["slack"]["channels"][1]["name"], external, channel, text

    name, external, channel, posted = _outside_playwright(prepare())
    page = browser.new_page()
    try:
        page.goto(sandbox_stack.origin + "/sandbox/#slack")
        page.get_by_role("button", name="#" + name).click()
        hookhub_post = page.locator(".messages li.hookhub", has_text=posted)
        hookhub_post.wait_for(timeout=30_000)
        assert hookhub_post.locator(".badge").inner_text() == "hookhub"
        # hookhub's post is the chat product's to change: no edit or delete on it.
        assert hookhub_post.get_by_role("button", name="edit").count() == 0
        written = f"typed in the page {uuid.uuid4().hex[:6]}"
        page.get_by_role("textbox", name="Message").fill(written)
        page.get_by_role("button", name="Send").click()
        mine = page.locator(".messages li", has_text=written)
        mine.wait_for(timeout=30_000)
        _screenshot(page, "page")
        # The user edits it: the text in a box, saved, the list shows it "(edited)".
        edited = f"{written}, edited in the page"
        mine.get_by_role("button", name="edit").click()
        box = page.get_by_role("form", name="Edit the message").get_by_label("New text")
        assert box.input_value() == written
        box.fill(edited)
        page.get_by_role("button", name="Save").click()
        page.locator(".messages li", has_text=edited).get_by_text("(edited)").wait_for(
            timeout=30_000
        )
        assert "Edited" in page.locator("#flash").inner_text()
        # `/hookhub link github` typed there: its answer, the user's ticket, to them alone.
        page.get_by_role("textbox", name="Message").fill("/hookhub link github")
        page.get_by_role("button", name="Send").click()
        alone = page.get_by_role("list", name="Said to you alone").locator("li")
        alone.filter(has_text="/api/auth/oauth/link/").wait_for(timeout=30_000)
        assert "only Alice Archer sees this" in alone.first.inner_text()
        listed = page.get_by_role("list", name="Messages")
        assert listed.get_by_text("/api/auth/oauth/link/").count() == 0
        # Her ticket's page, and its button: to GitHub's consent (it had answered 403: the
        # page's referrer policy made Chromium send its form's POST with `Origin: null`).
        ticket = alone.first.locator("a[href*='/api/auth/oauth/link/']").get_attribute("href")
        assert ticket is not None
        linking = browser.new_page()
        try:
            linking.goto(ticket)
            linking.get_by_text("Continue to the provider").click()
            linking.get_by_role("heading", name="GitHub (sandbox)").wait_for(timeout=30_000)
            # Back from her consent: a page saying whom she is linked as, not the API's JSON.
            linking.get_by_role("button", name="Allow").click()
            linking.get_by_role("heading", name="Linked").wait_for(timeout=30_000)
            said = linking.locator("main").inner_text()
            assert "(slack:U0ALICE) is linked to your GitHub account" in said, said
        finally:
            linking.close()
        page.locator("form.write select[name=user]").select_option(label="Bob Baker")
        assert alone.count() == 0
        page.locator("form.write select[name=user]").select_option(label="Alice Archer")
        # What connecting this channel takes: its id, and the settings the console asks.
        page.get_by_text("Connect it").click()
        assert page.locator(".connect dd.channel-id").inner_text() == external
        # The chat's user answers it in its thread from the Chat product tab; what Slack said
        # is not said again there (it read as the chat's own answer).
        page.get_by_role("tab", name="Chat product").click()
        assert page.locator("#flash").inner_text() == ""
        chats = page.get_by_role("region", name="Chat channels")
        chats.get_by_role("button", name=channel, exact=True).click()
        chats.get_by_label("You are").select_option(label="Bob Baker")
        page.locator(".messages li", has_text=edited).get_by_role("button", name="reply").click()
        answer = f"answered in the page {uuid.uuid4().hex[:6]}"
        page.get_by_role("form", name="Write in the chat").get_by_label("Message").fill(answer)
        page.get_by_role("button", name="Send").click()
        page.locator(".messages li", has_text=answer).wait_for(timeout=30_000)
        page.get_by_role("tab", name="Slack").click()
        threaded = page.locator(".messages li.hookhub", has_text=answer)
        threaded.wait_for(timeout=30_000)
        assert threaded.locator(".who").inner_text() == "Bob Baker"
        assert f"in reply to Alice Archer: “{edited[:30]}" in threaded.inner_text()
        _screenshot(page, "chat-reply")
        # GitHub's buttons: a pull request opened through the page is in its list.
        page.get_by_role("tab", name="GitHub").click()
        title = f"From the page {uuid.uuid4().hex[:6]}"
        opened = page.get_by_role("form", name="Open a pull request")
        opened.get_by_label("Title").fill(title)
        opened.get_by_role("button", name="Open a pull request").click()
        page.get_by_role("region", name="Pull requests").get_by_text(title).wait_for(timeout=30_000)
        assert "pull_request.opened" in page.locator("#flash").inner_text()
        _screenshot(page, "github")
    finally:
        page.close()

    async def arrived() -> list[dict[str, Any]]:
        async with KafkaTap(sandbox_stack.kafka_bootstrap, "hookhub.chat.inbound") as tap:
            found = await tap.wait_for(_with_text(written), timeout=30)
            return found + await tap.wait_for(_with_text(edited), timeout=30)

    [received, edit] = _outside_playwright(arrived())
    assert received["channel_id"] == channel
    assert edit["type"] == "message.edited" and edit["message_id"] == received["id"], edit


def test_the_console_links_the_sandbox_and_fills_in_its_workspace(
    sandbox_stack: Stack, browser: Any
) -> None:
    token = (sandbox_stack.data_dir / "admin_token").read_text().strip()

    async def teams_mapped() -> tuple[str, str]:
        async with _hub(sandbox_stack) as hub:
            state = await hub.state()
            integration = await hub.integration("teams", state["chats"]["teams"]["settings"])
            external = state["teams"]["channels"][0]["id"]
            await hub.mapped(integration["id"], external, BRIDGED)
            return integration["id"], external

    teams, external = _outside_playwright(teams_mapped())
    page = browser.new_page()
    try:
        page.goto(sandbox_stack.origin + "/#/endpoints")
        page.get_by_label("Admin token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        link = page.get_by_role("navigation", name="Pages").get_by_role("link", name="Sandbox")
        link.wait_for(timeout=30_000)
        assert link.get_attribute("href") == "/sandbox/"
        workspace = page.locator("main input[name=workspace_id]").first
        workspace.wait_for(timeout=30_000)
        assert workspace.input_value() == "ws_demo"
        _screenshot(page, "console")
        # A Teams channel mapped before Teams said its name: its id once (it was twice,
        # as its name and as its id).
        page.goto(sandbox_stack.origin + f"/#/mappings?integration_id={teams}")
        row = page.get_by_role("row").filter(has_text=external)
        row.wait_for(timeout=30_000)
        assert row.inner_text().count(external) == 1, row.inner_text()
        link.click()
        page.get_by_role("tab", name="Slack").wait_for(timeout=30_000)
        assert page.url == sandbox_stack.origin + "/sandbox/"
        # The sample export to import, beside the channels it holds the history of.
        download = page.get_by_role("region", name="Channels").get_by_role("link", name="Download")
        download.wait_for(timeout=30_000)
        assert download.get_attribute("href") == "/sandbox/api/exports/slack"
        # The walk-throughs, one click away, readable in the browser.
        page.get_by_role("link", name="docs/walkthroughs.md").click()
        page.wait_for_url(sandbox_stack.origin + "/sandbox/docs/walkthroughs.md")
        assert page.locator("body").inner_text().startswith("# Walk-throughs")
    finally:
        page.close()


def test_the_sandbox_page_sends_a_provider_s_webhook(sandbox_stack: Stack, browser: Any) -> None:
    page = browser.new_page()
    try:
        # The Credentials tab's lists, pairs of name and value, are text (they were
        # "[object HTMLElement]": the page's el() flattened its children one level only).
        page.goto(sandbox_stack.origin + "/sandbox/#credentials")
        github = page.get_by_role("region", name="github")
        github.wait_for(timeout=30_000)
        assert "webhook_secret" in github.inner_text()
        assert "[object" not in page.locator("main").inner_text()
        page.get_by_role("tab", name="Webhooks").click()
        form = page.get_by_role("form", name="Send a provider's webhook")
        form.get_by_label("Provider").select_option("standard_webhooks")
        form.get_by_role("button", name="Send the webhook").click()
        page.locator(".answer dd.status").wait_for(timeout=30_000)
        assert page.locator(".answer dd.status").inner_text() == "200"
        assert "hookhub answered 200" in page.locator("#flash").inner_text()
        assert "webhook-signature" in page.locator(".answer").inner_text()
        _screenshot(page, "webhooks")
    finally:
        page.close()


def test_a_card_s_button_clicked_in_the_page_s_chat(sandbox_stack: Stack, browser: Any) -> None:
    """The chat's tab shows an Opsgenie alert's card with its buttons; Alice clicks one and
    its outcome comes back in the card's thread."""
    channel = "ch_page_ops_" + uuid.uuid4().hex[:6]

    async def prepare() -> dict[str, Any]:
        async with _hub(sandbox_stack) as hub:
            return await _card(hub, "opsgenie", channel)

    card = _outside_playwright(prepare())
    page = browser.new_page()
    try:
        page.goto(sandbox_stack.origin + "/sandbox/#chat")
        page.get_by_role("region", name="Chat channels").get_by_role("button", name=channel).click()
        page.get_by_label("You are").select_option(label="Alice Archer")
        root = page.locator(f'.messages li[data-id="{card["id"]}"]')
        root.get_by_role("button", name="Acknowledge").click()
        page.locator(".messages li", has_text="Acknowledged by Alice Archer").wait_for(
            timeout=30_000
        )
        assert "clicked Acknowledge" in page.locator("#flash").inner_text()
        _screenshot(page, "chat-click")
    finally:
        page.close()


def test_the_sandbox_page_picks_a_sample_and_fits_a_phone(
    sandbox_stack: Stack, browser: Any
) -> None:
    """At 390 px (a phone) the Webhooks tab does not scroll sideways (a provider's name and
    category in its select made it 452 px wide) and the header band spans the page; an
    alert is sent firing, then resolved, each picked; a second send is said to be a
    redelivery (it was a bare 200). To an integration of the test's own: the module's
    other tests send the sandbox's own its first sample."""
    token = uuid.uuid4().hex
    made = httpx.post(
        sandbox_stack.origin + "/api/integrations",
        json={"provider": "alertmanager", "workspace_id": "ws_demo", "settings": {"token": token}},
        headers={
            "Authorization": "Bearer "
            + (sandbox_stack.data_dir / "admin_token").read_text().strip()
        },
        timeout=20,
    )
    assert made.status_code == 201, made.text
    page = browser.new_page(viewport={"width": 390, "height": 844})
    try:
        page.goto(sandbox_stack.origin + "/sandbox/#webhooks")
        form = page.get_by_role("form", name="Send a provider's webhook")
        form.get_by_label("Provider").select_option("alertmanager")
        form.get_by_label("Your integration id").fill(made.json()["id"])
        form.get_by_label("Its settings, as JSON").fill(json.dumps({"token": token}))
        sample = form.get_by_label("Sample")
        assert sample.locator("option").all_inner_texts() == [
            "firing.json (first)",
            "resolved.json",
        ]
        status = page.locator(".answer dd.outcome")
        for picked, outcome in (
            ("firing.json", "accepted"),
            ("resolved.json", "accepted"),
            ("resolved.json", "duplicate"),
        ):
            page.locator(".answer").evaluate("answer => answer.replaceChildren()")
            sample.select_option(picked)
            form.get_by_role("button", name="Send the webhook").click()
            status.wait_for(timeout=30_000)
            assert status.inner_text() == outcome
            assert page.locator(".answer dd.sample").inner_text() == picked
        assert "A redelivery: resolved.json was sent" in page.locator("#flash").inner_text()
        _screenshot(page, "webhooks-phone")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390
        band = page.locator("header.top").bounding_box()
        assert band is not None and band["width"] == width  # the band spans the page
    finally:
        page.close()


# -- refused where it does not belong ------------------------------------------------------


def test_the_sandbox_is_refused_in_production(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HOOKHUB_ENV": "production",
        "HOOKHUB_DATA_DIR": str(tmp_path / ".hookhub"),
        "HOOKHUB_ADMIN_TOKEN": "hh_admin_" + uuid.uuid4().hex,
        "HOOKHUB_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "HOOKHUB_PUBLIC_URL": "https://hookhub.example.com",
        "HOOKHUB_HTTP_PORT": str(http_base()),
    }
    for argv in (["run", "--sandbox"], ["sandbox", "--port", str(free_port())]):
        done = subprocess.run(
            [sys.executable, "-m", "services.cli", *argv],
            cwd=REPOSITORY,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, (argv, done.stdout, done.stderr)
        assert "only with HOOKHUB_ENV=dev" in done.stderr, done.stderr
    assert not (tmp_path / ".hookhub" / "sandbox.json").exists()
