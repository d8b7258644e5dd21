"""The homeserver's side of an application service: the transactions it pushes, and the
registration it is configured with (Application Service API, spec.matrix.org v1.17).

- `PUT /_matrix/app/v1/transactions/{txnId}`, and the legacy `PUT /transactions/{txnId}`
  a homeserver falls back to ("Legacy routes"), body `{"events": [...], "ephemeral"?}`.
- "Authorisation": the homeserver sends `Authorization: Bearer <hs_token>` (v1.4 on);
  older homeservers the `access_token` query parameter, which is still taken, and when
  both are given both must match. A token that does not match is refused 403
  `M_FORBIDDEN`, as the spec says; none at all 401 `M_UNAUTHORIZED`. Compared in constant
  time (mautrix's AppService compares with `!=`).
- "Pushing events": a retried transaction has the same txnId and the same events; one
  processed already is answered 200 `{}` and processed no more. A transaction is recorded
  as processed only once its changes were handed on: one that failed is answered 500 and
  the homeserver sends it again (mautrix records it even when its handler raised, and runs
  its handlers in the background after answering).
- Events of the appservice's own users (its namespace and `sender_localpart`) are our own
  posts coming back: they are dropped (no echo).

The gateway is not wired to this yet: `transaction_routes` is the Starlette side for the
stand-in's tests, `TransactionReceiver.receive` the part any route calls.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.kernel.crypto import constant_time_equal
from shared.providers.base import Reply
from shared.providers.chat import MessageChange
from shared.providers.matrix.catalog import DEFAULT_PREFIX
from shared.providers.matrix.messages import MatrixChat

TRANSACTIONS = "/_matrix/app/v1/transactions/{txn_id}"
LEGACY_TRANSACTIONS = "/transactions/{txn_id}"
PING = "/_matrix/app/v1/ping"

log = structlog.get_logger(__name__)

Deliver = Callable[[list[MessageChange]], Awaitable[None]]


class Ledger(Protocol):
    """The txnIds processed, per integration (to be kept in MongoDB when wired)."""

    async def processed(self, txn_id: str) -> bool: ...

    async def record(self, txn_id: str) -> None: ...


class MemoryLedger:
    def __init__(self) -> None:
        self.txn_ids: set[str] = set()

    async def processed(self, txn_id: str) -> bool:
        return txn_id in self.txn_ids

    async def record(self, txn_id: str) -> None:
        self.txn_ids.add(txn_id)


def _error(status: int, errcode: str, error: str) -> Reply:
    return Reply(status, {"errcode": errcode, "error": error})


def bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else ""


class TransactionReceiver:
    """One integration's transactions: `hs_token` authenticates the homeserver, `chat`
    turns the events into changes, `deliver` hands them on (to Kafka, when wired)."""

    def __init__(self, hs_token: str, chat: MatrixChat, ledger: Ledger, deliver: Deliver) -> None:
        self._hs_token = hs_token
        self._chat = chat
        self._ledger = ledger
        self._deliver = deliver
        # One transaction at a time: a retry arriving while the first is being handled
        # waits for it, then finds it processed.
        self._lock = asyncio.Lock()

    def authorise(self, headers: Mapping[str, str], query: Mapping[str, str]) -> Reply | None:
        """None when the homeserver is who it says; else the refusal to answer."""
        given = [t for t in (bearer(headers), query.get("access_token")) if t is not None]
        if not given:
            return _error(401, "M_UNAUTHORIZED", "no hs_token: Authorization: Bearer is missing")
        # Every token given must match: no short cut, so both are compared each time.
        matches = [constant_time_equal(t, self._hs_token) for t in given]
        if not all(matches):
            return _error(403, "M_FORBIDDEN", "the hs_token does not match the registration")
        return None

    async def receive(
        self,
        txn_id: str,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        body: bytes,
    ) -> Reply:
        """The answer to one `PUT …/transactions/{txnId}` (header names lower-cased)."""
        refused = self.authorise(headers, query)
        if refused is not None:
            return refused
        async with self._lock:
            if await self._ledger.processed(txn_id):
                return Reply(200, {})
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                return _error(400, "M_NOT_JSON", "the body is not JSON")
            events = data.get("events") if isinstance(data, dict) else None
            if not isinstance(events, list):
                return _error(400, "M_BAD_JSON", "the transaction has no `events` list")
            changes = self.changes(events)
            if changes:
                try:
                    await self._deliver(changes)
                except Exception as exc:  # any failure: the homeserver sends it again
                    log.warning("matrix transaction not handed on", txn_id=txn_id, error=repr(exc))
                    return _error(500, "M_UNKNOWN", "the transaction could not be handed on")
            await self._ledger.record(txn_id)
        return Reply(200, {})

    def changes(self, events: list[Any]) -> list[MessageChange]:
        """The message changes of a transaction's events, our own users' left out."""
        out: list[MessageChange] = []
        for event in events:
            if not isinstance(event, Mapping):
                continue
            sender = event.get("sender")
            if isinstance(sender, str) and self._chat.is_ours(sender):
                continue  # our own post, coming back
            out.extend(self._chat.changes(str(event.get("type")), event))
        return out


def transaction_routes(receiver: TransactionReceiver) -> list[Route]:
    """The appservice's routes for one receiver: the transactions (both paths) and
    `POST /_matrix/app/v1/ping` (v1.7), which answers `{}` to an authenticated homeserver."""

    async def transactions(request: Request) -> Response:
        reply = await receiver.receive(
            request.path_params["txn_id"],
            {k.lower(): v for k, v in request.headers.items()},
            dict(request.query_params),
            await request.body(),
        )
        return JSONResponse(reply.body, status_code=reply.status)

    async def ping(request: Request) -> Response:
        refused = receiver.authorise(
            {k.lower(): v for k, v in request.headers.items()}, dict(request.query_params)
        )
        if refused is not None:
            return JSONResponse(refused.body, status_code=refused.status)
        return JSONResponse({})

    return [
        Route(TRANSACTIONS, transactions, methods=["PUT"]),
        Route(LEGACY_TRANSACTIONS, transactions, methods=["PUT"]),
        Route(PING, ping, methods=["POST"]),
    ]


# -- the registration ------------------------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    """An integration's appservice registration ("Registration"): `url` is where the
    homeserver sends transactions (it appends `/_matrix/app/v1/transactions/{txnId}`)."""

    id: str
    url: str
    as_token: str
    hs_token: str
    prefix: str

    @property
    def sender_localpart(self) -> str:
        """The appservice's own user: `{prefix}bot`, inside its exclusive namespace."""
        return f"{self.prefix}bot"

    def user_regex(self) -> str:
        """Every user whose localpart starts with the prefix, on any server: the spec's
        example form (`@_irc_bridge_.*`); a homeserver only ever applies it to its own."""
        return f"@{re.escape(self.prefix)}.*"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "as_token": self.as_token,
            "hs_token": self.hs_token,
            "sender_localpart": self.sender_localpart,
            # Puppets post for many chat users: exempt them from per-user limits.
            "rate_limited": False,
            "namespaces": {
                "users": [{"exclusive": True, "regex": self.user_regex()}],
                "aliases": [],
                "rooms": [],
            },
        }


