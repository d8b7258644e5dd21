"""Benchmark "sync-networks" (also run by `--only sync`, after Slack's tables): chat messages
posted to each chat network through one sync process, against a bare relay loop making the
same calls in the same run.

Per network of `NETWORKS`, the set-up: `python -m bench.networks standin --network N` on
loopback, a cheap HTTP/1.1 server in its own process (`bench.sink`'s connection, no
framework) answering the calls sync makes there the way the network answers them (its
identity, a channel's, a post) and counting each post whose text carries
`bench_seq=<n> sent_at=<unix seconds>`; an integration created through the oauth service
with the network's settings (which asks the stand-in who they make us; oauth is then
stopped); CHANNELS mappings created through sync's API (each checked with the network).

**Throughput** (`sync-<network>`): sync stopped, EVENTS `message.created` chat events (the
Slack table's, over CHANNELS channels) are published, then one sync process is started on
the backlog with `HOOKHUB_SYNC_PACE_FACTOR=0` (the network's per-channel pacing off, as in
Slack's table); timed by the stand-in from the first post to the one completing EVENTS.
Baseline: `bench.sync_baseline --network N` on the same events (a topic of its own): aiokafka
`getmany` → per batch, each channel's posts in order, all channels at once on sync's HTTP
client (`provider_client`: httpx on aiohttp's pool) with its 200 connections → commit, each
post the network's request as its API documents it (built by hand in `Network.outbound`:
no provider code, no mapping lookup beyond a string operation, no outbox, no message map,
no pacing).

A network's stand-in here is for measuring, not testing: it does not check tokens or
signatures (services/sandbox/ has each network's stand-in that does).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import html
import itertools
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import orjson

from bench.delivery import Sink, Window, publish_all
from bench.harness import (
    BenchError,
    BenchmarkResult,
    CpuWindow,
    Harness,
    Infrastructure,
    Measurement,
    Server,
    create_each,
    create_integration,
    ratio_note,
    wait_answering,
)
from bench.outbound import Outbound
from bench.sink import Connection, run_server
from bench.sink import Sink as Counter
from bench.sync import (
    MAPPINGS_IN_FLIGHT,
    TARGET_RATIO,
    TEXT,
    Sync,
    _assigned,
    _topic_like,
    floor_note,
    message_created,
    message_text,
)
from services.gateway.provider_webhooks.service import envelope_for
from shared.domain.integrations.model import IntegrationSnapshot
from shared.kernel.embedded import EMBEDDED_FETCH_MAX_WAIT_MS as FETCH_MAX_WAIT_MS
from shared.kernel.embedded import ChildProcess, free_port
from shared.kernel.envelopes import ChatEvent, Topic
from shared.kernel.ids import utcnow
from shared.providers import WEBHOOK_PROVIDERS
from shared.providers.base import InboundRequest

WORKSPACE = "ws_bench_networks"
CHANNELS = 200
EVENTS = 5_000
USERS = 20
_MARK = re.compile(rb"bench_seq=(\d+) sent_at=([0-9.]+)")
_SEQ = re.compile(rb"bench_seq=(\d+)")


def chat_channel(network: str, index: int) -> str:
    return f"ch_{network}{index:04d}"


def index_of(chat_channel_id: str) -> int:
    """What the baseline does for a mapping lookup: a string operation."""
    return int(chat_channel_id[-4:])


# -- a network's stand-in ------------------------------------------------------------------


@dataclass
class StandIn:
    """What every network's stand-in keeps: the counting sink, and ids to hand out."""

    network: Network
    counter: Counter = field(default_factory=Counter)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def posted(self, body: bytes) -> None:
        mark = _MARK.search(body)
        self.counter.record(
            b"" if mark is None else b'"bench_seq":%s,"sent_at":%s' % (mark[1], mark[2])
        )

    def respond(self, target: bytes, body: bytes) -> bytes:
        return self.network.answer(self, target.partition(b"?")[0], body)


def answer(document: Any, status: int = 200) -> bytes:
    body = orjson.dumps(document)
    reason = b"OK" if status == 200 else b"Error"
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    return head % (status, reason, len(body)) + body


