"""Intercom's webhooks: `X-Hub-Signature: sha1=<hex>`, an HMAC-SHA1 of the raw body keyed by
the app's client secret (the key of a subscription made through the old API was its
`hub_secret`), lower-case hex; no timestamp, so no replay window (a redelivery is the same
notification `id`, `delivery_attempts` counting up). Intercom checks the endpoint with a
`HEAD` request when it is added: answered 200, empty.

Checked against Intercom's "Signed Notifications" reference and "Setting up webhooks"
(developers.intercom.com); Intercom's Python SDK (python-intercom) has no webhook helper.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.providers.base import InboundRequest, Reply
from shared.providers.catalog import Entry, Probe, Sample, Setting
from shared.providers.declared import Declared, FromJson
from shared.providers.schemes import Hmac


def _head(request: InboundRequest, settings: Mapping[str, str]) -> Reply | None:
    """ "When you add your endpoint URL, it must be able to receive a HEAD request, which we
    use to validate the URL": 200 with no body."""
    return Reply(200, None) if request.method == "HEAD" else None


WEBHOOKS = Declared(
    name="intercom",
    scheme=Hmac("X-Hub-Signature", setting="client_secret", algorithm="sha1", prefix="sha1="),
    event=FromJson("topic"),
    # `notif_…`, the same on every delivery attempt of the notification.
    delivery_id=FromJson("id"),
    handshakes=(_head,),
    handshake_methods=("HEAD",),
    account=FromJson("app_id"),  # one app gets every installing workspace's notifications
)

ENTRY = Entry(
    provider="intercom",
    name="Intercom",
    category="support",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            "client_secret",
            "the app's Client secret (Developer Hub → your app → Basic information); for a "
            "subscription made through the old API, its hub_secret",
        ),
    ),
    handshake="HEAD on the URL when it is added: 200, empty",
    events=(
        "conversation.user.created",
        "conversation.user.replied",
        "conversation.admin.replied",
        "conversation.admin.assigned",
        "conversation.admin.closed",
        "conversation.admin.opened",
        "conversation.admin.snoozed",
        "conversation.admin.noted",
        "contact.user.created",
        "contact.lead.created",
        "contact.deleted",
        "company.created",
        "ticket.created",
        "user.created",
        "ping",
    ),
    setup=(
        "In Intercom's Developer Hub: your app → Configure → Webhooks.",
        "Endpoint URL: {webhook_url} (Intercom checks it with a HEAD request, answered at "
        "once); select the topics and save.",
        "Copy the app's Client secret (Basic information) and save it here as client_secret.",
    ),
    docs_url="https://developers.intercom.com/docs/webhooks/setting-up-webhooks",
    sample=Sample("user.created.json"),
    handshake_probe=lambda settings, url, now: Probe("HEAD", status=200, answer=b""),
)
