"""The Telegram Bot API calls hookhub makes (`getMe`, `setWebhook`, `deleteWebhook`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from shared.errors import HookhubError, Invalid
from shared.oauth.provider import ProviderUnreachable


class TelegramRefused(Invalid):
    """Telegram answered `ok: false`; its description says why (bad token, not HTTPS...)."""

    code = "telegram_refused"


@dataclass(frozen=True)
class Bot:
    id: int
    username: str


class TelegramApi:
    def __init__(self, client: httpx.AsyncClient, base_url: str) -> None:
        self._client = client
        self._base = base_url.rstrip("/")

    async def _call(self, token: str, method: str, params: dict[str, Any] | None = None) -> Any:
        try:
            answer = await self._client.post(f"{self._base}/bot{token}/{method}", json=params or {})
        except httpx.HTTPError as exc:
            raise ProviderUnreachable(f"Telegram is unreachable: {type(exc).__name__}") from exc
        try:
            data = answer.json()
        except ValueError as exc:
            raise ProviderUnreachable(
                f"Telegram answered {answer.status_code} without JSON"
            ) from exc
        if answer.status_code >= 500:
            raise ProviderUnreachable(f"Telegram answered {answer.status_code}")
        if not isinstance(data, dict) or not data.get("ok"):
            description = data.get("description", "") if isinstance(data, dict) else ""
            raise TelegramRefused(f"Telegram refused {method}: {description or answer.status_code}")
        return data.get("result")

    async def get_me(self, token: str) -> Bot:
        result = await self._call(token, "getMe")
        try:
            return Bot(id=int(result["id"]), username=str(result.get("username", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise HookhubError("Telegram getMe answered an unexpected shape") from exc

    async def set_webhook(self, token: str, url: str, secret_token: str) -> None:
        await self._call(token, "setWebhook", {"url": url, "secret_token": secret_token})

    async def delete_webhook(self, token: str) -> None:
        await self._call(token, "deleteWebhook")
