"""The message map's indexes serve its queries, on the real server the suite runs."""

from __future__ import annotations

from shared.domain.message_map import COLLECTION, INDEXES, Copy, MessageMap
from shared.kernel.ids import utcnow
from shared.kernel.mongo import Database, ensure_indexes

KEYED = [("external_thread_key", 1)]


def _copy(
    message: str,
    *,
    integration: str = "int_1",
    provider: str = "googlechat",
    channel: str = "spaces/AAA",
    chat: str | None = None,
    key: str | None = None,
) -> Copy:
    """A copy of `message` under `integration`: the chat's own (`chat`, outbound), else
    one brought in."""
    return Copy.new(
        workspace_id=f"ws_{integration}",
        channel_id=f"ch_{integration}",
        provider=provider,
        integration_id=integration,
        mapping_id=f"map_{integration}_{provider}",
        external_channel_id=channel,
        external_message_id=message,
        origin="outbound" if chat else "inbound",
        chat_message_id=chat,
        inbound_id=None if chat else f"evt_{message}",
        external_thread_key=key,
    )


async def test_a_look_up_by_thread_key_reads_its_index(db: Database) -> None:
    """`thread_roots` (a Google Chat reply whose root its provider has not seen) asks by
    `$in` of thread names. Its index was partial over `$type: "string"`, which neither
    MongoDB's planner nor the embedded server takes for an `$in`: every look-up scanned the
    whole map. Made before as it was, the index is made again at the start."""
    await db[COLLECTION].create_index(
        KEYED, partialFilterExpression={"external_thread_key": {"$type": "string"}}
    )
    await ensure_indexes(db, INDEXES)
    [index] = [
        index
        for index in (await db[COLLECTION].index_information()).values()
        if list(index["key"]) == KEYED
    ]
    assert index.get("sparse") is True and "partialFilterExpression" not in index
    now = utcnow()
    await db[COLLECTION].insert_many(
        [
            _copy(
                f"spaces/AAA/messages/m{n}", key=f"spaces/AAA/threads/t{n}" if n % 10 == 0 else None
            ).to_doc(now)
            for n in range(50)
        ]
    )
    the_map = MessageMap(db)
    roots = await the_map.thread_roots(["spaces/AAA/threads/t10", "spaces/AAA/threads/t40"])
    assert sorted(c.external_message_id for c in roots) == [
        "spaces/AAA/messages/m10",
        "spaces/AAA/messages/m40",
    ]
    query = {"external_thread_key": {"$in": ["spaces/AAA/threads/t10"]}}
    plan = (await db[COLLECTION].find(query).explain())["queryPlanner"]["winningPlan"]
    assert plan["inputStage"]["stage"] == "IXSCAN", plan
    assert plan["inputStage"]["keyPattern"] == dict(KEYED), plan


async def test_a_look_up_by_a_provider_message_reads_the_ids_its_integrations_give(
    db: Database,
) -> None:
    """No index holds (provider, channel, message): the copy is read by the `_id` each
    integration the caller may see derives from them, and the chat message's copies by
    their index. Another integration's copy of the same provider message is not read."""
    await ensure_indexes(db, INDEXES)
    now = utcnow()

    copies = [
        _copy("1700.1", integration="int_a", provider="slack", channel="C1", chat="msg_a"),
        # The same chat message, bridged; another workspace's copy of the same Slack ts.
        _copy("99", integration="int_a", provider="discord", channel="C1", chat="msg_a"),
        _copy("1700.1", integration="int_b", provider="slack", channel="C1", chat="msg_b"),
    ]
    await db[COLLECTION].insert_many([c.to_doc(now) for c in copies])
    the_map = MessageMap(db)
    found = await the_map.lookup_external("slack", "C1", "1700.1", ["int_a"])
    assert sorted((c.provider, c.chat_message_id) for c in found) == [
        ("discord", "msg_a"),
        ("slack", "msg_a"),
    ]
    both = await the_map.lookup_external("slack", "C1", "1700.1", ["int_a", "int_b"])
    assert {c.chat_message_id for c in both} == {"msg_a", "msg_b"}
    assert await the_map.lookup_external("slack", "C1", "1700.1", []) == []
    assert await the_map.lookup_external("slack", "C1", "1700.2", ["int_a"]) == []
