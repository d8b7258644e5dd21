"""Mattermost's REST side against the stand-in over loopback: outbound posts, replies, edits
and deletes as the bot with the chat author shown (override username and icon), the token
checked, a 429 surfaced with its wait, and the reads sync's catch-up and `find_post` make.

Wire shapes are Mattermost's (api.mattermost.com; the server's sqlstore for `since`), as
services/sandbox/mattermost.py notes beside each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.sandbox.mattermost import ADA, BOT, CHANNEL, GRACE, FakeMattermost
from shared.kernel.http.tls import tls
from shared.providers.chat import Author, OutboundPost, PermanentError, TokenRejected
from shared.providers.mattermost import messages
from shared.providers.mattermost.api import (
    MattermostApi,
    MattermostRateLimited,
    PostGone,
    rate_limited,
    refusal,
)
from shared.providers.mattermost.messages import OWN_PROP, TAG_PROP, MattermostChat, credential
from tests.support import serve

ADA_ID, GRACE_ID, BOT_ID, CHANNEL_ID = ADA[0], GRACE[0], BOT[0], CHANNEL[0]
AVATAR = "https://chat.example/avatars/ada.png"


@pytest.fixture
async def fake() -> AsyncIterator[FakeMattermost]:
    server = FakeMattermost()
    async with serve(server.app(), probe="/healthz") as running:
        server.base_url = running.base_url
        yield server


@pytest.fixture
async def chat() -> AsyncIterator[MattermostChat]:
    async with httpx.AsyncClient(verify=tls(), timeout=10.0) as client:
        yield MattermostChat(MattermostApi(client))


def token(fake: FakeMattermost) -> str:
    return credential(fake.base_url, fake.bot_token)


def outbound(text: str, thread: str | None = None, tag: str | None = None) -> OutboundPost:
    return OutboundPost(
        text=text,
        author=Author(name="Ada  Lovelace", avatar_url=AVATAR),
        thread_external_id=thread,
        tag=tag,
    )


async def test_post_reply_edit_and_delete_show_the_chat_author(
    fake: FakeMattermost, chat: MattermostChat
) -> None:
    posted = await chat.post(token(fake), CHANNEL_ID, outbound("hello **there**", tag="msg_1"))
    stored = fake.post(posted.external_message_id)
    assert stored is not None
    assert stored["user_id"] == BOT_ID and stored["message"] == "hello **there**"
    assert stored["root_id"] == "" and posted.external_thread_id is None
    assert stored["props"]["override_username"] == "Ada Lovelace"
    assert stored["props"]["override_icon_url"] == AVATAR
    assert stored["props"][OWN_PROP] == "true" and stored["props"][TAG_PROP] == "msg_1"

    reply = await chat.post(token(fake), CHANNEL_ID, outbound("a reply", thread=stored["id"]))
    assert reply.external_thread_id == stored["id"]
    assert fake.post(reply.external_message_id)["root_id"] == stored["id"]  # type: ignore[index]

    await chat.edit(token(fake), CHANNEL_ID, stored["id"], outbound("hello again", tag="msg_1"))
    edited = fake.post(stored["id"])
    assert edited is not None and edited["message"] == "hello again" and edited["edit_at"] > 0
    # A patch replaces the props: the author and our marks are sent again.
    assert edited["props"]["override_username"] == "Ada Lovelace"
    assert edited["props"][OWN_PROP] == "true"

    await chat.delete(token(fake), CHANNEL_ID, reply.external_message_id)
    assert fake.post(reply.external_message_id)["delete_at"] > 0  # type: ignore[index]
    # Already gone: no error, and the server was asked (a 404 it answered).
    before = len(fake.requests)
    await chat.delete(token(fake), CHANNEL_ID, reply.external_message_id)
    assert len(fake.requests) == before + 1


async def test_a_wrong_token_is_refused(fake: FakeMattermost, chat: MattermostChat) -> None:
    wrong = credential(fake.base_url, "x" * 26)
    with pytest.raises(TokenRejected) as refused:
        await chat.identity(wrong)
    assert refused.value.error == "api.context.session_expired.app_error"
    with pytest.raises(TokenRejected):
        await chat.post(wrong, CHANNEL_ID, outbound("hi"))
    assert fake.live_posts(CHANNEL_ID) == []
    me = await chat.identity(token(fake))
    assert (me.user_id, me.bot_id, me.name) == (BOT_ID, BOT_ID, "hookhub")


async def test_a_429_is_surfaced_with_its_retry(fake: FakeMattermost, chat: MattermostChat) -> None:
    fake.rate_limit_next(retry_after=7, reset=9)
    with pytest.raises(MattermostRateLimited) as limited:
        await chat.post(token(fake), CHANNEL_ID, outbound("hi"))
    assert limited.value.retry_after == 7 and limited.value.reset_after == 9
    assert limited.value.limit == 10 and limited.value.status == 429
    assert fake.live_posts(CHANNEL_ID) == []
    # The same call again, once waited for, goes through.
    await chat.post(token(fake), CHANNEL_ID, outbound("hi"))
    assert [p["message"] for p in fake.live_posts(CHANNEL_ID)] == ["hi"]


def test_a_429_without_retry_after_waits_for_the_reset() -> None:
    assert rate_limited("x", httpx.Headers({"X-Ratelimit-Reset": "4"})).retry_after == 4
    assert rate_limited("x", httpx.Headers({})).retry_after == 1.0


async def test_hostile_text_goes_out_defused(fake: FakeMattermost, chat: MattermostChat) -> None:
    hostile = "@channel @all @here hi @ada <b>bold</b> <script>x</script> `@here <i>`"
    posted = await chat.post(token(fake), CHANNEL_ID, outbound(hostile))
    sent = fake.post(posted.external_message_id)["message"]  # type: ignore[index]
    for mention in ("@channel", "@all", "@here ", "@ada"):
        assert mention not in sent.replace("`@here <i>`", "")
    assert "<b>" not in sent and "<script>" not in sent
    assert "@\u200bchannel" in sent and "\\<b\\>" in sent
    assert sent.endswith("`@here <i>`")  # code is left as it is


async def test_channel_and_user(fake: FakeMattermost, chat: MattermostChat) -> None:
    found = await chat.channel(token(fake), CHANNEL_ID)
    assert (found.id, found.name) == (CHANNEL_ID, "Town Square")
    fake.add_channel("ch000000000000000000000000", "secret", "Secret", members=[ADA_ID])
    with pytest.raises(PermanentError) as refused:
        await chat.channel(token(fake), "ch000000000000000000000000")
    assert refused.value.scope == "channel"
    grace = await chat.user(token(fake), GRACE_ID)
    assert grace is not None and grace.name == "Grace Hopper"
    assert grace.avatar_url == f"{fake.base_url}/api/v4/users/{GRACE_ID}/image"
    assert await chat.user(token(fake), "us000000000000000000000000") is None


async def test_history_pages_back_to_since(
    fake: FakeMattermost, chat: MattermostChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(messages, "MAX_PER_PAGE", 3)
    await fake.user_posts(ADA_ID, CHANNEL_ID, "before")
    since = datetime.fromtimestamp(fake.now_ms() / 1000, UTC)
    made = [await fake.user_posts(ADA_ID, CHANNEL_ID, f"m{i}") for i in range(7)]
    await fake.user_deletes(made[2]["id"])
    changes = await chat.history(token(fake), CHANNEL_ID, since, limit=100)
    assert [c.text for c in changes] == ["m0", "m1", "m3", "m4", "m5", "m6"]
    assert all(c.kind == "created" for c in changes)
    pages = [p for m, p in fake.requests if m == "GET" and p.endswith("/posts")]
    assert len(pages) == 3  # 6 live posts after `since`, then the page reaching "before"
    assert [c.text for c in await chat.history(token(fake), CHANNEL_ID, since, limit=2)] == [
        "m0",
        "m1",
    ]


async def test_changes_since_reads_creates_edits_and_deletes(
    fake: FakeMattermost, chat: MattermostChat
) -> None:
    root = await fake.user_posts(ADA_ID, CHANNEL_ID, "root")
    kept = await fake.user_posts(ADA_ID, CHANNEL_ID, "kept")
    gone = await fake.user_posts(GRACE_ID, CHANNEL_ID, "gone")
    since = fake.now_ms()
    reply = await fake.user_posts(GRACE_ID, CHANNEL_ID, "a reply", root_id=root["id"])
    await fake.user_edits(kept["id"], "kept, edited")
    await fake.user_deletes(gone["id"])
    caught = await chat.changes_since(token(fake), CHANNEL_ID, since)
    seen = [(c.kind, c.external_message_id, c.text) for c in caught.changes]
    # The root moved on by the reply is no change; the old copy the edit left is none either.
    assert seen == [
        ("created", reply["id"], "a reply"),
        ("edited", kept["id"], "kept, edited"),
        ("deleted", gone["id"], ""),
    ]
    assert caught.changes[0].external_thread_id == root["id"]
    newest = caught.newest_ms
    assert newest is not None and newest == fake.post(gone["id"])["update_at"]  # type: ignore[index]
    assert (await chat.changes_since(token(fake), CHANNEL_ID, newest)).changes == []


async def test_find_post_by_tag(fake: FakeMattermost, chat: MattermostChat) -> None:
    since = datetime.now(UTC) - timedelta(minutes=1)
    posted = await chat.post(token(fake), CHANNEL_ID, outbound("x", tag="msg_7"))
    reply = await chat.post(
        token(fake), CHANNEL_ID, outbound("y", thread=posted.external_message_id, tag="msg_8")
    )
    found = await chat.find_post(token(fake), CHANNEL_ID, "msg_7", since)
    assert found is not None and found.external_message_id == posted.external_message_id
    in_thread = await chat.find_post(
        token(fake), CHANNEL_ID, "msg_8", since, posted.external_message_id
    )
    assert in_thread is not None and in_thread.external_message_id == reply.external_message_id
    assert await chat.find_post(token(fake), CHANNEL_ID, "msg_9", since) is None


def test_refusals_are_sorted_by_status_and_id() -> None:
    # AppError bodies as the server writes them (model.AppError: id, message, status_code).
    def app_error(error_id: str, status: int) -> dict[str, object]:
        return {"id": error_id, "message": "m", "detailed_error": "", "status_code": status}

    older = refusal("DELETE /posts/{post_id}", 404, app_error("store.sql_post.get.app_error", 404))
    assert isinstance(older, PostGone) and older.scope == "message"
    channel = refusal(
        "GET /channels/{channel_id}", 404, app_error("app.channel.get.existing.app_error", 404)
    )
    assert not isinstance(channel, PostGone) and channel.scope == "channel"
    forbidden = refusal("POST /posts", 403, app_error("api.context.permissions.app_error", 403))
    assert forbidden.scope == "channel"
    too_long = refusal(
        "POST /posts", 400, app_error("model.post.is_valid.message_length.app_error", 400)
    )
    assert too_long.scope == "message"
    assert refusal("POST /posts", 404, None).scope == "integration"  # not Mattermost speaking


async def test_a_post_made_again_within_the_servers_window_is_the_same_post(
    fake: FakeMattermost, chat: MattermostChat
) -> None:
    """Each post carries a `pending_post_id` of its chat message and channel: a create the
    server saw within its window (30 s, deduplicateCreatePost) is answered with the post it
    made, so a post retried after an answer that never came is one post. Past the window
    (set to nothing here) it is a new post, which a recovery's search by tag prevents."""
    first = await chat.post(token(fake), CHANNEL_ID, outbound("once", tag="msg_again"))
    again = await chat.post(token(fake), CHANNEL_ID, outbound("once", tag="msg_again"))
    assert again.external_message_id == first.external_message_id
    assert [p["message"] for p in fake.live_posts(CHANNEL_ID)].count("once") == 1
    other = await chat.post(token(fake), CHANNEL_ID, outbound("once", tag="msg_other"))
    assert other.external_message_id != first.external_message_id
    fake.pending_ttl_seconds = 0.0
    await chat.post(token(fake), CHANNEL_ID, outbound("twice", tag="msg_late"))
    late = await chat.post(token(fake), CHANNEL_ID, outbound("twice", tag="msg_late"))
    assert [p["message"] for p in fake.live_posts(CHANNEL_ID)].count("twice") == 2
    assert fake.post(late.external_message_id) is not None
