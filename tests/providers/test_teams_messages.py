"""Teams activities as message changes, end to end: the stand-in POSTs signed activities to a
messaging endpoint on loopback that verifies (the real PyJWT check against the stand-in's
keys), parses and reads them as sync would; outbound text defused so nothing a sender typed
becomes markup or a live @mention; our own activities recognised."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.sandbox.teams import DESIGN, GENERAL, USERS, Bot, FakeTeams
from shared.kernel.egress import EgressPolicy
from shared.kernel.http.tls import tls
from shared.providers.base import InboundRequest, SignatureInvalid
from shared.providers.chat import Attachment, Author, MessageChange, OutboundPost
from shared.providers.teams.api import TeamsApi
from shared.providers.teams.auth import BotFrameworkKeys
from shared.providers.teams.messages import TeamsChat, defuse, format_post
from shared.providers.teams.webhooks import TeamsWebhooks
from tests.support import serve

APP_ID = "2d3c4b5a-6f7e-4d8c-9b0a-1f2e3d4c5b6a"


class Endpoint:
    """The bot's messaging endpoint as the gateway and sync would run it."""

    def __init__(self, keys: BotFrameworkKeys, chat: TeamsChat) -> None:
        self.webhooks = TeamsWebhooks(keys)
        self.chat = chat
        self.changes: list[MessageChange] = []
        self.refused: list[str] = []

    def app(self) -> Starlette:
        async def messages(request: Request) -> Response:
            inbound = InboundRequest(
                headers={k.lower(): v for k, v in request.headers.items()},
                body=await request.body(),
                received_at=datetime.now(UTC),
                config={"app_id": APP_ID},
            )
            try:
                await self.webhooks.prepare(inbound)
                self.webhooks.verify(inbound, {}, inbound.received_at)
            except SignatureInvalid as exc:
                self.refused.append(exc.message)
                return JSONResponse({"error": exc.message}, 401)
            parsed = self.webhooks.parse(inbound)
            self.changes.extend(self.chat.changes(parsed.event_type, parsed.payload))
            return Response(status_code=parsed.reply.status)

        async def healthz(_: Request) -> JSONResponse:
            return JSONResponse({"ok": True})

        return Starlette(
            routes=[Route("/api/messages", messages, methods=["POST"]), Route("/healthz", healthz)]
        )


@pytest.fixture(scope="module")
async def wired(teams: FakeTeams) -> AsyncIterator[tuple[Bot, Endpoint]]:
    async with httpx.AsyncClient(verify=tls(), timeout=5.0) as client:
        keys = BotFrameworkKeys(client, teams.metadata_url)
        api = TeamsApi(client, EgressPolicy.from_setting("127.0.0.0/8"))
        endpoint = Endpoint(keys, TeamsChat(api, APP_ID))
        async with serve(endpoint.app(), probe="/healthz") as running:
            bot = teams.bots.get(APP_ID) or teams.add_bot(APP_ID, name="Hookhub Bot")
            bot.endpoint = f"{running.base_url}/api/messages"
            yield bot, endpoint


async def test_a_message_a_reply_an_edit_and_a_delete_become_changes(
    teams: FakeTeams, wired: tuple[Bot, Endpoint]
) -> None:
    bot, endpoint = wired
    endpoint.changes.clear()
    root, status = await teams.user_sends(bot, DESIGN, "ada", "the plan", mention_bot=True)
    assert status == 200
    reply, _ = await teams.user_sends(bot, DESIGN, "grace", "agreed", root=root["id"])
    await teams.user_edits(bot, DESIGN, reply["id"], "agreed, mostly")
    await teams.user_deletes(bot, DESIGN, reply["id"])
    created, answered, edited, deleted = endpoint.changes
    assert (created.kind, created.external_channel_id, created.external_message_id) == (
        "created",
        DESIGN,
        root["id"],
    )
    assert created.external_thread_id is None
    assert created.author == Author(name="Ada Lovelace", external_id=USERS["ada"]["id"])
    assert created.text == "<at>Hookhub Bot</at> the plan"
    assert await endpoint.chat.render(created.text, _no_users) == "@Hookhub Bot the plan"
    assert answered.external_thread_id == root["id"] and answered.kind == "created"
    assert answered.author is not None and answered.author.name == "Grace Hopper"
    assert (edited.kind, edited.external_message_id, edited.text) == (
        "edited",
        reply["id"],
        "agreed, mostly",
    )
    assert edited.external_thread_id == root["id"] and edited.subtype == "editMessage"
    assert (deleted.kind, deleted.external_message_id) == ("deleted", reply["id"])
    identity = await endpoint.chat.identity("")
    assert not any(endpoint.chat.is_own(change, identity) for change in endpoint.changes)
    # What the activities taught: the channel's serviceUrl is the stand-in's.
    assert endpoint.chat.service_url(DESIGN) == teams.service_url


async def test_a_forged_activity_is_refused_at_the_endpoint(
    teams: FakeTeams, wired: tuple[Bot, Endpoint]
) -> None:
    bot, endpoint = wired
    endpoint.changes.clear()
    activity = teams.activity(bot, "message", GENERAL, "alan", "1800000000001", text="hi")
    other = teams.token_for("0e0e0e0e-1111-4222-8333-444444444444")
    assert await teams.deliver(bot, activity, token=other) == 401
    assert endpoint.refused[-1] == "the bearer token is not for this bot (aud is not its app id)"
    assert endpoint.changes == []


def _activity(teams: FakeTeams, bot: Bot, **changes: Any) -> dict[str, Any]:
    made = teams.activity(bot, "message", GENERAL, "ada", "1900000000001", text="x")
    made.update(changes)
    return made


