"""What an integration is, which write-only settings each provider takes, and its snapshot."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shared.crypto import SecretBox
from shared.envelopes import IntegrationEvent, new_event_id
from shared.errors import Invalid, NotFound
from shared.ids import new_id, utcnow
from shared.mongo import Document
from shared.providers.catalog import CATALOG, Entry


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


def catalog_entry(provider: str) -> Entry:
    """The provider's catalog entry (its settings, its webhooks); 404 `unknown_provider`
    for one the catalog lacks: what a request names is not there, as for a webhook to it."""
    entry = CATALOG.get(str(provider))
    if entry is None:
        raise NotFound(
            f"no provider {provider!r}; GET /api/provider-catalog lists them",
            code="unknown_provider",
        )
    return entry


def check_settings(provider: str, settings: Mapping[str, Any], *, creating: bool) -> dict[str, str]:
    """Validate settings against the provider's catalog entry; return them as strings.
    Raises Invalid (422). Secret ones go to `secrets` (sealed), others to `config`
    (`split_settings`)."""
    entry = catalog_entry(provider)
    allowed = {s.name: s for s in entry.settings}
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise Invalid(
            f"{provider} takes no setting {', '.join(unknown)}; "
            f"it takes: {', '.join(allowed) or 'none (OAuth only)'}",
            code="unknown_setting",
        )
    values: dict[str, str] = {}
    for name, value in settings.items():
        text = allowed[name].text_of(value)
        if text is None:
            raise Invalid(
                f"setting {name} must be {allowed[name].expected()}, not {_json_kind(value)}",
                code="invalid_setting",
            )
        values[name] = text
    if creating:
        missing = [
            s.name
            for s in entry.settings
            if s.required and s.name not in values and s.default is None
        ]
        if missing:
            raise Invalid(f"{provider} needs {', '.join(missing)}", code="missing_setting")
        unchosen = entry.unchosen(values)
        if unchosen is not None:
            raise Invalid(unchosen, code="missing_setting")
    for name, value in values.items():
        problem = allowed[name].problem(value)
        if problem is not None:
            raise Invalid(problem, code="invalid_setting")
    return values


def _json_kind(value: Any) -> str:
    """What a JSON value is, in a user's words (what a setting was given instead)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return "an empty string"
    return "an array" if isinstance(value, list) else "an object"


def split_settings(
    provider: str, values: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """(secret settings, the others): the first sealed in `secrets`, the rest in `config`."""
    entry = catalog_entry(provider)
    secret = {n: v for n, v in values.items() if (s := entry.setting(n)) is None or s.secret}
    return secret, {n: v for n, v in values.items() if n not in secret}


def defaults(provider: str) -> dict[str, str]:
    """The catalog's defaults of the settings not given (a generic source's algorithm)."""
    return {s.name: s.default for s in catalog_entry(provider).settings if s.default is not None}


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
