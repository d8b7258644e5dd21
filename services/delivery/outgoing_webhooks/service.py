"""Endpoint logic: secrets (generated, rotated with a grace period), egress checks, disabling."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from services.delivery.deliveries.circuit import DEFAULT_TUNING, Circuit, State, Tuning
from services.delivery.destinations.catalog import DestinationSpec, seal, spec_of
from services.delivery.destinations.schemas import AwsConfig, Config
from services.delivery.operational.events import endpoint_event
from services.delivery.outgoing_webhooks.repository import EndpointRepository
from services.delivery.outgoing_webhooks.schemas import (
    MAX_HEADERS,
    OutgoingWebhookCreate,
    OutgoingWebhookUpdate,
    RotateSecret,
)
from shared.kernel.crypto import SecretBox
from shared.kernel.egress import EgressPolicy, check_url
from shared.kernel.envelopes import OperationalEvent, OperationalType
from shared.kernel.errors import Conflict, Invalid, NotFound
from shared.kernel.ids import new_id, utcnow
from shared.kernel.mongo import Document
from shared.kernel.signing import is_valid_secret, new_secret


@dataclass(frozen=True)
class EndpointSnapshot:
    """What delivery needs per endpoint, secrets decrypted, held in memory only."""

    id: str
    workspace_id: str
    url: str
    events: tuple[str, ...]
    enabled: bool
    retry_schedule: tuple[int, ...]
    timeout_seconds: float
    rate_limit_per_second: float | None
    max_concurrency: int
    secrets: tuple[tuple[str, datetime | None], ...] = field(repr=False, default=())
    headers: Mapping[str, str] = field(repr=False, default_factory=dict)
    circuit: Circuit | None = None  # as the last change wrote it (deliveries/circuit.py)
    circuit_breaker: Tuning = DEFAULT_TUNING  # its breaker's setting (deliveries/circuit.py)
    transformation: str | None = None  # its code, when enabled (delivery/transformations)
    ordering: str = "none"  # "fifo": one at a time per key, in order (deliveries/fifo.py)
    propagate_trace: bool = False  # its attempts send `traceparent` (SPEC §18)
    destination: DestinationSpec | None = None  # instead of `url` (SPEC §21)

    @property
    def fifo(self) -> bool:
        return self.ordering == "fifo"

    def signing_secrets(self, now: datetime) -> list[str]:
        """The current secret first, then old ones still inside their grace period, the
        oldest last (rotations prepend, and an older secret never outlives a newer one)."""
        return [secret for secret, expires in self.secrets if expires is None or expires > now]


def snapshot(doc: Document, box: SecretBox) -> EndpointSnapshot:
    return EndpointSnapshot(
        id=str(doc["_id"]),
        workspace_id=doc["workspace_id"],
        url=doc.get("url") or "",
        events=tuple(doc["events"]),
        enabled=bool(doc.get("enabled", True)),
        retry_schedule=tuple(doc["retry_schedule"]),
        timeout_seconds=float(doc["timeout_seconds"]),
        rate_limit_per_second=doc.get("rate_limit_per_second"),
        max_concurrency=int(doc["max_concurrency"]),
        secrets=tuple((box.decrypt(s["secret"]), s.get("expires_at")) for s in doc["secrets"]),
        headers=open_headers(doc, box),
        circuit=Circuit.from_doc(doc.get("circuit")),
        circuit_breaker=Tuning.from_doc(doc.get("circuit_breaker")),
        transformation=transformation_of(doc),
        ordering=doc.get("ordering", "none"),
        propagate_trace=bool(doc.get("propagate_trace", False)),
        destination=spec_of(doc.get("destination"), box),
    )


def transformation_of(doc: Document) -> str | None:
    transformation = doc.get("transformation")
    if transformation is None or not transformation.get("enabled", True):
        return None
    code: str = transformation["code"]
    return code


def open_headers(doc: Document, box: SecretBox) -> dict[str, str]:
    # Custom headers often carry credentials for the receiver, so they are sealed at rest,
    # opened for delivery only and never returned by the API (write-only, as every secret).
    return {name: box.decrypt(value) for name, value in (doc.get("headers") or {}).items()}


def merge_headers(stored: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    """A PATCH's `headers` over the stored ones, by case-insensitive name: a value sets or
    replaces (under the name as now given), None removes, names not given are kept. Merged
    rather than replaced because a client cannot read back the values it would resend."""
    changed = {name.lower() for name in changes}
    merged = {name: value for name, value in stored.items() if name.lower() not in changed}
    merged.update({name: value for name, value in changes.items() if value is not None})
    return merged


class EndpointService:
    def __init__(
        self,
        repository: EndpointRepository,
        box: SecretBox,
        egress: EgressPolicy,
        check_code: Callable[[str], Awaitable[None]] | None = None,
        announce: Callable[[OperationalEvent], None] = lambda _: None,
    ) -> None:
        self._repository = repository
        self._box = box
        self._egress = egress
        # A transformation's code compiled at save (Transformer.check): 422 with its line.
        self._check_code = check_code
        self._announce = announce  # operational events (shared.domain.operational.Announcer.emit)

    def _seal_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {name: self._box.encrypt(value) for name, value in headers.items()}

    def _destination(self, given: Any, stored: Mapping[str, Any] | None = None) -> Document | None:
        """A destination as stored (its secrets sealed; a PATCH's left out kept), its
        addresses judged by the egress policy as a URL is."""
        if given is None:
            return None
        sealed = seal(given.type, given.config, self._box, stored)
        opened = spec_of(sealed, self._box)
        assert opened is not None
        check_destination(opened.config, self._egress)
        return sealed

    def _secret(self, given: str | None) -> str:
        if given is None:
            return new_secret()
        if not is_valid_secret(given):
            raise Invalid("secret must be whsec_ + base64 of 24 to 64 bytes", code="invalid_secret")
        return given

    async def create(
        self, body: OutgoingWebhookCreate, marks: Document | None = None
    ) -> tuple[Document, str]:
        """A new endpoint and its secret; `marks`, fields kept on it that the API does not
        take (a listening endpoint's `listen_key`)."""
        if body.url is not None:
            check_url(body.url, self._egress)
        if body.transformation is not None and self._check_code is not None:
            await self._check_code(body.transformation.code)
        secret = self._secret(body.secret)
        now = utcnow()
        doc: Document = {
            "_id": new_id("ep"),
            **body.model_dump(exclude={"secret", "headers", "destination"}),
            "destination": self._destination(body.destination),
            "headers": self._seal_headers(body.headers),
            "secrets": [{"secret": self._box.encrypt(secret), "expires_at": None}],
            "disabled_reason": None,
            "failing_since": None,
            "created_at": now,
            "updated_at": now,
            "deleted_at": None,
            **(marks or {}),
        }
        await self._repository.insert(doc)
        self._announce(endpoint_event("operational.endpoint.created", doc))
        return doc, secret

    async def get(self, endpoint_id: str) -> Document:
        doc = await self._repository.get(endpoint_id)
        if doc is None:
            raise NotFound(f"outgoing webhook {endpoint_id} not found")
        return doc

    async def update(self, endpoint_id: str, body: OutgoingWebhookUpdate) -> Document:
        fields: dict[str, Any] = body.model_dump(exclude_unset=True)
        if fields.get("url") is not None:
            check_url(fields["url"], self._egress)
            fields["destination"] = None  # a URL instead of its destination
        if body.destination is not None:
            existing = await self.get(endpoint_id)
            fields["destination"] = self._destination(body.destination, existing.get("destination"))
            fields["url"] = None
        if body.transformation is not None and self._check_code is not None:
            await self._check_code(body.transformation.code)
        only_if: Document | None = None
        # Read first for headers to merge, and to say whether this PATCH enabled or
        # disabled it (operational events).
        current = await self.get(endpoint_id) if {"headers", "enabled"} & fields.keys() else None
        if current is not None and "headers" in fields:
            stored = current.get("headers")
            fields["headers"] = self._merged_headers(stored or {}, fields["headers"])
            # Written only over the headers read: a PATCH in between would be undone.
            only_if = {"headers": stored}
        if fields.get("enabled"):
            fields.update(disabled_reason=None, failing_since=None)
        if "circuit_breaker" in fields:
            self._tune_breaker(fields)
        doc = (
            await self._repository.update(endpoint_id, fields, only_if=only_if)
            if fields
            else await self.get(endpoint_id)
        )
        if doc is None:
            if only_if is not None and await self._repository.get(endpoint_id) is not None:
                raise Conflict(
                    "the endpoint's headers changed during this PATCH: read it and send again"
                )
            raise NotFound(f"outgoing webhook {endpoint_id} not found")
        if fields:
            self._announced_update(current, doc, sorted(body.model_dump(exclude_unset=True)))
        return doc

    @staticmethod
    def _tune_breaker(fields: dict[str, Any]) -> None:
        """A PATCH's `circuit_breaker` merged field by field into the stored one (an
        endpoint made before the setting has none: the fields not set keep their
        defaults). Turned off, its circuit is written closed, the later change every
        replica adopts (deliveries/circuit.py): no delivery is held by what it counted."""
        tuned: dict[str, Any] = fields.pop("circuit_breaker")
        fields.update({f"circuit_breaker.{name}": value for name, value in tuned.items()})
        if tuned.get("enabled") is False:
            fields["circuit"] = Circuit(state=State.CLOSED, changed_at=utcnow()).doc()

    def _announced_update(self, before: Document | None, doc: Document, changed: list[str]) -> None:
        self._announce(endpoint_event("operational.endpoint.updated", doc, changed=changed))
        enabled = bool(doc.get("enabled", True))
        if before is None or "enabled" not in changed or before.get("enabled", True) == enabled:
            return
        kind: OperationalType = (
            "operational.endpoint.enabled" if enabled else "operational.endpoint.disabled"
        )
        reason = "enabled through the API" if enabled else "disabled through the API"
        self._announce(endpoint_event(kind, doc, reason=reason))

    def _merged_headers(
        self, sealed: Mapping[str, str], changes: Mapping[str, str | None]
    ) -> dict[str, str]:
        merged = merge_headers(
            sealed,
            {name: None if v is None else self._box.encrypt(v) for name, v in changes.items()},
        )
        if len(merged) > MAX_HEADERS:
            raise Invalid(
                f"an endpoint has at most {MAX_HEADERS} headers ({len(merged)} with this)"
            )
        return merged

    async def rotate_secret(self, endpoint_id: str, body: RotateSecret) -> tuple[Document, str]:
        current = await self.get(endpoint_id)
        secret = self._secret(body.secret)
        now = utcnow()
        grace_until = now + timedelta(seconds=body.grace_seconds)
        kept = [
            {**old, "expires_at": min(old["expires_at"] or grace_until, grace_until)}
            for old in current["secrets"]
            if old.get("expires_at") is None or old["expires_at"] > now
        ]
        secrets = [{"secret": self._box.encrypt(secret), "expires_at": None}, *kept]
        doc = await self._repository.update(endpoint_id, {"secrets": secrets})
        if doc is None:
            raise NotFound(f"outgoing webhook {endpoint_id} not found")
        return doc, secret

    async def disable(self, endpoint_id: str, reason: str) -> Document | None:
        """Disabled by delivery itself (410 Gone, failing too long), if it was enabled."""
        doc = await self._repository.update(
            endpoint_id, {"enabled": False, "disabled_reason": reason}, only_if={"enabled": True}
        )
        if doc is not None:
            self._announce(endpoint_event("operational.endpoint.disabled", doc, reason=reason))
        return doc

    async def delete(self, endpoint_id: str) -> None:
        doc = await self._repository.soft_delete(endpoint_id)
        if doc is None:
            raise NotFound(f"outgoing webhook {endpoint_id} not found")
        self._announce(endpoint_event("operational.endpoint.deleted", doc, reason="deleted"))


def check_destination(config: Config, egress: EgressPolicy) -> None:
    """A destination's config as a whole (what one field's check cannot see), and the
    addresses it names judged as a URL is: a 422 naming the field."""
    if isinstance(config, AwsConfig) and (config.access_key_id is None) != (
        config.secret_access_key is None
    ):
        raise Invalid(
            "destination.config: access_key_id and secret_access_key go together (or "
            "neither: the environment's credentials)",
            code="invalid_destination",
        )
    for name, url in _addresses(config):
        try:
            check_url(url, egress)
        except Invalid as exc:
            raise Invalid(f"destination.config.{name}: {exc.message}", code=exc.code) from None


def _addresses(config: Config) -> list[tuple[str, str]]:
    """The addresses a config names, as http URLs for `check_url`'s judgement."""
    named: list[tuple[str, str]] = []
    for name in ("queue_url", "url"):
        value = getattr(config, name, None)
        if isinstance(value, str):
            host = urlsplit(value).netloc.rpartition("@")[2]
            named.append((name, f"http://{host}/"))
    for broker in getattr(config, "brokers", None) or []:
        named.append(("brokers", f"http://{broker}/"))
    return named
