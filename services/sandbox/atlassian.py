"""Jira's (Atlassian's) stand-in: OAuth (3LO), accessible resources, issue creation
(hookhub's actions), and a Jira Cloud site (services/sandbox/jira_world.py) that sends the
signed webhooks Jira Cloud sends.

Webhooks are registered as a Jira Cloud admin registers them: `POST /rest/webhooks/1.0/webhook`
`{name, url, events, filters?, excludeBody?, secret?}` on the site, authenticated as the site
admin (`admin_email` and `api_token`, HTTP Basic) or with an OAuth token the stand-in issued;
or with `add_hook`. A hook with a secret is signed as Jira Cloud signs admin webhooks and as
hookhub verifies them: `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>`. Each
delivery carries `X-Atlassian-Webhook-Identifier` (the same on a retry, which adds
`X-Atlassian-Webhook-Retry`), `X-Atlassian-Webhook-Flow: Primary` and
`User-Agent: Atlassian Webhook HTTP Client`, and the body names the hook in
`matchedWebhookIds`. Unlike Jira Cloud, the stand-in takes http:// URLs (the sandbox is on
loopback) and keeps a hook's JQL `filters` without applying them.

Events `send` takes, by Jira's `webhookEvent` names, with their parameters (all optional;
`user` is an account id or a display name, default the site's first user; `key` defaults to
the latest issue):

- `jira:issue_created`: summary, description (wiki markup), issue_type (Task, Bug, Story,
  Epic), priority (Highest … Lowest), assignee, labels, project (default the first).
- `jira:issue_updated`: key, and what changes: status (a transition on To Do → In Progress →
  Done, any to any as Jira's simplified workflow allows; Done sets the resolution), assignee
  (`""` unassigns), summary, priority. The `changelog` lists each change as Jira does.
- `comment_created`: key, body (wiki markup). Jira also raises a `jira:issue_updated`
  (`issue_event_type_name: issue_commented`) with it, sent to the hooks that take that.

Parameters come as a JSON API passes them (None is the default); an unknown event or
parameter, one of the wrong type, or a change the site cannot make (an unknown status, a
move to the status the issue has) raises `EventRefused`, and nothing changes.

The actions taken on an issue from the channel (SPEC §20, shared.providers.jira.acting),
through api.atlassian.com's `/ex/jira/{cloud_id}` as an OAuth 2.0 (3LO) app calls them,
each request recorded in `acted` (a RecordingApi: `unavailable`, `fail(n)`), as the user
the token was granted by (`people`: each consenting user's `/myself`): `GET …/rest/api/3/
issue/{key}/transitions` (the transitions the issue's workflow offers from its status, as
`track` gave them), `POST …/transitions` `{transition: {id}}` (204; 400 with Jira's
`errorMessages` for a transition not offered, or for a user who may not transition:
`transitioners`) and `PUT …/issue/{key}/assignee` `{accountId}` (204; 403 for a user who
may not assign). An issue not tracked is 404, as one the user may not see is.

`redeliver(delivery_id)` sends a delivery again as Jira's retry does. An issue created
through the API in a project of the site joins it, and its `jira:issue_created` is sent.
`state()` is the site as the sandbox page shows it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import secrets
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.sandbox import hooks
from services.sandbox.hooks import Delivery, EventRefused
from services.sandbox.jira_world import (
    ISSUE_TYPES,
    STATUSES,
    JiraIssue,
    JiraWorld,
    epoch_ms,
    jira_time,
)
from services.sandbox.oauth_server import FakeAuthorizationServer, answer
from services.sandbox.recording import RecordingApi
from shared.providers.jira.markup import adf_text

log = structlog.get_logger(__name__)

# What `add_hook` subscribes a hook to unless told otherwise: the issue and comment events.
ISSUE_EVENTS = (
    "jira:issue_created",
    "jira:issue_updated",
    "jira:issue_deleted",
    "comment_created",
    "comment_updated",
    "comment_deleted",
)


@dataclass
class JiraHook:
    """An admin webhook, as `POST /rest/webhooks/1.0/webhook` registers it."""

    id: int
    name: str
    url: str
    events: list[str]
    secret: str | None
    filters: dict[str, str]
    exclude_body: bool
    enabled: bool
    description: str | None
    last_updated: datetime
    last_updated_user: str  # account id
    deliveries: deque[Delivery] = field(default_factory=lambda: deque(maxlen=hooks.KEPT))

    def takes(self, event: str) -> bool:
        return self.enabled and event in self.events


class FakeAtlassian(FakeAuthorizationServer):
    """No PKCE, rotating refresh tokens, `403 unauthorized_client` for a dead refresh token."""

    provider = "jira"
    authorize_path = "/authorize"
    token_path = "/oauth/token"
    pkce = False
    cloud_id = "1324a887-45db-1bf4-1e99-ef0ff456d421"
    site_url = "https://acme.atlassian.net"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Issues: the site's projects and the issue types of each.
        self.projects: dict[str, set[str]] = {"PROJ": {"Task", "Bug", "Story"}}
        self.issues: list[dict[str, Any]] = []  # created: {key, id, fields}
        self.issue_requests = 0
        self.issue_delay = 0.0
        self._ids = itertools.count(10_000)
        self._keys: dict[str, itertools.count[int]] = {}
        # The site the webhooks are about, its admin, and the hooks the webhooks go to.
        self.world = JiraWorld(self.site_url)
        self.admin_email = "admin@acme.test"
        self.api_token = "ATATT3x" + secrets.token_urlsafe(32)
        self.hooks: dict[int, JiraHook] = {}
        self.deliveries: deque[Delivery] = deque(maxlen=10 * hooks.KEPT)
        self.sent: deque[dict[str, Any]] = deque(maxlen=hooks.KEPT)
        self._hook_ids = itertools.count(1)
        self._delivery_ids = itertools.count(1)
        self._pending = hooks.Pending()
        # Acting from the channel: who each grant's user is, the issues acted on (their
        # status and the workflow's transitions from each status), who may do what.
        self.people: dict[str, dict[str, Any]] = {
            "user-1": {"accountId": "5b10a2844c20165700ede21g", "displayName": "Mia Krystof"}
        }
        self.tracked: dict[str, dict[str, Any]] = {}
        self.transitioners: set[str] = set()
        self.assigners: set[str] = set()
        self.acted = RecordingApi()
        # The sandbox's site: its own issues are the ones acted on (`_of_world`).
        self.acts_on_world = False

    def track(self, key: str, status: str, workflow: dict[str, list[tuple[str, str, str]]]) -> None:
        """An issue the acting routes know, in `status`; `workflow` the transitions from
        each status: `(id, name, to status)`."""
        self.tracked[key] = {"key": key, "status": status, "workflow": workflow, "assignee": None}

    def _of_world(self, key: str) -> dict[str, Any] | None:
        """With `acts_on_world` (the sandbox), an issue of the site's own acted on: its
        status now, the simplified workflow's transitions (any status to any other), anyone
        may move it; a transition changes the site's issue and sends its webhook."""
        found = self.world.issues.get(key.upper()) if self.acts_on_world else None
        if found is None:
            return None
        statuses = [status.name for status in STATUSES]
        workflow = {
            status: [(str(11 + 10 * i), to, to) for i, to in enumerate(statuses) if to != status]
            for status in statuses
        }
        return {"key": found.key, "status": found.status.name, "workflow": workflow, "world": True}

    def account(self, request: Request) -> str | None:
        user = self.bearer(request)
        return None if user is None else str(self.people.get(user, {}).get("accountId") or user)

    def token_answer(
        self, grant_type: str, status: int, body: dict[str, Any], headers: Any
    ) -> Response:
        if status != 200 and grant_type == "refresh_token" and body.get("error") == "invalid_grant":
            return JSONResponse(
                {"error": "unauthorized_client", "error_description": "refresh_token is invalid"},
                403,
            )
        return answer(status, body, headers)

    def routes(self) -> list[Route]:
        async def resources(request: Request) -> Response:
            if self.bearer(request) is None:
                return JSONResponse({"code": 401, "message": "Unauthorized"}, 401)
            return JSONResponse(
                [
                    {
                        "id": self.cloud_id,
                        "url": self.site_url,
                        "name": "acme",
                        "scopes": ["read:jira-work", "write:jira-work"],
                        "avatarUrl": "https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/flag.png",
                    }
                ]
            )

        return [
            *super().routes(),
            Route("/oauth/token/accessible-resources", resources),
            Route("/ex/jira/{cloud_id}/rest/api/3/myself", self._myself),
            Route(
                "/ex/jira/{cloud_id}/rest/api/3/issue/{key}/transitions",
                self._transitions,
                methods=["GET", "POST"],
            ),
            Route(
                "/ex/jira/{cloud_id}/rest/api/3/issue/{key}/assignee",
                self._assignee,
                methods=["PUT"],
            ),
            Route("/ex/jira/{cloud_id}/rest/api/3/issue", self._create_issue, methods=["POST"]),
            Route("/rest/webhooks/1.0/webhook", self._webhooks, methods=["GET", "POST"]),
            Route(
                "/rest/webhooks/1.0/webhook/{hook_id:int}",
                self._webhook,
                methods=["GET", "DELETE"],
            ),
        ]

    async def _myself(self, request: Request) -> Response:
        user = self.bearer(request)
        if user is None:
            return _unauthenticated()
        if request.path_params["cloud_id"] != self.cloud_id:
            return JSONResponse({"errorMessages": ["Site not found"], "errors": {}}, 404)
        return JSONResponse(
            self.people.get(user, {"accountId": user, "displayName": user})
            | {"accountType": "atlassian", "active": True}
        )

    async def _acting(self, request: Request) -> tuple[Any, Response | None]:
        """An acting request recorded: the body, its issue and the caller's account id,
        or Jira's answer refusing it (an outage, the token, the site, the issue)."""
        recorded, down = await self.acted.take(request)
        if down is not None:
            return None, down
        account = self.account(request)
        if account is None:
            return None, _unauthenticated()
        issue = self.tracked.get(request.path_params["key"]) or self._of_world(
            request.path_params["key"]
        )
        if request.path_params["cloud_id"] != self.cloud_id or issue is None:
            message = "Issue does not exist or you do not have permission to see it."
            return None, JSONResponse({"errorMessages": [message], "errors": {}}, 404)
        return (recorded.body, issue, account), None

    async def _transitions(self, request: Request) -> Response:
        found, refusal = await self._acting(request)
        if refusal is not None:
            return refusal
        body, issue, account = found
        offered = {tid: (name, to) for tid, name, to in issue["workflow"].get(issue["status"], [])}
        if request.method == "GET":
            return JSONResponse(
                {
                    "expand": "transitions",
                    "transitions": [
                        {"id": tid, "name": name, "to": {"name": to}, "isAvailable": True}
                        for tid, (name, to) in offered.items()
                    ],
                }
            )
        wanted = body.get("transition") if isinstance(body, dict) else None
        tid = wanted.get("id") if isinstance(wanted, dict) else None
        if account not in self.transitioners and not issue.get("world"):
            return _jira_errors(["You do not have permission to transition this issue."], {})
        if tid not in offered:
            return _jira_errors([f"Transition id '{tid}' is not valid for this issue."], {})
        issue["status"] = offered[tid][1]
        if issue.get("world"):  # the site's own issue: moved there, and its webhook sent
            await self.send("jira:issue_updated", key=issue["key"], status=issue["status"])
        return Response(status_code=204)

    async def _assignee(self, request: Request) -> Response:
        found, refusal = await self._acting(request)
        if refusal is not None:
            return refusal
        body, issue, account = found
        if account not in self.assigners and not issue.get("world"):
            message = "You do not have permission to assign issues."
            return JSONResponse({"errorMessages": [message], "errors": {}}, 403)
        if not isinstance(body, dict) or "accountId" not in body:
            return _jira_errors([], {"accountId": "Specify a valid value for accountId"})
        issue["assignee"] = body["accountId"]
        if issue.get("world"):  # the site's own issue: its webhook says so, if a user it knows
            with contextlib.suppress(EventRefused):
                await self.send("jira:issue_updated", key=issue["key"], assignee=issue["assignee"])
        return Response(status_code=204)

    async def _create_issue(self, request: Request) -> Response:
        """Jira Cloud REST v3 `POST /rest/api/3/issue` through api.atlassian.com."""
        self.issue_requests += 1
        if self.issue_delay:
            await asyncio.sleep(self.issue_delay)
        if self.bearer(request) is None:
            return JSONResponse({"code": 401, "message": "Unauthorized"}, 401)
        if request.path_params["cloud_id"] != self.cloud_id:
            return JSONResponse(
                {"errorMessages": ["Site temporarily unavailable or not found"]}, 404
            )
        try:
            body = await request.json()
        except ValueError:
            return _jira_errors(["Unexpected character in the JSON body"], {})
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            return _jira_errors(["Issue must have fields"], {})
        errors: dict[str, str] = {}
        project = (fields.get("project") or {}).get("key")
        in_world = isinstance(project, str) and project in self.world.projects
        types = (
            set(ISSUE_TYPES)
            if in_world
            else self.projects.get(project)
            if isinstance(project, str)
            else None
        )
        if types is None:
            errors["project"] = "Specify a valid project ID or key"
        elif (fields.get("issuetype") or {}).get("name") not in types:
            errors["issuetype"] = "Specify a valid issue type"
        if not fields.get("summary"):
            errors["summary"] = "You must specify a summary of the issue."
        if "description" in fields:
            problem = adf_problem(fields["description"])
            if problem:
                errors["description"] = problem
        if errors:
            return _jira_errors([], errors)
        assert isinstance(project, str)
        if in_world:
            return self._world_issue(project, fields)
        number = next(self._keys.setdefault(project, itertools.count(1)))
        issue_id = str(next(self._ids))
        key = f"{project}-{number}"
        self.issues.append({"id": issue_id, "key": key, "fields": fields})
        return JSONResponse(
            {"id": issue_id, "key": key, "self": f"{self.base_url}/rest/api/3/issue/{issue_id}"},
            201,
        )

    def _world_issue(self, project: str, fields: dict[str, Any]) -> Response:
        """An issue created in a project of the site joins it (its ADF description kept as
        the plain text it reads as), and Jira's `jira:issue_created` goes to the hooks once
        the answer is out. Its reporter is the site's first user."""
        priority = (fields.get("priority") or {}).get("name")
        labels = fields.get("labels")
        try:
            issue = self.world.create_issue(
                project,
                str(fields["summary"]),
                description=(adf_text(fields["description"]) or None)
                if "description" in fields
                else None,
                issue_type=fields["issuetype"]["name"],
                priority=priority if isinstance(priority, str) else "Medium",
                labels=[str(label) for label in labels] if isinstance(labels, list) else (),
            )
        except EventRefused as refused:
            return _jira_errors([str(refused)], {})
        self.issues.append({"id": issue.id, "key": issue.key, "fields": fields})
        webhook = ("jira:issue_created", self.world.issue_created_payload(issue, issue.reporter))
        return JSONResponse(
            {
                "id": issue.id,
                "key": issue.key,
                "self": f"{self.base_url}/rest/api/3/issue/{issue.id}",
            },
            201,
            background=self._pending.later(lambda: self._dispatch("jira:issue_created", [webhook])),
        )

    # -- the site and its webhooks -------------------------------------------------------------

    def seed_demo(self) -> None:
        """The sandbox's site: project HUB led by Ada Lovelace, with Grace Hopper, and three
        issues (HUB-1 To Do, HUB-2 In Progress, HUB-3 To Do)."""
        ada = self.world.add_user("Ada Lovelace", account_id="5b10ac8d82e05b22cc7d4ef5")
        grace = self.world.add_user("Grace Hopper", account_id="5b10a2844c20165700ede21f")
        self.world.add_project("HUB", "Hookhub Demo", id="10000", lead=ada.account_id)
        self.world.create_issue(
            "HUB",
            "Post new orders to the #sales channel",
            description="When an order comes in, the channel should hear about it.",
            issue_type="Story",
            user=ada.account_id,
            labels=["notifications"],
        )
        retried = self.world.create_issue(
            "HUB",
            "Webhook deliveries are retried too quickly",
            description="Three retries within a second after a *502*.",
            issue_type="Bug",
            priority="High",
            user=grace.account_id,
            assignee=grace.account_id,
        )
        self.world.update_issue(retried, status="In Progress")
        self.world.create_issue(
            "HUB",
            "Write the sandbox guide",
            issue_type="Task",
            priority="Low",
            user=ada.account_id,
        )

    def add_hook(
        self,
        url: str,
        secret: str | None,
        events: Iterable[str] = ISSUE_EVENTS,
        *,
        name: str = "hookhub",
        enabled: bool = True,
    ) -> JiraHook:
        """An admin webhook, validated as the REST registration validates one."""
        problems = self._hook_problems({"name": name, "url": url, "events": list(events)})
        if problems:
            raise EventRefused("; ".join(problems.values()))
        hook = self._new_hook({"name": name, "url": url, "events": list(events), "secret": secret})
        hook.enabled = enabled
        return hook

    async def send(self, event: str, **params: Any) -> list[Delivery]:
        """Make `event` happen on the site and deliver the webhooks Jira Cloud sends about it
        to every enabled hook that takes them. No hook taking them is not an error: nothing
        is delivered (logged, and kept in `sent`). Raises `EventRefused` when the event
        cannot happen."""
        return await self._dispatch(event, self.world.event(event, **params))

    async def _dispatch(
        self, event: str, webhooks: list[tuple[str, dict[str, Any]]]
    ) -> list[Delivery]:
        deliveries = []
        for webhook_event, payload in webhooks:
            for hook in list(self.hooks.values()):
                if hook.takes(webhook_event):
                    deliveries.append(await self._deliver(hook, webhook_event, payload))
        self.sent.append(
            {
                "event": event,
                "at": jira_time(self.world.clock()),
                "key": webhooks[0][1]["issue"]["key"],
                "webhooks": [webhook_event for webhook_event, _ in webhooks],
                "deliveries": [d.summary() for d in deliveries],
            }
        )
        if not deliveries:
            log.info(
                "sandbox_webhook_not_delivered",
                provider="jira",
                sandbox_event=event,
                reason="no enabled hook takes it",
            )
        return deliveries

    async def redeliver(self, delivery_id: int) -> Delivery:
        """The delivery again, as Jira retries one: the same identifier and body, with
        `X-Atlassian-Webhook-Retry` counting the retries."""
        original = next((d for d in self.deliveries if d.id == delivery_id), None)
        if original is None:
            raise EventRefused(f"no delivery {delivery_id} (or one too old to be kept)")
        retries = sum(1 for d in self.deliveries if d.guid == original.guid)
        again = replace(
            original,
            id=next(self._delivery_ids),
            delivered_at=self.world.clock(),
            request_headers={
                **original.request_headers,
                "X-Atlassian-Webhook-Retry": str(retries),
            },
            redelivery=True,
            status_code=None,
            status="",
            response_body="",
        )
        await hooks.post(again)
        self._record(self.hooks.get(again.hook_id), again)
        return again

    async def settled(self) -> None:
        """Wait until every delivery an API call started (the webhook about an issue it
        created) has been answered."""
        await self._pending.settled()

    def state(self) -> dict[str, Any]:
        """The site, its hooks and what was sent, JSON-able, for the sandbox page."""
        users = self.world.users
        return {
            "base_url": self.base_url,
            "site_url": self.site_url,
            "cloud_id": self.cloud_id,
            "admin_email": self.admin_email,
            "api_token": self.api_token,
            "events": sorted(self.world.events),
            "statuses": [s.name for s in STATUSES],
            "users": [
                {"account_id": u.account_id, "display_name": u.display_name} for u in users.values()
            ],
            "projects": [
                {
                    "key": p.key,
                    "id": p.id,
                    "name": p.name,
                    "lead": users[p.lead].display_name,
                    "issues": [
                        self._issue_state(i)
                        for i in self.world.issues.values()
                        if i.project == p.key
                    ],
                }
                for p in self.world.projects.values()
            ],
            "hooks": [
                {
                    "id": h.id,
                    "name": h.name,
                    "url": h.url,
                    "events": h.events,
                    "enabled": h.enabled,
                    "signed": bool(h.secret),
                    "deliveries": [d.summary() for d in reversed(h.deliveries)][:10],
                }
                for h in self.hooks.values()
            ],
            "sent": list(self.sent)[-20:],
        }

    def _issue_state(self, issue: JiraIssue) -> dict[str, Any]:
        users = self.world.users
        return {
            "key": issue.key,
            "summary": issue.summary,
            "status": issue.status.name,
            "type": issue.issue_type,
            "priority": issue.priority,
            "assignee": users[issue.assignee].display_name if issue.assignee else None,
            "reporter": users[issue.reporter].display_name,
            "labels": issue.labels,
            "comments": len(issue.comments),
            "html_url": f"{self.site_url}/browse/{issue.key}",
        }

    async def _deliver(self, hook: JiraHook, event: str, payload: dict[str, Any]) -> Delivery:
        body = b""
        if not hook.exclude_body:
            body = json.dumps(
                {**payload, "matchedWebhookIds": [hook.id]}, ensure_ascii=False
            ).encode()
        headers = {
            "Content-Type": "application/json; charset=UTF-8",
            "User-Agent": "Atlassian Webhook HTTP Client",
            "X-Atlassian-Webhook-Identifier": str(uuid.uuid4()),
            "X-Atlassian-Webhook-Flow": "Primary",
        }
        if hook.secret:
            digest = hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Hub-Signature"] = f"sha256={digest}"
        delivery = Delivery(
            id=next(self._delivery_ids),
            guid=headers["X-Atlassian-Webhook-Identifier"],
            hook_id=hook.id,
            event=event,
            action=payload.get("issue_event_type_name"),
            url=hook.url,
            delivered_at=self.world.clock(),
            request_headers=headers,
            request_body=body,
            payload=payload,
        )
        await hooks.post(delivery)
        self._record(hook, delivery)
        return delivery

    def _record(self, hook: JiraHook | None, delivery: Delivery) -> None:
        hooks.record("jira", self.deliveries, hook.deliveries if hook else None, delivery)

    # -- the admin webhooks API ---------------------------------------------------------------

    def _admin(self, request: Request) -> str | None:
        """The account of an admin request: HTTP Basic with the admin's email and API token,
        or an OAuth token the stand-in issued; else None."""
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                email, _, token = base64.b64decode(credentials).decode().partition(":")
            except ValueError:
                return None
            if email == self.admin_email and secrets.compare_digest(
                token.encode(), self.api_token.encode()
            ):
                return self.world.user(None).account_id if self.world.users else email
            return None
        return self.bearer(request)

    @staticmethod
    def _hook_problems(body: Any) -> dict[str, str]:
        if not isinstance(body, dict):
            return {"body": "The request body must be a JSON object."}
        problems: dict[str, str] = {}
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            problems["name"] = "The webhook needs a name."
        url = body.get("url")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            problems["url"] = "The webhook needs a valid http(s) URL."
        events = body.get("events")
        if (
            not isinstance(events, list)
            or not events
            or not all(isinstance(e, str) and e.strip() for e in events)
        ):
            problems["events"] = "The webhook needs at least one event."
        filters = body.get("filters", {})
        if not isinstance(filters, dict) or not all(isinstance(v, str) for v in filters.values()):
            problems["filters"] = "Filters map a section to a JQL query."
        for flag in ("excludeBody", "enabled"):
            if flag in body and not isinstance(body[flag], bool):
                problems[flag] = f"{flag} is true or false."
        if body.get("secret") is not None and not isinstance(body["secret"], str):
            problems["secret"] = "The secret is a string."
        return problems

    def _new_hook(self, body: dict[str, Any], account: str | None = None) -> JiraHook:
        hook = JiraHook(
            id=next(self._hook_ids),
            name=body["name"],
            url=body["url"],
            events=list(dict.fromkeys(body["events"])),
            secret=body.get("secret") or None,
            filters=dict(body.get("filters") or {}),
            exclude_body=bool(body.get("excludeBody", False)),
            enabled=bool(body.get("enabled", True)),
            description=body.get("description"),
            last_updated=self.world.clock(),
            last_updated_user=account
            or (self.world.user(None).account_id if self.world.users else ""),
        )
        self.hooks[hook.id] = hook
        return hook

    def _hook_json(self, hook: JiraHook) -> dict[str, Any]:
        """A webhook as the REST API answers it; the secret never shown."""
        updater = self.world.users.get(hook.last_updated_user)
        found: dict[str, Any] = {
            "name": hook.name,
            "url": hook.url,
            "excludeBody": hook.exclude_body,
            "filters": hook.filters,
            "events": hook.events,
            "enabled": hook.enabled,
            "self": f"{self.site_url}/rest/webhooks/1.0/webhook/{hook.id}",
            "lastUpdatedUser": hook.last_updated_user,
            "lastUpdatedDisplayName": updater.display_name if updater else None,
            "lastUpdated": epoch_ms(hook.last_updated),
            "isSigned": bool(hook.secret),
        }
        if hook.description is not None:
            found["description"] = hook.description
        return found

    async def _webhooks(self, request: Request) -> Response:
        """`GET`/`POST /rest/webhooks/1.0/webhook`."""
        account = self._admin(request)
        if account is None:
            return _unauthenticated()
        if request.method == "GET":
            return JSONResponse([self._hook_json(h) for h in self.hooks.values()])
        try:
            body = await request.json()
        except ValueError:
            return _jira_errors(["Unexpected character in the JSON body"], {})
        problems = self._hook_problems(body)
        if problems:
            return _jira_errors([], problems)
        return JSONResponse(self._hook_json(self._new_hook(body, account)), 201)

    async def _webhook(self, request: Request) -> Response:
        """`GET`/`DELETE /rest/webhooks/1.0/webhook/{id}`."""
        if self._admin(request) is None:
            return _unauthenticated()
        hook = self.hooks.get(request.path_params["hook_id"])
        if hook is None:
            return JSONResponse(
                {"errorMessages": ["The webhook does not exist."], "errors": {}}, 404
            )
        if request.method == "GET":
            return JSONResponse(self._hook_json(hook))
        del self.hooks[hook.id]
        return Response(status_code=204)


