"""The soak's plot: its samples over time, one panel a figure, the faults shaded.

Panels, top to bottom: resident memory of each process; its open file descriptors; each
consumer group's lag; MongoDB's documents per collection (the largest) with the data
size; deliveries pending and each service's event-loop lag. A gap in a line is a sample
that could not read it (the process, the broker or MongoDB was down).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.soak_judge import Coll, Fault, Proc, Sample

COLLECTIONS_SHOWN = 8
FAULT_COLOURS = ("tab:red", "tab:purple", "tab:brown", "tab:gray")


def _line(
    ax: Any, samples: Sequence[Sample], value: Callable[[Sample], float | None], **style: Any
) -> None:
    ys = [value(s) for s in samples]
    ax.plot([s.t / 60 for s in samples], [math.nan if y is None else y for y in ys], **style)


def _names(
    samples: Sequence[Sample], field: Callable[[Sample], dict[str, Any] | None]
) -> list[str]:
    return sorted({name for s in samples for name in (field(s) or {})})


def _short(group: str) -> str:
    """`bench-<run>-soak.hookhub.delivery.fanout` → `delivery.fanout`."""
    return group.partition(".hookhub.")[2] or group


def _of_process(name: str, figure: Callable[[Proc], float]) -> Callable[[Sample], float | None]:
    def value(s: Sample) -> float | None:
        proc = s.processes.get(name)
        return None if proc is None else figure(proc)

    return value


def _of(field: Callable[[Sample], Mapping[str, Any] | None], key: str, scale: float = 1.0) -> Any:
    """A sample's `field(sample)[key]` (a number, or a collection's count) times `scale`."""

    def value(s: Sample) -> float | None:
        found = (field(s) or {}).get(key)
        if found is None:
            return None
        return (found.count if isinstance(found, Coll) else float(found)) * scale

    return value


def _data_size(s: Sample) -> float | None:
    return None if s.collections is None else sum(c.size for c in s.collections.values()) / 1e6


def _read(samples: Sequence[Sample]) -> list[Sample]:
    """The samples that read the collections, and those MongoDB did not answer (a gap):
    the collections are read every few samples only (bench.soak_sample)."""
    return [s for s in samples if s.collections is not None or s.pending is None]


def plot(samples: Sequence[Sample], faults: Sequence[Fault], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(5, 1, sharex=True, figsize=(12, 15))
    memory, descriptors, lag, documents, pending = axes
    for name in _names(samples, lambda s: s.processes):
        _line(memory, samples, _of_process(name, lambda p: p.rss / 1e6), label=name)
        _line(descriptors, samples, _of_process(name, lambda p: p.fds), label=name)
    for group in _names(samples, lambda s: s.lag):
        _line(lag, samples, _of(lambda s: s.lag, group), label=_short(group))
    read = _read(samples)
    final = next((s.collections for s in reversed(read) if s.collections), {})
    largest = sorted(final, key=lambda n: final[n].count, reverse=True)[:COLLECTIONS_SHOWN]
    for name in largest:
        _line(documents, read, _of(lambda s: s.collections, name), label=name)
    size = documents.twinx()
    _line(size, read, _data_size, color="black", linestyle="--", label="data size (MB, right)")
    _line(pending, samples, lambda s: s.pending, color="black", label="deliveries pending (left)")
    loop = pending.twinx()
    for service in _names(samples, lambda s: s.loop_lag):
        label = f"{service} loop lag (ms, right)"
        _line(loop, samples, _of(lambda s: s.loop_lag, service, 1000), linestyle=":", label=label)
    labels = [
        (memory, "RSS (MB)"),
        (descriptors, "open file descriptors"),
        (lag, "consumer lag (messages)"),
        (documents, "documents"),
        (pending, "deliveries pending"),
    ]
    for ax, label in labels:
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        for index, fault in enumerate(faults):
            ax.axvspan(
                fault.start / 60,
                max(fault.end, fault.start + 5) / 60,
                color=FAULT_COLOURS[index % len(FAULT_COLOURS)],
                alpha=0.15,
                label=fault.name if ax is memory else None,
            )
        ax.legend(loc="upper left", fontsize=7, ncol=3)
    size.legend(loc="upper right", fontsize=7)
    loop.legend(loc="upper right", fontsize=7)
    descriptors.set_yscale("log")  # tens for most processes, hundreds for delivery's pools
    pending.set_xlabel("minutes since the load began")
    memory.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
