"""GitLab's webhooks: `X-Gitlab-Token` equal to the webhook's Secret token (no signature, no
time: a token, compared in constant time). A webhook with a signing token (GitLab's
`webhook_signing_token` feature) is signed the Standard Webhooks way instead: `webhook-id`
(the Idempotency-Key), `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">` keyed by the base64 after `whsec_`; an integration with a
signing_token requires that signature, one with only a secret_token the token.

The event is `object_kind`, with `object_attributes.action` when there is one
(`issue.open`, `merge_request.merge`), else `event_name` (member, subgroup, project and
system hooks carry no `object_kind`), else the `X-Gitlab-Event` header. The delivery id is
`Idempotency-Key` ("consistent across webhook retries", GitLab 17.4+), else
`X-Gitlab-Event-UUID` (older GitLab; a resend gets a new one).

Checked against https://docs.gitlab.com/user/project/integrations/webhooks/ ("Delivery
headers"), .../webhook_events/, and merge requests gitlab-org/gitlab!160952
(Idempotency-Key), !230944 and !231325 (the signing token). GitLab has no Python SDK that
verifies webhooks (python-gitlab is an API client); the signing-token tests sign with
`standardwebhooks`, the specification's own library.
"""

from __future__ import annotations

import secrets

from shared.providers.catalog import Entry, Sample, Setting
from shared.providers.declared import Declared, FirstOf, FromHeader, FromJson, Joined
from shared.providers.schemes import AnyOf, StandardWebhooks, Token

WEBHOOKS = Declared(
    name="gitlab",
    scheme=AnyOf(
        (
            StandardWebhooks(setting="signing_token"),
            Token("x-gitlab-token", setting="secret_token"),
        )
    ),
    event=FirstOf(
        (
            Joined((FromJson("object_kind"), FromJson("object_attributes", "action"))),
            FromJson("event_name"),
            FromHeader("x-gitlab-event"),
        )
    ),
    delivery_id=FirstOf((FromHeader("idempotency-key"), FromHeader("x-gitlab-event-uuid"))),
    # GitLab does not send a webhook whose JSON exceeds 25 MB (gitlab-org/gitlab!38687).
    max_body_bytes=25 * 1024 * 1024,
)

ENTRY = Entry(
    provider="gitlab",
    name="GitLab",
    category="devtools",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            "secret_token",
            "the webhook's Secret token (GitLab sends it in X-Gitlab-Token); set this or "
            "signing_token",
            required=False,
        ),
        Setting(
            "signing_token",
            "the webhook's Signing token (whsec_…), where the GitLab instance offers it; when "
            "set, every request must carry its webhook-signature",
            required=False,
            pattern=r"whsec_[A-Za-z0-9+/]+={0,2}",
        ),
    ),
    events=(
        "push",
        "tag_push",
        "issue.open",
        "issue.update",
        "issue.close",
        "issue.reopen",
        "merge_request.open",
        "merge_request.update",
        "merge_request.approved",
        "merge_request.unapproved",
        "merge_request.merge",
        "merge_request.close",
        "merge_request.reopen",
        "note",
        "pipeline",
        "build",
        "deployment",
        "release",
        "wiki_page.create",
        "wiki_page.update",
        "wiki_page.delete",
    ),
    setup=(
        "In GitLab: the project (or group) → Settings → Webhooks → Add new webhook.",
        "URL: {webhook_url}; Secret token: a long random string, saved here as "
        "secret_token (or, where offered, a Signing token saved as signing_token).",
        "Select the trigger events, keep SSL verification on, Add webhook, then Test.",
    ),
    docs_url="https://docs.gitlab.com/user/project/integrations/webhooks/",
    sample=Sample(
        "issue_open.json",
        headers={
            "x-gitlab-event": "Issue Hook",
            "x-gitlab-instance": "https://gitlab.com",
            "x-gitlab-webhook-uuid": "02affd2d-2cba-4033-917d-ec22d5dc4b38",
            "x-gitlab-event-uuid": "13792a34-cac6-4fda-95a8-c58e00a3954e",
            "idempotency-key": "f5e5f430-f57b-4e6e-9fac-d9128cd7232f",
        },
    ),
    example_settings=lambda: {"secret_token": secrets.token_urlsafe(24)},
)
