"""Acting on a GitHub issue or pull request from the channel (SPEC §20), as the person who
clicked, with their own OAuth token (an account link by consent, shared.domain.account_links):
an open one (or a draft) offers to close it and to assign it to the clicking user; a closed
one (not merged) to reopen it; a merged pull request nothing.

- Target: the repository and the number, from the notice's item (`owner/repo#42`: issues
  and pull requests share numbers in a repository, and every pull request is an issue to
  the issues API, which acts on both).
- Calls, `Authorization: Bearer <the user's token>`, `Accept: application/vnd.github+json`,
  `X-GitHub-Api-Version: 2022-11-28`, on `HOOKHUB_GITHUB_API_BASE` (default
  https://api.github.com):
  - close / reopen: `PATCH /repos/{owner}/{repo}/issues/{number}` `{"state": "closed"}` /
    `{"state": "open"}` ("Update an issue",
    https://docs.github.com/rest/issues/issues#update-an-issue: "Issue owners and users with
    push access or Triage role can edit an issue");
  - assign to me: `POST /repos/{owner}/{repo}/issues/{number}/assignees`
    `{"assignees": ["<the linked login>"]}` ("Add assignees to an issue",
    https://docs.github.com/rest/issues/assignees#add-assignees-to-an-issue: 201; "Users
    already assigned to an issue are not replaced"; a user who cannot be assigned is
    silently left out, so the answer's `assignees` is read: without the login, refused).
- Answers: 401 is the user's token refused (they link again); 403 (no right to change it)
  and 404 (an issue the user cannot see), 410 (issues disabled) and 422 (invalid) are
  refusals; 5xx and 429 an outage (a 403 with `retry-after` is a secondary rate limit,
  retried).

"Add label" (SPEC §20) is not offered: a button names one label, and which one a card should
carry is the workspace's choice, which no setting holds yet (a repository's labels are
many; reading them for the card is an API read at offer time, as Jira's transitions are).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from shared.providers.acting import (
    ASSIGN_ME,
    CLOSE,
    REOPEN,
    ActionRefused,
    ActionUnavailable,
    Credentials,
    Link,
    LinkKind,
    LinkRejected,
    Outcome,
    call,
)
from shared.providers.notify import CardAction, Notice

API_BASE = "https://api.github.com"
OFFERED = {"open": (ASSIGN_ME, CLOSE), "draft": (ASSIGN_ME, CLOSE), "closed": (REOPEN,)}
STATES = {"close": "closed", "reopen": "open"}
HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
# `owner/repo#42`: GitHub's owner and repository names (letters, digits, `-`, `_`, `.`).
_ITEM = re.compile(r"([\w.-]+)/([\w.-]+)#(\d+)")


@dataclass
class GitHubItems:
    name: str = "github"
    link: LinkKind = "oauth"
    settings: tuple[str, ...] = ()

    def offers(self, notice: Notice) -> tuple[CardAction, ...]:
        card = notice.item_card
        if card is None or self.target(notice) is None:
            return ()
        return OFFERED.get(card.state or "", ())

    def target(self, notice: Notice) -> Mapping[str, Any] | None:
        found = _ITEM.fullmatch(notice.item or "")
        if found is None:
            return None
        owner, repo, number = found.groups()
        return {"repository": f"{owner}/{repo}", "number": int(number)}

    async def perform(
        self,
        client: httpx.AsyncClient,
        credentials: Credentials,
        target: Mapping[str, Any],
        action_id: str,
        who: Link,
    ) -> Outcome:
        if not credentials.user_token:
            raise LinkRejected("no GitHub token of the clicking user")
        owner, _, repo = str(target.get("repository") or "").partition("/")
        number = target.get("number")
        if not owner or not repo or not isinstance(number, int):
            raise ActionRefused("GitHub: the card names no issue to act on")
        base = (credentials.api_base or API_BASE).rstrip("/")
        issue = f"{base}/repos/{quote(owner, safe='')}/{quote(repo, safe='')}/issues/{number}"
        headers = {**HEADERS, "Authorization": f"Bearer {credentials.user_token}"}
        what = f"GitHub {action_id} {owner}/{repo}#{number}"
        if action_id in STATES:
            answer = await _call(
                client, "PATCH", issue, what, {"state": STATES[action_id]}, headers
            )
            state = answer.get("state") if isinstance(answer, Mapping) else None
            return Outcome(STATES[action_id], state=state if isinstance(state, str) else None)
        if action_id == "assign:me":
            login = who.external_id or who.provider_user
            if not login:
                raise LinkRejected("no GitHub login is linked to assign to")
            body = {"assignees": [login]}
            answer = await _call(client, "POST", f"{issue}/assignees", what, body, headers)
            if login.lower() not in _logins(answer):
                raise ActionRefused(
                    f"{what}: GitHub did not assign {login} (who may not be assigned there: "
                    "assignees need push access)"
                )
            return Outcome(f"assigned to {login}")
        raise ActionRefused(f"{action_id!r} is not an action on a GitHub issue")


async def _call(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    what: str,
    body: Mapping[str, Any],
    headers: Mapping[str, str],
) -> Any:
    """`call`, with GitHub's secondary rate limit (a 403 with `retry-after`) an outage."""
    try:
        return await call(client, method, url, what, body, headers)
    except ActionRefused as exc:
        if exc.upstream_status == 403 and "rate limit" in exc.message.lower():
            raise ActionUnavailable(exc.message, 403, 60.0) from exc
        raise


def _logins(answer: Any) -> set[str]:
    people = answer.get("assignees") if isinstance(answer, Mapping) else None
    return {
        str(p["login"]).lower()
        for p in people or ()
        if isinstance(p, Mapping) and isinstance(p.get("login"), str)
    }


ACTING = GitHubItems()
