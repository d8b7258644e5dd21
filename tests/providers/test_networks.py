"""A chat network is one folder (SPEC §19): a network the catalog gains is taken up by sync's
providers, catch-up and the importer without their code naming it. A made-up network is put
in the catalog here, in process, and each of them is asked what it does with it. The
sandbox has a stand-in for each network, and sync holds a network's own connection (as
Discord's Gateway) by the network's name."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest

from services.importer.schemas import ApiImportCreate
from services.importer.service import ImportService
from services.importer.sources import exports
from services.sandbox.app import Sandbox, credentials
from services.sandbox.teams import Channel as TeamsChannel
from services.sync.catchup import CatchUp
from services.sync.gateway import Gateways, Held
from shared.domain.integrations.model import IntegrationSnapshot
from shared.kernel.ownership import Ownership
from shared.kernel.settings import ImporterSettings, Settings
from shared.providers import catalog
from shared.providers.catalog import Entry, networks_importing, networks_with
from shared.providers.chat import Author, ChatProvider
from shared.providers.chats import chat_providers
from shared.providers.connections import Connections
from shared.providers.exports import ExportLimits, ExportReader
from shared.providers.history import Conversation, HistoryRecord
from shared.providers.networks import ApiImport, AppValues, ExportKind, Network, Source
from shared.providers.sockets import Connection, Dispatch, Observer, SessionState


class MadeUpChat:
    name = "madeup"


def refuse(path: Path, limits: ExportLimits) -> ExportReader:
    raise AssertionError("not read here")


class MadeUpSource:
    provider = "madeup"
    account = "acct"

    def __init__(self, job: ApiImport) -> None:
        self.job = job

    async def conversations(self) -> list[Conversation]:
        return [Conversation(id=c, name=c) for c in self.job.ids("channel_ids")]

    async def users(self) -> dict[str, Author]:
        return {}

    def size(self, conversation: Conversation) -> int:
        return 1

    async def records(
        self, conversation: Conversation, after: dict[str, Any] | None
    ) -> AsyncIterator[HistoryRecord]:
        none: list[HistoryRecord] = []
        for record in none:
            yield record

    def pace(self) -> dict[str, Any] | None:
        return None

    def left_out(self) -> tuple[list[dict[str, Any]], int]:
        return [], 0

    async def close(self) -> None:
        return None


class MadeUpNetwork(Network):
    name = "madeup"
    exports = {"madeup_export": ExportKind("madeup", refuse, "a made-up export")}
    import_params = ("guild_ids",)

    def chat(self, settings: Settings, client: httpx.AsyncClient, app: AppValues) -> ChatProvider:
        return cast(ChatProvider, MadeUpChat())

    async def api_source(
        self, chat: ChatProvider, connections: Connections, job: ApiImport
    ) -> Source:
        assert isinstance(chat, MadeUpChat)
        return MadeUpSource(job)


@pytest.fixture
def madeup(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = Entry(
        provider="madeup",
        name="Made Up",
        category="chat",
        capabilities=("sync", "history", "import"),
        network=MadeUpNetwork(),
        docs_url="https://example.com/madeup",
        setup=("Paste the bot's token here; hookhub's URL is {webhook_url}.",),
    )
    monkeypatch.setitem(catalog.CATALOG, "madeup", entry)
    assert entry.network is not None
    monkeypatch.setitem(catalog.NETWORKS, "madeup", entry.network)


INTEGRATION = IntegrationSnapshot(
    id="int_madeup",
    workspace_id="ws_1",
    provider="madeup",
    enabled=True,
    is_default=True,
    status="connected",
    account_id="acct",
    rate_limit_per_second=None,
)


class StubConnections:
    providers: Mapping[str, ChatProvider] = {"madeup": cast(ChatProvider, MadeUpChat())}

    async def integration(self, integration_id: str) -> IntegrationSnapshot:
        return INTEGRATION

    def connected(self, integration: IntegrationSnapshot) -> bool:
        return True


class StubJobs:
    def __init__(self) -> None:
        self.inserted: list[dict[str, Any]] = []

    async def insert(self, job: dict[str, Any]) -> None:
        self.inserted.append(job)


class StubMappings:
    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    async def integrations_mapped(self, providers: list[str]) -> list[str]:
        self.asked.append(list(providers))
        return []

    async def inbound_of(self, integration_id: str) -> list[dict[str, Any]]:
        return [{"_id": "map_1", "external_channel_id": "C1", "channel_id": "ch_1"}]


class Alone:
    async def others_alive(self, now: object) -> bool:
        return False


@pytest.mark.usefixtures("madeup")
def test_sync_makes_the_networks_providers() -> None:
    providers = chat_providers(Settings(), httpx.AsyncClient(), lambda _: _no_app())
    assert isinstance(providers["madeup"], MadeUpChat)
    assert {"slack", "discord", "telegram"} <= set(providers)


async def _no_app() -> Mapping[str, str]:
    return {}


@pytest.mark.usefixtures("madeup")
async def test_catch_up_reads_the_networks_with_a_history() -> None:
    mappings = StubMappings()
    catch_up = CatchUp(
        connections=cast(Connections, StubConnections()),
        repository=cast(Any, mappings),
        inbound=cast(Any, None),
        synced=cast(Any, None),
        metrics=cast(Any, None),
        max_messages=10,
    )
    await catch_up.at_start(cast(Ownership, Alone()))
    [asked] = mappings.asked
    # Those of the catalog that declare a history (more as networks are added), not others.
    assert {"discord", "madeup", "slack"} <= set(asked) and "telegram" not in asked
    assert sorted(asked) == sorted(networks_with("history"))


@pytest.mark.usefixtures("madeup")
async def test_the_importer_reads_the_networks_exports_and_api() -> None:
    assert exports()["madeup_export"].provider == "madeup"
    jobs, mappings = StubJobs(), StubMappings()
    service = ImportService(
        settings=ImporterSettings(),
        db=cast(Any, None),
        jobs=cast(Any, jobs),
        connections=cast(Connections, StubConnections()),
        mappings=cast(Any, mappings),
    )
    job = await service.create_api_import(
        "int_madeup", ApiImportCreate(channel_ids=["C1"], guild_ids=["G1"])
    )
    assert jobs.inserted == [job] and job["provider"] == "madeup"
    source, _, targets, skipped = await service.open_job(job)
    assert isinstance(source, MadeUpSource) and source.job.integration is INTEGRATION
    assert [(t.conversation.id, t.channel_id) for t in targets] == [("C1", "ch_1")]
    assert skipped == []


def test_an_import_without_a_history_reads_the_api_but_catch_up_does_not() -> None:
    """`import` with an API source (Google Chat, acting as a user) is an API import; with
    export files only (Telegram) it is not; neither is caught up, which reads `history`."""
    importing = networks_importing()
    assert "googlechat" in importing and "telegram" not in importing
    assert set(networks_with("history")) < set(importing)
    assert "googlechat" not in networks_with("history")
    assert catalog.NETWORKS["googlechat"].reads_api and not catalog.NETWORKS["telegram"].reads_api


def test_the_sandbox_stands_in_for_every_network(tmp_path: Path) -> None:
    sandbox = Sandbox(
        credentials(tmp_path), port=1, public_url="http://127.0.0.1", origin="http://127.0.0.1"
    )
    assert set(sandbox.chats) == set(catalog.NETWORKS)


class MadeUpGateway:
    messages = frozenset({"POSTED"})

    async def url(self, token: str) -> str:
        return "ws://madeup.invalid"

    def connect(
        self, token: str, state: SessionState, dispatch: Dispatch, observer: Observer
    ) -> Connection:
        raise AssertionError("not connected here")


def test_sync_holds_a_networks_own_connection_by_its_name() -> None:
    mappings = [
        SimpleNamespace(integration_id="int_madeup", provider="madeup", inbound=True),
        SimpleNamespace(integration_id="int_discord", provider="discord", inbound=True),
        SimpleNamespace(integration_id="int_outbound", provider="madeup", inbound=False),
    ]
    gateways = Gateways(
        network="madeup",
        gateway=MadeUpGateway(),
        store=cast(Any, None),
        connections=cast(Any, None),
        mappings=cast(Any, SimpleNamespace(all=lambda: mappings)),
        publish=cast(Any, None),
        catch_up=cast(Any, None),
        metrics=cast(Any, None),
        owner="test",
        poll_seconds=1.0,
    )
    assert gateways.wanted() == {"int_madeup"}
    batch = [("POSTED", {"id": "1"}, 1, False), ("TYPING", {"id": "2"}, 2, False)]
    events = gateways._events(Held("int_madeup"), "ws_1", batch)
    assert [(e.provider, e.event_type) for e in events] == [("madeup", "POSTED")]


def test_the_sandbox_lists_what_a_network_said_to_one_user_alone(tmp_path: Path) -> None:
    """`GET /sandbox/api/{network}/private`'s lists: what each stand-in keeps of what was
    said to one user alone, never among a channel's messages."""
    sandbox = Sandbox(
        credentials(tmp_path), port=1, public_url="http://127.0.0.1", origin="http://127.0.0.1"
    )
    sandbox.slack.ephemeral.append(
        {"channel": "C0GENERAL", "user": "U0ALICE", "text": "yours", "message_ts": "1.2"}
    )
    slack = sandbox.chats["slack"].private
    assert slack is not None and slack() == [
        {"user": "U0ALICE", "channel": "C0GENERAL", "text": "yours"}
    ]
    mattermost = sandbox.mattermost
    person = next(u for u in mattermost.users.values() if not u.is_bot)
    bot = next(u.id for u in mattermost.users.values() if u.is_bot)
    direct = mattermost.add_channel("dm1", "a__b", "", members=[person.id, bot])
    direct.type = "D"
    direct.posts["p1"] = {"message": "yours too"}
    listed = sandbox.chats["mattermost"].private
    assert listed is not None and listed() == [
        {"user": person.id, "channel": "dm1", "text": "yours too"}
    ]
    # Teams: the bot's one-on-one chat, its HTML (as hookhub posts it) as the reader sees it.
    personal = TeamsChannel("a:app-ada", "Ada Lovelace (personal)", personal="ada")
    personal.messages["m1"] = {
        "id": "m1",
        "text": 'Ada, link it at <a href="http://h/l/T">http&#58;//h/l/T</a> &#40;once&#41;.',
    }
    sandbox.teams.channels[personal.id] = personal
    teams = sandbox.chats["teams"].private
    assert teams is not None and teams() == [
        {"user": "ada", "channel": "", "text": "Ada, link it at http://h/l/T (once)."}
    ]
    assert sandbox.chats["matrix"].private is None  # no buttons, no clicks, nothing private
