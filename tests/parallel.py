"""How `make test` shares the suite between pytest-xdist workers (docs/development.md).

A worker runs whole modules (and the console's package whole): their module- and
package-scoped stacks start once, on one worker, as in a run without xdist. The slowest
modules go first, so that the run does not end with one worker still in a long module
while the other is idle.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

# Packages whose tests share one stack between their modules (a package-scoped fixture):
# all of their tests go to one worker, but for the modules that start a stack of their own.
ONE_WORKER_PACKAGES = ("tests/console/",)
OWN_STACK = ("tests/console/test_portal.py",)

# Where the suite's time goes (`--durations`), longest first: the console's browser tests,
# schemathesis's two halves (one test each; whole, it was the longest test), the modules
# that start `hookhub run`, processes of their own or a world of services, and the
# 40,000-message exports (CPU-bound); each directory's modules largest first. The rest
# (unit tests, fakes on loopback: seconds each) follow, largest first, and fill in around
# them. The suite is bound by the two cores, not by its waits: schemathesis's halves side
# by side beside the console took 200 and 256 s (58 and 73 s one after the other beside
# lighter modules), so one half starts the run and the other follows the other stacks.
FIRST = (
    "tests/console/",
    "tests/e2e/test_schemathesis_integrations",
    # Its own stack: with three workers these three units start the run one a worker
    # (xdist hands a worker its next unit once it has two tests or fewer left, so that a
    # unit of two tests would take the one after it along).
    "tests/console/test_portal.py",
    "tests/e2e/",
    "tests/e2e/test_schemathesis_others",
    "tests/providers/test_discord_export.py",
    "tests/providers/test_telegram_export.py",
    "tests/providers/test_slack_export.py",
    "tests/delivery/",
    "tests/sync/",
    "tests/importer/",
    "tests/gateway/",
    "tests/deploy/test_topics_command.py",
    "tests/shared/test_consumers.py",
    "tests/oauth/",
    "tests/bench/",
)


def scope_of(nodeid: str) -> str:
    """The unit a worker runs whole: the module, or the package that shares a stack."""
    module = nodeid.split("::", 1)[0]
    for package in ONE_WORKER_PACKAGES:
        if module.startswith(package) and module not in OWN_STACK:
            return package
    return module


def rank(scope: str, tests: int) -> tuple[int, int]:
    """Where `scope` (with `tests` tests) goes in the queue, by the longest of FIRST's
    prefixes it has: lower runs earlier."""
    matching = [prefix for prefix in FIRST if scope.startswith(prefix)]
    if not matching:
        return len(FIRST), -tests
    return FIRST.index(max(matching, key=len)), -tests


def in_queue_order(items: list[Any]) -> list[Any]:
    """The tests with `scope_of`'s units in `rank`'s order, each unit's tests as collected.
    Each worker collects the same and xdist queues the units as collected, so this is the
    order in which they are handed out."""
    sizes = Counter(scope_of(item.nodeid) for item in items)
    order = {scope: rank(scope, size) for scope, size in sizes.items()}
    return sorted(items, key=lambda item: order[scope_of(item.nodeid)])


class StackScheduling(LoadScopeScheduling):
    """xdist's loadscope with `scope_of`'s units, queued as collected (`in_queue_order`)
    rather than by their number of tests."""

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        super().__init__(config, log)
        config.option.loadscopereorder = False

    def _split_scope(self, nodeid: str) -> str:
        return scope_of(nodeid)
