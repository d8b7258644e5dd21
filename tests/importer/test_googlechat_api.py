"""A Google Chat space imported through the API: `spaces.messages.list` as the integration's
`import_as` user (domain-wide delegation of chat.messages.readonly to the app's service
account), oldest first, with its threads; hookhub's own post and a deleted message left
out, an edit as it is now, mentions defused, senders named by the app's member list. A
resume goes on from the checkpoint; without `import_as` the import is refused, and a
delegation Google refuses fails the job naming it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from services.sandbox.googlechat import CHAT_MESSAGES_READONLY, FakeGoogleChat
from shared.kernel.http.tls import tls
from shared.providers.chat import Author, OutboundPost
from shared.providers.googlechat.network import GoogleChatApiSource
from tests.importer.conftest import Imports
from tests.importer.test_api import start
from tests.providers.googlechat_support import chat_provider
from tests.support import admin_headers
from tests.sync.googlechat_world import PROJECT, GoogleChat, connect

ALICE = "alice@example.com"
ZWJ = "\u200d"


@pytest.fixture(scope="module")
async def gchat(imports: Imports) -> AsyncIterator[GoogleChat]:
    async with contextlib.AsyncExitStack() as stack:
        yield await connect(imports.world, stack, audience=PROJECT, import_as=ALICE)


@pytest.fixture
def delegation(gchat: GoogleChat) -> Iterator[FakeGoogleChat]:
    """The stand-in, its delegation and list hook as they were after the test."""
    fake = gchat.fake
    yield fake
    fake.delegated_scopes = {CHAT_MESSAGES_READONLY}
    fake.on_list = None


def withdraw(fake: FakeGoogleChat) -> None:
    """The administrator removes the delegation; the users' tokens lapse (the next call
    asks for one, which Google now refuses)."""
    for token in fake.token_users:
        fake.tokens.pop(token, None)
    fake.delegated_scopes = set()


async def hookhub_posts(fake: FakeGoogleChat, space: str, text: str) -> None:
    """A chat message posted to the space by hookhub's Google Chat provider (its mark)."""
    async with httpx.AsyncClient(verify=tls(), timeout=10.0) as client:
        await chat_provider(fake, client).post(
            fake.service_account_json(), space, OutboundPost(text=text, author=Author("Ada"))
        )


def texts(envelopes: list[dict[str, Any]]) -> list[str]:
    return [e["text"] for e in envelopes]


async def test_a_space_is_imported_as_the_delegated_user(
    imports: Imports, gchat: GoogleChat
) -> None:
    fake, space, channel = gchat.fake, gchat.space(), imports.world.new_id("ch_")
    root = fake.message_event(space, "alice", "m 0")["message"]
    fake.message_event(space, "bob", "m 1")
    await hookhub_posts(fake, space, "from the chat")
    fake.message_event(space, "carol", "in thread", thread=root["thread"]["name"])
    edited = fake.message_event(space, "carol", "first words")["message"]
    FakeGoogleChat.edit(fake.spaces[space].messages[edited["name"]], "last words")
    gone = fake.message_event(space, "bob", "soon deleted")["message"]
    FakeGoogleChat.delete(fake.spaces[space], gone)
    mention = [
        {
            "type": "USER_MENTION",
            "startIndex": 3,
            "length": 4,
            "userMention": {"user": fake.users["bob"], "type": "MENTION"},
        }
    ]
    fake.message_event(space, "alice", "hi @Bob", annotations=mention)

    job = await start(imports, gchat.integration, channel_ids=[space], channel_map={space: channel})
    done = await imports.until(job["id"], "completed", "failed")
    assert done["status"] == "completed", done
    got = await imports.inbox.of_channel(channel, 5)
    assert texts(got) == ["m 0", "m 1", "in thread", "last words", f"hi @{ZWJ}Bob"]
    assert got[2]["thread_id"] == got[0]["id"] and got[1].get("thread_id") is None
    # Listed as a user, a sender is only `users/…`: the app's member list names it.
    assert [e["author"]["name"] for e in got] == ["Alice", "Bob", "Carol", "Carol", "Alice"]
    assert all(e["imported"] is True for e in got)
    assert done["progress"]["messages_imported"] == 5
    assert done["report"]["by_subtype"].get("skipped:hookhub_post") == 1
    assert done["report"]["channels"][0]["matched"] == f"channel_map:{space}"


