"""Google Cloud Pub/Sub: `projects.topics.publish` over REST, through the egress guard.

The service account signs its own JWT for Pub/Sub's audience (google-auth, as Google's
client libraries do for service accounts): no token exchange, nothing to fetch. The
signing headers are the message's attributes; a FIFO endpoint's ordering key is its
`orderingKey`. `HOOKHUB_PUBSUB_ENDPOINT_URL` (the emulator's `http://host:port`) sends
there, unauthenticated, as the emulator expects.
"""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import orjson
from google.auth import jwt

from services.delivery.destinations.base import Answer, Message, Surroundings
from services.delivery.destinations.schemas import Config, PubSubConfig
from shared.kernel.egress import GuardedClient, describe_failure

API = "https://pubsub.googleapis.com"
AUDIENCE = "https://pubsub.googleapis.com/"


class PubSub:
    def __init__(self, config: Config, surroundings: Surroundings) -> None:
        assert isinstance(config, PubSubConfig)
        self.config = config
        base = (surroundings.pubsub_endpoint_url or API).rstrip("/")
        self._url = f"{base}/v1/projects/{config.project}/topics/{config.topic}:publish"
        self._emulated = surroundings.pubsub_endpoint_url is not None
        self._client: GuardedClient | None = None
        self._policy = surroundings.policy
        self._credentials: Any = None
        if config.service_account is not None and not self._emulated:
            self._credentials = jwt.Credentials.from_service_account_info(
                orjson.loads(config.service_account), audience=AUDIENCE
            )

    @property
    def address(self) -> str:
        return self._url

    def _authorization(self) -> dict[str, str]:
        credentials = self._credentials
        if credentials is None:
            return {}
        if not credentials.valid:  # none yet, or within minutes of its expiry
            credentials.refresh(None)  # signs locally: no request is made
        token = credentials.token  # bytes, as google-auth's jwt.encode makes it
        return {
            "authorization": "Bearer " + (token.decode() if isinstance(token, bytes) else token)
        }

    async def send(self, message: Message) -> Answer:
        if self._client is None:
            self._client = GuardedClient(self._policy, 32)
        published: dict[str, Any] = {
            "data": base64.b64encode(message.body).decode(),
            "attributes": message.attributes(),
        }
        if message.fifo and message.key:
            published["orderingKey"] = message.key
        try:
            async with self._client.post(
                self._url,
                body=orjson.dumps({"messages": [published]}),
                headers={"content-type": "application/json", **self._authorization()},
                time_limit=60,
            ) as response:
                text = (await response.read()).decode("utf-8", "replace")
                status = response.status
        except aiohttp.ClientError as exc:
            return Answer.refused(describe_failure(exc))
        if 200 <= status < 300:
            return Answer.accepted(text, status)
        return Answer.refused(f"Pub/Sub answered {status}: {_reason(text)}", status, text)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()


def _reason(text: str) -> str:
    """`{"error": {"status", "message"}}` in words, else the text itself."""
    try:
        error = orjson.loads(text).get("error") or {}
        return f"{error.get('status', '')} {error.get('message', '')}".strip() or text[:300]
    except (orjson.JSONDecodeError, AttributeError):
        return text[:300]
