"""`listen`: a developer's machine that `hookhub listen` connected (docs/listen.md). Nothing
egresses: the laptop connected in, and each message goes down its socket, through the
replica that holds it (services/delivery/listen/relay.py); the listener's answer (its local
URL's status and body) is the attempt's."""

from __future__ import annotations

from services.delivery.destinations.base import Answer, Message, Relay, Surroundings
from services.delivery.destinations.schemas import Config, ListenConfig


class Listen:
    def __init__(self, config: Config, surroundings: Surroundings) -> None:
        assert isinstance(config, ListenConfig)
        if surroundings.relay is None:
            raise RuntimeError("a listening endpoint needs the delivery service's relay")
        self._relay: Relay = surroundings.relay
        self._endpoint_id = surroundings.endpoint_id

    @property
    def address(self) -> str:
        return self._relay.address(self._endpoint_id)

    async def send(self, message: Message) -> Answer:
        return await self._relay.deliver(message)

    async def close(self) -> None:
        return None
