"""SlackChat: Events API payloads → message changes (shapes from Slack's event reference),
markup rendering, and posts/edits/deletes/lookups against the fake Slack over loopback,
including the signed echo of our own posts as the gateway would receive it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.sandbox.slack import APP_ID, BOT_ID, BOT_USER_ID, TEAM_ID, FakeSlack
from shared.kernel.http.tls import tls
from shared.providers.base import InboundRequest
from shared.providers.chat import (
    Attachment,
    Author,
    BotIdentity,
    ChatProvider,
    MessageChange,
    OutboundPost,
    PermanentError,
    RateLimited,
    SenderMarks,
)
from shared.providers.slack.api import SlackApi
from shared.providers.slack.messages import SlackChat, escape
from shared.providers.slack.webhooks import WEBHOOKS
from tests.support import FakeClock, serve

ME = BotIdentity(user_id="U0BOT", bot_id="B0BOT", app_id="A0APP", team_id="T0TEAM")


def callback(event: dict[str, Any]) -> dict[str, Any]:
    """The Events API wrapper as Slack's reference shows it."""
    return {
        "token": "XXYYZZ",
        "team_id": "T123ABC456",
        "api_app_id": "A123ABC456",
        "event": event,
        "type": "event_callback",
        "authorizations": [
            {
                "team_id": "T123ABC456",
                "user_id": "U123ABC456",
                "is_bot": False,
                "is_enterprise_install": False,
            }
        ],
        "event_id": "Ev123ABC456",
        "event_time": 1355517523,
    }


def at(ts: str) -> datetime:
    return datetime.fromtimestamp(float(ts), UTC)


PLAIN = {
    "type": "message",
    "channel": "C123ABC456",
    "user": "U123ABC456",
    "text": "Hello world",
    "ts": "1355517523.000005",
    "channel_type": "channel",
}
REPLY = {
    "type": "message",
    "user": "U061F7AUR",
    "text": "one reply",
    "ts": "1482960137.003543",
    "thread_ts": "1482960122.003542",
    "parent_user_id": "U061F7AUR",
    "channel": "C123ABC456",
    "channel_type": "channel",
}
ROOT_WITH_REPLIES = {**REPLY, "ts": "1482960122.003542", "reply_count": 1, "text": "root"}
CHANGED = {
    "type": "message",
    "subtype": "message_changed",
    "hidden": True,
    "channel": "C123ABC456",
    "ts": "1358878755.000001",
    "message": {
        "type": "message",
        "user": "U123ABC456",
        "text": "Hello, world!",
        "ts": "1355517523.000005",
        "edited": {"user": "U123ABC456", "ts": "1358878755.000001"},
    },
}
DELETED = {
    "type": "message",
    "subtype": "message_deleted",
    "hidden": True,
    "channel": "C123ABC456",
    "ts": "1358878755.000001",
    "deleted_ts": "1358878749.000002",
    "previous_message": {
        "type": "message",
        "user": "U123ABC456",
        "text": "gone",
        "ts": "1358878749.000002",
        "thread_ts": "1358878700.000001",
    },
}
FILE_SHARE = {
    "type": "message",
    "subtype": "file_share",
    "text": "the spec",
    "user": "U123ABC456",
    "upload": False,
    "ts": "1700000000.000100",
    "channel": "C123ABC456",
    "files": [
        {
            "id": "F0123ABC",
            "name": "spec.pdf",
            "title": "spec.pdf",
            "mimetype": "application/pdf",
            "url_private": "https://files.slack.com/files-pri/T1-F0123ABC/spec.pdf",
            "permalink": "https://acme.slack.com/files/U123ABC456/F0123ABC/spec.pdf",
        },
        {
            "id": "F0456DEF",
            "name": "photo.png",
            "mimetype": "image/png",
            "url_private": "https://files.slack.com/files-pri/T1-F0456DEF/photo.png",
        },
        {"id": "F0GONE", "mode": "tombstone"},
    ],
}
BROADCAST = {**REPLY, "subtype": "thread_broadcast", "ts": "1482960199.003544"}
ME_MESSAGE = {**PLAIN, "subtype": "me_message", "text": "waves"}
OTHER_BOT = {
    "type": "message",
    "subtype": "bot_message",
    "text": "Build #42 passed",
    "ts": "1358877455.000010",
    "username": "ci-bot",
    "bot_id": "B0CI",
    "icons": {"image_48": "https://ci.example/icon48.png"},
    "channel": "C123ABC456",
}
OTHER_APP = {
    "type": "message",
    "user": "U0OTHERBOT",
    "text": "deploy done",
    "ts": "1700000001.000200",
    "bot_id": "B0OTHER",
    "app_id": "A0OTHER",
    "bot_profile": {
        "id": "B0OTHER",
        "app_id": "A0OTHER",
        "name": "Deployer",
        "icons": {"image_72": "https://deploy.example/72.png"},
    },
    "channel": "C123ABC456",
}
OUR_ECHO = {
    "type": "message",
    "subtype": "bot_message",
    "text": "from the chat",
    "ts": "1700000002.000300",
    "username": "Ada",
    "bot_id": "B0BOT",
    "app_id": "A0APP",
    "channel": "C123ABC456",
}


