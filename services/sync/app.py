"""Sync composition root. It boots, connects and reports health; its capabilities come next."""

from __future__ import annotations

from shared.runtime import ServiceDefinition


def definition() -> ServiceDefinition:
    return ServiceDefinition(
        name="sync",
        description="Keeps channels in sync with Slack, Discord and Telegram both ways.",
    )
