"""An export upload: the multipart body read as it streams (never whole in memory)
into a local file, refused with 413 the moment it passes the limit, then kept in GridFS
(bucket `import_uploads`) so that whichever importer replica runs the job can read it.

A runner copies the export from GridFS to its scratch directory before reading it (a ZIP
is read from its end, and member by member; a bare JSON file is read again on resume: it
needs a seekable local file).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from bson import Binary, ObjectId
from gridfs import AsyncGridFSBucket
from pymongo import UpdateOne
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from services.importer.jobs import COLLECTION as JOBS
from services.importer.jobs import ENDED
from shared.domain.retention import EPOCH, ExpiredDocuments, remove_files
from shared.kernel.errors import BadRequest, PayloadTooLarge
from shared.kernel.ids import utcnow
from shared.kernel.mongo import Database, Document, Index

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

BUCKET = "import_uploads"
# The indexes GridFS drivers create on first write (the GridFS spec), made at start here.
INDEXES = [
    Index(f"{BUCKET}.chunks", [("files_id", 1), ("n", 1)], {"unique": True}),
    Index(f"{BUCKET}.files", [("filename", 1), ("uploadDate", 1)]),
]
_CHUNK_BYTES = 1024 * 1024
_FETCH_BATCH = 2  # chunks a reply while an upload is copied back from GridFS
# The form's other fields are small: a channel_map of 10,000 entries fits in 1 MiB.
_MAX_FIELD_BYTES = 1024 * 1024
_FIELDS = ("workspace_id", "source", "integration_id", "channel_map", "dry_run")
# The form has six parts at most; a few more are tolerated (a client's extra field), not
# thousands.
_MAX_PARTS = 16
# A part's header line: a Content-Disposition with a long file name fits.
_MAX_HEADER_BYTES = 4096


@dataclass
class Upload:
    """The file part, on local disk; the form's other fields, as text."""

    path: Path
    filename: str | None = None
    size: int = 0
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class _Parts:
    """python-multipart's callbacks: the `file` part to disk, the named fields to memory."""

    def __init__(self, sink: IO[bytes]) -> None:
        self.sink = sink
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.size = 0
        self.files = 0
        self.parts = 0
        self._name: str | None = None
        self._is_file = False
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._value = bytearray()

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda d, s, e: self._add("_header_field", d[s:e]),
            "on_header_value": lambda d, s, e: self._add("_header_value", d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

    def _add(self, name: str, data: bytes) -> None:
        setattr(self, name, getattr(self, name) + data)

    def _begin(self) -> None:
        self.parts += 1
        if self.parts > _MAX_PARTS:
            raise BadRequest(f"the form has more than {_MAX_PARTS} parts", code="invalid_upload")
        self._headers, self._name, self._is_file, self._value = {}, None, False, bytearray()

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def _headers_finished(self) -> None:
        disposition = self._headers.get(b"content-disposition", b"")
        kind, options = parse_options_header(disposition)
        if kind != b"form-data" or b"name" not in options:
            raise BadRequest("a multipart part without a form-data name", code="invalid_upload")
        self._name = options[b"name"].decode("utf-8", "replace")
        self._is_file = self._name == "file"
        if self._is_file:
            self.files += 1
            if self.files > 1:
                raise BadRequest("one export file per upload", code="invalid_upload")
            raw = options.get(b"filename")
            self.filename = raw.decode("utf-8", "replace")[:255] if raw else None

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self.size += end - start
            self.sink.write(data[start:end])
        elif self._name in _FIELDS:
            self._value += data[start:end]
            if len(self._value) > _MAX_FIELD_BYTES:
                raise PayloadTooLarge(
                    f"the field {self._name} is too large", code="field_too_large"
                )

    def _end(self) -> None:
        if self._name in _FIELDS and not self._is_file:
            try:
                self.fields[self._name] = self._value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadRequest(f"{self._name} is not UTF-8", code="invalid_upload") from exc


async def receive(content_type: str | None, body: AsyncIterator[bytes], scratch: Path) -> Upload:
    """The multipart form read into `scratch` as it arrives (the route's body limit,
    `HOOKHUB_IMPORT_MAX_UPLOAD_BYTES`, answers 413 the moment the stream passes it), 400
    `invalid_upload` when it is not a well-formed multipart form with a `file` (nothing
    left on disk). The disk is written from a worker thread, a chunk at a time."""
    kind, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise BadRequest(
            "send the export as multipart/form-data with a `file` part", code="invalid_upload"
        )
    path, sink = await asyncio.to_thread(_scratch_file, scratch)
    try:
        with sink:
            parts = _Parts(sink)
            try:
                parser = MultipartParser(
                    boundary,
                    cast("MultipartCallbacks", parts.callbacks()),
                    max_header_size=_MAX_HEADER_BYTES,
                )
                async for chunk in body:
                    await asyncio.to_thread(parser.write, chunk)
            except FormParserError as exc:
                # python-multipart's word for it (a boundary that is not the content-type's,
                # a header over the limit, ...): the client's body, not our fault.
                raise BadRequest(
                    f"the body is not a well-formed multipart/form-data form: {exc}",
                    code="invalid_upload",
                ) from None
            # Its `finalize` checks nothing: a body cut short would pass as a whole one.
            if parser.state != MultipartState.END:
                raise BadRequest(
                    "the multipart body ends before its closing boundary", code="invalid_upload"
                )
        if parts.files == 0:
            raise BadRequest("the form has no `file` part (the export)", code="invalid_upload")
    except BaseException:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise
    return Upload(path=path, filename=parts.filename, size=parts.size, fields=parts.fields)


def _scratch_file(scratch: Path) -> tuple[Path, IO[bytes]]:
    scratch.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix="upload-", suffix=".zip", dir=scratch)
    return Path(name), os.fdopen(handle, "wb")


