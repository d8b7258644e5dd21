"""Opsgenie's outgoing Webhook integration: nothing is signed; its only lever is the custom
headers the user adds, so a header equal to the integration's token is what every request
must carry (`Authorization: Bearer <token>` by default, or the header and prefix the
integration names), compared in constant time. No timestamp, no delivery id: the body's
digest dedupes a retry (`alert.updatedAt`, in nanoseconds, differs between actions).

Checked against Opsgenie's "Webhook Integration" docs (https://docs.opsgenie.com/v1.0/docs/
webhook-integration: "users define custom headers to add the webhook call") and its alert
action data page (the body, `action` naming it).
"""

from __future__ import annotations

import secrets

from shared.providers.catalog import Entry, Sample, Setting
from shared.providers.credentials import HEADER_TOKEN, token_settings
from shared.providers.declared import Declared, FromJson

WEBHOOKS = Declared(
    name="opsgenie",
    scheme=HEADER_TOKEN,
    event=FromJson("action"),  # Create, Acknowledge, Close, AddNote, … or a custom action
    # Description and details are cut at 1000 characters each: alerts stay small.
)

ENTRY = Entry(
    provider="opsgenie",
    name="Opsgenie",
    category="incidents",
    webhooks=WEBHOOKS,
    settings=(
        *token_settings("a custom header of the Webhook integration", required=True),
        # Acting from the channel (SPEC §20, ./acting.py): without it, no buttons.
        Setting(
            "api_key",
            "the API key of an Opsgenie API integration with read and write access, to "
            "acknowledge and close alerts from the channel; unset, cards have no buttons",
            required=False,
        ),
    ),
    events=(
        "Create",
        "Acknowledge",
        "UnAcknowledge",
        "Close",
        "Delete",
        "AddNote",
        "AddTags",
        "RemoveTags",
        "AddTeam",
        "AddRecipient",
        "AssignOwnership",
        "TakeOwnership",
        "Escalate",
        "TestAction",
    ),
    setup=(
        "Choose a long random token (`openssl rand -hex 32`) and save it here as token.",
        "In Opsgenie: Settings → Integrations → Add integration → Webhook; Webhook URL "
        "{webhook_url}; add the custom header `Authorization: Bearer <token>`.",
        "Under Opsgenie to Webhook, map the alert actions to post (Create, Acknowledge, "
        "Close, …), save and turn the integration on.",
    ),
    docs_url="https://support.atlassian.com/opsgenie/docs/integrate-opsgenie-with-webhook/",
    sample=Sample("create.json"),
    example_settings=lambda: {"token": secrets.token_hex(32)},
)
