"""Google Chat's events, signed by the stand-in and POSTed to an endpoint that runs the
Google Chat webhooks' `verify` and `parse` as the gateway does, then the provider's
`changes`: what is accepted and refused, what a message becomes (mentions readable and not
live), what is ours; and chat text made safe for Chat's markup."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.sandbox.googlechat import FakeGoogleChat, rsa_key
from shared.kernel.errors import Invalid, Unavailable
from shared.providers.base import InboundRequest, MalformedWebhook, SignatureInvalid
from shared.providers.catalog import CATALOG, check_settings, split_settings
from shared.providers.chat import Attachment, Author, BotIdentity, MessageChange, OutboundPost
from shared.providers.googlechat.auth import Certs, service_account_info
from shared.providers.googlechat.messages import (
    MARK,
    ZWJ,
    GoogleChatChat,
    format_post,
    readable,
)
from shared.providers.googlechat.webhooks import GoogleChatWebhooks
from tests.providers.googlechat_support import chat_provider, endpoints, http_client, running_fake
from tests.support import serve

SPACE = "spaces/AAAAsandbox"
PROJECT = "1234567890"


@dataclass
class Endpoint:
    """hookhub's side: the webhooks' checks and the provider's reading of what passed."""

    webhooks: GoogleChatWebhooks
    chat: GoogleChatChat
    settings: dict[str, str]
    url: str = ""
    changes: list[MessageChange] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            inbound = InboundRequest(
                headers={k.lower(): v for k, v in request.headers.items()},
                body=await request.body(),
                received_at=datetime.now(UTC),
                url=str(request.url),
            )
            try:
                self.webhooks.verify(inbound, self.settings, inbound.received_at)
            except SignatureInvalid as exc:
                self.refusals.append(exc.message)
                return JSONResponse({"error": exc.message}, 401)
            parsed = self.webhooks.parse(inbound)
            self.changes.extend(self.chat.changes(parsed.event_type, parsed.payload))
            return JSONResponse(parsed.reply.body, parsed.reply.status)

        async def healthz(_: Request) -> Response:
            return JSONResponse({})

        return Starlette(
            routes=[Route("/hook", hook, methods=["POST"]), Route("/healthz", healthz)]
        )


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeGoogleChat]:
    async for chat in running_fake():
        yield chat


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async for http in http_client():
        yield http


@pytest.fixture
async def endpoint(fake: FakeGoogleChat, client: httpx.AsyncClient) -> AsyncIterator[Endpoint]:
    where = endpoints(fake)
    webhooks = GoogleChatWebhooks(where, Certs())
    # The gateway's verify is synchronous: the certificates are loaded ahead, as a caller
    # on the event loop must (a blocking fetch from this loop's own stand-in would hang).
    await webhooks.certs.load(client, where.chat_certs_url)
    await webhooks.certs.load(client, where.oauth2_certs_url)
    hookhub = Endpoint(webhooks, chat_provider(fake, client), {"audience": PROJECT})
    async with serve(hookhub.app(), probe="/healthz") as running:
        hookhub.url = running.base_url + "/hook"
        fake.endpoint_url, fake.audience = hookhub.url, PROJECT
        yield hookhub


async def test_a_signed_message_event_becomes_a_created_change(
    fake: FakeGoogleChat, endpoint: Endpoint
) -> None:
    answer = await fake.user_sends(SPACE, "alice", "Hello from Chat")
    assert (answer.status_code, answer.json()) == (200, {})
    [change] = endpoint.changes
    assert change.kind == "created" and change.text == "Hello from Chat"
    assert change.external_channel_id == SPACE and change.external_thread_id is None
    assert change.author == Author(
        "Alice", "https://lh3.googleusercontent.com/a/alice", fake.users["alice"]["name"]
    )
    assert not change.sender.is_bot and change.ignored is None


