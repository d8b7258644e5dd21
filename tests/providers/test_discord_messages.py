"""Discord as a chat provider, the parts that need no server: Gateway dispatches → message
changes (payloads shaped as Discord's documentation shows them), markup made readable, our
own messages recognised, the bot's permissions computed as Discord documents it, and the
outbound text and webhook username within Discord's rules."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.sandbox import discord as fake_discord
from services.sandbox.discord import FakeDiscord
from shared.kernel.http.tls import tls
from shared.providers.chat import (
    Attachment,
    Author,
    BotIdentity,
    ChannelInfo,
    ChatProvider,
    MessageChange,
    OutboundPost,
    PermanentError,
    SenderMarks,
)
from shared.providers.discord.api import DiscordApi
from shared.providers.discord.messages import (
    ADMINISTRATOR,
    MANAGE_WEBHOOKS,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    VIEW_CHANNEL,
    DiscordChat,
    content,
    permissions,
    reply_content,
    snowflake_time,
    webhook_username,
)

GUILD = "290926798999357249"
CHANNEL = "290926798999357250"
BOT = "8400000000000000001"
APP = "8400000000000000777"

# "Example Message" (docs: resources/message), with the fields the Gateway adds to a
# MESSAGE_CREATE in a guild (docs: events/gateway-events, "Message Create": guild_id, member).
EXAMPLE_MESSAGE: dict[str, Any] = {
    "reactions": [
        {
            "count": 1,
            "count_details": {"burst": 0, "normal": 1},
            "me": False,
            "me_burst": False,
            "emoji": {"id": None, "name": "🔥"},
            "burst_colors": [],
        }
    ],
    "attachments": [],
    "tts": False,
    "embeds": [],
    "timestamp": "2017-07-11T17:27:07.299000+00:00",
    "mention_everyone": False,
    "id": "334385199974967042",
    "pinned": False,
    "edited_timestamp": None,
    "author": {
        "username": "Mason",
        "discriminator": "9999",
        "id": "53908099506183680",
        "avatar": "a_bab14f271d565501444b2ca3be944b25",
    },
    "mention_roles": [],
    "content": "Supa Hot",
    "channel_id": CHANNEL,
    "mentions": [],
    "type": 0,
    "guild_id": GUILD,
    "member": {"roles": [], "joined_at": "2017-01-01T00:00:00.000000+00:00", "nick": None},
}
MASON = Author(
    name="Mason",
    avatar_url="https://cdn.discordapp.com/avatars/53908099506183680/a_bab14f271d565501444b2ca3be944b25.png",
    external_id="53908099506183680",
)
SENT_AT = datetime(2017, 7, 11, 17, 27, 7, 299000, tzinfo=UTC)
EXAMPLE_CHANGE = MessageChange(
    kind="created",
    external_channel_id=CHANNEL,
    external_message_id="334385199974967042",
    occurred_at=SENT_AT,
    text="Supa Hot",
    author=MASON,
    sender=SenderMarks(user_id="53908099506183680"),
)


def example(**changes: Any) -> MessageChange:
    """The change the documentation's example message makes, with `changes`."""
    return replace(EXAMPLE_CHANGE, **changes)


def message(**changes: Any) -> dict[str, Any]:
    payload = {**EXAMPLE_MESSAGE, **changes}
    return {k: v for k, v in payload.items() if v is not ...}


def provider() -> DiscordChat:
    return DiscordChat(DiscordApi(httpx.AsyncClient(verify=tls()), "http://127.0.0.1:9/api/v10"))


PROVIDER = provider()


def test_discord_chat_is_a_chat_provider() -> None:
    chat: ChatProvider = PROVIDER
    assert chat.name == "discord" and chat.pace_seconds(CHANNEL) == 0


