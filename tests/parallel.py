"""How `make test` shares the suite between pytest-xdist workers (docs/development.md).

A worker runs whole modules (and the console's package whole): their module- and
package-scoped stacks start once, on one worker, as in a run without xdist. The console
goes first (its browser tests are the longest unit: at the end it would leave the other
workers idle); every other module follows in file order.

File order, not the longest first: the suite is bound by its two cores, not by its waits.
With the longest units first (schemathesis's halves, the `hookhub run` stacks, the
exports), they ran all at once beside the console: schemathesis's halves took 200 and
256 s (58 and 73 s apart, beside lighter modules), stop-time tests overran, the run took
13 minutes. In file order the heavy modules of tests/e2e/ and tests/providers/ come in
the middle, each beside lighter ones (10.4 minutes, the three workers ending within
25 s of each other).
"""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

# Packages whose tests share one stack between their modules (a package-scoped fixture):
# all of their tests go to one worker, but for the modules that start a stack of their own.
ONE_WORKER_PACKAGES = ("tests/console/",)
OWN_STACK = ("tests/console/test_portal.py",)

# The units that start the run, one a worker: the console's package, then its portal's
# module (a stack of its own).
FIRST = ("tests/console/", "tests/console/test_portal.py")
# Modules that lead their package's turn: the last package's longest, held by waits (a
# lease running out, a replica taking over, a restart) more than by work. At the run's
# end, in file order, one of them ran alone for 20 s while the other workers had finished.
LEAD = ("tests/sync/test_takeover.py", "tests/sync/test_notifications.py")


def scope_of(nodeid: str) -> str:
    """The unit a worker runs whole: the module, or the package that shares a stack."""
    module = nodeid.split("::", 1)[0]
    for package in ONE_WORKER_PACKAGES:
        if module.startswith(package) and module not in OWN_STACK:
            return package
    return module


def rank(scope: str) -> int:
    """Where `scope` goes in the queue, by the longest of FIRST's prefixes it has: lower
    runs earlier; the rest after them, in file order (the sort is stable)."""
    matching = [prefix for prefix in FIRST if scope.startswith(prefix)]
    if not matching:
        return len(FIRST)
    return FIRST.index(max(matching, key=len))


def in_queue_order(items: list[Any]) -> list[Any]:
    """The tests with `scope_of`'s units in `rank`'s order, each unit's tests as collected,
    but for `LEAD`'s modules, which move up to where their package's first test was
    collected; everything else keeps its place. Each worker collects the same and xdist
    queues the units as collected, so this is the order in which they are handed out."""
    turn: dict[str, int] = {}  # a package's place: where its first test was collected
    for index, item in enumerate(items):
        turn.setdefault(_package(item.nodeid), index)

    def key(indexed: tuple[int, Any]) -> tuple[int, int, bool, int]:
        index, item = indexed
        scope = scope_of(item.nodeid)
        lead = scope in LEAD
        return (rank(scope), turn[_package(item.nodeid)] if lead else index, not lead, index)

    return [item for _, item in sorted(enumerate(items), key=key)]


def _package(nodeid: str) -> str:
    return nodeid.split("::", 1)[0].rpartition("/")[0]


class StackScheduling(LoadScopeScheduling):
    """xdist's loadscope with `scope_of`'s units, queued as collected (`in_queue_order`)
    rather than by their number of tests."""

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        super().__init__(config, log)
        config.option.loadscopereorder = False

    def _split_scope(self, nodeid: str) -> str:
        return scope_of(nodeid)
