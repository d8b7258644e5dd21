"""A card's actions as the networks' own buttons, and their clicks acted on (SPEC §20): the
notification's root goes to the chat, the chat (played here) publishes it, sync posts it to
the mapped network channels with the card's actions as buttons; a click there, signed as
the network signs it, reaches the gateway, is written on the click queue and acted on once
as the clicking network user's account link; a forged one is refused; a click naming a
message of another workspace's integration does nothing; the buttons follow the card."""

from __future__ import annotations

import dataclasses
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from services.sandbox.alertmanager import FakeAlertmanager
from services.sandbox.googlechat import rfc3339, rsa_key
from services.sandbox.mattermost import ADA, GRACE
from services.sandbox.teams import USERS, new_key
from services.sync.clicks.repository import ENDED
from shared.providers.chat import Author, CardAction, OutboundPost
from shared.providers.matrix.messages import format_content
from tests.support import admin_headers, served
from tests.sync import googlechat_world, mattermost_world, teams_world
from tests.sync.conftest import DISCORD_TOKEN, TELEGRAM_TOKEN, World, connect, until
from tests.sync.stand_ins import gchat, mattermost, teams
from tests.sync.test_notifications import (
    ALERTS,
    SECRET,
    corpus,
    link,
    send_alert,
    send_github,
    subscribe,
)

__all__ = ["gchat", "mattermost", "teams"]  # the shared stand-ins, fixtures here

SILENCES = ["silence:1h", "silence:4h", "silence:24h"]
# A Telegram user (core.telegram.org/bots/api#user).
BOB = {"id": 4702, "first_name": "Bob", "last_name": "Kahn", "username": "bob"}


@dataclass
class Card:
    """A firing alert group's root, as the chat got it and published it."""

    alertmanager: FakeAlertmanager
    integration_id: str
    token: str
    channel: str  # the chat channel
    root: dict[str, Any]  # its `message.received`
    chat_id: str  # the chat's id of it

    def reply(self, text: str) -> Callable[[dict[str, Any]], bool]:
        return lambda v: v.get("thread_id") == self.chat_id and text in v["text"]


@pytest.fixture
async def alertmanager() -> AsyncIterator[FakeAlertmanager]:
    async with served(FakeAlertmanager()) as fake:
        yield fake


async def firing_card(world: World, alertmanager: FakeAlertmanager, *mapped: Any) -> Card:
    """An Alertmanager integration that can act, subscribed in a new chat channel that each
    of `mapped` (`(integration id, external channel id)`) is mapped to; its firing group's
    root received and published by the chat."""
    token = uuid.uuid4().hex
    integration_id = await connect(
        world, "alertmanager", token=token, api_url=alertmanager.base_url
    )
    channel = (await subscribe(world, integration_id))["channel_id"]
    for network_integration, external in mapped:
        await world.map(network_integration, external, channel)
    await send_alert(world, integration_id, token)
    [root] = await world.chat.received(
        lambda v: v["channel_id"] == channel and "thread_id" not in v
    )
    assert [a["id"] for a in root["card"]["actions"]] == SILENCES
    chat_id = await published(world, channel, root)
    return Card(alertmanager, integration_id, token, channel, root, chat_id)


async def published(world: World, channel: str, root: dict[str, Any]) -> str:
    """The chat publishes the root it received as its own message: its chat id."""
    chat_id = world.new_id("m_")
    await world.chat.publish(
        "message.created",
        {
            "message_id": chat_id,
            "channel_id": channel,
            "text": root["text"],
            "inbound_id": root["id"],
        },
    )
    return chat_id


