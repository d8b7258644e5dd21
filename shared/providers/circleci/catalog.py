"""CircleCI's outbound webhooks: `circleci-signature: v1=<hex HMAC-SHA256 of the raw body>`,
keyed by the webhook's Secret token (`signing-secret`) as text. The header is a
comma-separated list of versioned signatures (`v1=…,v2=…`); v1 is the latest and only
version, and only it is checked (CircleCI: "You should *only* check the latest signature
type to prevent downgrade attacks"); others are ignored. No signed time. The event is the
body's `type`, the delivery id its `id` ("the client can use this to dedupe events").

Checked against https://circleci.com/docs/webhooks/ (circleci/circleci-docs
`jekyll/_cci2/webhooks.md`, MIT), whose example signatures the tests verify. CircleCI
publishes no Python SDK with a webhook helper.
"""

from __future__ import annotations

from shared.providers.catalog import Entry, Sample, Setting
from shared.providers.declared import Declared, FromJson
from shared.providers.schemes import Hmac

WEBHOOKS = Declared(
    name="circleci",
    scheme=Hmac("circleci-signature", setting="signing_secret", prefix="v1=", several=","),
    event=FromJson("type"),
    delivery_id=FromJson("id"),
)

ENTRY = Entry(
    provider="circleci",
    name="CircleCI",
    category="devtools",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            "signing_secret",
            "the webhook's Secret token (the API's signing-secret), the same string given to "
            "CircleCI",
        ),
    ),
    events=("workflow-completed", "job-completed", "ping"),
    setup=(
        "In CircleCI: the project → Project Settings → Webhooks → Add Webhook.",
        "Receiver URL: {webhook_url}; Secret token: a long random string, saved here as "
        "signing_secret; keep Certificate verification on; select workflow-completed and "
        "job-completed; Add Webhook.",
        "Send a Test Ping Event to check the connection.",
    ),
    docs_url="https://circleci.com/docs/webhooks/",
    sample=Sample("workflow_completed.json", headers={"circleci-event-type": "workflow-completed"}),
)
