"""Subscriptions' templates in the notifications consumer (SPEC §16): one run per event and
template of a workspace, however many of its subscriptions carry the template; a template
of another workspace, or another template, is a run of its own."""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client import CollectorRegistry

from services.sync.notifications.directory import SubscriptionSnapshot
from services.sync.notifications.post import Post
from services.sync.notifications.templates import PostTemplates
from services.sync.subscriptions.filters import filters_of
from shared.domain.templates import TemplateMetrics, Templates
from shared.kernel.envelopes import ProviderEvent
from shared.kernel.ids import utcnow
from shared.kernel.jsbox import Sandbox
from shared.kernel.mongo import BatchedWriter, Database
from shared.providers.alertmanager.notify import NOTIFIER

SAMPLE = Path(__file__).parents[2] / "shared" / "providers" / "alertmanager" / "samples"
SAYS = "function handler(event) { return {text: 'said: ' + event.payload.status}; }"
OTHER = "function handler(event) { return {text: 'other: ' + event.payload.status}; }"


def _subscription(n: int, workspace: str, template: str) -> SubscriptionSnapshot:
    return SubscriptionSnapshot(
        id=f"sub_{n}",
        workspace_id=workspace,
        integration_id="int_1",
        provider="alertmanager",
        channel_id=f"ch_{n}",
        threads=True,
        created_at=utcnow(),
        filters=filters_of({}),
        template=template,
    )


async def test_one_run_per_event_and_template_of_a_workspace(db: Database) -> None:
    payload = json.loads((SAMPLE / "firing.json").read_text())
    event = ProviderEvent(
        id="evt_1",
        provider="alertmanager",
        integration_id="int_1",
        workspace_id="ws_a",
        event_type="firing",
        delivery_id="d_1",
        payload=payload,
    )
    notice = NOTIFIER.notice("firing", payload)
    subscriptions = [
        _subscription(1, "ws_a", SAYS),
        _subscription(2, "ws_a", SAYS),
        _subscription(3, "ws_a", SAYS),
        _subscription(4, "ws_a", OTHER),
        _subscription(5, "ws_b", SAYS),
    ]
    registry = CollectorRegistry()
    sandbox = Sandbox()
    templates = PostTemplates(
        Templates(sandbox, TemplateMetrics(registry)), db=db, counts=BatchedWriter(db)
    )
    # A second event of the batch, resolved, for two of them: each event gets its own run.
    resolved = json.loads((SAMPLE / "resolved.json").read_text())
    later = event.model_copy(update={"id": "evt_2", "event_type": "resolved", "payload": resolved})
    batch = [Post(event, s, notice) for s in subscriptions] + [
        Post(later, s, NOTIFIER.notice("resolved", resolved))
        for s in (subscriptions[0], subscriptions[4])
    ]
    try:
        posts = await templates.render(batch, [])
    finally:
        await sandbox.close()
    assert [p.notice.text for p in posts] == [
        "said: firing",
        "said: firing",
        "said: firing",
        "other: firing",
        "said: firing",
        "said: resolved",
        "said: resolved",
    ]
    runs = registry.get_sample_value(
        "hookhub_template_runs_total", {"use": "subscription", "outcome": "ok"}
    )
    assert runs == 5  # evt_1: ws_a's SAYS once, ws_a's OTHER, ws_b's SAYS; evt_2: two
