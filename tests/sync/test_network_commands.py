"""hookhub's command typed in the bridged networks (SPEC §20): each network's own command,
signed as the network signs it, reaches the gateway and runs as the chat's `command.invoked`
does (the same subscription service, answers and audit) as the network user, in the chat
channel the network channel is mapped to; a forged one is refused with nothing done; one
in a channel mapped to none is answered so, in the network. What is the user's alone
(`link`) is said to them alone where the network can."""

from __future__ import annotations

import re
from typing import Any

import pytest

from services.sandbox.googlechat import rsa_key
from services.sandbox.mattermost import ADA
from services.sandbox.teams import new_key
from services.sync.commands.worker import answer_id
from shared.domain.message_map import ephemeral_id
from shared.kernel.ids import derived_id
from shared.providers.discord.command import COMMAND, shape
from tests.support import admin_headers
from tests.sync import googlechat_world, matrix_world, mattermost_world, teams_world
from tests.sync.conftest import DISCORD_TOKEN, TELEGRAM_TOKEN, World, connect, until
from tests.sync.stand_ins import gchat, matrix, mattermost, teams
from tests.sync.test_buttons import BOB, discord_interactions

__all__ = ["gchat", "matrix", "mattermost", "teams"]  # the shared stand-ins, fixtures here

SECRET = "command-test-webhook-secret"
TICKET = re.compile(r"/api/auth/oauth/link/[\w-]+")
# A Discord user of the world's guild.
DISCORD_USER = "1200000000000000777"


@pytest.fixture(scope="module")
async def github(world: World) -> str:
    """The workspace's one GitHub integration, which the commands subscribe to."""
    return await connect(world, "github", webhook_secret=SECRET)


def command_id(provider: str, integration_id: str, interaction_id: str) -> str:
    """A network's command's id, as sync derives it from the network's invocation id."""
    return derived_id(provider, integration_id, interaction_id, prefix="cmd")


async def answered(world: World, command: str) -> str:
    """The command's answer in its chat channel, for everyone (not a thread reply)."""
    [said] = await world.chat.received(lambda v: v["id"] == answer_id(command))
    assert said["author"]["name"] == "hookhub" and said.get("thread_id") is None, said
    assert "visible_to" not in said, said
    return str(said["text"])


async def settled(world: World, command: str) -> dict[str, Any]:
    """The command's document once it is done (its answers said)."""

    async def read() -> dict[str, Any] | None:
        doc: dict[str, Any] | None = await world.sync_app.state.commands._commands.find_one(
            {"_id": command}
        )
        return doc if doc is not None and doc["status"] == "done" else None

    found: dict[str, Any] = await until(read, what=f"command {command} done")
    # What answers the network's user (a response URL, an interaction's token) is sealed.
    reply = (found.get("via") or {}).get("reply")
    assert reply is None or (isinstance(reply, str) and "http" not in reply), reply
    return found


async def never_in_chat(world: World, command: str) -> None:
    """Nothing of a command that was done was said in the chat (read once it is done:
    whatever it published is on the tap by then)."""
    await settled(world, command)
    wanted = {answer_id(command), ephemeral_id(command, "answer")}
    assert await world.chat.inbound.settled(lambda v: v["id"] in wanted) == []


async def channel_subscriptions(world: World, github: str, channel: str) -> list[dict[str, Any]]:
    listed = await world.sync.get(
        f"/api/integrations/{github}/subscriptions", headers=admin_headers()
    )
    assert listed.status_code == 200, listed.text
    return [s for s in listed.json()["data"] if s["channel_id"] == channel]


async def audited_as(world: World, subscription_id: str, actor: str) -> None:
    """The subscription's creation and deletion in the audit, each as `actor`'s change."""

    async def read() -> list[dict[str, Any]] | None:  # the writer flushes every second
        found = await world.oauth.client.get(
            "/api/audit-events",
            params={"resource_type": "subscription", "resource_id": subscription_id},
            headers=admin_headers(),
        )
        assert found.status_code == 200, found.text
        entries: list[dict[str, Any]] = found.json()["data"]
        return entries if len(entries) >= 2 else None

    entries = await until(read, what="the subscription's changes audited")
    assert sorted(e["action"] for e in entries) == ["create", "delete"]
    assert {e["actor"]["id"] for e in entries} == {actor}, entries
    assert {e["actor"]["kind"] for e in entries} == {"chat_user"}


