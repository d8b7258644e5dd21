"""Trello's webhooks: `X-Trello-Webhook`, the standard base64 of the HMAC-SHA1 of the raw
body followed by the callbackURL exactly as it was given when the webhook was created,
keyed by the application's secret (the OAuth 1.0 secret of the API key's page). The
callbackURL is the integration's webhook URL as hookhub shows it (`URL`: hookhub's public
URL, the path and the query the request came to): paste it into Trello unchanged.

Checked against Atlassian's Trello webhooks guide ("Webhook signatures") and Trello's
api-docs pull request 26 (2016: the caveat that characters beyond Latin-1 were hashed as
their low bytes was removed, Trello now hashing UTF-8). No timestamp is signed. Trello
checks the URL with a `HEAD` when the webhook is created and needs a 200. Trello has no SDK
and publishes no vector: the tests compute the guide's recipe with the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.providers.base import InboundRequest, Reply
from shared.providers.catalog import Entry, Probe, Sample, Setting
from shared.providers.declared import Declared, FromJson
from shared.providers.schemes import BODY, URL, Hmac


def _head_check(request: InboundRequest, settings: Mapping[str, str]) -> Reply | None:
    """Trello's check when the webhook is created: a HEAD, answered 200 with nothing."""
    return Reply(200) if request.method == "HEAD" else None


WEBHOOKS = Declared(
    name="trello",
    scheme=Hmac(
        "x-trello-webhook",
        setting="app_secret",
        algorithm="sha1",
        encoding="base64",
        signed=(BODY, URL),
    ),
    event=FromJson("action", "type"),
    # Every delivery is one action; a retry sends the same one.
    delivery_id=FromJson("action", "id"),
    handshakes=(_head_check,),
    handshake_methods=("HEAD",),
)

ENTRY = Entry(
    provider="trello",
    name="Trello",
    category="productivity",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            "app_secret",
            "your application's Secret (the OAuth 1.0 secret): https://trello.com/power-ups/"
            "admin → your Power-Up → API key → Secret; not the API key, not a token",
        ),
    ),
    events=(
        "createCard",
        "updateCard",
        "deleteCard",
        "commentCard",
        "addMemberToCard",
        "addLabelToCard",
        "addAttachmentToCard",
        "updateCheckItemStateOnCard",
        "createList",
        "updateList",
        "updateBoard",
        "voteOnCard",
    ),
    setup=(
        "At https://trello.com/power-ups/admin → your Power-Up → API key: save its Secret "
        "here as app_secret; generate a token for the API key.",
        'POST https://api.trello.com/1/webhooks/?key=<API key>&token=<token> {"callbackURL": '
        '"{webhook_url}", "idModel": "<board id>", "description": "hookhub"}: the URL '
        "exactly as shown (Trello signs it).",
        "Trello checks the URL with a HEAD request, which hookhub answers; the call returns "
        "the webhook, active.",
    ),
    docs_url="https://developer.atlassian.com/cloud/trello/guides/rest-api/webhooks/",
    handshake="HEAD on the webhook URL when the webhook is created: answered 200",
    sample=Sample("voteOnCard.json"),
    handshake_probe=lambda settings, url, now: Probe(method="HEAD", status=200),
)
