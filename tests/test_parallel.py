"""The units `make test` hands its xdist workers, and their order (tests/parallel.py)."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, cast

from tests.parallel import StackScheduling, in_queue_order, scope_of


@dataclass
class Item:
    nodeid: str


def queued(ids: list[str]) -> list[str]:
    """`ids`, as collected, in the order their units are handed out."""
    return [item.nodeid for item in in_queue_order([Item(i) for i in ids])]


def test_a_module_is_one_unit_and_the_console_shares_one_but_for_its_own_stack() -> None:
    assert scope_of("tests/sync/test_slack.py::test_a[x]") == "tests/sync/test_slack.py"
    assert scope_of("tests/sync/test_slack.py::Case::test_b") == "tests/sync/test_slack.py"
    assert scope_of("tests/console/test_console.py::test_c") == "tests/console/"
    assert scope_of("tests/console/test_newcomer.py::test_d") == "tests/console/"
    assert scope_of("tests/console/test_portal.py::test_e") == "tests/console/test_portal.py"


def test_the_console_goes_first_then_every_other_module_in_file_order() -> None:
    ids = [
        "tests/bench/test_small.py::test_1",
        "tests/providers/test_large.py::test_1",
        "tests/providers/test_large.py::test_2",
        "tests/console/test_console.py::test_1",
        "tests/console/test_portal.py::test_1",
        "tests/e2e/test_stack.py::test_1",
        "tests/console/test_newcomer.py::test_1",
    ]
    assert queued(ids) == [
        "tests/console/test_console.py::test_1",
        "tests/console/test_newcomer.py::test_1",
        "tests/console/test_portal.py::test_1",
        "tests/bench/test_small.py::test_1",
        "tests/providers/test_large.py::test_1",
        "tests/providers/test_large.py::test_2",
        "tests/e2e/test_stack.py::test_1",
    ]


def test_a_lead_module_goes_first_in_its_packages_turn() -> None:
    # Nothing else moves, even where a package's modules are not collected together.
    ids = [
        "tests/shared/test_zz.py::test_1",
        "tests/test_aa.py::test_1",
        "tests/sync/test_buttons.py::test_1",
        "tests/sync/test_takeover.py::test_1",
        "tests/sync/test_takeover.py::test_2",
        "tests/sync/test_zz.py::test_1",
        "tests/test_imports.py::test_1",
    ]
    assert queued(ids) == [
        "tests/shared/test_zz.py::test_1",
        "tests/test_aa.py::test_1",
        "tests/sync/test_takeover.py::test_1",
        "tests/sync/test_takeover.py::test_2",
        "tests/sync/test_buttons.py::test_1",
        "tests/sync/test_zz.py::test_1",
        "tests/test_imports.py::test_1",
    ]


# The units that start stacks, as collected.
STACKS = [
    "tests/e2e/test_sandbox.py::test_1",
    "tests/console/test_portal.py::test_1",
    "tests/e2e/test_schemathesis_others.py::test_1",
    "tests/console/test_console.py::test_1",
    "tests/e2e/test_schemathesis_integrations.py::test_1",
    "tests/e2e/test_schemathesis_integrations.py::test_2",
]


@dataclass(eq=False)
class Worker:
    """What xdist's scheduler asks of a worker's controller."""

    gateway: Any
    shutting_down: bool = False

    def send_runtest_some(self, indices: list[int]) -> None:
        pass

    def shutdown(self) -> None:
        self.shutting_down = True


def test_with_three_workers_the_console_a_schemathesis_half_and_the_portal_start_one_a_worker() -> (
    None
):
    collection = queued(STACKS)
    config = SimpleNamespace(option=SimpleNamespace(), getvalue=lambda _: ["3*popen"])
    scheduling = StackScheduling(config)  # type: ignore[arg-type]
    workers = [Worker(SimpleNamespace(id=f"gw{n}")) for n in range(3)]
    for worker in workers:
        scheduling.add_node(worker)
    for worker in workers:
        scheduling.add_node_collection(worker, collection)
    scheduling.schedule()
    first = [next(iter(scheduling.assigned_work[worker])) for worker in workers]
    assert first == [
        "tests/console/",
        "tests/console/test_portal.py",
        "tests/e2e/test_sandbox.py",
    ]


def test_a_worker_collects_in_queue_order_when_the_controller_schedules_by_stack() -> None:
    """xdist sets `dist=load` for `-n` in the controller only (a worker's own option says
    "no"): the controller says it in each worker's input, and a worker told so puts what
    it collected in queue order, the order xdist hands the units out in. Untold (no `-n`,
    or another `--dist`), the order stays the files'."""
    from tests import conftest

    node = SimpleNamespace(config=SimpleNamespace(getoption=lambda name: "load"), workerinput={})
    conftest.pytest_configure_node(node)
    ids = ["tests/shared/test_ids.py::test_1", "tests/console/test_console.py::test_1"]
    items: list[Any] = [Item(nodeid) for nodeid in ids]
    worker = SimpleNamespace(workerinput=node.workerinput, getoption=lambda name: "no")
    conftest.pytest_collection_modifyitems(cast(Any, worker), items)
    assert [item.nodeid for item in items] == ids[::-1]

    untold = SimpleNamespace(workerinput={}, getoption=lambda name: "no")
    items = [Item(nodeid) for nodeid in ids]
    conftest.pytest_collection_modifyitems(cast(Any, untold), items)
    assert [item.nodeid for item in items] == ids
