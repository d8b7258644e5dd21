"""A fake Telegram Bot API on loopback: `getMe`, `setWebhook`, `deleteWebhook`, real HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@dataclass
class FakeTelegram:
    bots: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)

    def add_bot(self, token: str, bot_id: int, username: str) -> None:
        self.bots[token] = {
            "id": bot_id,
            "is_bot": True,
            "first_name": username,
            "username": username,
        }

    def app(self) -> Starlette:
        async def method(request: Request) -> JSONResponse:
            token, name = request.path_params["token"], request.path_params["method"]
            self.calls.append((token, name))
            if token not in self.bots:
                return JSONResponse(
                    {"ok": False, "error_code": 401, "description": "Unauthorized"}, 401
                )
            params: dict[str, Any] = await request.json() if await request.body() else {}
            if name == "getMe":
                return JSONResponse({"ok": True, "result": self.bots[token]})
            if name == "setWebhook":
                url = str(params.get("url", ""))
                if not url.startswith(("https://", "http://")):
                    return JSONResponse(
                        {"ok": False, "error_code": 400, "description": "Bad Request: bad webhook"},
                        400,
                    )
                self.webhooks[token] = params
                return JSONResponse({"ok": True, "result": True, "description": "Webhook was set"})
            if name == "deleteWebhook":
                self.webhooks.pop(token, None)
                return JSONResponse({"ok": True, "result": True})
            return JSONResponse({"ok": False, "error_code": 404, "description": "Not Found"}, 404)

        async def healthz(_: Request) -> JSONResponse:
            return JSONResponse({"ok": True})

        return Starlette(
            routes=[
                Route("/healthz", healthz),
                Route("/bot{token}/{method}", method, methods=["GET", "POST"]),
            ]
        )
