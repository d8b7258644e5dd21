"""The single origin's route table follows the ownership table of SPEC §1."""

from __future__ import annotations

import pytest

from services.edge import owner_of


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/webhooks/incoming/hhwh_x", "gateway"),
        ("/api/webhooks/github/int_1", "gateway"),
        ("/api/webhooks/stats", "delivery"),
        ("/api/incoming-webhooks", "gateway"),
        ("/api/incoming-webhooks/iwh_1/rotate-token", "gateway"),
        ("/api/outgoing-webhooks/ow_1/test", "delivery"),
        ("/api/deliveries", "delivery"),
        ("/api/events", "delivery"),
        ("/api/integrations", "oauth"),
        ("/api/integrations/int_1/status", "oauth"),
        ("/api/integrations/int_1/mappings/m_1", "sync"),
        ("/api/integrations/int_1/import", "importer"),
        ("/api/imports/job_1/cancel", "importer"),
        ("/api/auth/oauth/callback", "oauth"),
        ("/api/providers/slack", "oauth"),
        ("/api/webhooksx", None),
        ("/api/unknown", None),
    ],
)
def test_owner_of(path: str, service: str | None) -> None:
    assert owner_of(path) == service
