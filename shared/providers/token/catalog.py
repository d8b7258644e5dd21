"""A generic token source: a header holds a secret the integration knows (a bearer token by
default), as Alertmanager, New Relic and many senders offer."""

from __future__ import annotations

import secrets

from shared.providers.catalog import Entry, Sample, Setting
from shared.providers.declared import Declared
from shared.providers.generic import (
    LOCATION_SETTINGS,
    ConfiguredId,
    ConfiguredName,
    ConfiguredToken,
)

WEBHOOKS = Declared(
    name="token",
    scheme=ConfiguredToken(),
    event=ConfiguredName(),
    delivery_id=ConfiguredId(),
    body="json_or_form",
)

ENTRY = Entry(
    provider="token",
    name="Any webhook with a token header",
    category="generic",
    webhooks=WEBHOOKS,
    settings=(
        Setting("token", "the secret the sender puts in the header"),
        Setting(
            "header",
            "the header holding it (default Authorization)",
            secret=False,
            required=False,
            pattern=r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}",
        ),
        Setting(
            "prefix",
            "what precedes the token (default `Bearer` on Authorization, none elsewhere)",
            secret=False,
            required=False,
            pattern=r"[!-~]{1,40}",
        ),
        *LOCATION_SETTINGS,
    ),
    setup=(
        "Choose a long random token (`openssl rand -hex 32`) and save it here as token.",
        "In the sender's webhook settings: URL {webhook_url}, and a header "
        "`Authorization: Bearer <token>` (or the header you named here).",
    ),
    docs_url="https://www.rfc-editor.org/rfc/rfc6750#section-2.1",
    sample=Sample("event.json", headers={"x-delivery-id": "dlv_0001"}),
    example_settings=lambda: {"token": secrets.token_hex(32), "id_header": "X-Delivery-Id"},
)
