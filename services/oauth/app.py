"""Oauth composition root. It boots, connects and reports health; its capabilities come next."""

from __future__ import annotations

from shared.runtime import ServiceDefinition


def definition() -> ServiceDefinition:
    return ServiceDefinition(
        name="oauth",
        description="Connects workspaces to providers and keeps their tokens encrypted and fresh.",
    )
