"""Silencing an alert group from the channel (SPEC §20): while a group fires, its card offers
a silence of 1, 4 or 24 hours on the group's labels; a resolved group offers nothing.

- Target (from the webhook, kept by the renderer as `Notice.item_ref`): one equality
  matcher per label the route grouped by (`groupLabels`), or, where it grouped by none, per
  label every alert of the group shares (`commonLabels`); and the group's Alertmanager
  (`externalURL`). A group without labels has no target, and offers nothing.
- Call: `POST {api_url}/api/v2/silences` (`api_url` is the integration's setting, else the
  payload's `externalURL`; the caller holds either to the egress rules) with a
  `postableSilence`: `{"matchers": [{"name", "value", "isRegex": false, "isEqual": true}],
  "startsAt", "endsAt", "createdBy", "comment"}`, times RFC 3339 in UTC, `createdBy` the
  clicking user's linked name. The answer is `{"silenceID": "…"}`; a refusal is a 400 whose
  body is a JSON string with Alertmanager's words (`Failed to create silence: start time
  must be before end time`, `invalid silence: invalid label matcher 0 …`).
- Auth: Alertmanager has none of its own; it usually sits behind a proxy (oauth2-proxy,
  nginx). Where the integration has an `api_token`, it is sent as `Authorization: Bearer …`
  (a 401 from the proxy is the link refused).

Grafana Alerting takes the same silences at its Alertmanager-compatible API
(shared.providers.grafana.acting: another path, a service account token).

Checked against prometheus/alertmanager `api/v2/openapi.yaml` (operation `postSilences`:
200 `{silenceID}`, 400 `BadRequest` a string; `postableSilence` = `silence` (`matchers`,
`startsAt`, `endsAt`, `createdBy`, `comment`, all required) and an optional `id`; `matcher`:
`name`, `value`, `isRegex` required, `isEqual` default true; `matchers` at least one) and
`api/v2/api.go` `postSilencesHandler` and `silence/silence.go` `validateSilence` (the 400s'
messages).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.providers.acting import ActionRefused, Credentials, Link, LinkKind, Outcome, call
from shared.providers.notify import CardAction, Notice

# Each offer and the hours it silences for.
HOURS = {"silence:1h": 1, "silence:4h": 4, "silence:24h": 24}
OFFERS = tuple(
    CardAction(action_id, f"Silence {hours} h", "primary" if hours == 1 else "default")
    for action_id, hours in HOURS.items()
)


def _rfc3339(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Silences:
    """An Alertmanager API's silences: `path` is where they are posted below the API's
    address (`api_url`, else the group's `externalURL`)."""

    name: str
    settings: tuple[str, ...]
    path: str
    link: LinkKind = "mapping"

    def offers(self, notice: Notice) -> tuple[CardAction, ...]:
        card = notice.item_card
        return OFFERS if card is not None and card.state == "firing" else ()

    def target(self, notice: Notice) -> Mapping[str, Any] | None:
        ref = notice.item_ref or {}
        labels = ref.get("labels")
        if not isinstance(labels, Mapping) or not labels:
            return None
        matchers = [
            {"name": name, "value": value, "isRegex": False, "isEqual": True}
            for name, value in labels.items()
        ]
        url = ref.get("external_url")
        # An http(s) address as written, which the caller's egress check knows for one
        # (`HTTP://…` or a bare host would pass it by): else none, and api_url must say.
        if not (isinstance(url, str) and url.startswith(("http://", "https://"))):
            url = None
        return {"matchers": matchers, "external_url": url}

    async def perform(
        self,
        client: httpx.AsyncClient,
        credentials: Credentials,
        target: Mapping[str, Any],
        action_id: str,
        who: Link,
    ) -> Outcome:
        hours = HOURS.get(action_id)
        if hours is None:
            raise ActionRefused(f"{action_id!r} is not a silence")
        settings = credentials.settings
        base = settings.get("api_url") or target.get("external_url")
        if not base:
            raise ActionRefused("no address to reach the API at: set the integration's api_url")
        starts = datetime.now(UTC).replace(microsecond=0)
        ends = starts + timedelta(hours=hours)
        by = who.provider_user or who.name or who.chat_user_id
        body = {
            "matchers": list(target["matchers"]),
            "startsAt": _rfc3339(starts),
            "endsAt": _rfc3339(ends),
            "createdBy": by,
            "comment": f"from chat by {who.name or by}",
        }
        token = settings.get("api_token")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = str(base).rstrip("/") + self.path
        answer = await call(client, "POST", url, "silence", body, headers)
        found = answer.get("silenceID") if isinstance(answer, Mapping) else None
        return Outcome(
            f"silenced for {hours} h until {ends:%H:%M} UTC",
            reference=found if isinstance(found, str) else None,
        )


# No setting is needed to act: without `api_url`, the group's `externalURL` is where its
# Alertmanager is (held to the egress rules, as every address a click calls).
ACTING = Silences(name="alertmanager", settings=(), path="/api/v2/silences")
