"""The reply to an unlinked user's click (SPEC §20, docs/acting.md "Links by consent"): a
chat user's is theirs alone (`visible_to`, an `eph_` id); a network's user's is said by
their network to them alone (`PrivateReplies`) and, for a provider linked by consent, both
carry their ticket. Where the network will not say it privately, the thread is told how an
admin starts it, with no ticket (the one issued is dropped); a round taken again does not
say it twice. A user's own token answered 401 is refreshed once and the action tried again; refused again, the link is broken and
they are asked to link again, privately too."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import httpx
from cryptography.fernet import Fernet
from prometheus_client import CollectorRegistry

from services.sync.actions.metrics import ActionMetrics
from services.sync.clicks.repository import Click, Via
from services.sync.clicks.worker import ClickWorker, _Ready, _Round
from shared.domain.account_links import AccountLink
from shared.domain.message_map import Copy
from shared.domain.oauth.tokens import NotConnected
from shared.kernel.crypto import SecretBox
from shared.providers.acting import Credentials, Link, LinkRejected, Offered, Outcome
from shared.providers.actors import ACTORS
from shared.providers.chat import PrivateReply
from shared.providers.notify import CardAction

TICKET = "T" * 43
BOX = SecretBox([Fernet.generate_key().decode()])


class _Links:
    def __init__(self) -> None:
        self.issued: list[tuple[str, str, str, str | None]] = []
        self.dropped: list[str] = []
        self.broken: list[tuple[str, str]] = []

    async def issue_ticket(
        self, workspace_id: str, provider: str, chat_user_id: str, name: str | None = None
    ) -> str:
        self.issued.append((workspace_id, provider, chat_user_id, name))
        return TICKET

    async def drop_ticket(self, ticket: str) -> None:
        self.dropped.append(ticket)

    async def mark_broken(self, link_id: str, reason: str) -> None:
        self.broken.append((link_id, reason))


@dataclass
class _Network:
    """A network's private replies: what it was asked, and what it answers."""

    answer: bool | Exception = True
    asked: list[tuple[str, PrivateReply]] = field(default_factory=list)

    async def reply_privately(self, token: str, reply: PrivateReply) -> bool:
        self.asked.append((token, reply))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class _Connections:
    def __init__(self, network: _Network | None = None) -> None:
        self.providers: dict[str, Any] = {"slack": network} if network is not None else {}

    async def integration(self, integration_id: str) -> Any:
        return SimpleNamespace(id=integration_id, provider="github", config={}, secrets={})

    async def call(self, integration_id: str, action: Callable[[str], Awaitable[Any]]) -> Any:
        return await action("xoxb-" + integration_id)


class _Tokens:
    """The link token keeper: `fresh` is what a refresh gives (an exception: refused)."""

    def __init__(self, token: str, fresh: str | Exception) -> None:
        self.token, self.fresh = token, fresh
        self.asked: list[str | None] = []

    async def access_token(self, link_id: str, *, rejected: str | None = None) -> str:
        self.asked.append(rejected)
        if rejected is None:
            return self.token
        if isinstance(self.fresh, Exception):
            raise self.fresh
        return self.fresh


def _worker(
    links: _Links,
    connections: _Connections | None = None,
    tokens: _Tokens | None = None,
) -> tuple[ClickWorker, ActionMetrics]:
    """The worker with what asking to link and acting use."""
    unused = cast(Any, None)
    metrics = ActionMetrics(CollectorRegistry())
    worker = ClickWorker(
        clicks=unused,
        message_map=unused,
        links=cast(Any, links),
        connections=cast(Any, connections or _Connections()),
        client=cast(Any, httpx.AsyncClient()),
        publisher=unused,
        audit=cast(Any, SimpleNamespace(record=lambda entry: None)),
        settings=cast(Any, SimpleNamespace(public_url="https://hookhub.example/")),
        owner="own_1",
        metrics=metrics,
        user_tokens=cast(Any, tokens),
        box=BOX,
    )
    return worker, metrics


def _click(actor: str, via: Via | None = None, network: str | None = None) -> Click:
    return Click(
        id="clk_1",
        workspace_id="ws_1",
        channel_id="ch_1",
        message_id="m_root",
        action_id="close",
        actor_id=actor,
        actor_name="Ada Lovelace",
        attempts=1,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        network=via.provider if via is not None else network,
        via=via,
    )


SLACK = Via(
    provider="slack",
    integration_id="int_slack",
    external_channel_id="C0GENERAL",
    external_message_id="1700000000.000100",
    user_id="U024BE7LH",
    reply=BOX.encrypt(json.dumps({"response_url": "https://hooks.slack.example/1"})),
)