@pytest.mark.parametrize(
    ("event_type", "payload", "expected"),
    [
        pytest.param(
            "MESSAGE_CREATE",
            message(),
            [example()],
            id="the documentation's example message",
        ),
        pytest.param(
            "MESSAGE_CREATE",
            message(
                member={"roles": [], "nick": "Mase"},
                author={**EXAMPLE_MESSAGE["author"], "global_name": "Mason G", "avatar": None},
            ),
            [
                example(
                    # The default avatar: (id >> 22) % 6.
                    author=Author(
                        "Mase",
                        f"https://cdn.discordapp.com/embed/avatars/{(53908099506183680 >> 22) % 6}.png",
                        "53908099506183680",
                    ),
                )
            ],
            id="the server nickname wins, no avatar is the default one",
        ),
        pytest.param(
            "MESSAGE_CREATE",
            message(
                type=19,
                content="agreed",
                author={**EXAMPLE_MESSAGE["author"], "global_name": "Mason G"},
                message_reference={
                    "type": 0,
                    "message_id": "334385199974967000",
                    "channel_id": CHANNEL,
                    "guild_id": GUILD,
                },
                referenced_message=None,
            ),
            [
                example(
                    text="agreed",
                    external_thread_id="334385199974967000",
                    author=Author("Mason G", MASON.avatar_url, MASON.external_id),
                    subtype="reply",
                )
            ],
            id="a reply names the message it answers",
        ),
        pytest.param(
            "MESSAGE_CREATE",
            message(
                flags=2,
                message_reference={
                    "type": 0,
                    "channel_id": "278325129692446722",
                    "guild_id": "278325129692446720",
                    "message_id": "306588351130107906",
                },
            ),
            [example()],
            id="a crosspost's reference is no reply (type 0)",
        ),
        pytest.param(
            "MESSAGE_CREATE",
            message(
                content="",
                attachments=[
                    {
                        "id": "1",
                        "filename": "plan.pdf",
                        "size": 1024,
                        "url": "https://cdn.discordapp.com/attachments/1/2/plan.pdf",
                        "proxy_url": "https://media.discordapp.net/attachments/1/2/plan.pdf",
                        "content_type": "application/pdf",
                    }
                ],
            ),
            [
                example(
                    attachments=(
                        Attachment(
                            "https://cdn.discordapp.com/attachments/1/2/plan.pdf",
                            "plan.pdf",
                            "application/pdf",
                        ),
                    ),
                    text="",
                )
            ],
            id="a file alone",
        ),
        pytest.param(
            "MESSAGE_CREATE",
            # The documentation's "Example Sticker" as a sticker item (docs: resources/sticker,
            # "Sticker Item Object"); a message's `sticker_items` (docs: resources/message).
            message(
                content="",
                sticker_items=[{"id": "749054660769218631", "name": "Wave", "format_type": 3}],
            ),
            [
                example(
                    text="[sticker: Wave]",
                    attachments=(
                        Attachment(
                            "https://cdn.discordapp.com/stickers/749054660769218631.json",
                            "Wave.json",
                        ),
                    ),
                )
            ],
            id="a sticker alone is named and linked",
        ),
        pytest.param(
            "MESSAGE_CREATE",
            message(
                webhook_id="9000",
                application_id="9100",
                author={"id": "9000", "username": "CI", "avatar": None, "bot": True},
            ),
            [
                example(
                    author=Author("CI", "https://cdn.discordapp.com/embed/avatars/0.png", "9000"),
                    sender=SenderMarks(user_id="9000", bot_id="9000", app_id="9100", is_bot=True),
                )
            ],
            id="another app's webhook is bridged like a person",
        ),
        pytest.param(
            "MESSAGE_UPDATE",
            message(content="Supa Hot!", edited_timestamp="2017-07-11T17:30:00.000000+00:00"),
            [
                example(
                    kind="edited",
                    occurred_at=datetime(2017, 7, 11, 17, 30, tzinfo=UTC),
                    text="Supa Hot!",
                )
            ],
            id="an edit",
        ),
        pytest.param(
            "MESSAGE_DELETE",
            {"id": "334385199974967042", "channel_id": CHANNEL, "guild_id": GUILD},
            ["deleted 334385199974967042"],
            id="a deletion",
        ),
        pytest.param(
            "MESSAGE_DELETE_BULK",
            {"ids": ["1", "2"], "channel_id": CHANNEL, "guild_id": GUILD},
            ["deleted 1", "deleted 2"],
            id="a bulk deletion",
        ),
        pytest.param("GUILD_CREATE", {"id": GUILD, "channel_id": CHANNEL}, [], id="not a message"),
        pytest.param("MESSAGE_CREATE", {"id": "1"}, [], id="no channel"),
    ],
)
def test_dispatches_become_changes(
    event_type: str, payload: dict[str, Any], expected: list[MessageChange | str]
) -> None:
    found = PROVIDER.changes(event_type, payload)
    if expected and isinstance(expected[0], str):
        assert [
            (f"{c.kind} {c.external_message_id}", c.external_channel_id, c.ignored) for c in found
        ] == [(e, CHANNEL, None) for e in expected]
        assert all(abs(c.occurred_at - datetime.now(UTC)) < timedelta(seconds=5) for c in found)
    else:
        assert found == expected


