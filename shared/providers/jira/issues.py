"""Jira Cloud issues: REST v3 `POST {api}/ex/jira/{cloud_id}/rest/api/3/issue` with an
OAuth 2.0 (3LO) token, Jira's refusals sorted into shared.providers.issues.

A refused issue is 400 with `{"errorMessages": [...], "errors": {field: message}}`
(`project`: no such project or no permission to see it; `issuetype`: no such type in the
project; `summary`, `description`, ...). 401: the token; 403: the account may not create
issues there; 404: the site (cloud id) is not one the token reaches; 429 with
`Retry-After`: rate limited.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from shared.providers.issues import (
    CreatedIssue,
    IssueRateLimited,
    IssueRefused,
    IssueTokenRejected,
    IssueTracker,
    IssueUnreachable,
    header_number,
    json_or_none,
)
from shared.providers.jira.oauth import OAUTH

# When a 429 says nothing about how long to wait.
DEFAULT_RETRY_AFTER = 10.0
_ERROR_TEXT_MAX = 500
# Jira's field names in errors → our error codes.
_FIELD_ERRORS = {"project": "project_unknown", "issuetype": "issue_type_unknown"}


class JiraIssues(IssueTracker):
    """Stateless: every call takes the token and the site's cloud id."""

    oauth = OAUTH

    async def create(
        self,
        token: str,
        cloud_id: str,
        *,
        project_key: str,
        issue_type: str,
        summary: str,
        description: dict[str, Any] | None = None,
        site_url: str | None = None,
    ) -> CreatedIssue:
        """`site_url` (`https://acme.atlassian.net`) makes the issue's browse URL."""
        url = f"{self._base}/ex/jira/{quote(cloud_id, safe='')}/rest/api/3/issue"
        fields: dict[str, Any] = {
            "project": {"key": project_key},
            "issuetype": {"name": issue_type},
            "summary": summary,
        }
        if description is not None:
            fields["description"] = description
        try:
            answer = await self._client.post(
                url,
                json={"fields": fields},
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            )
        except httpx.LocalProtocolError as exc:
            raise IssueTokenRejected("Jira: the token cannot be sent", "unauthorized") from exc
        except httpx.HTTPError as exc:
            raise IssueUnreachable(f"Jira did not answer ({type(exc).__name__})") from exc
        return _result(answer, project_key, issue_type, site_url)


def _result(
    answer: httpx.Response, project_key: str, issue_type: str, site_url: str | None
) -> CreatedIssue:
    status = answer.status_code
    data = json_or_none(answer)
    if status == 201 and isinstance(data, dict) and data.get("key"):
        key = str(data["key"])
        url = f"{site_url.rstrip('/')}/browse/{key}" if site_url else str(data.get("self") or "")
        return CreatedIssue(
            provider="jira",
            id=str(data.get("id") or key),
            key_or_number=key,
            url=url,
            upstream_status=status,
        )
    said = _message(data) or f"HTTP {status}"
    if status == 401:
        raise IssueTokenRejected(f"Jira rejected the token: {said}", "unauthorized")
    if status == 429:
        retry_after = header_number(answer.headers.get("retry-after")) or DEFAULT_RETRY_AFTER
        raise IssueRateLimited(f"Jira rate limit: {said}", retry_after, status)
    if status >= 500 or 200 <= status < 300:
        raise IssueUnreachable(f"Jira answered {status}: {said}", status)
    if status == 404:
        raise IssueRefused(
            f"Jira: the site is not reachable with this connection ({said}); reconnect the "
            "integration to the right Atlassian site",
            "site_not_found",
            status,
        )
    if status == 403:
        raise IssueRefused(
            f"Jira: the connected account may not create issues in project {project_key} ({said})",
            "forbidden",
            status,
        )
    errors = data.get("errors") if isinstance(data, dict) else None
    errors = errors if isinstance(errors, dict) else {}
    for field, code in _FIELD_ERRORS.items():
        if field in errors:
            what = f"project {project_key}" if field == "project" else f"issue type {issue_type}"
            raise IssueRefused(f"Jira refused {what}: {said}", code, status)
    raise IssueRefused(f"Jira refused the issue: {said}", "validation_failed", status)


def _message(data: Any) -> str:
    """`errorMessages` and `errors` (`field: message`), as one line."""
    if not isinstance(data, dict):
        return ""
    parts = [str(m) for m in data.get("errorMessages") or [] if m]
    errors = data.get("errors")
    if isinstance(errors, dict):
        parts += [f"{field}: {message}" for field, message in errors.items()]
    if not parts and data.get("message"):
        parts.append(str(data["message"]))
    return "; ".join(parts)[:_ERROR_TEXT_MAX]
