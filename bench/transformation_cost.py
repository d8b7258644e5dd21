"""A transformation's cost (SPEC §17, issue #49): how long the delivery service's lane waits
for an endpoint's transformation before an attempt, measured as the dispatcher calls it
(`Transformer.apply` on the sandbox of shared.jsbox: the isolate kept, the run crossing to
the sandbox's worker process and back, the result checked), on the bench's ~1 KB
`message.created` body. Prints p50, p99 and the maximum over `--runs` runs after a warm-up
(#49's target: p99 ≤ 1 ms).

    python -m bench.transformation_cost [--runs 2000]

Not yet part of `make bench --only delivery`: the throughput run with 10% of its endpoints
transformed (and 10% FIFO) beside the plain one is left to come with #49's FIFO work; this
is the per-run cost that run would add.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import orjson

from bench.sender import EVENT_TYPE, message_data
from services.delivery.transformations.service import Outgoing, Transformer
from shared.egress import EgressPolicy
from shared.ids import utcnow
from shared.jsbox import Sandbox

# What a workspace writes: reshape the body for a receiver, add a header.
CODE = """
function handler(webhook) {
  const m = webhook.payload.data.message || {};
  webhook.payload = {
    kind: webhook.event_type,
    channel: webhook.payload.data.channel_id,
    text: m.text,
    at: webhook.payload.timestamp,
  };
  webhook.headers["X-Source"] = "hookhub";
  return webhook;
}
"""
TARGET_P99_MS = 1.0


async def measure(runs: int, warmup: int = 200) -> list[float]:
    sandbox = Sandbox()
    transformer = Transformer(sandbox, EgressPolicy.from_setting(""), None)
    try:
        times: list[float] = []
        for seq in range(warmup + runs):
            body = orjson.dumps(
                {
                    "type": EVENT_TYPE,
                    "timestamp": utcnow().isoformat(),
                    "data": message_data(seq, time.time()),
                }
            )
            outgoing = Outgoing("POST", "https://receiver.example/hook", body, {})
            started = time.perf_counter()
            result = await transformer.apply(CODE, EVENT_TYPE, outgoing, scope="ws_bench")
            took = time.perf_counter() - started
            if not isinstance(result, Outgoing):
                raise SystemExit(f"the transformation failed: {result}")
            if seq >= warmup:
                times.append(took * 1000)
        return sorted(times)
    finally:
        await sandbox.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    times = asyncio.run(measure(args.runs))

    def at(q: float) -> float:
        return times[min(len(times) - 1, int(q * len(times)))]

    verdict = "met" if at(0.99) <= TARGET_P99_MS else "missed"
    print(
        f"transformation cost over {len(times)} runs: p50 {at(0.5):.3f} ms, "
        f"p99 {at(0.99):.3f} ms, max {times[-1]:.3f} ms (target p99 ≤ {TARGET_P99_MS:g} ms: "
        f"{verdict})"
    )


if __name__ == "__main__":
    main()