@pytest.mark.parametrize(
    ("format_type", "url"),
    [
        # docs: reference, "Image Formatting": PNG for PNG and APNG, Lottie for LOTTIE, and
        # "Sticker GIFs do not use the CDN base url" but media.discordapp.net.
        (1, "https://cdn.discordapp.com/stickers/749054660769218631.png"),
        (2, "https://cdn.discordapp.com/stickers/749054660769218631.png"),
        (3, "https://cdn.discordapp.com/stickers/749054660769218631.json"),
        (4, "https://media.discordapp.net/stickers/749054660769218631.gif"),
        (99, "https://cdn.discordapp.com/stickers/749054660769218631.png"),
    ],
)
def test_a_stickers_file_is_where_discord_documents_it(format_type: int, url: str) -> None:
    """Each sticker format's file (the documentation's example sticker in every format), the
    sticker named on the text's first line above what the message says."""
    item = {"id": "749054660769218631", "name": "Wave", "format_type": format_type}
    [change] = PROVIDER.changes("MESSAGE_CREATE", message(sticker_items=[item]))
    assert change.text == "[sticker: Wave]\nSupa Hot"
    assert change.attachments == (Attachment(url, f"Wave.{url.rsplit('.', 1)[-1]}"),)
    assert change.ignored is None


@pytest.mark.parametrize(
    ("event_type", "payload", "why"),
    [
        ("MESSAGE_CREATE", message(type=7, content=""), "user_join"),
        ("MESSAGE_CREATE", message(type=6, content=""), "channel_pinned_message"),
        ("MESSAGE_CREATE", message(type=18, content="plans"), "thread_created"),
        ("MESSAGE_CREATE", message(type=20), "chat_input_command"),
        ("MESSAGE_CREATE", message(type=99), "type_99"),
        ("MESSAGE_CREATE", message(guild_id=..., member=...), "direct message"),
        ("MESSAGE_DELETE", {"id": "1", "channel_id": CHANNEL}, "direct message"),
        ("MESSAGE_CREATE", message(content=""), "Message Content intent"),
        ("MESSAGE_UPDATE", message(content=...), "without content"),
        (
            "MESSAGE_UPDATE",
            {"id": "334385199974967042", "channel_id": CHANNEL, "guild_id": GUILD, "embeds": []},
            "without content",
        ),
        ("MESSAGE_UPDATE", message(content="Supa Hot", edited_timestamp=None), "no edit"),
    ],
)
def test_what_is_not_bridged_says_why(event_type: str, payload: dict[str, Any], why: str) -> None:
    [change] = PROVIDER.changes(event_type, payload)
    assert change.ignored is not None and why in (change.ignored + " " + str(change.subtype))


def test_a_message_without_a_timestamp_takes_its_snowflake_time() -> None:
    # The snowflake example of the documentation (docs: reference, "Snowflakes").
    assert snowflake_time("175928847299117063") == datetime(
        2016, 4, 30, 11, 18, 25, 796000, tzinfo=UTC
    )
    [change] = PROVIDER.changes("MESSAGE_CREATE", message(id="175928847299117063", timestamp=...))
    assert change.occurred_at == datetime(2016, 4, 30, 11, 18, 25, 796000, tzinfo=UTC)


