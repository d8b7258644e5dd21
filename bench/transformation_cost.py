"""A transformation's cost alone (SPEC §17, issue #49): `delivery-mix`'s second table
(`bench.delivery_mix.transformation_cost`: `Transformer.apply` as the dispatcher calls it,
the run crossing to the sandbox's worker process and back, the result checked, on the
bench's ~1.1 KB body) without the rest of the benchmark, for profiling:

    python -m bench.transformation_cost [--runs 2000]
"""

from __future__ import annotations

import argparse
import asyncio

from bench.delivery_mix import TRANSFORMATION_RUNS, transformation_cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=TRANSFORMATION_RUNS)
    args = parser.parse_args()
    result = asyncio.run(transformation_cost(args.runs))
    cost = result.ours
    print(
        f"transformation cost over {cost.ok:,} runs: p50 {cost.p50_ms:.3f} ms, "
        f"p99 {cost.p99_ms:.3f} ms, max {cost.max_ms:.3f} ms; {'; '.join(result.notes)}"
    )


if __name__ == "__main__":
    main()
