"""Mattermost in the provider catalog.

Mattermost sends hookhub nothing by webhook for sync: its messages are read from the bot's
WebSocket (`socket.py`) and written through the REST API (`api.py`), both with the bot
account's personal access token. The server is the user's own: its URL is a setting. What
it does POST to the integration's URL is the clicks on cards' buttons and the `/hookhub`
slash command (`webhooks.py`).
"""

from __future__ import annotations

from shared.providers.catalog import Entry, Setting
from shared.providers.mattermost.actions import ACTION_EVENT
from shared.providers.mattermost.network import NETWORK
from shared.providers.mattermost.webhooks import COMMAND_EVENT, WEBHOOKS

ENTRY = Entry(
    provider="mattermost",
    name="Mattermost",
    category="chat",
    capabilities=("webhooks", "sync", "history"),
    network=NETWORK,
    webhooks=WEBHOOKS,
    verification=("mattermost_action_context", ()),
    events=(ACTION_EVENT, COMMAND_EVENT),
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
        Setting(
            "command_token",
            "the token of the /hookhub custom slash command (Integrations → Slash Commands → "
            "the command), 26 letters and digits; without it the command is refused",
            required=False,
            pattern=r"[a-z0-9]{26}",
            refusal="command_token must be the 26-character token Mattermost shows for the "
            "slash command",
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
        "Cards' buttons call back {webhook_url} from the Mattermost server: it must reach "
        "that address (System Console → Environment → Developer → Allow untrusted internal "
        "connections to: its host, when hookhub is on a private network).",
        "For /hookhub in the channels: Integrations → Slash Commands → Add Slash Command, "
        "trigger word hookhub, Request URL {webhook_url}, method POST, autocomplete on; "
        "paste its token here as command_token.",
    ),
    docs_url="https://developers.mattermost.com/integrate/reference/bot-accounts/",
)
