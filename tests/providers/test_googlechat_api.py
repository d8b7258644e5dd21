"""The Google Chat provider's writes and reads against the stand-in over loopback: a post
made once whatever the retries, replies in threads, edits, deletes, a 429 surfaced with its
wait, and the history read page by page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.sandbox.googlechat import FakeGoogleChat
from shared.domain.oauth.provider import ProviderUnreachable
from shared.providers.chat import (
    Author,
    OutboundPost,
    PermanentError,
    RateLimited,
    TokenRejected,
)
from shared.providers.googlechat.api import BACKOFF_SECONDS, refusal
from shared.providers.googlechat.messages import MARK, GoogleChatChat
from tests.providers.googlechat_support import chat_provider, http_client, running_fake

ADA = Author("Ada")


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeGoogleChat]:
    async for chat in running_fake():
        yield chat


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async for http in http_client():
        yield http


@pytest.fixture
def chat(fake: FakeGoogleChat, client: httpx.AsyncClient) -> GoogleChatChat:
    return chat_provider(fake, client)


@pytest.fixture
def key(fake: FakeGoogleChat) -> str:
    return fake.service_account_json()


@pytest.fixture
def space(fake: FakeGoogleChat) -> str:
    return fake.add_space(f"spaces/AAAA{len(fake.spaces):04d}", "Test space").name


def stored(fake: FakeGoogleChat, space: str) -> list[dict[str, Any]]:
    return sorted(fake.spaces[space].messages.values(), key=lambda m: m["createTime"])


async def test_a_post_sent_twice_with_its_tag_is_one_message(
    fake: FakeGoogleChat, chat: GoogleChatChat, key: str, space: str
) -> None:
    post = OutboundPost("hello", ADA, tag="6650f0c2a1b2c3d4e5f60718")
    fake.syntaxes.clear()
    first = await chat.post(key, space, post)
    again = await chat.post(key, space, post)
    assert fake.syntaxes == ["MARKUP_SYNTAX_CHAT"]  # the second answered from its requestId
    assert first == again
    [message] = stored(fake, space)
    assert message["text"] == "*Ada*\nhello"
    # The custom id marks the message; its name stays the generated one, which events carry.
    assert message["clientAssignedMessageId"] == MARK + "6650f0c2a1b2c3d4e5f60718"
    assert first.external_message_id == message["name"]
    assert MARK not in first.external_message_id
    # After a crash between the post and its record, the post is found by its tag.
    found = await chat.find_post(key, space, "6650f0c2a1b2c3d4e5f60718", datetime.now(UTC))
    assert found == first
    assert await chat.find_post(key, space, "never-posted", datetime.now(UTC)) is None


async def test_an_untagged_post_still_carries_our_mark(
    fake: FakeGoogleChat, chat: GoogleChatChat, key: str, space: str
) -> None:
    posted = await chat.post(key, space, OutboundPost("no tag", ADA))
    [message] = stored(fake, space)
    assert message["clientAssignedMessageId"].startswith(MARK)
    assert posted.external_message_id == message["name"]
    # The app's user, learnt from the post, is who we are.
    assert (await chat.identity(key)).user_id == message["sender"]["name"] == "users/app"


async def test_a_reply_goes_to_the_thread_of_its_root(
    fake: FakeGoogleChat, chat: GoogleChatChat, key: str, space: str
) -> None:
    root = await chat.post(key, space, OutboundPost("root", ADA, tag="root-1"))
    # A first message is its thread's root: it names no thread of its own to sync.
    assert root.external_thread_id is None
    thread = stored(fake, space)[0]["thread"]["name"]
    # By the root message's name (its thread known from its post), or by the thread's name.
    by_root = await chat.post(
        key,
        space,
        OutboundPost("re 1", ADA, tag="re-1", thread_external_id=root.external_message_id),
    )
    by_thread = await chat.post(
        key, space, OutboundPost("re 2", ADA, tag="re-2", thread_external_id=thread)
    )
    # Each names what it replied to, as sync keeps a copy's thread.
    assert by_root.external_thread_id == root.external_message_id
    assert by_thread.external_thread_id == thread
    replies = [m for m in stored(fake, space) if m.get("threadReply")]
    assert [m["text"] for m in replies] == ["*Ada*\nre 1", "*Ada*\nre 2"]
    create = [c for c in fake.calls if c == ("POST", f"/v1/{space}/messages")]
    assert len(create) == 3


async def test_a_reply_whose_root_is_gone_starts_a_thread(
    fake: FakeGoogleChat, chat: GoogleChatChat, key: str, space: str
) -> None:
    gone = f"{space}/messages/nothing.nothing"
    posted = await chat.post(key, space, OutboundPost("orphan", ADA, thread_external_id=gone))
    # A message of its own, the first of a new thread: it replies to nothing there.
    assert not stored(fake, space)[0].get("threadReply") and posted.external_thread_id is None


async def test_edit_and_delete(
    fake: FakeGoogleChat, chat: GoogleChatChat, key: str, space: str
) -> None:
    posted = await chat.post(key, space, OutboundPost("first", ADA, tag="edit-1"))
    fake.syntaxes.clear()
    await chat.edit(key, space, posted.external_message_id, OutboundPost("second", ADA))
    # Chat's markup, whatever the app's default (Markdown for an app made today).
    assert fake.syntaxes == ["MARKUP_SYNTAX_CHAT"]
    message = fake.spaces[space].messages[posted.external_message_id]
    assert message["text"] == "*Ada*\nsecond" and "lastUpdateTime" in message
    await chat.delete(key, space, posted.external_message_id)
    assert posted.external_message_id not in fake.spaces[space].messages
    await chat.delete(key, space, posted.external_message_id)  # already gone: no error
    with pytest.raises(PermanentError) as refused:
        await chat.edit(key, space, posted.external_message_id, OutboundPost("third", ADA))
    assert (refused.value.error, refused.value.scope) == ("not_found", "message")


async def test_a_space_the_app_is_not_in_is_a_channel_error(
    chat: GoogleChatChat, key: str, space: str
) -> None:
    assert (await chat.channel(key, space)).name == "Test space"
    with pytest.raises(PermanentError) as refused:
        await chat.channel(key, "spaces/NOPE")
    assert refused.value.scope == "channel"


async def test_a_429_is_rate_limited_with_its_wait_and_the_call_then_goes_through(
    fake: FakeGoogleChat, chat: GoogleChatChat, key: str, space: str
) -> None:
    fake.limit(1, retry_after=7)
    with pytest.raises(RateLimited, match="RESOURCE_EXHAUSTED") as limited:
        await chat.post(key, space, OutboundPost("busy", ADA, tag="busy-1"))
    assert limited.value.retry_after == 7
    assert stored(fake, space) == []
    fake.limit(1)  # Google's usual 429: no Retry-After, back off
    with pytest.raises(RateLimited) as limited:
        await chat.post(key, space, OutboundPost("busy", ADA, tag="busy-1"))
    assert limited.value.retry_after == BACKOFF_SECONDS
    await chat.post(key, space, OutboundPost("busy", ADA, tag="busy-1"))
    assert [m["text"] for m in stored(fake, space)] == ["*Ada*\nbusy"]


def test_resource_exhausted_is_a_limit_whatever_the_status() -> None:
    body = {"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}
    assert isinstance(refusal("spaces.messages.create", 400, body), RateLimited)
    assert chat_pace() == 1.0


def chat_pace() -> float:
    return GoogleChatChat.pace_seconds(None, "spaces/A")  # type: ignore[arg-type]


async def test_history_is_read_page_by_page_from_since(
    fake: FakeGoogleChat, chat: GoogleChatChat, key: str, space: str
) -> None:
    before = fake.message_event(space, "alice", "too early")["message"]
    since = datetime.fromisoformat(before["createTime"].replace("Z", "+00:00"))
    for n in range(7):
        fake.message_event(space, ["alice", "bob", "carol"][n % 3], f"m{n}")
    fake.calls.clear()
    changes = await chat.history(key, space, since, limit=5)
    assert [c.text for c in changes] == ["m0", "m1", "m2", "m3", "m4"]
    assert [c.author.name for c in changes if c.author] == ["Alice", "Bob", "Carol", "Alice", "Bob"]
    assert all(c.kind == "created" for c in changes)
    everything = await chat.history(key, space, since - timedelta(hours=1), limit=100)
    assert [c.text for c in everything][:2] == ["too early", "m0"] and len(everything) == 8


async def test_history_pages_are_followed(
    fake: FakeGoogleChat, chat: GoogleChatChat, key: str, space: str
) -> None:
    for n in range(5):
        fake.message_event(space, "bob", f"p{n}")
    pages = []
    token = None
    while True:
        page = await chat.api.list_messages(key, space, page_size=2, page_token=token)
        pages.append([m["text"] for m in page.messages])
        if page.next_page_token is None:
            break
        token = page.next_page_token
    assert pages == [["p0", "p1"], ["p2", "p3"], ["p4"]]


@pytest.mark.parametrize(
    ("status", "state", "method", "kind", "scope"),
    [
        (401, "UNAUTHENTICATED", "spaces.messages.create", TokenRejected, "integration"),
        (403, "PERMISSION_DENIED", "spaces.messages.list", PermanentError, "channel"),
        (404, "NOT_FOUND", "spaces.get", PermanentError, "channel"),
        (404, "NOT_FOUND", "spaces.messages.patch", PermanentError, "message"),
        (400, "INVALID_ARGUMENT", "spaces.messages.create", PermanentError, "message"),
        (503, "UNAVAILABLE", "spaces.messages.create", ProviderUnreachable, None),
    ],
)
def test_each_refusal_is_sorted(
    status: int, state: str, method: str, kind: type[Exception], scope: str | None
) -> None:
    """Google's error envelope (AIP-193): `{"error": {"code", "message", "status"}}`."""
    error = refusal(method, status, {"error": {"code": status, "message": "m", "status": state}})
    assert type(error) is kind
    assert getattr(error, "scope", None) == scope
