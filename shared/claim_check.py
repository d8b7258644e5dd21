"""Claim check: bodies too large for one Kafka message are stored and referenced.

The envelope then carries `payload_ref` (`gridfs:<bucket>/<id>`) instead of `payload`;
a consumer loads the raw bytes with `load()`. Stored in MongoDB GridFS, so any size fits.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from gridfs import AsyncGridFSBucket

from shared.errors import NotFound
from shared.mongo import Database

BUCKET = "payloads"
_PREFIX = f"gridfs:{BUCKET}/"


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
