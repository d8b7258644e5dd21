"""What actions need of an issue tracker (GitHub, Jira): the issue created, and the
provider's answers sorted into the chat contract's kinds of error (shared.providers.chat),
each carrying the provider's HTTP status for the log line.

- `IssueRefused`: the provider said no for a reason a retry cannot change (no access to
  the repository, an unknown label, project or issue type): 422 with its message.
- `IssueTokenRejected`: 401; a refreshed token may cure it, once.
- `IssueRateLimited`: wait `retry_after` seconds (GitHub's secondary limits, Jira's 429).
- `IssueUnreachable`: no usable answer (network, timeout, 5xx): try again later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self

import httpx

from shared.providers.chat import PermanentError, ProviderUnreachable, RateLimited, TokenRejected

if TYPE_CHECKING:
    from shared.domain.oauth.provider import OAuthProvider
    from shared.kernel.settings import Settings


class IssueTracker:
    """An issue tracker's API on the provider's API base (`HOOKHUB_<PROVIDER>_API_BASE`,
    else the provider's own: the OAuth provider's setting). Stateless: every call takes
    the token to use."""

    oauth: ClassVar[OAuthProvider]

    def __init__(self, client: httpx.AsyncClient, base_url: str) -> None:
        self._client = client
        self._base = base_url.rstrip("/")

    @classmethod
    def for_settings(cls, client: httpx.AsyncClient, settings: Settings) -> Self:
        return cls(client, cls.oauth.endpoints(settings).api_base)


@dataclass(frozen=True)
class CreatedIssue:
    """`key_or_number`: GitHub's issue number, Jira's key (`PROJ-1`); `id`: the provider's
    own id of the issue (stable, unlike a Jira key after a move); `url`: where people see it."""

    provider: str
    id: str
    key_or_number: str
    url: str
    upstream_status: int


@dataclass(frozen=True)
class QuotedMessage:
    """The chat message an issue is made from, as the issue quotes it."""

    author: str
    text: str
    time: datetime | None = None
    permalink: str | None = None


def utc(moment: datetime) -> datetime:
    """`moment` in UTC (a naive one is taken to be UTC already)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class IssueRefused(PermanentError):
    def __init__(self, message: str, error: str, upstream_status: int | None) -> None:
        super().__init__(message, error, "message")
        self.upstream_status = upstream_status


class IssueTokenRejected(TokenRejected):
    upstream_status = 401


class IssueRateLimited(RateLimited):
    def __init__(self, message: str, retry_after: float, upstream_status: int) -> None:
        super().__init__(message, retry_after)
        self.upstream_status = upstream_status


class IssueUnreachable(ProviderUnreachable):
    def __init__(self, message: str, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status


def upstream_status(exc: BaseException) -> int | None:
    """The provider's HTTP status behind an error of this module, if it answered."""
    status = getattr(exc, "upstream_status", None)
    return status if isinstance(status, int) else None


def header_number(value: str | None) -> float | None:
    """A numeric header (`retry-after`, `x-ratelimit-reset`), None when absent or not a number."""
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def json_or_none(answer: httpx.Response) -> Any:
    """The answer's JSON body, None when it has none (an HTML error page, an empty body)."""
    try:
        return answer.json()
    except ValueError:
        return None
