"""SQS, SNS, EventBridge, Kinesis and S3 (aiobotocore): one client per endpoint.

Every connection goes through the egress guard's socket factory (aiohttp's, as for HTTP
endpoints), so the address judged is the address connected to. botocore retries nothing:
the endpoint's schedule does. `HOOKHUB_AWS_ENDPOINT_URL` sends every call to an emulator.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from contextlib import AsyncExitStack
from typing import Any, ClassVar

import orjson
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import BotoCoreError, ClientError

from services.delivery.destinations.base import Answer, Message, Surroundings, dig
from services.delivery.destinations.schemas import (
    AwsConfig,
    Config,
    EventBridgeConfig,
    KinesisConfig,
    S3Config,
    SnsConfig,
    SqsConfig,
)
from shared.kernel.egress import guarded_socket_factory

SOURCE = "hookhub"  # EventBridge's `source` (SPEC §21)
# SQS and SNS FIFO's MessageGroupId: 1-128 of these; another key is hashed into them.
_GROUP_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
DEFAULT_GROUP = "hookhub"  # a FIFO queue's group for messages with no key


_session: AioSession | None = None


def session() -> AioSession:
    """The process's one botocore session: its loader keeps the service models and the
    endpoint rules it read. A session of each client's own read and parsed them again for
    every endpoint, 120-300 ms on the event loop each (the delivery consumer held meanwhile);
    with the models kept, a client is made in ~10 ms."""
    global _session
    if _session is None:
        _session = get_session()
    return _session


class AwsDestination:
    """An AWS service's client, made at the first send and kept until the lane closes."""

    service: ClassVar[str]

    def __init__(self, config: Config, surroundings: Surroundings) -> None:
        assert isinstance(config, AwsConfig)
        self.config = config
        self._surroundings = surroundings
        self._exit = AsyncExitStack()
        self._client: Any = None
        self._opening = asyncio.Lock()

    @property
    def address(self) -> str:
        raise NotImplementedError

    async def _opened(self) -> Any:
        if self._client is not None:
            return self._client
        async with self._opening:
            if self._client is None:
                config = self.config
                self._client = await self._exit.enter_async_context(
                    session().create_client(
                        self.service,
                        region_name=config.region,
                        endpoint_url=self._surroundings.aws_endpoint_url,
                        aws_access_key_id=config.access_key_id,
                        aws_secret_access_key=config.secret_access_key,
                        aws_session_token=config.session_token,
                        config=AioConfig(
                            connector_args={
                                "socket_factory": guarded_socket_factory(self._surroundings.policy)
                            },
                            retries={"mode": "standard", "max_attempts": 1},
                            max_pool_connections=32,
                        ),
                    )
                )
        return self._client

    async def send(self, message: Message) -> Answer:
        try:
            client = await self._opened()
            return await self._put(client, message)
        except ClientError as exc:
            return refused_by_aws(exc)
        except BotoCoreError as exc:
            cause = exc.kwargs.get("error")
            return Answer.refused(f"{exc}" + (f" ({cause})" if cause else ""))

    async def _put(self, client: Any, message: Message) -> Answer:
        raise NotImplementedError

    async def close(self) -> None:
        await self._exit.aclose()
        self._client = None


def refused_by_aws(exc: ClientError) -> Answer:
    """The service's own answer: its status, error code and message."""
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    text = f"{error.get('Code', 'Error')}: {error.get('Message', str(exc))}"
    return Answer.refused(text, status, orjson.dumps(error).decode())


def answered(response: dict[str, Any], **shown: Any) -> Answer:
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 200)
    return Answer.accepted(orjson.dumps({k: v for k, v in shown.items() if v}).decode(), status)


def string_attributes(message: Message) -> dict[str, dict[str, str]]:
    """SQS's and SNS's message attributes: the signing headers, as String values."""
    return {
        name: {"DataType": "String", "StringValue": value}
        for name, value in message.attributes().items()
    }


def group_of(message: Message) -> str:
    """A FIFO queue's or topic's MessageGroupId: the ordering key, else the channel."""
    key = message.key or dig(orjson.loads(message.body), "data.channel_id") or DEFAULT_GROUP
    return key if _GROUP_ID.fullmatch(key) else hashlib.sha256(key.encode()).hexdigest()


def fifo_fields(message: Message) -> dict[str, str]:
    # Deduplicated by its webhook-id: a retry of a send that did arrive is dropped by SQS.
    return {"MessageGroupId": group_of(message), "MessageDeduplicationId": message.msg_id}


