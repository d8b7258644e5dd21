"""Discord in the provider catalog."""

from __future__ import annotations

from shared.providers.catalog import Entry, Setting
from shared.providers.discord.network import NETWORK
from shared.providers.discord.webhooks import WEBHOOKS

ENTRY = Entry(
    provider="discord",
    name="Discord",
    category="chat",
    capabilities=("webhooks", "oauth", "sync", "history", "import", "notifications"),
    webhooks=WEBHOOKS,
    network=NETWORK,
    verification=("ed25519", ("x-signature-ed25519", "x-signature-timestamp")),
    settings=(
        Setting(
            "public_key",
            "the application's Public Key (64 hex digits, General Information); else the "
            "app-level HOOKHUB_DISCORD_PUBLIC_KEY",
            required=False,
            pattern=r"[0-9a-fA-F]{64}",
            refusal="public_key must be the application's 64-hex-digit Ed25519 key",
        ),
        Setting("bot_token", "the bot's token (Bot → Reset Token), for sync", required=False),
    ),
    handshake='PING (type 1) answered {"type": 1}',
    events=("application_command", "message_component", "modal_submit", "event.ENTITLEMENT_CREATE"),
    setup=(
        "Developer Portal → your application → General Information: copy the Public Key here.",
        "Interactions Endpoint URL: {webhook_url} (Discord's PING is answered at once).",
        "For Webhook Events: Webhooks → Endpoint URL: {webhook_url}.",
        "For sync: OAuth2 → URL Generator, scope bot, and invite the bot to your server.",
    ),
    docs_url="https://discord.com/developers/docs/interactions/overview#preparing-for-interactions",
)
