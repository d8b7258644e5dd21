"""Acting on an item from the channel (SPEC §20): what a notifying provider offers on its
cards, and the provider call each offer makes, as the person who clicked.

A provider that can be acted on implements `Acting` in `shared/providers/<name>/acting.py`
(PagerDuty, Opsgenie, Sentry, Alertmanager, Grafana, GitHub, GitLab, Jira). Two halves:

- **Offers** (pure, no I/O): `offers(notice)` reads the rendered `Notice` of the item's
  latest change and says what can be done to the item *now* (a triggered incident can be
  acknowledged, an acknowledged one no longer), and `target(notice)` what the provider's
  API needs to act on it (an incident's id; an alert group's matchers and where its
  Alertmanager is). sync puts the offers on the item's root card (`Card.actions`), keeps
  the target beside the root in the message map, and edits the card when the item changes
  so its buttons are always the ones that apply.
- **Acting** (`perform`): one click, one provider call (or the few one action takes: a Jira
  transition is looked up by name first), made with the integration's credentials
  (`Credentials.settings`, the integration's secrets and settings: PagerDuty's
  `api_token`, Alertmanager's `api_url`) or the clicking user's own OAuth token
  (`Credentials.user_token`: GitHub, GitLab, Jira), naming the acting user where the API
  acts for a named user with the integration's token (`Link.provider_user`: PagerDuty's
  `From` email, Opsgenie's `user`). It returns an `Outcome` for the thread, or raises:
  `ActionRefused` when the provider said no for a reason a retry cannot change (its
  permissions, an item already resolved, a transition no longer offered): shown in the
  thread, never retried; `ActionUnavailable` when there was no usable answer (network,
  timeout, 5xx, 429): retried with backoff; `LinkRejected` when the user's token or
  mapping was refused (401): the user is asked to link again.

Action ids are stable strings namespaced by what they do (`acknowledge`, `resolve`,
`silence:1h`, `transition:31`), unique within one provider; a click names one. Labels are
plain text. Every address a `perform` calls that came from outside (Alertmanager's
`externalURL`, an integration's `api_url`) is checked by the caller's egress rules before
the call (`shared.kernel.egress`), as every outgoing request is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import httpx

from shared.domain.account_links import LinkKind
from shared.providers.notify import CardAction, Notice

# What an issue tracker's card offers (GitHub, GitLab, Jira): the same ids and labels.
CLOSE = CardAction("close", "Close", "danger")
REOPEN = CardAction("reopen", "Reopen")
ASSIGN_ME = CardAction("assign:me", "Assign to me", "primary")

__all__ = [
    "Acting",
    "ActionRefused",
    "ActionUnavailable",
    "CardAction",
    "Credentials",
    "Link",
    "LinkKind",
    "LinkRejected",
    "Offered",
    "Outcome",
    "ReadsOffers",
    "answer_error",
    "call",
]


@dataclass(frozen=True)
class Link:
    """The clicking chat user as the provider knows them: `provider_user` for a mapping
    (PagerDuty's `From` email, Opsgenie's user name), `external_id`/`name` where an OAuth
    link learnt them (what the API names the user by: GitHub's login, GitLab's user id,
    Jira's account id: "assign to me"), `account` what else it learnt (Jira: the sites
    the user's token reaches, `[{id, name, url}]`)."""

    chat_user_id: str
    kind: LinkKind
    provider_user: str | None = None
    external_id: str | None = None
    name: str | None = None
    account: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Credentials:
    """What a `perform` may act with: the integration's settings and secrets (decrypted,
    for this call only), the API base the provider's calls go to
    (`HOOKHUB_<PROVIDER>_API_BASE`, else the provider's own), and the clicking user's OAuth
    access token where the provider acts with it."""

    settings: Mapping[str, Any]
    api_base: str | None = None
    user_token: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What the provider did, for the thread: `text` is plain text in the past tense
    without the actor ("acknowledged", "silenced for 1 h until 14:20 UTC"); `state` the
    item's new state where the answer says it (the card shows it, marked pending, until the
    provider's own webhook arrives); `reference` the provider's id of what the call made (a
    silence's id), for the audit."""

    text: str
    state: str | None = None
    reference: str | None = None
    upstream_status: int | None = None


class ActionRefused(Exception):
    """The provider said no for a reason a retry cannot change: shown, not retried."""

    def __init__(self, message: str, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.upstream_status = upstream_status


class ActionUnavailable(Exception):
    """No usable answer (network, timeout, 5xx, 429): retried with backoff;
    `retry_after` seconds where the provider said."""

    def __init__(
        self,
        message: str,
        upstream_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.upstream_status = upstream_status
        self.retry_after = retry_after


class LinkRejected(Exception):
    """The provider refused who we act as (a 401 to the user's token, an unknown `From`
    email): the user is asked to link again."""

    def __init__(self, message: str, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.upstream_status = upstream_status


class Acting(Protocol):
    """A provider's actions. `link` says how its users are linked (`mapping` or `oauth`);
    `settings` the integration settings `perform` needs (for the catalog: an integration
    without them offers no actions and its cards have no buttons)."""

    name: str
    link: LinkKind
    settings: tuple[str, ...]

    def offers(self, notice: Notice) -> tuple[CardAction, ...]:
        """What can be done to the notice's item now (nothing once it is closed)."""
        ...

    def target(self, notice: Notice) -> Mapping[str, Any] | None:
        """What the API needs to act on the notice's item (JSON-safe, kept in the map
        beside the root); None when the notice does not say (then nothing is offered)."""
        ...

    async def perform(
        self,
        client: httpx.AsyncClient,
        credentials: Credentials,
        target: Mapping[str, Any],
        action_id: str,
        who: Link,
    ) -> Outcome:
        """Make the action's call(s). Raises ActionRefused, ActionUnavailable, LinkRejected."""
        ...


@runtime_checkable
class ReadsOffers(Protocol):
    """An `Acting` whose offers are not all in its webhooks (Jira's transitions): sync
    reads them beside its consumer after each root card (services.sync.clicks.reads)."""

    async def read_offers(
        self, client: httpx.AsyncClient, credentials: Credentials, target: Mapping[str, Any]
    ) -> tuple[CardAction, ...]:
        """The item's further offers now, read from the provider's API as the token's
        user. Raises ActionRefused, ActionUnavailable, LinkRejected."""
        ...


@dataclass(frozen=True)
class Offered:
    """A root card's actions and target, as sync keeps them beside the root."""

    provider: str
    actions: tuple[CardAction, ...] = ()
    target: Mapping[str, Any] = field(default_factory=dict)

    def to_doc(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "actions": [a.as_dict() for a in self.actions],
            "target": dict(self.target),
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Offered:
        return cls(
            provider=str(doc["provider"]),
            actions=tuple(CardAction.from_dict(a) for a in doc.get("actions") or ()),
            target=dict(doc.get("target") or {}),
        )

    def offers(self, action_id: str) -> CardAction | None:
        return next((a for a in self.actions if a.id == action_id), None)


async def call(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    what: str,
    body: Mapping[str, Any] | None,
    headers: Mapping[str, str],
    *,
    params: Mapping[str, str] | None = None,
) -> Any:
    """One JSON call to a provider (`body` None: a call without one, a read; `params` its
    query): its answer's JSON (None when it has none), or the error it is: no answer at all
    (network, timeout) is ActionUnavailable, a non-2xx answer what `answer_error` makes of
    it."""
    try:
        response = await client.request(method, url, json=body, headers=headers, params=params)
    except httpx.HTTPError as exc:
        raise ActionUnavailable(f"{what}: {type(exc).__name__} {exc}".strip()) from exc
    if not response.is_success:
        raise answer_error(response, what)
    try:
        return response.json()
    except ValueError:
        return None


def answer_error(
    response: httpx.Response, what: str
) -> ActionRefused | ActionUnavailable | LinkRejected:
    """A provider's non-2xx answer as the kind of error it is (401 → LinkRejected; 429 and
    5xx → ActionUnavailable, with `Retry-After` in seconds where given, else
    `RateLimit-Reset`'s (PagerDuty's); any other 4xx → ActionRefused), the provider's own
    message kept short for the thread."""
    status = response.status_code
    message = f"{what}: HTTP {status}" + _said(response)
    if status == 401:
        return LinkRejected(message, status)
    if status == 429 or status >= 500:
        return ActionUnavailable(message, status, _retry_after(response))
    return ActionRefused(message, status)


def _said(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return f" {text[:200]}" if text else ""
    if isinstance(body, str) and body.strip():  # a JSON string (Alertmanager's 400s)
        return f" {body.strip()[:200]}"
    for key in ("message", "error", "errorMessages", "detail"):
        value = body.get(key) if isinstance(body, Mapping) else None
        if isinstance(value, list) and value:
            value = value[0]
        if isinstance(value, Mapping):
            value = value.get("message")
        if isinstance(value, str) and value:
            return f" {value[:200]}"
    # A form's errors by field, as Django REST framework answers (Sentry's 400s):
    # `{"assignedTo": ["Unknown actor input"]}`, its first.
    for key, value in body.items() if isinstance(body, Mapping) else ():
        if isinstance(value, list) and value and isinstance(value[0], str):
            return f" {key}: {value[0][:200]}"
    return ""


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", response.headers.get("ratelimit-reset"))
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
