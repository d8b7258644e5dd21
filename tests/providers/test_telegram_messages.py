"""Telegram as a chat provider: Bot API updates → message changes (table-driven, with
Updates shaped as the Bot API documents them), and posts, edits, deletes over the fake."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.sandbox.telegram import FakeTelegram, parse_html, utf16_len
from shared.kernel.http.tls import tls
from shared.providers.chat import (
    Attachment,
    Author,
    BotIdentity,
    ChatProvider,
    MessageChange,
    OutboundPost,
    PermanentError,
    SenderMarks,
)
from shared.providers.telegram.api import TelegramApi
from shared.providers.telegram.messages import TelegramChat, escape, format_post
from tests.support import serve

DATE, EDITED = 1_700_000_000, 1_700_000_600
ADA = {"id": 111, "is_bot": False, "first_name": "Ada", "last_name": "Lovelace", "username": "ada"}
GROUP = {"id": -1001234567890, "title": "Engineering", "type": "supergroup"}
CHANNEL = {"id": -1009876543210, "title": "Announcements", "type": "channel"}
_ids = itertools.count(1)


def update(kind: str, **message: Any) -> dict[str, Any]:
    return {"update_id": 10000, kind: {"message_id": 7, "date": DATE, "chat": GROUP, **message}}


def at(stamp: int) -> datetime:
    return datetime.fromtimestamp(stamp, UTC)


PROVIDER = TelegramChat(TelegramApi(httpx.AsyncClient(verify=tls()), "http://127.0.0.1:9"))
ADA_AUTHOR = Author(name="Ada Lovelace", external_id="111")
ADA_SENDER = SenderMarks(user_id="111")


@pytest.mark.parametrize(
    ("event_type", "payload", "expected"),
    [
        pytest.param(
            "message",
            update("message", **{"from": ADA, "text": "Hello <team> & all"}),
            MessageChange(
                kind="created", external_channel_id="-1001234567890", external_message_id="7",
                occurred_at=at(DATE), text="Hello <team> & all", author=ADA_AUTHOR,
                sender=ADA_SENDER,
            ),
            id="group-message",
        ),
        pytest.param(
            "message",
            update("message", **{
                "from": {"id": 5, "is_bot": False, "first_name": "", "username": "grace"},
                "chat": {"id": 5, "first_name": "", "username": "grace", "type": "private"},
                "text": "hi",
            }),
            MessageChange(
                kind="created", external_channel_id="5", external_message_id="7",
                occurred_at=at(DATE), text="hi", author=Author(name="grace", external_id="5"),
                sender=SenderMarks(user_id="5"),
            ),
            id="private-username-only",
        ),
        pytest.param(
            "message",
            update("message", **{
                "from": ADA, "text": "agreed",
                "reply_to_message": {
                    "message_id": 3, "date": DATE - 60, "chat": GROUP, "from": ADA, "text": "plan?",
                },
            }),
            MessageChange(
                kind="created", external_channel_id="-1001234567890", external_message_id="7",
                occurred_at=at(DATE), text="agreed", external_thread_id="3", author=ADA_AUTHOR,
                sender=ADA_SENDER,
            ),
            id="reply",
        ),
        pytest.param(
            "edited_message",
            update("edited_message", **{"from": ADA, "text": "Hello, fixed", "edit_date": EDITED}),
            MessageChange(
                kind="edited", external_channel_id="-1001234567890", external_message_id="7",
                occurred_at=at(EDITED), text="Hello, fixed", author=ADA_AUTHOR, sender=ADA_SENDER,
            ),
            id="edit",
        ),
        pytest.param(
            "channel_post",
            update("channel_post", **{
                "chat": CHANNEL, "sender_chat": CHANNEL, "author_signature": "Ada", "text": "v2!",
            }),
            MessageChange(
                kind="created", external_channel_id="-1009876543210", external_message_id="7",
                occurred_at=at(DATE), text="v2!",
                author=Author(name="Ada (Announcements)", external_id="-1009876543210"),
            ),
            id="channel-post-signed",
        ),
        pytest.param(
            "edited_channel_post",
            update("edited_channel_post", **{
                "chat": CHANNEL, "sender_chat": CHANNEL, "text": "v2.1", "edit_date": EDITED,
            }),
            MessageChange(
                kind="edited", external_channel_id="-1009876543210", external_message_id="7",
                occurred_at=at(EDITED), text="v2.1",
                author=Author(name="Announcements", external_id="-1009876543210"),
            ),
            id="channel-post-edit",
        ),
        pytest.param(
            "message",
            update("message", **{
                "from": {"id": 1087968824, "is_bot": True, "first_name": "Group",
                         "username": "GroupAnonymousBot"},
                "sender_chat": GROUP, "text": "from an anonymous admin",
            }),
            MessageChange(
                kind="created", external_channel_id="-1001234567890", external_message_id="7",
                occurred_at=at(DATE), text="from an anonymous admin",
                author=Author(name="Engineering", external_id="-1001234567890"),
                sender=SenderMarks(user_id="1087968824"),
            ),
            id="anonymous-admin",
        ),
        pytest.param(
            "message",
            update("message", **{
                "from": ADA, "caption": "the whiteboard",
                "photo": [{"file_id": "AgAD", "file_unique_id": "x", "width": 90, "height": 60}],
            }),
            MessageChange(
                kind="created", external_channel_id="-1001234567890", external_message_id="7",
                occurred_at=at(DATE), text="[photo]\nthe whiteboard", author=ADA_AUTHOR,
                sender=ADA_SENDER, subtype="photo",
            ),
            id="photo-with-caption",
        ),
        pytest.param(
            "message",
            update("message", **{
                "from": ADA,
                "document": {"file_id": "BQAD", "file_unique_id": "y", "file_name": "q3.pdf",
                             "mime_type": "application/pdf"},
            }),
            MessageChange(
                kind="created", external_channel_id="-1001234567890", external_message_id="7",
                occurred_at=at(DATE), text="[document: q3.pdf]", author=ADA_AUTHOR,
                sender=ADA_SENDER, subtype="document",
            ),
            id="document",
        ),
        pytest.param(
            "message",
            update("message", **{
                "from": ADA,
                "sticker": {"file_id": "CAAD", "file_unique_id": "z", "type": "regular",
                            "width": 512, "height": 512, "is_animated": False,
                            "is_video": False, "emoji": "👍"},
            }),
            MessageChange(
                kind="created", external_channel_id="-1001234567890", external_message_id="7",
                occurred_at=at(DATE), text="[sticker: 👍]", author=ADA_AUTHOR,
                sender=ADA_SENDER, subtype="sticker",
            ),
            id="sticker",
        ),
        pytest.param(
            "message",
            update("message", **{"from": ADA, "voice": {"file_id": "AwAD", "duration": 3}}),
            MessageChange(
                kind="created", external_channel_id="-1001234567890", external_message_id="7",
                occurred_at=at(DATE), text="[voice]", author=ADA_AUTHOR, sender=ADA_SENDER,
                subtype="voice",
            ),
            id="voice",
        ),
        pytest.param(
            "message",
            update("message", **{"from": ADA, "new_chat_members": [ADA]}),
            MessageChange(
                kind="created", external_channel_id="-1001234567890", external_message_id="7",
                occurred_at=at(DATE), author=ADA_AUTHOR, sender=ADA_SENDER,
                subtype="new_chat_members",
                ignored="Telegram service message (new_chat_members)",
            ),
            id="join",
        ),
        pytest.param(
            "message",
            update("message", **{
                "from": ADA,
                "pinned_message": {"message_id": 3, "date": DATE, "chat": GROUP, "text": "x"},
            }),
            MessageChange(
                kind="created", external_channel_id="-1001234567890", external_message_id="7",
                occurred_at=at(DATE), author=ADA_AUTHOR, sender=ADA_SENDER,
                subtype="pinned_message", ignored="Telegram service message (pinned_message)",
            ),
            id="pin",
        ),
    ],
)  # fmt: skip
def test_changes(event_type: str, payload: dict[str, Any], expected: MessageChange) -> None:
    assert PROVIDER.changes(event_type, payload) == [expected]


@pytest.mark.parametrize(
    ("event_type", "payload"),
    [
        ("callback_query", {"update_id": 1, "callback_query": {"id": "4382", "from": ADA}}),
        ("my_chat_member", {"update_id": 1, "my_chat_member": {"chat": GROUP, "date": DATE}}),
        ("message", {"update_id": 1, "message": {"message_id": 7, "date": DATE}}),
        ("message", {"update_id": 1, "message": {"message_id": "7", "chat": GROUP}}),
        ("message", {"update_id": 1, "message": "text"}),
        ("message", {"update_id": 1}),
    ],
)
def test_other_updates_and_malformed_ones_change_nothing(
    event_type: str, payload: dict[str, Any]
) -> None:
    assert PROVIDER.changes(event_type, payload) == []


def test_is_own_by_sender_or_via_bot() -> None:
    bot = BotIdentity(user_id="777", name="hookhub_bot")
    sent = update(
        "message", **{"from": {"id": 777, "is_bot": True, "first_name": "H"}, "text": "x"}
    )
    via = update("message", **{"from": ADA, "via_bot": {"id": 777, "is_bot": True}, "text": "x"})
    mine = PROVIDER.changes("message", sent)[0]
    assert mine.sender.is_bot
    assert PROVIDER.is_own(mine, bot)
    assert PROVIDER.is_own(PROVIDER.changes("message", via)[0], bot)
    theirs = PROVIDER.changes("message", update("message", **{"from": ADA, "text": "x"}))[0]
    assert not PROVIDER.is_own(theirs, bot)
    assert not PROVIDER.is_own(theirs, BotIdentity())


async def test_reading_helpers_have_nothing_to_look_up() -> None:
    async def users(_: str) -> Author | None:
        raise AssertionError("Telegram text names nobody to look up")

    assert await PROVIDER.render("<b>not markup</b> @ada", users) == "<b>not markup</b> @ada"
    assert await PROVIDER.user("t", "111") is None
    assert await PROVIDER.find_post("t", "-1", "tag", datetime.now(UTC)) is None


def test_pace() -> None:
    assert PROVIDER.pace_seconds("111") == 1.0
    assert PROVIDER.pace_seconds("-1001234567890") == 3.0
    assert PROVIDER.pace_seconds("@announcements") == 3.0


def test_escape_only_what_the_api_asks() -> None:
    assert escape("a < b && c > d \"q\" 'x'") == "a &lt; b &amp;&amp; c &gt; d \"q\" 'x'"


def test_the_formatted_post_is_what_the_api_parses_back() -> None:
    post = OutboundPost(
        text="if a<b && c>d: </b>",
        author=Author(name="<script>Eve</script>"),
        attachments=(
            Attachment(url='https://files.example/a?x=1&y="2"', name="plan <v2>.pdf"),
            Attachment(url="ftp://old.example/f", name="legacy"),
        ),
    )
    text, entities = parse_html(format_post(post))
    assert text == "<script>Eve</script>\nif a<b && c>d: </b>\nplan <v2>.pdf\nlegacy"
    assert entities[0] == {"offset": 0, "length": 20, "type": "bold"}
    assert entities[1]["type"] == "text_link" and entities[1]["offset"] == 41


@pytest.mark.parametrize("unit", ["x", "😀", "é"])
def test_a_long_text_is_cut_to_fit_4096_units(unit: str) -> None:
    post = OutboundPost(text=unit * 5000, author=Author(name="Ada"))
    text, _ = parse_html(format_post(post))
    assert utf16_len(text) <= 4096 and text.endswith("…")
    assert utf16_len(text) >= 4096 - 2  # nothing more than a cut surrogate pair is lost
    short = OutboundPost(text=unit * 10, author=Author(name="Ada"))
    assert parse_html(format_post(short))[0] == "Ada\n" + unit * 10


# -- over the fake ------------------------------------------------------------------------


@pytest.fixture
async def provider(telegram_api: tuple[FakeTelegram, str]) -> AsyncIterator[TelegramChat]:
    async with httpx.AsyncClient(verify=tls(), timeout=5.0) as client:
        chat: ChatProvider = TelegramChat(TelegramApi(client, telegram_api[1]))
        assert isinstance(chat, TelegramChat) and chat.name == "telegram"
        yield chat


def setup(fake: FakeTelegram, type: str = "supergroup") -> tuple[str, int]:
    n = next(_ids)
    token = f"{8000 + n}:messages-test-{n}"
    fake.add_bot(token, 8000 + n, f"messages_{n}_bot")
    chat_id = n if type == "private" else -1002000000000 - n
    fake.add_chat(chat_id, type, f"room {n}")
    return token, chat_id


async def test_post_edit_delete_round_trip(
    telegram_api: tuple[FakeTelegram, str], provider: TelegramChat
) -> None:
    fake = telegram_api[0]
    token, chat_id = setup(fake)
    post = OutboundPost(
        text="hello <world> & co",
        author=Author(name="Ada & Grace", avatar_url="https://a.example/x.png"),
        attachments=(Attachment(url="https://f.example/r.pdf", name="r.pdf"),),
    )
    root = await provider.post(token, str(chat_id), post)
    assert root.external_thread_id is None
    stored = fake.message(chat_id, int(root.external_message_id))
    assert stored is not None
    assert stored["text"] == "Ada & Grace\nhello <world> & co\nr.pdf"
    assert stored["entities"] == [
        {"offset": 0, "length": 11, "type": "bold"},
        {"offset": 31, "length": 5, "type": "text_link", "url": "https://f.example/r.pdf"},
    ]
    assert fake.sent()[-1]["parse_mode"] == "HTML"

    reply = await provider.post(
        token,
        str(chat_id),
        OutboundPost(
            text="re", author=Author(name="Grace"), thread_external_id=root.external_message_id
        ),
    )
    assert reply.external_thread_id == root.external_message_id
    assert fake.sent()[-1]["reply_parameters"] == {
        "message_id": int(root.external_message_id),
        "allow_sending_without_reply": True,
    }

    edited = OutboundPost(text="hello, edited", author=Author(name="Ada & Grace"))
    await provider.edit(token, str(chat_id), root.external_message_id, edited)
    assert fake.message(chat_id, int(root.external_message_id))["text"] == (  # type: ignore[index]
        "Ada & Grace\nhello, edited"
    )
    await provider.edit(token, str(chat_id), root.external_message_id, edited)  # unchanged: ok

    await provider.delete(token, str(chat_id), root.external_message_id)
    assert fake.message(chat_id, int(root.external_message_id)) is None
    await provider.delete(token, str(chat_id), root.external_message_id)  # already gone: ok


async def test_a_long_post_is_accepted_by_the_api(
    telegram_api: tuple[FakeTelegram, str], provider: TelegramChat
) -> None:
    fake = telegram_api[0]
    token, chat_id = setup(fake)
    posted = await provider.post(token, str(chat_id), OutboundPost("😀" * 4000, Author("Ada")))
    text = fake.message(chat_id, int(posted.external_message_id))["text"]  # type: ignore[index]
    assert text.endswith("…") and utf16_len(text) <= 4096


async def test_identity_and_channel(
    telegram_api: tuple[FakeTelegram, str], provider: TelegramChat
) -> None:
    fake = telegram_api[0]
    token, chat_id = setup(fake)
    bot = fake.bots[token]
    assert await provider.identity(token) == BotIdentity(
        user_id=str(bot["id"]), name=bot["username"]
    )
    info = await provider.channel(token, str(chat_id))
    assert (info.id, info.name) == (str(chat_id), fake.chats[chat_id].title)
    with pytest.raises(PermanentError) as caught:
        await provider.channel(token, "-100424242")
    assert (caught.value.error, caught.value.scope) == ("chat_not_found", "channel")
    fake.kick(chat_id)
    with pytest.raises(PermanentError) as kicked:
        await provider.post(token, str(chat_id), OutboundPost("x", Author("Ada")))
    assert (kicked.value.error, kicked.value.scope) == ("bot_kicked", "channel")


async def test_updates_from_the_webhook_become_changes(
    telegram_api: tuple[FakeTelegram, str], provider: TelegramChat
) -> None:
    """The fake's Updates, as a webhook receives them, read back as the changes they are."""
    fake = telegram_api[0]
    token, chat_id = setup(fake)
    received: list[tuple[str | None, dict[str, Any]]] = []

    async def hook(request: Request) -> JSONResponse:
        received.append(
            (request.headers.get("x-telegram-bot-api-secret-token"), await request.json())
        )
        return JSONResponse({"ok": True})

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"]), Route("/healthz", healthz)])
    async with serve(app, probe="/healthz") as sink:
        await provider._api.set_webhook(token, f"{sink.base_url}/hook", "s3cret")
        user = {"id": 42, "first_name": "Ada", "last_name": "L."}
        assert await fake.user_sends(chat_id, user, "first", token=token) == 200
        first = max(fake.chats[chat_id].messages)
        assert await fake.user_sends(chat_id, user, "second", reply_to=first, token=token) == 200
        assert await fake.user_edits(chat_id, first, "first!", token=token) == 200

    assert [secret for secret, _ in received] == ["s3cret"] * 3
    ids = [body["update_id"] for _, body in received]
    assert ids == sorted(ids) and len(set(ids)) == 3
    changes = [
        provider.changes(next(k for k in body if k != "update_id"), body)[0] for _, body in received
    ]
    assert [(c.kind, c.text, c.external_thread_id) for c in changes] == [
        ("created", "first", None),
        ("created", "second", str(first)),
        ("edited", "first!", None),
    ]
    assert {c.author for c in changes} == {Author(name="Ada L.", external_id="42")}
    assert {c.external_channel_id for c in changes} == {str(chat_id)}