async def no_command(world: World, command: str) -> None:
    doc = await world.sync_app.state.commands._commands.find_one({"_id": command})
    assert doc is None, doc


# -- Slack ----------------------------------------------------------------------------------


async def test_a_slack_slash_command_runs_as_the_slack_user_in_the_mapped_channel(
    world: World, github: str
) -> None:
    """`/hookhub subscribe|list|unsubscribe` in a mapped Slack channel, v0-signed, answered
    by an empty 200 at once: the subscription is made in the chat channel, the answers said
    there (and so in Slack, through the chat), audited as `slack:<user id>`; `link github`
    is the user's own ticket, ephemeral at the command's response_url and nowhere else; a
    forged command is 401 and nothing is written; a channel mapped to none is told so,
    ephemerally."""
    slack, integration = world.slack, world.slack_integration
    external, channel = await world.slack_pair()
    user = "U0SLASHADA"

    async def run(text: str, **how: Any) -> tuple[Any, str]:
        sent = await slack.command(external, user, text, **how)
        return sent, command_id("slack", integration, sent.body["trigger_id"])

    sent, subscribe = await run("subscribe github octocat/slack events=issues.opened")
    assert sent.status == 200
    said = await answered(world, subscribe)
    assert said.startswith("Subscribed this channel to GitHub `octocat/slack`"), said
    [sub] = await channel_subscriptions(world, github, channel)
    assert (sub["repositories"], sub["events"]) == (["octocat/slack"], ["issues.opened"])
    _, listed = await run("list")
    assert sub["id"] in await answered(world, listed)

    sent, linking = await run("link github")
    [private] = await until(lambda: slack.responses_to(sent), what="the ephemeral answer")
    assert private["response_type"] == "ephemeral"
    assert TICKET.search(private["text"]), private
    await never_in_chat(world, linking)

    _, unsubscribe = await run("unsubscribe github octocat/slack")
    assert (await answered(world, unsubscribe)).startswith("Unsubscribed this channel")
    assert await channel_subscriptions(world, github, channel) == []
    await audited_as(world, sub["id"], f"slack:{user}")

    forged, forged_id = await run("subscribe github octocat/forged", signing_secret="not-it")
    assert forged.status == 401
    await no_command(world, forged_id)

    elsewhere = world.slack_channel()
    sent = await slack.command(elsewhere, user, "list")
    [told] = await until(lambda: slack.responses_to(sent), what="the unmapped answer")
    assert told["response_type"] == "ephemeral" and "not bridged" in told["text"], told


# -- Discord --------------------------------------------------------------------------------


def discord_options(verb: str, *values: str) -> list[dict[str, Any]]:
    """`/hookhub <verb> <values>` as Discord sends a subcommand and its string options."""
    return [
        {
            "type": 1,  # SUB_COMMAND
            "name": verb,
            "options": [
                {"type": 3, "name": f"word{i}", "value": value} for i, value in enumerate(values)
            ],
        }
    ]