async def resolve(world: World, card: Card) -> None:
    """The group resolves: its root is edited without actions, and the chat publishes the
    edit."""
    answer = await world.gateway.client.post(
        f"/api/webhooks/alertmanager/{card.integration_id}",
        content=(ALERTS / "resolved.json").read_bytes(),
        headers={"content-type": "application/json", "authorization": f"Bearer {card.token}"},
    )
    assert answer.status_code == 200, answer.text
    [edit] = await world.chat.received(
        # The chat's id of the root, or its envelope's while sync has not read it back.
        lambda v: (
            v["type"] == "message.edited" and v.get("message_id") in (card.chat_id, card.root["id"])
        )
    )
    assert not edit["card"].get("actions"), edit["card"]
    await world.chat.publish(
        "message.updated",
        {"message_id": card.chat_id, "channel_id": card.channel, "text": edit["text"]},
    )


async def network_clicks(world: World, integration_id: str) -> list[dict[str, Any]]:
    clicks = world.sync_app.state.clicks
    found: list[dict[str, Any]] = await clicks._clicks.find(
        {"via.integration_id": integration_id}
    ).to_list()
    return found


async def ended(world: World, integration_id: str) -> list[dict[str, Any]]:
    """The integration's clicks once each has ended (the worker settles a click after it
    has said its outcome in the thread)."""

    async def read() -> list[dict[str, Any]] | None:
        found = await network_clicks(world, integration_id)
        return found if found and all(c["status"] in ENDED for c in found) else None

    found: list[dict[str, Any]] = await until(read, what="the clicks ended")
    return found


async def counted(world: World, provider: str, outcome: str) -> float:
    metrics = (await world.sync.get("/metrics")).text
    wanted = f'hookhub_sync_network_clicks_total{{outcome="{outcome}",provider="{provider}"}}'
    for line in metrics.splitlines():
        if line.startswith(wanted):
            return float(line.split()[-1])
    return 0.0


async def discord_interactions(world: World) -> Any:
    """The world's Discord bot with its application's Public Key on its integration and its
    Interactions Endpoint URL at the integration's webhook URL."""
    bot = world.discord.bots[DISCORD_TOKEN]
    answer = await world.oauth.client.patch(
        f"/api/integrations/{world.discord_integration}",
        json={"settings": {"public_key": bot.public_key}},
        headers=admin_headers(),
    )
    assert answer.status_code == 200, answer.text
    bot.interactions_endpoint_url = (
        f"{world.gateway.base_url}/api/webhooks/discord/{world.discord_integration}"
    )
    return bot


