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
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.sandbox.matrix import FakeMatrix
from shared.kernel.errors import HookhubError
from shared.kernel.http.tls import tls
from shared.kernel.ids import utcnow
from shared.providers.base import InboundRequest
from shared.providers.chat import MessageChange
from shared.providers.matrix.api import MatrixApi
from shared.providers.matrix.appservice import Registration, registration_yaml
from shared.providers.matrix.messages import MatrixChat
from shared.providers.matrix.network import MatrixChats
from shared.providers.matrix.webhooks import WEBHOOKS
from tests.support import serve

PREFIX = "_hookhub_"


@dataclass
class World:
    fake: FakeMatrix
    chat: MatrixChat
    api: MatrixApi
    registration: Registration
    # The transactions' changes as sync reads them off the topic (what the gateway would
    # publish: verified and parsed by `MatrixWebhooks`, one batch per transaction).
    delivered: list[list[MessageChange]] = field(default_factory=list)

    @property
    def token(self) -> str:
        return self.registration.as_token

    def changes(self) -> list[MessageChange]:
        """What sync hands on: the changes not `ignored` (our puppets' own among those)."""
        return [c for batch in self.delivered for c in batch if c.ignored is None]

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
        chats = MatrixChats(client)
        holder: list[World] = []
        registration = Registration(
            id="hookhub-int_matrix",
            url="",
            as_token=secrets.token_urlsafe(32),
            hs_token=secrets.token_urlsafe(32),
            prefix=PREFIX,
        )
        secrets_ = {"hs_token": registration.hs_token}

        async def receive(request: Request) -> Response:
            """The gateway's pipeline for one request, without Kafka: handshake, verify,
            parse, and the changes sync would read from the published payload."""
            inbound = InboundRequest(
                headers={k.lower(): v for k, v in request.headers.items()},
                body=await request.body(),
                received_at=utcnow(),
                query=dict(request.query_params),
                method=request.method,
                url=str(request.url),
                config={"namespace_prefix": PREFIX},
            )
            try:
                reply = WEBHOOKS.handshake(inbound, secrets_)
                if reply is None:
                    WEBHOOKS.verify(inbound, secrets_, inbound.received_at)
                    parsed = WEBHOOKS.parse(inbound)
                    holder[0].delivered.append(chats.changes(parsed.event_type, parsed.payload))
                    reply = parsed.reply
            except HookhubError as exc:
                return JSONResponse({"error": {"code": exc.code}}, status_code=exc.status)
            return JSONResponse(reply.body, status_code=reply.status)

        async def healthz(_: object) -> JSONResponse:
            return JSONResponse({})

        appservice = Starlette(
            routes=[
                Route("/healthz", healthz),
                Route("/_matrix/app/v1/transactions/{txn_id}", receive, methods=["PUT"]),
                Route("/transactions/{txn_id}", receive, methods=["PUT"]),
                Route("/_matrix/app/v1/ping", receive, methods=["POST"]),
            ]
        )
        async with serve(appservice, probe="/healthz") as running:
            registration = dataclasses.replace(registration, url=running.base_url)
            fake.register_appservice(yaml.safe_load(registration_yaml(registration)))
            holder.append(World(fake, chat, api, registration))
            yield holder[0]
