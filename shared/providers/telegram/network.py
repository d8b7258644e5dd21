"""Telegram as a chat network: its bot's messages through the Bot API, and Telegram
Desktop's exports. The Bot API keeps no history a bot can read: no catch-up (Telegram
delivers an undelivered update again for 24 hours) and no import through the API."""

from __future__ import annotations

import httpx

from shared.kernel.settings import Settings
from shared.providers.networks import AppValues, ExportKind, Network
from shared.providers.telegram.api import TelegramApi
from shared.providers.telegram.export import TelegramExport
from shared.providers.telegram.messages import TelegramChat


class TelegramNetwork(Network):
    name = "telegram"
    exports = {
        "telegram_export": ExportKind(
            "telegram",
            TelegramExport.open,
            "Telegram Desktop's result.json of a chat or of the whole account, bare or zipped",
        )
    }
    no_history = (
        "Telegram's Bot API gives no message history: a bot sees only what is sent after "
        "it joins, so there is nothing to import"
    )

    def chat(self, settings: Settings, client: httpx.AsyncClient, app: AppValues) -> TelegramChat:
        return TelegramChat(TelegramApi(client, settings.telegram_api_base))


NETWORK = TelegramNetwork()