def test_own_messages_are_recognised() -> None:
    chat = provider()
    me = BotIdentity(user_id=BOT, app_id=APP, name="hookhub")

    def sent(**marks: Any) -> MessageChange:
        return MessageChange(
            kind="created",
            external_channel_id=CHANNEL,
            external_message_id="1",
            occurred_at=SENT_AT,
            sender=SenderMarks(**marks),
        )

    assert chat.is_own(sent(user_id=BOT, is_bot=True), me)  # a reply, sent as the bot
    assert chat.is_own(sent(user_id="5", bot_id="5", app_id=APP, is_bot=True), me)
    assert not chat.is_own(sent(user_id="5", bot_id="5", is_bot=True), me)
    chat._own_webhooks.add("5")  # a webhook this process found or made
    assert chat.is_own(sent(user_id="5", bot_id="5", is_bot=True), me)
    assert not chat.is_own(sent(user_id="6", bot_id="6", app_id="other", is_bot=True), me)
    assert not chat.is_own(sent(user_id="53908099506183680"), me)
    assert not chat.is_own(sent(user_id=BOT), BotIdentity())


async def test_markup_is_made_readable() -> None:
    chat = provider()
    chat._channel_names["278325129692446722"] = "big-news"
    chat._role_names["41771983423143936"] = "WE DEM BOYZZ!!!!!!"
    asked: list[str] = []

    async def users(user_id: str) -> Author | None:
        asked.append(user_id)
        return Author("Ada") if user_id == "80351110224678912" else None

    text = (
        "<@80351110224678912> and <@!80351110224678912> met <@1> in "
        "<#278325129692446722> and <#5>, <@&41771983423143936> and <@&6> "
        "<:mmLol:216154654256398347><a:b1nzy:392938283556143104> "
        "at <t:1618953630:d> (<t:1618953630>) via </airhorn:816437322781949972> "
        "**bold** @everyone <not markup>"
    )
    assert await chat.render(text, users) == (
        "@Ada and @Ada met @1 in #big-news and #5, @WE DEM BOYZZ!!!!!! and @role "
        ":mmLol::b1nzy: at 2021-04-20T21:20:30Z (2021-04-20T21:20:30Z) via /airhorn "
        "**bold** @everyone <not markup>"
    )
    assert sorted(asked) == ["1", "80351110224678912"]  # each user looked up once


# -- permissions (docs: topics/permissions, "Permission Overwrites") ---------------------------

ROLE_BOT = "41771983423143936"
ROLE_MUTED = "41771983423143937"
BOT_MEMBER = {"user": {"id": BOT}, "roles": [ROLE_BOT], "nick": None}
NEEDED = VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY | MANAGE_WEBHOOKS
ALL = (1 << 64) - 1


def roles(everyone: int, bot: int, muted: int = 0) -> list[dict[str, Any]]:
    # Shaped as "Example Role": permissions are strings.
    return [
        {"id": GUILD, "name": "@everyone", "position": 0, "permissions": str(everyone)},
        {"id": ROLE_BOT, "name": "hookhub", "position": 1, "permissions": str(bot)},
        {"id": ROLE_MUTED, "name": "muted", "position": 2, "permissions": str(muted)},
    ]


def text_channel(*overwrites: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": CHANNEL,
        "guild_id": GUILD,
        "name": "general",
        "type": 0,
        "position": 6,
        "permission_overwrites": [
            {k: str(v) if k in ("allow", "deny") else v for k, v in o.items()} for o in overwrites
        ],
    }


NOW = datetime(2026, 1, 1, tzinfo=UTC)
EVERYONE = VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY


@pytest.mark.parametrize(
    ("guild_roles", "member", "channel", "granted"),
    [
        pytest.param(
            roles(EVERYONE, MANAGE_WEBHOOKS), BOT_MEMBER, text_channel(), NEEDED, id="base"
        ),
        pytest.param(
            roles(0, ADMINISTRATOR),
            BOT_MEMBER,
            text_channel({"id": ROLE_BOT, "type": 0, "allow": 0, "deny": NEEDED}),
            ALL,
            id="administrator ignores overwrites",
        ),
        pytest.param(
            roles(EVERYONE, MANAGE_WEBHOOKS),
            BOT_MEMBER,
            text_channel({"id": GUILD, "type": 0, "allow": 0, "deny": VIEW_CHANNEL}),
            NEEDED & ~VIEW_CHANNEL,
            id="@everyone denied",
        ),
        pytest.param(
            roles(EVERYONE, MANAGE_WEBHOOKS),
            BOT_MEMBER,
            text_channel(
                {"id": GUILD, "type": 0, "allow": 0, "deny": VIEW_CHANNEL},
                {"id": ROLE_BOT, "type": 0, "allow": VIEW_CHANNEL, "deny": 0},
            ),
            NEEDED,
            id="a role's allow beats @everyone's deny",
        ),
        pytest.param(
            roles(EVERYONE, MANAGE_WEBHOOKS),
            {**BOT_MEMBER, "roles": [ROLE_BOT, ROLE_MUTED]},
            text_channel(
                {"id": ROLE_MUTED, "type": 0, "allow": 0, "deny": SEND_MESSAGES},
                {"id": ROLE_BOT, "type": 0, "allow": SEND_MESSAGES, "deny": 0},
            ),
            NEEDED,
            id="between roles, allow wins whatever their order",
        ),
        pytest.param(
            roles(EVERYONE, MANAGE_WEBHOOKS),
            BOT_MEMBER,
            text_channel(
                {"id": ROLE_BOT, "type": 0, "allow": SEND_MESSAGES, "deny": 0},
                {"id": BOT, "type": 1, "allow": 0, "deny": SEND_MESSAGES | MANAGE_WEBHOOKS},
            ),
            VIEW_CHANNEL | READ_MESSAGE_HISTORY,
            id="the member's own overwrite comes last",
        ),
        pytest.param(
            roles(EVERYONE, MANAGE_WEBHOOKS),
            {**BOT_MEMBER, "communication_disabled_until": "2026-01-02T00:00:00+00:00"},
            text_channel(),
            VIEW_CHANNEL | READ_MESSAGE_HISTORY,
            id="timed out",
        ),
        pytest.param(
            roles(EVERYONE, MANAGE_WEBHOOKS),
            {**BOT_MEMBER, "communication_disabled_until": "2025-12-31T00:00:00+00:00"},
            text_channel(),
            NEEDED,
            id="a time-out that ended",
        ),
    ],
)
def test_permissions_are_computed_as_discord_documents(
    guild_roles: list[dict[str, Any]],
    member: dict[str, Any],
    channel: dict[str, Any],
    granted: int,
) -> None:
    got = permissions(GUILD, guild_roles, member, channel, NOW)
    if granted == ALL:
        assert got == ALL
    else:
        assert got & NEEDED == granted


# -- outbound text ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Ada Lovelace", "Ada Lovelace"),
        ("  Ada \n  Lovelace ", "Ada Lovelace"),
        ("", "unknown"),
        ("Discord Fan", "Disc\u043erd Fan"),
        ("CLYDE from DISCORD", "CL\u0423DE from DISC\u041eRD"),
        ("x" * 100, "x" * 79 + "…"),
    ],
)
def test_webhook_usernames_follow_discords_rules(name: str, expected: str) -> None:
    made = webhook_username(name)
    assert made == expected
    assert 1 <= len(made) <= 80
    assert "discord" not in made.lower() and "clyde" not in made.lower()


def test_content_fits_2000_characters_and_keeps_the_links() -> None:
    links = (Attachment("https://files.example/a.png", "a [1].png"), Attachment("s3://x"))
    post = OutboundPost(text="é" * 3000, author=Author("Ada"), attachments=links)
    made = content(post)
    assert len(made.encode("utf-16-le")) // 2 == 2000
    assert made.endswith("…\n[a \\[1\\].png](https://files.example/a.png)\ns3://x")
    short = OutboundPost(text="hi", author=Author("*Ada*"), attachments=links[:1])
    assert content(short) == "hi\n[a \\[1\\].png](https://files.example/a.png)"
    assert reply_content(short) == "**\\*Ada\\***\nhi\n[a \\[1\\].png](https://files.example/a.png)"
    long_reply = reply_content(OutboundPost(text="😀" * 1500, author=Author("Ada")))
    assert len(long_reply.encode("utf-16-le")) // 2 <= 2000
    assert long_reply.startswith("**Ada**\n😀") and long_reply.endswith("…")


# -- over the fake ---------------------------------------------------------------------------


@pytest.fixture
async def chat(discord: FakeDiscord) -> AsyncIterator[DiscordChat]:
    async with httpx.AsyncClient(verify=tls(), timeout=5.0) as client:
        yield DiscordChat(DiscordApi(client, discord.base_url + "/api/v10"))


_n = itertools.count(1)


def bot(fake: FakeDiscord) -> str:
    n = next(_n)
    token = f"bot-token-{n}.messages-test"
    fake.add_bot(token, str(6_000_000_000 + n), f"messages-test-{n}", str(6_100_000_000 + n))
    return token


