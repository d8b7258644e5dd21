"""Google Chat in the provider catalog: a Chat app on an HTTP endpoint (hookhub's), posting
with its service account."""

from __future__ import annotations

import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.providers.catalog import Entry, Setting
from shared.providers.googlechat.network import IMPORT_AS, NETWORK, SERVICE_ACCOUNT
from shared.providers.googlechat.webhooks import AUDIENCE, WEBHOOKS


def _examples() -> dict[str, str]:
    """A key file of a fresh key (a random string would not pass the setting's pattern),
    and the verify page's example project number. Google knows neither."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "example-project",
        "private_key": private,
        "client_email": "hookhub-chat@example-project.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    return {SERVICE_ACCOUNT: json.dumps(info), AUDIENCE: "1234567890"}


ENTRY = Entry(
    provider="googlechat",
    name="Google Chat",
    category="chat",
    # `import` without `history`: an import lists a space as the `import_as` user; sync
    # does not catch up (it hears only the messages that @mention the app).
    capabilities=("webhooks", "sync", "import"),
    network=NETWORK,
    webhooks=WEBHOOKS,
    verification=("google_chat_bearer", ("authorization",)),
    settings=(
        Setting(
            SERVICE_ACCOUNT,
            "the Chat app's service account key, the JSON file the Cloud console downloads "
            "(IAM & Admin → Service Accounts → Keys → Add key → JSON)",
            # A key file: a JSON object naming both (checked fully when first used).
            pattern=r'(?s)\s*\{(?=.*"client_email")(?=.*"private_key").*\}\s*',
            refusal="service_account_json must be a service account key file (JSON with "
            "client_email and private_key)",
        ),
        Setting(
            AUDIENCE,
            "the Authentication Audience of the Chat app's connection settings: the Cloud "
            "project number (digits), or the HTTP endpoint URL as given to Chat; the "
            "integration's webhook URL when not given",
            secret=False,
            required=False,
            pattern=r"[0-9]{1,20}|https://\S+",
            refusal="audience must be the Cloud project number or an https:// URL",
        ),
        Setting(
            IMPORT_AS,
            "for imports: the email of a Workspace user in the spaces to import, whom the "
            "service account acts as through domain-wide delegation of "
            "https://www.googleapis.com/auth/chat.messages.readonly (Admin console → "
            "Security → API controls → Domain-wide delegation: the service account's "
            "client ID and that scope)",
            secret=False,
            required=False,
            pattern=r"[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}",
            refusal="import_as must be a user's email address (name@example.com)",
        ),
    ),
    events=(
        "MESSAGE",
        "ADDED_TO_SPACE",
        "REMOVED_FROM_SPACE",
        "CARD_CLICKED",
        "WIDGET_UPDATED",
        "APP_COMMAND",
    ),
    setup=(
        "In the Google Cloud console, enable the Google Chat API and create a service "
        "account with a JSON key; paste the key file here as service_account_json.",
        "Google Chat API → Configuration: give the app a name, avatar and description; "
        "under Connection settings choose HTTP endpoint URL and enter {webhook_url}.",
        "Authentication Audience: HTTP endpoint URL (then nothing more here), or Project "
        "Number (then save the project's number here as audience).",
        "Add the app to each space to sync and map the space (its name, spaces/…, from the "
        "space's URL) to a chat channel; hookhub posts there as the app, each message led "
        "by its author's name. Chat sends the app a space's messages only when it is "
        "@mentioned (every message in a direct message).",
        "To import a space's history (POST /api/integrations/{id}/import), a Workspace "
        "administrator grants the service account domain-wide delegation (Admin console → "
        "Security → API controls → Domain-wide delegation → Add new: the service account's "
        "client ID, scope https://www.googleapis.com/auth/chat.messages.readonly); save "
        "here as import_as the email of a user who is a member of the spaces to import: "
        "hookhub lists their messages as that user.",
    ),
    docs_url="https://developers.google.com/workspace/chat/verify-requests-from-chat",
    example_settings=_examples,
)
