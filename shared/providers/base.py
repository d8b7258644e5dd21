"""The contract every provider's webhook knowledge implements, and the errors it raises.

A provider module says how to verify its webhooks, what an event is called, which id makes
a redelivery recognisable, and what to answer. The gateway runs the same pipeline for all
of them: read (bounded) → handshake? → verify → parse → dedupe → publish → answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from shared.kernel.errors import BadRequest, Unauthorized

if TYPE_CHECKING:
    import httpx

    from shared.kernel.settings import Settings

# The header of the gateway's answer to a verified webhook that says what became of it:
# `accepted` (published), `duplicate` (a redelivery: published before, not again) or
# `handshake` (answered, nothing to publish).
OUTCOME_HEADER = "hookhub-outcome"


class SignatureInvalid(Unauthorized):
    """Missing, malformed, forged or stale signature: 401, nothing published."""

    code = "invalid_signature"


class MalformedWebhook(BadRequest):
    """Verified, but the body is not what the provider sends: 400, nothing published."""

    code = "malformed_webhook"


@dataclass(frozen=True)
class InboundRequest:
    """One webhook request as received: raw body bytes, lower-cased header names.

    `url` is the URL as the provider called it (hookhub's public URL, the path and the
    query string): what Twilio, Square, HubSpot and Trello sign."""

    headers: Mapping[str, str]
    body: bytes
    received_at: datetime
    query: Mapping[str, str] = field(default_factory=dict)
    method: str = "POST"
    url: str = ""
    # The integration's settings that are not secret (a generic source's header names,
    # where its event name is): what `parse` may read besides the request.
    config: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Reply:
    """What the gateway answers. `body` None means an empty body.

    `store`: settings a handshake hands over (Asana's `X-Hook-Secret`, Notion's
    verification token), kept (sealed) on the integration before the answer is sent."""

    status: int = 200
    body: Any = None
    media_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    store: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ParsedWebhook:
    """A verified request, understood.

    - `event_type`: the provider's name for the event (`push`, `event_callback.message`,
      `application_command`, `message`, `jira:issue_created`, ...).
    - `delivery_id`: the provider's id for this delivery; the same on a redelivery. When the
      provider has none, the provider module derives one from the body.
    - `payload`: the decoded body (JSON object, or the form fields for form bodies), or an
      `ids.JsonBody` when the body is the payload, checked but not decoded.
    - `publish`: False for pure handshakes (Slack `url_verification`, Discord PING), which
      are answered and not put on Kafka.
    - `reply`: what to answer once published (or at once, when not publishing).
    - `payload_is_body`: False when the module changed the decoded JSON body (Slack drops
      its verification token): the envelope then encodes `payload` instead of carrying the
      body's own bytes.
    - `account`: the provider account the request is for (Slack team id, Discord
      application id, ...), used to route app-level requests to an integration; or a
      function that finds it, when finding it means decoding a body only app-level
      requests need decoded. Read it as `account_id`.
    """

    event_type: str
    delivery_id: str
    payload: Any
    reply: Reply = field(default_factory=Reply)
    publish: bool = True
    account: str | Callable[[], str | None] | None = None
    payload_is_body: bool = True
    # A body of several events (SendGrid, HubSpot): each published as its own envelope,
    # deduplicated by its own id; empty for the usual one event a request.
    events: tuple[ParsedWebhook, ...] = ()

    @cached_property
    def account_id(self) -> str | None:
        """Found once: app-level routing compares it with every integration's."""
        return self.account() if callable(self.account) else self.account


class ProviderWebhooks(Protocol):
    """Webhook knowledge of one provider (one module under `shared/providers/<name>/`)."""

    @property
    def name(self) -> str: ...

    @property
    def max_body_bytes(self) -> int:
        """Largest body accepted; bigger ones get 413 without being read past the limit."""
        ...

    @property
    def secret_fields(self) -> tuple[str, ...]:
        """Integration settings (write-only secrets) the verification needs, e.g.
        ("webhook_secret",); app-level fallbacks come from the environment (SPEC §3)."""
        ...

    @property
    def delivery_id_header(self) -> str | None:
        """The header carrying the provider's delivery id, for providers that send it in
        one (GitHub, Jira): what a refused request is recorded with. None: the id is in the
        body, which an unverified request is not parsed for."""
        ...

    @property
    def handshake_methods(self) -> tuple[str, ...]:
        """Methods besides POST that the provider's handshakes use (GET, HEAD)."""
        ...

    def handshake(self, request: InboundRequest, secrets: Mapping[str, str] | None) -> Reply | None:
        """An unauthenticated probe to answer before verification (Slack `ssl_check`,
        Dropbox's `GET ?challenge=`, Meta's `hub.challenge`), given the integration's
        settings; None on the app-level URL, where no integration is known and only
        Slack's `ssl_check` is answered. Only `POST` reaches `verify` and `parse`: a
        provider answers other methods here or they are refused (405)."""
        ...

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        """Raise SignatureInvalid unless the request is authentic. Constant-time compares."""
        ...

    def parse(self, request: InboundRequest) -> ParsedWebhook:
        """Understand a verified request; raise MalformedWebhook if it makes no sense."""
        ...


@runtime_checkable
class KeyedWebhooks(Protocol):
    """A provider whose requests are signed with keys it publishes (the Bot Framework's
    OpenID keys, Google's certificates), checked by a `ProviderWebhooks.verify` that holds
    them: the gateway `start`s it once with its settings (where the keys are published)
    and an HTTP client, and awaits `prepare` before each `verify`."""

    def start(self, settings: Settings, client: httpx.AsyncClient) -> None: ...

    async def prepare(self, request: InboundRequest) -> None:
        """Have the keys `request` names at hand (cached; fetched again for a key not held,
        at most so often). SignatureInvalid when the request names none the provider
        publishes; `Unavailable` (503: the provider sends again) when they cannot be
        fetched now."""
        ...
