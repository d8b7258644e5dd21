"""Box's V2 webhooks: `BOX-SIGNATURE-PRIMARY` and `BOX-SIGNATURE-SECONDARY`, each the
standard base64 of the HMAC-SHA256 of the raw body followed by `BOX-DELIVERY-TIMESTAMP`
(RFC 3339), keyed by the app's primary or secondary signature key (their text); either
matching is enough; at most ten minutes old (hookhub: ten minutes either way).
`box/signature.py` has the details Box's SDK adds.

Checked against Box's "Signature Verification" guide, box-sdk-gen 1.17.0
(`WebhooksManager.validate_message`, `compute_webhook_signature`), which the tests sign and
verify with, and the vectors of its tests (box/box-python-sdk,
`test/box_sdk_gen/test/webhooks.py`, Apache-2.0).

The delivery id is the body's `id`: Box's `BOX-DELIVERY-ID` header changes on every retry
("while the ID in the body of the payload remains the same").
"""

from __future__ import annotations

from shared.providers.box.signature import BoxSignatures
from shared.providers.catalog import Entry, Sample, Setting
from shared.providers.declared import Declared, FromJson

WEBHOOKS = Declared(
    name="box",
    scheme=BoxSignatures(),
    event=FromJson("trigger"),
    delivery_id=FromJson("id"),
)

ENTRY = Entry(
    provider="box",
    name="Box",
    category="storage",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            "primary_key",
            "the app's primary signature key: Developer Console → the app → Webhooks → "
            "Manage signature keys",
        ),
        Setting(
            "secondary_key",
            "the app's secondary signature key (optional: set it to reset one key at a time)",
            required=False,
        ),
    ),
    events=(
        "FILE.UPLOADED",
        "FILE.DOWNLOADED",
        "FILE.PREVIEWED",
        "FILE.TRASHED",
        "FILE.DELETED",
        "FILE.RESTORED",
        "FILE.MOVED",
        "FILE.RENAMED",
        "FOLDER.CREATED",
        "FOLDER.RENAMED",
        "FOLDER.MOVED",
        "COMMENT.CREATED",
        "COLLABORATION.CREATED",
        "SHARED_LINK.CREATED",
        "WEBHOOK.DELETED",
        "SIGN_REQUEST.COMPLETED",
    ),
    setup=(
        "In the Box Developer Console (https://app.box.com/developers/console): your app "
        "(with the Manage webhooks scope, authorized) → Webhooks → Manage signature keys → "
        "Generate Key; save the primary key here as primary_key (and the secondary one as "
        "secondary_key).",
        "Create webhook → V2: URL Address {webhook_url}, the content (file or folder) and "
        'its triggers; or POST https://api.box.com/2.0/webhooks {"target": {"id": "<folder '
        'id>", "type": "folder"}, "address": "{webhook_url}", "triggers": ["FILE.UPLOADED"]}.',
    ),
    docs_url="https://developer.box.com/guides/webhooks/v2/signatures-v2",
    sample=Sample(
        "FILE.UPLOADED.json",
        headers={
            "box-delivery-id": "673a081b-bb4b-4d45-b4f1-4131a29c1d07",
            "user-agent": "Box-WH-Client/0.1",
        },
    ),
)
