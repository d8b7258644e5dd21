"""An integration's application service registration (Application Service API,
spec.matrix.org v1.17, "Registration"): what the homeserver is configured with, served by
`GET /api/integrations/{id}/registration`. The transactions it then pushes are the
gateway's (shared/providers/matrix/webhooks.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.providers.matrix.network import DEFAULT_PREFIX


@dataclass(frozen=True)
class Registration:
    """An integration's appservice registration ("Registration"): `url` is where the
    homeserver sends transactions (it appends `/_matrix/app/v1/transactions/{txnId}`)."""

    id: str
    url: str
    as_token: str
    hs_token: str
    prefix: str

    @property
    def sender_localpart(self) -> str:
        """The appservice's own user: `{prefix}bot`, inside its exclusive namespace."""
        return f"{self.prefix}bot"

    def user_regex(self) -> str:
        """Every user whose localpart starts with the prefix, on any server: the spec's
        example form (`@_irc_bridge_.*`); a homeserver only ever applies it to its own."""
        return f"@{re.escape(self.prefix)}.*"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "as_token": self.as_token,
            "hs_token": self.hs_token,
            "sender_localpart": self.sender_localpart,
            # Puppets post for many chat users: exempt them from per-user limits.
            "rate_limited": False,
            "namespaces": {
                "users": [{"exclusive": True, "regex": self.user_regex()}],
                "aliases": [],
                "rooms": [],
            },
        }


def registration_for(integration_id: str, appservice_url: str, settings: Mapping[str, str]) -> str:
    """The registration file of one integration, from its settings (`as_token`, `hs_token`,
    `namespace_prefix`): what `GET /api/integrations/{id}/registration` answers. `appservice_url`
    is the integration's URL the homeserver sends its transactions under."""
    return registration_yaml(
        Registration(
            id=f"hookhub-{integration_id}",
            url=appservice_url,
            as_token=settings["as_token"],
            hs_token=settings["hs_token"],
            prefix=settings.get("namespace_prefix") or DEFAULT_PREFIX,
        )
    )


def registration_yaml(registration: Registration) -> str:
    """The registration file for the homeserver's `app_service_config_files`: YAML whose
    every value is a JSON scalar (JSON's strings are YAML double-quoted scalars), so that
    no token or URL can turn into YAML of its own."""
    return _yaml(registration.as_dict(), 0)


def _yaml(value: Any, indent: int) -> str:
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, Mapping | list) and item:
                lines.append(f"{pad}{json.dumps(key)}:")
                lines.append(_yaml(item, indent + 1))
            else:
                lines.append(f"{pad}{json.dumps(key)}: {_scalar(item)}")
    else:
        for item in value:
            if isinstance(item, Mapping) and item:
                first, *rest = _yaml(item, indent + 1).split("\n")
                lines.append(f"{pad}- {first.lstrip()}")
                lines.extend(rest)
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    return "\n".join(lines) + ("\n" if indent == 0 else "")


def _scalar(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return json.dumps(value, ensure_ascii=True)
