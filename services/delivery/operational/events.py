"""The operational events about an endpoint's changes, built from its document (no URL, no
secret, no header: an operational subscriber may be a third party, and an endpoint's URL may
carry a token)."""

from __future__ import annotations

from typing import Any

from shared.domain.operational import operational_event
from shared.kernel.envelopes import OperationalEvent, OperationalType
from shared.kernel.mongo import Document


def endpoint_event(type: OperationalType, doc: Document, **data: Any) -> OperationalEvent:
    return operational_event(
        doc["workspace_id"],
        type,
        endpoint_id=str(doc["_id"]),
        name=doc.get("name"),
        enabled=bool(doc.get("enabled", True)),
        **data,
    )
