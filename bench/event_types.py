"""Benchmark "event-types" (SPEC §17, issue #49): the ingress of `POST /api/events` when the
event's type has an enforced JSON Schema, against the same ingress for a type the catalog
does not hold, in the same run.

One `hookhub serve delivery` process (no endpoint: the events are published to Kafka and
fanned out to nobody). Through its API (admin token), one global event type is created,
`enforce: true`, whose JSON Schema 2020-12 describes the `data` of a realistic
`message.created` event (`bench.sender.message_data`: nested objects, arrays, formats):

- **ours:** `POST /api/events` of type `bench.enforced`: the schema is applied to `data`
  from the replica's compiled catalog (services/delivery/event_types/catalog.py), then the
  event goes to Kafka;
- **baseline:** the same body with type `bench.open`, which the catalog does not hold (the
  open set of SPEC §6): no schema applied, the same publish.

Before anything is timed each is answered once: 202 for both, and 422 naming the path for
the enforced type's event with `data.channel_id` a number (the schema is really applied).
ROUNDS rounds alternate the two, as bench/management.py does, so that the machine's drift
hits both alike. Target: ≥ 0.9 (a compiled schema, no MongoDB read per event).
"""

from __future__ import annotations

import copy
from typing import Any

import httpx
import orjson

from bench.harness import BenchError, BenchmarkResult, Harness, Measurement, ratio_note
from bench.loadgen import Target
from bench.management import _ms_per, combined
from bench.sender import message_data

ROUNDS = 4
TARGET = 0.9
WORKSPACE = "ws_bench_event_types"
ENFORCED = "bench.enforced"
OPEN = "bench.open"
PATH = "/api/events"

_ID = {"type": "string", "minLength": 1, "maxLength": 200}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["channel_id", "message"],
    "properties": {
        "bench_seq": {"type": "integer"},
        "sent_at": {"type": "number"},
        "channel_id": {"$ref": "#/$defs/id"},
        "message": {
            "type": "object",
            "required": ["id", "channel_id", "author", "text", "created_at"],
            "properties": {
                "id": {"$ref": "#/$defs/id"},
                "channel_id": {"$ref": "#/$defs/id"},
                "thread_id": {"anyOf": [{"$ref": "#/$defs/id"}, {"type": "null"}]},
                "author": {
                    "type": "object",
                    "required": ["id", "name"],
                    "properties": {
                        "id": {"$ref": "#/$defs/id"},
                        "name": {"type": "string"},
                        "handle": {"type": "string"},
                        "avatar_url": {"type": "string", "format": "uri"},
                        "bot": {"type": "boolean"},
                    },
                },
                "text": {"type": "string", "maxLength": 40000},
                "mentions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["type", "id"],
                        "properties": {
                            "type": {"enum": ["user", "channel", "everyone"]},
                            "id": {"$ref": "#/$defs/id"},
                            "handle": {"type": "string"},
                        },
                    },
                },
                "attachments": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["type"],
                        "properties": {"type": {"type": "string"}, "url": {"type": "string"}},
                    },
                },
                "created_at": {"type": "string", "format": "date-time"},
                "edited_at": {"type": ["string", "null"]},
            },
        },
    },
    "$defs": {"id": _ID},
}


def event_body(event_type: str, data: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            "id": "evt_bench_event_types",
            "type": event_type,
            "workspace_id": WORKSPACE,
            "occurred_at": "2026-11-21T09:30:00Z",
            "data": data,
        }
    )


class EventTypes:
    name = "event-types"
    title = "POST /api/events with an enforced event type schema"

    def run(self, harness: Harness) -> BenchmarkResult:
        options = harness.options
        infrastructure = harness.infrastructure()
        admin = {"Authorization": f"Bearer {infrastructure.admin_token}"}
        delivery = harness.start_service("delivery")
        data = message_data(1, 0.0)
        answer = httpx.post(
            f"{delivery.url}/api/event-types",
            headers=admin,
            json={"name": ENFORCED, "schema": SCHEMA, "examples": [data], "enforce": True},
            timeout=30,
        )
        if answer.status_code != 201:
            raise BenchError(f"creating the event type: {answer.status_code} {answer.text}")
        url = delivery.url + PATH
        headers = {**admin, "Content-Type": "application/json"}
        enforced = Target(url, event_body(ENFORCED, data), headers)
        open_set = Target(url, event_body(OPEN, data), headers)
        checked = _checked(enforced, open_set, data)

        watch = [("delivery", delivery.child), ("kafka", infrastructure.broker)]
        window = options.duration / ROUNDS
        ours_runs: list[Measurement] = []
        base_runs: list[Measurement] = []
        for number in range(ROUNDS):
            turns = [("enforced", enforced, ours_runs), ("open", open_set, base_runs)]
            for label, target, runs in turns if number % 2 == 0 else reversed(turns):
                runs.append(harness.load(label, target, watch, duration=window))
        ours = combined(f"type {ENFORCED}, schema enforced", ours_runs)
        base = combined(f"type {OPEN}, not in the catalog", base_runs)
        rounds = ", ".join(
            f"{o.rps:,.0f} / {b.rps:,.0f} ({o.rps / b.rps if b.rps else 0:.2f})"
            for o, b in zip(ours_runs, base_runs, strict=True)
        )
        return BenchmarkResult(
            self.name,
            self.title,
            ours,
            base,
            [
                ratio_note(ours, base, TARGET),
                f"rounds, enforced / open req/s (ratio): {rounds}",
                # Less at the mercy of a shared machine than req/s: what each request costs.
                "CPU ms per event, enforced / open: "
                + ", ".join(f"{n} {_ms_per(ours, n)} / {_ms_per(base, n)}" for n, _ in watch),
                checked,
            ],
            setup=(
                f"POST {PATH} straight to delivery, {options.concurrency} connections, "
                f"{ROUNDS} alternating rounds of {window:g} s measured after "
                f"{options.warmup:g} s warm-up, {options.client} client"
            ),
        )


def _checked(enforced: Target, open_set: Target, data: dict[str, Any]) -> str:
    """BenchError unless both bodies are accepted and the schema refuses a bad one."""
    bad = copy.deepcopy(data)
    bad["channel_id"] = 7
    with httpx.Client(timeout=30, trust_env=False) as client:
        for target in (enforced, open_set):
            answer = client.post(target.url, content=target.body, headers=target.headers)
            if answer.status_code != 202:
                raise BenchError(f"POST {target.url}: {answer.status_code} {answer.text[:300]}")
        refused = client.post(
            enforced.url, content=event_body(ENFORCED, bad), headers=enforced.headers
        )
    message = refused.json().get("error", {}).get("message", "")
    if refused.status_code != 422 or not message.startswith("data.channel_id"):
        raise BenchError(f"the enforced schema did not refuse: {refused.status_code} {message}")
    return (
        f"checked before timing: both answer 202 ({len(enforced.body):,}-byte event); the "
        f"enforced type refuses data.channel_id = 7 with 422 ({message[:60]}…)"
    )


BENCHMARK = EventTypes()