def system(subtype: str) -> dict[str, Any]:
    return {**PLAIN, "subtype": subtype, "text": f"<@U123ABC456> did {subtype}"}


CASES: list[tuple[str, dict[str, Any], MessageChange]] = [
    (
        "plain",
        PLAIN,
        MessageChange(
            kind="created",
            external_channel_id="C123ABC456",
            external_message_id="1355517523.000005",
            occurred_at=at("1355517523.000005"),
            text="Hello world",
            sender=SenderMarks(user_id="U123ABC456"),
        ),
    ),
    (
        "thread reply",
        REPLY,
        MessageChange(
            kind="created",
            external_channel_id="C123ABC456",
            external_message_id="1482960137.003543",
            occurred_at=at("1482960137.003543"),
            text="one reply",
            external_thread_id="1482960122.003542",
            sender=SenderMarks(user_id="U061F7AUR"),
        ),
    ),
    (
        "thread root (thread_ts == ts)",
        ROOT_WITH_REPLIES,
        MessageChange(
            kind="created",
            external_channel_id="C123ABC456",
            external_message_id="1482960122.003542",
            occurred_at=at("1482960122.003542"),
            text="root",
            sender=SenderMarks(user_id="U061F7AUR"),
        ),
    ),
    (
        "message_changed",
        CHANGED,
        MessageChange(
            kind="edited",
            external_channel_id="C123ABC456",
            external_message_id="1355517523.000005",
            occurred_at=at("1358878755.000001"),
            text="Hello, world!",
            sender=SenderMarks(user_id="U123ABC456"),
        ),
    ),
    (
        "message_deleted",
        DELETED,
        MessageChange(
            kind="deleted",
            external_channel_id="C123ABC456",
            external_message_id="1358878749.000002",
            occurred_at=at("1358878755.000001"),
            external_thread_id="1358878700.000001",
            sender=SenderMarks(user_id="U123ABC456"),
            subtype="message_deleted",
        ),
    ),
    (
        "file_share",
        FILE_SHARE,
        MessageChange(
            kind="created",
            external_channel_id="C123ABC456",
            external_message_id="1700000000.000100",
            occurred_at=at("1700000000.000100"),
            text="the spec",
            sender=SenderMarks(user_id="U123ABC456"),
            attachments=(
                Attachment(
                    "https://acme.slack.com/files/U123ABC456/F0123ABC/spec.pdf",
                    "spec.pdf",
                    "application/pdf",
                ),
                Attachment(
                    "https://files.slack.com/files-pri/T1-F0456DEF/photo.png",
                    "photo.png",
                    "image/png",
                ),
            ),
            subtype="file_share",
        ),
    ),
    (
        "thread_broadcast",
        BROADCAST,
        MessageChange(
            kind="created",
            external_channel_id="C123ABC456",
            external_message_id="1482960199.003544",
            occurred_at=at("1482960199.003544"),
            text="one reply",
            external_thread_id="1482960122.003542",
            sender=SenderMarks(user_id="U061F7AUR"),
            subtype="thread_broadcast",
        ),
    ),
    (
        "me_message",
        ME_MESSAGE,
        MessageChange(
            kind="created",
            external_channel_id="C123ABC456",
            external_message_id="1355517523.000005",
            occurred_at=at("1355517523.000005"),
            text="waves",
            sender=SenderMarks(user_id="U123ABC456"),
            subtype="me_message",
        ),
    ),
    (
        "another app's bot_message: bridged under its name",
        OTHER_BOT,
        MessageChange(
            kind="created",
            external_channel_id="C123ABC456",
            external_message_id="1358877455.000010",
            occurred_at=at("1358877455.000010"),
            text="Build #42 passed",
            author=Author("ci-bot", "https://ci.example/icon48.png", "B0CI"),
            sender=SenderMarks(bot_id="B0CI", is_bot=True),
            subtype="bot_message",
        ),
    ),
    (
        "another app's bot user: bridged under its profile name",
        OTHER_APP,
        MessageChange(
            kind="created",
            external_channel_id="C123ABC456",
            external_message_id="1700000001.000200",
            occurred_at=at("1700000001.000200"),
            text="deploy done",
            author=Author("Deployer", "https://deploy.example/72.png", "B0OTHER"),
            sender=SenderMarks(
                user_id="U0OTHERBOT", bot_id="B0OTHER", app_id="A0OTHER", is_bot=True
            ),
        ),
    ),
]


