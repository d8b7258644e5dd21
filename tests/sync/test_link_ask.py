"""The reply to an unlinked user's click (SPEC §20, docs/acting.md "Links by consent"): a
chat user's is theirs alone (`visible_to`, an `eph_` id) and, for a provider linked by
consent, carries their ticket; a network's user, whom the chat cannot show a message to
alone, is answered in the thread for everyone, with no ticket."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

from services.sync.clicks.repository import Click
from services.sync.clicks.worker import ClickWorker, _Round
from shared.domain.message_map import Copy
from shared.providers.actors import ACTORS


class _Tickets:
    def __init__(self) -> None:
        self.issued: list[tuple[str, str, str, str | None]] = []

    async def issue_ticket(
        self, workspace_id: str, provider: str, chat_user_id: str, name: str | None = None
    ) -> str:
        self.issued.append((workspace_id, provider, chat_user_id, name))
        return "T" * 43


def _worker(tickets: _Tickets) -> ClickWorker:
    """The worker with what asking to link uses (the links' tickets, the public URL)."""
    unused = cast(Any, None)
    return ClickWorker(
        clicks=unused,
        message_map=unused,
        links=cast(Any, tickets),
        connections=unused,
        client=unused,
        publisher=unused,
        audit=unused,
        settings=cast(Any, SimpleNamespace(public_url="https://hookhub.example/")),
        owner="own_1",
        metrics=unused,
    )


def _click(actor: str, via: str | None = None) -> Click:
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
        network=via,
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


async def _asked(actor: str, via: str | None, provider: str) -> tuple[dict[str, Any], _Tickets]:
    tickets, done = _Tickets(), _Round()
    await _worker(tickets)._ask_to_link(_click(actor, via), ROOT, provider, ACTORS[provider], done)
    [reply] = done.replies
    [settled] = done.settled
    assert settled.status == "waiting_link"
    return json.loads(reply.value), tickets


async def test_a_chat_user_is_asked_alone_with_their_ticket() -> None:
    said, tickets = await _asked("u_ada", None, "github")
    assert said["visible_to"] == "u_ada" and said["id"].startswith("eph_")
    assert said["thread_id"] == "m_root"
    assert "https://hookhub.example/api/auth/oauth/link/" + "T" * 43 in said["text"]
    assert tickets.issued == [("ws_1", "github", "u_ada", "Ada Lovelace")]
    # A provider linked by a mapping names no secret, and is said to them alone too.
    mapped, none = await _asked("u_ada", None, "pagerduty")
    assert mapped["visible_to"] == "u_ada" and none.issued == []
    assert "PUT /api/account-links/pagerduty/u_ada" in mapped["text"]


async def test_a_network_user_is_answered_in_the_thread_without_a_ticket() -> None:
    said, tickets = await _asked("slack:U024BE7LH", "slack", "github")
    assert "visible_to" not in said and said["id"].startswith("ntf_")
    assert tickets.issued == [] and "/link/" not in said["text"]
    assert (
        "`slack:U024BE7LH`" in said["text"]
        and "POST /api/account-links/github/connect" in (said["text"])
    )