async def test_a_discord_application_command_is_deferred_for_its_user_and_answered_so(
    world: World, github: str
) -> None:
    """`/hookhub`, registered by sync for the bot's application (read first: made only where
    it is missing or of another shape), typed in a mapped Discord channel, Ed25519-signed:
    deferred at once for its
    user alone (type 5, flags 64), then that response edited to the answer (the channel's
    comes through the chat); it subscribes, lists and unsubscribes as `discord:<user id>`;
    `link github` is the user's ticket in that ephemeral response only; a forged one is
    401 and nothing is written; in a channel mapped to none the response says so."""
    bot = await discord_interactions(world)
    discord, integration = world.discord, world.discord_integration
    discord.add_user(DISCORD_USER, "grace", global_name="Grace Hopper")
    external, channel = await world.discord_pair()
    # Sync made the command for the bot's application when it connected its gateway; made
    # again only where the application's differs (an overwrite, not a new command).
    await until(lambda: bot.commands.get("hookhub"), what="/hookhub registered by sync")
    assert shape(bot.commands["hookhub"]) == shape(COMMAND) and bot.commands_created == 1
    network = world.sync_app.state.connections.providers["discord"]
    assert await network.register_command(DISCORD_TOKEN) is False
    bot.commands["hookhub"]["description"] = "an older one"
    assert await network.register_command(DISCORD_TOKEN) is True
    assert shape(bot.commands["hookhub"]) == shape(COMMAND) and bot.commands_created == 1

    async def run(
        verb: str, *values: str, where: str = external, forged: bool = False
    ) -> tuple[int, Any, str]:
        interaction_id = discord.snowflake()
        status, ack = await discord.interact(
            DISCORD_TOKEN,
            where,
            DISCORD_USER,
            "hookhub",
            discord_options(verb, *values),
            interaction_id=interaction_id,
            forged=forged,
        )
        return status, ack, interaction_id

    async def response(interaction_id: str) -> str:
        sent = bot.interactions[interaction_id]
        [edit] = await until(lambda: sent.edits, what="the interaction's response edited")
        assert edit["allowed_mentions"] == {"parse": []}
        return str(edit["content"])

    status, ack, made = await run("subscribe", "github", "octocat/discord")
    assert (status, ack) == (200, {"type": 5, "data": {"flags": 64}})
    said = await answered(world, command_id("discord", integration, made))
    assert said.startswith("Subscribed this channel to GitHub `octocat/discord`"), said
    assert (await response(made)) == said
    [sub] = await channel_subscriptions(world, github, channel)
    _, _, listed = await run("list")
    assert sub["id"] in await answered(world, command_id("discord", integration, listed))

    _, _, linking = await run("link", "github")
    assert TICKET.search(await response(linking))
    await never_in_chat(world, command_id("discord", integration, linking))

    _, _, gone = await run("unsubscribe", "github", "octocat/discord")
    assert (await answered(world, command_id("discord", integration, gone))).startswith(
        "Unsubscribed this channel"
    )
    await audited_as(world, sub["id"], f"discord:{DISCORD_USER}")

    status, _, forged = await run("subscribe", "github", "octocat/forged", forged=True)
    assert status == 401
    await no_command(world, command_id("discord", integration, forged))

    _, _, unmapped = await run("list", where=world.discord_channel())
    assert "not bridged" in await response(unmapped)


# -- Mattermost -----------------------------------------------------------------------------


async def test_a_mattermost_slash_command_with_its_token_runs_and_answers_ephemerally(
    world: World, github: str, mattermost: mattermost_world.Mattermost
) -> None:
    """The `/hookhub` custom slash command POSTs to the integration's URL with its token:
    checked against the `command_token` setting, answered at once with an empty ephemeral
    response; it subscribes, lists and unsubscribes as `mattermost:<user id>`; `link
    github` answers at the response_url, ephemerally, with the ticket; a wrong token is 401
    and nothing is written; a channel mapped to none is told so at the response_url."""
    fake, integration = mattermost.fake, mattermost.integration_id
    url = f"{world.gateway.base_url}/api/webhooks/mattermost/{integration}"
    token = fake.add_command("hookhub", url)
    patched = await world.oauth.client.patch(
        f"/api/integrations/{integration}",
        json={"settings": {"command_token": token}},
        headers=admin_headers(),
    )
    assert patched.status_code == 200, patched.text
    external, channel = await mattermost.pair(world)
    user = ADA[0]

    async def run(text: str, **how: Any) -> tuple[Any, str, str]:
        trigger = f"trg{world.new_id('')}"
        answer, hook = await fake.user_runs(user, how.pop("where", external), text, **how,
                                            trigger_id=trigger)  # fmt: skip
        return answer, hook, command_id("mattermost", integration, trigger)

    answer, _, made = await run("subscribe github octocat/mattermost")
    assert (answer.status_code, answer.json()) == (200, {"response_type": "ephemeral", "text": ""})
    said = await answered(world, made)
    assert said.startswith("Subscribed this channel to GitHub `octocat/mattermost`"), said
    [sub] = await channel_subscriptions(world, github, channel)
    _, _, listed = await run("list")
    assert sub["id"] in await answered(world, listed)

    _, hook, linking = await run("link github")
    [private] = await until(lambda: fake.command_responses[hook], what="the ephemeral answer")
    assert private["response_type"] == "ephemeral" and TICKET.search(private["text"]), private
    await never_in_chat(world, linking)

    _, _, gone = await run("unsubscribe github octocat/mattermost")
    assert (await answered(world, gone)).startswith("Unsubscribed this channel")
    await audited_as(world, sub["id"], f"mattermost:{user}")

    forged, _, forged_id = await run("subscribe github octocat/forged", token="x" * 26)
    assert forged.status_code == 401
    await no_command(world, forged_id)

    _, hook, _ = await run("list", where=mattermost.channel())
    [told] = await until(lambda: fake.command_responses[hook], what="the unmapped answer")
    assert told["response_type"] == "ephemeral" and "not bridged" in told["text"], told


