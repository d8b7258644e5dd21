"""A failed or cancelled export import's upload is removed HOOKHUB_IMPORT_UPLOAD_RETENTION
after the job ended; the job then says so and is no longer resumed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from services.importer import jobs, uploads
from services.importer.service import upload_kept
from shared.kernel.errors import Conflict
from shared.kernel.ids import utcnow
from shared.kernel.mongo import Database, ensure_indexes


async def _job(db: Database, status: str, ended: Any, scratch: Path) -> tuple[str, ObjectId]:
    source = scratch / "export.zip"
    source.write_bytes(b"PK" + b"x" * 3000)
    file_id = await uploads.keep(db, uploads.Upload(path=source, filename="export.zip", size=3002))
    (scratch / f"export-{file_id}.zip").write_bytes(b"a local copy")
    doc = jobs.new_job(
        workspace_id="ws_u",
        provider="slack",
        source="export",
        integration_id=None,
        params={},
        upload={"file_id": file_id, "filename": "export.zip", "size": 3002},
    )
    doc.update(status=status, finished_at=ended)
    await db[jobs.COLLECTION].insert_one(doc)
    return doc["_id"], file_id


async def test_an_ended_jobs_upload_goes_after_its_retention(db: Database, tmp_path: Path) -> None:
    await ensure_indexes(db, [*jobs.INDEXES, *uploads.INDEXES])
    long_ago, now = utcnow() - timedelta(days=8), utcnow()
    failed, failed_file = await _job(db, "failed", long_ago, tmp_path)
    cancelled, cancelled_file = await _job(db, "cancelled", long_ago, tmp_path)
    recent, recent_file = await _job(db, "failed", now, tmp_path)
    _, running_file = await _job(db, "running", None, tmp_path)
    sweep = uploads.EndedJobUploads(db, timedelta(days=7), tmp_path)

    removed = await sweep.remove(utcnow(), 100)
    assert removed[uploads.BUCKET] == 2
    assert removed[f"{uploads.BUCKET}.chunks"] == 2
    files = db[f"{uploads.BUCKET}.files"]
    for file_id in (failed_file, cancelled_file):
        assert await files.find_one({"_id": file_id}) is None
        assert not (tmp_path / f"export-{file_id}.zip").exists()
    for file_id in (recent_file, running_file):
        assert await files.find_one({"_id": file_id}) is not None
    doc = await db[jobs.COLLECTION].find_one({"_id": failed})
    assert doc is not None
    assert "file_id" not in doc["upload"] and doc["upload"]["removed_at"] is not None
    assert (await sweep.remove(utcnow(), 100))[uploads.BUCKET] == 0  # each once

    repository = jobs.JobRepository(db, timedelta(seconds=30))
    assert await repository.resume(failed) is None  # however it raced the removal
    with pytest.raises(Conflict) as refused:
        upload_kept(await repository.get(failed) or {})
    assert refused.value.code == "import_upload_removed"
    resumed = await repository.resume(recent)
    assert resumed is not None and resumed["status"] == "queued"
    upload_kept(resumed)
    assert (await db[jobs.COLLECTION].find_one({"_id": cancelled}) or {})["status"] == "cancelled"