async def test_the_networks_show_a_cards_actions_as_buttons_and_a_signed_click_acts_once(
    world: World, alertmanager: FakeAlertmanager, teams: teams_world.Teams
) -> None:
    """One card in a chat channel mapped to Slack and Discord: each post carries its
    actions as buttons; a forged click is refused (401) and writes nothing; a signed click
    acts once as its network user's link (`slack:<id>`, `discord:<id>`), sent again it is
    the same click; the group resolved, the buttons go."""
    slack, discord = world.slack, world.discord
    await discord_interactions(world)
    slack_channel, discord_channel = world.slack_channel(), world.discord_channel()
    teams_channel = teams.channel()
    telegram, telegram_chat = world.telegram, world.telegram_chat()
    card = await firing_card(
        world,
        alertmanager,
        (world.slack_integration, slack_channel),
        (world.discord_integration, discord_channel),
        (teams.integration, teams_channel),
        (world.telegram_integration, telegram_chat),
    )
    [posted] = await until(lambda: slack.posts(slack_channel), what="the card posted to Slack")
    ts = posted["ts"]
    buttons = slack.buttons(slack_channel, ts)
    assert [b["action_id"] for b in buttons] == SILENCES
    assert [b["text"]["text"] for b in buttons] == ["Silence 1 h", "Silence 4 h", "Silence 24 h"]
    assert {b["value"] for b in buttons} == {card.chat_id}
    [discord_post] = await until(
        lambda: list(discord.channels[discord_channel].messages.values()),
        what="the card posted to Discord",
    )
    discord_id = discord_post["id"]
    assert [
        (b["custom_id"], b["label"], b["style"])
        for b in discord.buttons(discord_channel, discord_id)
    ] == [
        ("hh:silence:1h", "Silence 1 h", 1),
        ("hh:silence:4h", "Silence 4 h", 2),
        ("hh:silence:24h", "Silence 24 h", 2),
    ]

    [teams_post] = await until(lambda: teams.stored(teams_channel), what="the card in Teams")
    teams_id = teams_post["id"]
    assert [
        (a["title"], a["verb"], a["style"]) for a in teams.fake.buttons(teams_channel, teams_id)
    ] == [
        ("Silence 1 h", "silence:1h", "positive"),
        ("Silence 4 h", "silence:4h", "default"),
        ("Silence 24 h", "silence:24h", "default"),
    ]

    def click_discord(**how: Any) -> Any:  # Ada clicks "Silence 4 h" in Discord
        ada = "1300000000000000001"
        return discord.click(
            DISCORD_TOKEN, discord_channel, discord_id, "hh:silence:4h", ada, **how
        )

    def click_teams(**how: Any) -> Any:  # Alan clicks "Silence 24 h" in Teams
        return teams.fake.click(teams.bot, teams_channel, teams_id, "silence:24h", "alan", **how)

    [telegram_post] = await until(
        lambda: list(telegram.chats[telegram_chat].messages.values()),
        what="the card in Telegram",
    )
    telegram_id = telegram_post["message_id"]
    assert [
        (b["text"], b["callback_data"]) for b in telegram.buttons(telegram_chat, telegram_id)
    ] == [
        ("Silence 1 h", "hh:silence:1h"),
        ("Silence 4 h", "hh:silence:4h"),
        ("Silence 24 h", "hh:silence:24h"),
    ]

    await copied(world, card, "slack", "discord", "teams", "telegram")
    # Forged (another app's secret, another key): refused, nothing written.
    slack.add_user("UGRACE01", "Grace Hopper")
    discord.add_user("1300000000000000001", "ada", global_name="Ada Lovelace")
    forged = await slack.click(slack_channel, ts, "silence:1h", "UGRACE01", signing_secret="x")
    assert forged.status == 401
    status, _ = await click_discord(forged=True)
    assert status == 401
    forged_token = teams.fake.token_for(teams.bot.app_id, key=new_key())
    status, _ = await click_teams(token=forged_token)
    assert status == 401
    status, _ = await telegram.press(
        telegram_chat, telegram_id, "hh:silence:1h", BOB, token=TELEGRAM_TOKEN, secret_token="x"
    )
    assert status == 401

    # Signed, by users whose network ids are linked: each acts once, said in the thread.
    await link(world, "alertmanager", "slack:UGRACE01", "grace@example.com")
    await link(world, "alertmanager", "discord:1300000000000000001", "ada@example.com")
    clicked = await slack.click(slack_channel, ts, "silence:1h", "UGRACE01", trigger_id="1.click")
    assert clicked.status == 200
    status, answer = await click_discord(interaction_id="1300000000000000009")
    assert (status, answer) == (200, {"type": 6})  # DEFERRED_UPDATE_MESSAGE
    alan = USERS["alan"]["aadObjectId"]
    await link(world, "alertmanager", f"teams:{alan}", "alan@example.com")
    status, answer = await click_teams(activity_id="f:click1")
    assert status == 200 and answer["statusCode"] == 200, answer  # the invoke response
    [from_slack_reply] = await world.chat.received(card.reply("Silenced for 1 h"), timeout=30)
    assert from_slack_reply["text"].endswith("(from Slack)"), from_slack_reply["text"]
    await world.chat.received(card.reply("Silenced for 4 h"), timeout=30)
    await world.chat.received(card.reply("Silenced for 24 h"), timeout=30)
    assert sorted(s["createdBy"] for s in alertmanager.silences.values()) == [
        "ada@example.com",
        "alan@example.com",
        "grace@example.com",
    ]
    # Sent again (a retry, a replay): the same clicks, no more silences.
    again = await slack.click(slack_channel, ts, "silence:1h", "UGRACE01", trigger_id="1.click")
    assert again.status == 200
    status, _ = await click_discord(interaction_id="1300000000000000009")
    assert status == 200
    [from_slack] = await ended(world, world.slack_integration)
    assert from_slack["status"] == "done" and from_slack["actor"]["id"] == "slack:UGRACE01"
    assert from_slack["actor"]["name"] == "Grace Hopper"
    assert (from_slack["message_id"], from_slack["channel_id"]) == (card.chat_id, card.channel)
    [from_discord] = await ended(world, world.discord_integration)
    assert from_discord["actor"] == {"id": "discord:1300000000000000001", "name": "Ada Lovelace"}
    status, _ = await click_teams(activity_id="f:click1")
    assert status == 200
    [from_teams] = await ended(world, teams.integration)
    assert from_teams["actor"] == {"id": f"teams:{alan}", "name": "Alan Turing"}
    assert len(alertmanager.silences) == 3

    # A Telegram user's press of what Grace did: answered in the update's own answer, and
    # in the thread as already done, no more silences.
    await link(world, "alertmanager", "telegram:4702", "bob@example.com")
    status, answer = await telegram.press(
        telegram_chat, telegram_id, "hh:silence:1h", BOB, token=TELEGRAM_TOKEN
    )
    assert status == 200 and answer["method"] == "answerCallbackQuery", answer
    await world.chat.received(card.reply("already done by Grace Hopper"))
    [from_telegram] = await ended(world, world.telegram_integration)
    assert from_telegram["status"] == "duplicate"
    assert from_telegram["actor"] == {"id": "telegram:4702", "name": "Bob Kahn"}
    assert len(alertmanager.silences) == 3

    # The group resolves: the card's buttons go.
    await resolve(world, card)
    await until(lambda: slack.buttons(slack_channel, ts) == [], what="Slack's buttons removed")
    await until(
        lambda: discord.buttons(discord_channel, discord_id) == [],
        what="Discord's buttons removed",
    )
    await until(
        lambda: teams.fake.buttons(teams_channel, teams_id) == [], what="Teams' card removed"
    )
    await until(
        lambda: telegram.buttons(telegram_chat, telegram_id) == [],
        what="Telegram's keyboard removed",
    )


