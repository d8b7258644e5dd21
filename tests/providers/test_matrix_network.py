"""Matrix's Network: the credential an integration's settings make, and the MatrixChats
that picks (and keeps, bounded) one MatrixChat per homeserver and namespace."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from shared.domain.integrations.model import IntegrationSnapshot
from shared.kernel.egress import EgressPolicy
from shared.providers.catalog import CATALOG, NETWORKS
from shared.providers.chat import BotIdentity, MessageChange, PermanentError, SenderMarks
from shared.providers.matrix.network import (
    NETWORK,
    MatrixChats,
    credential,
    split_credential,
)


def _integration(config: dict[str, str], secrets: dict[str, str]) -> IntegrationSnapshot:
    return IntegrationSnapshot(
        id="int_m",
        workspace_id="ws",
        provider="matrix",
        enabled=True,
        is_default=False,
        status="connected",
        account_id=None,
        rate_limit_per_second=None,
        secrets=secrets,
        config=config,
    )


def test_the_catalog_carries_the_network_with_webhooks_and_history() -> None:
    entry = CATALOG["matrix"]
    assert NETWORKS["matrix"] is NETWORK
    assert {"webhooks", "sync", "history"} <= set(entry.capabilities)


def test_the_credential_is_the_homeserver_the_as_token_and_the_prefix() -> None:
    made = NETWORK.credential(
        _integration(
            {"homeserver_url": "https://m.example.org/", "namespace_prefix": "_b_"},
            {"as_token": "secret-as", "hs_token": "secret-hs"},
        )
    )
    assert made is not None
    assert split_credential(made) == ("https://m.example.org", "secret-as", "_b_")
    assert "secret-hs" not in made  # the hs_token is the gateway's alone
    default = NETWORK.credential(
        _integration({"homeserver_url": "https://m.example.org"}, {"as_token": "a"})
    )
    assert default is not None and split_credential(default)[2] == "_hookhub_"
    assert NETWORK.credential(_integration({}, {"as_token": "a"})) == ""
    with pytest.raises(PermanentError):
        split_credential("")


async def test_one_chat_per_homeserver_and_prefix_the_least_recently_used_dropped() -> None:
    async with httpx.AsyncClient() as client:
        chats = MatrixChats(client, max_chats=2)
        a1, token = chats.open(credential("https://a.example", "t1", "_x_"))
        assert token == "t1"
        a2, token = chats.open(credential("https://a.example", "t2", "_x_"))
        assert a2 is a1 and token == "t2"  # a rotated token: the same homeserver's chat
        b, _ = chats.open(credential("https://b.example", "t", "_x_"))
        assert b is not a1
        chats.open(credential("https://a.example", "t1", "_x_"))  # a used last
        chats.open(credential("https://c.example", "t", "_x_"))  # b dropped
        assert chats.open(credential("https://a.example", "t1", "_x_"))[0] is a1
        assert chats.open(credential("https://b.example", "t", "_x_"))[0] is not b


def test_is_own_is_the_namespace_on_the_appservices_server() -> None:
    chats = MatrixChats(httpx.AsyncClient())
    identity = BotIdentity(user_id="@_x_bot:example.org", app_id="_x_", name="bot")

    def by(user: str) -> MessageChange:
        return MessageChange(
            kind="created",
            external_channel_id="!r:example.org",
            external_message_id="$e",
            occurred_at=datetime.now(UTC),
            sender=SenderMarks(user_id=user),
        )

    assert chats.is_own(by("@_x_bot:example.org"), identity)
    assert chats.is_own(by("@_x_abc:example.org"), identity)
    assert not chats.is_own(by("@_x_abc:elsewhere.org"), identity)
    assert not chats.is_own(by("@alice:example.org"), identity)


async def test_a_homeserver_the_egress_rules_refuse_is_never_called() -> None:
    """An integration names its own homeserver: one on a private address is refused before
    any request (the integration's error), one allow-listed is let through."""
    async with httpx.AsyncClient() as client:
        strict = MatrixChats(client, policy=EgressPolicy())
        for homeserver in ("http://169.254.169.254", "http://10.1.2.3:8008", "http://127.0.0.1:9"):
            with pytest.raises(PermanentError) as refused:
                strict.open(credential(homeserver, "as_token", "_hookhub_"))
            assert refused.value.error == "egress_refused" and refused.value.scope == "integration"
        allowed = MatrixChats(client, policy=EgressPolicy.from_setting("127.0.0.0/8"))
        chat, token = allowed.open(credential("http://127.0.0.1:9", "as_token", "_hookhub_"))
        assert token == "as_token" and chat is not None
