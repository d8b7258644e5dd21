"""Acting on a Sentry issue from the channel (SPEC §20): while it is unresolved (created,
unresolved again, assigned, or an issue alert firing on it), its card offers to resolve it,
ignore it (Sentry's "archive", `ignored` in its API) and assign it to the clicking user;
once resolved or ignored, nothing. Metric alerts, errors and comments are no issue's card.

- Target: the issue's id (the notice's item) and its organization's slug where the
  payload's web address says it (`https://sentry.io/organizations/<org>/issues/…`, an
  event's, or `https://<org>.sentry.io/issues/…`).
- Calls, with the integration's `api_token` (an internal integration's token, or an auth
  token, with `event:write`), `Authorization: Bearer …`, on `HOOKHUB_SENTRY_API_BASE`
  (default https://sentry.io): `PUT /api/0/organizations/{org}/issues/{issue_id}/`
  ("Update an Issue"), or, where the payload did not say the organization,
  `PUT /api/0/issues/{issue_id}/` (the same endpoint, mounted without the organization) —
  `{"status": "resolved"}`, `{"status": "ignored"}`, `{"assignedTo": "<the linked Sentry
  user: email, user name or id>"}`.
- Answers: 200 with the issue's changed attributes; 401 `{"detail": "Invalid token"}` is
  the token refused; 403 (the token lacks the scope) and 404 (no such issue) are refusals;
  an assignee Sentry cannot resolve is a 400 `{"assignedTo": [...]}`, the link refused.

Checked against Sentry's API docs, "Update an Issue"
(https://docs.sentry.io/api/events/update-an-issue/: the path, `status` one of `resolved`,
`resolvedInNextRelease`, `unresolved`, `ignored`; `assignedTo` "the actor id (or username)
of the user or team"; scope `event:write`), getsentry/sentry `src/sentry/types/actor.py`
(`Actor.from_identifier`: an id, `user:<id>`, a user name or a primary email) and the issue
webhook page (https://docs.sentry.io/integrations/integration-platform/webhooks/issues/:
`data.issue.web_url`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from shared.providers.acting import (
    ActionRefused,
    Credentials,
    Link,
    LinkKind,
    LinkRejected,
    Outcome,
    call,
)
from shared.providers.notify import CardAction, Notice

API_BASE = "https://sentry.io"
OFFERS = (
    CardAction("resolve", "Resolve", "primary"),
    CardAction("ignore", "Ignore"),
    CardAction("assign:me", "Assign to me"),
)
# Each status action and the status it sets (its outcome's word too).
STATUSES = {"resolve": "resolved", "ignore": "ignored"}
# `/organizations/<org>/…` (a web or API address), `/api/0/projects/<org>/…` (an event's).
_ORG_PATH = re.compile(r"/(?:api/0/)?(?:organizations|projects)/([\w.-]+)/")
# `<org>.sentry.io` (an organization's own host); `us.`, `de.` are regions, not orgs.
_ORG_HOST = re.compile(r"([a-z0-9][a-z0-9-]*)\.sentry\.io")
REGIONS = frozenset({"us", "de", "www", "api"})
_SEGMENT = re.compile(r"[\w.-]+")


def organization(url: str | None) -> str | None:
    """The organization's slug a Sentry address names, if it names one."""
    if not url:
        return None
    parts = urlsplit(url)
    found = _ORG_PATH.search(parts.path)
    if found is not None:
        return found.group(1)
    host = _ORG_HOST.fullmatch(parts.hostname or "")
    return host.group(1) if host is not None and host.group(1) not in REGIONS else None


@dataclass
class SentryIssues:
    name: str = "sentry"
    link: LinkKind = "mapping"
    settings: tuple[str, ...] = ("api_token",)

    def offers(self, notice: Notice) -> tuple[CardAction, ...]:
        if notice.event == "event_alert.triggered":
            return OFFERS  # an issue alert fires on an issue that is open
        card = notice.item_card
        unresolved = card is not None and card.state == "unresolved"
        return OFFERS if notice.event.startswith("issue.") and unresolved else ()

    def target(self, notice: Notice) -> Mapping[str, Any] | None:
        issue = notice.event.startswith("issue.") or notice.event == "event_alert.triggered"
        # An issue's id or short id: one path segment, whatever the payload said.
        if not issue or notice.item is None or not _SEGMENT.fullmatch(notice.item):
            return None
        url = notice.card.url if notice.card is not None else None
        return {"issue_id": notice.item, "organization": organization(url)}

    async def perform(
        self,
        client: httpx.AsyncClient,
        credentials: Credentials,
        target: Mapping[str, Any],
        action_id: str,
        who: Link,
    ) -> Outcome:
        if action_id in STATUSES:
            body: dict[str, Any] = {"status": STATUSES[action_id]}
        elif action_id == "assign:me":
            if not who.provider_user:
                raise LinkRejected("no Sentry user is linked to assign to")
            body = {"assignedTo": who.provider_user}
        else:
            raise ActionRefused(f"{action_id!r} is not an action on a Sentry issue")
        org, issue = target.get("organization"), target["issue_id"]
        path = f"/api/0/organizations/{org}/issues/{issue}/" if org else f"/api/0/issues/{issue}/"
        base = (credentials.api_base or API_BASE).rstrip("/")
        headers = {"Authorization": f"Bearer {credentials.settings.get('api_token', '')}"}
        try:
            answer = await call(client, "PUT", base + path, action_id, body, headers)
        except ActionRefused as exc:
            if action_id == "assign:me" and exc.upstream_status == 400:
                raise LinkRejected(exc.message, exc.upstream_status) from exc
            raise
        status = answer.get("status") if isinstance(answer, Mapping) else None
        if action_id == "assign:me":
            return Outcome(f"assigned to {who.provider_user}")
        return Outcome(STATUSES[action_id], state=status if isinstance(status, str) else None)


ACTING = SentryIssues()
