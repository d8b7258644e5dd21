"""schemathesis over every operation outside the integrations' half of the API
(tests/e2e/schemathesis_run.py): a module of its own, so that another worker runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.schemathesis_run import BUDGET_SECONDS, origin, run_schemathesis
from tests.support import RunningService

pytestmark = pytest.mark.e2e
__all__ = ["origin"]  # the module's fixture


@pytest.mark.timeout(BUDGET_SECONDS + 60)
async def test_schemathesis_finds_no_server_error_and_no_answer_off_the_schema(
    origin: RunningService, tmp_path: Path
) -> None:
    await run_schemathesis(origin, tmp_path, integrations=False)
