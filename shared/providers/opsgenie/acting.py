"""Acting on an Opsgenie alert from the channel (SPEC §20): acknowledge or close it,
through Opsgenie's Alert API v2 with the integration's API key (`api_key`: an API
integration's key with write access), naming the Opsgenie user the workspace mapped the
chat user to (their user name, usually their email) as the action's `user`.

**Offers**, by the alert's state on its card (`item_card.state`, the notifier's state of
the alert action: Create and UnAcknowledge leave it open, Acknowledge acknowledged, Close
closed): open → acknowledge (primary), close; acknowledged → close; closed → nothing. The
other actions (a note, tags, an escalation) say no state and offer nothing: the root keeps
the buttons its last state gave it. **Target**: the alert's id, the notice's `item` (the
webhook's `alert.alertId`).

**Calls** (https://docs.opsgenie.com/docs/alert-api, "Acknowledge Alert" and "Close Alert";
opsgenie/opsgenie-oas `paths/alert.yaml`, `acknowledgeAlert` and `closeAlert`, whose body is
`AlertActionPayload` in `definitions/alert.yaml`; as Opsgenie's Go client sends them,
opsgenie/opsgenie-go-sdk-v2 `alert/acknowledge_request.go`, `client/client.go`):
`POST {api}/v2/alerts/{id}/acknowledge?identifierType=id` and
`POST {api}/v2/alerts/{id}/close?identifierType=id`, with
`Authorization: GenieKey <api_key>`, `Content-Type: application/json` and
`{"user": <user name>, "source": "hookhub", "note": "from chat"}` (`user`: "display name of
the request owner"). The API base is `https://api.opsgenie.com`, or
`https://api.eu.opsgenie.com` for an account on Opsgenie's EU instance
(`HOOKHUB_OPSGENIE_API_BASE`).

**Answers** (https://docs.opsgenie.com/docs/response): an action is processed
asynchronously: a valid request is answered 202 `{"result": "Request will be processed",
"took", "requestId"}`, which "does not guarantee that the request will be handled
successfully" (an alert closed meanwhile, or none with that id, is said only by the
request's status, `GET /v2/alerts/requests/{requestId}`). So the outcome names the request
(`reference`, for the audit) and no state: the alert's own webhook tells what became of
it. 401 (the key is invalid, or its integration disabled) → `LinkRejected`; 403 (a key that
may not do this: 40301 "To perform this action, use an API key from an API integration"),
402, 404, 422 → `ActionRefused`; 429 and 5xx → `ActionUnavailable`
(shared.providers.acting.answer_error, which reads Opsgenie's `{"message", "took",
"requestId"}`).
"""

from __future__ import annotations

from urllib.parse import quote

from shared.providers.acting import Acting, Outcome, call
from shared.providers.ids import str_field
from shared.providers.keyed_acting import Asked, KeyedActing
from shared.providers.notify import CardAction

ACKNOWLEDGE = CardAction("acknowledge", "Acknowledge", "primary")
CLOSE = CardAction("close", "Close")
# What each action did, for the thread.
DONE = {ACKNOWLEDGE.id: "acknowledged", CLOSE.id: "closed"}
SOURCE = "hookhub"
NOTE = "from chat"


class OpsgenieActing(KeyedActing):
    name = "opsgenie"
    title = "Opsgenie"
    settings: tuple[str, ...] = ("api_key",)
    target_key = "alert_id"
    api_base = "https://api.opsgenie.com"
    offered = {"open": (ACKNOWLEDGE, CLOSE), "acknowledged": (CLOSE,)}

    async def act(self, asked: Asked) -> Outcome:
        answer = await call(
            asked.client,
            "POST",
            f"{asked.base}/v2/alerts/{quote(asked.item, safe='')}/{asked.action_id}",
            asked.what,
            {"user": asked.user, "source": SOURCE, "note": NOTE},
            {"Authorization": f"GenieKey {asked.key}", "Content-Type": "application/json"},
            params={"identifierType": "id"},
        )
        return Outcome(DONE[asked.action_id], reference=str_field(answer, "requestId"))


ACTING: Acting = OpsgenieActing()
