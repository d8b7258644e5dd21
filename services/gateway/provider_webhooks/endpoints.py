"""`POST /api/webhooks/{provider}/{integration_id}` and `POST /api/webhooks/{provider}`.

read (bounded) → handshake? → verify → parse → dedupe → publish (acks=all) → answer.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram

from services.gateway.provider_webhooks.service import (
    AppSecrets,
    Deduplicator,
    RateLimiter,
    check_usable,
    envelope_for,
    verify_app_level,
)
from shared.domain import claim_check
from shared.domain.integrations.model import IntegrationSnapshot
from shared.domain.integrations.repository import COLLECTION as INTEGRATIONS
from shared.domain.integrations.repository import IntegrationRepository
from shared.domain.usage import UsageCounters
from shared.kernel import tracing
from shared.kernel.cache import RefreshingCache
from shared.kernel.envelopes import Encoded, ProviderEvent, Topic
from shared.kernel.errors import (
    BadRequest,
    Conflict,
    HookhubError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unavailable,
)
from shared.kernel.http.ingress import IngressRequest, IngressRoute, RawResponse
from shared.kernel.ids import utcnow
from shared.kernel.metrics import LATENCY_BUCKETS, Labelled
from shared.kernel.mongo import UNAVAILABLE_ERRORS, BatchedWriter
from shared.kernel.runtime import Runtime
from shared.kernel.settings import GatewaySettings
from shared.providers import WEBHOOK_PROVIDERS
from shared.providers.base import (
    OUTCOME_HEADER,
    InboundRequest,
    KeyedWebhooks,
    MalformedWebhook,
    ParsedWebhook,
    ProviderWebhooks,
    Reply,
    SignatureInvalid,
)
from shared.providers.ids import JsonBody

_OUTCOMES: dict[type[HookhubError], str] = {
    SignatureInvalid: "bad_signature",
    MalformedWebhook: "malformed",
    PayloadTooLarge: "too_large",
}


class ProviderIngress:
    """Everything the provider routes share, built once per gateway process."""

    def __init__(
        self,
        runtime: Runtime,
        integrations: RefreshingCache[str, IntegrationSnapshot],
        dedupe: Deduplicator,
        writer: BatchedWriter,
        usage: UsageCounters,
        app_secrets: AppSecrets,
        registry: CollectorRegistry,
        repository: IntegrationRepository,
    ) -> None:
        settings = runtime.settings
        assert isinstance(settings, GatewaySettings)
        self.settings = settings
        self.repository = repository
        # What providers call: the URL Twilio, Square, HubSpot and Trello sign.
        self.public_url = settings.public_url.rstrip("/")
        self.runtime = runtime
        self.integrations = integrations
        self.dedupe = dedupe
        self.writer = writer
        self.usage = usage
        self.app_secrets = app_secrets
        # Providers whose keys are fetched before verification (`KeyedWebhooks`).
        self.keyed = {
            name: webhooks
            for name, webhooks in WEBHOOK_PROVIDERS.items()
            if isinstance(webhooks, KeyedWebhooks)
        }
        self.limiter = RateLimiter(settings.default_rate_limit_per_second)
        self.requests = Labelled(
            Counter(
                "hookhub_gateway_webhooks_total",
                "Provider webhooks by outcome",
                ["provider", "outcome"],
                registry=registry,
            )
        )
        self.latency = Labelled(
            Histogram(
                "hookhub_gateway_webhook_seconds",
                "Provider webhook handling time",
                ["provider"],
                registry=registry,
                buckets=LATENCY_BUCKETS,
            )
        )

    async def handle(
        self,
        provider: str,
        integration_id: str | None,
        request: IngressRequest,
        delivery_method: str = "POST",
    ) -> RawResponse:
        started = time.perf_counter()
        outcome = "error"
        integration: IntegrationSnapshot | None = None
        inbound: InboundRequest | None = None
        try:
            webhooks = WEBHOOK_PROVIDERS.get(provider)
            if webhooks is None:
                outcome = "unknown_provider"
                raise NotFound(f"no provider {provider!r}", code="unknown_provider")
            if (
                request.method != delivery_method
                and request.method not in webhooks.handshake_methods
            ):
                outcome = "method_not_allowed"
                raise MethodNotAllowed(
                    f"{provider} webhooks are {delivery_method} requests here",
                    code="method_not_allowed",
                    headers={"Allow": ", ".join((delivery_method, *webhooks.handshake_methods))},
                )
            if integration_id is not None:
                integration = check_usable(await self.integrations.lookup(integration_id), provider)
            inbound = InboundRequest(
                headers=request.headers,
                body=await request.body(webhooks.max_body_bytes),
                received_at=utcnow(),
                query=request.query_params,
                method=request.method,
                url=self.public_url + request.path_and_query,
                config=integration.config if integration is not None else {},
            )
            # A handshake is answered only for an integration that exists and is enabled
            # (None: the app-level URL, where only Slack's ssl_check is).
            secrets = (
                self.app_secrets.for_integration(integration) if integration is not None else None
            )
            handshake = webhooks.handshake(inbound, secrets)
            if handshake is not None:
                outcome = "handshake"
                if handshake.store and integration is not None:
                    await self._keep(integration, handshake.store)
                return _render(handshake)
            if request.method != delivery_method:
                outcome = "method_not_allowed"
                raise MethodNotAllowed(
                    f"this {request.method} is no {provider} handshake",
                    code="method_not_allowed",
                    headers={"Allow": ", ".join((delivery_method, *webhooks.handshake_methods))},
                )
            keyed = self.keyed.get(provider)
            if keyed is not None:
                await keyed.prepare(inbound)
            if integration is None:
                integration, parsed = await self._app_level(webhooks, inbound)
            else:
                integration = await self._verify(webhooks, integration, inbound)
                parsed = webhooks.parse(inbound)
            # After verification, so forged requests cannot spend an integration's budget.
            self.limiter.take(integration)
            outcome = await self._accept(integration, parsed, inbound)
            response = _render(parsed.reply)
            # Whether this was news or a redelivery (which a 200 alone does not say): for
            # whoever sends by hand (the sandbox's page, a curl), told only to a sender
            # that passed verification.
            response.raw_headers.append((OUTCOME_HEADER.encode(), outcome.encode()))
            return response
        except HookhubError as exc:
            outcome = _OUTCOMES.get(type(exc), outcome if outcome != "error" else exc.code)
            if isinstance(exc, Unavailable):
                outcome = "unavailable"
            if (
                integration is not None
                and inbound is not None
                and isinstance(exc, (SignatureInvalid, MalformedWebhook))
            ):
                self._record_refusal(integration, webhooks, inbound, exc)
            raise
        except UNAVAILABLE_ERRORS:  # MongoDB, on a cache miss: answered 503 by the app
            outcome = "unavailable"
            raise
        finally:
            label = provider if provider in WEBHOOK_PROVIDERS else "unknown"
            self.requests(label, outcome).inc()
            self.latency(label).observe(time.perf_counter() - started)

    def _record_refusal(
        self,
        integration: IntegrationSnapshot,
        webhooks: ProviderWebhooks | None,
        inbound: InboundRequest,
        refusal: HookhubError,
    ) -> None:
        """`error_count` + 1 and why in `last_webhook_error`, both in the integration's next
        batched write: a forged request costs no MongoDB round trip of its own."""
        header = webhooks.delivery_id_header if webhooks is not None else None
        try:
            delivery_id = (inbound.header(header) or "").strip()[:200] if header else ""
        except BadRequest:  # not UTF-8: the refusal is still recorded, without it
            delivery_id = ""
        self.writer.bump(INTEGRATIONS, integration.id, "error_count")
        self.writer.set_fields(
            INTEGRATIONS,
            integration.id,
            {
                "last_webhook_error": {
                    "code": refusal.code,
                    "message": refusal.message[:1000],
                    "at": inbound.received_at,
                    "delivery_id": delivery_id or None,
                }
            },
        )

    async def _verify(
        self, webhooks: ProviderWebhooks, integration: IntegrationSnapshot, inbound: InboundRequest
    ) -> IntegrationSnapshot:
        """Verify with the integration's secrets; if they fail, once more with the stored
        ones: a secret PATCHed a moment ago (through the oauth service or another replica)
        applies at once, not at the next cache refresh. At most one re-read a second per
        integration, so forged requests cannot turn into a MongoDB read each."""
        try:
            webhooks.verify(
                inbound, self.app_secrets.for_integration(integration), inbound.received_at
            )
        except SignatureInvalid as refused:
            try:
                fresher = await self.integrations.reread(integration.id)
            except UNAVAILABLE_ERRORS:  # MongoDB away: the answer is what the cache says
                fresher = None
            if fresher is None:
                raise refused
            integration = check_usable(fresher, webhooks.name)
            webhooks.verify(
                inbound, self.app_secrets.for_integration(integration), inbound.received_at
            )
        return integration

    async def _app_level(
        self, webhooks: ProviderWebhooks, inbound: InboundRequest
    ) -> tuple[IntegrationSnapshot, ParsedWebhook]:
        try:
            return self._app_level_once(webhooks, inbound)
        except NotFound:
            # No integration for the account (or no default) in what this replica holds:
            # one made a moment ago (a Slack event a second after the integration) is in
            # MongoDB already. Once the cache covers the request's arrival (one refresh,
            # shared by every request waiting for it), the routing is done again.
            with contextlib.suppress(*UNAVAILABLE_ERRORS):
                await self.integrations.covering(inbound.received_at)
            return self._app_level_once(webhooks, inbound)
        except SignatureInvalid as refused:
            if self.app_secrets.for_provider(webhooks.name):
                raise  # the app's own secret failed, not an integration's
            # Tried with the default integrations' cached secrets: as in _verify, once more
            # with the stored ones if any of them changed a moment ago.
            fresher = False
            for integration in self.integrations.values():
                if integration.provider == webhooks.name and integration.is_default:
                    with contextlib.suppress(*UNAVAILABLE_ERRORS):
                        fresher |= await self.integrations.reread(integration.id) is not None
            if not fresher:
                raise refused
            return self._app_level_once(webhooks, inbound)

    def _app_level_once(
        self, webhooks: ProviderWebhooks, inbound: InboundRequest
    ) -> tuple[IntegrationSnapshot, ParsedWebhook]:
        usable = [
            i
            for i in self.integrations.values()
            if i.provider == webhooks.name and i.enabled and i.status != "disconnected"
        ]
        defaults = [i for i in usable if i.is_default]
        return verify_app_level(webhooks, inbound, defaults, usable, self.app_secrets)

    async def _keep(self, integration: IntegrationSnapshot, values: Mapping[str, str]) -> None:
        """Settings a handshake handed over (Asana's X-Hook-Secret), sealed on the
        integration before the answer: the provider signs with them from the next request.
        Only when the integration holds none yet: a second handshake cannot replace them
        (the operator clears the setting first, docs/providers.md)."""
        sealed = {name: self.runtime.secrets.encrypt(value) for name, value in values.items()}
        try:
            kept = await self.repository.keep_secrets(integration.id, sealed)
        except UNAVAILABLE_ERRORS as exc:
            raise Unavailable("the integration store is unavailable; retry later") from exc
        if not kept:
            raise Conflict(
                f"this integration already holds {', '.join(values)}; clear it (PATCH "
                f"/api/integrations/{integration.id} with settings {{{values_null(values)}}}) "
                "to take a new one",
                code="handshake_refused",
            )
        with contextlib.suppress(*UNAVAILABLE_ERRORS):
            await self.integrations.reread(integration.id, at_most_every=0)

    async def _accept(
        self, integration: IntegrationSnapshot, parsed: ParsedWebhook, inbound: InboundRequest
    ) -> str:
        if not parsed.publish:
            return "handshake"
        # Several events in one body: each its own envelope, all handed to Kafka together
        # and acknowledged together before the 2xx. One by one, 5,000 of Graph's took
        # longer than the edge waits: a 504 after most of them were published.
        fresh: dict[str, Encoded] = {}
        for event in parsed.events or (parsed,):
            envelope = envelope_for(integration, event, inbound)
            if envelope.id in fresh or await self.dedupe.seen(envelope.id):
                continue
            fresh[envelope.id] = await self._encoded(envelope, event, inbound)
        if not fresh:
            return "duplicate"
        await self.runtime.publisher.publish_encoded(Topic.PROVIDER_EVENTS, list(fresh.values()))
        now = utcnow()
        for envelope_id in fresh:
            self.dedupe.remember(envelope_id, now)
            self.usage.event(integration.workspace_id, integration.provider)
        self.writer.bump(
            INTEGRATIONS,
            integration.id,
            "event_count",
            by=len(fresh),
            set_max={"last_event_at": now},
        )
        return "accepted"

    async def _encoded(
        self, envelope: ProviderEvent, parsed: ParsedWebhook, inbound: InboundRequest
    ) -> Encoded:
        """The envelope as it goes to Kafka: with the body's raw JSON, or by reference to the
        stored body when too large for one Kafka message."""
        raw = _raw_payload(inbound, parsed)
        value = envelope.to_kafka() if raw is None else envelope.to_kafka_with_raw_payload(raw)
        # Headroom for the record's key, headers and batch framing.
        if len(value) > self.settings.kafka_max_message_bytes - 16 * 1024:
            envelope = await self._claim_check(envelope, inbound)
            value = envelope.to_kafka()
        tracing.describe(envelope)
        return Encoded(envelope.id, envelope.partition_key(), value, envelope.kafka_headers())

    async def _claim_check(self, envelope: ProviderEvent, inbound: InboundRequest) -> ProviderEvent:
        """Too large for one Kafka message: store the raw body and send a reference."""
        try:
            ref = await claim_check.store(
                self.runtime.db,
                inbound.body,
                filename=envelope.id,
                metadata={
                    "provider": envelope.provider,
                    "integration_id": envelope.integration_id,
                    "content_type": inbound.header("content-type"),
                },
            )
        except UNAVAILABLE_ERRORS as exc:
            raise Unavailable("the payload store is unavailable; retry later") from exc
        return envelope.model_copy(update={"payload": None, "payload_ref": ref})


def values_null(values: Mapping[str, str]) -> str:
    """`"a": null, "b": null`: the PATCH that clears these settings."""
    return ", ".join(f'"{name}": null' for name in values)


def _raw_payload(inbound: InboundRequest, parsed: ParsedWebhook) -> bytes | None:
    """The payload's JSON bytes, when the body is the payload (forms are decoded instead)."""
    if isinstance(parsed.payload, JsonBody):
        return parsed.payload.raw
    if not parsed.payload_is_body:
        return None
    content_type = (inbound.header("content-type") or "").split(";", 1)[0].strip().lower()
    if content_type == "application/json" and isinstance(parsed.payload, dict):
        return inbound.body
    return None


def _render(reply: Reply) -> RawResponse:
    if reply.body is None:
        response = RawResponse(reply.status)
    elif reply.media_type == "application/json":
        response = RawResponse.json(reply.body, reply.status)
    else:
        body = reply.body if isinstance(reply.body, bytes) else str(reply.body).encode()
        response = RawResponse(reply.status, body, reply.media_type)
    for name, value in reply.headers.items():
        response.raw_headers.append((name.lower().encode(), value.encode("latin-1")))
    return response


async def provider_webhook(request: IngressRequest) -> RawResponse:
    """A webhook for one integration: the URL to paste into the provider's settings."""
    ingress: ProviderIngress = request.app.state.provider_ingress
    params = request.path_params
    if len(params["integration_id"]) > _MAX_ID:
        raise NotFound("no integration with this id", code="unknown_integration")
    return await ingress.handle(params["provider"], params["integration_id"], request)


async def appservice_transaction(request: IngressRequest) -> RawResponse:
    """A transaction PUT to a sub-path of an integration's webhook URL (a Matrix
    homeserver's to its application service, whose `url` the webhook URL is)."""
    return await _appservice(request, "PUT")


async def appservice_ping(request: IngressRequest) -> RawResponse:
    """`POST {url}/_matrix/app/v1/ping`: answered by the provider's handshake."""
    return await _appservice(request, "POST")


async def _appservice(request: IngressRequest, delivery_method: str) -> RawResponse:
    ingress: ProviderIngress = request.app.state.provider_ingress
    params = request.path_params
    if params["provider"] not in _PUT_PROVIDERS or len(params["integration_id"]) > _MAX_ID:
        raise NotFound("no such appservice", code="unknown_integration")
    return await ingress.handle(
        params["provider"], params["integration_id"], request, delivery_method
    )


async def app_level_webhook(request: IngressRequest) -> RawResponse:
    """A webhook for the provider app: routed to the integration it belongs to."""
    ingress: ProviderIngress = request.app.state.provider_ingress
    return await ingress.handle(request.path_params["provider"], None, request)


_MAX_ID = 200
_RESPONSES = {
    200: "accepted (on Kafka), a duplicate, or a handshake answer",
    400: "verified, but not what the provider sends (malformed)",
    401: "missing, invalid or stale signature",
    403: "integration disabled",
    404: "unknown provider or integration",
    405: "a method the provider does not use (GET and HEAD are its handshakes only)",
    409: "a handshake handing over a secret the integration already holds",
    413: "body over the provider's limit",
    429: "rate limited; see Retry-After",
    503: "Kafka or the payload store unavailable: nothing accepted, retry",
}
_MEDIA = ("application/json", "application/x-www-form-urlencoded")
# The providers by name: `/api/webhooks/incoming/{token}` (matched first) is no provider's,
# which the document says rather than two templates that overlap. Another name is a 404.
_PROVIDER = {
    "provider": {"type": "string", "enum": sorted(WEBHOOK_PROVIDERS)},
}
# Providers whose deliveries are PUT to sub-paths of the webhook URL (Matrix transactions).
_PUT_PROVIDERS = sorted(
    name
    for name, webhooks in WEBHOOK_PROVIDERS.items()
    if getattr(webhooks, "delivery_method", "POST") == "PUT"
)
_APPSERVICE = {"provider": {"type": "string", "enum": _PUT_PROVIDERS}}
_APPSERVICE_BASE = "/api/webhooks/{provider}/{integration_id}"
INGRESS = [
    IngressRoute(
        "/api/webhooks/{provider}/{integration_id}",
        provider_webhook,
        summary="A provider webhook for one integration (any provider of the catalog)",
        responses=_RESPONSES,
        request_media_types=_MEDIA,
        parameter_schemas=_PROVIDER,
        # Dropbox's and Meta's GET challenges, Trello's HEAD: answered for the providers
        # that send them, 405 for the others.
        other_methods=("GET", "HEAD"),
    ),
    IngressRoute(
        "/api/webhooks/{provider}",
        app_level_webhook,
        summary="A provider app's webhook, routed to the integration it is for",
        responses=_RESPONSES,
        request_media_types=_MEDIA,
        parameter_schemas=_PROVIDER,
    ),
    # After the others: a Matrix homeserver's paths are longer, and matched last so that
    # the benchmarked webhooks are not slowed by them.
    IngressRoute(
        _APPSERVICE_BASE + "/_matrix/app/v1/transactions/{txn_id}",
        appservice_transaction,
        summary="An application service transaction (Matrix), PUT by the homeserver",
        responses=_RESPONSES,
        request_media_types=_MEDIA,
        parameter_schemas=_APPSERVICE,
        other_methods=("PUT",),
    ),
    IngressRoute(
        _APPSERVICE_BASE + "/transactions/{txn_id}",
        appservice_transaction,
        summary="An application service transaction on the legacy path (Matrix)",
        responses=_RESPONSES,
        request_media_types=_MEDIA,
        parameter_schemas=_APPSERVICE,
        other_methods=("PUT",),
    ),
    IngressRoute(
        _APPSERVICE_BASE + "/_matrix/app/v1/ping",
        appservice_ping,
        summary="An application service ping (Matrix), POSTed by the homeserver",
        responses=_RESPONSES,
        request_media_types=_MEDIA,
        parameter_schemas=_APPSERVICE,
    ),
]