async def test_google_chat_shows_a_cards_actions_as_buttons_and_a_signed_click_acts_once(
    world: World, alertmanager: FakeAlertmanager, gchat: googlechat_world.GoogleChat
) -> None:
    """The card in a Google Chat space carries a cardsV2 card of buttons; a CARD_CLICKED
    signed by another key, or for another audience, is refused and writes nothing; a signed
    one is answered `{}` and acts once as `googlechat:<user id>`, sent again it is the same
    click; the group resolved, the card's buttons go and its text stays."""
    fake, space = gchat.fake, gchat.space()
    card = await firing_card(world, alertmanager, (gchat.integration, space))
    [posted] = await until(lambda: gchat.stored(space), what="the card in Google Chat")
    name = posted["name"]
    assert [
        (b["text"], b["onClick"]["action"]["parameters"], b.get("type"))
        for b in fake.buttons(space, name)
    ] == [
        (f"Silence {d}", [{"key": "action_id", "value": f"silence:{d.replace(' ', '')}"}], t)
        for d, t in (("1 h", "FILLED"), ("4 h", None), ("24 h", None))
    ]

    await copied(world, card, "googlechat")
    other_key = fake.bearer(key=rsa_key())
    forged = await fake.click(space, name, "Silence 1 h", "alice", bearer=other_key)
    assert forged.status_code == 401, forged.text
    elsewhere = fake.bearer(audience="999999999")
    forged = await fake.click(space, name, "Silence 1 h", "alice", bearer=elsewhere)
    assert forged.status_code == 401, forged.text
    assert await network_clicks(world, gchat.integration) == []

    alice = str(fake.users["alice"]["name"]).removeprefix("users/")
    await link(world, "alertmanager", f"googlechat:{alice}", "alice@example.com")
    when = rfc3339(time.time())
    clicked = await fake.click(space, name, "Silence 4 h", "alice", event_time=when)
    assert (clicked.status_code, clicked.json()) == (200, {})
    await world.chat.received(card.reply("Silenced for 4 h"), timeout=30)
    again = await fake.click(space, name, "Silence 4 h", "alice", event_time=when)
    assert again.status_code == 200
    [done] = await ended(world, gchat.integration)
    assert done["status"] == "done"
    assert done["actor"] == {"id": f"googlechat:{alice}", "name": "Alice"}
    assert (done["message_id"], done["channel_id"]) == (card.chat_id, card.channel)
    assert [s["createdBy"] for s in alertmanager.silences.values()] == ["alice@example.com"]

    await resolve(world, card)
    await until(lambda: fake.buttons(space, name) == [], what="Google Chat's buttons removed")
    assert fake.spaces[space].messages[name]["text"].startswith("*")


