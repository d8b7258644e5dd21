"""Dropbox's webhooks: `X-Dropbox-Signature`, the lower-case hex HMAC-SHA256 of the whole
raw body keyed by the app's App secret (its text); no timestamp is signed.

Checked against Dropbox's "Using Webhooks" reference and its webhook docs ("the HMAC-SHA256
signature of the entire request body using your app secret as the key") and Dropbox's
sample app dropbox/mdwebhook (`hmac.new(APP_SECRET, body, sha256).hexdigest()`). Dropbox's
SDK on PyPI (`dropbox` 12) has no webhook code, and Dropbox publishes no vector: the tests
compute the docs' recipe with the standard library.

A notification only says which accounts changed (`list_folder.accounts`): it has no event
name, so hookhub names it `list_folder`, and no id: a retry (Dropbox retries for about ten
minutes) repeats the body, whose digest is the delivery id. The URL is verified with a
`GET ?challenge=`, echoed as `text/plain` with `X-Content-Type-Options: nosniff`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from shared.providers.base import InboundRequest, Reply
from shared.providers.catalog import Entry, Probe, Sample, Setting
from shared.providers.declared import BODY_DIGEST, Declared, Fields, Found, echoed
from shared.providers.ids import decode_json_object
from shared.providers.schemes import Hmac

# A challenge is Dropbox's random string; anything much longer is no challenge of Dropbox's.
_MAX_CHALLENGE = 1000


def _challenge(request: InboundRequest, settings: Mapping[str, str]) -> Reply | None:
    """Dropbox's verification request: `GET ?challenge=<random>`, echoed back as text, with
    `nosniff` so that the echo cannot be a reflected script (Dropbox's advice)."""
    challenge = request.query.get("challenge")
    if request.method != "GET" or not challenge or len(challenge) > _MAX_CHALLENGE:
        return None
    return echoed(challenge)


def _event(request: InboundRequest, fields: Fields) -> str | None:
    """`list_folder` when the body says which accounts changed (the only kind Dropbox
    documents; its legacy `delta` comes beside it)."""
    found = decode_json_object(request.body).get("list_folder")
    return "list_folder" if isinstance(found, dict) else None


WEBHOOKS = Declared(
    name="dropbox",
    scheme=Hmac("x-dropbox-signature", setting="app_secret"),
    event=Found(_event, "a `list_folder` object"),
    delivery_id=BODY_DIGEST,
    handshakes=(_challenge,),
    handshake_methods=("GET",),
)


def _probe(settings: Mapping[str, str], url: str, now: datetime) -> Probe:
    challenge = "hookhub-probe-" + str(int(now.timestamp()))
    return Probe(
        method="GET",
        query={"challenge": challenge},
        status=200,
        answer=challenge.encode(),
        answer_headers={"x-content-type-options": "nosniff"},
    )


ENTRY = Entry(
    provider="dropbox",
    name="Dropbox",
    category="storage",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            "app_secret",
            "your app's App secret: App Console (https://www.dropbox.com/developers/apps) → "
            "the app → Settings → App secret",
        ),
    ),
    events=("list_folder",),
    setup=(
        "In the Dropbox App Console (https://www.dropbox.com/developers/apps): open your app "
        "→ Settings; save its App secret here as app_secret.",
        "Under Webhooks, add {webhook_url}: Dropbox sends a GET with a challenge, which "
        "hookhub echoes; the webhook then shows Enabled.",
        "Notifications come for the accounts linked to the app (OAuth); each says which "
        "accounts changed: list their folders with /2/files/list_folder/continue.",
    ),
    docs_url="https://www.dropbox.com/developers/reference/webhooks",
    handshake="GET ?challenge=… when the URL is added: the challenge echoed as text/plain "
    "with X-Content-Type-Options: nosniff",
    sample=Sample("list_folder.json"),
    handshake_probe=_probe,
)
