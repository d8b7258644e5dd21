"""Acting on a GitLab issue or merge request from the channel (SPEC §20), as the person who
clicked, with their own OAuth token (an account link by consent): an open one (`opened`,
or a draft merge request) offers to close it and to assign it to the clicking user; a
closed one to reopen it; a merged (or locked) merge request nothing.

- Target: the project's id, the kind (`issues`, `merge_requests`) and the iid, as the
  renderer read them from the webhook (`Notice.item_ref`: the payload's `project.id`, else
  the item's `target_project_id` / `project_id`).
- Calls, `Authorization: Bearer <the user's token>`, on `HOOKHUB_GITLAB_API_BASE` (default
  https://gitlab.com/api/v4):
  - close / reopen: `PUT /projects/{id}/issues/{iid}` or `…/merge_requests/{iid}`
    `{"state_event": "close"}` / `{"state_event": "reopen"}`;
  - assign to me: the same `PUT` with `{"assignee_ids": [<the linked user's id>]}` (it sets
    the assignees: GitLab's API has no "add one"; hookhub's card says who it assigned).
  Checked against https://docs.gitlab.com/api/issues/ ("Edit an issue": `state_event`
  `close`|`reopen`, `assignee_ids`), https://docs.gitlab.com/api/merge_requests/ ("Update a
  merge request": the same two) and https://docs.gitlab.com/api/rest/authentication/
  (`Authorization: Bearer` with an OAuth 2.0 token).
- Answers: 200 with the item; 401 the user's token refused (they link again); 403 (may not
  update it), 404 (cannot see it) and 400/422 refusals; 5xx and 429 an outage. GitLab drops
  an assignee it cannot assign and answers 200: the answer's `assignees` is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from shared.providers.acting import (
    ASSIGN_ME,
    CLOSE,
    REOPEN,
    ActionRefused,
    Credentials,
    Link,
    LinkKind,
    LinkRejected,
    Outcome,
    call,
)
from shared.providers.notify import CardAction, Notice

API_BASE = "https://gitlab.com/api/v4"
OFFERED = {"opened": (ASSIGN_ME, CLOSE), "draft": (ASSIGN_ME, CLOSE), "closed": (REOPEN,)}
EVENTS = {"close": "closed", "reopen": "reopened"}
KINDS = {"issues": "issue", "merge_requests": "merge request"}


@dataclass
class GitLabItems:
    name: str = "gitlab"
    link: LinkKind = "oauth"
    settings: tuple[str, ...] = ()

    def offers(self, notice: Notice) -> tuple[CardAction, ...]:
        card = notice.item_card
        if card is None or self.target(notice) is None:
            return ()
        return OFFERED.get(card.state or "", ())

    def target(self, notice: Notice) -> Mapping[str, Any] | None:
        ref = notice.item_ref or {}
        project, kind, iid = ref.get("project_id"), ref.get("kind"), ref.get("iid")
        if type(project) is not int or kind not in KINDS or type(iid) is not int:
            return None
        return {"project_id": project, "kind": kind, "iid": iid}

    async def perform(
        self,
        client: httpx.AsyncClient,
        credentials: Credentials,
        target: Mapping[str, Any],
        action_id: str,
        who: Link,
    ) -> Outcome:
        if not credentials.user_token:
            raise LinkRejected("no GitLab token of the clicking user")
        project, kind, iid = target.get("project_id"), target.get("kind"), target.get("iid")
        if type(project) is not int or kind not in KINDS or type(iid) is not int:
            raise ActionRefused("GitLab: the card names no issue or merge request to act on")
        if action_id in EVENTS:
            body: dict[str, Any] = {"state_event": action_id}
        elif action_id == "assign:me":
            if not (who.external_id or "").isdigit():
                raise LinkRejected("no GitLab user id is linked to assign to")
            body = {"assignee_ids": [int(who.external_id or "")]}
        else:
            raise ActionRefused(f"{action_id!r} is not an action on a GitLab {KINDS[kind]}")
        base = (credentials.api_base or API_BASE).rstrip("/")
        url = f"{base}/projects/{project}/{kind}/{iid}"
        headers = {"Authorization": f"Bearer {credentials.user_token}"}
        what = f"GitLab {action_id} {KINDS[kind]} {project}/{iid}"
        answer = await call(client, "PUT", url, what, body, headers)
        if action_id == "assign:me":
            assigned = {p.get("id") for p in _list(answer, "assignees") if isinstance(p, Mapping)}
            if int(who.external_id or "0") not in assigned:
                raise ActionRefused(
                    f"{what}: GitLab did not assign {who.provider_user or who.external_id} "
                    "(not a member who may be assigned there)"
                )
            return Outcome(f"assigned to {who.provider_user or who.external_id}")
        state = answer.get("state") if isinstance(answer, Mapping) else None
        return Outcome(EVENTS[action_id], state=state if isinstance(state, str) else None)


def _list(answer: Any, key: str) -> list[Any]:
    found = answer.get(key) if isinstance(answer, Mapping) else None
    return found if isinstance(found, list) else []


ACTING = GitLabItems()