async def keep(db: Database, upload: Upload) -> ObjectId:
    """The upload stored in GridFS, a chunk at a time; its file id.

    Written as the GridFS spec lays a file out (`<bucket>.chunks` {files_id, n, data}, then
    the `<bucket>.files` document, which makes it visible), not through PyMongo's upload
    stream: that one gathers up to 48 MB of chunks before inserting them, and held three
    times that at its peak (the importer's RSS during an 82 MiB upload: 239 MB). Here one
    chunk is in memory at a time; `fetch` reads it back two chunks at a time."""
    file_id = ObjectId()
    chunks = db[f"{BUCKET}.chunks"]
    length = 0
    try:
        with await asyncio.to_thread(upload.path.open, "rb") as source:
            n = 0
            while chunk := await asyncio.to_thread(source.read, _CHUNK_BYTES):
                await chunks.insert_one({"files_id": file_id, "n": n, "data": Binary(chunk)})
                length += len(chunk)
                n += 1
        await db[f"{BUCKET}.files"].insert_one(
            {
                "_id": file_id,
                "length": length,
                "chunkSize": _CHUNK_BYTES,
                "uploadDate": utcnow(),
                "filename": upload.filename or "export",
                "metadata": {"size": upload.size},
            }
        )
    except BaseException:
        with contextlib.suppress(Exception):
            await chunks.delete_many({"files_id": file_id})
        raise
    return file_id


async def fetch(db: Database, file_id: Any, scratch: Path) -> Path:
    """The export on local disk (copied from GridFS once per replica and file)."""
    path = scratch / f"export-{file_id}.zip"
    if await asyncio.to_thread(path.exists):
        return path
    partial = path.with_suffix(".part")
    await asyncio.to_thread(scratch.mkdir, parents=True, exist_ok=True)
    stored = await db[f"{BUCKET}.files"].find_one({"_id": file_id})
    if stored is None:
        raise FileNotFoundError(f"the upload {file_id} is not in GridFS")
    # Two chunks a reply, not GridFS's reader's cursor: its replies held up to 30 MB of
    # chunks at once (the importer's RSS rose with the export's size when a job started).
    chunks = db[f"{BUCKET}.chunks"].find(
        {"files_id": file_id}, sort=[("n", 1)], batch_size=_FETCH_BATCH
    )
    length = 0
    with await asyncio.to_thread(partial.open, "wb") as sink:
        async for n, chunk in _numbered(chunks):
            if chunk["n"] != n:
                raise OSError(f"the upload {file_id} lacks its chunk {n}")
            await asyncio.to_thread(sink.write, chunk["data"])
            length += len(chunk["data"])
    if length != stored["length"]:
        raise OSError(
            f"the upload {file_id} holds {length} bytes, its file says {stored['length']}"
        )
    await asyncio.to_thread(partial.replace, path)
    return path


async def _numbered(cursor: AsyncIterator[Any]) -> AsyncIterator[tuple[int, Any]]:
    n = 0
    async for item in cursor:
        yield n, item
        n += 1


async def forget(db: Database, file_id: Any, scratch: Path) -> None:
    """The upload's GridFS file and local copy removed (its job completed)."""
    with contextlib.suppress(Exception):
        await AsyncGridFSBucket(db, bucket_name=BUCKET).delete(file_id)
    await asyncio.to_thread((scratch / f"export-{file_id}.zip").unlink, missing_ok=True)


class EndedJobUploads(ExpiredDocuments):
    """The uploads of failed and cancelled jobs (a completed job's goes at once),
    `HOOKHUB_IMPORT_UPLOAD_RETENTION` after the job ended. The job forgets its upload first
    (`upload.removed_at`; a resume is refused from then on), then the file and this
    replica's local copy go. Read through the jobs: `finished_at` is the clock."""

    def __init__(self, db: Database, keep: timedelta, scratch: Path) -> None:
        super().__init__(
            db[JOBS],
            "finished_at",
            keep,
            where={"status": {"$in": list(ENDED)}, "upload.file_id": {"$exists": True}},
            projection={"_id": 1, "upload.file_id": 1},
        )
        self.name = BUCKET
        self._db = db
        self._scratch = scratch

    async def dispose(self, docs: list[Document], cutoff: datetime) -> dict[str, int]:
        due = {"finished_at": {"$gte": EPOCH, "$lt": cutoff}, "status": {"$in": list(ENDED)}}
        forgotten = [
            UpdateOne(
                {"_id": doc["_id"], "upload.file_id": doc["upload"]["file_id"], **due},
                {"$unset": {"upload.file_id": ""}, "$set": {"upload.removed_at": utcnow()}},
            )
            for doc in docs
        ]
        await self.collection.bulk_write(forgotten, ordered=False)
        # Only those this did forget: one resumed meanwhile keeps its upload.
        still = {"_id": {"$in": [d["_id"] for d in docs]}, "upload.file_id": {"$exists": True}}
        kept = {d["_id"] for d in await self.collection.find(still, {"_id": 1}).to_list()}
        files = [d["upload"]["file_id"] for d in docs if d["_id"] not in kept]
        removed = await remove_files(self._db, BUCKET, files)
        for file_id in files:
            await asyncio.to_thread(
                (self._scratch / f"export-{file_id}.zip").unlink, missing_ok=True
            )
        return removed
