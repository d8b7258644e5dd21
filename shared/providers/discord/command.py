"""hookhub's Discord application command, `/hookhub` (SPEC §20; docs/acting.md, "Slash
commands"): its subcommands are the command's verbs, their options its words in order.
Registered by sync for the bot's application when it connects its gateway
(`DiscordChat.register_command`), where the application has none of this shape; the shape
is Discord's "Application Command Object" (docs.discord.com/developers/interactions/
application-commands): type 1 CHAT_INPUT, options of type 1 SUB_COMMAND and 3 STRING."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SUB_COMMAND, STRING = 1, 3


def _text(name: str, description: str, *, required: bool = False) -> dict[str, Any]:
    option: dict[str, Any] = {"type": STRING, "name": name, "description": description}
    if required:
        option["required"] = True
    return option


def _sub(name: str, description: str, *options: dict[str, Any]) -> dict[str, Any]:
    sub: dict[str, Any] = {"type": SUB_COMMAND, "name": name, "description": description}
    if options:
        sub["options"] = list(options)
    return sub


COMMAND: dict[str, Any] = {
    "name": "hookhub",
    "type": 1,
    "description": "hookhub in this channel",
    "options": [
        _sub(
            "subscribe",
            "post a provider's events here",
            _text(
                "provider",
                "github, jira, pagerduty, or github:<integration id>",
                required=True,
            ),
            _text("target", "owner/repo, a project key, or * for all", required=True),
            _text("filters", "key=value words: events=pull_request.* branches=main"),
        ),
        _sub(
            "unsubscribe",
            "stop one of this channel's subscriptions",
            _text("subscription", "its id, or <provider> <target>", required=True),
        ),
        _sub("list", "this channel's subscriptions"),
        _sub(
            "link",
            "how your account is linked to act from cards",
            _text("provider", "github, gitlab, jira, pagerduty, …", required=True),
        ),
        _sub("help", "the usage"),
    ],
}


def shape(command: Mapping[str, Any]) -> Any:
    """What of a command decides how it is typed and read: its name, type, description and
    options (each's type, name, description, whether required, and its own options), not
    the fields Discord adds (`id`, `version`, `application_id`, …)."""

    def options(of: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(
            (
                o.get("type"),
                o.get("name"),
                o.get("description"),
                bool(o.get("required")),
                options(o),
            )
            for o in of.get("options") or ()
            if isinstance(o, Mapping)
        )

    return (
        command.get("name"),
        command.get("type") or 1,
        command.get("description"),
        options(command),
    )
