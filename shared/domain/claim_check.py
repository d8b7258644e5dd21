"""Claim check: bodies too large for one Kafka message are stored and referenced.

The envelope then carries `payload_ref` (`gridfs:<bucket>/<id>`) instead of `payload`;
a consumer loads the raw bytes with `load()`. Stored in MongoDB GridFS, so any size fits.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog
from aiokafka.errors import KafkaError
from bson import ObjectId
from bson.errors import InvalidId
from gridfs import AsyncGridFSBucket

from shared.domain.retention import EPOCH, LEASES, ExpiredDocuments, remove_files
from shared.kernel.errors import NotFound
from shared.kernel.kafka import topic_offsets
from shared.kernel.mongo import Database, Document, Index
from shared.kernel.settings import Settings

log = structlog.get_logger(__name__)

BUCKET = "payloads"
_PREFIX = f"gridfs:{BUCKET}/"
# The GridFS spec's indexes, and when each body was stored (retention reads by it).
INDEXES = [
    Index(f"{BUCKET}.chunks", [("files_id", 1), ("n", 1)], {"unique": True}),
    Index(f"{BUCKET}.files", [("filename", 1), ("uploadDate", 1)]),
    Index(f"{BUCKET}.files", [("uploadDate", 1)]),
]


async def store(db: Database, body: bytes, *, filename: str, metadata: dict[str, Any]) -> str:
    bucket = AsyncGridFSBucket(db, bucket_name=BUCKET)
    file_id = await bucket.upload_from_stream(filename, body, metadata=metadata)
    return _PREFIX + str(file_id)


async def load(db: Database, ref: str) -> bytes:
    if not ref.startswith(_PREFIX):
        raise NotFound(f"not a claim-check reference: {ref}")
    try:
        file_id = ObjectId(ref.removeprefix(_PREFIX))
    except InvalidId as exc:
        raise NotFound(f"not a claim-check reference: {ref}") from exc
    stream = await AsyncGridFSBucket(db, bucket_name=BUCKET).open_download_stream(file_id)
    data: bytes = await stream.read()
    return data


class ReadBodies(ExpiredDocuments):
    """Bodies removed `HOOKHUB_CLAIM_CHECK_RETENTION` after they were received, and never
    before every consumer group of the topic has read their records (or the records left
    the log): worked out from the groups' committed offsets, not a reference count.

    A body is stored before its envelope is published, so its record's offset is unknown.
    But a record is acknowledged within the publish timeout or never written, so every body
    stored before `t - timeout` has its record (if any) below the partitions' ends as seen
    at `t`. Each pass notes the ends (a mark); once every group is past a mark, bodies
    stored before its time less the timeout are no longer needed by any consumer. The
    marks are kept in `retention_leases` beside the lease, so whichever replica sweeps next
    goes on from them. A dead-lettered envelope's body is kept for the retention alone.
    """

    MAX_MARKS = 1000
    ASK_EVERY = timedelta(seconds=10)

    def __init__(self, db: Database, settings: Settings, topic: str) -> None:
        super().__init__(db[f"{BUCKET}.files"], "uploadDate", settings.claim_check_retention)
        self.name = BUCKET
        self._db = db
        self._marks = db[LEASES]
        self._settings = settings
        self._topic = topic
        self._asked: tuple[datetime, datetime] | None = None
        # A record is acknowledged within the publish timeout of its body being stored; the
        # rest allows for the clocks of the gateway and of this process to differ.
        self._lag = timedelta(seconds=settings.kafka_publish_timeout_seconds + 30)

    async def cutoff(self, now: datetime) -> datetime:
        # Kafka is asked once a pass (a pass asks for the cutoff on every batch and after).
        if self._asked is None or now - self._asked[0] > self.ASK_EVERY:
            self._asked = (now, await self._read_before(now))
        return min(now - self.keep, self._asked[1])

    async def _read_before(self, now: datetime) -> datetime:
        """Bodies stored before this are no longer needed by any consumer."""
        key = f"{self.name}:marks"
        state = await self._marks.find_one({"_id": key}) or {}
        read_before: datetime = state.get("read_before", EPOCH)
        marks: list[Document] = state.get("marks", [])
        try:
            offsets = await topic_offsets(self._settings, self._topic)
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("claim_check_offsets_unavailable", error=repr(exc))
            return read_before
        marks.append({"at": now, "ends": {str(p): o for p, o in offsets.ends.items()}})
        passed = [i for i, mark in enumerate(marks) if offsets.past(_ends(mark))]
        if passed:
            newest = passed[-1]
            read_before = max(read_before, marks[newest]["at"] - self._lag)
            marks = marks[newest + 1 :]
        # The oldest go first: a later mark that is passed covers them too.
        marks = marks[-self.MAX_MARKS :]
        await self._marks.update_one(
            {"_id": key}, {"$set": {"marks": marks, "read_before": read_before}}, upsert=True
        )
        return read_before

    async def dispose(self, docs: list[Document], cutoff: datetime) -> dict[str, int]:
        # Nothing refers to a body once its record is read, so the condition is not read
        # again: the files go with their chunks.
        return await remove_files(self._db, BUCKET, [d["_id"] for d in docs])


def _ends(mark: Document) -> dict[int, int]:
    return {int(partition): offset for partition, offset in mark["ends"].items()}