def registration_for(integration_id: str, appservice_url: str, settings: Mapping[str, str]) -> str:
    """The registration file of one integration, from its settings (`as_token`, `hs_token`,
    `namespace_prefix`): what the route serving it (not wired yet) answers. `appservice_url`
    is the integration's URL the homeserver sends its transactions under."""
    return registration_yaml(
        Registration(
            id=f"hookhub-{integration_id}",
            url=appservice_url,
            as_token=settings["as_token"],
            hs_token=settings["hs_token"],
            prefix=settings.get("namespace_prefix") or DEFAULT_PREFIX,
        )
    )


def registration_yaml(registration: Registration) -> str:
    """The registration file for the homeserver's `app_service_config_files`: YAML whose
    every value is a JSON scalar (JSON's strings are YAML double-quoted scalars), so that
    no token or URL can turn into YAML of its own."""
    return _yaml(registration.as_dict(), 0)


def _yaml(value: Any, indent: int) -> str:
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, Mapping | list) and item:
                lines.append(f"{pad}{json.dumps(key)}:")
                lines.append(_yaml(item, indent + 1))
            else:
                lines.append(f"{pad}{json.dumps(key)}: {_scalar(item)}")
    else:
        for item in value:
            if isinstance(item, Mapping) and item:
                first, *rest = _yaml(item, indent + 1).split("\n")
                lines.append(f"{pad}- {first.lstrip()}")
                lines.extend(rest)
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    return "\n".join(lines) + ("\n" if indent == 0 else "")


def _scalar(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return json.dumps(value, ensure_ascii=True)