@dataclass(frozen=True)
class Network:
    """One network as the benchmark drives it."""

    name: str
    # The services' environment for a stand-in at this URL.
    env: Callable[[str], dict[str, str]]
    # The integration's settings, with the stand-in at this URL.
    settings: Callable[[str], dict[str, str]]
    # The network's id of the benchmark's channel `index`.
    channel: Callable[[int], str]
    # The stand-in's answer to a request's path (lower case, no query) and body.
    answer: Callable[[StandIn, bytes, bytes], bytes]
    # The baseline's request, for a stand-in at this URL and the settings' token.
    outbound: Callable[[str, str], Outbound]
    token: str
    # A user's message in channel `index` as the network sends it to its webhook URL
    # (None: its events come over a connection of its own, not through the gateway).
    webhook: Callable[[int, int, str], bytes] | None = None
    # The path below the integration's webhook URL its webhooks come to (`{seq}`: the
    # message's number), where the network names its requests by it (Matrix's txnId).
    webhook_path: str = ""


# -- Telegram ------------------------------------------------------------------------------

TELEGRAM_TOKEN = "7000000001:bench-telegram-bot-token"  # noqa: S105 (the stand-in takes any)
_CHAT_ID = re.compile(rb'"chat_id":(-?\d+)')


def _telegram_channel(index: int) -> str:
    return str(-1_009_000_000_000 - index)


def _telegram_answer(standin: StandIn, path: bytes, body: bytes) -> bytes:
    method = path.rpartition(b"/")[2]
    found = _CHAT_ID.search(body)
    chat = {"id": int(found[1]) if found else 0, "type": "supergroup", "title": "bench"}
    if method == b"sendmessage":
        standin.posted(body)
        message = {"message_id": next(standin.ids), "date": int(time.time()), "chat": chat}
        return answer({"ok": True, "result": message})
    if method == b"getme":
        bot = {"id": 7000000001, "is_bot": True, "first_name": "hookhub", "username": "hh_bot"}
        return answer({"ok": True, "result": bot})
    if method in (b"setwebhook", b"deletewebhook"):
        return answer({"ok": True, "result": True})
    if method == b"getchat":
        return answer({"ok": True, "result": chat})
    return answer({"ok": False, "error_code": 404, "description": "Not Found"}, 404)


def _telegram_outbound(url: str, token: str) -> Outbound:
    """`sendMessage` as the Bot API documents it, the author in bold above the text."""

    def body(event: dict[str, Any]) -> bytes:
        data, actor = event["data"], event.get("actor") or {}
        name, said = (html.escape(t, quote=False) for t in (actor.get("name") or "", data["text"]))
        text = f"<b>{name}</b>\n{said}"
        chat_id = int(_telegram_channel(index_of(data["channel_id"])))
        return orjson.dumps({"chat_id": chat_id, "text": text, "parse_mode": "HTML"})

    post = f"{url}/bot{token}/sendMessage"
    return Outbound(
        url=lambda event: post,
        headers={"Content-Type": "application/json"},
        body=body,
        posted=lambda answered: bool(answered.get("ok")),
    )


def _telegram_webhook(index: int, seq: int, text: str) -> bytes:
    """An Update with a user's message in a supergroup, as the Bot API's Update and Message
    objects describe them (core.telegram.org/bots/api#update)."""
    chat = {"id": int(_telegram_channel(index)), "type": "supergroup", "title": "bench"}
    user = {"id": 5_000_000 + seq % USERS, "is_bot": False, "first_name": f"User {seq % USERS}"}
    message = {"message_id": seq + 1, "from": user, "chat": chat, "date": int(time.time())}
    return orjson.dumps({"update_id": seq + 1, "message": {**message, "text": text}})


TELEGRAM = Network(
    name="telegram",
    env=lambda url: {"HOOKHUB_TELEGRAM_API_BASE": url},
    settings=lambda url: {"bot_token": TELEGRAM_TOKEN},
    channel=_telegram_channel,
    answer=_telegram_answer,
    outbound=_telegram_outbound,
    token=TELEGRAM_TOKEN,
    webhook=_telegram_webhook,
)


# -- Google Chat ---------------------------------------------------------------------------

GOOGLECHAT_BEARER = "ya29.bench-access-token"
_SPACE = re.compile(rb"/v1/(spaces/[^/]+)")


def _googlechat_channel(index: int) -> str:
    return f"spaces/bench{index:04d}"  # lower case: the stand-in reads paths lower-cased