def text_channel_of(fake: FakeDiscord, permissions: int = fake_discord.ALL) -> str:
    guild_id, channel_id = fake.snowflake(), fake.snowflake()
    fake.add_guild(guild_id, f"guild {guild_id}")
    fake.add_channel(channel_id, guild_id, f"chan-{channel_id[-4:]}", permissions=permissions)
    return channel_id


def as_dispatched(fake: FakeDiscord, message: dict[str, Any]) -> dict[str, Any]:
    return {**message, "guild_id": fake.channels[message["channel_id"]].guild_id}


ADA = Author("Ada Lovelace", "https://example.com/ada.png")


async def test_identity_names_the_bot_and_its_application(
    discord: FakeDiscord, chat: DiscordChat
) -> None:
    token = bot(discord)
    me = await chat.identity(token)
    found = discord.bots[token]
    assert me == BotIdentity(
        user_id=found.user_id, app_id=found.application_id, name=found.username
    )


async def test_a_channel_the_bot_can_bridge(discord: FakeDiscord, chat: DiscordChat) -> None:
    token, chan = bot(discord), text_channel_of(discord)
    info = await chat.channel(token, chan)
    assert info == ChannelInfo(chan, discord.channels[chan].name)


@pytest.mark.parametrize(
    ("permissions", "error", "named"),
    [
        (0, "missing_access", "cannot see"),
        (
            fake_discord.ALL & ~fake_discord.MANAGE_WEBHOOKS,
            "missing_permissions",
            "Manage Webhooks",
        ),
        (
            fake_discord.VIEW_CHANNEL | fake_discord.MANAGE_WEBHOOKS,
            "missing_permissions",
            "Send Messages, Read Message History in",
        ),
    ],
)
async def test_a_channel_the_bot_cannot_bridge_says_what_to_grant(
    discord: FakeDiscord, chat: DiscordChat, permissions: int, error: str, named: str
) -> None:
    token, chan = bot(discord), text_channel_of(discord, permissions)
    with pytest.raises(PermanentError) as caught:
        await chat.channel(token, chan)
    assert (caught.value.error, caught.value.scope) == (error, "channel")
    assert named in caught.value.message


async def test_posts_go_through_one_webhook_of_ours_as_the_author(
    discord: FakeDiscord, chat: DiscordChat
) -> None:
    token, chan = bot(discord), text_channel_of(discord)
    someone_elses = discord.add_webhook(chan, "not ours", application_id="999")
    first = await chat.post(token, chan, OutboundPost("hello @everyone", ADA))
    second = await chat.post(token, chan, OutboundPost("again", Author("Discord Clyde")))
    [ours] = [w for w in discord.channel_webhooks(chan) if w.id != someone_elses.id]
    assert ours.application_id == discord.bots[token].application_id and ours.name == "hookhub"
    made = discord.message(chan, first.external_message_id)
    assert made is not None and made["webhook_id"] == ours.id
    assert made["author"]["username"] == "Ada Lovelace" and made["content"] == "hello @everyone"
    assert made["mention_everyone"] is False  # allowed_mentions: nothing is parsed
    [one, two] = [r.json for r in discord.sent(fake_discord.EXECUTE_WEBHOOK)[-2:]]
    assert one == {
        "content": "hello @everyone",
        "username": "Ada Lovelace",
        "avatar_url": "https://example.com/ada.png",
        "allowed_mentions": {"parse": []},
    }
    assert two["username"] == "Disc\u043erd Cl\u0443de"
    assert second.external_thread_id is None
    # Our own echo is recognised, by the webhook and by the application.
    me = await chat.identity(token)
    [echo] = chat.changes("MESSAGE_CREATE", as_dispatched(discord, made))
    assert chat.is_own(echo, me) and provider().is_own(echo, me)


async def test_a_later_process_finds_our_webhook_again(
    discord: FakeDiscord, chat: DiscordChat
) -> None:
    token, chan = bot(discord), text_channel_of(discord)
    await chat.post(token, chan, OutboundPost("one", ADA))
    async with httpx.AsyncClient(verify=tls(), timeout=5.0) as client:
        later = DiscordChat(DiscordApi(client, discord.base_url + "/api/v10"))
        await later.post(token, chan, OutboundPost("two", ADA))
    assert len(discord.channel_webhooks(chan)) == 1
    assert [m["content"] for m in discord.messages(chan)] == ["one", "two"]


