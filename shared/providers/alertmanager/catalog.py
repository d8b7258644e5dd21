"""Alertmanager's webhooks: nothing is signed. A receiver's `http_config` gives one of
`authorization` (`Authorization: <type> <credentials>`, `type` `Bearer` by default),
`basic_auth` (HTTP Basic) or `http_headers` (a custom header): the first of a token (in
`Authorization` with its scheme word, or the header the integration names) or Basic
credentials that the integration has set is what every request must carry, compared in
constant time. No timestamp, no delivery id: a retry repeats the body, so the body's
digest dedupes it.

Checked against prometheus/alertmanager `docs/configuration.md` (`<http_config>`,
`<webhook_config>`) and `notify/webhook/webhook.go` (POST, JSON, retried on 5xx).
"""

from __future__ import annotations

import secrets

from shared.providers.catalog import Entry, Sample, Setting
from shared.providers.credentials import (
    API_URL,
    BASIC,
    HEADER_TOKEN,
    basic_settings,
    token_settings,
)
from shared.providers.declared import Declared, FromJson
from shared.providers.schemes import AnyOf

WEBHOOKS = Declared(
    name="alertmanager",
    scheme=AnyOf((HEADER_TOKEN, BASIC)),
    # `firing` or `resolved`: the group's status (each alert has its own too).
    event=FromJson("status"),
)

ENTRY = Entry(
    provider="alertmanager",
    name="Prometheus Alertmanager",
    category="monitoring",
    webhooks=WEBHOOKS,
    settings=(
        *token_settings(
            "`http_config.authorization.credentials` (with `type` as prefix when not Bearer), "
            "or as the value of an `http_config.http_headers` header named in header"
        ),
        *basic_settings("`http_config.basic_auth`"),
        # Acting from the channel (shared.providers.alertmanager.acting): silences.
        Setting(
            "api_url",
            "where hookhub reaches Alertmanager's API to silence a group from the channel "
            "(https://alertmanager.example.com, without /api/v2); when unset, the "
            "`externalURL` the webhook names; without either, cards offer no silences",
            secret=False,
            required=False,
            pattern=API_URL,
        ),
        Setting(
            "api_token",
            "a bearer token for the proxy in front of Alertmanager's API, if it wants one "
            "(Alertmanager itself has no authentication)",
            required=False,
        ),
    ),
    events=("firing", "resolved"),
    setup=(
        "Choose a long random token (`openssl rand -hex 32`) and save it here as token (or "
        "a username and password for Basic authentication).",
        "In alertmanager.yml add a receiver with `webhook_configs: [{url: '{webhook_url}', "
        "send_resolved: true, http_config: {authorization: {credentials: '<token>'}}}]` "
        "(or `basic_auth: {username: …, password: …}`).",
        "Route alerts to it (`route: {receiver: …}` or a child route) and reload "
        "Alertmanager (SIGHUP or POST /-/reload).",
    ),
    docs_url="https://prometheus.io/docs/alerting/latest/configuration/#webhook_config",
    # Firing: the start of an alert's thread (the sandbox sends it first, resolved.json after).
    sample=Sample("firing.json"),
    example_settings=lambda: {"token": secrets.token_hex(32)},
)
