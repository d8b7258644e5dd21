"""The Telegram Bot API client against the fake over loopback: each refusal sorted into the
chat contract's errors, and the no-ops (an unchanged edit, a message already gone)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.sandbox.telegram import FakeTelegram
from shared.domain.oauth.provider import ProviderUnreachable
from shared.kernel.embedded import free_port
from shared.kernel.http.tls import tls
from shared.providers.chat import PermanentError, RateLimited, TokenRejected
from shared.providers.telegram.api import TelegramApi, TelegramRefused, refusal

_ids = itertools.count(1)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(verify=tls(), timeout=5.0) as http:
        yield http


@pytest.fixture
def fake(telegram_api: tuple[FakeTelegram, str]) -> FakeTelegram:
    return telegram_api[0]


@pytest.fixture
def api(telegram_api: tuple[FakeTelegram, str], client: httpx.AsyncClient) -> TelegramApi:
    return TelegramApi(client, telegram_api[1])


def bot(fake: FakeTelegram) -> str:
    n = next(_ids)
    token = f"{9000 + n}:api-test-{n}"
    fake.add_bot(token, 9000 + n, f"api_test_{n}_bot")
    return token


def chat(fake: FakeTelegram, type: str = "supergroup", **kw: Any) -> int:
    n = next(_ids)
    chat_id = n if type == "private" else -1001000000000 - n
    fake.add_chat(chat_id, type, f"chat {n}", **kw)
    return chat_id


async def test_send_message_returns_the_message_with_html_as_entities(
    fake: FakeTelegram, api: TelegramApi
) -> None:
    token, group = bot(fake), chat(fake)
    sent = await api.send_message(token, str(group), "<b>Ada</b>\n1 &lt; 2", parse_mode="HTML")
    assert sent["text"] == "Ada\n1 < 2"
    assert sent["entities"] == [{"offset": 0, "length": 3, "type": "bold"}]
    assert sent["from"]["id"] == fake.bots[token]["id"] and sent["from"]["is_bot"] is True
    assert sent["chat"] == {"id": group, "type": "supergroup", "title": fake.chats[group].title}
    reply = await api.send_message(token, group, "re", reply_to=sent["message_id"])
    assert reply["message_id"] == sent["message_id"] + 1
    assert reply["reply_to_message"]["message_id"] == sent["message_id"]
    assert fake.sent()[-1]["reply_parameters"] == {
        "message_id": sent["message_id"],
        "allow_sending_without_reply": True,
    }


async def test_a_reply_to_a_message_that_is_gone_is_still_sent(
    fake: FakeTelegram, api: TelegramApi
) -> None:
    token, group = bot(fake), chat(fake)
    sent = await api.send_message(token, group, "orphan", reply_to=424242)
    assert "reply_to_message" not in sent and sent["text"] == "orphan"


async def test_channel_messages_are_sent_as_the_channel(
    fake: FakeTelegram, api: TelegramApi
) -> None:
    token, channel = bot(fake), chat(fake, "channel")
    sent = await api.send_message(token, channel, "news")
    assert "from" not in sent and sent["sender_chat"]["id"] == channel


async def test_flood_control_is_rate_limited_with_retry_after(
    fake: FakeTelegram, api: TelegramApi
) -> None:
    token, group = bot(fake), chat(fake)
    fake.rate_limit("sendMessage", chat_id=group, retry_after=7, times=1)
    with pytest.raises(RateLimited) as caught:
        await api.send_message(token, group, "hi")
    assert caught.value.retry_after == 7.0
    await api.send_message(token, group, "hi")  # the limit was for one call


async def test_the_enforced_per_chat_pace_answers_429(fake: FakeTelegram, api: TelegramApi) -> None:
    token, group = bot(fake), chat(fake)
    fake.now, fake.chat_interval = 1_700_000_000.0, 3.0
    try:
        await api.send_message(token, group, "one")
        with pytest.raises(RateLimited) as caught:
            await api.send_message(token, group, "two")
        assert caught.value.retry_after == 3.0
        fake.advance(3.0)
        await api.send_message(token, group, "two")
    finally:
        fake.now = fake.chat_interval = None


async def test_an_unknown_token_is_rejected(fake: FakeTelegram, api: TelegramApi) -> None:
    group = chat(fake)
    with pytest.raises(TokenRejected) as caught:
        await api.send_message("1:revoked", group, "hi")
    assert (caught.value.error, caught.value.scope) == ("unauthorized", "integration")
    with pytest.raises(PermanentError) as malformed:
        await api.me("no-colon")
    assert (malformed.value.error, malformed.value.scope) == ("bot_not_found", "integration")


@pytest.mark.parametrize(
    ("type", "kicked", "error", "said"),
    [
        ("group", True, "bot_kicked", "bot was kicked from the group chat"),
        ("supergroup", True, "bot_kicked", "bot was kicked from the supergroup chat"),
        ("channel", False, "bot_not_member", "bot is not a member of the channel chat"),
        ("private", True, "bot_blocked", "bot was blocked by the user"),
    ],
)
async def test_a_bot_that_cannot_reach_the_chat_breaks_the_channel(
    fake: FakeTelegram, api: TelegramApi, type: str, kicked: bool, error: str, said: str
) -> None:
    token, target = bot(fake), chat(fake, type, member=kicked)
    if kicked:
        fake.kick(target)
    with pytest.raises(PermanentError) as caught:
        await api.send_message(token, target, "hi")
    assert (caught.value.error, caught.value.scope) == (error, "channel")
    assert said in caught.value.message


async def test_an_unknown_chat_breaks_the_channel(fake: FakeTelegram, api: TelegramApi) -> None:
    token = bot(fake)
    for call in (api.send_message(token, "-100777", "hi"), api.get_chat(token, "@nobody")):
        with pytest.raises(PermanentError) as caught:
            await call
        assert (caught.value.error, caught.value.scope) == ("chat_not_found", "channel")


async def test_a_migrated_group_names_its_new_id(fake: FakeTelegram, api: TelegramApi) -> None:
    token, group = bot(fake), chat(fake, "group")
    new_id = group - 1_000_000
    fake.migrate(group, new_id)
    with pytest.raises(PermanentError) as caught:
        await api.send_message(token, group, "hi")
    assert (caught.value.error, caught.value.scope) == ("chat_migrated", "channel")
    assert str(new_id) in caught.value.message
    assert (await api.send_message(token, new_id, "hi"))["chat"]["id"] == new_id


async def test_message_refusals_are_scoped_to_the_message(
    fake: FakeTelegram, api: TelegramApi
) -> None:
    token, group = bot(fake), chat(fake)
    await fake_user_message(fake, group)
    theirs = max(fake.chats[group].messages)
    cases = [
        (api.edit_message_text(token, group, 999, "x"), "message_not_found"),
        (api.edit_message_text(token, group, theirs, "x"), "message_cant_be_edited"),
        (api.send_message(token, group, "x" * 4097), "msg_too_long"),
        (api.send_message(token, group, "<p>x</p>", parse_mode="HTML"), "cant_parse_entities"),
        (api.send_message(token, group, "<b>x", parse_mode="HTML"), "cant_parse_entities"),
        (api.send_message(token, group, "a & b", parse_mode="HTML"), "cant_parse_entities"),
        (api.send_message(token, group, "  "), "message_empty"),
    ]
    for call, error in cases:
        with pytest.raises(PermanentError) as caught:
            await call
        assert (caught.value.error, caught.value.scope) == (error, "message"), error
    # 4096 UTF-16 code units is the limit, not 4096 characters: 2048 emoji fill it.
    await api.send_message(token, group, "😀" * 2048)
    with pytest.raises(PermanentError, match="too long"):
        await api.send_message(token, group, "😀" * 2048 + "x")


async def fake_user_message(fake: FakeTelegram, chat_id: int) -> None:
    # A person's message, stored without a webhook (none is needed for the refusals).
    fake._store(fake.chats[chat_id], {"from": {"id": 5, "is_bot": False}}, "mine", None, {})


async def test_an_unchanged_edit_is_no_failure(
    fake: FakeTelegram, api: TelegramApi, client: httpx.AsyncClient, telegram_api: Any
) -> None:
    token, group = bot(fake), chat(fake)
    sent = await api.send_message(token, group, "<b>Ada</b>\nhello", parse_mode="HTML")
    same = {"chat_id": group, "message_id": sent["message_id"], "text": "<b>Ada</b>\nhello"}
    await api.edit_message_text(token, group, sent["message_id"], same["text"], parse_mode="HTML")
    # What the API answered to it: the refusal the client took as success.
    raw = await client.post(
        f"{telegram_api[1]}/bot{token}/editMessageText", json={**same, "parse_mode": "HTML"}
    )
    assert raw.status_code == 400
    assert raw.json()["description"].startswith("Bad Request: message is not modified")
    await api.edit_message_text(token, group, sent["message_id"], "<i>Ada</i>", parse_mode="HTML")
    assert fake.message(group, sent["message_id"]) == {
        **sent,
        "text": "Ada",
        "entities": [{"offset": 0, "length": 3, "type": "italic"}],
        "edit_date": fake.message(group, sent["message_id"])["edit_date"],  # type: ignore[index]
        "_sent_by": token,
    }


async def test_deleting_a_message_already_gone_is_no_failure(
    fake: FakeTelegram, api: TelegramApi
) -> None:
    token, group = bot(fake), chat(fake)
    sent = await api.send_message(token, group, "bye")
    await api.delete_message(token, group, sent["message_id"])
    assert fake.message(group, sent["message_id"]) is None
    await api.delete_message(token, group, sent["message_id"])


async def test_a_message_older_than_48_hours_cannot_be_deleted(
    fake: FakeTelegram, api: TelegramApi
) -> None:
    token, group = bot(fake), chat(fake)
    fake.now = 1_700_000_000.0
    try:
        sent = await api.send_message(token, group, "old")
        fake.advance(48 * 3600)
        with pytest.raises(PermanentError) as caught:
            await api.delete_message(token, group, sent["message_id"])
        assert (caught.value.error, caught.value.scope) == ("message_cant_be_deleted", "message")
    finally:
        fake.now = None


async def test_5xx_and_no_answer_are_unreachable(
    fake: FakeTelegram, api: TelegramApi, client: httpx.AsyncClient
) -> None:
    token, group = bot(fake), chat(fake)
    fake.fail("sendMessage", status=502)
    with pytest.raises(ProviderUnreachable, match="502"):
        await api.send_message(token, group, "hi")
    nobody = TelegramApi(client, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ProviderUnreachable, match="unreachable"):
        await nobody.send_message(token, group, "hi")


async def test_a_timeout_is_unreachable(fake: FakeTelegram, telegram_api: Any) -> None:
    token, group = bot(fake), chat(fake)
    async with httpx.AsyncClient(verify=tls(), timeout=httpx.Timeout(1e-6)) as impatient:
        with pytest.raises(ProviderUnreachable):
            await TelegramApi(impatient, telegram_api[1]).get_chat(token, group)


async def test_get_chat_and_me(fake: FakeTelegram, api: TelegramApi) -> None:
    token, group = bot(fake), chat(fake, username="hookhub_news")
    info = await api.get_chat(token, "@hookhub_news")
    assert (info["id"], info["title"], info["type"]) == (
        group,
        fake.chats[group].title,
        "supergroup",
    )
    me = await api.me(token)
    assert (me.id, me.username) == (fake.bots[token]["id"], fake.bots[token]["username"])


async def test_the_oauth_services_calls_still_raise_telegram_refused(api: TelegramApi) -> None:
    for call in (api.get_me("1:unknown"), api.delete_webhook("1:unknown")):
        with pytest.raises(TelegramRefused, match="Unauthorized"):
            await call


@pytest.mark.parametrize(
    ("status", "body", "kind", "error", "scope_or_wait"),
    [
        (
            429,
            {"error_code": 429, "description": "Too Many Requests: retry after 34"},
            RateLimited,
            None,
            34.0,
        ),
        (429, {"error_code": 429, "description": "Too Many Requests"}, RateLimited, None, 1.0),
        (401, {"error_code": 401, "description": "Unauthorized"}, TokenRejected, "unauthorized", "integration"),
        (403, {"error_code": 403, "description": "Forbidden: user is deactivated"}, PermanentError, "user_deactivated", "channel"),
        (400, {"error_code": 400, "description": "Bad Request: have no rights to send a message"}, PermanentError, "no_rights", "channel"),
        (400, {"error_code": 400, "description": "Bad Request: group chat was upgraded to a supergroup chat"}, PermanentError, "chat_migrated", "channel"),
        (400, {"error_code": 400, "description": "Bad Request: message can't be deleted for everyone"}, PermanentError, "message_cant_be_deleted", "message"),
        (400, {"error_code": 400, "description": "Bad Request: something new"}, PermanentError, "bad_request", "message"),
    ],
)  # fmt: skip
def test_refusal_table(
    status: int, body: dict[str, Any], kind: type, error: str | None, scope_or_wait: str | float
) -> None:
    raised = refusal("sendMessage", status, {"ok": False, **body})
    assert type(raised) is kind
    if isinstance(raised, PermanentError):
        assert (raised.error, raised.scope) == (error, scope_or_wait)
    else:
        # Without parameters: the wait the description names, else a second.
        assert isinstance(raised, RateLimited) and raised.retry_after == scope_or_wait
