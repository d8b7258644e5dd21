"""Importer composition root. It boots, connects and reports health; its capabilities come next."""

from __future__ import annotations

from shared.runtime import ServiceDefinition


def definition() -> ServiceDefinition:
    return ServiceDefinition(
        name="importer",
        description="Brings message history in from provider APIs and export files.",
    )
