"""GitLab's stand-in: OAuth (authorization code with PKCE, rotating refresh tokens, RFC 7009
revocation), `GET /api/v4/user`, and the actions taken on an issue or merge request from
the channel (SPEC §20, shared.providers.gitlab.acting): `PUT /api/v4/projects/{id}/issues/
{iid}` and `PUT /api/v4/projects/{id}/merge_requests/{iid}` with `state_event` (`close`,
`reopen`) or `assignee_ids`, as the user the token was granted by (`profiles`: each
consenting user's `/user`).

Each acting request is recorded in `acted` (a RecordingApi: `unavailable`, `fail(n)`).
GitLab's refusals: 401 `{"message": "401 Unauthorized"}` for a token it does not know; 404
`{"message": "404 Project Not Found"}` (or `Issue`, `Merge Request`) for an item the user
cannot see or that is not there (GitLab hides what a user may not read); 403
`{"message": "403 Forbidden"}` for a user who may read but not update it (`developers`
names who may, by project id). A user who is not a member is not assigned: GitLab drops
the ids it cannot assign and answers 200, as it does.

Checked against https://docs.gitlab.com/api/issues/ ("Edit an issue": `state_event`,
`assignee_ids`), https://docs.gitlab.com/api/merge_requests/ ("Update a merge request"),
https://docs.gitlab.com/api/oauth2/ and https://docs.gitlab.com/api/rest/troubleshooting/
(the status codes and their `message`s).
"""

from __future__ import annotations

from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.sandbox.oauth_server import FakeAuthorizationServer, form_token
from services.sandbox.recording import RecordingApi

ROOT = {"id": 1, "username": "root", "name": "Administrator", "web_url": "https://gitlab.test/root"}
KINDS = {"issues": "Issue", "merge_requests": "Merge Request"}
# What each `state_event` makes of the item's state.
EVENTS = {"close": "closed", "reopen": "opened"}


class FakeGitLab(FakeAuthorizationServer):
    provider = "gitlab"
    authorize_path = "/oauth/authorize"
    token_path = "/oauth/token"
    revoke_path = "/oauth/revoke"
    api_path = "/api/v4"
    token_prefix: ClassVar[str] = "glpat-"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.profiles: dict[str, dict[str, Any]] = {"user-1": ROOT}
        # Items by (project id, "issues" | "merge_requests", iid); who may update them.
        self.items: dict[tuple[int, str, int], dict[str, Any]] = {}
        self.developers: dict[int, set[int]] = {}
        self.acted = RecordingApi()

    def track(self, project_id: int, kind: str, iid: int, state: str = "opened") -> None:
        """An issue (`issues`) or merge request (`merge_requests`) the acting routes know."""
        self.items[(project_id, kind, iid)] = {
            "project_id": project_id,
            "iid": iid,
            "state": state,
            "assignees": [],
        }

    def user_of(self, request: Request) -> dict[str, Any] | None:
        user = self.bearer(request)
        return None if user is None else self.profiles.get(user, ROOT)

    def routes(self) -> list[Route]:
        async def user(request: Request) -> Response:
            found = self.user_of(request)
            if found is None:
                return _refused(401, "401 Unauthorized")
            return JSONResponse(found)

        async def revoke(request: Request) -> Response:
            form = await request.form()
            if form.get("client_id") != self.client.client_id or not (
                self.client.check_client_secret(str(form.get("client_secret") or ""))
            ):
                return JSONResponse({"error": "invalid_client"}, 401)
            self.revoke(form_token(form))
            return JSONResponse({})  # RFC 7009: 200 whether or not the token was valid

        return [
            *super().routes(),
            Route("/api/v4/user", user),
            Route(self.revoke_path or "", revoke, methods=["POST"]),
            Route("/api/v4/projects/{project:int}/{kind}/{iid:int}", self._update, methods=["PUT"]),
        ]

    async def _update(self, request: Request) -> Response:
        recorded, down = await self.acted.take(request)
        if down is not None:
            return down
        kind = request.path_params["kind"]
        if kind not in KINDS:
            return _refused(404, "404 Not Found")
        me = self.user_of(request)
        if me is None:
            return _refused(401, "401 Unauthorized")
        project = request.path_params["project"]
        item = self.items.get((project, kind, request.path_params["iid"]))
        if item is None:
            return _refused(404, f"404 {KINDS[kind]} Not Found")
        members = self.developers.get(project, set())
        if me["id"] not in members:
            return _refused(403, "403 Forbidden")
        body = recorded.body if isinstance(recorded.body, dict) else {}
        event = body.get("state_event")
        if event is not None:
            if event not in EVENTS:
                return JSONResponse({"error": "state_event does not have a valid value"}, 400)
            item["state"] = EVENTS[event]
        if "assignee_ids" in body:
            ids = body["assignee_ids"]
            if not isinstance(ids, list):
                return JSONResponse({"error": "assignee_ids is invalid"}, 400)
            item["assignees"] = [{"id": i} for i in ids if i in members]
        return JSONResponse(item)


def _refused(status: int, message: str) -> Response:
    return JSONResponse({"message": message}, status)
