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
    silently left out, so the answer's `assignees` is read: without the login, refused);
  - add a label: `GET /repos/{owner}/{repo}/labels?per_page=100` (is the label still
    there, and its name now), then `POST /repos/{owner}/{repo}/issues/{number}/labels`
    `{"labels": ["<name>"]}` ("Add labels to an issue",
    https://docs.github.com/rest/issues/labels#add-labels-to-an-issue: 200 with the
    issue's labels, which must then include it; 403 without triage or push access).
- Labels offered (`read_offers`, beside the notifications consumer as Jira's transitions
  are: services.sync.clicks.reads): "List labels for a repository" (`GET /repos/{owner}/
  {repo}/labels`, https://docs.github.com/rest/issues/labels#list-labels-for-a-repository,
  its first page of 100) as the reader's token sees them, those the item does not carry
  (its labels as the webhook showed them), at most `LABELS_OFFERED` in GitHub's order:
  `label:<the label's id>` labelled `Label: <name>`. The id, not the name, names it (a
  Telegram button's data is 64 bytes; a renamed label is still the one offered). A
  repository's labels are kept `LABELS_KEPT` seconds per token, so a busy repository's
  cards do not spend the linked user's rate limit (5,000 requests an hour) on the same
  read; a click reads them afresh.
- Answers: 401 is the user's token refused (they link again); 403 (no right to change it)
  and 404 (an issue the user cannot see), 410 (issues disabled) and 422 (invalid) are
  refusals; 5xx and 429 an outage (a 403 with `retry-after` is a secondary rate limit,
  retried).

"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from shared.kernel.cache import Kept
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
LABEL = "label:"
# The labels a card offers at most: with "Assign to me" and "Close", the six actions a
# Teams card shows (shared.providers.teams.messages.MAX_CARD_ACTIONS).
LABELS_OFFERED = 4
LABELS_KEPT = 60.0  # seconds a repository's labels read for cards are kept, per token
_KEPT_REPOSITORIES = 512
_LABEL_ID = re.compile(r"\d{1,20}")
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
        """The repository and number; with the labels the item carries (none are offered
        again)."""
        found = _ITEM.fullmatch(notice.item or "")
        if found is None:
            return None
        owner, repo, number = found.groups()
        return {"repository": f"{owner}/{repo}", "number": int(number), "labels": [*notice.labels]}

    async def read_offers(
        self, client: httpx.AsyncClient, credentials: Credentials, target: Mapping[str, Any]
    ) -> tuple[CardAction, ...]:
        """`Label: <name>` for the repository's labels the item does not carry (module
        docstring), whatever its state (a closed issue is labelled `duplicate` or
        `wontfix`)."""
        if not credentials.user_token:
            raise LinkRejected("no GitHub token to read the repository's labels with")
        carried = {str(name).lower() for name in target.get("labels") or ()}
        labels = await _kept_labels(client, credentials, target)
        return tuple(
            CardAction(f"{LABEL}{label_id}", f"Label: {name}")
            for label_id, name in labels
            if name.lower() not in carried
        )[:LABELS_OFFERED]

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
        number = target.get("number")
        if not isinstance(number, int):
            raise ActionRefused("GitHub: the card names no issue to act on")
        repository, name = _repository(credentials, target)
        issue = f"{repository}/issues/{number}"
        headers = {**HEADERS, "Authorization": f"Bearer {credentials.user_token}"}
        what = f"GitHub {action_id} {name}#{number}"
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
        label_id = action_id.removeprefix(LABEL)
        if action_id.startswith(LABEL) and _LABEL_ID.fullmatch(label_id):
            label = dict(await _labels(client, credentials, target)).get(int(label_id))
            if label is None:
                raise ActionRefused(f"{what}: the repository has that label no more")
            body = {"labels": [label]}
            answer = await _call(client, "POST", f"{issue}/labels", what, body, headers)
            if label.lower() not in _names(answer):
                raise ActionRefused(f"{what}: GitHub did not add the label {label}")
            return Outcome(f"labelled {label}")
        raise ActionRefused(f"{action_id!r} is not an action on a GitHub issue")


async def _call(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    what: str,
    body: Mapping[str, Any] | None,
    headers: Mapping[str, str],
    *,
    params: Mapping[str, str] | None = None,
) -> Any:
    """`call`, with GitHub's secondary rate limit (a 403 with `retry-after`) an outage."""
    try:
        return await call(client, method, url, what, body, headers, params=params)
    except ActionRefused as exc:
        if exc.upstream_status == 403 and "rate limit" in exc.message.lower():
            raise ActionUnavailable(exc.message, 403, 60.0) from exc
        raise


def _repository(credentials: Credentials, target: Mapping[str, Any]) -> tuple[str, str]:
    """The API address of the target's repository, and its `owner/repo`."""
    owner, _, repo = str(target.get("repository") or "").partition("/")
    if not owner or not repo:
        raise ActionRefused("GitHub: the card names no issue to act on")
    base = (credentials.api_base or API_BASE).rstrip("/")
    return f"{base}/repos/{quote(owner, safe='')}/{quote(repo, safe='')}", f"{owner}/{repo}"


async def _labels(
    client: httpx.AsyncClient, credentials: Credentials, target: Mapping[str, Any]
) -> list[tuple[int, str]]:
    """`(id, name)` of the repository's labels, its first page of 100, in GitHub's order."""
    url, name = _repository(credentials, target)
    headers = {**HEADERS, "Authorization": f"Bearer {credentials.user_token}"}
    answer = await _call(
        client,
        "GET",
        f"{url}/labels",
        f"GitHub labels of {name}",
        None,
        headers,
        params={"per_page": "100"},
    )
    return [
        (label["id"], label["name"])
        for label in (answer if isinstance(answer, list) else ())
        if isinstance(label, Mapping)
        and isinstance(label.get("id"), int)
        and isinstance(label.get("name"), str)
    ]


async def _kept_labels(
    client: httpx.AsyncClient, credentials: Credentials, target: Mapping[str, Any]
) -> list[tuple[int, str]]:
    """`_labels`, kept `LABELS_KEPT` seconds per repository and token (the newest
    `_KEPT_REPOSITORIES` reads), for cards."""
    url, _ = _repository(credentials, target)
    key = (url.lower(), hashlib.sha256(str(credentials.user_token).encode()).hexdigest())
    kept = _LABELS.fresh(key)
    if kept is not None:
        return kept[0]
    labels = await _labels(client, credentials, target)
    _LABELS.put(key, labels, LABELS_KEPT)
    return labels


_LABELS: Kept[tuple[str, str], list[tuple[int, str]]] = Kept(_KEPT_REPOSITORIES)


def _names(answer: Any) -> set[str]:
    """The label names of "Add labels to an issue"'s answer (a list of labels)."""
    return {
        str(label["name"]).lower()
        for label in (answer if isinstance(answer, list) else ())
        if isinstance(label, Mapping) and isinstance(label.get("name"), str)
    }


def _logins(answer: Any) -> set[str]:
    people = answer.get("assignees") if isinstance(answer, Mapping) else None
    return {
        str(p["login"]).lower()
        for p in people or ()
        if isinstance(p, Mapping) and isinstance(p.get("login"), str)
    }


ACTING = GitHubItems()
