"""The chatops benchmark's PagerDuty stand-in (bench/chatops.py) answers hookhub's own
PagerDuty acting the way PagerDuty does, and notes each incident's first PUT: a stand-in
that drifted from the acting would fail the benchmark's first click, or time nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from bench.chatops import API_TOKEN, EMAIL, Ledger, incident_id
from bench.sink import Connection
from shared.kernel.embedded import free_port
from shared.providers.acting import Credentials, Link
from shared.providers.pagerduty.acting import ACTING


@pytest.fixture
async def standin() -> AsyncIterator[tuple[Ledger, str]]:
    ledger = Ledger()
    ledger.reset(expect=2, open_after=1)
    port = free_port()
    server = await asyncio.get_running_loop().create_server(
        lambda: Connection(ledger, ledger.respond), "127.0.0.1", port
    )
    try:
        yield ledger, f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def test_the_standin_answers_pagerdutys_acting_and_notes_each_incidents_put(
    standin: tuple[Ledger, str],
) -> None:
    ledger, url = standin
    credentials = Credentials({"api_token": API_TOKEN}, api_base=url)
    who = Link(chat_user_id="u_bench", kind="mapping", provider_user=EMAIL)
    async with httpx.AsyncClient(trust_env=False) as client:
        acked = await ACTING.perform(
            client, credentials, {"incident_id": incident_id(7)}, "acknowledge", who
        )
        resolved = await ACTING.perform(
            client, credentials, {"incident_id": incident_id(8)}, "resolve", who
        )
        again = await ACTING.perform(
            client, credentials, {"incident_id": incident_id(8)}, "resolve", who
        )
        ledger_doc = (await client.get(url + "/_bench/puts")).json()
        missing = await client.get(url + "/incidents/P0THER")
    assert (acked.state, resolved.state, again.state) == ("acknowledged", "resolved", "resolved")
    # An acknowledge reads the incident first; each incident's first PUT is noted once.
    assert (ledger.gets, ledger.puts) == (1, 3)
    assert sorted(ledger_doc["put_at"]) == ["7", "8"]
    assert ledger.complete_at is not None and ledger.duplicates == 1
    assert ledger_doc["answer_us"]["p99"] is not None
    assert missing.status_code == 404
