"""Sentry's integration-platform webhooks (an internal or public integration):
`Sentry-Hook-Signature: <hex HMAC-SHA256 of the raw body>`, keyed by the integration's
Client Secret as text; no prefix, one signature. `Sentry-Hook-Timestamp` is sent but not
signed, so it is no replay window (anyone could change it). The event is
`Sentry-Hook-Resource` + `.` + the body's `action` (`issue.created`); the delivery id the
`Request-ID` header.

Checked against https://docs.sentry.io/integrations/integration-platform/webhooks/ (its
headers and its Python example: `hmac.new(key=client_secret.encode("utf-8"), msg=body,
digestmod=hashlib.sha256).hexdigest()`) and Sentry's server, getsentry/sentry
`src/sentry/sentry_apps/api/serializers/app_platform_event.py` (signs the very bytes it
sends). The docs' example re-serialises the parsed body; hookhub signs the raw bytes, as
the server does. sentry-sdk (the error reporting client) has no webhook helper and Sentry
publishes no test vector; the tests sign as the docs do.
"""

from __future__ import annotations

from shared.providers.catalog import Entry, Sample, Setting
from shared.providers.declared import Declared, FromHeader, FromJson, Joined
from shared.providers.schemes import Hmac

WEBHOOKS = Declared(
    name="sentry",
    scheme=Hmac("sentry-hook-signature", setting="client_secret"),
    event=Joined((FromHeader("sentry-hook-resource"), FromJson("action"))),
    delivery_id=FromHeader("request-id"),
)

ENTRY = Entry(
    provider="sentry",
    name="Sentry",
    category="monitoring",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            "client_secret",
            "the integration's Client Secret (Settings → Developer Settings → Custom "
            "Integrations → the integration → Credentials)",
        ),
        Setting(
            "api_token",
            "a token of the integration (its Credentials → Token) with Issue & Event: Read & "
            "Write, to resolve, ignore and assign issues from the channel; without it cards "
            "offer nothing",
            required=False,
        ),
    ),
    events=(
        "issue.created",
        "issue.resolved",
        "issue.assigned",
        "issue.archived",
        "issue.unresolved",
        "error.created",
        "comment.created",
        "comment.updated",
        "comment.deleted",
        "event_alert.triggered",
        "metric_alert.critical",
        "metric_alert.warning",
        "metric_alert.resolved",
        "installation.created",
        "installation.deleted",
    ),
    setup=(
        "In Sentry: Settings → Developer Settings → Custom Integrations → Create New "
        "Integration → Internal Integration.",
        "Webhook URL: {webhook_url}; turn on Alert Rule Action to use it in alert rules; "
        "under Webhooks tick issue, error and comment, with the permissions they need "
        "(Issue & Event: Read); Save.",
        "Copy the integration's Client Secret and save it here as client_secret.",
    ),
    docs_url="https://docs.sentry.io/integrations/integration-platform/webhooks/",
    sample=Sample(
        "issue_created.json",
        headers={
            "sentry-hook-resource": "issue",
            "request-id": "7b3c1f0e9a2d4c6b8e5f1a3d2c4b6e8f",
            "sentry-hook-timestamp": "1566248317",
        },
    ),
)
