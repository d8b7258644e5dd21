"""What an integration is, and its snapshot. Which settings each provider takes is the
provider catalog's (shared.providers.catalog.check_settings)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shared.kernel.crypto import SecretBox
from shared.kernel.envelopes import IntegrationEvent, new_event_id
from shared.kernel.ids import new_id, utcnow
from shared.kernel.mongo import Document


class Provider(StrEnum):
    GITHUB = "github"
    SLACK = "slack"
    DISCORD = "discord"
    TELEGRAM = "telegram"
    JIRA = "jira"
    GOOGLE = "google"


class Status(StrEnum):
    PENDING = "pending"
    CONNECTED = "connected"
    ERROR = "error"
    DISCONNECTED = "disconnected"


# Providers whose bot a bot token names: one bot is one integration (docs/oauth.md).
BOT_PROVIDERS = frozenset({Provider.TELEGRAM, Provider.DISCORD})


def bot_key(provider: str, account_id: str) -> str:
    """What an integration holding a bot stores in `bot_key` (unique): the bot's identity at
    its provider (Telegram's bot id from getMe, Discord's bot user id from /users/@me), not
    the token's text, which a reset changes while the bot stays the same."""
    return f"{provider}:{account_id}"


@dataclass(frozen=True)
class IntegrationSnapshot:
    """What the gateway needs per integration, secrets decrypted, held in memory only."""

    id: str
    workspace_id: str
    provider: str
    enabled: bool
    is_default: bool
    status: str
    account_id: str | None
    rate_limit_per_second: float | None
    secrets: Mapping[str, str] = field(repr=False, default_factory=dict)
    # Settings that are not secret (a generic source's header name, its algorithm).
    config: Mapping[str, str] = field(default_factory=dict)


def snapshot(doc: Document, box: SecretBox) -> IntegrationSnapshot:
    account = doc.get("account") or {}
    return IntegrationSnapshot(
        id=str(doc["_id"]),
        workspace_id=doc["workspace_id"],
        provider=doc["provider"],
        enabled=bool(doc.get("enabled", True)),
        is_default=bool(doc.get("is_default", False)),
        status=doc.get("status", Status.PENDING),
        account_id=str(account["id"]) if account.get("id") is not None else None,
        rate_limit_per_second=doc.get("rate_limit_per_second"),
        secrets={name: box.decrypt(value) for name, value in (doc.get("secrets") or {}).items()},
        config=dict(doc.get("config") or {}),
    )


def new_integration(
    provider: str,
    workspace_id: str,
    *,
    name: str | None = None,
    **fields: Any,
) -> Document:
    """A new integration document (connected unless `fields` say otherwise)."""
    now = utcnow()
    return {
        "_id": new_id("int"),
        "workspace_id": workspace_id,
        "provider": str(provider),
        "name": name or f"{provider} integration",
        "status": Status.CONNECTED.value,
        "enabled": True,
        "is_default": False,
        "rate_limit_per_second": None,
        "account": None,
        "secrets": {},
        "config": {},
        "last_event_at": None,
        "event_count": 0,
        "error_count": 0,
        "last_error": None,
        "last_webhook_error": None,
        "created_at": now,
        "updated_at": now,
        "deleted_at": None,
        **fields,
    }


def integration_event(doc: Document, kind: str, **data: Any) -> IntegrationEvent:
    """`integration.<kind>` about this integration, for `hookhub.integration.events`."""
    return IntegrationEvent.model_validate(
        {
            "id": new_event_id(),
            "type": f"integration.{kind}",
            "workspace_id": doc["workspace_id"],
            "integration_id": str(doc["_id"]),
            "provider": doc["provider"],
            "data": data,
        }
    )
