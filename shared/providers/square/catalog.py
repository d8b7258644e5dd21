"""Square's webhooks: `x-square-hmacsha256-signature`, the standard base64 of an HMAC-SHA256
of the subscription's notification URL immediately followed by the raw body, keyed by the
subscription's Signature Key as text (not decoded). No timestamp is signed, so there is no
replay window: a redelivery carries the same `event_id`.

The URL is the one entered in Square. hookhub's webhook URL is what the user pastes, so by
default it is the URL the request was made to; `notification_url` holds another (a proxy
in front of hookhub). Checked against Square's "Verify and Validate an Event Notification"
and its Python SDK (squareup 46, `square.utils.webhooks_helper.verify_signature`), whose
tests' vectors the tests verify.
"""

from __future__ import annotations

from shared.providers.base import InboundRequest
from shared.providers.catalog import Entry, Sample, Setting
from shared.providers.declared import Declared, FromJson
from shared.providers.schemes import BODY, Custom, Hmac


def notification_url(request: InboundRequest) -> bytes:
    """The subscription's notification URL: the integration's `notification_url` if set,
    else the URL Square called."""
    return (request.config.get("notification_url") or request.url).encode()


WEBHOOKS = Declared(
    name="square",
    scheme=Hmac(
        "x-square-hmacsha256-signature",
        setting="signature_key",
        encoding="base64",
        signed=(Custom(notification_url, "the notification URL"), BODY),
    ),
    event=FromJson("type"),
    # "Use the generated idempotency value that's included as the event_id field".
    delivery_id=FromJson("event_id"),
    account=FromJson("merchant_id"),
)

ENTRY = Entry(
    provider="square",
    name="Square",
    category="commerce",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            "signature_key",
            "the subscription's Signature Key (Developer Console → your application → "
            "Webhooks → Subscriptions → the subscription → Show)",
        ),
        Setting(
            "notification_url",
            "the Notification URL entered in Square, only if it is not this integration's "
            "webhook URL (a proxy in front of hookhub): Square signs the URL it was given",
            secret=False,
            required=False,
            pattern=r"https?://\S{1,2000}",
        ),
    ),
    events=(
        "payment.created",
        "payment.updated",
        "refund.created",
        "refund.updated",
        "order.created",
        "order.updated",
        "order.fulfillment.updated",
        "invoice.payment_made",
        "invoice.published",
        "customer.created",
        "customer.updated",
        "subscription.created",
        "subscription.updated",
        "dispute.created",
        "webhooks.test_notification",
    ),
    setup=(
        "In the Square Developer Console: your application → Webhooks → Subscriptions → "
        "Add subscription.",
        "Notification URL: {webhook_url}; choose the API version and the events; save.",
        "Open the subscription, show its Signature Key and save it here as signature_key.",
        "Send a test event to check.",
    ),
    docs_url="https://developer.squareup.com/docs/webhooks/step3validate",
    sample=Sample("webhooks.test_notification.json"),
)
