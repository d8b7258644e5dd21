"""Grafana Alerting's webhook contact point: one of three options, the first the integration
has set being what every request must pass:

- HMAC Signature: lower-case hex HMAC-SHA256 (no prefix) keyed by the Secret's text, of the
  raw body, or of `{unix seconds}:{body}` when a Timestamp Header is named (then within five
  minutes: hookhub's window, Grafana sets none). The signature header is the one named, else
  `X-Grafana-Alerting-Signature` (the docs) or `X-Grafana-Alert-Signature` (what Grafana
  sends when the Header field is left empty) — `signature.py`.
- Authorization header: `Authorization: <scheme> <credentials>` (scheme `Bearer` by
  default), or an Extra Header holding the token.
- Basic authentication.

No delivery id: the body's digest dedupes a retry (re-signed, with a new timestamp, over
the same body). Checked against Grafana's webhook notifier docs ("HMAC signature",
"Validate a request") and grafana/alerting `http/hmac.go`, `http/hmac_test.go` and
`receivers/webhook/v1/config.go`.
"""

from __future__ import annotations

import secrets

from shared.providers.catalog import Entry, Sample, Setting
from shared.providers.credentials import (
    API_URL,
    BASIC,
    HEADER_NAME,
    HEADER_TOKEN,
    basic_settings,
    token_settings,
)
from shared.providers.declared import Declared, FirstOf, FromJson
from shared.providers.grafana.signature import GrafanaHmac
from shared.providers.schemes import AnyOf

WEBHOOKS = Declared(
    name="grafana",
    scheme=AnyOf((GrafanaHmac(), HEADER_TOKEN, BASIC)),
    # `firing` or `resolved`; legacy alerting (before Grafana 8) sends no `status`, only
    # its rule's `state` (`alerting`, `ok`, `no_data`, `pending`, `paused`).
    event=FirstOf((FromJson("status"), FromJson("state"))),
)

ENTRY = Entry(
    provider="grafana",
    name="Grafana Alerting",
    category="monitoring",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            "hmac_secret",
            "the contact point's HMAC Signature → Secret (a long random string); when set, "
            "the signature is what is checked",
            required=False,
        ),
        Setting(
            "signature_header",
            "the HMAC Signature → Header as typed in Grafana (empty there means "
            "X-Grafana-Alert-Signature; either default is accepted when this is unset)",
            secret=False,
            required=False,
            pattern=HEADER_NAME,
        ),
        Setting(
            "timestamp_header",
            "the HMAC Signature → Timestamp Header as typed in Grafana (e.g. "
            "X-Grafana-Alerting-Timestamp): the signature then covers the time, and a "
            "request more than five minutes off is refused",
            secret=False,
            required=False,
            pattern=HEADER_NAME,
        ),
        *token_settings(
            "the contact point's Authorization Header → Credentials (its Scheme as prefix "
            "when not Bearer), or as an Extra Header named in header"
        ),
        *basic_settings("the contact point's Basic Authentication"),
        # Acting from the channel (shared.providers.grafana.acting): silences.
        Setting(
            "api_url",
            "Grafana's address (https://grafana.example.com), to silence a group from the "
            "channel; with api_token, cards offer silences",
            secret=False,
            required=False,
            pattern=API_URL,
        ),
        Setting(
            "api_token",
            "a service account token (Administration → Users and access → Service "
            "accounts) whose role may create silences (Editor), to silence from the channel",
            required=False,
        ),
    ),
    events=("firing", "resolved"),
    setup=(
        "In Grafana: Alerts & IRM → Alerting → Contact points → + Add contact point; "
        "Integration Webhook; URL {webhook_url}; HTTP Method POST.",
        "Under Optional settings → HMAC Signature: a long random Secret (save it here as "
        "hmac_secret), Header X-Grafana-Alerting-Signature, Timestamp Header "
        "X-Grafana-Alerting-Timestamp (save both names here too). Or use the Authorization "
        "Header credentials (token) or Basic Authentication (username, password) instead.",
        "Save the contact point and use it in a notification policy.",
    ),
    docs_url=(
        "https://grafana.com/docs/grafana/latest/alerting/configure-notifications/"
        "manage-contact-points/integrations/webhook-notifier/"
    ),
    sample=Sample("firing.json"),
    example_settings=lambda: {
        "hmac_secret": secrets.token_hex(32),
        "signature_header": "X-Grafana-Alerting-Signature",
        "timestamp_header": "X-Grafana-Alerting-Timestamp",
    },
)
