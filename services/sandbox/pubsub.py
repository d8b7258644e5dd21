"""A stand-in of Google Cloud Pub/Sub's REST API (v1) on loopback, for where gcloud's
emulator (Java) is not installed: what a destination publishes (SPEC §21) and what a
subscriber pulls, answered as Pub/Sub documents them
(https://cloud.google.com/pubsub/docs/reference/rest), kept in memory, unauthenticated as
the emulator is.

- `PUT /v1/projects/{p}/topics/{t}`: the topic, 200 `{"name"}`; 409 `ALREADY_EXISTS` if it
  exists. `PUT /v1/projects/{p}/subscriptions/{s}` `{"topic", "enableMessageOrdering"?}`:
  200 with the subscription; 404 `NOT_FOUND` for a topic it does not have.
- `POST /v1/projects/{p}/topics/{t}:publish` `{"messages": [{"data" (base64),
  "attributes", "orderingKey"}]}`: 200 `{"messageIds"}`, each message kept for every
  subscription of the topic; 404 `Topic not found`; 400 `INVALID_ARGUMENT` for a message
  with neither data nor attributes, or data that is not base64.
- `POST /v1/projects/{p}/subscriptions/{s}:pull` `{"maxMessages"}`: `{"receivedMessages":
  [{"ackId", "message": {"data", "attributes", "messageId", "publishTime",
  "orderingKey"}}]}` in the order published (with ordering on, one key's next message only
  once the one before it is acknowledged); `…:acknowledge` `{"ackIds"}`: `{}`.

Resource names follow Pub/Sub's rules (3-255 characters, a letter first): another is 400
`Invalid [topics] name`, as the emulator answers.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.kernel.ids import isoformat, utcnow

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$")


def _error(code: int, status: str, message: str) -> Response:
    return JSONResponse({"error": {"code": code, "message": message, "status": status}}, code)


@dataclass
class Subscription:
    topic: str
    ordered: bool
    waiting: deque[dict[str, Any]] = field(default_factory=deque)
    out: dict[str, dict[str, Any]] = field(default_factory=dict)  # by ack id


@dataclass
class FakePubSub:
    base_url: str = ""
    topics: set[str] = field(default_factory=set)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    published: list[dict[str, Any]] = field(default_factory=list)
    _next_id: int = 0

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/healthz", lambda _: JSONResponse({"ok": True})),
                Route(
                    "/v1/projects/{project}/topics/{rest:path}",
                    self._topic,
                    methods=["PUT", "POST"],
                ),
                Route(
                    "/v1/projects/{project}/subscriptions/{rest:path}",
                    self._subscription,
                    methods=["PUT", "POST"],
                ),
            ]
        )

    async def _topic(self, request: Request) -> Response:
        project, rest = request.path_params["project"], request.path_params["rest"]
        topic, _, verb = rest.partition(":")
        path = f"projects/{project}/topics/{topic}"
        if not _NAME.fullmatch(topic):
            return _error(400, "INVALID_ARGUMENT", f"Invalid [topics] name: (name={path})")
        if request.method == "PUT" and not verb:
            if path in self.topics:
                return _error(409, "ALREADY_EXISTS", "Topic already exists")
            self.topics.add(path)
            return JSONResponse({"name": path})
        if request.method == "POST" and verb == "publish":
            if path not in self.topics:
                return _error(404, "NOT_FOUND", "Topic not found")
            return self._publish(path, await request.json())
        return _error(404, "NOT_FOUND", "Not found")

    def _publish(self, topic: str, body: dict[str, Any]) -> Response:
        messages = body.get("messages") or []
        if not messages:
            return _error(400, "INVALID_ARGUMENT", "The request contains no messages")
        ids = []
        for given in messages:
            data = given.get("data", "")
            try:
                base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                return _error(400, "INVALID_ARGUMENT", "Invalid data: not base64")
            if not data and not given.get("attributes"):
                return _error(400, "INVALID_ARGUMENT", "Some messages are empty")
            self._next_id += 1
            message = {
                "data": data,
                "attributes": dict(given.get("attributes") or {}),
                "messageId": str(self._next_id),
                "publishTime": isoformat(utcnow()),
                **({"orderingKey": given["orderingKey"]} if given.get("orderingKey") else {}),
            }
            self.published.append(message)
            for subscription in self.subscriptions.values():
                if subscription.topic == topic:
                    subscription.waiting.append(message)
            ids.append(message["messageId"])
        return JSONResponse({"messageIds": ids})

    async def _subscription(self, request: Request) -> Response:
        project, rest = request.path_params["project"], request.path_params["rest"]
        name, _, verb = rest.partition(":")
        path = f"projects/{project}/subscriptions/{name}"
        if not _NAME.fullmatch(name):
            return _error(400, "INVALID_ARGUMENT", f"Invalid [subscriptions] name: (name={path})")
        body = await request.json() if await request.body() else {}
        if request.method == "PUT" and not verb:
            if body.get("topic") not in self.topics:
                return _error(404, "NOT_FOUND", "Subscription topic does not exist")
            if path in self.subscriptions:
                return _error(409, "ALREADY_EXISTS", "Subscription already exists")
            ordered = bool(body.get("enableMessageOrdering"))
            self.subscriptions[path] = Subscription(body["topic"], ordered)
            return JSONResponse(
                {
                    "name": path,
                    "topic": body["topic"],
                    "ackDeadlineSeconds": 10,
                    "enableMessageOrdering": ordered,
                }
            )
        subscription = self.subscriptions.get(path)
        if subscription is None:
            return _error(404, "NOT_FOUND", "Subscription does not exist")
        if verb == "pull":
            return JSONResponse(
                {
                    "receivedMessages": self._pull(
                        path, subscription, int(body.get("maxMessages", 1))
                    )
                }
            )
        if verb == "acknowledge":
            for ack_id in body.get("ackIds") or []:
                subscription.out.pop(ack_id, None)
            return JSONResponse({})
        return _error(404, "NOT_FOUND", "Not found")

    @staticmethod
    def _pull(path: str, subscription: Subscription, most: int) -> list[dict[str, Any]]:
        busy = {m.get("orderingKey") for m in subscription.out.values() if m.get("orderingKey")}
        pulled: list[dict[str, Any]] = []
        kept: deque[dict[str, Any]] = deque()
        while subscription.waiting:
            message = subscription.waiting.popleft()
            key = message.get("orderingKey")
            if len(pulled) >= most or (subscription.ordered and key and key in busy):
                kept.append(message)
                continue
            ack_id = f"{path}:{message['messageId']}"
            subscription.out[ack_id] = message
            if key:
                busy.add(key)
            pulled.append({"ackId": ack_id, "message": message})
        subscription.waiting = kept
        return pulled
