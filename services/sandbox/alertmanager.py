"""Alertmanager's silences API on loopback (`POST`/`GET /api/v2/silences`), strict like
Alertmanager, and Grafana's Alertmanager-compatible one (`/api/alertmanager/grafana/api/v2/
silences`, a service account token), for the silences hookhub makes from the channel
(shared.providers.alertmanager.acting).

A posted silence goes through Alertmanager's own checks, in its order, with its answers:

- its OpenAPI schema (`api/v2/openapi.yaml`, `postableSilence`): a field missing or of the
  wrong type, or no matcher, is 422 `{"code", "message"}` as go-openapi answers
  (`matchers.0.isRegex in body is required`); a body that is no JSON, 400;
- `postSilencesHandler` (`api/v2/api.go`): 400 with a JSON string,
  `Failed to create silence: start time must be before end time` (equal times too),
  `Failed to create silence: end time can't be in the past`;
- `validateSilence` (`silence/silence.go`): 400 `invalid silence: invalid label matcher 0
  in set 0: invalid label name ""` (or `invalid regular expression …`), and
  `invalid silence: matcher set 0: at least one matcher must not match the empty string`.

Then 200 `{"silenceID": "<uuid>"}`, and the silence is listed by `GET` (as
`gettableSilence`: its `id`, `status.state`, `updatedAt`). Alertmanager has no
authentication: `token` set stands for a proxy in front of it that wants `Authorization:
Bearer <token>` (401 `Unauthorized` otherwise). `unavailable` answers 503.

Grafana (`FakeGrafana`) takes the same silences with a service account token (`tokens`;
401 `{"message": "Invalid API key", "messageId": "api-key.invalid"}` otherwise, `Unauthorized`
without one), answers 202 `{"silenceID"}` (grafana/grafana `pkg/services/ngalert/api/
api_alertmanager.go`, `RouteCreateSilence`) and says a refusal as `{"message": "silence
failed validation: <Alertmanager's reason>"}`.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from services.sandbox.recording import Recorded, RecordingApi, healthz

# `silence`'s required fields and their JSON types (`matchers` checked apart), and a
# matcher's.
SILENCE_FIELDS = {"startsAt": str, "endsAt": str, "createdBy": str, "comment": str}
MATCHER_FIELDS = {"name": str, "value": str, "isRegex": bool}
JSON_TYPES = {str: "string", bool: "boolean"}


class Refused(Exception):
    def __init__(self, status: int, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def _time(value: str, name: str) -> datetime:
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Refused(422, f'{name} in body must be of type date-time: "{value}"', 601) from None
    if at.tzinfo is None:
        raise Refused(422, f'{name} in body must be of type date-time: "{value}"', 601)
    return at


def _schema(body: Any) -> None:
    """Alertmanager's OpenAPI check of a `postableSilence` (422, go-openapi's codes)."""
    if not isinstance(body, dict):
        raise Refused(400, 'parsing silence body from "" failed, because of a non-object', 400)
    matchers = body.get("matchers")
    if matchers is None:
        raise Refused(422, "matchers in body is required", 602)
    if not isinstance(matchers, list):
        raise Refused(422, "matchers in body must be of type array", 601)
    if not matchers:
        raise Refused(422, "matchers in body should have at least 1 items", 612)
    for index, matcher in enumerate(matchers):
        for name, kind in MATCHER_FIELDS.items():
            value = matcher.get(name) if isinstance(matcher, dict) else None
            _typed(f"matchers.{index}.{name}", value, kind)
    for name, kind in SILENCE_FIELDS.items():
        _typed(name, body.get(name), kind)


def _typed(path: str, value: Any, kind: type) -> None:
    if value is None:
        raise Refused(422, f"{path} in body is required", 602)
    if not isinstance(value, kind):
        raise Refused(422, f"{path} in body must be of type {JSON_TYPES[kind]}", 601)


def _matches_empty(matcher: dict[str, Any]) -> bool:
    if matcher.get("isEqual", True) is False:
        return False
    if not matcher["isRegex"]:
        return bool(matcher["value"] == "")
    return re.fullmatch(matcher["value"], "") is not None


def _validate(body: dict[str, Any], now: datetime) -> datetime:
    """`postSilencesHandler`'s checks, then `validateSilence`'s (400, their words); the
    silence's start."""
    starts, ends = _time(body["startsAt"], "startsAt"), _time(body["endsAt"], "endsAt")
    if starts >= ends:
        raise Refused(400, "Failed to create silence: start time must be before end time")
    if ends < now:
        raise Refused(400, "Failed to create silence: end time can't be in the past")
    for index, matcher in enumerate(body["matchers"]):
        said = f"invalid silence: invalid label matcher {index} in set 0"
        if not matcher["name"]:
            raise Refused(400, f'{said}: invalid label name "{matcher["name"]}"')
        if matcher["isRegex"]:
            try:
                re.compile(matcher["value"])
            except re.error as exc:
                raise Refused(
                    400, f'{said}: invalid regular expression "{matcher["value"]}": {exc}'
                ) from None
    if all(_matches_empty(m) for m in body["matchers"]):
        raise Refused(
            400,
            "invalid silence: matcher set 0: at least one matcher must not match the empty string",
        )
    return starts


