"""Matrix in the provider catalog: hookhub as an application service of the user's own
homeserver (shared/providers/matrix/appservice.py)."""

from __future__ import annotations

import secrets

from shared.providers.catalog import Entry, Setting
from shared.providers.matrix.network import DEFAULT_PREFIX, NETWORK
from shared.providers.matrix.webhooks import WEBHOOKS

__all__ = ["DEFAULT_PREFIX", "ENTRY"]


def _examples() -> dict[str, str]:
    return {
        "homeserver_url": "https://matrix.example.org",
        "as_token": secrets.token_urlsafe(32),
        "hs_token": secrets.token_urlsafe(32),
        "namespace_prefix": DEFAULT_PREFIX,
    }


ENTRY = Entry(
    provider="matrix",
    name="Matrix",
    category="chat",
    # Its transactions are PUT to the webhook URL (the registration's `url`) + the spec's
    # paths, verified with the hs_token by the gateway (shared/providers/matrix/webhooks.py).
    capabilities=("webhooks", "sync", "history"),
    network=NETWORK,
    webhooks=WEBHOOKS,
    verification=("token", ("authorization",)),
    settings=(
        Setting(
            "homeserver_url",
            "the homeserver's Client-Server API base URL (https://matrix.example.org)",
            secret=False,
            pattern=r"https?://[^\s/?#]+(/[^\s?#]*)?",
            refusal="homeserver_url must be an http(s) URL such as https://matrix.example.org",
        ),
        Setting(
            "as_token",
            "the registration's as_token, how hookhub authenticates to the homeserver: 16 "
            "or more random URL-safe characters (openssl rand -hex 32)",
            pattern=r"[A-Za-z0-9._~+/=-]{16,256}",
            refusal="as_token must be 16-256 URL-safe characters",
        ),
        Setting(
            "hs_token",
            "the registration's hs_token, how the homeserver authenticates to hookhub: "
            "another 16 or more random URL-safe characters",
            pattern=r"[A-Za-z0-9._~+/=-]{16,256}",
            refusal="hs_token must be 16-256 URL-safe characters",
        ),
        Setting(
            "namespace_prefix",
            "the localpart prefix of hookhub's exclusive user namespace: chat authors "
            "appear as @<prefix>…:your.server",
            secret=False,
            required=False,
            default=DEFAULT_PREFIX,
            pattern=r"_[a-z0-9._=/-]{1,30}_",
            refusal="namespace_prefix must start and end with _ and hold a-z 0-9 . _ = - /",
        ),
    ),
    events=("m.room.message", "m.room.redaction"),
    setup=(
        "Download this integration's registration file: GET "
        "/api/integrations/<id>/registration with the admin token or a key with the write "
        "scope (it holds the tokens). It names {webhook_url} as the appservice's url, where "
        "the homeserver sends its transactions ({webhook_url}/_matrix/app/v1/transactions/"
        "{txnId}).",
        "Add the file to the homeserver's app_service_config_files (Synapse's "
        "homeserver.yaml) and restart it.",
        "Invite the appservice's user (@<prefix>bot:your.server) to each room to sync, and "
        "give it power to redact (moderator) so that deletions are bridged.",
    ),
    docs_url="https://spec.matrix.org/latest/application-service-api/#registration",
    example_settings=_examples,
)
