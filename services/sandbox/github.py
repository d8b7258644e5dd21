"""GitHub's stand-in: OAuth, `/user`, issue creation (hookhub's actions), and a small world
(services/sandbox/github_world.py) that sends the signed webhooks GitHub sends.

Webhooks are registered as GitHub's REST API registers them (`POST {api}/repos/{owner}/{repo}
/hooks`, with an OAuth token the stand-in issued or its `personal_access_token`), or with
`add_hook`. `await send(event, **params)` changes the world and POSTs each webhook GitHub
would send about it to every active hook of the repository that takes its event (or `*`),
with GitHub's headers (`X-GitHub-Event`, `X-GitHub-Delivery`, `X-GitHub-Hook-ID`,
`X-Hub-Signature-256` and the legacy SHA-1 `X-Hub-Signature` when the hook has a secret,
`User-Agent: GitHub-Hookshot/…`), and records each delivery as GitHub's "Recent Deliveries"
do. A hook that answers badly or not at all is recorded, never raised.

Events `send` takes, named as hookhub's notifications name them (`<X-GitHub-Event>.<action>`,
`pull_request.merged` for a merge), with their parameters (all optional; `repository`
defaults to the world's first, `user` to its first user, `number` to the latest open item):

- `pull_request.opened`: title, body, user, head (default `<user>/<title slug>`), base
  (default the default branch), draft, labels. The next number of the repository.
- `pull_request.closed` (without merging), `pull_request.merged`: number, user. A merge also
  sends the `push` of the merge commit to the base branch.
- `pull_request_review.submitted`: number, user (default someone other than the author),
  state (`approved`, `changes_requested`, `commented`), body.
- `issue_comment.created`: number (a pull request or an issue; default the latest open pull
  request), body, user.
- `push`: branch (default the default branch), commits (a message or a list of them), user.
  A push to an open pull request's branch also sends its `pull_request.synchronize`.
- `issues.opened`: title, body, user, labels. `issues.closed`: number, user, reason
  (`completed`, `not_planned`).

Parameters come as a JSON API passes them: None is the default, `number` may be a string of
digits; an unknown event or parameter, one of the wrong type, or an event the world cannot
have (merging a closed pull request, approving one's own) raises `EventRefused`, and nothing
changes.

A hook created through the API gets GitHub's `ping` right away; `ping(hook_id)` sends
another, `redeliver(delivery_id)` sends a delivery again with its GUID (as GitHub's
"Redeliver" does). An issue created through the API in a repository of the world joins it,
and its `issues.opened` is sent. `state()` is the world as the sandbox page shows it.

The actions taken on an issue or pull request from the channel (SPEC §20,
shared.providers.github.acting), each request recorded in `acted` (a RecordingApi: its
`unavailable` switch and `fail(n)` answer 503): `PATCH /repos/{owner}/{repo}/issues/
{number}` `{state: open|closed}` ("Update an issue") and `POST …/issues/{number}/assignees`
`{assignees: [login]}` ("Add assignees to an issue"), `GET /repos/{owner}/{repo}/labels`
("List labels for a repository": a repository of the world has its own, any other one
GitHub's default nine, each with an id of its own) and `POST …/issues/{number}/labels`
`{labels: [name]}` ("Add labels to an issue": 200 with the item's labels; a name the
repository has not is 422 here, as hookhub only adds labels it read), on the items `track`
adds, as the user the OAuth token was granted by (`profiles`: the consenting user's
`/user`). A user without push access to the repository (`writers`) is refused the update
and the labels with 403, and silently not assigned (201, as GitHub documents it); an item
not tracked is 404. With `acts_on_world` (the sandbox's), the world's own issues and pull
requests are acted on too, by anyone: each change changes the world's item, and GitHub's
webhook of it (`issues.closed`, `pull_request.reopened`, `issues.assigned`,
`issues.labeled`, …) goes to the hooks, so the card follows.
"""

from __future__ import annotations

import asyncio
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
from urllib.parse import urlencode, urlsplit

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.sandbox import hooks
from services.sandbox.github_world import DEFAULT_LABELS, GitHubWorld, Repository, iso
from services.sandbox.hooks import Delivery, EventRefused
from services.sandbox.oauth_server import FakeAuthorizationServer
from services.sandbox.recording import RecordingApi

log = structlog.get_logger(__name__)

HOOKS_DOCS = "https://docs.github.com/rest/repos/webhooks#create-a-repository-webhook"
ISSUES_DOCS = "https://docs.github.com/rest/issues/issues#update-an-issue"
OCTOCAT = {
    "login": "octocat",
    "id": 583231,
    "name": "The Octocat",
    "html_url": "https://github.com/octocat",
}
CONTENT_TYPES = {"json": "application/json", "form": "application/x-www-form-urlencoded"}


