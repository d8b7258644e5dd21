"""Every service with routes, in-process on the session's broker and database, behind the
edge as `hookhub run` puts them, with every provider the services may call faked on
loopback: the API as a user calls it, for the tests that walk all of it
(schemathesis_run.py, test_cross_tenant.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from fastapi import FastAPI

from services.delivery.app import definition as delivery_definition
from services.edge import create_edge_app, edge_protocol
from services.gateway.app import definition as gateway_definition
from services.importer.app import definition as importer_definition
from services.oauth.app import definition as oauth_definition
from services.sandbox import FAKES
from services.sandbox.oauth_server import FakeAuthorizationServer
from services.sync.app import definition as sync_definition
from shared.domain.platform import create_app
from shared.kernel.settings import (
    DeliverySettings,
    GatewaySettings,
    ImporterSettings,
    ServiceSettings,
    SyncSettings,
)
from tests.infra import Infra
from tests.support import RunningService, make_settings, new_namespace, serve


@dataclass
class Origin:
    edge: RunningService
    fakes: dict[str, FakeAuthorizationServer]
    apps: dict[str, FastAPI]  # by service name


@contextlib.asynccontextmanager
async def running_origin(
    infra: Infra,
    data_dir: Path,
    telegram_base: str,
    *,
    importer: bool = True,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> AsyncIterator[Origin]:
    """`overrides`: settings of one service or another, by service name."""
    namespace = new_namespace()
    # One database and one key for all of them: the gateway opens what oauth sealed.
    shared: dict[str, Any] = {"encryption_keys": Fernet.generate_key().decode()}
    async with contextlib.AsyncExitStack() as stack:
        fakes = {name: cls() for name, cls in FAKES.items()}
        for fake in fakes.values():
            running = await stack.enter_async_context(serve(fake.app(), probe="/healthz"))
            fake.base_url = running.base_url
        providers = {
            k: v for fake in fakes.values() for k, v in fake.hookhub_settings(fake.base_url).items()
        }
        api_bases = {k: v for k, v in providers.items() if k.endswith("_api_base")}
        api_bases["telegram_api_base"] = telegram_base

        def settings(cls: type[ServiceSettings], **more: Any) -> Any:
            return make_settings(cls, infra, namespace, data_dir, **shared, **more)

        apps = [
            ("gateway", gateway_definition(), settings(GatewaySettings)),
            ("delivery", delivery_definition(), settings(DeliverySettings)),
            # The refresh loop runs once at start; nothing here waits for it.
            (
                "oauth",
                oauth_definition(),
                settings(
                    ServiceSettings,
                    **providers,
                    oauth_poll_seconds=3600,
                    telegram_api_base=telegram_base,
                ),
            ),
            ("sync", sync_definition(), settings(SyncSettings, **api_bases)),
        ]
        if importer:
            apps.append(
                ("importer", importer_definition(), settings(ImporterSettings, **api_bases))
            )
        upstreams: dict[str, str] = {}
        built: dict[str, FastAPI] = {}
        for name, definition, values in apps:
            values = values.model_copy(update=dict((overrides or {}).get(name, {})))
            built[name] = app = create_app(definition, values)
            upstreams[name] = (await stack.enter_async_context(serve(app))).base_url
        # With the edge's own protocol: an answer before the body's end is read by the
        # client (the lingering close), as through `hookhub run`'s edge.
        edge = await stack.enter_async_context(
            serve(create_edge_app(upstreams), probe="/healthz", http=edge_protocol())
        )
        yield Origin(edge, fakes, built)
