"""A Matrix room imported through the API (`GET /rooms/{roomId}/messages`, as the
appservice's user), oldest first, with its thread, the appservice's puppets left out."""

from __future__ import annotations

from services.sandbox.matrix import EPOCH_MS
from tests.importer.conftest import Imports
from tests.importer.test_api import start
from tests.sync.matrix_world import connected


async def test_a_matrix_room_is_imported_through_the_api(imports: Imports) -> None:
    world = imports.world
    async with connected(world) as matrix:
        fake, room = matrix.fake, matrix.room()
        channel = world.new_id("ch_")
        said = [fake.says("alice", {"msgtype": "m.text", "body": f"m {n}"}, room) for n in range(5)]
        fake.says(
            "bob",
            {
                "msgtype": "m.text",
                "body": "in thread",
                "m.relates_to": {"rel_type": "m.thread", "event_id": said[1]["event_id"]},
            },
            room,
        )
        assert fake.appservice is not None
        puppet = fake.user_id("_hookhub_puppet")
        fake.users.add(puppet)
        room.members.add(puppet)
        fake._append(room, puppet, "m.room.message", {"msgtype": "m.text", "body": "ours"})
        assert said[0]["origin_server_ts"] >= EPOCH_MS
        job = await start(
            imports,
            matrix.integration,
            channel_ids=[room.id],
            channel_map={room.id: channel},
        )
        done = await imports.until(job["id"], "completed", "failed")
        assert done["status"] == "completed", done
        got = await imports.inbox.of_channel(channel, 6)
        assert [e["text"] for e in got] == [f"m {n}" for n in range(5)] + ["in thread"]
        assert got[5]["thread_id"] == got[1]["id"]
        assert got[0]["author"]["name"] == "Alice"
        assert all(e["imported"] is True for e in got)
        assert done["progress"]["messages_imported"] == 6  # the puppet's own left out
        assert done["report"]["channels"][0]["matched"] == f"channel_map:{room.id}"
