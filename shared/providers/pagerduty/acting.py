"""Acting on a PagerDuty incident from the channel (SPEC §20): acknowledge, resolve, or
reassign it to the clicking user, through PagerDuty's REST API v2 with the integration's
REST API key (`api_token`), as the PagerDuty user the workspace mapped the chat user to
(their email, sent as `From`).

**Offers**, by the incident's status on its card (`item_card.state`, the notifier's
`event.data.status`): triggered → acknowledge (primary), resolve, reassign to me;
acknowledged → resolve, reassign to me; resolved → nothing. A note, a responder request or
a status update (their payload carries a reference to the incident, not its status) offers
nothing: the root keeps the buttons its last status gave it. **Target**: the incident's id,
the notice's `item` (the notifier reads it from `event.data.id`, or from
`event.data.incident.id` for the events carrying a reference).

**Calls** (https://developer.pagerduty.com/api-reference/8a0e1aa2ec666-update-an-incident;
PagerDuty/api-schema `reference/REST/openapiv3.json` at 91a06fb3: `PUT /incidents/{id}`
`updateIncident`, `GET /incidents/{id}` `getIncident`, `GET /users` `listUsers`):

- every call: `Authorization: Token token=<api_token>` (PagerDuty/developer-docs
  `docs/REST-API/02-Authentication.md`), `Accept: application/vnd.pagerduty+json;version=2`
  (the schema's required versioning header; `docs/REST-API/03-Versioning.md`) and
  `Content-Type: application/json` (required by the schema on each of these operations);
- acknowledge, resolve: `PUT {api}/incidents/{id}` with `From: <email>` ("the email address
  of a valid user associated with the account making the request", required) and
  `{"incident": {"type": "incident_reference", "status": "acknowledged"|"resolved"}}`;
- reassign to me: the user by email, `GET {api}/users?query=<email>` (`query` filters
  users; in its first page, the exact email match is taken, case aside, as PagerDuty's own
  client's `RestApiV2Client.find("users", email, attribute="email")` does,
  PagerDuty/python-pagerduty `pagerduty/rest_api_v2_client.py`), then
  `PUT {api}/incidents/{id}` with `From` and `{"incident": {"type": "incident_reference",
  "assignments": [{"assignee": {"id": <user>, "type": "user_reference"}}]}}`.

Acknowledge and reassign first read the incident (`GET {api}/incidents/{id}`) and are
refused when it is resolved: since 2025-09-18 "setting the status to "triggered" or
"acknowledged" on a resolved incident will now reopen it" (api-schema `docs/CHANGELOG.md`,
and the `status` field's description), so a stale button, or a click waiting a day for
its user to link, must not reopen what was resolved meanwhile (between the read and the
update it still could). Resolve has nothing to reopen and is sent as it is. The reads
carry no `From` (the schema names it for neither).

**Answers** (developer-docs `docs/REST-API/14-Errors.md`: `{"error": {"message", "code",
"errors"}}`): 2xx → the incident in the answer, its `status` the outcome's state; error
code 1008 "Requester User Not Found" (an unknown `From`: a 400, as reported in
dropbox/pygerduty#64) → `LinkRejected`, as is a 401 (the key) and an email no PagerDuty
user has (reassign); 429 → `ActionUnavailable` after `ratelimit-reset` seconds
(`docs/REST-API/04-Rate-Limits.md`); 5xx → `ActionUnavailable`; any other 4xx (1001
"Incident Already Resolved", 403, 404) → `ActionRefused`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from shared.providers.acting import Acting, ActionRefused, LinkRejected, Outcome, call
from shared.providers.ids import field_at, str_field
from shared.providers.keyed_acting import Asked, KeyedActing
from shared.providers.notify import CardAction

ACCEPT = "application/vnd.pagerduty+json;version=2"
ACKNOWLEDGE = CardAction("acknowledge", "Acknowledge", "primary")
RESOLVE = CardAction("resolve", "Resolve")
REASSIGN = CardAction("reassign:me", "Reassign to me")
# The status each status action asks for.
STATUSES = {ACKNOWLEDGE.id: "acknowledged", RESOLVE.id: "resolved"}
# Error 1008's message (developer-docs `docs/REST-API/14-Errors.md`): `From` names nobody.
REQUESTER_USER_NOT_FOUND = "Requester User Not Found"


class PagerDutyActing(KeyedActing):
    name = "pagerduty"
    title = "PagerDuty"
    settings: tuple[str, ...] = ("api_token",)
    target_key = "incident_id"
    api_base = "https://api.pagerduty.com"
    offered = {
        "triggered": (ACKNOWLEDGE, RESOLVE, REASSIGN),
        "acknowledged": (RESOLVE, REASSIGN),
    }

    async def act(self, asked: Asked) -> Outcome:
        url = f"{asked.base}/incidents/{quote(asked.item, safe='')}"
        headers = {
            "Authorization": f"Token token={asked.key}",
            "Accept": ACCEPT,
            "Content-Type": "application/json",
        }
        if asked.action_id != RESOLVE.id:  # these would reopen a resolved incident
            found = await call(asked.client, "GET", url, asked.what, None, headers)
            if str_field(found, "incident", "status") == "resolved":
                raise ActionRefused(f"{asked.what}: the incident is already resolved")
        change: dict[str, Any]
        if asked.action_id == REASSIGN.id:
            user = await _user(asked, headers)
            change = {"assignments": [{"assignee": {"id": user["id"], "type": "user_reference"}}]}
            done = f"reassigned to {str_field(user, 'name') or asked.user}"
        else:
            change = {"status": STATUSES[asked.action_id]}
            done = STATUSES[asked.action_id]
        body = {"incident": {"type": "incident_reference", **change}}
        try:
            answer = await call(
                asked.client, "PUT", url, asked.what, body, {**headers, "From": asked.user}
            )
        except ActionRefused as exc:
            if exc.upstream_status == 400 and REQUESTER_USER_NOT_FOUND in exc.message:
                raise LinkRejected(exc.message, exc.upstream_status) from exc
            raise
        state = str_field(answer, "incident", "status") or change.get("status")
        return Outcome(done, state=state)


async def _user(asked: Asked, headers: Mapping[str, str]) -> Mapping[str, Any]:
    """The PagerDuty user whose email is the linked one (case aside); LinkRejected when
    none is."""
    email = asked.user
    url = f"{asked.base}/users"
    found = await call(asked.client, "GET", url, asked.what, None, headers, params={"query": email})
    users = field_at(found, "users")
    for user in users if isinstance(users, list) else ():
        if (str_field(user, "email") or "").lower() == email.lower() and str_field(user, "id"):
            return dict(user)
    raise LinkRejected(f"{asked.what}: PagerDuty has no user with the email {email}")


ACTING: Acting = PagerDutyActing()