@dataclass
class FakeAlertmanager(RecordingApi):
    """`silences` by id, as posted (with `id`, `status`, `updatedAt`); `token`: a proxy's."""

    silences: dict[str, dict[str, Any]] = field(default_factory=dict)
    token: str | None = None

    PREFIX: ClassVar[str] = ""
    CREATED: ClassVar[int] = 200

    def refused(self, refusal: Refused) -> Response:
        if refusal.code is not None:  # go-openapi's error body
            return JSONResponse({"code": refusal.code, "message": refusal.message}, refusal.status)
        return JSONResponse(refusal.message, refusal.status)  # go-swagger's string payload

    def unauthorized(self, recorded: Recorded) -> Response | None:
        if self.token is None or self.bearer(recorded) == self.token:
            return None
        return PlainTextResponse("Unauthorized", 401)

    def app(self) -> Starlette:
        async def silences(request: Request) -> Response:
            recorded, down = await self.take(request)
            refused = down or self.unauthorized(recorded)
            if refused is not None:
                return refused
            if request.method == "GET":
                return JSONResponse(list(self.silences.values()))
            now = datetime.now(UTC)
            try:
                _schema(recorded.body)
                starts = _validate(recorded.body, now)
            except Refused as refusal:
                return self.refused(refusal)
            silence_id = str(uuid.uuid4())
            state = "pending" if starts > now else "active"
            self.silences[silence_id] = {
                **recorded.body,
                "id": silence_id,
                "status": {"state": state},
                "updatedAt": now.isoformat().replace("+00:00", "Z"),
            }
            return JSONResponse({"silenceID": silence_id}, self.CREATED)

        return Starlette(
            routes=[
                Route("/healthz", healthz),
                Route(f"{self.PREFIX}/api/v2/silences", silences, methods=["GET", "POST"]),
            ]
        )


@dataclass
class FakeGrafana(FakeAlertmanager):
    """Grafana's Alertmanager (its API under `/api/alertmanager/grafana`): `tokens` are the
    service account tokens it takes."""

    tokens: set[str] = field(default_factory=set)

    PREFIX: ClassVar[str] = "/api/alertmanager/grafana"
    CREATED: ClassVar[int] = 202

    def refused(self, refusal: Refused) -> Response:
        return JSONResponse({"message": f"silence failed validation: {refusal.message}"}, 400)

    def unauthorized(self, recorded: Recorded) -> Response | None:
        token = self.bearer(recorded)
        if token is None:
            return JSONResponse({"message": "Unauthorized", "messageId": "auth.unauthorized"}, 401)
        if token not in self.tokens:
            body = {"message": "Invalid API key", "messageId": "api-key.invalid", "statusCode": 401}
            return JSONResponse(body, 401)
        return None
