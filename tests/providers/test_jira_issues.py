"""Jira issues (shared/providers/jira/issues.py): Jira's answers sorted into our errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shared.providers.issues import (
    IssueRateLimited,
    IssueRefused,
    IssueTokenRejected,
    IssueUnreachable,
)
from shared.providers.jira.issues import _result


def answer(status: int, body: Any = None, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def result(response: httpx.Response, site: str | None = "https://acme.atlassian.net") -> Any:
    return _result(response, "PROJ", "Bug", site)


def test_created_with_the_sites_browse_url() -> None:
    created = result(answer(201, {"id": "10000", "key": "PROJ-24", "self": "https://x/10000"}))
    assert (created.id, created.key_or_number, created.url) == (
        "10000",
        "PROJ-24",
        "https://acme.atlassian.net/browse/PROJ-24",
    )
    assert result(answer(201, {"id": "1", "key": "PROJ-1", "self": "https://x/1"}), None).url == (
        "https://x/1"
    )


def test_errors_name_the_field() -> None:
    with pytest.raises(IssueRefused) as refused:
        result(answer(400, {"errorMessages": [], "errors": {"project": "Specify a valid project"}}))
    assert refused.value.error == "project_unknown"
    assert refused.value.message == "Jira refused project PROJ: project: Specify a valid project"
    with pytest.raises(IssueRefused) as refused:
        result(answer(400, {"errorMessages": [], "errors": {"issuetype": "Specify a valid type"}}))
    assert refused.value.error == "issue_type_unknown" and "issue type Bug" in refused.value.message
    with pytest.raises(IssueRefused) as refused:
        result(answer(400, {"errorMessages": ["Field 'x' cannot be set."], "errors": {}}))
    assert refused.value.error == "validation_failed"
    assert "Field 'x' cannot be set." in refused.value.message
    with pytest.raises(IssueRefused) as refused:
        result(answer(403, {"errorMessages": ["You do not have permission"]}))
    assert refused.value.error == "forbidden"
    with pytest.raises(IssueRefused) as refused:
        result(answer(404, {"errorMessages": ["Site not found"]}))
    assert refused.value.error == "site_not_found"


def test_token_limits_and_outages() -> None:
    with pytest.raises(IssueTokenRejected):
        result(answer(401, {"code": 401, "message": "Unauthorized"}))
    with pytest.raises(IssueRateLimited) as limited:
        result(answer(429, None, **{"retry-after": "7"}))
    assert limited.value.retry_after == 7
    with pytest.raises(IssueUnreachable):
        result(answer(503, None))
    with pytest.raises(IssueUnreachable):
        result(httpx.Response(201, text="<html>proxy</html>"))