async def test_a_reply_names_its_threads_first_message(
    fake: FakeGoogleChat, endpoint: Endpoint
) -> None:
    """A reply names its thread; sync finds a root by its message name: the change names the
    thread's first message seen. A thread whose start was not seen here begins at its
    first reply seen, which carries the thread's name (`external_thread_key`, as a
    thread's first message does) for sync to find the root in the map by."""
    await fake.user_sends(SPACE, "bob", "root")
    [root] = endpoint.changes
    thread = fake.spaces[SPACE].messages[root.external_message_id]["thread"]["name"]
    await fake.user_sends(SPACE, "carol", "a reply", thread=thread)
    await fake.user_sends(SPACE, "bob", "another", thread=thread)
    assert [c.external_thread_id for c in endpoint.changes[1:]] == [root.external_message_id] * 2
    assert [c.external_thread_key for c in endpoint.changes] == [thread, None, None]
    # A thread's first message is kept by its key, never looked up by it.
    assert [c.reply_by_key for c in endpoint.changes] == [False, False, False]

    unseen = fake.message_event(SPACE, "bob", "before the mapping")["message"]
    await fake.user_sends(SPACE, "carol", "first seen", thread=unseen["thread"]["name"])
    await fake.user_sends(SPACE, "bob", "and after", thread=unseen["thread"]["name"])
    first, after = endpoint.changes[3:]
    assert first.external_thread_id is None
    assert first.external_thread_key == unseen["thread"]["name"]
    assert first.reply_by_key  # sync looks its root up in the map
    assert after.external_thread_id == first.external_message_id
    assert after.external_thread_key is None


async def test_an_endpoint_url_audience_takes_the_id_token(
    fake: FakeGoogleChat, endpoint: Endpoint
) -> None:
    """No audience setting: the URL Chat calls is the audience, and an ID token its form."""
    endpoint.settings = {}
    answer = await fake.deliver(
        fake.message_event(SPACE, "alice", "via URL"), bearer=fake.bearer(audience=endpoint.url)
    )
    assert answer.status_code == 200, answer.text
    refused = await fake.deliver(
        fake.message_event(SPACE, "alice", "a number"), bearer=fake.bearer(audience=PROJECT)
    )
    assert refused.status_code == 401 and "wrong audience" in endpoint.refusals[-1]
    assert [c.text for c in endpoint.changes] == ["via URL"]


def test_the_default_audience_is_the_url_without_its_query() -> None:
    request = InboundRequest({}, b"", datetime.now(UTC), url="https://h.example/hook?x=1")
    assert GoogleChatWebhooks().audience(request, {}) == "https://h.example/hook"
    assert GoogleChatWebhooks().audience(request, {"audience": PROJECT}) == PROJECT


@pytest.mark.parametrize(
    ("forge", "said"),
    [
        ({"key": rsa_key()}, "Could not verify token signature"),
        ({"audience": "42"}, "wrong audience"),
        ({"issuer": "attacker@example.iam.gserviceaccount.com"}, "issuer"),
        ({"issued": 1_000_000_000.0}, "Token expired"),
    ],
    ids=["another-key", "another-audience", "another-issuer", "expired"],
)
async def test_a_forged_or_stale_event_is_refused_and_read_no_further(
    fake: FakeGoogleChat, endpoint: Endpoint, forge: dict[str, Any], said: str
) -> None:
    event = fake.message_event(SPACE, "alice", "forged")
    answer = await fake.deliver(event, bearer=fake.bearer(**forge))
    assert answer.status_code == 401 and said in answer.json()["error"]
    assert endpoint.changes == []


async def test_an_event_without_a_bearer_token_is_refused(
    fake: FakeGoogleChat, endpoint: Endpoint, client: httpx.AsyncClient
) -> None:
    event = fake.message_event(SPACE, "alice", "anonymous")
    answer = await client.post(endpoint.url, json=event)
    assert answer.status_code == 401 and "Authorization header is missing" in answer.text
    assert endpoint.changes == []


async def test_a_rotated_key_refetches_the_certificates_at_most_once_a_minute(
    fake: FakeGoogleChat, endpoint: Endpoint, client: httpx.AsyncClient
) -> None:
    """`prepare` fetches (on the loop, before the synchronous `verify`, which fetches
    nothing): the issuer's certificates once, then again for a key they lack, at most once
    a minute."""
    now = [0.0]
    where = endpoint.webhooks.endpoints
    webhooks = GoogleChatWebhooks(where, Certs(clock=lambda: now[0]))
    webhooks._client = client
    request = InboundRequest(
        headers={"authorization": f"Bearer {fake.bearer()}"},
        body=b"{}",
        received_at=datetime.now(UTC),
        url=endpoint.url,
    )
    await webhooks.prepare(request)
    webhooks.verify(request, endpoint.settings, request.received_at)
    assert webhooks.certs.fetches == 1
    fake.rotate_key()
    request = InboundRequest(
        headers={"authorization": f"Bearer {fake.bearer()}"},
        body=b"{}",
        received_at=datetime.now(UTC),
        url=endpoint.url,
    )
    # Fetched under a minute ago: the unknown key is refused, nothing refetched.
    now[0] = 30.0
    await webhooks.prepare(request)
    with pytest.raises(SignatureInvalid, match="Certificate for key id"):
        webhooks.verify(request, endpoint.settings, request.received_at)
    assert webhooks.certs.fetches == 1
    # A minute on (the document still within its max-age): refetched once, and verified.
    now[0] = 61.0
    await webhooks.prepare(request)
    await webhooks.prepare(request)
    webhooks.verify(request, endpoint.settings, request.received_at)
    assert webhooks.certs.fetches == 2