ROOT = Copy.new(
    workspace_id="ws_1",
    channel_id="ch_1",
    provider="github",
    integration_id="int_1",
    mapping_id=None,
    external_channel_id="octocat/hello-world",
    external_message_id="d1",
    origin="notification",
    inbound_id="m_root",
)


async def _asked(
    worker: ClickWorker, click: Click, provider: str, *, again: bool = False
) -> tuple[list[dict[str, Any]], _Round]:
    """The click asked to link: the replies published (the private asks said first)."""
    done = _Round()
    await worker._ask_to_link(click, ROOT, provider, ACTORS[provider], done, again=again)
    [settled] = done.settled
    assert settled.status == "waiting_link"
    # As the round's writes do: the private asks said, the others' thread replies kept.
    said = [await worker._say_privately(ask) for ask in done.private]
    done.replies += [a.public for a, alone in zip(done.private, said, strict=True) if not alone]
    return [json.loads(reply.value) for reply in done.replies], done


def _counted(metrics: ActionMetrics, provider: str, clicked_in: str, said: str) -> float:
    return float(metrics.link_asks.labels(provider, clicked_in, said)._value.get())


async def test_a_chat_user_is_asked_alone_with_their_ticket() -> None:
    links = _Links()
    worker, metrics = _worker(links)
    [said], _ = await _asked(worker, _click("u_ada"), "github")
    assert said["visible_to"] == "u_ada" and said["id"].startswith("eph_")
    assert said["thread_id"] == "m_root"
    assert "https://hookhub.example/api/auth/oauth/link/" + TICKET in said["text"]
    assert links.issued == [("ws_1", "github", "u_ada", "Ada Lovelace")]
    assert _counted(metrics, "github", "chat", "private") == 1
    # A provider linked by a mapping names no secret, and is said to them alone too.
    none = _Links()
    [mapped], _ = await _asked(_worker(none)[0], _click("u_ada"), "pagerduty")
    assert mapped["visible_to"] == "u_ada" and none.issued == []
    assert "PUT /api/account-links/pagerduty/u_ada" in mapped["text"]


async def test_a_network_user_is_told_by_their_network_alone_with_their_ticket() -> None:
    links, network = _Links(), _Network()
    worker, metrics = _worker(links, _Connections(network))
    published, _ = await _asked(worker, _click("slack:U024BE7LH", SLACK), "github")
    assert published == []  # nothing in the thread
    [(token, reply)] = network.asked
    assert token == "xoxb-int_slack"  # the network's own integration's token
    assert (reply.external_channel_id, reply.user_id) == ("C0GENERAL", "U024BE7LH")
    # What the interaction gave to answer them, opened; the text CommonMark, the ticket a
    # link of it.
    assert reply.reply == {"response_url": "https://hooks.slack.example/1"}
    url = "https://hookhub.example/api/auth/oauth/link/" + TICKET
    assert f"(<{url}>)" in reply.text and "only you see this" in reply.text
    assert links.issued == [("ws_1", "github", "slack:U024BE7LH", "Ada Lovelace")]
    assert links.dropped == []
    assert _counted(metrics, "github", "slack", "private") == 1


async def test_where_the_network_will_not_say_it_privately_the_thread_is_told_no_secret() -> None:
    for answer in (False, RuntimeError("Slack is away")):
        links, network = _Links(), _Network(answer)
        worker, metrics = _worker(links, _Connections(network))
        [said], _ = await _asked(worker, _click("slack:U024BE7LH", SLACK), "github")
        assert "visible_to" not in said and said["id"].startswith("ntf_")
        assert "/link/" not in said["text"] and links.dropped == [TICKET]
        assert (
            "`slack:U024BE7LH`" in said["text"]
            and "POST /api/account-links/github/connect" in said["text"]
        )
        assert _counted(metrics, "github", "slack", "public") == 1
    # A network with no private replies at all (or a click of before, without what its
    # network gave): no ticket is made.
    links = _Links()
    [said], _ = await _asked(
        _worker(links)[0], _click("slack:U024BE7LH", network="slack"), "github"
    )
    assert links.issued == [] and "/link/" not in said["text"]


