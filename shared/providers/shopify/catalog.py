"""Shopify's webhooks: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of the raw body>`, keyed
by the app's client secret as text (a webhook made in the store admin: the key that admin
page shows); no prefix, one signature, no signed time (`X-Shopify-Triggered-At` is not
signed). The topic is `X-Shopify-Topic`, the delivery's id `X-Shopify-Webhook-Id`.

Checked against https://shopify.dev/docs/apps/build/webhooks/verify-deliveries and
https://shopify.dev/docs/apps/build/webhooks/delivery-structure. Shopify's Python package
(ShopifyAPI 12.7) has no webhook helper (its `validate_hmac` is OAuth's hex HMAC of query
parameters), so the tests sign as the docs describe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from shared.providers.base import InboundRequest, SignatureInvalid
from shared.providers.catalog import Entry, Sample, Setting
from shared.providers.declared import Declared, FromHeader
from shared.providers.schemes import Hmac


@dataclass(frozen=True)
class WithPrevious:
    """`scheme` keyed by the integration's secret, else by the secret it replaced: "If you
    rotate your app's client secret, it can take up to an hour for the HMAC digest to be
    generated using the new secret", so both are good until `previous` is cleared."""

    scheme: Hmac
    previous: str

    @property
    def name(self) -> str:
        return self.scheme.name

    @property
    def settings(self) -> tuple[str, ...]:
        return (*self.scheme.settings, self.previous)

    @property
    def headers(self) -> tuple[str, ...]:
        return self.scheme.headers

    def configured(self, secrets: Mapping[str, str]) -> bool:
        return self.scheme.configured(secrets)

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        try:
            self.scheme.verify(request, secrets, now)
        except SignatureInvalid:
            previous = secrets.get(self.previous)
            if not previous or not secrets.get(self.scheme.setting):
                raise
            self.scheme.verify(request, {self.scheme.setting: previous}, now)

    def sign(
        self, request: InboundRequest, secrets: Mapping[str, str], now: datetime
    ) -> dict[str, str]:
        return self.scheme.sign(request, secrets, now)


WEBHOOKS = Declared(
    name="shopify",
    scheme=WithPrevious(
        Hmac("x-shopify-hmac-sha256", setting="client_secret", encoding="base64"),
        previous="previous_client_secret",
    ),
    event=FromHeader("x-shopify-topic"),
    # "A unique composite key per delivery. Use to identify and deduplicate individual
    # deliveries." `X-Shopify-Event-Id` is shared by every subscription's delivery of one
    # merchant action: deduplicating on it would drop the other subscriptions' deliveries.
    delivery_id=FromHeader("x-shopify-webhook-id"),
    # Shopify documents no limit; a payload is the whole REST resource (an order with its
    # line items), so GitHub's 25 MiB rather than the usual 1 MiB.
    max_body_bytes=25 * 1024 * 1024,
    account=FromHeader("x-shopify-shop-domain"),  # the store the event is from
)

ENTRY = Entry(
    provider="shopify",
    name="Shopify",
    category="commerce",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            "client_secret",
            "the app's Client secret (Dev Dashboard → the app → Settings); for a webhook "
            "made in the store admin, the key shown under Settings → Notifications → Webhooks",
        ),
        Setting(
            "previous_client_secret",
            "after rotating the client secret: the old one, accepted too while Shopify "
            "switches to the new one (up to an hour); clear it afterwards",
            required=False,
        ),
    ),
    events=(
        "orders/create",
        "orders/updated",
        "orders/paid",
        "orders/cancelled",
        "orders/fulfilled",
        "refunds/create",
        "products/create",
        "products/update",
        "products/delete",
        "customers/create",
        "customers/update",
        "inventory_levels/update",
        "app/uninstalled",
        "customers/data_request",
        "customers/redact",
        "shop/redact",
    ),
    setup=(
        "For an app: subscribe in shopify.app.toml ([[webhooks.subscriptions]] with topics "
        'and uri = "{webhook_url}") or with the Admin API\'s webhookSubscriptionCreate '
        "(callbackUrl: {webhook_url}), and save the app's Client secret here as "
        "client_secret.",
        "For a store's own webhook: Shopify admin → Settings → Notifications → Webhooks → "
        "Create webhook, format JSON, URL {webhook_url}; save the signing key shown there "
        "as client_secret.",
    ),
    docs_url="https://shopify.dev/docs/apps/build/webhooks/verify-deliveries",
    sample=Sample(
        "products_update.json",
        headers={
            "x-shopify-topic": "products/update",
            "x-shopify-webhook-id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            "x-shopify-shop-domain": "my-store.myshopify.com",
            "x-shopify-api-version": "2025-04",
            "x-shopify-event-id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
            "x-shopify-triggered-at": "2025-04-22T19:30:00.000000000Z",
        },
    ),
)
