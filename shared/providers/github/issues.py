"""GitHub issues: `POST /repos/{owner}/{repo}/issues`, GitHub's refusals and rate limits
sorted into shared.providers.issues, and the chat message quoted in the issue's Markdown.

GitHub answers a repository the token cannot see with 404 (and sometimes 403), a body it
refuses (an unknown label, an empty title) with 422 `Validation Failed` and an `errors`
list, issues switched off with 410. Its secondary rate limits (content created too fast)
are 403 or 429 with `retry-after`, or with `x-ratelimit-remaining: 0` and
`x-ratelimit-reset` (epoch seconds); without either, GitHub asks to wait at least a minute.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from shared.providers import commonmark as md
from shared.providers.github.oauth import OAUTH
from shared.providers.issues import (
    CreatedIssue,
    IssueRateLimited,
    IssueRefused,
    IssueTokenRejected,
    IssueTracker,
    IssueUnreachable,
    QuotedMessage,
    header_number,
    json_or_none,
    utc,
)

HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
# GitHub's documented wait when a secondary limit names no time.
SECONDARY_LIMIT_WAIT = 60.0
# An issue body longer than this is refused by GitHub (422 "body is too long").
MAX_BODY = 65_536
_ERROR_TEXT_MAX = 500


class GitHubIssues(IssueTracker):
    """GitHub's issues API."""

    oauth = OAUTH

    async def create(
        self,
        token: str,
        repo: str,
        *,
        title: str,
        body: str | None = None,
        labels: Sequence[str] = (),
    ) -> CreatedIssue:
        owner, _, name = repo.partition("/")
        url = f"{self._base}/repos/{quote(owner, safe='')}/{quote(name, safe='')}/issues"
        payload: dict[str, Any] = {"title": title}
        if body:
            payload["body"] = body
        if labels:
            payload["labels"] = list(labels)
        try:
            answer = await self._client.post(
                url, json=payload, headers={**HEADERS, "Authorization": f"Bearer {token}"}
            )
        except httpx.LocalProtocolError as exc:  # a token that cannot be sent never will be
            raise IssueTokenRejected("GitHub: the token cannot be sent", "bad_credentials") from exc
        except httpx.HTTPError as exc:
            raise IssueUnreachable(f"GitHub did not answer ({type(exc).__name__})") from exc
        return _result(repo, answer)


def _result(repo: str, answer: httpx.Response) -> CreatedIssue:
    status = answer.status_code
    data = json_or_none(answer)
    if status == 201 and isinstance(data, dict) and data.get("number") is not None:
        return CreatedIssue(
            provider="github",
            id=str(data.get("id") or data["number"]),
            key_or_number=str(data["number"]),
            url=str(data.get("html_url") or ""),
            upstream_status=status,
        )
    said = _message(data) or f"HTTP {status}"
    if status == 401:
        raise IssueTokenRejected(f"GitHub rejected the token: {said}", "bad_credentials")
    limited = _rate_limit(answer, said)
    if limited is not None:
        raise limited
    if status >= 500 or 200 <= status < 300:
        raise IssueUnreachable(f"GitHub answered {status}: {said}", status)
    if status in (403, 404):
        raise IssueRefused(
            f"GitHub: repository {repo} not found, or the connected account cannot create "
            f"issues in it ({status} {said})",
            "repository_not_accessible",
            status,
        )
    if status == 410:
        raise IssueRefused(
            f"GitHub: issues are disabled in repository {repo} ({said})", "issues_disabled", status
        )
    if status == 422:
        raise IssueRefused(f"GitHub refused the issue: {said}", "validation_failed", status)
    raise IssueRefused(f"GitHub refused the issue: {status} {said}", f"http_{status}", status)


def _rate_limit(answer: httpx.Response, said: str) -> IssueRateLimited | None:
    status = answer.status_code
    if status not in (403, 429):
        return None
    headers = answer.headers
    retry_after = header_number(headers.get("retry-after"))
    if retry_after is not None:
        return IssueRateLimited(f"GitHub rate limit: {said}", retry_after, status)
    if headers.get("x-ratelimit-remaining") == "0":
        reset = header_number(headers.get("x-ratelimit-reset"))
        wait = max(reset - time.time(), 1.0) if reset is not None else SECONDARY_LIMIT_WAIT
        return IssueRateLimited(f"GitHub rate limit: {said}", wait, status)
    if status == 429 or "rate limit" in said.lower():
        return IssueRateLimited(f"GitHub rate limit: {said}", SECONDARY_LIMIT_WAIT, status)
    return None


def _message(data: Any) -> str:
    """GitHub's `message`, with what its `errors` list says (`Label labels invalid`)."""
    if not isinstance(data, dict):
        return ""
    message = str(data.get("message") or "")
    details = []
    for error in data.get("errors") or []:
        if isinstance(error, str):
            details.append(error)
        elif isinstance(error, dict):
            if error.get("message"):
                details.append(str(error["message"]))
            else:
                parts = (error.get("resource"), error.get("field"), error.get("code"))
                details.append(" ".join(str(p) for p in parts if p))
    if details:
        message = f"{message} ({'; '.join(details)})" if message else "; ".join(details)
    return message[:_ERROR_TEXT_MAX]


# -- the chat message, quoted in Markdown ---------------------------------------------------

# GitHub links `#12` to issue 12 (and records the reference on it) after Markdown is read, so
# a backslash does not stop it (github/cmark-gfm#181, as for `@` mentions: github/markup#1168);
# a zero-width joiner after the `#`, as commonmark.py puts after an `@`, does.
_ISSUE_REFERENCE = re.compile(r"#(?=\d)")


def quote_message(message: QuotedMessage) -> str:
    """The message as a Markdown blockquote: `> **author** wrote at time:` then its text,
    every line inside the quote and literal (shared.providers.commonmark: no markup,
    mentions or issue references come out of it), then a link back to it when there is one.
    """
    said = f"**{md.text(message.author)}** wrote"
    if message.time is not None:
        said += f" at {utc(message.time).strftime('%Y-%m-%d %H:%M UTC')}"
    lines = [f"> {said}:"]
    # The whole text: the issue body's own limit (MAX_BODY) is the caller's to check.
    text = md.quote(message.text, limit=MAX_BODY, lines=MAX_BODY)
    if text:
        lines += [">", _ISSUE_REFERENCE.sub("#" + md.ZWJ, text)]
    if md.safe_url(message.permalink) is not None:
        lines += [">", f"> {md.link('View the message in chat', message.permalink)}"]
    return "\n".join(lines)


def issue_body(body: str | None, message: QuotedMessage | None) -> str:
    """The issue's body: what the caller wrote, then the quoted message."""
    parts = [part for part in (body, quote_message(message) if message else None) if part]
    return "\n\n".join(parts)