# -- Telegram, Google Chat, Teams: a command is a message ------------------------------------


async def test_a_telegram_bot_command_runs_and_is_not_bridged_as_a_message(
    world: World, github: str
) -> None:
    """`/hookhub@<bot> …` in a mapped Telegram group (its `bot_command` entity) runs as
    `telegram:<user id>`, answered in the chat channel (so in the group); the command
    message itself is not bridged; `link github` is said in the channel without a ticket
    (a group has no message for one member alone); a message with a wrong secret token is
    401 and nothing is written; in a group mapped to none the bot replies so."""
    telegram, integration = world.telegram, world.telegram_integration
    chat_id, channel = await world.telegram_pair()

    async def run(words: str, **how: Any) -> tuple[int, str]:
        where = how.pop("where", chat_id)
        status = await telegram.user_commands(
            where, BOB, "hookhub", words, bot="hookhub_bot", token=TELEGRAM_TOKEN, **how
        )
        [sent] = list(telegram.chats[where].messages.values())[-1:]
        return status, command_id("telegram", integration, f"{where}:{sent['message_id']}")

    status, made = await run("subscribe github octocat/telegram")
    assert status == 200
    said = await answered(world, made)
    assert said.startswith("Subscribed this channel to GitHub `octocat/telegram`"), said
    [sub] = await channel_subscriptions(world, github, channel)

    _, linking = await run("link github")
    told = await answered(world, linking)
    assert "cannot show you its link alone" in told and not TICKET.search(told), told

    _, gone = await run("unsubscribe github octocat/telegram")
    assert (await answered(world, gone)).startswith("Unsubscribed this channel")
    await audited_as(world, sub["id"], f"telegram:{BOB['id']}")
    # A message after the commands comes in; they did not (one chat's updates are in order).
    await telegram.user_sends(chat_id, BOB, "after the commands", token=TELEGRAM_TOKEN)
    await world.chat.received(
        lambda v: v["channel_id"] == channel and v["text"] == "after the commands"
    )
    bridged = await world.chat.inbound.settled(
        lambda v: v["channel_id"] == channel and "hookhub" in v["text"] and v["type"] == "message.received"
        and v["author"]["name"] != "hookhub"
    )  # fmt: skip
    assert bridged == []

    status, forged = await run("subscribe github octocat/forged", secret_token="not-it")
    assert status == 401
    await no_command(world, forged)

    elsewhere = world.telegram_chat()
    await run("list", where=elsewhere)
    await until(
        lambda: [m for m in telegram.sent() if m.get("chat_id") in (elsewhere, str(elsewhere))
                 and "not bridged" in m.get("text", "")],
        what="the bot's reply in the unmapped group",
    )  # fmt: skip