async def test_mattermost_shows_a_cards_actions_as_buttons_and_a_proven_click_acts_once(
    world: World, alertmanager: FakeAlertmanager, mattermost: mattermost_world.Mattermost
) -> None:
    """The card in a Mattermost channel carries an attachment of buttons calling back the
    integration's URL; a click whose context's proof is not ours (made up, or another
    action's) is refused and writes nothing; one with the button's own context is answered
    `{}` and acts once as `mattermost:<user id>`, made again it is the same click; the group
    resolved, the buttons go."""
    fake, integration_id = mattermost.fake, mattermost.integration_id
    external = mattermost.channel()
    card = await firing_card(world, alertmanager, (integration_id, external))
    [posted] = await until(lambda: fake.live_posts(external), what="the card in Mattermost")
    post_id = posted["id"]
    buttons = fake.buttons(post_id)
    assert [
        (b["type"], b["name"], b["style"], b["integration"]["context"]["action_id"])
        for b in buttons
    ] == [
        ("button", "Silence 1 h", "primary", "silence:1h"),
        ("button", "Silence 4 h", "default", "silence:4h"),
        ("button", "Silence 24 h", "default", "silence:24h"),
    ]
    url = f"{world.gateway.base_url}/api/webhooks/mattermost/{integration_id}"
    assert {b["integration"]["url"] for b in buttons} == {url}
    assert all(re.fullmatch(r"[A-Za-z0-9]+", b["id"]) for b in buttons)

    await copied(world, card, "mattermost")
    context = buttons[0]["integration"]["context"]
    made_up = {**context, "proof": "0" * 64}
    forged = await fake.click(post_id, "Silence 1 h", ADA[0], context=made_up)
    assert forged.status_code == 401, forged.text
    other_action = {**context, "action_id": "silence:24h"}  # 1 h's proof
    forged = await fake.click(post_id, "Silence 1 h", ADA[0], context=other_action)
    assert forged.status_code == 401, forged.text
    assert await network_clicks(world, integration_id) == []

    await link(world, "alertmanager", f"mattermost:{GRACE[0]}", "grace@example.com")
    trigger = f"{GRACE[0]}:click"
    clicked = await fake.click(post_id, "Silence 24 h", GRACE[0], trigger_id=trigger)
    assert (clicked.status_code, clicked.json()) == (200, {})
    await world.chat.received(card.reply("Silenced for 24 h"), timeout=30)
    again = await fake.click(post_id, "Silence 24 h", GRACE[0], trigger_id=trigger)
    assert again.status_code == 200
    [done] = await ended(world, integration_id)
    assert done["status"] == "done"
    assert done["actor"] == {"id": f"mattermost:{GRACE[0]}", "name": "Grace Hopper"}
    assert (done["message_id"], done["channel_id"]) == (card.chat_id, card.channel)
    assert [s["createdBy"] for s in alertmanager.silences.values()] == ["grace@example.com"]

    await resolve(world, card)
    await until(lambda: fake.buttons(post_id) == [], what="Mattermost's buttons removed")


