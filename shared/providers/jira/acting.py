"""Acting on a Jira Cloud issue from the channel (SPEC §20), as the person who clicked, with
their own OAuth 2.0 (3LO) token (an account link by consent): "assign to me", and each
transition the issue's workflow offers from its status, read from Jira's API (never a fixed
list: workflows are each site's own).

- Target: the issue's key and its site (`https://<site>.atlassian.net`, from the webhook's
  `issue.self`, as the card's address says it). The call goes to the site through
  api.atlassian.com (`/ex/jira/{cloud_id}/…`, the 3LO base): the cloud id is the one the
  user's token reaches at that site (the sites their link learnt at consent,
  `Link.account["sites"]`); a site their account does not reach is refused.
- Offers: "Assign to me" from the webhook alone. The transitions are not in Jira's webhook,
  so `read_offers` reads them: `GET /rest/api/3/issue/{key}/transitions` ("Get
  transitions": those the token's user may perform from the issue's status), each offered
  as `transition:<id>` labelled with its name.
- Calls, `Authorization: Bearer <the user's token>`, `Accept: application/json`, on
  `HOOKHUB_JIRA_API_BASE` (default https://api.atlassian.com):
  - assign to me: `PUT /ex/jira/{cloud_id}/rest/api/3/issue/{key}/assignee`
    `{"accountId": "<the linked account id>"}` ("Assign issue": 204; 403 the user may not
    assign; 404 no such issue or not visible);
  - a transition: `GET …/issue/{key}/transitions` (is it still offered, and where does it
    go), then `POST …/issue/{key}/transitions` `{"transition": {"id": "<id>"}}`
    ("Transition issue": 204; 400 a transition not valid now or not permitted; 404).
  Checked against Atlassian's Jira Cloud REST v3 reference,
  https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issues/
  (#api-rest-api-3-issue-issueidorkey-assignee-put, …-transitions-get, …-transitions-post)
  and https://developer.atlassian.com/cloud/jira/platform/oauth-2-3lo-apps/ (calls through
  `https://api.atlassian.com/ex/jira/{cloudid}/{api}` with `Authorization: Bearer`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from shared.providers.acting import (
    ASSIGN_ME,
    ActionRefused,
    Credentials,
    Link,
    LinkKind,
    LinkRejected,
    Outcome,
    call,
)
from shared.providers.notify import CardAction, Notice

API_BASE = "https://api.atlassian.com"
TRANSITION = "transition:"
# An issue key (`PROJ-123`) and a transition's id (digits).
_KEY = re.compile(r"[A-Z][A-Z0-9_]*-\d+")
_TRANSITION_ID = re.compile(r"\d{1,10}")


def site_of(url: str | None) -> str | None:
    """`https://<host>` of an address on a Jira site (an issue's page or REST address)."""
    parts = urlsplit(url or "")
    if parts.scheme != "https" or not parts.hostname:
        return None
    return f"https://{parts.hostname}"


@dataclass
class JiraIssues:
    name: str = "jira"
    link: LinkKind = "oauth"
    settings: tuple[str, ...] = ()

    def offers(self, notice: Notice) -> tuple[CardAction, ...]:
        """What the webhook alone says can be done: assign to me, on an issue's card
        (the transitions are read: `read_offers`)."""
        return (ASSIGN_ME,) if self.target(notice) is not None else ()

    def target(self, notice: Notice) -> Mapping[str, Any] | None:
        card = notice.item_card
        site = site_of(card.url if card is not None else None)
        if site is None or not _KEY.fullmatch(notice.item or ""):
            return None
        return {"key": notice.item, "site": site}

    async def read_offers(
        self, client: httpx.AsyncClient, credentials: Credentials, target: Mapping[str, Any]
    ) -> tuple[CardAction, ...]:
        """The transitions the issue's workflow offers now to the token's user, as
        actions: `GET …/issue/{key}/transitions`."""
        cloud_id = _cloud_id(credentials, target)
        return tuple(
            CardAction(f"{TRANSITION}{t['id']}", t["name"])
            for t in await _transitions(client, credentials, cloud_id, target)
        )

    async def perform(
        self,
        client: httpx.AsyncClient,
        credentials: Credentials,
        target: Mapping[str, Any],
        action_id: str,
        who: Link,
    ) -> Outcome:
        if not credentials.user_token:
            raise LinkRejected("no Atlassian token of the clicking user")
        cloud_id = _cloud_id(credentials, target, who)
        issue = _issue_url(credentials, cloud_id, target)
        headers = _headers(credentials)
        key = target["key"]
        if action_id == ASSIGN_ME.id:
            if not who.external_id:
                raise LinkRejected("no Atlassian account id is linked to assign to")
            body = {"accountId": who.external_id}
            await call(client, "PUT", f"{issue}/assignee", f"Jira assign {key}", body, headers)
            return Outcome(f"assigned to {who.name or who.external_id}")
        transition_id = action_id.removeprefix(TRANSITION)
        if not action_id.startswith(TRANSITION) or not _TRANSITION_ID.fullmatch(transition_id):
            raise ActionRefused(f"{action_id!r} is not an action on a Jira issue")
        offered = {t["id"]: t for t in await _transitions(client, credentials, cloud_id, target)}
        chosen = offered.get(transition_id)
        if chosen is None:
            raise ActionRefused(
                f"Jira: {key} does not offer that transition now (its status changed, or "
                "you may not make it)"
            )
        what = f"Jira {chosen['name']} {key}"
        moved = {"transition": {"id": transition_id}}
        await call(client, "POST", f"{issue}/transitions", what, moved, headers)
        to = chosen.get("to")
        return Outcome(f"moved to {to}" if to else f"moved ({chosen['name']})", state=to)


def _cloud_id(credentials: Credentials, target: Mapping[str, Any], who: Link | None = None) -> str:
    """The cloud id of the target's site among those the token reaches: the user's link's
    sites, else the integration's (`settings["cloud_id"]`/`sites`, a read with its token)."""
    site = str(target.get("site") or "")
    sites = (who.account.get("sites") if who is not None else None) or credentials.settings.get(
        "sites"
    )
    for known in sites or ():
        if isinstance(known, Mapping) and site_of(str(known.get("url") or "")) == site:
            return str(known["id"])
    if who is None and credentials.settings.get("cloud_id"):
        return str(credentials.settings["cloud_id"])
    raise ActionRefused(
        f"Jira: the linked Atlassian account does not reach {site or 'the site of the issue'}; "
        "link the account that does"
    )


def _issue_url(credentials: Credentials, cloud_id: str, target: Mapping[str, Any]) -> str:
    key = str(target.get("key") or "")
    if not _KEY.fullmatch(key):
        raise ActionRefused("Jira: the card names no issue to act on")
    base = (credentials.api_base or API_BASE).rstrip("/")
    return f"{base}/ex/jira/{quote(cloud_id, safe='')}/rest/api/3/issue/{key}"


def _headers(credentials: Credentials) -> dict[str, str]:
    return {"Authorization": f"Bearer {credentials.user_token}", "Accept": "application/json"}


async def _transitions(
    client: httpx.AsyncClient, credentials: Credentials, cloud_id: str, target: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """`[{id, name, to}]` of `GET …/transitions` (`to`: the status it moves to)."""
    url = _issue_url(credentials, cloud_id, target) + "/transitions"
    answer = await call(
        client, "GET", url, f"Jira transitions {target['key']}", None, _headers(credentials)
    )
    found = answer.get("transitions") if isinstance(answer, Mapping) else None
    return [
        {
            "id": t["id"],
            "name": str(t.get("name") or t["id"]),
            "to": (t.get("to") or {}).get("name") if isinstance(t.get("to"), Mapping) else None,
        }
        for t in found or ()
        if isinstance(t, Mapping)
        and isinstance(t.get("id"), str)
        and _TRANSITION_ID.fullmatch(t["id"])
    ]


ACTING = JiraIssues()
