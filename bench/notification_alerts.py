"""The alerts' mix of benchmark "notifications" (bench.notifications): Alertmanager groups and
PagerDuty incidents walking their lifecycles, every resolution and every firing again a root
edit and a lifecycle written (SPEC §16).

Set-up: an Alertmanager integration (a bearer token) and a PagerDuty one (a signing
secret), made through the oauth service; 5 subscriptions of each (every event, threads on),
each to a chat channel of its own, so a webhook makes 5 notifications as GitHub's mix does.
The webhooks are the providers' own samples (shared/providers/<provider>/samples/, their
sources in the README there) with the item varied: ITEMS alert groups (`groupKey`) and as
many incidents (`event.data.id`) a phase, picked at random; each item goes through its cycle
in turn — a group firing, firing again (its alerts as of then), resolved; an incident
triggered, acknowledged, resolved — and round again, firing within the hour of its
resolution, so its thread reopens. Alertmanager sends no delivery id (the gateway takes the
body's digest): each body is made unique by its alerts' `startsAt`/`endsAt` (the webhook's
sequence number as seconds), and the harness knows each digest's webhook. PagerDuty's
`X-Webhook-Id` is the GUID naming the phase and webhook, as GitHub's delivery is.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.harness import create_integration
from bench.notification_mix import (
    PER_REPOSITORY,
    PHASES,
    Webhook,
    _guid_seq,
    _mix,
    delivery_id,
    encoded,
)
from shared.providers.ids import derived_delivery_id

PROVIDERS = Path(__file__).resolve().parents[1] / "shared" / "providers"
ITEMS = 200  # alert groups a phase, and as many incidents
MIX: tuple[tuple[str, int], ...] = (("alertmanager", 50), ("pagerduty", 50))
CYCLES = {
    "alertmanager": ("firing", "firing", "resolved"),
    "pagerduty": ("triggered", "acknowledged", "resolved"),
}
# Where the alerts' times start: the webhook's sequence number is added as seconds.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _sample(provider: str, name: str) -> str:
    return (PROVIDERS / provider / "samples" / name).read_text()


class Alerts:
    name = "alerts"
    title = "Alertmanager and PagerDuty notifications"
    mix: tuple[tuple[str, int], ...] = MIX

    def __init__(self) -> None:
        self.token = uuid.uuid4().hex
        self.secret = uuid.uuid4().hex
        self.integrations: dict[str, str] = {}
        self.samples = {
            **{
                ("alertmanager", s): _sample("alertmanager", f"{s}.json")
                for s in CYCLES["alertmanager"]
            },
            **{
                ("pagerduty", s): _sample("pagerduty", f"incident_{s}.json")
                for s in CYCLES["pagerduty"]
            },
        }
        self.kinds = [kind for kind, weight in MIX for _ in range(weight)]
        self.stages: Counter[tuple[str, str, int]] = Counter()  # (phase, provider, item)
        self.digests: dict[bytes, int] = {}  # Alertmanager's delivery ids → phase and seq

    def prepare(self, oauth_url: str, admin_token: str) -> None:
        for provider, settings in (
            ("alertmanager", {"token": self.token}),
            ("pagerduty", {"signing_secret": self.secret}),
        ):
            self.integrations[provider] = create_integration(
                oauth_url, admin_token, provider, "ws_bench", settings
            )

    def subscriptions(self) -> list[tuple[str, dict[str, Any]]]:
        return [
            (
                integration_id,
                {"channel_id": f"ch_{provider}_{n}", "events": ["*"], "threads": "item"},
            )
            for provider, integration_id in self.integrations.items()
            for n in range(PER_REPOSITORY)
        ]

    def webhook(self, phase: str, seq: int, kind: str | None = None) -> Webhook:
        rng = random.Random(f"alerts-{phase}-{seq}")
        provider = kind or rng.choice(self.kinds)
        item = rng.randrange(ITEMS)
        cycle = CYCLES[provider]
        stage = cycle[self.stages[phase, provider, item] % len(cycle)]
        self.stages[phase, provider, item] += 1
        delivery = delivery_id(phase, seq)
        path = f"/api/webhooks/{provider}/{self.integrations[provider]}"
        if provider == "alertmanager":
            body = self._group(phase, item, stage, seq)
            self.digests[derived_delivery_id(body).encode()] = (PHASES[phase] << 64) | seq
            headers = {"content-type": "application/json", "authorization": f"Bearer {self.token}"}
        else:
            payload = json.loads(self.samples["pagerduty", stage])
            payload["event"]["id"] = delivery
            payload["event"]["data"]["id"] = f"PB{PHASES[phase]}{item:04d}"
            body = orjson.dumps(payload)
            signature = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            headers = {
                "content-type": "application/json",
                "x-pagerduty-signature": f"v1={signature}",
                "x-webhook-id": delivery,
            }
        return Webhook(provider, body, delivery, path, headers)

    def _group(self, phase: str, item: int, stage: str, seq: int) -> bytes:
        payload = json.loads(self.samples["alertmanager", stage])
        name = f"bench-{phase}-{item:04d}"
        payload["groupKey"] = f'{{}}:{{alertname="{name}"}}'
        payload["groupLabels"] = {"alertname": name}
        payload["commonLabels"]["alertname"] = name
        at = (EPOCH + timedelta(seconds=seq)).isoformat()
        for alert in payload["alerts"]:
            alert["labels"]["alertname"] = name
            alert["startsAt" if stage == "firing" else "endsAt"] = at
        return orjson.dumps(payload)

    def seq_of(self, delivery: bytes) -> int | None:
        return self.digests.get(delivery) or _guid_seq(delivery)

    def fixed_message(self) -> bytes:
        from shared.providers.alertmanager.notify import NOTIFIER

        return encoded(
            NOTIFIER.notice(None, json.loads(self.samples["alertmanager", "firing"])),
            "alertmanager",
        )

    def notes(self, kinds: Counter[str]) -> list[str]:
        return [
            f"{len(self.integrations) * PER_REPOSITORY} subscriptions ({PER_REPOSITORY} of "
            "each integration, every event, threads on)",
            f"mix: {_mix(kinds, MIX)}; {ITEMS} alert groups and {ITEMS} incidents a phase, "
            "each cycling firing → firing → resolved or triggered → acknowledged → resolved, "
            "firing again within the hour (its thread reopened)",
        ]
