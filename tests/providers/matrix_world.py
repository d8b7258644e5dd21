"""The stand-in homeserver and hookhub's appservice, each on a loopback port, wired to each
other as a homeserver and its registered appservice are: the registration hookhub
generates is the one the stand-in is configured with."""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import yaml
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.sandbox.matrix import FakeMatrix
from shared.kernel.http.tls import tls
from shared.providers.chat import MessageChange
from shared.providers.matrix.api import MatrixApi
from shared.providers.matrix.appservice import (
    MemoryLedger,
    Registration,
    TransactionReceiver,
    registration_yaml,
    transaction_routes,
)
from shared.providers.matrix.messages import MatrixChat
from tests.support import serve

PREFIX = "_hookhub_"


@dataclass
class World:
    fake: FakeMatrix
    chat: MatrixChat
    api: MatrixApi
    registration: Registration
    ledger: MemoryLedger
    delivered: list[list[MessageChange]] = field(default_factory=list)
    # Set to an exception to have the next delivery fail with it.
    failing: Exception | None = None

    @property
    def token(self) -> str:
        return self.registration.as_token

    def changes(self) -> list[MessageChange]:
        return [c for batch in self.delivered for c in batch]

    def reset(self) -> None:
        """Nothing queued on the homeserver, nothing delivered yet."""
        self.fake.queue.clear()
        self.delivered.clear()
        self.fake.requests.clear()


@contextlib.asynccontextmanager
async def world() -> AsyncIterator[World]:
    fake = FakeMatrix()
    async with (
        serve(fake.app(), probe="/healthz") as homeserver,
        httpx.AsyncClient(verify=tls(), timeout=10.0) as client,
    ):
        api = MatrixApi(client, homeserver.base_url)
        chat = MatrixChat(api, PREFIX)
        ledger = MemoryLedger()
        holder: list[World] = []

        async def deliver(changes: list[MessageChange]) -> None:
            if holder[0].failing is not None:
                failure, holder[0].failing = holder[0].failing, None
                raise failure
            holder[0].delivered.append(changes)

        registration = Registration(
            id="hookhub-int_matrix",
            url="",
            as_token=secrets.token_urlsafe(32),
            hs_token=secrets.token_urlsafe(32),
            prefix=PREFIX,
        )
        receiver = TransactionReceiver(registration.hs_token, chat, ledger, deliver)

        async def healthz(_: object) -> JSONResponse:
            return JSONResponse({})

        appservice = Starlette(routes=[Route("/healthz", healthz), *transaction_routes(receiver)])
        async with serve(appservice, probe="/healthz") as running:
            registration = dataclasses.replace(registration, url=running.base_url)
            fake.register_appservice(yaml.safe_load(registration_yaml(registration)))
            holder.append(World(fake, chat, api, registration, ledger))
            yield holder[0]
