"""Google's Drive/Calendar push notifications: `X-Goog-Channel-Token` equal to the
integration's `channel_token`, named by `X-Goog-Resource-State`, deduplicated by channel id
and message number, and the `sync` message answered, not published.

Google signs nothing, so there is no vector: the requests are the examples of Calendar's
push guide, https://developers.google.com/calendar/api/guides/push (CC BY 4.0), with the
docs' channel token `398348u3tu83ut8uu38`.
"""

from __future__ import annotations

import pytest

from shared.providers.base import MalformedWebhook, SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog.support import NOW, declared, inbound

ENTRY = CATALOG["google"]
WEBHOOKS = declared(ENTRY)
TOKEN = "398348u3tu83ut8uu38"
SETTINGS = {"channel_token": TOKEN}
# "Notification messages" of the guide, verbatim (the URL annotation left out).
EXISTS = {
    "Content-Type": "application/json; utf-8",
    "Content-Length": "0",
    "X-Goog-Channel-ID": "4ba78bf0-6a47-11e2-bcfd-0800200c9a66",
    "X-Goog-Channel-Token": "398348u3tu83ut8uu38",
    "X-Goog-Channel-Expiration": "Tue, 19 Nov 2013 01:13:52 GMT",
    "X-Goog-Resource-ID": "ret08u3rv24htgh289g",
    "X-Goog-Resource-URI": "https://www.googleapis.com/calendar/v3/calendars/my_calendar@gmail.com/events",
    "X-Goog-Resource-State": "exists",
    "X-Goog-Message-Number": "10",
}


def test_the_docs_notification_verifies_and_is_named_by_its_state() -> None:
    request = inbound(b"", EXISTS)
    WEBHOOKS.verify(request, SETTINGS, NOW)
    parsed = WEBHOOKS.parse(request)
    assert parsed.publish
    assert (parsed.event_type, parsed.delivery_id) == (
        "exists",
        "4ba78bf0-6a47-11e2-bcfd-0800200c9a66:10",
    )
    assert parsed.payload["x-goog-resource-id"] == "ret08u3rv24htgh289g"
    assert "x-goog-channel-token" not in parsed.payload  # the secret is not passed on
    assert parsed.reply.status == 200


def test_another_token_none_and_one_on_another_header_are_refused() -> None:
    for headers in (
        {**EXISTS, "X-Goog-Channel-Token": "398348u3tu83ut8uu3"},
        {k: v for k, v in EXISTS.items() if k != "X-Goog-Channel-Token"},
        {
            **{k: v for k, v in EXISTS.items() if k != "X-Goog-Channel-Token"},
            "Authorization": TOKEN,
        },
    ):
        with pytest.raises(SignatureInvalid):
            WEBHOOKS.verify(inbound(b"", headers), SETTINGS, NOW)
    # an integration made for OAuth alone has no token: its URL takes no notification
    with pytest.raises(SignatureInvalid, match="channel_token"):
        WEBHOOKS.verify(inbound(b"", EXISTS), {}, NOW)


def test_the_sync_message_is_answered_and_not_published() -> None:
    """The guide's sync message: X-Goog-Resource-State sync, message number 1."""
    sync = {**EXISTS, "X-Goog-Resource-State": "sync", "X-Goog-Message-Number": "1"}
    request = inbound(b"", sync)
    WEBHOOKS.verify(request, SETTINGS, NOW)  # it carries the token: checked like any other
    parsed = WEBHOOKS.parse(request)
    assert parsed.publish is False and parsed.reply.status == 200
    assert WEBHOOKS.handshake(request, SETTINGS) is None  # not before verification
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(inbound(b"", {**sync, "X-Goog-Channel-Token": "x"}), SETTINGS, NOW)


def test_a_drive_body_is_kept_and_missing_headers_are_a_400() -> None:
    changed = {**EXISTS, "X-Goog-Resource-State": "update", "X-Goog-Changed": "content"}
    parsed = WEBHOOKS.parse(inbound(b'{"kind": "drive#changes"}', changed))
    assert parsed.event_type == "update"
    assert parsed.payload["body"] == {"kind": "drive#changes"}
    assert parsed.payload["x-goog-changed"] == "content"
    for name in ("X-Goog-Resource-State", "X-Goog-Message-Number", "X-Goog-Channel-ID"):
        with pytest.raises(MalformedWebhook):
            WEBHOOKS.parse(inbound(b"", {k: v for k, v in EXISTS.items() if k != name}))
    with pytest.raises(MalformedWebhook):
        WEBHOOKS.parse(inbound(b"not json", EXISTS))


def test_the_channel_token_is_optional_for_oauth_and_the_entry_offers_both() -> None:
    assert ENTRY.capabilities == ("webhooks", "oauth", "notifications")
    setting = ENTRY.setting("channel_token")
    assert setting is not None and setting.secret and not setting.required
    assert setting.problem("x" * 257) is not None and setting.problem(TOKEN) is None


def test_the_probe_is_the_sync_message() -> None:
    assert ENTRY.handshake_probe is not None
    probe = ENTRY.handshake_probe(SETTINGS, "https://h/x", NOW)
    request = inbound(probe.body, dict(probe.headers), method=probe.method)
    WEBHOOKS.verify(request, SETTINGS, NOW)
    assert WEBHOOKS.parse(request).publish is False and probe.status == 200
    assert ENTRY.handshake_probe({}, "https://h/x", NOW).status == 401