def _unauthenticated() -> Response:
    return JSONResponse(
        {
            "errorMessages": [
                "You are not authenticated. Authentication required to perform this operation."
            ],
            "errors": {},
        },
        401,
    )


def _jira_errors(messages: list[str], errors: dict[str, str]) -> Response:
    return JSONResponse({"errorMessages": messages, "errors": errors}, 400)


_ADF_MARKS = {"link", "code", "strong", "em"}


def adf_problem(node: Any) -> str | None:
    """Why `node` is not an Atlassian Document of the kinds hookhub writes (doc, paragraph,
    blockquote, text, hardBreak; marks link, code, strong, em), or None."""
    if not isinstance(node, dict) or node.get("type") != "doc":
        return "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
    if node.get("version") != 1 or not isinstance(node.get("content"), list):
        return "Atlassian Document must have version 1 and a content list"
    return _adf_children(node["content"], {"paragraph", "blockquote"})


def _adf_children(content: Any, allowed: set[str]) -> str | None:
    if not isinstance(content, list):
        return "content must be a list"
    for child in content:
        if not isinstance(child, dict) or child.get("type") not in allowed:
            kind = child.get("type") if isinstance(child, dict) else type(child).__name__
            return f"node {kind} is not allowed here"
        kind = child["type"]
        if kind == "blockquote":
            problem = _adf_children(child.get("content"), {"paragraph"})
        elif kind == "paragraph":
            problem = _adf_children(child.get("content", []), {"text", "hardBreak"})
        elif kind == "hardBreak":
            problem = None if set(child) <= {"type", "attrs"} else "hardBreak takes no content"
        else:
            problem = _adf_text(child)
        if problem:
            return problem
    return None


def _adf_text(node: dict[str, Any]) -> str | None:
    if not isinstance(node.get("text"), str) or not node["text"]:
        return "text nodes must have non-empty text"
    if set(node) - {"type", "text", "marks"}:
        return "text nodes take type, text and marks only"
    for mark in node.get("marks", []):
        if not isinstance(mark, dict) or mark.get("type") not in _ADF_MARKS:
            return f"mark {mark!r} is not allowed"
        if mark["type"] == "link" and not isinstance((mark.get("attrs") or {}).get("href"), str):
            return "link marks need attrs.href"
    return None
