"""schemathesis over the integrations' half of the API (tests/e2e/schemathesis_run.py), and
the error schema every operation documents."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.schemathesis_run import BUDGET_SECONDS, operations, origin, run_schemathesis
from tests.support import RunningService

pytestmark = pytest.mark.e2e
__all__ = ["origin"]  # the module's fixture


async def test_every_operation_documents_its_errors_with_the_error_schema(
    origin: RunningService,
) -> None:
    document = (await origin.client.get("/openapi.json")).json()
    assert len(operations(document)) >= 30
    for method, path, operation in operations(document):
        errors = {code: r for code, r in operation["responses"].items() if code >= "400"}
        assert {"404", "503"} <= set(errors), (method, path, sorted(errors))
        for code, response in errors.items():
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path, code)
    assert document["components"]["schemas"]["ErrorResponse"]["required"] == ["error"]


@pytest.mark.timeout(BUDGET_SECONDS + 60)
async def test_schemathesis_finds_no_server_error_and_no_answer_off_the_schema(
    origin: RunningService, tmp_path: Path
) -> None:
    await run_schemathesis(origin, tmp_path, integrations=True)