async def test_a_google_chat_slash_command_runs_and_is_not_bridged_as_a_message(
    world: World, github: str, gchat: googlechat_world.GoogleChat
) -> None:
    """The app's slash command in a mapped space (a MESSAGE event with `slashCommand`,
    its bearer JWT checked) runs as `googlechat:<user id>`; the command message is not
    bridged; `link github` hands the user their ticket in the app's private message
    (`privateMessageViewer`); a command signed by another key is 401 and nothing is
    written; in a space mapped to none the app says so to the user alone."""
    fake, integration = gchat.fake, gchat.integration
    space, channel = await gchat.pair(world)
    alice = str(fake.users["alice"]["name"]).removeprefix("users/")

    async def run(words: str, where: str = space, **how: Any) -> tuple[int, str]:
        event = fake.command_event(where, "alice", words)
        answer = await fake.deliver(event, **how)
        return answer.status_code, command_id("googlechat", integration, event["message"]["name"])

    status, made = await run("subscribe github octocat/gchat")
    assert status == 200
    said = await answered(world, made)
    assert said.startswith("Subscribed this channel to GitHub `octocat/gchat`"), said
    [sub] = await channel_subscriptions(world, github, channel)
    _, gone = await run("unsubscribe github octocat/gchat")
    assert (await answered(world, gone)).startswith("Unsubscribed this channel")
    await audited_as(world, sub["id"], f"googlechat:{alice}")
    await fake.user_sends(space, "alice", "after the commands")
    await world.chat.received(
        lambda v: v["channel_id"] == channel and v["text"] == "after the commands"
    )
    bridged = await world.chat.inbound.settled(
        lambda v: v["channel_id"] == channel and "/hookhub" in v["text"]
    )  # fmt: skip
    assert bridged == []

    status, forged = await run("list", bearer=fake.bearer(key=rsa_key()))
    assert status == 401
    await no_command(world, forged)

    # `link`: the user's ticket, in the app's private message to them alone.
    _, linking = await run("link github")
    [ticket] = await until(
        lambda: [m for m in fake.private if TICKET.search(m["text"])],
        what="the ticket in a private message",
    )
    assert ticket["viewer"] == "alice" and ticket["privateMessageViewer"]["name"].endswith(alice)
    assert not [m for m in gchat.stored(space) if TICKET.search(m.get("text", ""))]
    await never_in_chat(world, linking)

    elsewhere = gchat.space()
    await run("list", where=elsewhere)
    [unbridged] = await until(
        lambda: [
            m
            for m in fake.private
            if m["space"]["name"] == elsewhere and "not bridged" in m["text"]
        ],
        what="the app's private answer in the unmapped space",
    )
    assert unbridged["viewer"] == "alice"
    assert not [m for m in gchat.stored(elsewhere) if "not bridged" in m.get("text", "")]


