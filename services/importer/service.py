"""Import jobs as the API makes them (checked before any job exists) and as the runner
opens them (their source, their provider, and where each conversation goes)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import structlog

from services.importer import uploads
from services.importer.jobs import JobRepository, new_job
from services.importer.runner import Target
from services.importer.schemas import ApiImportCreate
from services.importer.sources import DEFAULT_EXPORT, ExportSource, exports
from shared.domain.integrations.model import IntegrationSnapshot
from shared.domain.mappings import MappingRepository
from shared.kernel.errors import Conflict, Invalid, NotFound
from shared.kernel.mongo import Database, Document
from shared.kernel.settings import ImporterSettings
from shared.providers.catalog import CATALOG, NETWORKS, networks_importing
from shared.providers.chat import ChatProvider
from shared.providers.connections import Connections
from shared.providers.exports import ExportLimits
from shared.providers.history import Conversation
from shared.providers.networks import ApiImport, ExportKind, Source

log = structlog.get_logger(__name__)

# The account of an export's envelope ids when neither the file nor an integration names
# one (a Slack export without a team, a Telegram export into a workspace without a bot).
EXPORT_ACCOUNT = "export"


@dataclass(frozen=True)
class ExportForm:
    """`POST /api/imports`'s fields besides the file."""

    source: str = DEFAULT_EXPORT
    integration_id: str | None = None
    channel_map: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False


# A conversation id that may key the job's checkpoint in MongoDB (never `$`, never empty):
# Slack's and Discord's ids, a Matrix room id (`!opaque:server.name`, whose `!`, `:` and
# `.` a stored document's keys may hold: the checkpoint is written and read whole), and a
# Google Chat space's name (`spaces/AAAA…`).
_USABLE_ID = re.compile(
    r"^([A-Za-z0-9_-]{1,100}|![A-Za-z0-9._=-]{1,100}:[A-Za-z0-9.:-]{1,200}"
    r"|spaces/[A-Za-z0-9_-]{1,100})$"
)


