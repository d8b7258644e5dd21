"""A generic Basic-auth source: the sender calls with a username and password (what
Alertmanager, Grafana and New Relic offer besides tokens)."""

from __future__ import annotations

import secrets

from shared.providers.catalog import Entry, Sample, Setting
from shared.providers.declared import Declared
from shared.providers.generic import LOCATION_SETTINGS, ConfiguredId, ConfiguredName
from shared.providers.schemes import Basic

WEBHOOKS = Declared(
    name="basic",
    scheme=Basic(),
    event=ConfiguredName(),
    delivery_id=ConfiguredId(),
    body="json_or_form",
)

ENTRY = Entry(
    provider="basic",
    name="Any webhook with Basic credentials",
    category="generic",
    webhooks=WEBHOOKS,
    settings=(
        Setting("username", "the username the sender gives"),
        Setting("password", "the password the sender gives (long and random)"),
        *LOCATION_SETTINGS,
    ),
    setup=(
        "Choose a username and a long random password and save them here.",
        "In the sender's webhook settings: URL {webhook_url}, with Basic authentication "
        "and the same username and password.",
    ),
    docs_url="https://www.rfc-editor.org/rfc/rfc7617",
    sample=Sample("event.json"),
    example_settings=lambda: {"username": "sender", "password": secrets.token_hex(24)},
)