def _googlechat_answer(standin: StandIn, path: bytes, body: bytes) -> bytes:
    """The token endpoint (a service account's JWT grant), `spaces.get` and
    `spaces.messages.create`, answered as Chat's REST reference shows them."""
    if path.endswith(b"/token"):
        return answer(
            {"access_token": GOOGLECHAT_BEARER, "expires_in": 3599, "token_type": "Bearer"}
        )
    found = _SPACE.search(path)
    space = found[1].decode() if found else "spaces/unknown"
    if path.endswith(b"/messages"):
        standin.posted(body)
        n = next(standin.ids)
        return answer(
            {
                "name": f"{space}/messages/m{n}",
                "sender": {"name": "users/app", "type": "BOT"},
                "createTime": "2026-11-28T10:00:00.000000Z",
                "thread": {"name": f"{space}/threads/t{n}"},
                "space": {"name": space},
            }
        )
    if found:
        return answer({"name": space, "displayName": "bench", "spaceType": "SPACE"})
    return answer({"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}, 404)


def _googlechat_settings(url: str) -> dict[str, str]:
    from services.sandbox.googlechat import FakeGoogleChat

    return {"service_account_json": FakeGoogleChat(base_url=url).service_account_json()}


def _googlechat_outbound(url: str, token: str) -> Outbound:
    """`spaces.messages.create` with a custom message id, its request id the same (a retry
    is idempotent), the author in bold above the text, `markupSyntax` Chat's own."""

    def target(event: dict[str, Any]) -> str:
        data = event["data"]
        space = _googlechat_channel(index_of(data["channel_id"]))
        custom = "client-" + data["message_id"].lower().replace("_", "-")[:55]
        return f"{url}/v1/{space}/messages?requestId={custom}&messageId={custom}"

    def body(event: dict[str, Any]) -> bytes:
        data, actor = event["data"], event.get("actor") or {}
        text = f"*{actor.get('name') or ''}*\n{data['text']}"
        return orjson.dumps({"text": text, "markupSyntax": "MARKUP_SYNTAX_CHAT"})

    return Outbound(
        url=target,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        body=body,
        posted=lambda answered: bool(answered.get("name")),
    )


def _googlechat_webhook(index: int, seq: int, text: str) -> bytes:
    """A MESSAGE interaction event, as the sandbox's stand-in makes it (from Chat's Event
    reference)."""
    return orjson.dumps(_googlechat_events().event(_googlechat_channel(index), seq, text))


class _GoogleChatEvents:
    """The sandbox's Google Chat stand-in, with the benchmark's spaces and users, making
    the events (it keeps what it made: a benchmark's few thousand)."""

    def __init__(self) -> None:
        from services.sandbox.googlechat import FakeGoogleChat

        self.fake = FakeGoogleChat(base_url="http://127.0.0.1:9")
        for index in range(CHANNELS):
            self.fake.add_space(_googlechat_channel(index), f"bench {index}")
        self.users = sorted(self.fake.users)  # its three people

    def event(self, space: str, seq: int, text: str) -> dict[str, Any]:
        return self.fake.message_event(space, self.users[seq % len(self.users)], text)


@functools.cache
def _googlechat_events() -> _GoogleChatEvents:
    return _GoogleChatEvents()


GOOGLECHAT = Network(
    name="googlechat",
    env=lambda url: {
        "HOOKHUB_GOOGLECHAT_API_BASE": url,
        "HOOKHUB_GOOGLECHAT_TOKEN_URL": url + "/token",
    },
    settings=_googlechat_settings,
    channel=_googlechat_channel,
    answer=_googlechat_answer,
    outbound=_googlechat_outbound,
    token=GOOGLECHAT_BEARER,
    webhook=_googlechat_webhook,
)


# -- Mattermost ----------------------------------------------------------------------------

MATTERMOST_TOKEN = "benchmattermosttoken000000"  # noqa: S105 (26 characters, as Mattermost's)
MATTERMOST_BOT = "benchbotuser00000000000000"
_MM_CHANNEL = re.compile(rb"/api/v4/channels/([a-z0-9]+)")


def _mattermost_channel(index: int) -> str:
    return f"benchchannel{index:014d}"  # 26 characters of [a-z0-9], as Mattermost's ids


def _mattermost_answer(standin: StandIn, path: bytes, body: bytes) -> bytes:
    """`/users/me`, `/channels/{id}` and `POST /posts`, answered as the REST v4 reference
    shows them. No WebSocket: sync's connection for the network's events is refused and
    retried meanwhile (the events are not what this table measures)."""
    if path == b"/api/v4/posts":
        standin.posted(body)
        found = re.search(rb'"channel_id":"([a-z0-9]+)"', body)
        now = int(time.time() * 1000)
        return answer(
            {
                "id": f"benchpost{next(standin.ids):017d}",
                "create_at": now,
                "update_at": now,
                "user_id": MATTERMOST_BOT,
                "channel_id": found[1].decode() if found else "",
                "root_id": "",
                "message": "",
                "type": "",
                "props": {},
            },
            201,
        )
    if path == b"/api/v4/users/me":
        return answer({"id": MATTERMOST_BOT, "username": "hookhub", "is_bot": True})
    if path.endswith(b"/posts") or path.endswith(b"/channels"):
        # A channel's posts (catch-up reads them) and the bot's channels: none.
        return answer({"order": [], "posts": {}} if path.endswith(b"/posts") else [])
    found = _MM_CHANNEL.fullmatch(path)
    if found:
        channel = found[1].decode()
        return answer(
            {"id": channel, "name": channel, "display_name": "bench", "type": "O", "team_id": "t"}
        )
    return answer({"id": "api.context.404.app_error", "status_code": 404}, 404)


def _mattermost_outbound(url: str, token: str) -> Outbound:
    """`POST /api/v4/posts`, the author shown with `override_username`/`override_icon_url`."""

    def body(event: dict[str, Any]) -> bytes:
        data, actor = event["data"], event.get("actor") or {}
        props = {
            "override_username": actor.get("name") or "",
            "from_hookhub": "true",
            "hookhub_tag": data["message_id"],
        }
        if actor.get("avatar_url"):
            props["override_icon_url"] = actor["avatar_url"]
        channel = _mattermost_channel(index_of(data["channel_id"]))
        return orjson.dumps({"channel_id": channel, "message": data["text"], "props": props})

    post = f"{url}/api/v4/posts"
    return Outbound(
        url=lambda event: post,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        body=body,
        posted=lambda answered: bool(answered.get("id")),
    )


MATTERMOST = Network(
    name="mattermost",
    # The integration's server is the stand-in, on loopback: allow-listed for the egress
    # rules, as a private Mattermost server would be.
    env=lambda url: {"HOOKHUB_EGRESS_ALLOW_CIDRS": "127.0.0.0/8"},
    settings=lambda url: {"server_url": url, "bot_token": MATTERMOST_TOKEN},
    channel=_mattermost_channel,
    answer=_mattermost_answer,
    outbound=_mattermost_outbound,
    token=MATTERMOST_TOKEN,
)


# -- Microsoft Teams -----------------------------------------------------------------------

TEAMS_APP_ID = "3f6c9a1e-8b2d-4c7e-9f10-2a4b6c8d0e12"
TEAMS_BEARER = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.bench"
_TEAMS_USERS = ("ada", "grace", "alan")


def _teams_channel(index: int) -> str:
    return f"19:bench{index:04d}@thread.tacv2"


def _teams_answer(standin: StandIn, path: bytes, body: bytes) -> bytes:
    """The login's client-credentials token and the Connector's Send to Conversation,
    answered as the Bot Connector's REST reference shows them (a `ResourceResponse`)."""
    if path.endswith(b"/oauth2/v2.0/token"):
        return answer(
            {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
             "access_token": TEAMS_BEARER}
        )  # fmt: skip
    if path.endswith(b"/activities"):
        # hookhub writes every markup character of the text as a character reference
        # (`bench&#95;seq&#61;1`): read as Teams renders it.
        standin.posted(html.unescape(body.decode()).encode())
        return answer({"id": f"{1_700_000_000_000 + next(standin.ids)}"}, 201)
    return answer({"error": {"code": "BadArgument", "message": "not found"}}, 404)


def _teams_outbound(url: str, token: str) -> Outbound:
    """Send to Conversation, the author in bold on the first line, `textFormat` xml."""

    def target(event: dict[str, Any]) -> str:
        channel = _teams_channel(index_of(event["data"]["channel_id"]))
        return f"{url}/v3/conversations/{quote(channel, safe='')}/activities"

    def body(event: dict[str, Any]) -> bytes:
        data, actor = event["data"], event.get("actor") or {}
        name, said = (html.escape(t, quote=False) for t in (actor.get("name") or "", data["text"]))
        text = f"<b>{name}</b><br>{said}"
        return orjson.dumps({"type": "message", "textFormat": "xml", "text": text})

    return Outbound(
        url=target,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        body=body,
        posted=lambda answered: bool(answered.get("id")),
    )


def _teams_webhook(index: int, seq: int, text: str) -> bytes:
    """A channel message activity, as the sandbox's stand-in makes it (from msteams-docs'
    conversation-messages example)."""
    teams, bot = _teams()
    user = _TEAMS_USERS[seq % len(_TEAMS_USERS)]
    activity = teams.activity(bot, "message", _teams_channel(index), user, str(seq + 1), text=text)
    return orjson.dumps(activity)


@functools.cache
def _teams() -> tuple[Any, Any]:
    from services.sandbox.teams import FakeTeams

    teams = FakeTeams(base_url="http://127.0.0.1:9")
    return teams, teams.add_bot(TEAMS_APP_ID, "bench-password")


TEAMS = Network(
    name="teams",
    env=lambda url: {
        "HOOKHUB_TEAMS_LOGIN_BASE": url,
        "HOOKHUB_TEAMS_SERVICE_URL": url,
        # The stand-in's Connector is plain HTTP on loopback: allow-listed, as the
        # sandbox's is (Teams' own is https).
        "HOOKHUB_EGRESS_ALLOW_CIDRS": "127.0.0.0/8",
    },
    settings=lambda url: {
        "app_id": TEAMS_APP_ID,
        "app_password": "bench-password",
        "service_url": url,
    },
    channel=_teams_channel,
    answer=_teams_answer,
    outbound=_teams_outbound,
    token=TEAMS_BEARER,
    webhook=_teams_webhook,
)


# -- Matrix --------------------------------------------------------------------------------

MATRIX_AS_TOKEN = "as_bench_token_0000000000000000"  # noqa: S105 (the stand-in takes any)
MATRIX_SERVER = "bench.test"
_ROOM = re.compile(rb"/rooms/([^/]+)/")


def _matrix_channel(index: int) -> str:
    return f"!bench{index:04d}:{MATRIX_SERVER}"


def _matrix_answer(standin: StandIn, path: bytes, body: bytes) -> bytes:
    """What an appservice's posting asks of the Client-Server API, answered as the spec
    shows it: whoami, a puppet registered and named, joined to the room, the message sent
    as it (`PUT /rooms/{roomId}/send/m.room.message/{txnId}?user_id=`), the room's name."""
    if b"/send/m.room.message/" in path:
        standin.posted(body)
        return answer({"event_id": f"$bench{next(standin.ids)}"})
    if path.endswith(b"/account/whoami"):
        return answer({"user_id": f"@hookhub:{MATRIX_SERVER}"})
    if path.endswith(b"/register"):
        return answer({"user_id": f"@puppet:{MATRIX_SERVER}"})
    if path.endswith(b"/join"):
        found = _ROOM.search(path)
        return answer({"room_id": unquote(found[1].decode()) if found else ""})
    if b"/state/m.room.name" in path:
        return answer({"name": "bench"})
    if b"/messages" in path:
        return answer({"chunk": [], "start": "s0"})
    if b"/profile/" in path:
        return answer({})
    return answer({"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}, 404)


def _matrix_outbound(url: str, token: str) -> Outbound:
    """`m.room.message` `m.text` sent as the author's puppet, its text plain and escaped
    as HTML, the chat's message id as the txnId."""

    def target(event: dict[str, Any]) -> str:
        data = event["data"]
        room = quote(_matrix_channel(index_of(data["channel_id"])), safe="")
        puppet = quote(f"@_hookhub_bench:{MATRIX_SERVER}", safe="")
        txn = quote(data["message_id"], safe="")
        return f"{url}/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}?user_id={puppet}"

    def body(event: dict[str, Any]) -> bytes:
        text = event["data"]["text"]
        return orjson.dumps(
            {"msgtype": "m.text", "body": text, "format": "org.matrix.custom.html",
             "formatted_body": html.escape(text, quote=False), "m.mentions": {}}
        )  # fmt: skip

    return Outbound(
        url=target,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        body=body,
        posted=lambda answered: bool(answered.get("event_id")),
        method="PUT",
    )


def _matrix_webhook(index: int, seq: int, text: str) -> bytes:
    """A transaction of one `m.room.message` event (the Application Service API's PUT
    /transactions body; the event as the Client-Server API's room events show it)."""
    event = {
        "type": "m.room.message",
        "room_id": _matrix_channel(index),
        "sender": f"@user{seq % USERS}:{MATRIX_SERVER}",
        "event_id": f"$bench_in_{seq}",
        "origin_server_ts": int(time.time() * 1000),
        "content": {"msgtype": "m.text", "body": text},
        "unsigned": {"age": 12},
    }
    return orjson.dumps({"events": [event]})


MATRIX = Network(
    name="matrix",
    # The homeserver is the stand-in, on loopback: allow-listed for the egress rules.
    env=lambda url: {"HOOKHUB_EGRESS_ALLOW_CIDRS": "127.0.0.0/8"},
    settings=lambda url: {
        "homeserver_url": url,
        "as_token": MATRIX_AS_TOKEN,
        "hs_token": "hs_bench_token_0000000000000000",
    },
    channel=_matrix_channel,
    answer=_matrix_answer,
    outbound=_matrix_outbound,
    token=MATRIX_AS_TOKEN,
    webhook=_matrix_webhook,
    webhook_path="/_matrix/app/v1/transactions/{seq}",
)

NETWORKS: dict[str, Network] = {
    network.name: network for network in (TELEGRAM, GOOGLECHAT, MATTERMOST, TEAMS, MATRIX)
}


# -- the benchmark -------------------------------------------------------------------------


def chat_event(network: str, run: str, phase: str, seq: int) -> ChatEvent:
    return message_created(
        f"{network}_{run}_{phase}_{seq:07d}",
        WORKSPACE,
        chat_channel(network, seq % CHANNELS),
        message_text(seq, time.time()),
    )


class Networks:
    name = "sync-networks"
    title = "chat → each chat network through sync, beside a bare relay loop"
    # The networks run (`--network`, repeatable): every one of NETWORKS when empty.
    only: tuple[str, ...] = ()
    # Events per measurement (`--network-events`): a longer window than the default shows
    # whether a ratio holds as the backlog and the map grow.
    events: int = EVENTS

    def run(self, harness: Harness) -> list[BenchmarkResult]:
        chosen = [n for n in NETWORKS.values() if not self.only or n.name in self.only]
        return [result for n in chosen for result in self.network(harness, n)]

    def network(self, harness: Harness, network: Network) -> list[BenchmarkResult]:
        # Each network on a broker and MongoDB server of its own, stopped after it: on the
        # run's, the networks measured later ran on a broker and a server holding the
        # earlier ones' topics and databases (Matrix, last of five: 54 posts/s; alone right
        # after, 159).
        infrastructure = harness.new_infrastructure(network.name)
        try:
            return self._network(harness, network, infrastructure)
        finally:
            harness.stop_infrastructure(infrastructure)

    def _network(
        self, harness: Harness, network: Network, infrastructure: Infrastructure
    ) -> list[BenchmarkResult]:
        bootstrap = infrastructure.kafka_bootstrap
        topic = f"{infrastructure.topic_namespace}.{Topic.CHAT_EVENTS}"
        standin = start_standin(harness, network.name)
        env = network.env(standin.url)
        unpaced = {**env, "HOOKHUB_SYNC_PACE_FACTOR": "0"}
        oauth = harness.start_service("oauth", env=env, infrastructure=infrastructure)
        integration_id = create_integration(
            oauth.url,
            infrastructure.admin_token,
            network.name,
            WORKSPACE,
            network.settings(standin.url),
        )
        oauth.stop()
        sync = harness.start_service("sync", env=unpaced, infrastructure=infrastructure)
        setup_started = time.perf_counter()
        bodies = [
            {"external_channel_id": network.channel(i), "channel_id": chat_channel(network.name, i)}
            for i in range(CHANNELS)
        ]
        path = f"/api/integrations/{integration_id}/mappings"
        asyncio.run(
            create_each(sync.url, infrastructure.admin_token, path, bodies, MAPPINGS_IN_FLIGHT)
        )
        mappings_in = time.perf_counter() - setup_started
        standin.reset(expect=1)
        check = [chat_event(network.name, harness.run_id, "check", 0)]
        asyncio.run(publish_all(bootstrap, topic, check))
        if not standin.wait_until("complete", time.monotonic() + 60, sync.child.alive):
            raise BenchError(
                f"a first message did not reach the {network.name} stand-in: {standin.stats()}"
            )
        sync.stop()

        # -- ours: a backlog, one sync process started on it ----------------------------------
        events = [chat_event(network.name, harness.run_id, "burst", s) for s in range(self.events)]
        published_in = asyncio.run(publish_all(bootstrap, topic, events))
        standin.reset(expect=self.events)
        sync = harness.start_service("sync", env=unpaced, wait=False, infrastructure=infrastructure)
        window = Window.around(
            standin,
            sync,
            infrastructure,
            timeout=max(180.0, self.events / 50),
            sink_name=network.name,
        )
        window.start()
        window.join()
        if not sync.child.alive():
            raise BenchError(f"the sync service exited; its log: {sync.child.log_path}")
        ours = window.measurement("hookhub sync", from_seq=0)
        harness.wait_ready(sync)
        sync.stop()

        # -- the baseline, the bare relay loop, and the floor, the loop keeping a message map,
        # each on the same events on a topic of its own
        def loop(floor: bool) -> Measurement:
            name = f"{'floor' if floor else 'baseline'}-{network.name}"
            loop_topic = asyncio.run(_topic_like(bootstrap, topic, name))
            asyncio.run(publish_all(bootstrap, loop_topic, events))
            standin.reset(expect=self.events)
            measured, _ = Sync().baseline(
                harness,
                standin,
                loop_topic,
                standin.url,
                self.events,
                from_seq=0,
                network=network.name,
                token=network.token,
                sink_name=network.name,
                infrastructure=infrastructure,
                floor=floor,
            )
            return measured

        base, floor = loop(floor=False), loop(floor=True)
        results = [self._outbound_result(network, ours, base, floor, published_in, mappings_in)]
        if network.webhook is not None:
            results.append(self.inbound(harness, infrastructure, network, integration_id, env))
        standin.child.stop()
        return results

    def _outbound_result(
        self,
        network: Network,
        ours: Measurement,
        base: Measurement,
        floor: Measurement,
        published_in: float,
        mappings_in: float,
    ) -> BenchmarkResult:
        return BenchmarkResult(
            f"sync-{network.name}",
            f"chat messages posted to {network.name} by one sync process",
            ours,
            base,
            notes=[
                f"{self.events:,} message.created events over {CHANNELS} mapped channels, "
                f"published in {published_in:.2f} s before the sync process was started; "
                f"HOOKHUB_SYNC_PACE_FACTOR=0; the {CHANNELS} mappings were created through "
                f"the API in {mappings_in:.1f} s",
                f"baseline: bench.sync_baseline --network {network.name}, aiokafka getmany "
                "(500 records) → per batch, each channel's posts in order, all channels at "
                "once on sync's HTTP client with 200 connections → commit; each post the "
                "network's documented request, built by hand",
                ratio_note(ours, base, TARGET_RATIO),
                floor_note(ours, floor, base),
            ],
            setup=f"{self.events:,} pre-published events, first → last post at the stand-in",
            unit="posts/s",
            minimal=floor,
        )

    def inbound(
        self,
        harness: Harness,
        infrastructure: Infrastructure,
        network: Network,
        integration_id: str,
        env: dict[str, str],
    ) -> BenchmarkResult:
        """The network's users' messages, as the gateway publishes them once verified, a
        backlog on `hookhub.provider.events` read by one sync process started on it, to
        `message.received` on `hookhub.chat.inbound`; beside a bare consumer → producer relay
        of the same envelopes."""
        assert network.webhook is not None
        bootstrap = infrastructure.kafka_bootstrap
        namespace = infrastructure.topic_namespace
        source = f"{namespace}.{Topic.PROVIDER_EVENTS}"
        inbound = f"{namespace}.{Topic.CHAT_INBOUND}"
        integration = IntegrationSnapshot(
            id=integration_id,
            workspace_id=WORKSPACE,
            provider=network.name,
            enabled=True,
            is_default=False,
            status="connected",
            account_id=None,
            rate_limit_per_second=None,
        )
        webhooks = WEBHOOK_PROVIDERS[network.name]
        envelopes = []
        for seq in range(self.events):
            text = f"bench_seq={seq} sent_at={time.time():.6f} {TEXT}"
            body = network.webhook(seq % CHANNELS, seq, text)
            url = f"https://hookhub.bench/api/webhooks/{network.name}/{integration_id}"
            request = InboundRequest(
                headers={},
                body=body,
                received_at=utcnow(),
                url=url + network.webhook_path.format(seq=seq),
            )
            envelopes.append(envelope_for(integration, webhooks.parse(request), request))
        asyncio.run(publish_all(bootstrap, source, envelopes))

        started: list[Server] = []

        def start_sync() -> ChildProcess:
            started.append(
                harness.start_service("sync", env=env, wait=False, infrastructure=infrastructure)
            )
            child: ChildProcess = started[-1].child
            return child

        ours = asyncio.run(
            read_arrivals(
                bootstrap, inbound, self.events, start_sync, "hookhub sync", infrastructure
            )
        )
        for service in started:
            service.stop()

        relay_source = asyncio.run(_topic_like(bootstrap, source, f"relay-{network.name}"))
        relay_target = asyncio.run(_topic_like(bootstrap, inbound, f"relay-{network.name}"))
        asyncio.run(publish_all(bootstrap, relay_source, envelopes))

        relays: list[ChildProcess] = []

        def start_relay() -> ChildProcess:
            argv = [sys.executable, "-m", "bench.networks", "relay", "--network", network.name]
            argv += ["--bootstrap", bootstrap, "--source", relay_source]
            argv += ["--target", relay_target, "--count", str(self.events)]
            relays.append(harness.start_process(f"{network.name}-relay", argv))
            return relays[-1]

        base = asyncio.run(
            read_arrivals(
                bootstrap,
                relay_target,
                self.events,
                start_relay,
                "baseline (relay)",
                infrastructure,
            )
        )
        for child in relays:
            child.stop()
        return BenchmarkResult(
            f"sync-{network.name}-inbound",
            f"{network.name} users' messages → hookhub.chat.inbound by one sync process",
            ours,
            base,
            notes=[
                f"{self.events:,} messages of {USERS} users over {CHANNELS} mapped channels, as "
                "the gateway publishes them once verified (the network's webhook body, "
                "parsed by its own `parse`), published to hookhub.provider.events before "
                "the sync process was started; timed by a consumer in the harness from the "
                "first message.received read to the last",
                "baseline: python -m bench.networks relay, aiokafka getmany → each record "
                "decoded (orjson) and its payload produced (acks=all) to another topic → "
                "commit, read the same way: no validation, no mapping, no message map",
                ratio_note(ours, base, TARGET_RATIO),
            ],
            setup=f"{self.events:,} pre-published provider events, first → last read",
            unit="messages/s",
        )


BENCHMARK = Networks()


async def read_arrivals(
    bootstrap: str,
    topic: str,
    count: int,
    start: Callable[[], ChildProcess],
    label: str,
    infrastructure: Infrastructure,
) -> Measurement:
    """Reads `topic` from its end as it is once the reader has it, starts what writes to it,
    and notes when each `bench_seq` was first read, until `count` were or a minute passed
    without one."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, fetch_max_wait_ms=FETCH_MAX_WAIT_MS
    )
    await consumer.start()
    read: dict[int, float] = {}
    try:
        await _assigned(consumer)
        child = await asyncio.to_thread(start)
        pids = {"writer": child.process.pid, **infrastructure.pids()}
        with CpuWindow(pids) as cpu:
            quiet_since = time.monotonic()
            while len(read) < count and time.monotonic() - quiet_since < 60:
                batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
                now = time.time()
                for records in batches.values():
                    for record in records:
                        found = _SEQ.search(record.value or b"")
                        if found is not None:
                            read.setdefault(int(found[1]), now)
                            quiet_since = time.monotonic()
                if not child.alive():
                    break
    finally:
        await consumer.stop()
    window = max(read.values()) - min(read.values()) if len(read) > 1 else 0.0
    missing = count - len(read)
    measured = Measurement(
        label=label,
        rps=round(len(read) / window, 1) if window > 0 else 0.0,
        p50_ms=None,
        p90_ms=None,
        p99_ms=None,
        max_ms=None,
        ok=len(read),
        errors=missing,
        error_kinds={"missing": missing} if missing else {},
        window_s=round(window, 3),
        cpu_cores={},
    )
    cpu.apply(measured)
    return measured


def _relayed(value: bytes) -> bytes:
    """What the relay makes of an envelope: its payload, decoded and encoded again (as the
    Discord benchmark's baseline produces each dispatch's `d`)."""
    return orjson.dumps(orjson.loads(value)["payload"])


async def relay(bootstrap: str, source: str, target: str, count: int) -> None:
    """The inbound baseline: each record of `source` decoded, and its payload produced to
    `target`."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=f"{source}.relay",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await consumer.start()
    await producer.start()
    relayed = 0
    try:
        while relayed < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            futures = [
                await producer.send(target, _relayed(record.value), key=record.key)
                for records in batches.values()
                for record in records
            ]
            await asyncio.gather(*futures)
            relayed += len(futures)
            if futures:
                await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()


def start_standin(harness: Harness, network: str) -> Sink:
    """The network's stand-in as a process of the run, once it answers its ready probe."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.networks", "standin", "--network", network]
    child = harness.start_process(f"{network}-standin", [*argv, "--port", str(port)])
    standin = Sink(f"http://127.0.0.1:{port}", child)
    wait_answering(child, standin.url + "/_bench/ready", f"{network}-standin")
    return standin


# -- the stand-in's process ------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.networks", description=__doc__)
    parser.add_argument("part", choices=("standin", "relay"))
    parser.add_argument("--network", required=True, choices=sorted(NETWORKS))
    parser.add_argument("--bootstrap")
    parser.add_argument("--source")
    parser.add_argument("--target")
    parser.add_argument("--count", type=int)
    args, rest = parser.parse_known_args(argv)
    if args.part == "relay":
        import uvloop

        uvloop.run(relay(args.bootstrap, args.source, args.target, args.count))
        return 0
    standin = StandIn(NETWORKS[args.network])

    async def serve(host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: Connection(standin.counter, standin.respond), host, port, backlog=1024
        )
        async with server:
            await server.serve_forever()

    return run_server(serve, "python -m bench.networks standin", __doc__, rest)


if __name__ == "__main__":
    sys.exit(main())
