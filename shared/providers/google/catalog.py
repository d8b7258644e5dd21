"""Google in the provider catalog: an OAuth connection, and Drive/Calendar push
notifications ("web_hook" channels).

A notification is authenticated by its channel token: `X-Goog-Channel-Token` equal to the
integration's `channel_token` (the `token` given when the channel was made with a watch
call; compared in constant time). Google signs nothing and sends no timestamp.
`event_type` is `X-Goog-Resource-State` (Calendar: `exists`, `not_exists`; Drive: `add`,
`remove`, `update`, `trash`, `untrash`, `change`), `delivery_id` the channel id and
`X-Goog-Message-Number` ("Message numbers increase for each subsequent message on the
channel"). The `sync` message that starts a channel is verified, answered 200 and not
published ("safe to ignore"). Calendar's notifications have no body: the payload is the
`X-Goog-*` headers (the token left out), with the body under `body` when Drive sends one.

Checked against https://developers.google.com/calendar/api/guides/push and
https://developers.google.com/drive/api/guides/push. The official client
(`google-api-python-client`, `googleapiclient.channel.notification_from_headers`) checks
the channel id only, not the token: it is no verifier.

`channel_token` is optional at creation (a Google integration is also made for OAuth
alone); webhooks are refused until it is set.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.providers.base import InboundRequest, MalformedWebhook, ParsedWebhook, Reply
from shared.providers.catalog import Entry, Probe, Sample, Setting
from shared.providers.declared import Declared, FromHeader, Joined
from shared.providers.ids import decode_json
from shared.providers.schemes import Token

TOKEN = "channel_token"  # noqa: S105 - the setting's name
STATE = FromHeader("x-goog-resource-state")
# The channel's id and the message's number: unique per channel.
DELIVERY = Joined((FromHeader("x-goog-channel-id"), FromHeader("x-goog-message-number")), ":")
_SHOWN = (
    "x-goog-channel-id",
    "x-goog-channel-expiration",
    "x-goog-resource-id",
    "x-goog-resource-uri",
    "x-goog-resource-state",
    "x-goog-message-number",
    "x-goog-changed",
)


class _NoFields:
    """A notification's fields are its headers."""

    def get(self, path: tuple[str, ...]) -> Any:
        return None


@dataclass(frozen=True)
class PushNotifications(Declared):
    """`Declared`, but a notification is its headers: the body is empty or (Drive) JSON."""

    def parse(self, request: InboundRequest) -> ParsedWebhook:
        fields = _NoFields()
        state = STATE.find(request, fields)
        if state is None:
            raise MalformedWebhook("no event name in header X-Goog-Resource-State")
        delivery_id = DELIVERY.find(request, fields) or ""
        if ":" not in delivery_id:  # Joined leaves a missing part out
            raise MalformedWebhook("X-Goog-Channel-ID and X-Goog-Message-Number are required")
        if state == "sync":  # the channel starts: nothing happened yet
            return ParsedWebhook(
                event_type="sync",
                delivery_id=delivery_id,
                payload=None,
                reply=self.reply,
                publish=False,
            )
        payload: dict[str, Any] = {
            name: value for name in _SHOWN if (value := request.header(name)) is not None
        }
        if request.body.strip():
            payload["body"] = decode_json(request.body)
        return ParsedWebhook(
            event_type=state,
            delivery_id=delivery_id,
            payload=payload,
            reply=self.reply,
            payload_is_body=False,
        )


WEBHOOKS = PushNotifications(
    name="google",
    scheme=Token(header="x-goog-channel-token", setting=TOKEN),
    event=STATE,
    delivery_id=DELIVERY,
    # Calendar's are empty; Drive's a small JSON at most.
    max_body_bytes=64 * 1024,
    reply=Reply(200),
)

# The notification example of Calendar's push guide, but for the token (the integration's).
_HEADERS = {
    "X-Goog-Channel-ID": "4ba78bf0-6a47-11e2-bcfd-0800200c9a66",
    "X-Goog-Channel-Expiration": "Tue, 19 Nov 2013 01:13:52 GMT",
    "X-Goog-Resource-ID": "ret08u3rv24htgh289g",
    "X-Goog-Resource-URI": "https://www.googleapis.com/calendar/v3/calendars/my_calendar@gmail.com/events",
    "X-Goog-Resource-State": "exists",
    "X-Goog-Message-Number": "10",
}


def _probe(settings: Mapping[str, str], url: str, now: datetime) -> Probe:
    """The `sync` message a new channel starts with: answered 200, not published (401
    for an integration made for OAuth alone: it has no channel token to compare)."""
    token = settings.get(TOKEN)
    headers = {**_HEADERS, "X-Goog-Resource-State": "sync", "X-Goog-Message-Number": "1"}
    if token is None:
        return Probe("POST", headers=headers, status=401)
    return Probe("POST", headers={**headers, "X-Goog-Channel-Token": token})


ENTRY = Entry(
    provider="google",
    name="Google",
    category="productivity",
    capabilities=("webhooks", "oauth"),
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            TOKEN,
            "the token given to the watch call that made the channel (at most 256 "
            "characters); needed for push notifications only",
            required=False,
            pattern=r"[!-~]{1,256}",
        ),
    ),
    events=("exists", "not_exists", "add", "remove", "update", "trash", "untrash", "change"),
    setup=(
        "Connect with OAuth (Integrations → Connect); the OAuth client is set once for "
        "hookhub (docs/providers.md#google).",
        "For push notifications: choose a channel token (`openssl rand -hex 32`) and save "
        "it here as channel_token.",
        "Make the channel with a watch call (e.g. POST https://www.googleapis.com/calendar/"
        'v3/calendars/{calendarId}/events/watch) with {"id": "<a new UUID>", "type": '
        '"web_hook", "address": "{webhook_url}", "token": "<the channel token>"}; make a '
        "new one before it expires.",
    ),
    handshake=(
        "The sync message a channel starts with (X-Goog-Resource-State: sync) is verified, "
        "answered 200 and not published."
    ),
    docs_url="https://developers.google.com/calendar/api/guides/push",
    sample=Sample(
        "calendar.exists.empty", content_type="application/json; utf-8", headers=_HEADERS
    ),
    example_settings=lambda: {TOKEN: secrets.token_hex(32)},
    handshake_probe=_probe,
)