async def test_asked_again_when_the_link_stopped_working() -> None:
    links, network = _Links(), _Network()
    worker, _ = _worker(links, _Connections(network))
    await _asked(worker, _click("slack:U024BE7LH", SLACK), "github", again=True)
    [(_, reply)] = network.asked
    assert "GitHub no longer takes the GitHub account you linked: link it again at" in (reply.text)
    [said], _ = await _asked(_worker(_Links())[0], _click("u_ada"), "github", again=True)
    assert said["visible_to"] == "u_ada" and "link it again at https://" in said["text"]


async def test_a_round_taken_again_says_its_private_ask_once() -> None:
    """A round whose last writes failed is taken again and asks again: the network is not
    asked twice (the ticket the second try made is dropped, the first one's handed over);
    the ask after a link stopped working is another ask, said."""
    links, network = _Links(), _Network()
    worker, metrics = _worker(links, _Connections(network))
    click = _click("slack:U024BE7LH", SLACK)
    for _ in range(2):
        published, _ = await _asked(worker, click, "github")
        assert published == []
    [(_, first)] = network.asked
    assert len(links.issued) == 2 and links.dropped == [TICKET]
    assert _counted(metrics, "github", "slack", "private") == 1
    await _asked(worker, click, "github", again=True)
    assert len(network.asked) == 2 and network.asked[1][1].tag != first.tag


# -- a user's own token answered 401 ------------------------------------------------------


@dataclass
class _Actor:
    """An acting provider whose API answers 401 to the tokens in `refused`."""

    refused: set[str]
    name: str = "github"
    link: str = "oauth"
    settings: tuple[str, ...] = ()
    tokens: list[str | None] = field(default_factory=list)

    async def perform(
        self,
        client: httpx.AsyncClient,
        credentials: Credentials,
        target: Mapping[str, Any],
        action_id: str,
        who: Link,
    ) -> Outcome:
        self.tokens.append(credentials.user_token)
        if credentials.user_token in self.refused:
            raise LinkRejected("GitHub close octocat/hello-world#1: HTTP 401 Bad credentials", 401)
        return Outcome("closed")


LINK = AccountLink(
    id="lnk_1",
    workspace_id="ws_1",
    provider="github",
    chat_user_id="slack:U024BE7LH",
    kind="oauth",
    provider_user="ada",
    name="Ada Lovelace",
    external_id="ada",
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
    updated_at=datetime(2026, 1, 1, tzinfo=UTC),
    created_by={"kind": "chat_user", "id": "slack:U024BE7LH"},
)


async def _performed(
    actor: _Actor, tokens: _Tokens, network: _Network | None = None
) -> tuple[_Round, _Links]:
    links = _Links()
    worker, _ = _worker(links, _Connections(network or _Network()), tokens)
    offered = Offered("github", (CardAction("close", "Close"),), {"repository": "o/r"})
    ready = _Ready(
        _click("slack:U024BE7LH", SLACK), ROOT, offered, cast(Any, actor), "Close", LINK, {}
    )
    done = _Round()
    await worker._perform(ready, done)
    return done, links


async def test_a_token_answered_401_is_refreshed_once_and_the_action_tried_again() -> None:
    actor, tokens = _Actor({"gho_old"}), _Tokens("gho_old", "gho_new")
    done, links = await _performed(actor, tokens)
    assert actor.tokens == ["gho_old", "gho_new"] and tokens.asked == [None, "gho_old"]
    [settled] = done.settled
    assert settled.status == "done" and links.broken == []


async def test_refused_again_after_the_refresh_the_link_is_broken_and_asked_for_again() -> None:
    network = _Network()
    actor, tokens = _Actor({"gho_old", "gho_new"}), _Tokens("gho_old", "gho_new")
    done, links = await _performed(actor, tokens, network)
    assert actor.tokens == ["gho_old", "gho_new"]  # once more, no further
    assert links.broken == [
        ("lnk_1", "GitHub close octocat/hello-world#1: HTTP 401 Bad credentials")
    ]
    [settled] = done.settled
    assert settled.status == "waiting_link"
    assert [root for root, _ in done.released] == [ROOT.id]  # the action let go
    [ask] = done.private  # said to them alone, with a new ticket
    assert ask.ticket == TICKET and "no longer takes" in ask.text


async def test_a_refresh_the_provider_refuses_asks_to_link_again_without_a_second_call() -> None:
    actor = _Actor({"gho_old"})
    tokens = _Tokens("gho_old", NotConnected("the grant was revoked; link again"))
    done, links = await _performed(actor, tokens)
    assert actor.tokens == ["gho_old"]
    # The token keeper put the link in error itself (its refresh refused for good).
    assert links.broken == []
    [settled] = done.settled
    assert settled.status == "waiting_link" and "no longer takes" in done.private[0].text