class ImportService:
    def __init__(
        self,
        *,
        settings: ImporterSettings,
        db: Database,
        jobs: JobRepository,
        connections: Connections,
        mappings: MappingRepository,
    ) -> None:
        self._settings = settings
        self._db = db
        self._jobs = jobs
        self._connections = connections
        self._mappings = mappings

    @property
    def limits(self) -> ExportLimits:
        s = self._settings
        return ExportLimits(
            max_uncompressed_bytes=s.import_max_uncompressed_bytes,
            max_ratio=s.import_max_ratio,
            max_members=s.import_max_members,
        )

    # -- the API ------------------------------------------------------------------------

    async def create_api_import(self, integration_id: str, body: ApiImportCreate) -> Document:
        integration = await self._connections.integration(integration_id)
        # The networks whose channels' history an import reads through their API.
        importable = networks_importing()
        network = NETWORKS.get(integration.provider)
        if network is None:
            raise Invalid(
                f"{integration.provider} integrations hold no chat history; these do: "
                + ", ".join(importable),
                code="not_a_chat_integration",
            )
        if integration.provider not in importable:
            raise Invalid(network.no_history, code="no_history")
        refusal = network.import_refusal(integration)
        if refusal is not None:
            raise Invalid(refusal, code="missing_setting")
        if not self._connections.connected(integration):
            raise Conflict(
                f"the integration is {integration.status}: connect it first",
                code="integration_not_connected",
            )
        params = body.params()
        # The lists some networks' imports take besides `channel_ids` (Discord's `guild_ids`).
        for name in {name for other in NETWORKS.values() for name in other.import_params}:
            if params[name] and name not in network.import_params:
                raise Invalid(f"{name} is for {_taking(name)} imports", code="invalid_request")
        if not body.channel_ids and not body.guild_ids:
            raise Invalid("name the channels to import (channel_ids)", code="invalid_request")
        job = new_job(
            workspace_id=integration.workspace_id,
            provider=integration.provider,
            source="api",
            integration_id=integration.id,
            params=params,
        )
        await self._jobs.insert(job)
        return job

    async def create_export_import(
        self,
        workspace_id: str,
        upload: uploads.Upload,
        form: ExportForm,
    ) -> Document:
        """The upload is checked as the export its `source` says (refused → 4xx, nothing
        kept), its integration found, then it is kept in GridFS for whichever replica runs
        the job."""
        kind = exports()[form.source]
        try:
            account, conversations = await asyncio.to_thread(
                _checked, kind, upload.path, self.limits
            )
            integration = await self._export_integration(
                workspace_id, kind.provider, account, conversations, form.integration_id
            )
            file_id = await uploads.keep(self._db, upload)
        finally:
            upload.discard()
        named = NETWORKS[kind.provider].account_field
        job = new_job(
            workspace_id=workspace_id,
            provider=kind.provider,
            source="export",
            integration_id=integration.id if integration else None,
            params={"channel_map": form.channel_map, "dry_run": form.dry_run},
            upload={
                "file_id": file_id,
                "filename": upload.filename,
                "size": upload.size,
                "source": form.source,
                # The account of every envelope id (shared.domain.message_map.inbound_message_id),
                # as live sync has it: the integration's, else the file's, else `export`.
                "account": _account(integration) if integration else account or EXPORT_ACCOUNT,
                **({named: account} if named else {}),
                "conversations": len(conversations),
            },
        )
        await self._jobs.insert(job)
        return job

    async def _export_integration(
        self,
        workspace_id: str,
        provider: str,
        account: str | None,
        conversations: list[str],
        integration_id: str | None,
    ) -> IntegrationSnapshot | None:
        """The integration an export is imported for (its mappings say where channels go,
        its account is in the envelope ids, the imported messages enter its message map):

        - the one named by `integration_id`, of this workspace and provider;
        - else the workspace's integration of the export's account (a Slack team; a Discord
          guild connected through OAuth). A Slack export without one has none;
        - else (a Telegram export names no bot; a Discord server's bot-token integration's
          account is the bot) the workspace's only integration of the provider, or the one
          that maps one of the export's conversations, or its default one;
        - several and none of these: refused, naming them (`integration_required`)."""
        if integration_id:
            return await self._named_integration(workspace_id, provider, account, integration_id)
        if account:
            found = await self._connections.integration_for_account(workspace_id, provider, account)
            if found is not None or NETWORKS[provider].export_account_is_integrations:
                return found
        candidates = await self._connections.integrations_of(workspace_id, provider)
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        by_id = {c.id: c for c in candidates}
        mapping = await self._mappings.integrations_mapping(list(by_id), conversations)
        defaults = [c.id for c in candidates if c.is_default]
        for chosen in (mapping, defaults):
            if len(chosen) == 1:
                return by_id[chosen[0]]
        raise Invalid(
            f"the workspace has {len(candidates)} {provider} integrations "
            f"({', '.join(by_id)}): name the one the export is for with integration_id",
            code="integration_required",
        )

    async def _named_integration(
        self, workspace_id: str, provider: str, account: str | None, integration_id: str
    ) -> IntegrationSnapshot:
        integration = await self._connections.integration(integration_id)
        if integration.workspace_id != workspace_id or integration.provider != provider:
            raise Invalid(
                f"integration {integration_id} is not a {provider} integration of {workspace_id}",
                code="integration_mismatch",
            )
        network = NETWORKS[provider]
        if (
            network.export_account_is_integrations
            and account
            and integration.account_id not in (None, account)
        ):
            # "the Slack team T1": the account as the upload's field names it.
            what = (network.account_field or "account").removesuffix("_id")
            raise Invalid(
                f"the export is of the {CATALOG[provider].name} {what} {account}, "
                f"integration {integration_id} of {integration.account_id}",
                code="integration_mismatch",
            )
        return integration

    async def get(self, job_id: str) -> Document:
        doc = await self._jobs.get(job_id)
        if doc is None:
            raise NotFound(f"import {job_id} not found", code="import_not_found")
        return doc

    async def cancel(self, job_id: str) -> Document:
        doc = await self.get(job_id)
        if doc["status"] not in ("queued", "running"):
            raise Conflict(f"the import is {doc['status']}", code="import_not_running")
        return (await self._jobs.request_cancel(job_id)) or await self.get(job_id)

    async def resume(self, job_id: str) -> Document:
        doc = await self.get(job_id)
        if doc["status"] not in ("cancelled", "failed"):
            raise Conflict(
                f"the import is {doc['status']}: only a cancelled or failed import resumes",
                code="import_not_resumable",
            )
        upload_kept(doc)
        resumed = await self._jobs.resume(job_id)
        if resumed is None:  # it changed meanwhile: retention took its upload, or a resume
            upload_kept(doc := await self.get(job_id))
        return resumed or doc

    # -- the runner ---------------------------------------------------------------------

    async def completed(self, doc: Document) -> None:
        """A completed export job's upload is deleted (a failed or cancelled one is kept:
        it may be resumed)."""
        upload = doc.get("upload")
        if upload:
            await uploads.forget(self._db, upload["file_id"], self.scratch)

    async def open_job(
        self, doc: Document
    ) -> tuple[Source, ChatProvider, list[Target], list[dict[str, Any]]]:
        params = doc.get("params") or {}
        integration = None
        if doc.get("integration_id"):
            integration = await self._connections.integration(doc["integration_id"])
        source = await self._source(doc, params, integration)
        try:
            provider = self._connections.providers[source.provider]
            conversations = await source.conversations()
            targets, skipped = await self._targets(
                conversations, params.get("channel_map") or {}, integration
            )
        except BaseException:
            await source.close()
            raise
        return source, provider, targets, skipped

    async def _source(
        self, doc: Document, params: dict[str, Any], integration: IntegrationSnapshot | None
    ) -> Source:
        oldest, latest = _day(params.get("start_date")), _day(params.get("end_date"), end=True)
        if doc["source"] == "export":
            upload = doc["upload"]
            kind = exports()[upload.get("source") or DEFAULT_EXPORT]
            path = await uploads.fetch(self._db, upload["file_id"], self.scratch)
            export = await asyncio.to_thread(kind.open, path, self.limits)
            # Jobs made before `upload.account` was kept: as they were made.
            account = (
                upload.get("account")
                or (integration.account_id if integration else None)
                or upload.get("team_id")
                or EXPORT_ACCOUNT
            )
            return ExportSource(export, account)
        assert integration is not None
        return await NETWORKS[integration.provider].api_source(
            self._connections.providers[integration.provider],
            self._connections,
            ApiImport(integration, params, oldest, latest),
        )

    @property
    def scratch(self) -> Path:
        return self._settings.import_scratch_dir or (self._settings.data_dir / "imports")

    async def _targets(
        self,
        conversations: list[Conversation],
        channel_map: dict[str, str],
        integration: IntegrationSnapshot | None,
    ) -> tuple[list[Target], list[dict[str, Any]]]:
        """`channel_map` (by external id, the id as the export writes it, name or #name)
        first, else the integration's mapping of the channel; a conversation with neither is
        skipped and reported. The target says which decided (`matched`)."""
        mapped: dict[str, Document] = {}
        if integration is not None:
            for live in await self._mappings.inbound_of(integration.id):
                mapped[live["external_channel_id"]] = live
        targets: list[Target] = []
        skipped: list[dict[str, Any]] = []
        for conversation in conversations:
            if not _USABLE_ID.match(conversation.id):
                # Ids key the job's checkpoint in MongoDB: a forged one is not one of Slack's.
                skipped.append(
                    {
                        "external_channel_id": conversation.id[:200],
                        "name": conversation.name[:200],
                        "reason": "the conversation's id is not a provider's channel id",
                    }
                )
                continue
            key = next(
                (
                    key
                    for key in (
                        conversation.id,
                        *conversation.aliases,
                        conversation.name,
                        "#" + conversation.name,
                    )
                    if channel_map.get(key)
                ),
                None,
            )
            mapping = mapped.get(conversation.id)
            if key is not None:
                channel_id = channel_map[key]
                mapping_id = (
                    mapping["_id"] if mapping and mapping["channel_id"] == channel_id else None
                )
                targets.append(Target(conversation, channel_id, mapping_id, f"channel_map:{key}"))
            elif mapping is not None:
                targets.append(
                    Target(conversation, mapping["channel_id"], mapping["_id"], "mapping")
                )
            else:
                skipped.append(
                    {
                        "external_channel_id": conversation.id,
                        "name": conversation.name,
                        "reason": "neither channel_map nor a mapping names a chat channel",
                    }
                )
        return targets, skipped


