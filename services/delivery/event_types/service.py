"""Event type logic: who owns a type (global or a workspace's own), whose a name means for
a caller, and the checks a schema and its examples pass before they are stored."""

from __future__ import annotations

from typing import Any

import orjson
from pymongo.errors import DuplicateKeyError

from services.delivery.event_types.catalog import checked
from services.delivery.event_types.repository import EventTypeRepository, live_key
from services.delivery.event_types.schemas import EventTypeCreate, EventTypeUpdate
from shared.domain import tenancy
from shared.kernel.errors import Conflict, Forbidden, Invalid, NotFound
from shared.kernel.ids import new_id, utcnow
from shared.kernel.mongo import Document


def _owner(workspace_id: str | None) -> str:
    return "global" if workspace_id is None else f"of workspace {workspace_id}"


def schema_of(doc: Document) -> dict[str, Any]:
    schema: dict[str, Any] = orjson.loads(doc["schema_json"])
    return schema


def examples_of(doc: Document) -> list[dict[str, Any]]:
    examples: list[dict[str, Any]] = orjson.loads(doc["examples_json"])
    return examples


class EventTypeService:
    def __init__(self, repository: EventTypeRepository) -> None:
        self._repository = repository

    async def create(self, body: EventTypeCreate) -> Document:
        if body.workspace_id is None and tenancy.current() is not None:
            raise Forbidden(
                "a global event type belongs to no workspace: only the admin token creates "
                "one (give workspace_id to create the workspace's own)",
                code="admin_only",
            )
        checked(body.json_schema, body.examples)
        now = utcnow()
        doc: Document = {
            "_id": new_id("etype"),
            "name": body.name,
            "workspace_id": body.workspace_id,
            "live_key": live_key(body.workspace_id, body.name),
            "description": body.description,
            # As JSON text: a schema's keys start with `$` and an example's may hold dots,
            # which MongoDB does not take as field names everywhere.
            "schema_json": orjson.dumps(body.json_schema).decode(),
            "examples_json": orjson.dumps(body.examples).decode(),
            "deprecated": body.deprecated,
            "enforce": body.enforce,
            "created_at": now,
            "updated_at": now,
            "deleted_at": None,
        }
        try:
            await self._repository.insert(doc)
        except DuplicateKeyError:
            raise Conflict(
                f"event type {body.name} ({_owner(body.workspace_id)}) exists already: "
                "PATCH it, or DELETE it first",
                code="event_type_exists",
            ) from None
        return doc

    async def get(self, name: str, workspace_id: str | None) -> Document:
        """`name` as the workspace sees it (its own, else the global one); a key's own
        workspace whatever `workspace_id` asks; the admin without one: the global type."""
        workspace = tenancy.current() or workspace_id
        found = await self._repository.named(workspace, name) if workspace else None
        found = found or await self._repository.named(None, name)
        if found is None:
            raise NotFound(f"event type {name} not found")
        return found

    async def _own(self, name: str, workspace_id: str | None) -> Document:
        """The type a change applies to: the caller's workspace's own (the admin's: that
        of `workspace_id`, else the global one). A workspace's key cannot change a global
        type: it may shadow it with its own."""
        confined = tenancy.current()
        workspace = confined or workspace_id
        found = await self._repository.named(workspace, name)
        if found is not None:
            return found
        if confined is not None and await self._repository.named(None, name) is not None:
            raise Forbidden(
                f"event type {name} is a global one: only the admin token changes it (create "
                "this workspace's own of the same name to shadow it)",
                code="admin_only",
            )
        raise NotFound(f"event type {name} not found")

    async def update(self, name: str, workspace_id: str | None, body: EventTypeUpdate) -> Document:
        current = await self._own(name, workspace_id)
        given = body.model_dump(exclude_unset=True)
        if "json_schema" in given and given["json_schema"] is None:
            raise Invalid("schema cannot be null: leave it out to keep it", code="invalid_schema")
        fields: dict[str, Any] = {
            key: value for key, value in given.items() if key not in ("json_schema", "examples")
        }
        if "json_schema" in given or "examples" in given:
            schema = given["json_schema"] if "json_schema" in given else schema_of(current)
            examples = given["examples"] if "examples" in given else examples_of(current)
            checked(schema, examples)  # a new schema is checked against the examples kept
            fields["schema_json"] = orjson.dumps(schema).decode()
            fields["examples_json"] = orjson.dumps(examples).decode()
        if not fields:
            return current
        doc = await self._repository.change(current["_id"], fields)
        if doc is None:
            raise NotFound(f"event type {name} not found")
        return doc

    async def delete(self, name: str, workspace_id: str | None) -> Document:
        current = await self._own(name, workspace_id)
        doc = await self._repository.remove(current["_id"])
        if doc is None:
            raise NotFound(f"event type {name} not found")
        return doc

    async def page(
        self, workspace_id: str | None, *, limit: int, cursor: str | None
    ) -> tuple[list[Document], str | None]:
        """What a workspace sees: its own types and the global ones it does not shadow
        (a key's own workspace whatever `workspace_id` asks); the admin without one: every
        type, global and every workspace's."""
        workspace = tenancy.current() or workspace_id
        docs, next_cursor = await self._repository.view(workspace, limit=limit, cursor=cursor)
        if workspace is not None:
            own = await self._repository.own_names(workspace)
            docs = [d for d in docs if d.get("workspace_id") is not None or d["name"] not in own]
        return docs, next_cursor