async def test_a_message_to_the_teams_bot_runs_as_a_command_and_is_not_bridged(
    world: World, github: str, teams: teams_world.Teams
) -> None:
    """A message that opens with the bot's @mention and a command's word, in a mapped Teams
    channel (its Bot Framework JWT checked), runs as `teams:<Entra object id>`; it is not
    bridged, while a message that only mentions the bot is, as is one whose words do not
    fit a command ("list the failing builds"); one signed by another key is
    401 and nothing is written; in a channel mapped to none the bot says so in the thread."""
    fake, bot, integration = teams.fake, teams.bot, teams.integration
    external, channel = await teams.pair(world)

    async def run(words: str, where: str = external) -> tuple[dict[str, Any], int, str]:
        activity, status = await fake.user_sends(bot, where, "alan", words, mention_bot=True)
        return activity, status, command_id("teams", integration, activity["id"])

    activity, status, made = await run("subscribe github octocat/teams")
    assert status == 200
    said = await answered(world, made)
    assert said.startswith("Subscribed this channel to GitHub `octocat/teams`"), said
    [sub] = await channel_subscriptions(world, github, channel)
    _, _, gone = await run("/hookhub unsubscribe github octocat/teams")
    assert (await answered(world, gone)).startswith("Unsubscribed this channel")
    who = activity["from"].get("aadObjectId") or activity["from"]["id"]
    await audited_as(world, sub["id"], f"teams:{who}")
    await fake.user_sends(bot, external, "alan", "thanks for the subscription", mention_bot=True)
    await world.chat.received(
        lambda v: v["channel_id"] == channel and "thanks for the subscription" in v["text"]
    )
    # A verb, but not a command's shape (`list` takes no words): said to the channel.
    asked, _ = await fake.user_sends(
        bot, external, "alan", "list the failing builds", mention_bot=True
    )
    await world.chat.received(
        lambda v: v["channel_id"] == channel and "list the failing builds" in v["text"]
    )
    await no_command(world, command_id("teams", integration, asked["id"]))
    bridged = await world.chat.inbound.settled(
        lambda v: v["channel_id"] == channel and "octocat/teams" in v["text"]
        and v["author"]["name"] != "hookhub"
    )  # fmt: skip
    assert bridged == []

    forged = fake.activity(bot, "message", external, "alan", "forged-1", text="<at>x</at> list")
    assert await fake.deliver(bot, forged, token=fake.token_for(bot.app_id, key=new_key())) == 401
    await no_command(world, command_id("teams", integration, "forged-1"))

    elsewhere = teams.channel()
    await run("list", where=elsewhere)
    await until(
        lambda: [m for m in teams.stored(elsewhere) if "not bridged" in str(m.get("text", ""))],
        what="the bot's answer in the unmapped channel",
    )


# -- Matrix ---------------------------------------------------------------------------------


async def test_a_matrix_message_opening_with_the_command_runs_and_is_not_bridged(
    world: World, github: str, matrix: matrix_world.Matrix
) -> None:
    """Matrix has no slash commands for bots: a message that opens with `!hookhub` in a
    bridged room (its transaction's hs_token checked) runs as `matrix:<user id>`, is not
    bridged, and is answered through the chat; an edit into a command runs nothing; in a
    room mapped to none the appservice's bot replies to the command in the room."""
    fake, integration = matrix.fake, matrix.integration
    room, channel = await matrix.pair(world)
    alice = fake.user_id("alice")

    async def run(words: str, where: Any = room) -> str:
        said = fake.says("alice", {"msgtype": "m.text", "body": words}, where)
        assert await fake.push() == 200
        return str(said["event_id"])

    def of(event_id: str) -> str:
        return command_id("matrix", integration, event_id)

    made = of(await run("!hookhub subscribe github octocat/matrix"))
    said = await answered(world, made)
    assert said.startswith("Subscribed this channel to GitHub `octocat/matrix`"), said
    [sub] = await channel_subscriptions(world, github, channel)
    gone = of(await run("!hookhub unsubscribe github octocat/matrix"))
    assert (await answered(world, gone)).startswith("Unsubscribed this channel")
    await audited_as(world, sub["id"], f"matrix:{alice}")
    plain = fake.says("alice", {"msgtype": "m.text", "body": "after the commands"}, room)
    edit = fake.edits("alice", plain["event_id"], "!hookhub list", room)
    assert await fake.push() == 200
    await world.chat.received(
        lambda v: v["channel_id"] == channel and v["text"] == "after the commands"
    )
    # An edit into a command's words is the edit it is, bridged; it runs nothing.
    await world.chat.received(
        lambda v: v["type"] == "message.edited" and v["text"] == "!hookhub list"
    )
    await no_command(world, of(edit["event_id"]))
    bridged = await world.chat.inbound.settled(
        lambda v: v["channel_id"] == channel and v["type"] == "message.received"
        and "hookhub" in v["text"] and v["author"]["name"] != "hookhub"
    )  # fmt: skip
    assert bridged == []

    elsewhere = matrix.room()
    asked = await run("!hookhub list", where=elsewhere)
    [answer] = await until(
        lambda: [m for m in fake.shown(elsewhere) if "not bridged" in m["text"]],
        what="the bot's reply in the unmapped room",
    )
    assert answer["user"]["id"] == fake.bot and answer["thread"] == asked