async def test_a_click_naming_another_workspaces_message_does_nothing(
    world: World, alertmanager: FakeAlertmanager
) -> None:
    """Another workspace's Slack integration (the same Slack app: its signature is good)
    names our card's message: no card of its own is that message, nothing is written."""
    slack = world.slack
    external = world.slack_channel()
    card = await firing_card(world, alertmanager, (world.slack_integration, external))
    [posted] = await until(lambda: slack.posts(external), what="the card posted to Slack")
    await copied(world, card, "slack")  # ours to find, were it our integration
    elsewhere = dataclasses.replace(
        world, chat=dataclasses.replace(world.chat, workspace_id="ws_x")
    )
    other = await connect(
        elsewhere, "slack", bot_token=slack.add_bot_token(), signing_secret=slack.signing_secret
    )
    before = await counted(world, "slack", "unknown")
    ours = slack.events_url
    slack.events_url = f"{world.gateway.base_url}/api/webhooks/slack/{other}"
    try:
        answer = await slack.click(external, posted["ts"], "silence:1h", "UGRACE01")
    finally:
        slack.events_url = ours
    assert answer.status == 200  # a verified request; what it names is not ours to act on
    await until(
        lambda: _more(world, "slack", "unknown", before), what="the click counted as unknown"
    )
    assert await network_clicks(world, other) == []
    assert alertmanager.silences == {}


async def _more(world: World, provider: str, outcome: str, than: float) -> bool:
    return await counted(world, provider, outcome) > than


def test_matrix_names_a_cards_actions_in_its_text() -> None:
    """Matrix has no buttons: the card's actions are a line of its text, escaped in its
    HTML, and a card that offers nothing now has no such line."""
    actions = (CardAction("acknowledge", "Acknowledge", "primary"), CardAction("x", "<b>Close"))
    shown = format_content(OutboundPost("Incident", Author("PagerDuty"), actions=actions))
    close = actions[1].label  # as a card keeps it: `<` already broken with a joiner
    assert shown.body == f"Incident\nActions (in the chat): Acknowledge · {close}"
    assert "<b>" not in shown.formatted_body
    assert shown.formatted_body.endswith(
        f"<em>Actions (in the chat): Acknowledge · &lt;{close[1:-6]}&gt;Close</em>"
    )
    plain = format_content(OutboundPost("Incident", Author("PagerDuty"), actions=()))
    assert plain.body == "Incident"


# -- a network user's ask to link, to them alone (SPEC §20) --------------------------------

LINK_PATH = re.compile(r"/api/auth/oauth/link/[\w-]+")


@dataclass
class IssueCard:
    """A GitHub issue's root in a chat channel that networks are mapped to, as the chat
    got it and published it (its actions: assign to me, close)."""

    channel: str
    root: dict[str, Any]
    chat_id: str

    def reply(self, text: str) -> Callable[[dict[str, Any]], bool]:
        return lambda v: v.get("thread_id") in (self.chat_id, self.root["id"]) and text in v["text"]


async def issue_card(world: World, number: int, *mapped: Any) -> IssueCard:
    """Issue `number` of Codertocat/Hello-World opened, its card in a new chat channel
    that each of `mapped` (`(integration id, external channel id)`) is mapped to."""
    github = world.github
    assert github is not None
    github.track("Codertocat/Hello-World", number)
    integration_id = await connect(world, "github", webhook_secret=SECRET)
    channel = (await subscribe(world, integration_id, events=["issues.*"]))["channel_id"]
    for network_integration, external in mapped:
        await world.map(network_integration, external, channel)
    payload = corpus("issues/opened.payload.json")
    payload["issue"]["number"] = number
    await send_github(world, integration_id, "issues", payload)
    [root] = await world.chat.received(
        lambda v: v["channel_id"] == channel and "thread_id" not in v
    )
    assert [a["id"] for a in root["card"]["actions"]] == ["assign:me", "close"]
    return IssueCard(channel, root, await published(world, channel, root))


