"""The Google Chat provider's writes and reads against the stand-in over loopback: a post
made once whatever the retries, replies in threads, edits, deletes, a 429 surfaced with its
wait, and a space listed page by page as a delegated user (the app itself refused)."""

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
from shared.providers.googlechat.auth import CHAT_MESSAGES_READONLY, DelegationRefused
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
    # Each names what it replied to, as sync keeps a copy's thread; the root, the thread's
    # name (sync finds it by that for a reply it did not see start).
    assert by_root.external_thread_id == root.external_message_id
    assert by_thread.external_thread_id == thread
    assert root.external_thread_key == thread
    assert by_root.external_thread_key is None and by_thread.external_thread_key is None
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


ALICE = "alice@example.com"  # a user of the stand-in's, whom the service account acts as


async def test_the_app_itself_may_not_list_a_space(
    chat: GoogleChatChat, key: str, space: str
) -> None:
    """spaces.messages.list takes user authentication: the app's own token is refused (the
    Developer Preview's app scope aside), and so is its contract's `history`."""
    with pytest.raises(PermanentError) as refused:
        await chat.history(key, space, datetime.now(UTC) - timedelta(hours=1), limit=5)
    assert refused.value.error == "permission_denied"


async def test_a_delegated_user_lists_page_by_page_from_a_time(
    fake: FakeGoogleChat, chat: GoogleChatChat, key: str, space: str
) -> None:
    before = fake.message_event(space, "alice", "too early")["message"]
    for n in range(5):
        fake.message_event(space, ["alice", "bob", "carol"][n % 3], f"m{n}")
    fake.calls.clear()
    listed = [
        m
        async for m in chat.listed(
            key, space, as_user=ALICE, after=before["createTime"], page_size=2
        )
    ]
    assert [m.change.text for m in listed] == ["m0", "m1", "m2", "m3", "m4"]
    assert [m.page_start for m in listed] == [True, False, True, False, True]
    assert [c for c in fake.calls if c[1].endswith("/messages")] == [
        ("GET", f"/v1/{space}/messages")
    ] * 3
    # Listed as a user, the senders are `users/…` only (no displayName), and the message's
    # createTime is kept as written, to go on from.
    assert listed[0].change.sender.user_id == fake.users["alice"]["name"]
    assert listed[-1].create_time == stored(fake, space)[-1]["createTime"]
    everything = [m async for m in chat.listed(key, space, as_user=ALICE)]
    assert [m.change.text for m in everything][:2] == ["too early", "m0"]


async def test_a_reply_to_a_thread_begun_before_the_listing_finds_its_root(
    fake: FakeGoogleChat, client: httpx.AsyncClient, key: str, space: str
) -> None:
    root = fake.message_event(space, "alice", "the start")["message"]
    thread = root["thread"]["name"]
    fake.message_event(space, "bob", "first reply", thread=thread)
    since = fake.message_event(space, "carol", "elsewhere")["message"]["createTime"]
    fake.message_event(space, "bob", "late reply", thread=thread)
    fresh = chat_provider(fake, client)  # another process: no thread seen yet
    fake.calls.clear()
    [late] = [m.change async for m in fresh.listed(key, space, as_user=ALICE, after=since)]
    assert late.text == "late reply" and late.external_thread_id == root["name"]
    assert len(fake.calls) == 2  # the page, and the thread's first message (thread.name)


async def test_a_user_who_is_no_member_is_refused_and_so_is_a_missing_delegation(
    fake: FakeGoogleChat, chat: GoogleChatChat, key: str, space: str
) -> None:
    fake.spaces[space].members.discard("bob")
    with pytest.raises(PermanentError) as refused:
        await chat.api.list_messages(key, space, as_user="bob@example.com")
    assert refused.value.error == "permission_denied" and refused.value.scope == "channel"
    fake.delegated_scopes = set()
    try:
        with pytest.raises(DelegationRefused) as no_delegation:
            await chat.api.list_messages(key, space, as_user="carol@example.com")
    finally:
        fake.delegated_scopes = {CHAT_MESSAGES_READONLY}
    said = no_delegation.value.message
    assert "unauthorized_client" in said and "Domain-wide delegation" in said
    assert "100000000000000000001" in said  # the key's client ID, to paste in the console
    assert no_delegation.value.scope == "integration"


async def test_the_members_name_the_senders(
    fake: FakeGoogleChat, chat: GoogleChatChat, key: str, space: str
) -> None:
    members = await chat.api.list_members(key, space)
    names = {m["member"]["name"]: m["member"]["displayName"] for m in members}
    assert names[fake.users["bob"]["name"]] == "Bob" and len(names) == 3


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
