"""Delivery composition root. It boots, connects and reports health; its capabilities come next."""

from __future__ import annotations

from shared.runtime import ServiceDefinition


def definition() -> ServiceDefinition:
    return ServiceDefinition(
        name="delivery",
        description=(
            "Sends the chat product's events to subscribers' URLs, signed, retried and logged."
        ),
    )