@dataclass
class GitHubHook:
    """A repository webhook, as `POST /repos/{owner}/{repo}/hooks` creates it."""

    id: int
    repository: str  # full name
    url: str
    content_type: str  # json or form
    secret: str | None
    events: list[str]
    active: bool
    insecure_ssl: str
    created_at: datetime
    updated_at: datetime
    deliveries: deque[Delivery] = field(default_factory=lambda: deque(maxlen=hooks.KEPT))

    def takes(self, event: str) -> bool:
        return self.active and ("*" in self.events or event in self.events)


class _Invalid(Exception):
    """A hook GitHub would not create: the `errors` item of its 422."""

    def __init__(self, error: dict[str, str]) -> None:
        super().__init__(error.get("message") or f"{error.get('field')} is {error.get('code')}")
        self.error = error


class FakeGitHub(FakeAuthorizationServer):
    """Form-encoded answers unless JSON is asked for; errors with status 200."""

    provider = "github"
    authorize_path = "/login/oauth/authorize"
    token_path = "/login/oauth/access_token"
    api_path = "/api"  # revocation: DELETE {api}/applications/{client_id}/token
    token_prefix = "ghu_"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.always_form = False  # answer form-encoded even when JSON is asked for
        self.accept_headers: list[str] = []
        self.deleted: list[str] = []
        # Issues: the repositories the account can create issues in, with their labels.
        self.repos: dict[str, set[str]] = {"octocat/hello-world": {"bug", "enhancement"}}
        self.issues: list[dict[str, Any]] = []  # created, with the request's headers
        self.issue_requests = 0
        self.issue_delay = 0.0  # seconds each create takes (widens races)
        # Switches: answer every create with a secondary rate limit (403 retry-after: 60);
        # with 401 Bad credentials whatever the token (the app's access was revoked); with
        # 503 this many times.
        self.secondary_rate_limit = False
        self.reject_tokens = False
        self.issue_outage = 0
        self._numbers = itertools.count(1)
        # The world the webhooks are about, and the hooks they go to.
        self.world = GitHubWorld()
        self.personal_access_token = "ghp_" + secrets.token_hex(18)
        self.hooks: dict[int, GitHubHook] = {}
        self.deliveries: deque[Delivery] = deque(maxlen=10 * hooks.KEPT)
        self.sent: deque[dict[str, Any]] = deque(maxlen=hooks.KEPT)  # the events sent
        self.hookshot = secrets.token_hex(4)[:7]  # GitHub-Hookshot/<version>
        self._hook_ids = itertools.count(500_000_001)
        self._delivery_ids = itertools.count(90_000_000_001)
        self._pending = hooks.Pending()
        # Who each grant's user is (`/user`), by the user who consented (`self.user` then).
        self.profiles: dict[str, dict[str, Any]] = {"user-1": OCTOCAT}
        # Acting from the channel: the items acted on, who may push, what was asked.
        self.tracked: dict[tuple[str, int], dict[str, Any]] = {}
        self.writers: dict[str, set[str]] = {}
        self.acted = RecordingApi()
        # The sandbox's: the world's own items are the ones acted on (`_of_world`).
        self.acts_on_world = False
        # The labels of repositories outside the world: name → id, GitHub's default nine.
        self.other_labels: dict[str, dict[str, int]] = {}
        self._label_ids = itertools.count(4_000_000_001)

    def track(self, repository: str, number: int, state: str = "open", **fields: Any) -> None:
        """An issue or pull request the acting routes know (`open` or `closed`)."""
        self.tracked[(repository, number)] = {
            "number": number,
            "state": state,
            "assignees": [],
            "labels": [],
            **fields,
        }

    def login_of_token(self, token: str) -> str | None:
        """The login of a valid OAuth token's user, else None."""
        if not self.valid(token):
            return None
        return str(self.profiles.get(self.access_tokens[token].grant.user, OCTOCAT)["login"])

    def login(self, request: Request) -> str | None:
        """The login of the request's token's user, else None."""
        user = self.bearer(request)
        return None if user is None else str(self.profiles.get(user, OCTOCAT)["login"])

    async def _token(self, request: Request) -> Response:
        self.accept_headers.append(request.headers.get("accept", ""))
        answer = await super()._token(request)
        if self.always_form or "json" not in request.headers.get("accept", ""):
            data = json.loads(bytes(answer.body))
            return Response(urlencode(data), 200, media_type="application/x-www-form-urlencoded")
        return answer

    def token_answer(
        self, grant_type: str, status: int, body: dict[str, Any], headers: Any
    ) -> Response:
        if status != 200:
            error = body.get("error", "")
            if error == "invalid_grant":
                error = (
                    "bad_refresh_token"
                    if grant_type == "refresh_token"
                    else "bad_verification_code"
                )
            return JSONResponse(
                {"error": error, "error_description": body.get("error_description", "")}
            )
        return JSONResponse(body)

    def bearer(self, request: Request) -> str | None:
        """Besides the OAuth tokens it issued, the stand-in takes its personal access token."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() in ("bearer", "token") and secrets.compare_digest(
            token.encode(), self.personal_access_token.encode()
        ):
            return "octocat"
        return super().bearer(request)

    def routes(self) -> list[Route]:
        async def user(request: Request) -> Response:
            user = self.bearer(request)
            if user is None:
                return JSONResponse({"message": "Bad credentials"}, 401)
            return JSONResponse(self.profiles.get(user, OCTOCAT))

        async def delete_token(request: Request) -> Response:
            if (
                not self.client_authenticated(request)
                or request.path_params["client_id"] != self.client.client_id
            ):
                return JSONResponse({"message": "Not Found"}, 404)
            token = (await request.json()).get("access_token", "")
            if not self.revoke(token):
                return JSONResponse({"message": "Not Found"}, 404)
            self.deleted.append(token)
            return Response(status_code=204)

        return [
            *super().routes(),
            Route("/api/user", user),
            Route("/api/applications/{client_id}/token", delete_token, methods=["DELETE"]),
            Route("/api/repos/{owner}/{repo}/issues", self._create_issue, methods=["POST"]),
            Route("/api/repos/{owner}/{repo}/issues/{number:int}", self._update, methods=["PATCH"]),
            Route(
                "/api/repos/{owner}/{repo}/issues/{number:int}/assignees",
                self._assign,
                methods=["POST"],
            ),
            Route("/api/repos/{owner}/{repo}/labels", self._repository_labels),
            Route(
                "/api/repos/{owner}/{repo}/issues/{number:int}/labels",
                self._add_labels,
                methods=["POST"],
            ),
            Route("/api/repos/{owner}/{repo}/hooks", self._hooks, methods=["GET", "POST"]),
            Route(
                "/api/repos/{owner}/{repo}/hooks/{hook_id:int}",
                self._hook,
                methods=["GET", "DELETE"],
            ),
            Route(
                "/api/repos/{owner}/{repo}/hooks/{hook_id:int}/pings",
                self._hook_ping,
                methods=["POST"],
            ),
            Route(
                "/api/repos/{owner}/{repo}/hooks/{hook_id:int}/deliveries",
                self._hook_deliveries,
            ),
            Route(
                "/api/repos/{owner}/{repo}/hooks/{hook_id:int}/deliveries/{delivery_id:int}"
                "/attempts",
                self._hook_redeliver,
                methods=["POST"],
            ),
        ]

    async def _acting(self, request: Request) -> tuple[Any, Response | None]:
        """An acting request recorded: its tracked item and the caller's login, or GitHub's
        answer refusing it (an outage, the token, an item it cannot see)."""
        recorded, down = await self.acted.take(request)
        if down is not None:
            return None, down
        login = self.login(request)
        if login is None:
            return None, _refused(401, "Bad credentials")
        name = f"{request.path_params['owner']}/{request.path_params['repo']}"
        number = request.path_params["number"]
        item = self.tracked.get((name, number)) or self._of_world(name, number)
        if item is None:
            return None, _not_found()
        writer = login in self.writers.get(name, set()) or bool(item.get("world"))
        return (recorded.body, item, login, writer), None

    def _of_world(self, name: str, number: int) -> dict[str, Any] | None:
        """With `acts_on_world` (the sandbox), an issue or pull request of the world acted
        on: anyone may change it, and a change changes the world's item and sends GitHub's
        webhook of it (`_world_change`)."""
        if not self.acts_on_world or name.lower() not in self.world.repositories:
            return None
        repo = self.world.repository(name)
        found = repo.pulls.get(number) or repo.issues.get(number)
        if found is None:
            return None
        return {"number": number, "state": found.state, "labels": [*found.labels], "world": True}

    def _world_change(
        self, request: Request, changes: list[tuple[str, str | None]], login: str, status: int
    ) -> Response:
        """`changes` made to the world's item (`GitHubWorld.act`), answered as the API
        answers them (the item; its labels for a label's change), its webhooks sent once the
        answer is out."""
        repo = self.world.repository(
            f"{request.path_params['owner']}/{request.path_params['repo']}"
        )
        number = request.path_params["number"]
        webhooks = [
            webhook
            for change, value in changes
            for webhook in self.world.act(repo, number, change, login, value)
        ]
        found = repo.pulls.get(number) or repo.issues.get(number)
        assert found is not None
        if changes[0][0] == "label":
            answer: Any = [self.world.label_json(repo, name) for name in found.labels]
        else:
            answer = self.world.issue_json(repo, found)
        if not webhooks:
            return JSONResponse(answer, status)
        event = f"{webhooks[0][0]}.{webhooks[0][1]['action']}"
        send = self._pending.later(lambda: self._dispatch(event, repo, webhooks))
        return JSONResponse(answer, status, background=send)

    async def _writing(self, request: Request) -> tuple[Any, Response | None]:
        """`_acting`'s body, item and login, for a change only a user with push access may
        make (else GitHub's 403)."""
        found, refusal = await self._acting(request)
        if refusal is not None:
            return None, refusal
        body, item, login, writer = found
        if not writer:
            return None, _refused(403, "Must have admin rights to Repository.")
        return (body, item, login), None

    async def _update(self, request: Request) -> Response:
        """`PATCH /repos/{owner}/{repo}/issues/{number}`: the state only, as hookhub asks."""
        found, refusal = await self._writing(request)
        if refusal is not None:
            return refusal
        body, item, login = found
        state = body.get("state") if isinstance(body, dict) else None
        if state not in ("open", "closed"):
            return _refused(422, "Validation Failed")
        if item.get("world"):
            change = "close" if state == "closed" else "reopen"
            return self._world_change(request, [(change, None)], login, 200)
        item["state"] = state
        return JSONResponse(_issue_json(item))

    async def _assign(self, request: Request) -> Response:
        """`POST …/issues/{number}/assignees`: those who may be assigned (push access),
        the others silently dropped."""
        found, refusal = await self._acting(request)
        if refusal is not None:
            return refusal
        body, item, login, _ = found
        asked = body.get("assignees") if isinstance(body, dict) else None
        if not isinstance(asked, list):
            return _refused(422, "Validation Failed")
        if item.get("world"):  # anyone the world knows may be assigned
            return self._world_change(
                request, [("assign", str(each)) for each in asked] or [("assign", None)], login, 201
            )
        name = f"{request.path_params['owner']}/{request.path_params['repo']}"
        for login in asked:
            if login in self.writers.get(name, set()) and login not in item["assignees"]:
                item["assignees"].append(login)
        return JSONResponse(_issue_json(item), 201)

    def labels_of(self, repository: str) -> list[dict[str, Any]]:
        """A repository's labels as GitHub's API shows them, in the order it lists them."""
        try:
            repo = self.world.repository(repository)
        except EventRefused:
            ids = self.other_labels.setdefault(
                repository, {name: next(self._label_ids) for name in DEFAULT_LABELS}
            )
            return [
                {
                    "id": label_id,
                    "name": name,
                    "color": DEFAULT_LABELS.get(name, ("ededed", ""))[0],
                    "default": name in DEFAULT_LABELS,
                    "description": DEFAULT_LABELS.get(name, ("", None))[1],
                }
                for name, label_id in ids.items()
            ]
        return [self.world.label_json(repo, name) for name in repo.labels]

    async def _repository_labels(self, request: Request) -> Response:
        """`GET /repos/{owner}/{repo}/labels`: its first `per_page` (at most 100)."""
        _, down = await self.acted.take(request)
        if down is not None:
            return down
        if self.login(request) is None:
            return _refused(401, "Bad credentials")
        name = f"{request.path_params['owner']}/{request.path_params['repo']}"
        known = {repository for repository, _ in self.tracked}
        if name not in known and name.lower() not in self.world.repositories:
            return _not_found()
        try:
            per_page = min(100, max(1, int(request.query_params.get("per_page", "30"))))
        except ValueError:
            per_page = 30
        return JSONResponse(self.labels_of(name)[:per_page])

    async def _add_labels(self, request: Request) -> Response:
        """`POST …/issues/{number}/labels` `{labels: [name, …]}`: the item's labels after."""
        found, refusal = await self._writing(request)
        if refusal is not None:
            return refusal
        body, item, login = found
        asked = body.get("labels") if isinstance(body, dict) else None
        name = f"{request.path_params['owner']}/{request.path_params['repo']}"
        labels = {label["name"]: label for label in self.labels_of(name)}
        if not isinstance(asked, list) or not all(label in labels for label in asked):
            return _refused(422, "Validation Failed")
        if item.get("world"):
            return self._world_change(request, [("label", label) for label in asked], login, 200)
        item["labels"] += [label for label in asked if label not in item["labels"]]
        return JSONResponse([labels[label] for label in item["labels"]])

    async def _create_issue(self, request: Request) -> Response:
        """`POST /repos/{owner}/{repo}/issues` as docs.github.com describes it."""
        self.issue_requests += 1
        if self.issue_delay:
            await asyncio.sleep(self.issue_delay)
        if self.issue_outage:
            self.issue_outage -= 1
            return JSONResponse({"message": "Service Unavailable"}, 503)
        if self.reject_tokens or self.bearer(request) is None:
            return JSONResponse(
                {
                    "message": "Bad credentials",
                    "documentation_url": "https://docs.github.com/rest",
                    "status": "401",
                },
                401,
            )
        if self.secondary_rate_limit:
            return JSONResponse(
                {
                    "message": "You have exceeded a secondary rate limit. Please wait a few "
                    "minutes before you try again.",
                    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
                },
                403,
                headers={"retry-after": "60"},
            )
        accept = request.headers.get("accept", "")
        if accept not in ("", "*/*", "application/json") and "github" not in accept:
            return JSONResponse({"message": f"Unsupported media type {accept}"}, 415)
        repo = f"{request.path_params['owner']}/{request.path_params['repo']}"
        world_repo = self.world.repositories.get(repo.lower())
        labels = set(world_repo.labels) if world_repo is not None else self.repos.get(repo)
        if labels is None:
            return JSONResponse(
                {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}, 404
            )
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"message": "Problems parsing JSON"}, 400)
        title = body.get("title") if isinstance(body, dict) else None
        if not isinstance(title, str) or not title.strip():
            return self._validation_failed(
                {"resource": "Issue", "code": "missing_field", "field": "title"}
            )
        wanted = body.get("labels") or []
        if any(label not in labels for label in wanted):
            return self._validation_failed(
                {"resource": "Label", "code": "invalid", "field": "labels"}
            )
        api_version = request.headers.get("x-github-api-version")
        if world_repo is not None:
            return self._world_issue(
                world_repo, title, body.get("body"), wanted, accept, api_version
            )
        number = next(self._numbers)
        issue = {
            "id": 1_000_000 + number,
            "node_id": f"I_kwDO{number:06d}",
            "number": number,
            "url": f"https://api.github.com/repos/{repo}/issues/{number}",
            "html_url": f"https://github.com/{repo}/issues/{number}",
            "title": title,
            "body": body.get("body"),
            "state": "open",
            "labels": [{"name": name} for name in wanted],
        }
        self.issues.append(
            {
                **issue,
                "repo": repo,
                "accept": accept,
                "api_version": request.headers.get("x-github-api-version"),
            }
        )
        return JSONResponse(issue, 201)

    def _world_issue(
        self,
        repo: Repository,
        title: str,
        text: Any,
        labels: list[str],
        accept: str,
        api_version: str | None,
    ) -> Response:
        """An issue created in a repository of the world joins it, and GitHub's
        `issues.opened` goes to the repository's hooks once the answer is out. Its author is
        the account `/user` names: the world's first user."""
        try:
            author = self.world.user(None)
            issue = self.world.open_issue(
                repo,
                title=title,
                body=text if isinstance(text, str) else None,
                user=author.login,
                labels=labels,
            )
        except EventRefused as refused:
            return self._validation_failed(
                {"resource": "Issue", "code": "custom", "message": str(refused)}
            )
        answer = self.world.issue_json(repo, issue)
        self.issues.append(
            {**answer, "repo": repo.full_name, "accept": accept, "api_version": api_version}
        )
        webhook = ("issues", self.world.issue_payload("opened", repo, issue, author.login))
        return JSONResponse(
            answer,
            201,
            background=self._pending.later(
                lambda: self._dispatch("issues.opened", repo, [webhook])
            ),
        )

    @staticmethod
    def _validation_failed(error: dict[str, str]) -> Response:
        return JSONResponse(
            {
                "message": "Validation Failed",
                "errors": [error],
                "documentation_url": "https://docs.github.com/rest/issues/issues#create-an-issue",
                "status": "422",
            },
            422,
        )

    # -- the world and its webhooks -------------------------------------------------------------

    def seed_demo(self) -> Repository:
        """The sandbox's world: `acme/widgets` with `octocat` and `hubot`, one open pull
        request (#1) and two open issues (#2, #3)."""
        self.world.add_user("octocat", id=583231, name="The Octocat")
        self.world.add_user("hubot", id=480938, name="Hubot")
        repo = self.world.add_repository(
            "acme/widgets", id=701234567, description="Widgets, made to order"
        )
        self.world.open_pull_request(
            repo,
            title="Add a size option to widgets",
            body="Widgets come in one size. This lets the caller choose small, medium or large.",
            user="octocat",
            head="octocat/widget-size",
            labels=["enhancement"],
        )
        self.world.open_issue(
            repo,
            title="Widgets render off-centre on small screens",
            body="On a 320 px screen the widget sits 12 px to the right.",
            user="hubot",
            labels=["bug"],
        )
        self.world.open_issue(
            repo,
            title="Document the widget API",
            body="The README does not say how to make a widget.",
            user="octocat",
            labels=["documentation"],
        )
        return repo

    def add_hook(
        self,
        owner: str,
        repo: str,
        url: str,
        secret: str | None,
        events: Iterable[str] = ("*",),
        *,
        content_type: str = "json",
        active: bool = True,
    ) -> GitHubHook:
        """A hook on `owner/repo`, validated as the API validates one; no ping is sent
        (`await ping(hook.id)` sends one)."""
        repository = self.world.repository(f"{owner}/{repo}")
        body = {
            "config": {"url": url, "content_type": content_type, "secret": secret},
            "events": list(events),
            "active": active,
        }
        try:
            return self._new_hook(repository, body)
        except _Invalid as invalid:
            raise EventRefused(str(invalid)) from None

    async def send(self, event: str, **params: Any) -> list[Delivery]:
        """Make `event` happen in the world and deliver the webhooks GitHub sends about it.
        No hook taking them is not an error: nothing is delivered (and that is logged and
        kept in `sent`). Raises `EventRefused` when the event cannot happen."""
        webhooks = self.world.event(event, **params)
        repo = self.world.repository(params.get("repository"))
        return await self._dispatch(event, repo, webhooks)

    async def _dispatch(
        self, event: str, repo: Repository, webhooks: list[tuple[str, dict[str, Any]]]
    ) -> list[Delivery]:
        deliveries = []
        for header, payload in webhooks:
            for hook in self._hooks_of(repo):
                if hook.takes(header):
                    deliveries.append(await self._deliver(repo, hook, header, payload))
        number = webhooks[0][1].get("number") or (webhooks[0][1].get("issue") or {}).get("number")
        self.sent.append(
            {
                "event": event,
                "at": iso(self.world.clock()),
                "repository": repo.full_name,
                "number": number,
                "webhooks": [_name(header, payload) for header, payload in webhooks],
                "deliveries": [d.summary() for d in deliveries],
            }
        )
        if not deliveries:
            log.info(
                "sandbox_webhook_not_delivered",
                provider="github",
                sandbox_event=event,
                repository=repo.full_name,
                reason="no active hook of the repository takes it",
            )
        return deliveries

    async def ping(self, hook_id: int) -> Delivery:
        """GitHub's `ping` to the hook, whatever events it takes."""
        hook = self.hooks.get(hook_id)
        if hook is None:
            raise EventRefused(f"no hook {hook_id}")
        repo = self.world.repository(hook.repository)
        people = [u for u in self.world.users.values() if u.kind != "Organization"]
        sender = people[0] if people else self.world.users[repo.owner.lower()]
        payload = self.world.ping_payload(repo, self._hook_json(hook), sender)
        return await self._deliver(repo, hook, "ping", payload)

    async def redeliver(self, delivery_id: int) -> Delivery:
        """The delivery again, with its GUID, headers and body (GitHub's "Redeliver")."""
        original = next((d for d in self.deliveries if d.id == delivery_id), None)
        if original is None:
            raise EventRefused(f"no delivery {delivery_id} (or one too old to be kept)")
        again = replace(
            original,
            id=next(self._delivery_ids),
            delivered_at=self.world.clock(),
            redelivery=True,
            status_code=None,
            status="",
            response_body="",
        )
        await hooks.post(again)
        self._record(self.hooks.get(again.hook_id), again)
        return again

    async def settled(self) -> None:
        """Wait until every delivery an API call started (a ping, the webhook about an issue
        it created) has been answered."""
        await self._pending.settled()

    def state(self) -> dict[str, Any]:
        """The world, its hooks and what was sent, JSON-able, for the sandbox page."""
        return {
            "base_url": self.base_url,
            "api_url": self.base_url + self.api_path,
            "personal_access_token": self.personal_access_token,
            "events": sorted(self.world.events),
            "users": [
                {"login": u.login, "id": u.id, "name": u.name, "avatar_url": u.avatar_url}
                for u in self.world.users.values()
                if u.kind != "Organization"
            ],
            "repositories": [
                self._repository_state(repo) for repo in self.world.repositories.values()
            ],
            "sent": list(self.sent)[-20:],
        }

    def _repository_state(self, repo: Repository) -> dict[str, Any]:
        return {
            "full_name": repo.full_name,
            "id": repo.id,
            "html_url": repo.html_url,
            "default_branch": repo.default_branch,
            "branches": dict(repo.branches),
            "labels": list(repo.labels),
            "pull_requests": [
                {
                    "number": p.number,
                    "title": p.title,
                    "state": p.status,
                    "user": p.user,
                    "head": p.head,
                    "base": p.base,
                    "labels": p.labels,
                    "comments": p.comments,
                    "reviews": [{"user": r.user, "state": r.state} for r in p.reviews],
                    "html_url": f"{repo.html_url}/pull/{p.number}",
                }
                for p in repo.pulls.values()
            ],
            "issues": [
                {
                    "number": i.number,
                    "title": i.title,
                    "state": i.state,
                    "state_reason": i.state_reason,
                    "user": i.user,
                    "labels": i.labels,
                    "comments": i.comments,
                    "html_url": f"{repo.html_url}/issues/{i.number}",
                }
                for i in repo.issues.values()
            ],
            "hooks": [
                {
                    "id": h.id,
                    "url": h.url,
                    "events": h.events,
                    "active": h.active,
                    "content_type": h.content_type,
                    "signed": bool(h.secret),
                    "deliveries": [d.summary() for d in reversed(h.deliveries)][:10],
                }
                for h in self._hooks_of(repo)
            ],
        }

    def _hooks_of(self, repo: Repository) -> list[GitHubHook]:
        return [h for h in self.hooks.values() if h.repository == repo.full_name]

    async def _deliver(
        self, repo: Repository, hook: GitHubHook, event: str, payload: dict[str, Any]
    ) -> Delivery:
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        if hook.content_type == "form":
            # The JSON in a `payload` field; the signatures cover the form body as sent.
            body = urlencode({"payload": text}).encode()
        else:
            body = text.encode()
        guid = str(uuid.uuid4())
        headers = {
            "Accept": "*/*",
            "Content-Type": CONTENT_TYPES[hook.content_type],
            "User-Agent": f"GitHub-Hookshot/{self.hookshot}",
            "X-GitHub-Delivery": guid,
            "X-GitHub-Event": event,
            "X-GitHub-Hook-ID": str(hook.id),
            "X-GitHub-Hook-Installation-Target-ID": str(repo.id),
            "X-GitHub-Hook-Installation-Target-Type": "repository",
        }
        if hook.secret:
            key = hook.secret.encode()
            headers["X-Hub-Signature"] = "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest()
            headers["X-Hub-Signature-256"] = (
                "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
            )
        delivery = Delivery(
            id=next(self._delivery_ids),
            guid=guid,
            hook_id=hook.id,
            event=event,
            action=payload.get("action"),
            url=hook.url,
            delivered_at=self.world.clock(),
            request_headers=headers,
            request_body=body,
            payload=payload,
        )
        await hooks.post(delivery)
        self._record(hook, delivery)
        return delivery

    def _record(self, hook: GitHubHook | None, delivery: Delivery) -> None:
        hooks.record("github", self.deliveries, hook.deliveries if hook else None, delivery)

    # -- the hooks API ----------------------------------------------------------------------

    def _new_hook(self, repo: Repository, body: Any) -> GitHubHook:
        if not isinstance(body, dict):
            raise _Invalid({"resource": "Hook", "code": "invalid", "field": "config"})
        if body.get("name", "web") != "web":
            raise _Invalid({"resource": "Hook", "code": "invalid", "field": "name"})
        config = body.get("config")
        if not isinstance(config, dict) or not config.get("url"):
            raise _Invalid(
                {
                    "resource": "Hook",
                    "code": "custom",
                    "message": "Config must contain URL for webhooks",
                }
            )
        url = config["url"]
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise _Invalid(
                {
                    "resource": "Hook",
                    "code": "custom",
                    "message": "The URL you've entered is not valid. Please make sure that "
                    "you encode all special characters first",
                }
            )
        content_type = config.get("content_type", "form")
        if content_type not in CONTENT_TYPES:
            raise _Invalid(
                {
                    "resource": "Hook",
                    "code": "custom",
                    "message": "Config content_type must be one of: json, form",
                }
            )
        events = body.get("events", ["push"])
        if (
            not isinstance(events, list)
            or not events
            or not all(isinstance(e, str) and e.strip() for e in events)
        ):
            raise _Invalid({"resource": "Hook", "code": "invalid", "field": "events"})
        secret = config.get("secret")
        if secret is not None and not isinstance(secret, str):
            raise _Invalid({"resource": "Hook", "code": "invalid", "field": "secret"})
        active = body.get("active", True)
        if not isinstance(active, bool):
            raise _Invalid({"resource": "Hook", "code": "invalid", "field": "active"})
        if any(h.url == url for h in self._hooks_of(repo)):
            raise _Invalid(
                {
                    "resource": "Hook",
                    "code": "custom",
                    "message": "Hook already exists on this repository",
                }
            )
        at = self.world.clock()
        hook = GitHubHook(
            id=next(self._hook_ids),
            repository=repo.full_name,
            url=url,
            content_type=content_type,
            secret=secret or None,
            events=list(dict.fromkeys(events)),
            active=active,
            insecure_ssl=str(config.get("insecure_ssl", "0")),
            created_at=at,
            updated_at=at,
        )
        self.hooks[hook.id] = hook
        return hook

    def _hook_json(self, hook: GitHubHook) -> dict[str, Any]:
        """A hook as GitHub's API answers it: the secret masked, never shown."""
        url = f"{self.base_url}{self.api_path}/repos/{hook.repository}/hooks/{hook.id}"
        config: dict[str, Any] = {
            "content_type": hook.content_type,
            "insecure_ssl": hook.insecure_ssl,
            "url": hook.url,
        }
        if hook.secret:
            config["secret"] = "********"
        last = hook.deliveries[-1] if hook.deliveries else None
        return {
            "type": "Repository",
            "id": hook.id,
            "name": "web",
            "active": hook.active,
            "events": hook.events,
            "config": config,
            "updated_at": iso(hook.updated_at),
            "created_at": iso(hook.created_at),
            "url": url,
            "test_url": f"{url}/test",
            "ping_url": f"{url}/pings",
            "deliveries_url": f"{url}/deliveries",
            "last_response": {
                "code": last.status_code if last else None,
                "status": ("active" if last.ok else "failed") if last else "unused",
                "message": last.status if last else None,
            },
        }

    def _api_refusal(self, request: Request) -> tuple[Repository | None, Response | None]:
        """The repository of a hooks request, or GitHub's answer refusing it."""
        if not request.headers.get("authorization"):
            return None, JSONResponse(
                {
                    "message": "Requires authentication",
                    "documentation_url": "https://docs.github.com/rest",
                    "status": "401",
                },
                401,
            )
        if self.bearer(request) is None:
            return None, JSONResponse(
                {
                    "message": "Bad credentials",
                    "documentation_url": "https://docs.github.com/rest",
                    "status": "401",
                },
                401,
            )
        name = f"{request.path_params['owner']}/{request.path_params['repo']}"
        try:
            return self.world.repository(name), None
        except EventRefused:
            return None, _not_found()

    async def _hooks(self, request: Request) -> Response:
        """`GET`/`POST /repos/{owner}/{repo}/hooks`."""
        repo, refusal = self._api_refusal(request)
        if repo is None:
            return refusal or _not_found()
        if request.method == "GET":
            return JSONResponse([self._hook_json(h) for h in self._hooks_of(repo)])
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse(
                {"message": "Problems parsing JSON", "documentation_url": HOOKS_DOCS}, 400
            )
        try:
            hook = self._new_hook(repo, body)
        except _Invalid as invalid:
            return JSONResponse(
                {
                    "message": "Validation Failed",
                    "errors": [invalid.error],
                    "documentation_url": HOOKS_DOCS,
                    "status": "422",
                },
                422,
            )
        # GitHub pings a hook as soon as it is created.
        return JSONResponse(
            self._hook_json(hook), 201, background=self._pending.later(lambda: self.ping(hook.id))
        )

    def _found_hook(self, request: Request, repo: Repository) -> GitHubHook | None:
        hook = self.hooks.get(request.path_params["hook_id"])
        return hook if hook is not None and hook.repository == repo.full_name else None

    async def _hook(self, request: Request) -> Response:
        """`GET`/`DELETE /repos/{owner}/{repo}/hooks/{hook_id}`."""
        repo, refusal = self._api_refusal(request)
        if repo is None:
            return refusal or _not_found()
        hook = self._found_hook(request, repo)
        if hook is None:
            return _not_found()
        if request.method == "GET":
            return JSONResponse(self._hook_json(hook))
        del self.hooks[hook.id]
        return Response(status_code=204)

    async def _hook_ping(self, request: Request) -> Response:
        """`POST /repos/{owner}/{repo}/hooks/{hook_id}/pings`."""
        repo, refusal = self._api_refusal(request)
        if repo is None:
            return refusal or _not_found()
        hook = self._found_hook(request, repo)
        if hook is None:
            return _not_found()
        return Response(status_code=204, background=self._pending.later(lambda: self.ping(hook.id)))

    async def _hook_deliveries(self, request: Request) -> Response:
        """`GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries`, newest first."""
        repo, refusal = self._api_refusal(request)
        if repo is None:
            return refusal or _not_found()
        hook = self._found_hook(request, repo)
        if hook is None:
            return _not_found()
        return JSONResponse(
            [
                {
                    "id": d.id,
                    "guid": d.guid,
                    "delivered_at": iso(d.delivered_at),
                    "redelivery": d.redelivery,
                    "duration": round(d.duration, 2),
                    "status": d.status,
                    "status_code": d.status_code or 0,
                    "event": d.event,
                    "action": d.action,
                    "installation_id": None,
                    "repository_id": repo.id,
                    "throttled_at": None,
                }
                for d in reversed(hook.deliveries)
            ]
        )

    async def _hook_redeliver(self, request: Request) -> Response:
        """`POST /repos/{owner}/{repo}/hooks/{hook_id}/deliveries/{delivery_id}/attempts`."""
        repo, refusal = self._api_refusal(request)
        if repo is None:
            return refusal or _not_found()
        hook = self._found_hook(request, repo)
        delivery_id = request.path_params["delivery_id"]
        if hook is None or not any(d.id == delivery_id for d in hook.deliveries):
            return _not_found()
        return JSONResponse(
            {}, 202, background=self._pending.later(lambda: self.redeliver(delivery_id))
        )


def _not_found() -> Response:
    return JSONResponse(
        {"message": "Not Found", "documentation_url": HOOKS_DOCS, "status": "404"}, 404
    )


def _issue_json(item: dict[str, Any]) -> dict[str, Any]:
    """An item as GitHub's issue answers show it: people and labels as objects."""
    return {
        **item,
        "assignees": [{"login": login} for login in item["assignees"]],
        "labels": [{"name": name} for name in item["labels"]],
    }


def _refused(status: int, message: str) -> Response:
    return JSONResponse(
        {"message": message, "documentation_url": ISSUES_DOCS, "status": str(status)}, status
    )


def _name(header: str, payload: dict[str, Any]) -> str:
    """The webhook as hookhub's notifications name it."""
    action = payload.get("action")
    if header == "pull_request" and action == "closed" and payload["pull_request"]["merged"]:
        action = "merged"
    return f"{header}.{action}" if action else header
