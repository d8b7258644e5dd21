"""Mattermost in the provider catalog.

Mattermost sends hookhub nothing by webhook for sync: its messages are read from the bot's
WebSocket (`socket.py`) and written through the REST API (`api.py`), both with the bot
account's personal access token. The server is the user's own: its URL is a setting.
"""

from __future__ import annotations

from shared.providers.catalog import Entry, Setting
from shared.providers.mattermost.network import NETWORK

ENTRY = Entry(
    provider="mattermost",
    name="Mattermost",
    category="chat",
    capabilities=("sync", "history"),
    network=NETWORK,
    settings=(
        Setting(
            "server_url",
            "the Mattermost server's address as its users open it (https://chat.example.com)",
            secret=False,
            pattern=r"https?://[^\s/?#]+(/[^\s?#]*)?",
            refusal="server_url must be the server's http(s):// address, without a query",
        ),
        Setting(
            "bot_token",
            "a personal access token of the bot account (System Console → Integrations → Bot "
            "Accounts → the bot → Create New Token), 26 letters and digits",
            pattern=r"[a-z0-9]{26}",
            refusal="bot_token must be the 26-character access token Mattermost shows once "
            "when it is created",
        ),
    ),
    setup=(
        "System Console → Integrations → Bot Accounts: enable bot account creation, then "
        "create a bot (Integrations → Bot Accounts → Add Bot Account) and create a token for "
        "it; paste the token and your server's address here.",
        "System Console → Integrations → Integration Management: set Enable integrations to "
        "override usernames and Enable integrations to override profile picture icons to "
        "true, so that each message shows its chat author.",
        "Add the bot to the team and to each channel to sync (/invite @yourbot in the channel).",
    ),
    docs_url="https://developers.mattermost.com/integrate/reference/bot-accounts/",
)