@pytest.mark.parametrize(("payload", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_changes(payload: dict[str, Any], expected: MessageChange) -> None:
    [change] = _chat().changes("event_callback.message", callback(payload))
    # Blocks are passed through as they came; the rest must match exactly.
    assert change.blocks is None
    assert change == expected


SYSTEM = [
    "channel_join",
    "channel_leave",
    "channel_topic",
    "channel_purpose",
    "channel_name",
    "channel_archive",
    "pinned_item",
    "message_replied",
    "tombstone",
    "huddle_thread",
]


@pytest.mark.parametrize("subtype", SYSTEM)
def test_system_messages_are_ignored_with_their_subtype(subtype: str) -> None:
    [change] = _chat().changes("event_callback.message", callback(system(subtype)))
    assert (change.ignored, change.subtype) == (subtype, subtype)


def test_other_events_hold_no_message_changes() -> None:
    chat = _chat()
    assert chat.changes("event_callback.reaction_added", callback({"type": "reaction_added"})) == []
    assert chat.changes("url_verification", {"type": "url_verification", "challenge": "x"}) == []
    assert chat.changes("event_callback.message", {"type": "event_callback"}) == []
    assert chat.changes("event_callback.message", callback({"type": "message", "ts": "1.2"})) == []


def test_blocks_pass_through() -> None:
    blocks = [{"type": "rich_text", "block_id": "x", "elements": []}]
    [change] = _chat().changes("event_callback.message", callback({**PLAIN, "blocks": blocks}))
    assert change.blocks == blocks


def test_a_reply_count_update_is_not_an_edit() -> None:
    # Slack says message_changed on a root when a reply arrives; no `edited`, same text.
    event = {
        **CHANGED,
        "message": {**ROOT_WITH_REPLIES, "reply_count": 2},
        "previous_message": ROOT_WITH_REPLIES,
    }
    [change] = _chat().changes("event_callback.message", callback(event))
    assert (change.kind, change.ignored) == ("edited", "unchanged")


def test_a_root_deleted_under_its_replies_is_a_delete() -> None:
    event = {
        **CHANGED,
        "message": {
            "type": "message",
            "subtype": "tombstone",
            "text": "This message was deleted.",
            "user": "USLACKBOT",
            "hidden": True,
            "ts": "1482960122.003542",
            "thread_ts": "1482960122.003542",
        },
        "previous_message": ROOT_WITH_REPLIES,
    }
    [change] = _chat().changes("event_callback.message", callback(event))
    assert (change.kind, change.external_message_id, change.ignored) == (
        "deleted",
        "1482960122.003542",
        None,
    )
    assert change.sender.user_id == "U061F7AUR"


def test_edits_and_deletes_carry_the_marks_of_the_message_itself() -> None:
    chat = _chat()
    ours = {k: v for k, v in OUR_ECHO.items() if k != "channel"}
    edited = {**CHANGED, "message": {**ours, "edited": {"user": "B0BOT", "ts": "1.0"}}}
    deleted = {**DELETED, "deleted_ts": OUR_ECHO["ts"], "previous_message": ours}
    for event in (OUR_ECHO, edited, deleted):
        [change] = chat.changes("event_callback.message", callback(event))
        assert chat.is_own(change, ME), event


@pytest.mark.parametrize(
    ("marks", "own"),
    [
        (SenderMarks(bot_id="B0BOT"), True),
        (SenderMarks(app_id="A0APP"), True),
        (SenderMarks(user_id="U0BOT"), True),
        (SenderMarks(user_id="U123", bot_id="B0CI", app_id="A0CI"), False),
        (SenderMarks(), False),
    ],
)
def test_is_own(marks: SenderMarks, own: bool) -> None:
    change = MessageChange("created", "C1", "1.1", at("1.1"), sender=marks)
    assert _chat().is_own(change, ME) is own
    assert _chat().is_own(change, BotIdentity()) is False


RENDER = [
    ("Hi <@U123>!", "Hi @Ada Lovelace!"),
    ("<@U123> and <@U123> and <@U999>", "@Ada Lovelace and @Ada Lovelace and @U999"),
    ("<@U1|ada>", "@ada"),
    ("see <#C1|general> and <#C2>", "see #general and #C2"),
    ("<#C1|>", "#C1"),
    ("<!here> <!channel> <!everyone> <!here|here>", "@here @channel @everyone @here"),
    ("<!subteam^S1|@team> <!subteam^S2>", "@team @S2"),
    ("<!date^1392734382^{date_short}|Feb 18, 2014>", "Feb 18, 2014"),
    ("<https://example.com|the site>", "the site (https://example.com)"),
    ("<https://example.com>", "https://example.com"),
    ("<https://example.com|https://example.com>", "https://example.com"),
    ("<mailto:bob@example.com|bob@example.com>", "bob@example.com"),
    ("<https://a.example/?x=1&amp;y=2|a &amp; b>", "a & b (https://a.example/?x=1&y=2)"),
    ("1 &lt; 2 &amp;&amp; 3 &gt; 2", "1 < 2 && 3 > 2"),
    ("&lt;@U123&gt; is text, &amp;lt; stays", "<@U123> is text, &lt; stays"),
    ("plain", "plain"),
]


@pytest.mark.parametrize(("markup", "readable"), RENDER)
async def test_render(markup: str, readable: str) -> None:
    asked: list[str] = []

    async def users(user_id: str) -> Author | None:
        asked.append(user_id)
        return Author("Ada Lovelace") if user_id == "U123" else None

    assert await _chat().render(markup, users) == readable
    assert len(asked) == len(set(asked))  # each user looked up once per render


def test_escape() -> None:
    assert escape("a < b && c > d <@U1>") == "a &lt; b &amp;&amp; c &gt; d &lt;@U1&gt;"


# changes, is_own and render make no calls: one client that is never used.
_OFFLINE = SlackChat(SlackApi(httpx.AsyncClient(verify=tls()), "http://127.0.0.1:9/api"))


def _chat() -> SlackChat:
    return _OFFLINE


# -- against the fake ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def received() -> AsyncIterator[tuple[list[InboundRequest], str]]:
    """An events endpoint standing in for the gateway: records what Slack sends."""
    requests: list[InboundRequest] = []

    async def events(request: Request) -> Response:
        requests.append(
            InboundRequest(
                headers={k.lower(): v for k, v in request.headers.items()},
                body=await request.body(),
                received_at=datetime.now(UTC),
            )
        )
        return Response(status_code=200)

    async def healthz(_: Request) -> Response:
        return Response("ok")

    app = Starlette(routes=[Route("/events", events, methods=["POST"]), Route("/healthz", healthz)])
    async with serve(app, probe="/healthz") as running:
        yield requests, running.base_url + "/events"


@pytest.fixture(scope="module")
async def slack(received: tuple[list[InboundRequest], str]) -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    fake.events_url = received[1]
    fake.add_channel("C0GENERAL", "general")
    fake.add_channel("C0OUTSIDE", "outside", member=False)
    fake.add_channel("C0OLD", "old", archived=True)
    fake.add_user("U0ADA", "Ada Lovelace", "ada", "https://example.test/ada.png")
    fake.add_user("U0BEN", "Ben Bitdiddle")
    async with serve(fake.app(), probe="/healthz") as running:
        fake.base_url = running.base_url
        yield fake


@pytest.fixture(scope="module")
async def chat(slack: FakeSlack) -> AsyncIterator[SlackChat]:
    async with httpx.AsyncClient(verify=tls(), timeout=5.0) as client:
        yield SlackChat(SlackApi(client, slack.base_url + "/api"))


@pytest.fixture
def token(slack: FakeSlack) -> str:
    slack.echo_before_answer = False
    return slack.add_bot_token()


def test_slack_chat_is_a_chat_provider(chat: SlackChat) -> None:
    provider: ChatProvider = chat
    assert (provider.name, provider.pace_seconds("C0GENERAL")) == ("slack", 1.0)


async def test_identity_names_bot_app_and_team(chat: SlackChat, token: str) -> None:
    assert await chat.identity(token) == BotIdentity(
        user_id=BOT_USER_ID, bot_id=BOT_ID, app_id=APP_ID, team_id=TEAM_ID, name="hookhub"
    )


async def test_channel(chat: SlackChat, token: str) -> None:
    assert (await chat.channel(token, "C0GENERAL")).name == "general"
    for channel, error in [
        ("C0NOPE", "channel_not_found"),
        ("C0OUTSIDE", "not_in_channel"),
        ("C0OLD", "is_archived"),
    ]:
        with pytest.raises(PermanentError) as refused:
            await chat.channel(token, channel)
        assert (refused.value.error, refused.value.scope) == (error, "channel")


async def test_user(chat: SlackChat, token: str) -> None:
    assert await chat.user(token, "U0ADA") == Author("ada", "https://example.test/ada.png", "U0ADA")
    ben = await chat.user(token, "U0BEN")
    assert ben is not None and ben.name == "Ben Bitdiddle"  # no display name: the real name
    assert await chat.user(token, "U0NOBODY") is None


async def test_post_edit_delete(chat: SlackChat, slack: FakeSlack, token: str) -> None:
    author = Author("Ada <admin>", "https://example.test/ada.png")
    post = OutboundPost(
        text="1 < 2 & <@U0BEN>",
        author=author,
        attachments=(Attachment("https://files.example/a?x=1&y=2", "a|b.pdf"),),
        tag="msg_1",
    )
    posted = await chat.post(token, "C0GENERAL", post)
    stored = slack.message("C0GENERAL", posted.external_message_id)
    assert stored is not None
    assert stored["text"] == (
        "1 &lt; 2 &amp; &lt;@U0BEN&gt;\n<https://files.example/a?x=1&amp;y=2|a/b.pdf>"
    )
    assert (stored["username"], stored["icons"]["image_48"]) == (author.name, author.avatar_url)
    assert stored["metadata"] == {
        "event_type": "hookhub_message",
        "event_payload": {"message_id": "msg_1"},
    }
    reply = await chat.post(
        token, "C0GENERAL", OutboundPost("a reply", author, posted.external_message_id)
    )
    assert reply.external_thread_id == posted.external_message_id

    await chat.edit(token, "C0GENERAL", posted.external_message_id, OutboundPost("x > y", author))
    assert slack.message("C0GENERAL", posted.external_message_id)["text"] == "x &gt; y"  # type: ignore[index]
    await chat.delete(token, "C0GENERAL", posted.external_message_id)
    assert slack.message("C0GENERAL", posted.external_message_id) is None
    await chat.delete(token, "C0GENERAL", posted.external_message_id)  # already gone: done

    theirs = await slack.post_as_user("C0GENERAL", "U0ADA", "mine")
    with pytest.raises(PermanentError) as refused:
        await chat.delete(token, "C0GENERAL", theirs)
    assert (refused.value.error, refused.value.scope) == ("cant_delete_message", "message")


async def test_find_post(chat: SlackChat, slack: FakeSlack, token: str) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    author = Author("Ada")
    root = await chat.post(token, "C0GENERAL", OutboundPost("root", author, tag="msg_root"))
    for i in range(3):  # others' messages in between
        await slack.post_as_user("C0GENERAL", "U0ADA", f"noise {i}")
    reply = await chat.post(
        token, "C0GENERAL", OutboundPost("r", author, root.external_message_id, tag="msg_reply")
    )
    found = await chat.find_post(token, "C0GENERAL", "msg_root", since)
    assert found is not None and found.external_message_id == root.external_message_id
    assert await chat.find_post(token, "C0GENERAL", "msg_none", since) is None
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert await chat.find_post(token, "C0GENERAL", "msg_root", later) is None
    # A reply is not in the channel's history; named with its thread, it is found.
    assert await chat.find_post(token, "C0GENERAL", "msg_reply", since) is None
    in_thread = await chat.find_post(
        token, "C0GENERAL", "msg_reply", since, thread_external_id=root.external_message_id
    )
    assert in_thread is not None and in_thread.external_message_id == reply.external_message_id


@pytest.mark.parametrize(
    ("tier", "reads", "immediate", "interval"),
    [("tier3", 30, 10, 60 / 41), (None, 30, 10, 60 / 41), ("limited", 3, 1, 60.0)],
)
async def test_history_reads_keep_to_the_apps_tier(
    slack: FakeSlack,
    token: str,
    tier: str | None,
    reads: int,
    immediate: int,
    interval: float,
) -> None:
    """A burst, then the tier's pace: what Slack allows in any minute is never exceeded
    (the fake counts every minute and answers 429 beyond it)."""
    clock = FakeClock()
    slack.clock = clock
    per_minute = 1 if tier == "limited" else 50
    slack.tier_limit("conversations.history", per_minute)
    refused = slack.limited

    async def app_tier() -> str | None:
        return tier

    try:
        async with httpx.AsyncClient(verify=tls(), timeout=5.0) as client:
            api = SlackApi(client, slack.base_url + "/api")
            chat = SlackChat(api, app_tier, clock=clock, sleep=clock.sleep)
            since = datetime.now(UTC) - timedelta(seconds=1)
            for _ in range(reads):
                await chat.history(token, "C0GENERAL", since, 10)
    finally:
        slack.tier_limit("conversations.history", None)
        slack.clock = time.monotonic
    assert slack.limited == refused  # no 429
    assert len(clock.slept) == reads - immediate
    assert clock.slept == pytest.approx([interval] * (reads - immediate))


async def test_a_history_429_holds_every_read_with_the_token(slack: FakeSlack, token: str) -> None:
    clock = FakeClock()
    async with httpx.AsyncClient(verify=tls(), timeout=5.0) as client:
        chat = SlackChat(SlackApi(client, slack.base_url + "/api"), clock=clock, sleep=clock.sleep)
        since = datetime.now(UTC) - timedelta(seconds=1)
        slack.rate_limit("conversations.history", "C0GENERAL", retry_after=7)
        with pytest.raises(RateLimited):
            await chat.history(token, "C0GENERAL", since, 10)
        assert clock.slept == []
        # Another channel, the same token and method: it waits the Retry-After out too.
        assert await chat.find_post(token, "C0OLD", "msg_none", since) is None
    assert clock.slept == [pytest.approx(7.0)]


async def test_events_from_the_fake_verify_and_parse_like_slacks(
    chat: SlackChat,
    slack: FakeSlack,
    token: str,
    received: tuple[list[InboundRequest], str],
) -> None:
    requests, _ = received
    requests.clear()
    ts = await slack.post_as_user("C0GENERAL", "U0ADA", "hi <@U0BEN>")
    await slack.edit_as_user("C0GENERAL", ts, "hello <@U0BEN>")
    await slack.delete_as_user("C0GENERAL", ts)
    posted = await chat.post(token, "C0GENERAL", OutboundPost("from chat", Author("Ben")))
    await slack.settled()
    changes: list[MessageChange] = []
    for request in requests:
        WEBHOOKS.verify(request, {"signing_secret": slack.signing_secret}, datetime.now(UTC))
        parsed = WEBHOOKS.parse(request)
        assert parsed.account == TEAM_ID
        changes += chat.changes(parsed.event_type, parsed.payload)
    assert [(c.kind, c.external_message_id) for c in changes] == [
        ("created", ts),
        ("edited", ts),
        ("deleted", ts),
        ("created", posted.external_message_id),
    ]
    identity = await chat.identity(token)
    assert [chat.is_own(c, identity) for c in changes] == [False, False, False, True]
    assert changes[1].text == "hello <@U0BEN>"


async def test_the_echo_can_arrive_before_the_api_answer(
    chat: SlackChat,
    slack: FakeSlack,
    token: str,
    received: tuple[list[InboundRequest], str],
) -> None:
    requests, _ = received
    requests.clear()
    slack.echo_before_answer = True
    posted = await chat.post(token, "C0GENERAL", OutboundPost("early", Author("Ben")))
    # Already there when chat.postMessage answered, no waiting.
    assert len(requests) == 1
    [change] = chat.changes("event_callback.message", WEBHOOKS.parse(requests[0]).payload)
    assert change.external_message_id == posted.external_message_id
    assert chat.is_own(change, await chat.identity(token))


async def test_no_events_from_channels_the_bot_is_not_in(
    slack: FakeSlack, received: tuple[list[InboundRequest], str]
) -> None:
    requests, _ = received
    requests.clear()
    slack.channels["C0OUTSIDE"].member = False
    await slack.post_as_user("C0OUTSIDE", "U0ADA", "unseen")
    await asyncio.sleep(0)
    assert requests == []