async def test_certificates_google_cannot_serve_are_unavailable_not_a_refusal(
    fake: FakeGoogleChat, client: httpx.AsyncClient
) -> None:
    """Google down is a 503 (Chat sends again), not the sender's fault."""
    webhooks = GoogleChatWebhooks(endpoints(fake), Certs())
    webhooks._client = client
    request = InboundRequest(
        headers={"authorization": f"Bearer {fake.bearer()}"},
        body=b"{}",
        received_at=datetime.now(UTC),
    )
    webhooks.endpoints = replace(webhooks.endpoints, chat_certs_url=fake.base_url + "/nothing")
    with pytest.raises(Unavailable):
        await webhooks.prepare(request)
    webhooks.endpoints = replace(webhooks.endpoints, chat_certs_url="http://127.0.0.1:9/certs")
    with pytest.raises(Unavailable):
        await webhooks.prepare(request)
    # A header of no JWT names no certificates: left to verify to refuse.
    await webhooks.prepare(InboundRequest({"authorization": "Bearer x"}, b"{}", datetime.now(UTC)))
    assert webhooks.certs.fetches == 0


def test_a_body_that_is_no_event_is_malformed() -> None:
    webhooks = GoogleChatWebhooks()
    for body in (b"[]", b'{"message": {}}', b'{"type": "MESSAGE", "message": {}}'):
        with pytest.raises(MalformedWebhook):
            webhooks.parse(InboundRequest({}, body, datetime.now(UTC)))
    added = webhooks.parse(
        InboundRequest(
            {},
            b'{"type": "ADDED_TO_SPACE", "eventTime": "2017-03-02T19:02:59.910959Z", '
            b'"space": {"name": "spaces/AAAAAAAAAAA", "type": "ROOM"}}',
            datetime.now(UTC),
        )
    )
    assert added.event_type == "ADDED_TO_SPACE"
    assert added.delivery_id == "ADDED_TO_SPACE:spaces/AAAAAAAAAAA:2017-03-02T19:02:59.910959Z"


# -- what a message becomes ------------------------------------------------------------------

# The Annotation reference's example (developers.google.com/workspace/chat/api/reference/
# rest/v1/spaces.messages#annotation): "Hello @FooBot how are you!", startIndex 6, length 7.
FOOBOT = [
    {
        "type": "USER_MENTION",
        "startIndex": 6,
        "length": 7,
        "userMention": {
            "user": {
                "name": "users/107946847022116401880",
                "displayName": "FooBot",
                "avatarUrl": "https://goo.gl/aeDtrS",
                "type": "BOT",
            },
            "type": "MENTION",
        },
    }
]


def test_a_mention_is_readable_and_not_live() -> None:
    assert readable("Hello @FooBot how are you!", FOOBOT) == f"Hello @{ZWJ}FooBot how are you!"
    # A mention of everyone, and an @ the chat would read as its own mention.
    everyone = [
        {
            "type": "USER_MENTION",
            "startIndex": 0,
            "length": 4,
            "userMention": {"user": {"name": "users/all", "displayName": "all"}, "type": "MENTION"},
        }
    ]
    assert readable("@all and @here", everyone) == f"@{ZWJ}all and @{ZWJ}here"
    # Annotations that do not fit the text are left out, not trusted.
    bad = [{**FOOBOT[0], "startIndex": 40}]
    assert readable("Hello @FooBot", bad) == f"Hello @{ZWJ}FooBot"