def signed_text(message: Message) -> bytes:
    """For a destination with no attributes (Kinesis records, EventBridge details): the
    signing headers beside the signed body, as text (SPEC §21)."""
    return orjson.dumps({**message.attributes(), "body": message.body.decode()})


class Sqs(AwsDestination):
    service = "sqs"

    @property
    def address(self) -> str:
        assert isinstance(self.config, SqsConfig)
        return self.config.queue_url

    async def _put(self, client: Any, message: Message) -> Answer:
        assert isinstance(self.config, SqsConfig)
        fields = fifo_fields(message) if self.config.queue_url.endswith(".fifo") else {}
        response = await client.send_message(
            QueueUrl=self.config.queue_url,
            MessageBody=message.body.decode(),
            MessageAttributes=string_attributes(message),
            **fields,
        )
        return answered(
            response,
            MessageId=response.get("MessageId"),
            SequenceNumber=response.get("SequenceNumber"),
        )


class Sns(AwsDestination):
    service = "sns"

    @property
    def address(self) -> str:
        assert isinstance(self.config, SnsConfig)
        return self.config.topic_arn

    async def _put(self, client: Any, message: Message) -> Answer:
        assert isinstance(self.config, SnsConfig)
        fields = fifo_fields(message) if self.config.topic_arn.endswith(".fifo") else {}
        response = await client.publish(
            TopicArn=self.config.topic_arn,
            Message=message.body.decode(),
            MessageAttributes=string_attributes(message),
            **fields,
        )
        return answered(
            response,
            MessageId=response.get("MessageId"),
            SequenceNumber=response.get("SequenceNumber"),
        )


class EventBridge(AwsDestination):
    service = "events"

    @property
    def address(self) -> str:
        assert isinstance(self.config, EventBridgeConfig)
        return f"eventbridge:{self.config.event_bus_name}"

    async def _put(self, client: Any, message: Message) -> Answer:
        assert isinstance(self.config, EventBridgeConfig)
        response = await client.put_events(
            Entries=[
                {
                    "Source": SOURCE,
                    "DetailType": self.config.detail_type or message.event_type,
                    "Detail": signed_text(message).decode(),
                    "EventBusName": self.config.event_bus_name,
                }
            ]
        )
        # A 200 may carry a refused entry: PutEvents fails entries one by one.
        [entry] = response.get("Entries") or [{}]
        if response.get("FailedEntryCount") or not entry.get("EventId"):
            code, why = entry.get("ErrorCode", "Failed"), entry.get("ErrorMessage", "")
            return Answer.refused(f"{code}: {why}", None, orjson.dumps(entry).decode())
        return answered(response, EventId=entry["EventId"])


class Kinesis(AwsDestination):
    service = "kinesis"

    @property
    def address(self) -> str:
        assert isinstance(self.config, KinesisConfig)
        return f"kinesis:{self.config.stream_name}"

    async def _put(self, client: Any, message: Message) -> Answer:
        assert isinstance(self.config, KinesisConfig)
        key = message.key or dig(orjson.loads(message.body), self.config.partition_key_path)
        response = await client.put_record(
            StreamName=self.config.stream_name,
            Data=signed_text(message),
            PartitionKey=(key or message.msg_id)[:256],
        )
        return answered(
            response, ShardId=response.get("ShardId"), SequenceNumber=response.get("SequenceNumber")
        )


class S3(AwsDestination):
    service = "s3"

    @property
    def address(self) -> str:
        assert isinstance(self.config, S3Config)
        return f"s3://{self.config.bucket}/{self.config.key_template}"

    def key(self, message: Message) -> str:
        assert isinstance(self.config, S3Config)
        timestamp = dig(orjson.loads(message.body), "timestamp") or ""
        return self.config.key_template.format(
            workspace=message.workspace_id,
            date=timestamp[:10],
            event_id=message.event_id,
            event_type=message.event_type,
            msg_id=message.msg_id,
        )

    async def _put(self, client: Any, message: Message) -> Answer:
        assert isinstance(self.config, S3Config)
        key = self.key(message)
        response = await client.put_object(
            Bucket=self.config.bucket,
            Key=key,
            Body=message.body,
            ContentType="application/json",
            # x-amz-meta-webhook-id and the others: the object's metadata (SPEC §21).
            Metadata=message.attributes(),
        )
        return answered(response, Key=key, ETag=response.get("ETag"))
