"""Asana's webhooks: `X-Hook-Signature: <lower-case hex>`, HMAC-SHA256 of the raw body keyed
by the webhook's `X-Hook-Secret` (the string's bytes, not hex-decoded); no timestamp, no
delivery id. A POST carries `{"events": [...]}`: each event is its own envelope, named
`{resource.resource_type}.{action}` (`task.changed`) and deduplicated by its digest.

The secret is handed over in the handshake: while `POST /api/1.0/webhooks` is in flight,
Asana POSTs to the target with `X-Hook-Secret` (unsigned), and the target answers 200 with
the same header. hookhub keeps it (sealed, once: a second handshake is refused 409, as
Asana's example server ignores one, "an attacker trying to set up a new secret").

Checked against https://developers.asana.com/reference/createwebhook and Asana's example
server (github.com/Asana/devrel-examples `python/webhooks_v5/server.py`, MIT), which the
tests follow: Asana publishes no vector, and its SDK (`asana`) no verifier.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from shared.providers.base import InboundRequest, Reply
from shared.providers.catalog import Entry, Probe, Sample, Setting
from shared.providers.declared import Declared, Fields, FirstOf, Found, FromJson, Joined, Split
from shared.providers.ids import decode_json
from shared.providers.schemes import Hmac

SECRET = "webhook_secret"  # noqa: S105 - the setting's name
# What a header can carry back: printable ASCII (Asana's are 64 hex digits).
_SECRET_VALUE = re.compile(r"[!-~]{1,256}")


def hook_secret(request: InboundRequest, settings: Mapping[str, str]) -> Reply | None:
    """The handshake: `X-Hook-Secret` echoed and kept (the gateway keeps it once)."""
    value = request.header("x-hook-secret")
    if request.method != "POST" or value is None:
        return None
    value = value.strip()
    if not _SECRET_VALUE.fullmatch(value):
        return Reply(400, {"error": "X-Hook-Secret is not printable ASCII of 1-256 characters"})
    return Reply(200, None, headers={"X-Hook-Secret": value}, store={SECRET: value})


def events(payload: Any) -> Sequence[Any]:
    found = payload.get("events") if isinstance(payload, dict) else None
    return found if isinstance(found, list) else []


def no_events(request: InboundRequest, fields: Fields) -> Reply | None:
    """A verified `{"events": []}` (what Asana sends when there is nothing to tell):
    answered 200, nothing to publish."""
    return Reply(200, {"ok": True}) if not events(decode_json(request.body)) else None


# `task.changed`: the action alone (`changed`) would not say what changed.
NAME = FirstOf(
    (Joined((FromJson("resource", "resource_type"), FromJson("action"))), FromJson("action"))
)

WEBHOOKS = Declared(
    name="asana",
    scheme=Hmac("x-hook-signature", setting=SECRET),
    event=NAME,
    split=Split(
        events,
        event=NAME,
        # Asana sends no id: each event's digest (a retry repeats the events).
        delivery_id=Found(lambda request, fields: None, "none (each event's digest)"),
    ),
    handshakes=(hook_secret,),
    control=no_events,
)


def _probe(settings: Mapping[str, str], url: str, now: datetime) -> Probe:
    """Asana's handshake handing over the settings' secret (a new one if they hold none)."""
    value = settings.get(SECRET) or secrets.token_hex(32)
    return Probe(
        "POST",
        headers={"x-hook-secret": value},
        answer_headers={"x-hook-secret": value},
        stores=(SECRET,),
    )


ENTRY = Entry(
    provider="asana",
    name="Asana",
    category="productivity",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            SECRET,
            "the webhook's X-Hook-Secret: kept by hookhub from Asana's handshake (Asana "
            "makes no webhook whose handshake is not answered)",
            required=False,
        ),
    ),
    events=(
        "task.added",
        "task.changed",
        "task.removed",
        "task.deleted",
        "task.undeleted",
        "story.added",
        "project.changed",
        "section.added",
        "attachment.added",
        "tag.added",
    ),
    setup=(
        "Create the integration here (no settings needed).",
        "Create the webhook with Asana's API (a personal access token with webhooks:write): "
        "curl -H 'Authorization: Bearer <token>' -X POST "
        "https://app.asana.com/api/1.0/webhooks -d resource=<project or task gid> "
        "-d target={webhook_url}",
        "Asana's handshake arrives while that call runs: hookhub answers it and keeps the "
        "X-Hook-Secret (settings_configured then lists webhook_secret).",
    ),
    handshake=(
        "Asana's first POST carries X-Hook-Secret: answered 200 with the same header, and "
        "the secret kept (once; a second one is refused 409)."
    ),
    docs_url="https://developers.asana.com/docs/webhooks-guide",
    sample=Sample("task.changed.json"),
    example_settings=lambda: {SECRET: secrets.token_hex(32)},
    handshake_probe=_probe,
)
