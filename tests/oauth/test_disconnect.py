"""Disconnect: an unreachable provider does not block it and the revocation is retried;
Telegram's webhook is deleted; deleting an integration disconnects it first."""

from __future__ import annotations

from datetime import timedelta

from services.oauth.tasks import Maintenance
from services.sandbox.oauth_server import FakeAuthorizationServer
from services.sandbox.telegram import FakeTelegram
from shared.kernel.ids import utcnow
from tests.oauth.flow import box_of, connect, db_of, tokens
from tests.support import KafkaTap, RunningService, admin_headers


def maintenance(oauth: RunningService) -> Maintenance:
    found: Maintenance = oauth.app.state.maintenance  # type: ignore[attr-defined]
    return found


async def test_an_unreachable_provider_is_retried_without_blocking_the_disconnect(
    oauth: RunningService,
    providers: dict[str, FakeAuthorizationServer],
    integration_events: KafkaTap,
    operational_events: KafkaTap,
) -> None:
    server = providers["google"]
    integration = await connect(oauth, "google", workspace_id="ws_unreachable")
    held = await tokens(oauth, integration["id"])
    server.revocation_unavailable = 2
    try:
        answer = await oauth.client.post(
            f"/api/integrations/{integration['id']}/disconnect", headers=admin_headers()
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "disconnected"
        assert answer.json()["revocation"] == "pending"
        assert await tokens(oauth, integration["id"]) == {}
        assert server.valid(held["access_token"])  # not revoked yet
        events = await integration_events.wait_for(
            lambda v: (
                v["type"] == "integration.disconnected" and v["integration_id"] == integration["id"]
            )
        )
        assert events and events[0]["data"]["revocation"] == "pending"
        # An operational event too (SPEC §17), for the workspace's subscribers.
        [operational] = await operational_events.wait_for(
            lambda v: v["data"].get("integration_id") == integration["id"]
        )
        assert operational["type"] == "operational.integration.disconnected"
        assert operational["workspace_id"] == "ws_unreachable"
        assert operational["data"]["reason"] == "disconnected"
        assert operational["data"]["revocation"] == "pending"

        pending = db_of(oauth).pending_revocations
        record = await pending.find_one({"integration_id": integration["id"]})
        assert record is not None and record["status"] == "pending" and record["attempts"] == 1
        assert box_of(oauth).decrypt(record["tokens"]["refresh_token"]) == held["refresh_token"]
        assert record["next_attempt_at"] > utcnow()
        assert await maintenance(oauth).retry_revocations() == 0  # not due yet

        async def due() -> None:
            await pending.update_one(
                {"_id": record["_id"]},
                {"$set": {"next_attempt_at": utcnow() - timedelta(seconds=1)}},
            )

        await due()
        assert await maintenance(oauth).retry_revocations() == 0  # still away: 503 again
        again = await pending.find_one({"_id": record["_id"]})
        assert again is not None and again["attempts"] == 2 and "503" in again["last_error"]
        await due()
        assert await maintenance(oauth).retry_revocations() == 1
    finally:
        server.revocation_unavailable = 0
    assert not server.valid(held["access_token"])
    assert await pending.find_one({"_id": record["_id"]}) is None


async def test_telegram_disconnect_deletes_the_webhook_and_forgets_the_bot_token(
    oauth: RunningService, telegram_api: tuple[FakeTelegram, str]
) -> None:
    fake, _ = telegram_api
    fake.add_bot("42:bye", 42, "bye_bot")
    created = await oauth.client.post(
        "/api/integrations",
        json={"provider": "telegram", "workspace_id": "ws_tg", "settings": {"bot_token": "42:bye"}},
        headers=admin_headers(),
    )
    assert created.status_code == 201, created.text
    assert "42:bye" in fake.webhooks
    answer = await oauth.client.post(
        f"/api/integrations/{created.json()['id']}/disconnect", headers=admin_headers()
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["revocation"] == "revoked"
    assert answer.json()["settings_configured"] == ["secret_token"]
    assert "42:bye" not in fake.webhooks
    assert ("42:bye", "deleteWebhook") in fake.calls

    # A new bot token connects it again.
    again = await oauth.client.patch(
        f"/api/integrations/{created.json()['id']}",
        json={"settings": {"bot_token": "42:bye"}},
        headers=admin_headers(),
    )
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "connected" and "42:bye" in fake.webhooks


async def test_deleting_a_connected_integration_revokes_its_tokens(
    oauth: RunningService, providers: dict[str, FakeAuthorizationServer]
) -> None:
    server = providers["github"]
    integration = await connect(oauth, "github", workspace_id="ws_delete")
    held = await tokens(oauth, integration["id"])
    deleted = await oauth.client.delete(
        f"/api/integrations/{integration['id']}", headers=admin_headers()
    )
    assert deleted.status_code == 204
    assert not server.valid(held["access_token"])
    doc = await db_of(oauth).integrations.find_one({"_id": integration["id"]})
    assert doc is not None and doc["deleted_at"] is not None and doc["tokens"] == {}