async def test_a_reply_goes_out_as_the_bot_with_the_author_in_bold(
    discord: FakeDiscord, chat: DiscordChat
) -> None:
    token, chan = bot(discord), text_channel_of(discord)
    root = await chat.post(token, chan, OutboundPost("root", ADA))
    reply = await chat.post(
        token,
        chan,
        OutboundPost("an answer", Author("Grace"), thread_external_id=root.external_message_id),
    )
    assert reply.external_thread_id == root.external_message_id
    made = discord.message(chan, reply.external_message_id)
    assert made is not None and made["type"] == 19 and "webhook_id" not in made
    assert made["content"] == "**Grace**\nan answer"
    assert discord.sent(fake_discord.CREATE_MESSAGE)[-1].json["message_reference"] == {
        "message_id": root.external_message_id,
        "fail_if_not_exists": False,
    }
    # A reply to a message that is gone still goes out.
    orphan = await chat.post(token, chan, OutboundPost("late", ADA, thread_external_id="1234"))
    assert discord.message(chan, orphan.external_message_id) is not None


async def test_edits_and_deletes_reach_webhook_posts_and_replies_alike(
    discord: FakeDiscord, chat: DiscordChat
) -> None:
    token, chan = bot(discord), text_channel_of(discord)
    post = await chat.post(token, chan, OutboundPost("v1", ADA))
    reply = await chat.post(
        token, chan, OutboundPost("r1", ADA, thread_external_id=post.external_message_id)
    )
    await chat.edit(token, chan, post.external_message_id, OutboundPost("v2", ADA))
    await chat.edit(token, chan, reply.external_message_id, OutboundPost("r2", ADA))
    assert discord.message(chan, post.external_message_id)["content"] == "v2"  # type: ignore[index]
    assert discord.message(chan, reply.external_message_id)["content"] == (  # type: ignore[index]
        "**Ada Lovelace**\nr2"
    )
    await chat.delete(token, chan, reply.external_message_id)
    await chat.delete(token, chan, post.external_message_id)
    assert discord.messages(chan) == []
    await chat.delete(token, chan, post.external_message_id)  # already gone: no failure
    with pytest.raises(PermanentError) as caught:
        await chat.edit(token, chan, post.external_message_id, OutboundPost("v3", ADA))
    assert (caught.value.error, caught.value.scope) == ("unknown_message", "message")


async def test_a_deleted_webhook_is_made_again_once(
    discord: FakeDiscord, chat: DiscordChat
) -> None:
    token, chan = bot(discord), text_channel_of(discord)
    first = await chat.post(token, chan, OutboundPost("one", ADA))
    [old] = discord.channel_webhooks(chan)
    del discord.webhooks[old.id]  # someone deleted it in the channel settings
    second = await chat.post(token, chan, OutboundPost("two", ADA))
    [new] = discord.channel_webhooks(chan)
    assert new.id != old.id
    assert discord.message(chan, second.external_message_id)["webhook_id"] == new.id  # type: ignore[index]
    # The first post's webhook is gone with its messages' editor: Discord says unknown.
    with pytest.raises(PermanentError):
        await chat.edit(token, chan, first.external_message_id, OutboundPost("x", ADA))


async def test_users_by_id(discord: FakeDiscord, chat: DiscordChat) -> None:
    token = bot(discord)
    discord.add_user("5551", "ada", global_name="Ada Lovelace", avatar="abc")
    discord.add_user("5552", "grace")
    assert await chat.user(token, "5551") == Author(
        "Ada Lovelace", "https://cdn.discordapp.com/avatars/5551/abc.png", "5551"
    )
    found = await chat.user(token, "5552")
    assert found is not None and found.name == "grace"
    assert found.avatar_url == f"https://cdn.discordapp.com/embed/avatars/{(5552 >> 22) % 6}.png"
    assert await chat.user(token, "5553") is None  # 10013 Unknown User
    assert discord.sent(fake_discord.GET_USER)[-1].path == "/users/5553"
    assert await chat.find_post(token, "1", "tag", datetime.now(UTC)) is None
