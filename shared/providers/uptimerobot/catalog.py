"""UptimeRobot's webhooks: nothing is signed, and the body is the user's own template. On
Team and Enterprise plans the alert contact sends custom headers: a header equal to the
integration's token (`Authorization: Bearer <token>` by default). Where custom headers are
not available, only the URL can carry a secret: `?token=<url_token>`, which proves the caller
knows the URL, not that UptimeRobot sent it. The first of the two the integration has set is
what every request must carry, compared in constant time.

The event is `alert_type_friendly_name` (`Down`, `Up`) of the JSON template hookhub's setup
gives (Zulip's, with the monitor's id and the alert's time added), or `alertTypeFriendlyName`
of Zulip's earlier one; POST parameters (a form) with the same names are taken too. No delivery id:
the body's digest. Checked against UptimeRobot's "Webhook Integration" help page (custom
headers; JSON, POST parameters or a custom body) and zulip/zulip's UptimeRobot integration.
"""

from __future__ import annotations

import secrets

from shared.providers.catalog import Entry, Sample
from shared.providers.credentials import HEADER_TOKEN, URL_TOKEN, URL_TOKEN_SETTING, token_settings
from shared.providers.declared import Declared, FirstOf, FromJson
from shared.providers.schemes import AnyOf

# Zulip's template, with the monitor's id (what a notification threads on) and the alert's
# time and duration in seconds (when the outage began) added.
TEMPLATE = (
    '{"monitor_id":"*monitorID*","monitor_url":"*monitorURL*",'
    '"monitor_friendly_name":"*monitorFriendlyName*",'
    '"alert_type":"*alertType*","alert_type_friendly_name":"*alertTypeFriendlyName*",'
    '"alert_details":"*alertDetails*","alert_friendly_duration":"*alertFriendlyDuration*",'
    '"alert_duration":"*alertDuration*","alert_datetime":"*alertDateTime*"}'
)

WEBHOOKS = Declared(
    name="uptimerobot",
    scheme=AnyOf((HEADER_TOKEN, URL_TOKEN)),
    # Zulip's earlier template (still in use) names the variables as UptimeRobot does.
    event=FirstOf((FromJson("alert_type_friendly_name"), FromJson("alertTypeFriendlyName"))),
    body="json_or_form",
)

ENTRY = Entry(
    provider="uptimerobot",
    name="UptimeRobot",
    category="monitoring",
    webhooks=WEBHOOKS,
    settings=(
        *token_settings("a custom header of the webhook alert contact (Team and Enterprise)"),
        URL_TOKEN_SETTING,
    ),
    events=("Down", "Up"),
    setup=(
        "Choose a long random token (`openssl rand -hex 32`). With custom headers (Team and "
        "Enterprise plans) save it here as token; without, save it as url_token.",
        "In UptimeRobot: Integrations → Webhook; URL to notify {webhook_url} (without "
        "custom headers: {webhook_url}?token=<url_token>).",
        f"Choose Send as JSON (application/json) and paste this body: {TEMPLATE}",
        "With custom headers: add `Authorization: Bearer <token>`. Enable Down and Up "
        "notifications, save, and attach the contact to your monitors.",
    ),
    docs_url="https://help.uptimerobot.com/en/articles/14498593-webhook-integration",
    sample=Sample("monitor_down.json"),
    example_settings=lambda: {"token": secrets.token_hex(32)},
)
