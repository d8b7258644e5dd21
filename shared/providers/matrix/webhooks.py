"""Matrix: the transactions a homeserver PUTs to its application service, as the gateway
takes them (Application Service API, spec.matrix.org v1.17).

The integration's webhook URL is the registration's `url`: the homeserver calls
`PUT {url}/_matrix/app/v1/transactions/{txnId}`, the legacy `PUT {url}/transactions/{txnId}`
("Legacy routes"), and `POST {url}/_matrix/app/v1/ping` (services/gateway routes these
sub-paths of a webhook URL here, for the providers whose `delivery_method` is PUT).

- "Authorisation": `Authorization: Bearer <hs_token>`, or the legacy `access_token` query
  parameter; both given, both must match. Compared in constant time. None at all is
  refused 401 `M_UNAUTHORIZED`, a wrong one 403 `M_FORBIDDEN`, as the spec says.
- "Pushing events": a retried transaction has the same txnId and the same events
  (homeservers "MUST NOT alter" them): the delivery id is the txnId with a digest of its
  event ids, so the gateway's Deduplicator publishes a transaction once, while a txnId a
  homeserver uses again for other events (its database restored, the appservice
  re-registered: Synapse counts txnIds per appservice from 1) is not taken for a
  redelivery for the seen window's days. The answer is `{}`.
- The published payload is `{"events": [...], "prefix": <namespace_prefix>}`: sync needs
  the integration's namespace to know its own puppets' events (no echo).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shared.kernel.crypto import constant_time_equal
from shared.providers.base import (
    InboundRequest,
    MalformedWebhook,
    ParsedWebhook,
    Reply,
    SignatureInvalid,
)
from shared.providers.ids import decode_json_object

HS_TOKEN = "hs_token"  # noqa: S105 (a setting's name)
_TXN = re.compile(r"/(?:_matrix/app/v1/)?transactions/([^/?#]+)(?:[?#]|$)")
_PING = re.compile(r"/_matrix/app/v1/ping(?:[?#]|$)")


class HsTokenMissing(SignatureInvalid):
    """No hs_token: 401 M_UNAUTHORIZED."""

    code = "M_UNAUTHORIZED"


class HsTokenForbidden(SignatureInvalid):
    """An hs_token that is not the registration's: 403 M_FORBIDDEN."""

    status = 403
    code = "M_FORBIDDEN"


def _bearer(request: InboundRequest) -> str | None:
    value = request.header("authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class MatrixWebhooks:
    name: str = "matrix"
    # Synapse sends at most 100 events a transaction; 65536 bytes an event.
    max_body_bytes: int = 8 * 1024 * 1024
    secret_fields: tuple[str, ...] = (HS_TOKEN,)
    handshake_methods: tuple[str, ...] = ()
    delivery_id_header: str | None = None
    # Transactions are PUT (the gateway's appservice routes).
    delivery_method: str = "PUT"

    def authorise(self, request: InboundRequest, secrets: Mapping[str, str]) -> None:
        given = [t for t in (_bearer(request), request.query.get("access_token")) if t is not None]
        if not given:
            raise HsTokenMissing("no hs_token: Authorization: Bearer is missing")
        expected = secrets.get(HS_TOKEN) or ""
        # Every token given is compared, each in constant time.
        matches = [bool(expected) and constant_time_equal(t, expected) for t in given]
        if not all(matches):
            raise HsTokenForbidden("the hs_token does not match the registration")

    def handshake(self, request: InboundRequest, secrets: Mapping[str, str] | None) -> Reply | None:
        """`POST …/_matrix/app/v1/ping` (v1.7): `{}` to an authenticated homeserver."""
        if secrets is None or not _PING.search(request.url):
            return None
        self.authorise(request, secrets)
        return Reply(200, {})

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        self.authorise(request, secrets)

    def parse(self, request: InboundRequest) -> ParsedWebhook:
        found = _TXN.search(request.url)
        if found is None:
            raise MalformedWebhook("a transaction is PUT to …/_matrix/app/v1/transactions/{txnId}")
        body = decode_json_object(request.body)
        events = body.get("events")
        if not isinstance(events, list):
            raise MalformedWebhook("a transaction carries an `events` list")
        event_ids = [e.get("event_id") for e in events if isinstance(e, Mapping)]
        digest = hashlib.sha256(
            "\n".join(i for i in event_ids if isinstance(i, str)).encode()
        ).hexdigest()[:16]
        payload: dict[str, Any] = {
            "events": events,
            "prefix": request.config.get("namespace_prefix") or "",
        }
        return ParsedWebhook(
            event_type="transaction",
            delivery_id=f"{found[1][:180]}:{digest}",
            payload=payload,
            reply=Reply(200, {}),
            payload_is_body=False,
        )


WEBHOOKS = MatrixWebhooks()