def _checked(kind: ExportKind, path: Path, limits: ExportLimits) -> tuple[str | None, list[str]]:
    """The export checked whole (ExportRefused else): the account it names (Slack team,
    Discord guild; None for Telegram) and its conversations' ids."""
    export = kind.open(path, limits)
    try:
        return export.account, [conversation.id for conversation in export.conversations]
    finally:
        export.close()


def _taking(param: str) -> str:
    """The networks whose API imports take `param`, by their names."""
    return ", ".join(
        CATALOG[name].name for name, network in NETWORKS.items() if param in network.import_params
    )


def _account(integration: IntegrationSnapshot) -> str:
    """An integration's account as live sync puts it in envelope ids."""
    return integration.account_id or integration.id


def _day(value: str | None, end: bool = False) -> datetime | None:
    """A job's start_date|end_date (ISO date or date-time) as a moment; an end date of a
    day includes the whole day."""
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return datetime.combine(date.fromisoformat(value), time.max if end else time.min, UTC)
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def upload_kept(doc: Document) -> None:
    if (doc.get("upload") or {}).get("removed_at"):
        raise Conflict(
            "the upload of this import was removed after HOOKHUB_IMPORT_UPLOAD_RETENTION; "
            "upload the export again to import it",
            code="import_upload_removed",
        )
