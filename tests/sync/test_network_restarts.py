"""Teams, Google Chat and Matrix across one restart of sync (`hookhub serve sync`
processes): what was synced before it, both ways, is still in the map for the next
process. The chat's edit of a message hookhub posted before the restart edits the
network's copy; a network reply to a message brought in before it arrives in the chat's
thread of that message. And Teams' serviceUrl, learned from a verified activity, is kept
(in the channel's mapping, per team): the next process calls that team's serviceUrl, not
the integration's default, which does not serve the team (the stand-in answers 404
there)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.sync.conftest import World, in_channel, start_sync, until
from tests.sync.googlechat_world import PROJECT, GoogleChat
from tests.sync.googlechat_world import connect as connect_googlechat
from tests.sync.matrix_world import Matrix, connected
from tests.sync.teams_world import Teams
from tests.sync.teams_world import connect as connect_teams

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def networks(bare: World) -> AsyncIterator[tuple[Teams, GoogleChat, Matrix]]:
    async with contextlib.AsyncExitStack() as stack:
        teams = await connect_teams(bare, stack)
        gchat = await connect_googlechat(bare, stack, audience=PROJECT)
        matrix = await stack.enter_async_context(connected(bare))
        yield teams, gchat, matrix


def replied_in(channel: str) -> Any:
    return lambda v: in_channel(channel)(v) and "thread_id" in v


async def test_a_restart_keeps_the_map_and_teams_service_url(
    bare: World, networks: tuple[Teams, GoogleChat, Matrix], tmp_path: Path
) -> None:
    world, chat = bare, bare.chat
    teams, gchat, matrix = networks
    team = teams.fake.add_team("emea")  # served at {stand-in}/emea/, not the default
    assert teams.fake.service_url_of(team) != world.sync_settings.teams_service_url

    first = await start_sync(world, tmp_path / "first.log")
    try:
        external, teams_channel = await teams.pair(world, team)
        space, gchat_channel = await gchat.pair(world)
        room, matrix_channel = await matrix.pair(world)

        # In: a message from each network (Teams' activity says the team's serviceUrl).
        root, status = await teams.fake.user_sends(teams.bot, external, "ada", "from teams")
        assert status == 200
        answer = await gchat.fake.user_sends(space, "alice", "from google chat")
        assert answer.status_code == 200, answer.text
        said = matrix.fake.says("alice", {"msgtype": "m.text", "body": "from matrix"}, room)
        assert await matrix.fake.push() == 200
        [teams_in] = await chat.received(in_channel(teams_channel))
        [gchat_in] = await chat.received(in_channel(gchat_channel))
        [matrix_in] = await chat.received(in_channel(matrix_channel))

        # Out: a chat message to each network.
        for n, channel in enumerate((teams_channel, gchat_channel, matrix_channel)):
            await chat.publish(
                "message.created", {"message_id": f"o{n}", "channel_id": channel, "text": "ours"}
            )
        [teams_out] = await until(
            lambda: [m for m in teams.stored(external) if m["from"]["id"].startswith("28:")],
            what="the Teams post",
        )
        [gchat_out] = await until(
            lambda: [m for m in gchat.stored(space) if m["sender"]["type"] == "BOT"],
            what="the Google Chat post",
        )
        [matrix_out] = await until(lambda: matrix.puppets(room), what="the Matrix post")
    finally:
        await first.stop()
        await world.sync.aclose()

    second = await start_sync(world, tmp_path / "second.log")
    try:
        # The chat's edits reach the copies made before the restart: Teams' at the team's
        # serviceUrl, which no activity has said to this process.
        for n, channel in enumerate((teams_channel, gchat_channel, matrix_channel)):
            await chat.publish(
                "message.updated",
                {"message_id": f"o{n}", "channel_id": channel, "text": "edited"},
            )
        await until(lambda: "edited" in teams_out["text"], what="the Teams edit")
        await until(lambda: gchat_out["text"].endswith("\nedited"), what="the Google Chat edit")
        await until(
            lambda: (
                matrix.puppets(room)[0]["id"] == matrix_out["id"]
                and matrix.puppets(room)[0]["text"] == "edited"
            ),
            what="the Matrix edit",
        )
        edited_at = [
            path
            for method, path, _ in teams.fake.calls
            if method == "PUT" and teams_out["id"] in path
        ]
        assert edited_at and all(p.startswith("/emea/v3/") for p in edited_at), edited_at

        # Replies to what came in before the restart, in the chat's thread of it.
        await teams.fake.user_sends(teams.bot, external, "grace", "re teams", root=root["id"])
        thread = gchat.fake.spaces[space].messages[gchat_in["source"]["external_message_id"]]
        await gchat.fake.user_sends(space, "bob", "re google chat", thread=thread["thread"]["name"])
        # In Google Chat, our post's thread too: its copy keeps the thread's name.
        await gchat.fake.user_sends(space, "carol", "re ours", thread=gchat_out["thread"]["name"])
        matrix.fake.says(
            "bob",
            {
                "msgtype": "m.text",
                "body": "re matrix",
                "m.relates_to": {"rel_type": "m.thread", "event_id": said["event_id"]},
            },
            room,
        )
        assert await matrix.fake.push() == 200
        replies = [
            reply
            for channel, count in ((teams_channel, 1), (gchat_channel, 2), (matrix_channel, 1))
            for reply in await chat.received(replied_in(channel), count)
        ]
        assert {r["text"]: r["thread_id"] for r in replies} == {
            "re teams": teams_in["id"],
            "re google chat": gchat_in["id"],
            "re ours": "o1",
            "re matrix": matrix_in["id"],
        }
    finally:
        await second.stop()
        await world.sync.aclose()
