"""Telegram in the provider catalog."""

from __future__ import annotations

from shared.providers.catalog import Entry, Setting
from shared.providers.telegram.network import NETWORK
from shared.providers.telegram.webhooks import WEBHOOKS

ENTRY = Entry(
    provider="telegram",
    name="Telegram",
    category="chat",
    capabilities=("webhooks", "sync", "import", "notifications"),
    webhooks=WEBHOOKS,
    network=NETWORK,
    verification=("token", ("x-telegram-bot-api-secret-token",)),
    settings=(
        Setting("bot_token", "the bot's token from @BotFather (123456:ABC…)"),
        Setting(
            "secret_token",
            "1-256 characters of A-Z, a-z, 0-9, _ and -; generated when not given",
            required=False,
            pattern=r"[A-Za-z0-9_-]{1,256}",
            refusal="secret_token must be 1-256 characters of A-Z, a-z, 0-9, _ and -",
        ),
    ),
    events=("message", "edited_message", "channel_post", "callback_query", "my_chat_member"),
    setup=(
        "Create a bot with @BotFather and paste its token here: hookhub calls setWebhook "
        "with {webhook_url} itself.",
        "Add the bot to the groups to sync; for a group, turn its privacy mode off in "
        "@BotFather (/setprivacy).",
    ),
    docs_url="https://core.telegram.org/bots/api#setwebhook",
)