def test_changes_of_the_workspace_events_edit_and_delete() -> None:
    chat = GoogleChatChat(None)  # type: ignore[arg-type]
    message = {
        "name": "spaces/AAAAAAAAAAA/messages/CCCCCCCCCCC.CCCCCCCCCCC",
        "sender": {
            "name": "users/12345678901234567890",
            "displayName": "Chuck Norris",
            "type": "HUMAN",
        },
        "createTime": "2017-03-02T19:02:59.910959Z",
        "lastUpdateTime": "2017-03-02T19:05:00.000000Z",
        "text": "edited",
        "thread": {"name": "spaces/AAAAAAAAAAA/threads/BBBBBBBBBBB"},
    }
    [edited] = chat.changes("google.workspace.chat.message.v1.updated", {"message": message})
    assert edited.kind == "edited" and edited.external_channel_id == "spaces/AAAAAAAAAAA"
    assert edited.occurred_at == datetime(2017, 3, 2, 19, 5, tzinfo=UTC)
    [deleted] = chat.changes(
        "google.workspace.chat.message.v1.deleted", {"message": {"name": message["name"]}}
    )
    assert deleted.kind == "deleted" and deleted.external_message_id == message["name"]
    assert chat.changes("ADDED_TO_SPACE", {"space": {"name": "spaces/A"}}) == []


def test_our_own_messages_are_recognised() -> None:
    chat = GoogleChatChat(None)  # type: ignore[arg-type]
    me = BotIdentity(user_id="users/app", app_id="hookhub-chat@p.iam.gserviceaccount.com")

    def change(name: str, sender: Mapping[str, Any], custom: str | None = None) -> MessageChange:
        message = {"name": name, "sender": sender, "text": "x"}
        if custom:
            message["clientAssignedMessageId"] = custom
        [made] = chat.changes("MESSAGE", {"message": message})
        return made

    bot = {"name": "users/app", "displayName": "hookhub", "type": "BOT"}
    other_bot = {"name": "users/other", "displayName": "Other", "type": "BOT"}
    alice = {"name": "users/1", "displayName": "Alice", "type": "HUMAN"}
    assert chat.is_own(change("spaces/A/messages/w.w", other_bot, MARK + "abc"), me)
    assert chat.is_own(change("spaces/A/messages/x.x", bot), me)
    assert not chat.is_own(change("spaces/A/messages/y.y", other_bot), me)
    assert not chat.is_own(change("spaces/A/messages/v.v", alice, "client-someone-else"), me)
    # Our mark in the message's name is no mark: only clientAssignedMessageId is.
    assert not chat.is_own(change(f"spaces/A/messages/{MARK}abc", alice), me)
    assert change("spaces/A/messages/z.z", other_bot).sender.is_bot


def test_hostile_text_is_shown_not_obeyed() -> None:
    post = OutboundPost(
        "ping <users/all> and <users/123> see <https://evil.example|your bank>",
        Author("*Mallory* <users/all>"),
        attachments=(
            Attachment("https://files.example/a.png", "a|b>c"),
            Attachment("javascript:alert(1)", "click"),
        ),
    )
    text = format_post(post)
    assert "<users/all>" not in text and "<users/123>" not in text
    assert "<https://evil.example|" not in text
    assert text.count("*") == 2  # only our own bold around the name
    lines = text.split("\n")
    assert lines[0] == f"*\u2217Mallory\u2217 <{ZWJ}users/all>*"
    assert lines[2] == "<https://files.example/a.png|a/b\u203ac>"
    assert lines[3] == "click"  # not a link


def test_a_long_text_is_cut_to_what_chat_takes() -> None:
    text = format_post(OutboundPost("x" * 5000, Author("Ada")))
    assert len(text) <= 4096 and text.endswith("…")


def test_the_catalog_takes_a_key_file_and_refuses_what_is_not_one() -> None:
    examples = CATALOG["googlechat"].examples()
    values = check_settings("googlechat", examples, creating=True)
    assert split_settings("googlechat", values)[1] == {"audience": "1234567890"}
    assert service_account_info(values["service_account_json"])["client_email"]
    for wrong in ({"service_account_json": "not json"}, {**examples, "audience": "http://x"}):
        with pytest.raises(Invalid):
            check_settings("googlechat", wrong, creating=True)
    step = CATALOG["googlechat"].to_json("https://h.example/api/webhooks/googlechat/i")["setup"][1]
    assert "https://h.example/api/webhooks/googlechat/i" in step
