"""schemathesis over every operation of the API, through the single origin, authenticated.

The gateway, delivery and oauth services (the ones with routes) and sync run in-process on
the session's broker and database behind the edge, as `hookhub run` puts them; every
provider the oauth service may call is faked on loopback. schemathesis (its CLI, in a
subprocess, so this event loop keeps serving) generates a few requests per operation from
`/openapi.json` (the coverage, fuzzing and stateful phases) and fails on any 5xx and on any
answer the document does not describe: an undocumented status, content type or header, or
a body off its schema. It once found 20 operations answering 500 (see the API's validation
tests).

The operations are run in two halves, each a module of its own with an origin of its own,
so that two workers share them (tests/parallel.py): INTEGRATIONS (oauth's integrations,
providers and connects, and sync's routes under them, which need an integration that
POST /api/integrations made) in test_schemathesis_integrations.py, and every other one in
test_schemathesis_others.py. One pattern selects the first and excludes the second, so
that no operation falls between them. Each run asserts that it tested every operation of
its half (the count worked out here from the document).

A fixed seed, so a run is repeatable; HOOKHUB_SCHEMATHESIS_SEED picks another.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.sandbox.telegram import FakeTelegram
from tests.e2e.origin import running_origin
from tests.infra import Infra
from tests.support import ADMIN_TOKEN, RunningService, admin_headers

SEED = os.environ.get("HOOKHUB_SCHEMATHESIS_SEED", "20261123")
EXAMPLES = 3  # per operation and phase
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    )
)
# The integrations' half: what schemathesis learns of an integration (its id, from
# POST /api/integrations or the list) fills in the paths of the operations on it, so they
# run together. ~45 s each half alone on a quiet 2-core machine (the whole: 75-82 s).
INTEGRATIONS = (
    r"^/api/(integrations|auth/oauth|providers|provider-catalog|messages|templates"
    r"|notification-events)(/|$)"
)
# Each half, over 100 s beside the rest of the suite; the ceiling leaves room for a busy
# machine.
BUDGET_SECONDS = 240


@pytest.fixture(scope="module")
async def origin(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory, telegram_api: tuple[FakeTelegram, str]
) -> AsyncIterator[RunningService]:
    data_dir = tmp_path_factory.mktemp("schemathesis")
    async with running_origin(infra, data_dir, telegram_api[1], importer=False) as running:
        yield running.edge


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every operation of an OpenAPI document: its method, path and description."""
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


async def run_schemathesis(origin: RunningService, tmp_path: Path, *, integrations: bool) -> None:
    """schemathesis over the INTEGRATIONS half (`integrations`) or over every other
    operation; it must test each one of them and find nothing."""
    assert (await origin.client.get("/api/providers", headers=admin_headers())).status_code == 200
    half = [
        (method, path)
        for method, path, _ in operations((await origin.client.get("/openapi.json")).json())
        if bool(re.search(INTEGRATIONS, path)) == integrations
    ]
    assert len(half) >= 20, half
    command = [
        str(Path(sys.executable).parent / "st"),
        "run",
        f"{origin.base_url}/openapi.json",
        "--include-path-regex" if integrations else "--exclude-path-regex",
        INTEGRATIONS,
        "--header",
        f"Authorization: Bearer {ADMIN_TOKEN}",
        "--max-examples",
        str(EXAMPLES),
        "--checks",
        CHECKS,
        "--seed",
        SEED,
        # One worker: with two threads, Python 3.11's ast.parse (which hypothesis calls to
        # describe a filter) fails now and then ("AST constructor recursion depth mismatch").
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--generation-database",
        "none",
        # A failure is reported as found, not shrunk: shrinking can take minutes.
        "--no-shrink",
        "--max-failures",
        "3",
        "--no-color",
    ]
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    reading = asyncio.ensure_future(process.communicate())
    done, _ = await asyncio.wait([reading], timeout=BUDGET_SECONDS)
    if not done:
        process.terminate()  # it prints what it found so far
    output, _ = await reading
    report = output.decode(errors="replace")
    took = time.monotonic() - started
    assert done, f"schemathesis took over {BUDGET_SECONDS} s (seed {SEED}):\n{report[-20_000:]}"
    assert process.returncode == 0, f"seed {SEED}, {took:.0f} s:\n{report[-20_000:]}"
    selected = re.search(r"Selected: (\d+)/\d+", report)
    tested = re.search(r"Tested: (\d+)", report)
    assert selected is not None and int(selected.group(1)) == len(half), report[-5000:]
    assert tested is not None and int(tested.group(1)) == len(half), report[-5000:]
