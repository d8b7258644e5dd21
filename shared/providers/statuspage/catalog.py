"""Statuspage's webhooks: nothing is signed, and a webhook subscription is only a URL and an
email address, so the URL is the only place for a secret: `?token=<url_token>`, compared in
constant time. It proves that the caller knows the URL, not that Statuspage sent the
request (the URL is shown to whoever manages the page's subscribers).

The body has no event field: an incident's is `incident.<incident.status>`, a component's
`component.<component_update.new_status>`. No delivery id: the body's digest (each
notification has its own `meta.generated_at`). Checked against Atlassian's "Enable webhook
notifications" page and zulip/zulip's captured deliveries.
"""

from __future__ import annotations

import dataclasses
import secrets

from shared.providers.base import InboundRequest
from shared.providers.catalog import Entry, Sample
from shared.providers.credentials import URL_TOKEN, URL_TOKEN_SETTING
from shared.providers.declared import Declared, Fields, Found


def _event(request: InboundRequest, fields: Fields) -> str | None:
    incident = fields.get(("incident", "status"))
    if isinstance(incident, str) and incident:
        return f"incident.{incident}"
    component = fields.get(("component_update", "new_status"))
    if isinstance(component, str) and component:
        return f"component.{component}"
    return None


WEBHOOKS = Declared(
    name="statuspage",
    scheme=URL_TOKEN,
    event=Found(_event, "`incident.status` or `component_update.new_status`"),
)

ENTRY = Entry(
    provider="statuspage",
    name="Atlassian Statuspage",
    category="incidents",
    webhooks=WEBHOOKS,
    settings=(dataclasses.replace(URL_TOKEN_SETTING, required=True),),
    events=(
        "incident.investigating",
        "incident.identified",
        "incident.monitoring",
        "incident.resolved",
        "incident.postmortem",
        "incident.scheduled",
        "incident.in_progress",
        "incident.verifying",
        "incident.completed",
        "component.operational",
        "component.degraded_performance",
        "component.partial_outage",
        "component.major_outage",
        "component.under_maintenance",
    ),
    setup=(
        "Choose a long random token (`openssl rand -hex 32`) and save it here as url_token.",
        "Page owner: Statuspage → Subscribers → Options → Settings → tick Webhook → Save.",
        "On the status page: Subscribe to updates → webhook; URL "
        "{webhook_url}?token=<url_token>; an email for failure notices; Subscribe.",
    ),
    docs_url="https://support.atlassian.com/statuspage/docs/enable-webhook-notifications/",
    sample=Sample("component_update.json"),
    example_settings=lambda: {"url_token": secrets.token_hex(32)},
)
