"""Matrix as a chat provider against the stand-in homeserver over loopback: hookhub posts
as a puppet per chat author (registered, named, joined), replies in threads, edits and
redacts; a 429 is surfaced with its wait; hostile text stays text; history is read back
page by page (spec.matrix.org v1.17: Application Service API "Identity assertion", "Server
admin style permissions"; Client-Server API "Rate limiting", event modules)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from services.sandbox.matrix import EPOCH_MS
from shared.providers.chat import (
    Attachment,
    Author,
    OutboundPost,
    PermanentError,
    RateLimited,
    TokenRejected,
)
from shared.providers.matrix.messages import MatrixChat
from tests.providers.matrix_world import PREFIX, World, world


@pytest.fixture(scope="module")
async def w() -> AsyncIterator[World]:
    async with world() as made:
        yield made


@pytest.fixture(autouse=True)
def _fresh(w: World) -> None:
    w.reset()


def _calls(w: World, path_part: str) -> list[tuple[str, str, dict[str, str]]]:
    return [r for r in w.fake.requests if path_part in r[1]]


async def test_a_post_is_sent_by_the_authors_puppet_with_the_authors_name(w: World) -> None:
    ada = Author("Ada Lovelace", external_id="chat-user-ada")
    room = w.fake.room.id
    posted = await w.chat.post(w.token, room, OutboundPost("hello", ada, tag="msg-1"))
    event = w.fake.event(posted.external_message_id)
    puppet = event["sender"]
    assert puppet.startswith(f"@{PREFIX}") and puppet.endswith(":sandbox.test")
    assert puppet in w.fake.users and puppet in w.fake.room.members
    assert w.fake.profiles[puppet]["displayname"] == "Ada Lovelace"
    assert event["content"]["body"] == "hello" and event["content"]["msgtype"] == "m.text"
    assert event["content"]["format"] == "org.matrix.custom.html"
    assert event["content"]["formatted_body"] == "hello"
    assert event["content"]["m.mentions"] == {}
    # Registered as the spec says, then every call as the puppet via ?user_id=.
    assert [r[0] for r in _calls(w, "/register")] == ["POST"]
    [send] = _calls(w, "/send/m.room.message/")
    assert send[2]["user_id"] == puppet
    # Another author is another puppet; the same author again is the same one, not
    # registered again.
    grace = Author("Grace Hopper", external_id="chat-user-grace")
    other = await w.chat.post(w.token, room, OutboundPost("hi", grace, tag="msg-2"))
    again = await w.chat.post(w.token, room, OutboundPost("again", ada, tag="msg-3"))
    assert w.fake.event(other.external_message_id)["sender"] != puppet
    assert w.fake.event(again.external_message_id)["sender"] == puppet
    assert len(_calls(w, "/register")) == 2
    # A renamed author: the puppet's display name follows.
    renamed = Author("Ada King", external_id="chat-user-ada")
    await w.chat.post(w.token, room, OutboundPost("renamed", renamed, tag="msg-4"))
    assert w.fake.profiles[puppet]["displayname"] == "Ada King"


async def test_a_retried_post_is_the_same_event(w: World) -> None:
    author = Author("Retry", external_id="chat-user-retry")
    post = OutboundPost("once", author, tag="msg-retry")
    first = await w.chat.post(w.token, w.fake.room.id, post)
    second = await w.chat.post(w.token, w.fake.room.id, post)
    assert first == second
    sent = [e for e in w.fake.room.timeline if e["content"].get("org.hookhub.tag") == "msg-retry"]
    assert len(sent) == 1
    found = await w.chat.find_post(
        w.token, w.fake.room.id, "msg-retry", datetime.fromtimestamp(EPOCH_MS / 1000, UTC)
    )
    assert found is not None and found.external_message_id == first.external_message_id


async def test_a_reply_goes_into_the_thread_of_its_root(w: World) -> None:
    root = w.fake.says("alice", {"msgtype": "m.text", "body": "root"})
    author = Author("Threader", external_id="chat-user-thread")
    post = OutboundPost("in thread", author, thread_external_id=root["event_id"], tag="t-1")
    posted = await w.chat.post(w.token, w.fake.room.id, post)
    assert posted.external_thread_id == root["event_id"]
    relates = w.fake.event(posted.external_message_id)["content"]["m.relates_to"]
    # "Threading", with the "Fallback for unthreaded clients".
    assert relates == {
        "rel_type": "m.thread",
        "event_id": root["event_id"],
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": root["event_id"]},
    }


async def test_an_edit_replaces_the_post_and_a_delete_redacts_it(w: World) -> None:
    author = Author("Editor", external_id="chat-user-edit")
    room = w.fake.room.id
    posted = await w.chat.post(w.token, room, OutboundPost("first <b>", author, tag="e-1"))
    await w.chat.edit(
        w.token, room, posted.external_message_id, OutboundPost("second <b>", author, tag="e-1")
    )
    edit = w.fake.room.timeline[-1]
    original = w.fake.event(posted.external_message_id)
    assert edit["sender"] == original["sender"]  # only a message's sender may replace it
    assert edit["content"]["m.relates_to"] == {
        "rel_type": "m.replace",
        "event_id": posted.external_message_id,
    }
    assert edit["content"]["body"] == "* second <b>"
    assert edit["content"]["m.new_content"]["body"] == "second <b>"
    assert edit["content"]["m.new_content"]["formatted_body"] == "second &lt;b&gt;"
    assert "m.relates_to" not in edit["content"]["m.new_content"]

    # Sync names an author by display name only: renamed, the edit is still the poster's.
    by_name = Author("Namesake")
    named = await w.chat.post(w.token, room, OutboundPost("v1", by_name, tag="e-2"))
    await w.chat.edit(
        w.token, room, named.external_message_id, OutboundPost("v2", Author("Renamed"), tag="e-2")
    )
    assert w.fake.room.timeline[-1]["sender"] == w.fake.event(named.external_message_id)["sender"]
    with pytest.raises(PermanentError) as gone:
        await w.chat.edit(w.token, room, "$never-there", OutboundPost("x", by_name, tag="e-3"))
    assert (gone.value.error, gone.value.scope) == ("message_not_found", "message")

    await w.chat.delete(w.token, room, posted.external_message_id)
    assert w.fake.event(posted.external_message_id)["content"] == {}
    redaction = w.fake.room.timeline[-1]
    assert redaction["type"] == "m.room.redaction" and redaction["sender"] == w.fake.bot
    assert redaction["content"] == {"redacts": posted.external_message_id}
    # Gone already, or never there: no failure.
    await w.chat.delete(w.token, room, posted.external_message_id)
    await w.chat.delete(w.token, room, "$never-there")


async def test_a_429_is_surfaced_with_its_wait(w: World) -> None:
    author = Author("Limited", external_id="chat-user-limited")
    room = w.fake.room.id
    await w.chat.post(w.token, room, OutboundPost("warm", author, tag="l-0"))
    w.fake.rate_limit(retry_after_ms=2500)
    with pytest.raises(RateLimited) as limited:
        await w.chat.post(w.token, room, OutboundPost("limited", author, tag="l-1"))
    assert limited.value.retry_after == 3.0  # the Retry-After header (whole seconds) wins
    w.fake.rate_limit(retry_after_ms=1500, header=False)
    with pytest.raises(RateLimited) as limited:
        await w.chat.post(w.token, room, OutboundPost("limited", author, tag="l-1"))
    assert limited.value.retry_after == 1.5  # else the deprecated retry_after_ms
    # The same call again once the wait is over: sent, once.
    posted = await w.chat.post(w.token, room, OutboundPost("limited", author, tag="l-1"))
    assert w.fake.event(posted.external_message_id)["content"]["body"] == "limited"


async def test_hostile_text_stays_text_and_mentions_nobody(w: World) -> None:
    hostile = (
        '<script>alert(1)</script> <a href="https://matrix.to/#/@alice:sandbox.test">Alice</a>'
        " @room https://matrix.to/#/@bob:sandbox.test &amp; \u202eevil\nline two"
    )
    author = Author("<img src=x onerror=alert(1)>", external_id="chat-user-hostile")
    attachments = (
        Attachment("javascript:alert(1)", name="click me"),
        Attachment('https://files.example/a?b=1&c="2"', name="<b>a.txt</b>"),
        Attachment("https://matrix.to/#/@carol:sandbox.test", name="carol"),
    )
    post = OutboundPost(hostile, author, attachments=attachments, tag="h-1")
    posted = await w.chat.post(w.token, w.fake.room.id, post)
    event = w.fake.event(posted.external_message_id)
    content = event["content"]
    html = content["formatted_body"]
    assert "<script" not in html and "<img" not in html and '<a href="https://matrix.to' not in html
    assert "&lt;script&gt;" in html and "<br>line two" in html
    assert html.count("<a href=") == 1  # the one http(s) attachment, escaped
    assert (
        '<a href="https://files.example/a?b=1&amp;c=&quot;2&quot;">&lt;b&gt;a.txt&lt;/b&gt;</a>'
        in html
    )
    assert "javascript:" not in html and "click me" in html
    for text in (html, content["body"]):
        assert "matrix.to" not in text  # a word joiner in each: no pill
        assert "\u202e" not in text
    assert content["m.mentions"] == {}
    # The name is the puppet's display name, as text (Matrix profiles are not HTML).
    assert w.fake.profiles[event["sender"]]["displayname"] == "<img src=x onerror=alert(1)>"


async def test_history_reads_the_timeline_back_page_by_page(w: World) -> None:
    room = w.fake.add_room("history", "History")
    since_event = w.fake.says("alice", {"msgtype": "m.text", "body": "before"}, room)
    since = datetime.fromtimestamp(since_event["origin_server_ts"] / 1000, UTC)
    ours = await w.chat.post(
        w.token, room.id, OutboundPost("ours", Author("Hist", external_id="h"), tag="hist-0")
    )
    bodies = [f"m{i}" for i in range(25)]
    for i, body in enumerate(bodies):
        w.fake.says(("alice", "bob", "carol")[i % 3], {"msgtype": "m.text", "body": body}, room)
    first = room.timeline[-25]
    w.fake.says(
        "alice",
        {
            "msgtype": "m.text",
            "body": "* m0 edited",
            "m.new_content": {"msgtype": "m.text", "body": "m0 edited"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": first["event_id"]},
        },
        room,
    )
    w.fake.redacts("carol", room.timeline[-3]["event_id"], room)  # m23, carol's
    w.fake.requests.clear()
    w.chat.page_size = 10

    changes = await w.chat.history(w.token, room.id, since, limit=100)
    texts = [c.text for c in changes]
    assert texts == ["m0 edited", *bodies[1:23], "m24"]
    assert ours.external_message_id not in {c.external_message_id for c in changes}
    assert all(c.kind == "created" and c.external_channel_id == room.id for c in changes)
    pages = _calls(w, "/messages")
    assert len(pages) >= 3 and all(p[2]["dir"] == "b" for p in pages)
    assert "from" not in pages[0][2] and all("from" in p[2] for p in pages[1:])
    # The oldest `limit` of them.
    oldest = await w.chat.history(w.token, room.id, since, limit=5)
    assert [c.text for c in oldest] == ["m0 edited", "m1", "m2", "m3", "m4"]


async def test_a_puppet_removed_from_the_room_joins_again(w: World) -> None:
    author = Author("Kicked", external_id="chat-user-kicked")
    room = w.fake.room
    first = await w.chat.post(w.token, room.id, OutboundPost("one", author, tag="k-1"))
    puppet = w.fake.event(first.external_message_id)["sender"]
    room.members.discard(puppet)
    second = await w.chat.post(w.token, room.id, OutboundPost("two", author, tag="k-2"))
    assert w.fake.event(second.external_message_id)["sender"] == puppet in room.members


async def test_the_channel_and_an_invite_only_room(w: World) -> None:
    closed = w.fake.add_room("closed", "Closed room", join_rule="invite")
    assert (await w.chat.channel(w.token, closed.id)).name == "Closed room"
    author = Author("Invited", external_id="chat-user-invited")
    posted = await w.chat.post(w.token, closed.id, OutboundPost("in", author, tag="c-1"))
    assert w.fake.event(posted.external_message_id)["sender"] in closed.members
    with pytest.raises(PermanentError) as refused:
        await w.chat.channel(w.token, "!nowhere:sandbox.test")
    assert refused.value.scope == "channel"


async def test_a_senders_name_is_read_from_their_profile(w: World) -> None:
    alice = await w.chat.user(w.token, "@alice:sandbox.test")
    assert alice == Author("Alice", external_id="@alice:sandbox.test")
    assert await w.chat.user(w.token, "@nobody:sandbox.test") is None


async def test_a_wrong_as_token_is_rejected(w: World) -> None:
    chat = MatrixChat(w.api, PREFIX)
    with pytest.raises(TokenRejected):
        await chat.identity("not-the-as-token")
    identity = await w.chat.identity(w.token)
    assert identity.user_id == w.fake.bot and identity.app_id == PREFIX
    # Ours: the namespace on this homeserver only.
    assert w.chat.is_ours(f"@{PREFIX}abc:sandbox.test") and w.chat.is_ours(w.fake.bot)
    assert not w.chat.is_ours(f"@{PREFIX}abc:elsewhere.example")
    assert not w.chat.is_ours("@alice:sandbox.test")


async def test_an_authors_avatar_is_uploaded_once_and_set_on_the_puppet(w: World) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 64
    fetched: list[str] = []

    async def fetch(url: str) -> tuple[bytes, str] | None:
        fetched.append(url)
        return {
            "https://avatars.example/ada.png": (png, "image/png"),
            "https://avatars.example/page.html": (b"<html>", "text/html"),
        }.get(url)

    chat = MatrixChat(w.api, PREFIX, fetch_avatar=fetch)
    room = w.fake.room.id
    ada = Author("Ada", "https://avatars.example/ada.png", external_id="chat-user-avatar")
    first = await chat.post(w.token, room, OutboundPost("a", ada, tag="av-1"))
    await chat.post(w.token, room, OutboundPost("b", ada, tag="av-2"))
    puppet = w.fake.event(first.external_message_id)["sender"]
    avatar = w.fake.profiles[puppet]["avatar_url"]
    assert avatar.startswith("mxc://sandbox.test/")
    assert w.fake.media[avatar.rsplit("/", 1)[1]] == (png, "image/png")
    assert fetched == ["https://avatars.example/ada.png"] and len(_calls(w, "/upload")) == 1
    # What is no image, or not there, sets no avatar; an mxc:// one is set as it is.
    for n, url in enumerate(("https://avatars.example/page.html", "https://avatars.example/x")):
        other = Author(f"Other {n}", url, external_id=f"chat-user-noavatar-{n}")
        posted = await chat.post(w.token, room, OutboundPost("c", other, tag=f"av-n{n}"))
        assert (
            "avatar_url" not in w.fake.profiles[w.fake.event(posted.external_message_id)["sender"]]
        )
    mxc = Author("Mxc", "mxc://elsewhere.example/abc", external_id="chat-user-mxc")
    posted = await chat.post(w.token, room, OutboundPost("d", mxc, tag="av-mxc"))
    sender = w.fake.event(posted.external_message_id)["sender"]
    assert w.fake.profiles[sender]["avatar_url"] == "mxc://elsewhere.example/abc"
    assert len(_calls(w, "/upload")) == 1


async def test_the_caches_are_bounded_and_an_emptied_one_costs_calls_not_failures(
    w: World,
) -> None:
    chat = MatrixChat(w.api, PREFIX, max_cached=2)
    room = w.fake.room.id
    authors = [Author(f"Author {n}", external_id=f"bounded-{n}") for n in range(3)]
    for n, author in enumerate(authors):
        await chat.post(w.token, room, OutboundPost(f"b{n}", author, tag=f"bounded-{n}"))
    registered = len(_calls(w, "/register"))
    assert registered == 3
    # Past two entries the caches were emptied: the first author is registered (a no-op,
    # M_USER_IN_USE) and named again, and the post goes out as the same puppet.
    again = await chat.post(w.token, room, OutboundPost("b again", authors[0], tag="bounded-x"))
    assert len(_calls(w, "/register")) == registered + 1
    first = w.fake.event(again.external_message_id)["sender"]
    assert first == chat.puppet(authors[0], "sandbox.test")
    assert w.fake.profiles[first]["displayname"] == "Author 0"
