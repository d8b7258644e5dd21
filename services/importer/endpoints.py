"""HTTP routes of imports (SPEC §4, §9): API imports under an integration, export uploads,
and the jobs."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, status
from pydantic import TypeAdapter, ValidationError

from services.importer.jobs import JobRepository
from services.importer.schemas import ApiImportCreate, ChannelMap, ImportJobOut, Status, out
from services.importer.service import ExportForm, ImportService
from services.importer.sources import DEFAULT_EXPORT, exports
from services.importer.uploads import receive
from shared.domain import tenancy
from shared.kernel.errors import BadRequest, Invalid
from shared.kernel.http.app import from_state
from shared.kernel.http.auth import Authenticated
from shared.kernel.http.errors import MANAGEMENT_ERRORS, error_responses
from shared.kernel.http.limits import max_body
from shared.kernel.http.pagination import Page, PageDep
from shared.kernel.ids import MAX_ID_LENGTH, id_pattern, id_problem

router = APIRouter(tags=["imports"], dependencies=[Authenticated], responses=MANAGEMENT_ERRORS)

ServiceDep = Annotated[ImportService, Depends(from_state("import_service", ImportService))]
JobsDep = Annotated[JobRepository, Depends(from_state("import_jobs", JobRepository))]
IntegrationId = Annotated[str, Path(max_length=200)]
_CHANNEL_MAP: TypeAdapter[dict[str, str]] = TypeAdapter(ChannelMap)
JobId = Annotated[str, Path(max_length=200)]


@router.post(
    "/api/integrations/{integration_id}/import",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ImportJobOut,
    responses=error_responses(404, 409, 422),
)
async def import_from_api(
    integration_id: IntegrationId, body: ApiImportCreate, service: ServiceDep
) -> ImportJobOut:
    """Queue an import of Slack or Discord history through the provider's API. 202 with
    the job: follow it at `GET /api/imports/{id}`."""
    return out(await service.create_api_import(integration_id, body))


@router.post(
    "/api/imports",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ImportJobOut,
    responses=error_responses(400, 404, 413, 422),
    dependencies=[max_body("import_max_upload_bytes")],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["workspace_id", "file"],
                        "properties": {
                            "workspace_id": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": MAX_ID_LENGTH,
                                "pattern": id_pattern(),
                            },
                            "source": {
                                "type": "string",
                                "enum": list(exports()),
                                "default": DEFAULT_EXPORT,
                                "description": "what the file is: "
                                + "; ".join(f"{k}: {v.description}" for k, v in exports().items()),
                            },
                            "file": {"type": "string", "format": "binary"},
                            "integration_id": {
                                "type": "string",
                                "description": "the integration the export is imported for "
                                "(its account in the envelope ids, its mappings); by default "
                                "the workspace's of the export's team or guild, or its only "
                                "(else default) integration of the provider",
                            },
                            "channel_map": {
                                "type": "string",
                                "description": "a JSON object: channel id or name → chat "
                                "channel id",
                            },
                            "dry_run": {"type": "string", "enum": ["true", "false"]},
                        },
                    }
                }
            },
        }
    },
)
async def import_export(request: Request, service: ServiceDep) -> ImportJobOut:
    """Upload an export (multipart): Slack's export ZIP (`source=slack_export`, the
    default), Telegram Desktop's `result.json` (`telegram_export`) or DiscordChatExporter's
    JSON (`discord_export`), bare or zipped. It is checked before any job exists: a file
    that is not that export, unsafe member names and zip bombs are refused with a 4xx; a
    body over `HOOKHUB_IMPORT_MAX_UPLOAD_BYTES` with 413 as soon as it passes it."""
    upload = await receive(
        request.headers.get("content-type"),
        request.stream(),
        service.scratch,
    )
    try:
        workspace_id = upload.fields.get("workspace_id", "").strip()
        if not workspace_id:
            raise Invalid("workspace_id is required", code="invalid_request")
        problem = id_problem(workspace_id)
        if problem is not None:
            raise Invalid(f"workspace_id {problem}", code="invalid_request")
        tenancy.may_create_in(workspace_id)
        form = ExportForm(
            source=_source(upload.fields.get("source")),
            integration_id=upload.fields.get("integration_id", "").strip()[:200] or None,
            channel_map=_channel_map(upload.fields.get("channel_map")),
            dry_run=_flag(upload.fields.get("dry_run")),
        )
    except BaseException:
        upload.discard()
        raise
    return out(await service.create_export_import(workspace_id, upload, form))


def _source(raw: str | None) -> str:
    source = (raw or "").strip() or DEFAULT_EXPORT
    known = exports()
    if source not in known:
        raise Invalid(
            f"source is one of {', '.join(known)} ("
            + "; ".join(f"{name}: {kind.description}" for name, kind in known.items())
            + f"), not {source[:100]!r}",
            code="invalid_source",
        )
    return source


def _channel_map(raw: str | None) -> dict[str, str]:
    """The form field, held to the same rules as an API import's `channel_map`."""
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("channel_map is not JSON", code="invalid_request") from exc
    try:
        return _CHANNEL_MAP.validate_python(value)
    except ValidationError as exc:
        raise Invalid(
            "channel_map is a JSON object of channel id or name → chat channel id",
            code="invalid_request",
        ) from exc


def _flag(raw: str | None) -> bool:
    if raw is None or raw == "":
        return False
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise Invalid("dry_run is true or false", code="invalid_request")


@router.get("/api/imports", response_model=Page[ImportJobOut])
async def list_imports(
    jobs: JobsDep,
    page: PageDep,
    workspace_id: Annotated[str | None, Query(max_length=200)] = None,
    integration_id: Annotated[str | None, Query(max_length=200)] = None,
    status: Status | None = None,
) -> Page[ImportJobOut]:
    docs, next_cursor = await jobs.page(
        limit=page.limit,
        cursor=page.cursor,
        workspace_id=workspace_id,
        integration_id=integration_id,
        status=status,
    )
    return Page(data=[out(d) for d in docs], next_cursor=next_cursor)


@router.get("/api/imports/{job_id}", response_model=ImportJobOut, responses=error_responses(404))
async def get_import(job_id: JobId, service: ServiceDep) -> ImportJobOut:
    return out(await service.get(job_id))


@router.post(
    "/api/imports/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ImportJobOut,
    responses=error_responses(404, 409),
)
async def cancel_import(job_id: JobId, service: ServiceDep) -> ImportJobOut:
    """A queued job is cancelled at once; a running one stops within a few seconds
    (`cancel_requested` until then). What was imported stays; `resume` goes on."""
    return out(await service.cancel(job_id))


@router.post(
    "/api/imports/{job_id}/resume",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ImportJobOut,
    responses=error_responses(404, 409),
)
async def resume_import(job_id: JobId, service: ServiceDep) -> ImportJobOut:
    """A cancelled or failed job queued again; it goes on from its checkpoint."""
    return out(await service.resume(job_id))
