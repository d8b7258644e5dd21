"""Kafka (aiokafka): one producer per endpoint, `acks=all`, keyed for per-key order.

The bootstrap brokers are judged by the egress policy before the producer starts, and so
is every broker the cluster's metadata names (what the producer then connects to) before a
record is sent to it. The signing headers travel as record headers.
"""

from __future__ import annotations

import asyncio
import ssl

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

from services.delivery.destinations.base import ACKNOWLEDGED, Answer, Message, Surroundings, dig
from services.delivery.destinations.schemas import Config, KafkaConfig
from shared.kernel.egress import EgressRefused, allowed_addresses


def _host_port(broker: str) -> tuple[str, int]:
    host, _, port = broker.rpartition(":")
    return host.strip("[]"), int(port)


async def _handshake(broker: str, context: ssl.SSLContext) -> None:
    """Raises the TLS handshake's own error with `broker` when that is why the producer
    could not start: aiokafka logs it and raises only "Unable to bootstrap", and the
    attempt log should say that the certificate was refused (a private CA not given)."""
    host, port = _host_port(broker)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=context), 5)
    except ssl.SSLError:
        raise
    except (OSError, TimeoutError):
        return  # not the handshake: aiokafka's own error says it
    writer.close()


class Kafka:
    def __init__(self, config: Config, surroundings: Surroundings) -> None:
        assert isinstance(config, KafkaConfig)
        self.config = config
        self._policy = surroundings.policy
        self._producer: AIOKafkaProducer | None = None
        self._judged: set[tuple[str, int]] = set()  # brokers the policy allowed
        self._opening = asyncio.Lock()

    @property
    def address(self) -> str:
        return f"kafka://{','.join(self.config.brokers)}/{self.config.topic}"

    async def _judge(self, host: str, port: int) -> None:
        if (host, port) not in self._judged:
            await allowed_addresses(host, port, self._policy)
            self._judged.add((host, port))

    async def _opened(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._opening:
            if self._producer is None:
                for broker in self.config.brokers:
                    await self._judge(*_host_port(broker))
                config = self.config
                tls = config.security_protocol in ("SSL", "SASL_SSL")
                context = create_ssl_context(cadata=config.ca_certificate) if tls else None
                producer = AIOKafkaProducer(
                    bootstrap_servers=config.brokers,
                    client_id="hookhub",
                    acks="all",
                    security_protocol=config.security_protocol,
                    ssl_context=context,
                    sasl_mechanism=config.sasl_mechanism or "PLAIN",
                    sasl_plain_username=config.sasl_username,
                    sasl_plain_password=config.sasl_password,
                )
                try:
                    await producer.start()
                except KafkaError:
                    await producer.stop()
                    if context is not None:
                        await _handshake(config.brokers[0], context)
                    raise
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
        return self._producer

    async def send(self, message: Message) -> Answer:
        try:
            producer = await self._opened()
            for broker in producer.client.cluster.brokers():
                await self._judge(broker.host, broker.port)
            key = message.key or dig(orjson.loads(message.body), self.config.key_path)
            sent = await producer.send_and_wait(
                self.config.topic,
                message.body,
                key=key.encode() if key is not None else None,
                headers=[(name, value.encode()) for name, value in message.attributes().items()],
            )
        except EgressRefused as exc:
            return Answer.refused(exc.strerror or str(exc))
        except (KafkaError, OSError) as exc:
            return Answer.refused(f"{type(exc).__name__}: {exc}")
        shown = {"topic": sent.topic, "partition": sent.partition, "offset": sent.offset}
        return Answer.accepted(orjson.dumps(shown).decode(), ACKNOWLEDGED)

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