async def copied(world: World, card: Card | IssueCard, *providers: str) -> None:
    """Once the message map holds the card's copy in each of `providers`: a click is looked
    up there, and a post's copy is written just after the post (a person cannot click in
    between; a test can)."""

    async def read() -> bool:
        answer = await world.sync.get(
            "/api/messages/lookup",
            params={"channel_id": card.channel, "message_id": card.chat_id},
            headers=admin_headers(),
        )
        if answer.status_code != 200:
            return False
        found = {c["provider"] for c in answer.json()["copies"] if c["origin"] == "outbound"}
        return found >= set(providers)

    await until(read, what="the card's copies in the map")


def _link_in(text: str) -> str:
    found = LINK_PATH.search(text)
    assert found is not None, text
    return found.group(0)


async def test_a_network_users_ask_to_link_is_theirs_alone_with_their_ticket(
    world: World,
    teams: teams_world.Teams,
    gchat: googlechat_world.GoogleChat,
    mattermost: mattermost_world.Mattermost,
) -> None:
    """A GitHub issue's card bridged to every network with buttons; an unlinked network
    user's click on it is answered by their network to them alone, with their own ticket
    (Slack's ephemeral message, Discord's ephemeral follow-up, a Teams one-on-one chat, a
    Google Chat private message, a Mattermost ephemeral post or else a direct message, a
    Telegram private chat once they started the bot; before that, Telegram's thread is told
    how an admin starts it, with no ticket). The ticket's page names the network user;
    spent, it links them, and their click runs as them. The card's text in each network is
    the network's own markup, its title a link of it."""
    slack, discord, telegram = world.slack, world.discord, world.telegram
    await discord_interactions(world)
    slack_channel, discord_channel = world.slack_channel(), world.discord_channel()
    teams_channel, space = teams.channel(), gchat.space()
    mm_channel, telegram_chat = mattermost.channel(), world.telegram_chat()
    card = await issue_card(
        world,
        7,
        (world.slack_integration, slack_channel),
        (world.discord_integration, discord_channel),
        (teams.integration, teams_channel),
        (gchat.integration, space),
        (mattermost.integration_id, mm_channel),
        (world.telegram_integration, telegram_chat),
    )
    # Each network's copy in the map before its click (a click on a post the map does not
    # know yet is no click on a card).
    await copied(world, card, "slack", "discord", "teams", "googlechat", "mattermost", "telegram")
    [posted] = await until(lambda: slack.posts(slack_channel), what="the card in Slack")
    # Slack's mrkdwn: the issue's title a `<url|title>` link, no CommonMark shown.
    assert "<https://github.com/Codertocat/Hello-World/issues/1|" in posted["text"], posted
    assert "](" not in posted["text"], posted["text"]

    # Slack: an ephemeral message to Grace, in the card's channel.
    slack.add_user("UGRACE07", "Grace Hopper")
    clicked = await slack.click(slack_channel, posted["ts"], "close", "UGRACE07")
    assert clicked.status == 200
    [shown] = await until(
        lambda: [e for e in slack.ephemeral if e["user"] == "UGRACE07"], what="Slack's ask"
    )
    assert shown["channel"] == slack_channel and "only you see this" in shown["text"]
    slack_ticket = _link_in(shown["text"])
    assert f"{slack_ticket}|" in shown["text"]  # a link of mrkdwn's

    # Discord: an ephemeral follow-up of the click's interaction.
    [discord_post] = await until(
        lambda: list(discord.channels[discord_channel].messages.values()),
        what="the card in Discord",
    )
    discord.add_user("1300000000000000077", "lin", global_name="Lin Clark")
    status, answer = await discord.click(
        DISCORD_TOKEN, discord_channel, discord_post["id"], "hh:close", "1300000000000000077"
    )
    assert (status, answer) == (200, {"type": 6})
    [followup] = await until(
        lambda: [f for f in discord.followups if f["user_id"] == "1300000000000000077"],
        what="Discord's ask",
    )
    assert followup["ephemeral"] and followup["flags"] & 64
    assert _link_in(followup["content"]) and followup["id"] not in (
        discord.channels[discord_channel].messages
    )

    # Teams: Alan's one-on-one chat with the bot.
    [teams_post] = await until(lambda: teams.stored(teams_channel), what="the card in Teams")
    status, _ = await teams.fake.click(teams.bot, teams_channel, teams_post["id"], "close", "alan")
    assert status == 200
    [alone] = await until(lambda: teams.fake.personal_messages("alan"), what="Teams' ask")
    assert '<a href="' in alone["text"] and _link_in(alone["text"])

    # Google Chat: a private message to Alice.
    [chat_post] = await until(lambda: gchat.stored(space), what="the card in Google Chat")
    clicked_gc = await gchat.fake.click(space, chat_post["name"], "Close", "alice")
    assert clicked_gc.status_code == 200, clicked_gc.text
    [private] = await until(lambda: gchat.fake.private, what="Google Chat's ask")
    assert private["viewer"] == "alice" and _link_in(private["text"])
    assert private["name"] not in gchat.fake.spaces[space].messages

    # Mattermost: the bot may not post ephemerally (a system admin's right): a direct
    # message to Grace; made a system admin, an ephemeral post to Ada.
    fake_mm = mattermost.fake
    [mm_post] = await until(lambda: fake_mm.live_posts(mm_channel), what="the card in Mattermost")
    await fake_mm.click(mm_post["id"], "Close", GRACE[0])
    [direct] = await until(lambda: fake_mm.direct_posts(GRACE[0]), what="Mattermost's DM")
    assert _link_in(direct["message"])
    fake_mm.system_admins.add(fake_mm.tokens[fake_mm.bot_token])
    await fake_mm.click(mm_post["id"], "Close", ADA[0])
    [ephemeral] = await until(lambda: fake_mm.ephemeral, what="Mattermost's ephemeral post")
    assert ephemeral["user_id"] == ADA[0] and _link_in(ephemeral["post"]["message"])

    # Telegram: Bob never started the bot: the thread is told how an admin links him.
    [telegram_post] = await until(
        lambda: list(telegram.chats[telegram_chat].messages.values()),
        what="the card in Telegram",
    )
    message_id = telegram_post["message_id"]
    await telegram.press(telegram_chat, message_id, "hh:close", BOB, token=TELEGRAM_TOKEN)
    [public] = await world.chat.received(card.reply("`telegram:4702`"), timeout=30)
    assert "visible_to" not in public and not LINK_PATH.search(public["text"])
    # Started, his next click is answered in his private chat with the bot.
    telegram.start_bot(BOB)
    await telegram.press(telegram_chat, message_id, "hh:close", BOB, token=TELEGRAM_TOKEN)
    [direct_tg] = await until(
        lambda: list(telegram.chats[4702].messages.values()), what="Telegram's ask"
    )
    assert _link_in(direct_tg["text"])

    # Nothing of it in the thread but Telegram's public ask.
    asked = await world.chat.inbound.settled(card.reply("link"))
    assert [LINK_PATH.search(a["text"]) for a in asked] == [None], asked

    # Slack's ticket: its page names the Slack user; spent, it links them; the click runs.
    page = await world.oauth.client.get(slack_ticket)
    assert page.status_code == 200, page.text
    assert "Slack user <strong>Grace Hopper</strong>" in page.text, page.text
    assert "<code>slack:UGRACE07</code>" in page.text
    github = world.github
    assert github is not None
    github.writers = {"Codertocat/Hello-World": {"grace"}}
    github.profiles["grace-gh"] = {"login": "grace", "id": 1007, "name": "Grace Hopper"}
    github.user = "grace-gh"
    opened = await world.oauth.client.post(slack_ticket, headers={"origin": world.gateway.base_url})
    assert opened.status_code == 303, opened.text
    async with httpx.AsyncClient() as browser:
        consented = await browser.get(opened.headers["location"])
    back = dict(parse_qsl(urlsplit(consented.headers["location"]).query))
    linked = await world.oauth.client.get("/api/auth/oauth/callback", params=back)
    assert linked.status_code == 200, linked.text
    assert linked.json()["chat_user_id"] == "slack:UGRACE07", linked.text
    await world.chat.received(card.reply("Closed by Grace Hopper (from Slack)"), timeout=30)
