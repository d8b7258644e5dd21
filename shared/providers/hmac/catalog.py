"""A generic HMAC source: the integration says which header, algorithm, encoding and prefix
its sender uses, what it signs (the body, or a timestamp and the body) and where its event
name and delivery id are."""

from __future__ import annotations

import secrets

from shared.providers.catalog import Entry, Sample, Setting
from shared.providers.declared import Declared
from shared.providers.generic import LOCATION_SETTINGS, ConfiguredHmac, ConfiguredId, ConfiguredName

WEBHOOKS = Declared(
    name="hmac",
    scheme=ConfiguredHmac(),
    event=ConfiguredName(),
    delivery_id=ConfiguredId(),
    body="json_or_form",
)

ENTRY = Entry(
    provider="hmac",
    name="Any HMAC-signed webhook",
    category="generic",
    webhooks=WEBHOOKS,
    settings=(
        Setting("secret", "the shared secret the sender signs with"),
        Setting(
            "header",
            "the header carrying the signature (e.g. X-Signature)",
            secret=False,
            pattern=r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}",
        ),
        Setting(
            "algorithm",
            "sha1, sha256 or sha512",
            secret=False,
            required=False,
            choices=("sha1", "sha256", "sha512"),
            default="sha256",
        ),
        Setting(
            "encoding",
            "hex or base64 (base64url and unpadded are accepted too)",
            secret=False,
            required=False,
            choices=("hex", "base64"),
            default="hex",
        ),
        Setting(
            "prefix",
            "what precedes the signature in the header (e.g. `sha256=`); none by default",
            secret=False,
            required=False,
            pattern=r"[!-~]{1,40}",
        ),
        Setting(
            "separator",
            "a character between several signatures in the header (e.g. `,`), for a sender "
            "that signs with each of its secrets while rotating them",
            secret=False,
            required=False,
            choices=(",", " ", ";"),
        ),
        Setting(
            "signed",
            "what is signed: `body`, `timestamp.body` ({timestamp}.{body}) or "
            "`timestampbody` ({timestamp}{body})",
            secret=False,
            required=False,
            choices=("body", "timestamp.body", "timestampbody"),
            default="body",
        ),
        Setting(
            "timestamp_header",
            "the header carrying the signed Unix-seconds timestamp (with a `signed` other "
            "than body)",
            secret=False,
            required=False,
            pattern=r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}",
        ),
        Setting(
            "tolerance_seconds",
            "how far the timestamp may be from now, in seconds (30-86400, default 300)",
            secret=False,
            required=False,
            pattern=r"[0-9]{2,5}",
            default="300",
            kind="integer",
        ),
        Setting(
            "key_encoding",
            "how the secret is written: `text` (its bytes are the key), `base64` or `hex`",
            secret=False,
            required=False,
            choices=("text", "base64", "hex"),
            default="text",
        ),
        *LOCATION_SETTINGS,
    ),
    events=(),
    setup=(
        "Choose a long random secret (`openssl rand -hex 32`) and save it here as secret.",
        "Say how the sender signs: the header, algorithm, encoding, prefix and what is signed.",
        "In the sender's webhook settings: URL {webhook_url}, and the same secret.",
    ),
    docs_url="https://www.rfc-editor.org/rfc/rfc2104",
    sample=Sample(
        "event.json", headers={"x-event-type": "order.created", "x-delivery-id": "dlv_0001"}
    ),
    example_settings=lambda: {
        "secret": secrets.token_hex(32),
        "header": "X-Signature",
        "prefix": "sha256=",
        "signed": "timestamp.body",
        "timestamp_header": "X-Timestamp",
        "event_header": "X-Event-Type",
        "id_header": "X-Delivery-Id",
    },
)
