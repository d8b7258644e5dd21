"""RabbitMQ (aio-pika): one connection and confirming channel per endpoint.

A publish succeeds only once the broker confirms it; `mandatory`, so a message no queue is
bound for comes back as a failure rather than vanishing. The routing key is the event's
type. The host is judged by the egress policy before each connect, and a plain `amqp://`
connection goes to the judged address itself.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

from services.delivery.destinations.base import ACKNOWLEDGED, Answer, Message, Surroundings
from services.delivery.destinations.schemas import Config, RabbitMqConfig
from shared.kernel.egress import EgressRefused, allowed_addresses


class RabbitMq:
    def __init__(self, config: Config, surroundings: Surroundings) -> None:
        assert isinstance(config, RabbitMqConfig)
        self.config = config
        self._policy = surroundings.policy
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._opening = asyncio.Lock()

    @property
    def address(self) -> str:
        return f"{self.config.masked('url', self.config.url)} exchange {self.config.exchange!r}"

    async def _opened(self) -> AbstractExchange:
        exchange = self._exchange
        if exchange is not None and self._channel is not None and not self._channel.is_closed:
            return exchange
        async with self._opening:
            if self._connection is None or self._connection.is_closed:
                self._connection = await aio_pika.connect(await self._judged_url())
            if self._channel is None or self._channel.is_closed:
                self._channel = await self._connection.channel(
                    publisher_confirms=True, on_return_raises=True
                )
                name = self.config.exchange
                self._exchange = (
                    await self._channel.get_exchange(name, ensure=False)
                    if name
                    else self._channel.default_exchange
                )
            assert self._exchange is not None
            return self._exchange

    async def _judged_url(self) -> str:
        parts = urlsplit(self.config.url)
        tls = parts.scheme == "amqps"
        host, port = parts.hostname or "localhost", parts.port or (5671 if tls else 5672)
        [address, *_] = await allowed_addresses(host, port, self._policy)
        if tls:
            return self.config.url  # TLS checks the name: connected to by name
        literal = f"[{address}]" if ":" in address else address
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@{literal}:{port}" if credentials else f"{literal}:{port}"
        return parts._replace(netloc=netloc).geturl()

    async def send(self, message: Message) -> Answer:
        try:
            exchange = await self._opened()
            confirmed: Any = await exchange.publish(
                aio_pika.Message(
                    message.body,
                    headers=dict(message.attributes()),
                    content_type="application/json",
                    message_id=message.msg_id,
                    type=message.event_type,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=message.event_type,
                mandatory=True,
            )
        except aiormq.exceptions.PublishError as exc:
            returned = exc.message
            reason = getattr(getattr(returned, "delivery", None), "reply_text", "") or "returned"
            return Answer.refused(f"unroutable: {reason} (routing key {message.event_type!r})")
        except aiormq.exceptions.DeliveryError as exc:
            return Answer.refused(f"not confirmed by the broker: {exc.frame or exc}")
        except aiormq.exceptions.AMQPChannelError as exc:
            self._channel = None  # closed by the broker (a missing exchange): opened again
            return Answer.refused(f"{type(exc).__name__}: {exc}")
        except EgressRefused as exc:
            return Answer.refused(exc.strerror or str(exc))
        except (aiormq.exceptions.AMQPError, OSError) as exc:
            await self._reset()
            return Answer.refused(f"{type(exc).__name__}: {exc}")
        return Answer.accepted(f"confirmed: {type(confirmed).__name__}", ACKNOWLEDGED)

    async def _reset(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and not connection.is_closed:
            await connection.close()

    async def close(self) -> None:
        await self._reset()