async def test_a_space_the_app_is_not_in_is_read_as_the_user(
    imports: Imports, gchat: GoogleChat
) -> None:
    fake, space, channel = gchat.fake, gchat.space(), imports.world.new_id("ch_")
    fake.spaces[space].app_member = False
    fake.message_event(space, "bob", "only the user sees this space")
    job = await start(imports, gchat.integration, channel_ids=[space], channel_map={space: channel})
    done = await imports.until(job["id"], "completed", "failed")
    assert done["status"] == "completed", done
    [got] = await imports.inbox.of_channel(channel, 1)
    assert got["text"] == "only the user sees this space"
    # No member list for the app: the sender keeps the name the listing gives it.
    assert got["author"]["name"] == fake.users["bob"]["name"]
    assert done["report"]["channels"][0]["name"] == space


async def test_a_resume_goes_on_from_the_checkpoint(
    imports: Imports,
    gchat: GoogleChat,
    delegation: FakeGoogleChat,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The delegation withdrawn after the first page (of 2): the job fails naming it, with
    that page imported; given back, a resume reads from the checkpoint, nothing twice."""
    fake, space, channel = delegation, gchat.space(), imports.world.new_id("ch_")
    for n in range(5):
        fake.message_event(space, ["alice", "bob"][n % 2], f"r {n}")
    monkeypatch.setattr(GoogleChatApiSource, "page_size", 2)

    fake.on_list = lambda: withdraw(fake)
    job = await start(imports, gchat.integration, channel_ids=[space], channel_map={space: channel})
    failed = await imports.until(job["id"], "completed", "failed")
    assert failed["status"] == "failed", failed
    assert "domain-wide delegation" in failed["error"] and "unauthorized_client" in failed["error"]
    first = await imports.inbox.of_channel(channel, 2)
    assert texts(first) == ["r 0", "r 1"]

    fake.on_list = None
    fake.delegated_scopes = {CHAT_MESSAGES_READONLY}
    answer = await imports.api.post(f"/api/imports/{job['id']}/resume", headers=admin_headers())
    assert answer.status_code == 202, answer.text
    done = await imports.until(job["id"], "completed", "failed")
    assert done["status"] == "completed", done
    got = await imports.inbox.of_channel(channel, 5)
    assert texts(got) == [f"r {n}" for n in range(5)]  # in order, each once
    assert done["progress"]["messages_imported"] == 5


async def test_a_refused_delegation_fails_the_job_naming_it(
    imports: Imports, gchat: GoogleChat, delegation: FakeGoogleChat
) -> None:
    space = gchat.space()
    delegation.message_event(space, "alice", "never read")
    withdraw(delegation)
    channel = imports.world.new_id("ch_")
    job = await start(imports, gchat.integration, channel_ids=[space], channel_map={space: channel})
    failed = await imports.until(job["id"], "completed", "failed")
    assert failed["status"] == "failed"
    assert "Domain-wide delegation" in failed["error"]
    assert CHAT_MESSAGES_READONLY in failed["error"] and ALICE in failed["error"]


async def test_without_import_as_the_import_is_refused(imports: Imports) -> None:
    async with contextlib.AsyncExitStack() as stack:
        plain = await connect(imports.world, stack, audience=PROJECT)
    before = await imports.count()
    answer = await imports.api.post(
        f"/api/integrations/{plain.integration}/import",
        json={"channel_ids": ["spaces/AAAAsandbox"]},
        headers=admin_headers(),
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "missing_setting" and "import_as" in error["message"]
    assert await imports.count() == before  # no job was made
