"""Linear's webhooks: `Linear-Signature: <hex HMAC-SHA256 of the raw body>`, keyed by the
webhook's signing secret as text, no prefix; the time is the body's `webhookTimestamp`
(Unix milliseconds, inside the signed body) and must be within 60 s of now either way.
The event is `type` + `.` + `action` (`Issue.create`); the delivery id the
`Linear-Delivery` header (the body's `webhookId` names the webhook, not the delivery).

Checked against Linear's own SDK, `@linear/sdk` `packages/sdk/src/webhooks/client.ts`
(linear/linear, MIT: `createHmac("sha256", secret).update(rawBody).digest("hex")`,
`LINEAR_WEBHOOK_TS_FIELD = "webhookTimestamp"`, `Math.abs(now - timestamp) > 1000 * 60`
refused) and https://linear.app/developers/sdk-webhooks. Linear has no Python SDK and
publishes no test vector; the tests sign as the SDK does.
"""

from __future__ import annotations

import re
from datetime import datetime

from shared.providers.catalog import Entry, Sample, Setting
from shared.providers.declared import Declared, FromHeader, FromJson, Joined
from shared.providers.schemes import Hmac, Window

TIMESTAMP = "webhookTimestamp"
_STAMP = re.compile(rb'("webhookTimestamp"\s*:\s*)[0-9]+')

WEBHOOKS = Declared(
    name="linear",
    scheme=Hmac(
        "linear-signature",
        setting="signing_secret",
        window=Window(60, json=(TIMESTAMP,), unit="ms"),
    ),
    event=Joined((FromJson("type"), FromJson("action"))),
    delivery_id=FromHeader("linear-delivery"),
)


def stamped(body: bytes, now: datetime) -> bytes:
    """The sample as Linear would send it at `now`: its `webhookTimestamp` then."""
    return _STAMP.sub(lambda m: m[1] + str(int(now.timestamp() * 1000)).encode(), body, 1)


ENTRY = Entry(
    provider="linear",
    name="Linear",
    category="productivity",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            "signing_secret",
            "the webhook's Signing secret, shown on the webhook's page in Linear",
        ),
    ),
    events=(
        "Issue.create",
        "Issue.update",
        "Issue.remove",
        "Comment.create",
        "Comment.update",
        "Comment.remove",
        "IssueLabel.create",
        "IssueLabel.update",
        "IssueLabel.remove",
        "Reaction.create",
        "Reaction.remove",
        "Attachment.create",
        "Attachment.update",
        "Attachment.remove",
        "Project.create",
        "Project.update",
        "Project.remove",
        "ProjectUpdate.create",
        "ProjectUpdate.update",
        "Cycle.create",
        "Cycle.update",
        "Document.create",
        "Document.update",
        "Initiative.create",
        "Initiative.update",
        "Customer.create",
        "Customer.update",
        "CustomerNeed.create",
        "User.update",
        "IssueSLA.set",
        "IssueSLA.highRisk",
        "IssueSLA.breached",
        "OAuthApp.revoked",
    ),
    setup=(
        "In Linear (as a workspace admin): Settings → API → Webhooks → New webhook.",
        "URL: {webhook_url}; choose the team (or all public teams) and the data to send; save.",
        "Copy the webhook's Signing secret and save it here as signing_secret.",
    ),
    docs_url="https://linear.app/developers/webhooks",
    sample=Sample(
        "issue_create.json",
        headers={
            "linear-event": "Issue",
            "linear-delivery": "0d8c2a5e-6f2b-4c1e-9a7d-3e5b8f1c2d4a",
        },
        stamped=stamped,
    ),
)
