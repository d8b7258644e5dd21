"""SlackApi against the fake Slack over loopback: answers, the error sorting, 429s, paging."""

from __future__ import annotations

import httpx
import pytest

from services.sandbox.slack import APP_ID, BOT_ID, BOT_USER_ID, TEAM_ID, FakeSlack
from shared.kernel.embedded import free_port
from shared.kernel.http.tls import tls
from shared.kernel.settings import Settings
from shared.providers.chat import PermanentError, ProviderUnreachable, RateLimited, TokenRejected
from shared.providers.slack.api import DEFAULT_BASE_URL, SlackApi, base_url


@pytest.fixture
def token(slack: FakeSlack) -> str:
    slack.programmed.clear()
    slack.posts_per_second = None
    slack.add_channel("C0GENERAL", "general")
    slack.add_channel("C0OUTSIDE", "outside", member=False)
    slack.add_channel("C0OLD", "old", archived=True)
    return slack.add_bot_token()


def test_base_url_from_settings() -> None:
    assert base_url(Settings()) == DEFAULT_BASE_URL == "https://slack.com/api"
    assert base_url(Settings(slack_api_base="http://127.0.0.1:9/api")) == "http://127.0.0.1:9/api"


async def test_auth_test_and_bots_info_name_the_bot_and_its_app(api: SlackApi, token: str) -> None:
    me = await api.auth_test(token)
    assert (me["team_id"], me["user_id"], me["bot_id"]) == (TEAM_ID, BOT_USER_ID, BOT_ID)
    assert "app_id" not in me  # a bot token's auth.test does not promise it
    assert (await api.bots_info(token, BOT_ID))["app_id"] == APP_ID


async def test_reads_go_form_encoded_and_writes_as_json(
    api: SlackApi, slack: FakeSlack, token: str
) -> None:
    posted = await api.chat_post_message(token, "C0GENERAL", text="hi")
    await api.conversations_history(token, "C0GENERAL", limit=1)
    await api.conversations_info(token, "C0GENERAL")
    post, history, info = slack.calls[-3:]
    assert (post.method, post.content_type, post.token) == (
        "chat.postMessage",
        "application/json",
        token,
    )
    assert history.content_type == info.content_type == "application/x-www-form-urlencoded"
    assert history.args["limit"] == "1"
    assert slack.message("C0GENERAL", posted["ts"])["text"] == "hi"  # type: ignore[index]


async def test_a_read_method_does_not_read_a_json_body(api: SlackApi, token: str) -> None:
    # As Slack: conversations.history takes no JSON, so the channel is not seen at all.
    with pytest.raises(PermanentError) as refused:
        await api.call("conversations.history", token, json={"channel": "C0GENERAL"})
    assert refused.value.error == "channel_not_found"


@pytest.mark.parametrize(
    ("channel", "error"),
    [("C0NOPE", "channel_not_found"), ("C0OUTSIDE", "not_in_channel"), ("C0OLD", "is_archived")],
)
async def test_channel_refusals_break_the_channel(
    api: SlackApi, token: str, channel: str, error: str
) -> None:
    with pytest.raises(PermanentError) as refused:
        await api.chat_post_message(token, channel, text="hi")
    assert (refused.value.error, refused.value.scope) == (error, "channel")
    assert not isinstance(refused.value, TokenRejected)


async def test_message_refusals_concern_one_message(
    api: SlackApi, slack: FakeSlack, token: str
) -> None:
    cases = {
        "no_text": api.chat_post_message(token, "C0GENERAL", text=" "),
        "msg_too_long": api.chat_post_message(token, "C0GENERAL", text="x" * 40_001),
        "message_not_found": api.chat_update(token, "C0GENERAL", "1.000001", text="x"),
    }
    theirs = await slack.post_as_user("C0GENERAL", "U0ADA", "mine")
    cases["cant_update_message"] = api.chat_update(token, "C0GENERAL", theirs, text="x")
    cases["cant_delete_message"] = api.chat_delete(token, "C0GENERAL", theirs)
    for error, call in cases.items():
        with pytest.raises(PermanentError) as refused:
            await call
        assert (refused.value.error, refused.value.scope) == (error, "message")


@pytest.mark.parametrize("error", ["invalid_auth", "token_revoked", "token_expired", "not_authed"])
async def test_token_refusals(api: SlackApi, slack: FakeSlack, token: str, error: str) -> None:
    slack.fail("chat.postMessage", error)
    with pytest.raises(TokenRejected) as refused:
        await api.chat_post_message(token, "C0GENERAL", text="hi")
    assert (refused.value.error, refused.value.scope) == (error, "integration")


async def test_unknown_and_missing_tokens_are_rejected(api: SlackApi, token: str) -> None:
    with pytest.raises(TokenRejected) as unknown:
        await api.auth_test("xoxb-never-issued")
    with pytest.raises(TokenRejected) as missing:
        await api.auth_test("")
    with pytest.raises(TokenRejected) as unsendable:
        await api.auth_test("xoxb-1\nX-Injected: 1")
    assert (unknown.value.error, missing.value.error) == ("invalid_auth", "not_authed")
    assert unsendable.value.error == "invalid_auth"


