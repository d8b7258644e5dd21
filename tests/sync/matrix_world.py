"""The Matrix homeserver stand-in on loopback beside a sync `World`, with hookhub's
appservice registered on it and a matrix integration whose webhook URL is the
appservice's `url` (tests/sync/test_matrix.py)."""

from __future__ import annotations

import contextlib
import itertools
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from services.sandbox.matrix import FakeMatrix, Room
from shared.kernel.envelopes import Topic
from shared.providers.matrix.appservice import Registration
from shared.providers.matrix.network import DEFAULT_PREFIX
from tests.support import KafkaTap, admin_headers, serve

_rooms = itertools.count(1)


@dataclass
class Matrix:
    """The stand-in, hookhub's integration of it, and a tap on the provider events topic."""

    fake: FakeMatrix
    integration: str
    webhook_url: str
    hs_token: str
    events: KafkaTap
    fake_url: str  # the homeserver's base URL (the integration's homeserver_url)

    def room(self) -> Room:
        return self.fake.add_room(f"sync{next(_rooms):04d}", "sync room")

    async def pair(self, world: Any) -> tuple[Room, str]:
        """A new room mapped to a new chat channel: (room, chat channel)."""
        room, channel = self.room(), world.new_id("ch_")
        await world.map(self.integration, room.id, channel)
        return room, channel

    def puppets(self, room: Room) -> list[dict[str, Any]]:
        """The room's messages hookhub's puppets sent, as a client shows them."""
        return [m for m in self.fake.shown(room) if m["from_hookhub"]]


@contextlib.asynccontextmanager
async def connected(world: Any) -> AsyncIterator[Matrix]:
    """A homeserver on loopback, the appservice registered with fresh tokens, and an
    integration made through oauth's API with them (whoami is its create check)."""
    fake = FakeMatrix()
    as_token, hs_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    registration = Registration("hookhub", "", as_token, hs_token, DEFAULT_PREFIX)
    fake.register_appservice(registration.as_dict())
    async with contextlib.AsyncExitStack() as stack:
        running = await stack.enter_async_context(serve(fake.app(), probe="/healthz"))
        answer = await world.oauth.client.post(
            "/api/integrations",
            json={
                "provider": "matrix",
                "workspace_id": world.chat.workspace_id,
                "settings": {
                    "homeserver_url": running.base_url,
                    "as_token": as_token,
                    "hs_token": hs_token,
                },
            },
            headers=admin_headers(),
        )
        assert answer.status_code == 201, answer.text
        body = answer.json()
        assert fake.appservice is not None
        fake.appservice.url = body["webhook_url"]
        events = await stack.enter_async_context(
            KafkaTap.of(world.sync_settings, Topic.PROVIDER_EVENTS)
        )
        yield Matrix(fake, body["id"], body["webhook_url"], hs_token, events, running.base_url)
