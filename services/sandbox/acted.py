"""The APIs acted on from the channel (SPEC §20), as the sandbox serves them: PagerDuty's
incidents, Alertmanager's silences, Opsgenie's alerts and Sentry's issues, each stand-in
seeded with the items its catalog samples name (so the card the sandbox's sample webhook
makes can be acted on) and with the sandbox's people, the same people every network's
users and the chat's are.

- **Where.** Below `/sandbox/<provider>` on the sandbox's port; the services reach them
  through `HOOKHUB_<PROVIDER>_API_BASE` (PagerDuty, Opsgenie, Sentry: `env`), and the
  sandbox's own integration of each is made with the settings to act (`settings`:
  PagerDuty's `api_token`, Opsgenie's `api_key`, Sentry's `api_token`, Alertmanager's
  `api_url`, which names the stand-in).
- **Who.** Every seeded user of the chat and of the networks with buttons is a person with
  an email (`alice@example.com`), and a user of each stand-in by it. `links` are the account
  links the sandbox makes for them when it makes its integration of a provider that acts
  for a named user (`PUT /api/account-links/{provider}/{chat user}`): the chat's users by
  their ids (`u_alice`), the networks' as hookhub names a network user who clicks
  (`slack:U0ALICE`, `discord:…`, `teams:<aadObjectId>`, `telegram:100001`).
  GitHub, GitLab and Jira act with the user's own token: no link is made for them; the
  first click is answered with the user's link to the consent page.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp

from services.sandbox.alertmanager import FakeAlertmanager
from services.sandbox.opsgenie import FakeOpsgenie
from services.sandbox.pagerduty import FakePagerDuty
from services.sandbox.recording import RecordingApi
from services.sandbox.sentry import FakeSentry
from shared.providers.sentry.acting import organization

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "providers"
# The providers acted on with the integration's key, as a named user: their stand-ins are
# served here, and the sandbox links its people to them.
MAPPED = ("pagerduty", "alertmanager", "opsgenie", "sentry")


@dataclass(frozen=True)
class Person:
    """A seeded user: `chat_user_id` as hookhub knows them (a chat user's id, or the
    network's `<network>:<id>`), their display name and email."""

    chat_user_id: str
    name: str
    email: str


# The chat product's users (the page's "Chat" tab signs in as one of them).
CHAT_USERS = {
    "u_alice": "Alice Archer",
    "u_bob": "Bob Baker",
    "u_carol": "Carol Chen",
}


def email_of(name: str) -> str:
    """A made-up email of a seeded name: its first word's (`alice@example.com`)."""
    return f"{name.split()[0].lower()}@example.com"


def people(networks: Mapping[str, Mapping[str, str]]) -> list[Person]:
    """The chat's users and the networks' (`{network: {user id: name}}`), as persons."""
    found = [Person(user, name, email_of(name)) for user, name in CHAT_USERS.items()]
    for network, users in networks.items():
        found += [Person(f"{network}:{user}", name, email_of(name)) for user, name in users.items()]
    return found


def env(base: str) -> dict[str, str]:
    """The services' `HOOKHUB_<PROVIDER>_API_BASE` for the providers whose API is fixed,
    the stand-ins' below `base`."""
    return {
        f"HOOKHUB_{name.upper()}_API_BASE": f"{base}/{name}"
        for name in ("pagerduty", "opsgenie", "sentry")
    }


class ActedOn:
    """The stand-ins acted on, seeded; `base` is where the sandbox serves them
    (`http://127.0.0.1:<port>/sandbox`); `keys` the credentials file's values."""

    def __init__(self, base: str, keys: Mapping[str, str], persons: list[Person]) -> None:
        self.base = base
        self.persons = persons
        emails = sorted({p.email: p.name for p in persons}.items())
        self.pagerduty = FakePagerDuty(tokens={keys["pagerduty_api_token"]})
        for index, (email, name) in enumerate(emails):
            self.pagerduty.add_user(f"PSANDBOX{index:02d}", name, email)
        for incident, title in _pagerduty_incidents():
            self.pagerduty.add_incident(incident, title)
        self.alertmanager = FakeAlertmanager()
        self.opsgenie = FakeOpsgenie(keys={keys["opsgenie_api_key"]: True})
        for alert, message in _opsgenie_alerts():
            self.opsgenie.add_alert(alert, message)
        self.sentry = FakeSentry(tokens={keys["sentry_api_token"]: {"event:read", "event:write"}})
        projects: set[str] = set()
        for issue, org, project, title in _sentry_issues():
            self.sentry.add_issue(issue, org, project, title=title)
            projects.add(project)
        for index, (email, name) in enumerate(emails):
            self.sentry.add_user(str(9000 + index), email, projects, name)
        self.keys = dict(keys)
        self._made = 0  # the items `fresh` made
        self.standins: dict[str, RecordingApi] = {
            "pagerduty": self.pagerduty,
            "alertmanager": self.alertmanager,
            "opsgenie": self.opsgenie,
            "sentry": self.sentry,
        }
        for name, standin in self.standins.items():
            standin.base_url = f"{base}/{name}"

    def settings(self, provider: str) -> dict[str, str]:
        """What the sandbox's own integration of `provider` acts with (none: {})."""
        return {
            "pagerduty": {"api_token": self.keys["pagerduty_api_token"]},
            "opsgenie": {"api_key": self.keys["opsgenie_api_key"]},
            "sentry": {"api_token": self.keys["sentry_api_token"]},
            "alertmanager": {"api_url": f"{self.base}/alertmanager"},
        }.get(provider, {})

    def fresh(self, provider: str) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
        """How a sample of `provider` becomes a new item's (None: it cannot): the body
        rewritten for an item made now in the stand-in (a new incident, alert or alert
        group), so that a card of it can be acted on, and sent again a new delivery."""
        self._made += 1
        n = self._made
        if provider == "pagerduty":
            return lambda body: self._new_incident(body, n)
        if provider == "opsgenie":
            return lambda body: self._new_alert(body, n)
        if provider == "alertmanager":
            return lambda body: _new_group(body, n)
        return None

    def _new_incident(self, body: dict[str, Any], n: int) -> dict[str, Any]:
        event = body.get("event") or {}
        event["id"] = f"01SANDBOX{n:017d}"
        data = event.get("data") or {}
        incident = data if data.get("type") == "incident" else data.get("incident")
        if isinstance(incident, dict):
            incident_id = f"PSBX{n:04d}"
            title = f"{incident.get('title') or 'An incident'} ({n})"
            made = self.pagerduty.add_incident(
                incident_id, title, data.get("status") or "triggered"
            )
            incident.update(id=incident_id, title=title, number=made.number)
            incident["html_url"] = f"https://sandbox.pagerduty.com/incidents/{incident_id}"
        return body

    def _new_alert(self, body: dict[str, Any], n: int) -> dict[str, Any]:
        alert = body.get("alert")
        if isinstance(alert, dict):
            alert_id = str(uuid.uuid4())
            message = f"{(alert.get('message') or 'An alert').strip()} ({n})"
            made = self.opsgenie.add_alert(alert_id, message)
            alert.update(alertId=alert_id, tinyId=made.tiny_id, message=message)
        return body

    def links(self, provider: str) -> Iterator[tuple[str, dict[str, str]]]:
        """The account links made for the sandbox's people: (chat user, `PUT`'s body)."""
        if provider not in MAPPED:
            return
        for person in self.persons:
            yield person.chat_user_id, {"provider_user": person.email, "name": person.name}

    def mounts(self) -> Iterator[tuple[str, ASGIApp]]:
        for name, standin in self.standins.items():
            yield name, standin.app()  # type: ignore[attr-defined]

    def state(self) -> dict[str, Any]:
        """What each stand-in holds now, and the calls hookhub made to it (the acting
        user: PagerDuty's `From`, a silence's `createdBy`, Opsgenie's `user`)."""
        pagerduty = self.pagerduty
        by_id = {u.id: u.email for u in pagerduty.users.values()}
        return {
            "pagerduty": {
                "api_base": f"{self.base}/pagerduty",
                "api_token": self.keys["pagerduty_api_token"],
                "users": [
                    {"id": u.id, "name": u.name, "email": u.email} for u in pagerduty.users.values()
                ],
                "incidents": [
                    {
                        "id": i.id,
                        "title": i.title,
                        "status": i.status,
                        "acknowledged_by": [by_id[a] for a in i.acknowledgers],
                        "resolved_by": by_id.get(i.resolved_by or ""),
                    }
                    for i in pagerduty.incidents.values()
                ],
                "calls": _calls(pagerduty, lambda r: r.headers.get("from")),
            },
            "alertmanager": {
                "api_url": f"{self.base}/alertmanager",
                "silences": [
                    {
                        "id": s["id"],
                        "matchers": s["matchers"],
                        "created_by": s["createdBy"],
                        "ends_at": s["endsAt"],
                    }
                    for s in self.alertmanager.silences.values()
                ],
                "calls": _calls(self.alertmanager, lambda r: _field(r.body, "createdBy")),
            },
            "opsgenie": {
                "api_base": f"{self.base}/opsgenie",
                "api_key": self.keys["opsgenie_api_key"],
                "alerts": [
                    {"id": a.id, "message": a.message, "status": a.status}
                    for a in self.opsgenie.alerts.values()
                ],
                "calls": _calls(self.opsgenie, lambda r: _field(r.body, "user")),
            },
            "sentry": {
                "api_base": f"{self.base}/sentry",
                "api_token": self.keys["sentry_api_token"],
                "issues": [
                    {"id": i["id"], "title": i.get("title"), "status": i["status"]}
                    for i in self.sentry.issues.values()
                ],
                "calls": _calls(self.sentry, lambda r: None),
            },
        }


def _new_group(body: dict[str, Any], n: int) -> dict[str, Any]:
    """An Alertmanager group of its own: a `sandbox` label on it and on its alerts."""
    label = {"sandbox": str(n)}
    for name in ("groupLabels", "commonLabels"):
        if body.get(name) or name == "commonLabels":
            body[name] = {**(body.get(name) or {}), **label}
    for alert in body.get("alerts") or []:
        alert["labels"] = {**(alert.get("labels") or {}), **label}
        if alert.get("fingerprint"):
            alert["fingerprint"] = f"{alert['fingerprint'][:12]}{n:04x}"
    body["groupKey"] = f"{body.get('groupKey') or '{}'}:sandbox={n}"
    return body


def _calls(standin: RecordingApi, acting_as: Any) -> list[dict[str, Any]]:
    return [
        {"method": r.method, "path": r.path, "as": acting_as(r)}
        for r in standin.requests
        if not r.path.endswith("/healthz")
    ]


def _field(body: Any, name: str) -> Any:
    return body.get(name) if isinstance(body, dict) else None


def _samples(provider: str) -> Iterator[dict[str, Any]]:
    for path in sorted((SAMPLES / provider / "samples").glob("*.json")):
        yield json.loads(path.read_text())


def _pagerduty_incidents() -> Iterator[tuple[str, str]]:
    """The incidents PagerDuty's samples name, with their titles (the first that has one)."""
    found: dict[str, str] = {}
    for sample in _samples("pagerduty"):
        data = sample.get("event", {}).get("data") or {}
        incident = data if data.get("type") == "incident" else data.get("incident") or {}
        if incident.get("id") and not found.get(incident["id"]):
            found[incident["id"]] = incident.get("title") or ""
    return iter((k, v or "An incident") for k, v in found.items())


def _opsgenie_alerts() -> Iterator[tuple[str, str]]:
    found: dict[str, str] = {}
    for sample in _samples("opsgenie"):
        alert = sample.get("alert") or {}
        if alert.get("alertId") and not found.get(alert["alertId"]):
            found[alert["alertId"]] = (alert.get("message") or "").strip()
    return iter((k, v or "An alert") for k, v in found.items())


def _sentry_issues() -> Iterator[tuple[str, str, str, str]]:
    """(id, organization, project, title) of the issues Sentry's samples name."""
    found: dict[str, tuple[str, str, str, str]] = {}
    for sample in _samples("sentry"):
        issue = (sample.get("data") or {}).get("issue") or {}
        if not issue.get("id") or issue["id"] in found:
            continue
        org = organization(issue.get("web_url") or issue.get("url")) or "sandbox"
        project = (issue.get("project") or {}).get("slug") or "sandbox"
        found[issue["id"]] = (str(issue["id"]), org, project, issue.get("title") or "")
    return iter(found.values())
