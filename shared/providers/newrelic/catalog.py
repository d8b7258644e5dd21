"""New Relic's Webhook destinations: nothing is signed. A destination carries a token
(`Authorization: <prefix> <token>`, the UI's "Bearer token": prefix `Bearer`), Basic
credentials, or custom headers: the first of a token (in `Authorization` with its prefix, or
the header the integration names) or Basic credentials the integration has set is what every
request must carry, compared in constant time.

The body is the workflow's payload template; the event is the default template's `state`
(`CREATED`, `ACTIVATED`, `CLOSED`), or the legacy alert policy webhook's `current_state`.
No delivery id: the body's digest (`updatedAt` differs between notifications of an issue).
Checked against newrelic/terraform-provider-newrelic's `notification_destination` docs
(`auth_basic`, `auth_token` with `prefix`, custom headers) and zulip/zulip's deliveries of the
default payload and of the legacy webhook.
"""

from __future__ import annotations

import secrets

from shared.providers.catalog import Entry, Sample
from shared.providers.credentials import BASIC, HEADER_TOKEN, basic_settings, token_settings
from shared.providers.declared import Declared, FirstOf, FromJson
from shared.providers.schemes import AnyOf

WEBHOOKS = Declared(
    name="newrelic",
    scheme=AnyOf((HEADER_TOKEN, BASIC)),
    # The default workflow payload's `state`; the legacy alert policy webhook's
    # `current_state` (`open`, `acknowledged`, `closed`).
    event=FirstOf((FromJson("state"), FromJson("current_state"))),
)

ENTRY = Entry(
    provider="newrelic",
    name="New Relic",
    category="monitoring",
    webhooks=WEBHOOKS,
    settings=(
        *token_settings(
            "the Webhook destination's Bearer token (its prefix, when not Bearer, as prefix), "
            "or as a custom header named in header"
        ),
        *basic_settings("the Webhook destination's Basic authentication"),
    ),
    events=("CREATED", "ACTIVATED", "CLOSED"),
    setup=(
        "Choose a long random token (`openssl rand -hex 32`) and save it here as token (or "
        "a username and password for Basic authentication).",
        "In New Relic: Alerts → Destinations → Add a destination → Webhook; Endpoint URL "
        "{webhook_url}; Authorization Bearer token with the token (or Basic); save.",
        "Alerts → Workflows → + Add a workflow; filter the issues; Notify → Webhook with "
        "that destination, keeping the default payload template; activate the workflow.",
    ),
    docs_url=(
        "https://docs.newrelic.com/docs/alerts/get-notified/notification-integrations/#webhook"
    ),
    sample=Sample("issue_created.json"),
    example_settings=lambda: {"token": secrets.token_hex(32)},
)