async def _no_users(_: str) -> Author | None:
    return None


async def test_our_own_activity_is_recognised(
    teams: FakeTeams, wired: tuple[Bot, Endpoint]
) -> None:
    bot, endpoint = wired
    own = _activity(teams, bot, **{"from": {"id": f"28:{APP_ID}", "name": "Hookhub Bot"}})
    [change] = endpoint.chat.changes("message", own)
    identity = await endpoint.chat.identity("")
    assert change.sender.is_bot and endpoint.chat.is_own(change, identity)
    other_bot = _activity(teams, bot, **{"from": {"id": "28:another-app", "role": "bot"}})
    [theirs] = endpoint.chat.changes("message", other_bot)
    assert theirs.sender.is_bot and not endpoint.chat.is_own(theirs, identity)


async def test_other_activities_are_no_changes(
    teams: FakeTeams, wired: tuple[Bot, Endpoint]
) -> None:
    bot, endpoint = wired
    chat = endpoint.chat
    undelete = _activity(teams, bot, type="messageUpdate")
    undelete["channelData"]["eventType"] = "undeleteMessage"
    assert chat.changes("messageUpdate", undelete) == []
    assert (
        chat.changes("conversationUpdate", _activity(teams, bot, type="conversationUpdate")) == []
    )
    assert chat.changes("message", _activity(teams, bot, type="messageReaction")) == []
    [empty] = chat.changes("message", _activity(teams, bot, text=""))
    assert empty.ignored is not None
    files = _activity(
        teams,
        bot,
        attachments=[
            {"contentType": "text/html", "content": "<div>x</div>"},
            {
                "contentType": "application/vnd.microsoft.teams.file.download.info",
                "contentUrl": "https://contoso.sharepoint.com/sites/x/report.pdf",
                "name": "report.pdf",
            },
        ],
    )
    [with_file] = chat.changes("message", files)
    assert with_file.attachments == (
        Attachment(
            url="https://contoso.sharepoint.com/sites/x/report.pdf",
            name="report.pdf",
            mime_type="application/vnd.microsoft.teams.file.download.info",
        ),
    )


HOSTILE = (
    '<at>Grace Hopper</at> look <a href="javascript:alert(1)">here</a> <script>x()</script>'
    " **bold** [link](https://evil.example) &amp; &lt;at&gt;\n<img src=x onerror=y>"
)


def test_hostile_text_is_defused() -> None:
    written = format_post(OutboundPost(text=HOSTILE, author=Author("<at>Eve</at> **x**")))
    tags = {t.split(">")[0] for t in written.split("<")[1:]}
    assert tags <= {"b", "/b", "br"}, tags  # only the markup hookhub writes itself
    for markup in ("<at>", "<a ", "<script", "<img", "**", "[link]", "](", "&amp;"):
        assert markup not in written, markup
    # What a reader sees is what was typed: decoding the references gives the text back.
    assert html.unescape(written.split("<br>", 1)[1].replace("<br>", "\n")) == HOSTILE


def test_links_of_attachments_are_quoted_and_long_text_is_cut() -> None:
    written = format_post(
        OutboundPost(
            text="x" * 100_000,
            author=Author("Ada"),
            attachments=(Attachment(url='https://h.example/a?b=1&c="2"', name="<b>n</b>"),),
        )
    )
    assert (
        '<a href="https://h.example/a?b=1&amp;c=&quot;2&quot;">&#60;b&#62;n&#60;/b&#62;</a>'
        in written
    )
    assert len(written.encode()) <= 24_000 and "…" in written
    assert defuse("a\r\nb\x00c\x85d\te", 100) == "a<br>bcd&#9;e"
    # Cut between pieces, never inside a reference, with room kept for the "…".
    assert defuse("<<<<", 10) == "&#60;…"
    assert defuse("ab\ncd", 9) == "ab<br>…"
    assert defuse("abcdef", 9) == "abcdef"


def test_the_service_url_is_learned_per_team_else_recalled_else_the_setting() -> None:
    """What a verified activity said for a channel's team (a channel of the same team
    heard of, or its General channel); else what sync keeps (`recall`); else the
    integration's setting; else the default. The change carries what was said, for sync
    to keep."""
    chat = TeamsChat(TeamsApi(httpx.AsyncClient(), EgressPolicy()), service_url="https://d/")
    kept = {"19:kept@thread.tacv2": "https://kept/"}
    chat.recall = kept.get
    setting = '{"app_id":"a","app_password":"p","service_url":"https://setting/"}'
    assert chat.service_url("19:kept@thread.tacv2", setting) == "https://kept/"
    assert chat.service_url("19:other@thread.tacv2", setting) == "https://setting/"
    assert chat.service_url("19:other@thread.tacv2") == "https://d/"

    team = "19:team@thread.tacv2"
    activity = {
        "type": "message",
        "id": "1",
        "text": "hi",
        "serviceUrl": "https://emea/",
        "conversation": {"id": "19:chan@thread.tacv2;messageid=1"},
        "channelData": {"channel": {"id": "19:chan@thread.tacv2"}, "team": {"id": team}},
    }
    [change] = chat.changes("message", activity)
    assert (change.service_url, change.external_team_id) == ("https://emea/", team)
    # Its channel and the team's General channel; another team's channel is not.
    assert chat.service_url("19:chan@thread.tacv2", setting) == "https://emea/"
    assert chat.service_url(team, setting) == "https://emea/"
    assert chat.service_url("19:other@thread.tacv2", setting) == "https://setting/"
