"""Slack in the provider catalog."""

from __future__ import annotations

from shared.providers.catalog import Entry, Setting
from shared.providers.slack.network import NETWORK
from shared.providers.slack.webhooks import WEBHOOKS

ENTRY = Entry(
    provider="slack",
    name="Slack",
    category="chat",
    capabilities=("webhooks", "oauth", "sync", "history", "import", "notifications"),
    webhooks=WEBHOOKS,
    network=NETWORK,
    verification=("slack_v0", ("x-slack-signature", "x-slack-request-timestamp")),
    settings=(
        Setting(
            "signing_secret",
            "the app's Signing Secret (Basic Information → App Credentials); else the app-level "
            "HOOKHUB_SLACK_SIGNING_SECRET",
            required=False,
        ),
        Setting(
            "bot_token",
            "a bot token (xoxb-…) of the app installed to the workspace, for sync without OAuth",
            required=False,
            pattern=r"xoxb-.+",
            refusal="bot_token must be a Slack bot token (xoxb-…), from the app's OAuth & "
            "Permissions page after installing it to the workspace",
        ),
    ),
    handshake="url_verification: the challenge echoed; ssl_check: an empty 200",
    events=(
        "event_callback.message",
        "event_callback.reaction_added",
        "event_callback.channel_created",
        "slash_command",
        "interactive.block_actions",
    ),
    setup=(
        "At api.slack.com → your app → Basic Information: copy the Signing Secret here.",
        "Event Subscriptions → Request URL: {webhook_url} (Slack's url_verification is "
        "answered at once).",
        "Subscribe to the bot events message.channels and message.groups (for sync).",
        "Bot Token Scopes: chat:write, chat:write.customize, channels:read, groups:read, "
        "channels:history, groups:history, users:read.",
        "Slash Commands and Interactivity & Shortcuts → Request URL: {webhook_url}.",
        "Invite the bot into each channel to sync: /invite @YourApp.",
    ),
    docs_url="https://api.slack.com/authentication/verifying-requests-from-slack",
)