@pytest.mark.parametrize(
    ("error", "scope"),
    [
        ("account_inactive", "integration"),
        ("missing_scope", "integration"),
        ("team_access_not_granted", "integration"),
        ("restricted_action", "channel"),
        ("some_error_slack_adds_later", "message"),
    ],
)
async def test_other_refusals_by_scope(
    api: SlackApi, slack: FakeSlack, token: str, error: str, scope: str
) -> None:
    slack.fail("chat.update", error)
    with pytest.raises(PermanentError) as refused:
        await api.chat_update(token, "C0GENERAL", "1.000001", text="x")
    assert (refused.value.error, refused.value.scope) == (error, scope)
    assert not isinstance(refused.value, TokenRejected)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        ("internal_error", 200),
        ("fatal_error", 200),
        ("service_unavailable", 200),
        ("request_timeout", 200),
        ("internal_error", 500),
        ("", 503),
    ],
)
async def test_outages_are_worth_retrying(
    api: SlackApi, slack: FakeSlack, token: str, error: str, status: int
) -> None:
    slack.fail("chat.postMessage", error, status=status)
    with pytest.raises(ProviderUnreachable):
        await api.chat_post_message(token, "C0GENERAL", text="hi")
    assert (await api.chat_post_message(token, "C0GENERAL", text="hi"))["ok"] is True


async def test_no_answer_is_an_outage() -> None:
    async with httpx.AsyncClient(verify=tls(), timeout=2.0) as client:
        api = SlackApi(client, f"http://127.0.0.1:{free_port()}/api")
        with pytest.raises(ProviderUnreachable):
            await api.auth_test("xoxb-any")


async def test_a_429_says_how_long_to_wait(api: SlackApi, slack: FakeSlack, token: str) -> None:
    slack.rate_limit("chat.postMessage", channel="C0GENERAL", retry_after=7, times=2)
    for _ in range(2):
        with pytest.raises(RateLimited) as limited:
            await api.chat_post_message(token, "C0GENERAL", text="hi")
        assert limited.value.retry_after == 7.0
    assert (await api.chat_post_message(token, "C0GENERAL", text="hi"))["ok"] is True


async def test_ratelimited_without_a_header_waits_a_second(
    api: SlackApi, slack: FakeSlack, token: str
) -> None:
    slack.fail("chat.delete", "ratelimited")
    with pytest.raises(RateLimited) as limited:
        await api.chat_delete(token, "C0GENERAL", "1.000001")
    assert limited.value.retry_after == 1.0


async def test_the_fake_enforces_a_per_channel_rate(
    api: SlackApi, slack: FakeSlack, token: str
) -> None:
    slack.add_channel("C0PACED", "paced")
    slack.posts_per_second = 2
    await api.chat_post_message(token, "C0PACED", text="1")
    await api.chat_post_message(token, "C0PACED", text="2")
    with pytest.raises(RateLimited):
        await api.chat_post_message(token, "C0PACED", text="3")
    await api.chat_post_message(token, "C0GENERAL", text="other channels go on")


async def test_history_pages_with_a_cursor_and_leaves_replies_out(
    api: SlackApi, slack: FakeSlack, token: str
) -> None:
    slack.add_channel("C0PAGED", "paged")
    first = await slack.post_as_user("C0PAGED", "U0ADA", "zero")
    roots = [await slack.post_as_user("C0PAGED", "U0ADA", f"m{i}") for i in range(5)]
    await slack.post_as_user("C0PAGED", "U0BEN", "a reply", thread_ts=roots[0])
    page = await api.conversations_history(token, "C0PAGED", oldest=first, limit=2)
    assert [m["ts"] for m in page.items] == roots[:-3:-1]
    assert page.has_more and page.next_cursor
    seen = [m["ts"] for m in page.items]
    while page.next_cursor is not None:
        page = await api.conversations_history(
            token, "C0PAGED", oldest=first, limit=2, cursor=page.next_cursor
        )
        seen += [m["ts"] for m in page.items]
    assert seen == roots[::-1]  # newest first, the reply only in its thread
    thread = await api.conversations_replies(token, "C0PAGED", roots[0])
    assert [m["text"] for m in thread.items] == ["m0", "a reply"]
    assert thread.next_cursor is None


async def test_metadata_only_when_asked_for(api: SlackApi, token: str) -> None:
    metadata = {"event_type": "hookhub_message", "event_payload": {"message_id": "msg_1"}}
    posted = await api.chat_post_message(token, "C0GENERAL", text="tagged", metadata=metadata)
    plain = await api.conversations_history(token, "C0GENERAL", oldest=posted["ts"], inclusive=True)
    full = await api.conversations_history(
        token, "C0GENERAL", oldest=posted["ts"], inclusive=True, include_all_metadata=True
    )
    assert "metadata" not in plain.items[0]
    assert full.items[0]["metadata"] == metadata


async def test_users_info(api: SlackApi, slack: FakeSlack, token: str) -> None:
    slack.add_user("U0ADA", "Ada Lovelace", "ada", "https://example.test/ada.png")
    user = await api.users_info(token, "U0ADA")
    assert user["profile"]["display_name"] == "ada"
    assert user["profile"]["image_72"] == "https://example.test/ada.png"
    with pytest.raises(PermanentError) as refused:
        await api.users_info(token, "U0NOBODY")
    assert refused.value.error == "user_not_found"
