"""What an audit entry says (shared.domain.audit): every route of every service that changes
something has a derivation, field names and never values, the workspace an entry is
attributed to; and the retention index, whose expiry follows the setting."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute

from services.cli import load_definition
from shared.domain import audit, tenancy
from shared.kernel.http.auth import READS
from shared.kernel.ids import new_id
from shared.kernel.mongo import Database, ensure_indexes, paginate
from shared.kernel.settings import SERVICE_PORTS, Settings

AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _changing_routes() -> list[tuple[str, str]]:
    routes = []
    for service in SERVICE_PORTS:
        for router in load_definition(service).routers:
            for route in router.routes:
                if isinstance(route, APIRoute):
                    routes += [(m, route.path) for m in sorted(set(route.methods or ()) - READS)]
    return routes


def test_every_route_that_changes_something_says_what_it_changes() -> None:
    """A route added later must say what it changes, here, or say why it is not audited
    (an explicit None in `audit.ROUTES`): it cannot go unaudited by default."""
    routes = _changing_routes()
    assert len(routes) >= 30
    unnamed = []
    for method, template in routes:
        try:
            plan = audit.plan(method, template)
        except audit.UnknownRoute as exc:
            unnamed.append(str(exc))
            continue
        if plan is None:
            assert (method, template) in audit.ROUTES
            continue
        assert plan.resource_type in audit.RESOURCE_TYPES.values(), (method, template)
        if plan.id_from == "path":
            assert "{" + plan.id_name + "}" in template, (method, template)
    assert unnamed == []
    assert audit.plan("POST", "/api/events") is None  # the data plane: see audit.ROUTES


@pytest.mark.parametrize(
    ("method", "template", "expected"),
    [
        ("POST", "/api/outgoing-webhooks", ("outgoing_webhook", "create", "answer", "id")),
        (
            "DELETE",
            "/api/workspaces/{workspace_id}/api-keys/{key_id}",
            ("api_key", "delete", "path", "key_id"),
        ),
        (
            "POST",
            "/api/outgoing-webhooks/{endpoint_id}/rotate-secret",
            ("outgoing_webhook", "rotate", "path", "endpoint_id"),
        ),
        (
            "POST",
            "/api/workspaces/{workspace_id}/portal-sessions/expire-all",
            ("portal_session", "expire-all", "none", "id"),
        ),
        ("PUT", "/api/providers/{provider}", ("provider_app", "update", "path", "provider")),
    ],
)
def test_a_route_s_shape_says_what_it_changes(
    method: str, template: str, expected: tuple[str, str, str, str]
) -> None:
    plan = audit.plan(method, template)
    assert plan is not None
    assert (plan.resource_type, plan.action, plan.id_from, plan.id_name) == expected


@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("POST", "/api/widgets"),  # no such resource type
        ("POST", "/api/integrations/{integration_id}/frobnicate"),  # no such verb
        ("POST", "/api/integrations/{integration_id}"),
    ],
)
def test_a_route_it_cannot_name_is_an_error(method: str, template: str) -> None:
    with pytest.raises(audit.UnknownRoute):
        audit.plan(method, template)


def _request(**overrides: Any) -> audit.Request:
    values: dict[str, Any] = {
        "method": "PATCH",
        "route": "/api/outgoing-webhooks/{endpoint_id}",
        "path_params": {"endpoint_id": "owh_1"},
        "status": 200,
        "request_id": "req_1",
        "actor_kind": "admin",
        "actor_id": "admin",
        "actor_workspace": None,
        "body": None,
        "answer": None,
        "touched": [],
        **overrides,
    }
    return audit.Request(**values)


def _entry(**overrides: Any) -> dict[str, Any]:
    request = _request(**overrides)
    return audit.entry(audit.plan(request.method, request.route), request, AT)


def test_an_entry_names_the_fields_sent_and_never_their_values() -> None:
    body = {
        "secret": "whsec_never",
        "headers": {"X-Key": "never"},
        "settings": {"bot_token": "xoxb-never", "signing_secret": "never"},
    }
    entry = _entry(body=body)
    assert entry["fields"] == [
        "headers",
        "secret",
        "settings",
        "settings.bot_token",
        "settings.signing_secret",
    ]
    assert "never" not in repr(entry)
    assert entry["_id"].startswith("aud_") and entry["at"] == AT
    assert entry["actor"] == {"kind": "admin", "id": "admin"}
    assert (entry["resource_type"], entry["resource_id"], entry["action"]) == (
        "outgoing_webhook",
        "owh_1",
        "update",
    )
    many = _entry(body={f"f{n:03d}": n for n in range(500)})
    assert len(many["fields"]) == audit.MAX_FIELDS
    assert _entry(body=["not", "an", "object"])["fields"] == []


def test_a_patch_of_enabled_is_an_enable_or_a_disable() -> None:
    assert _entry(body={"enabled": False, "name": "x"})["action"] == "disable"
    assert _entry(body={"enabled": True})["action"] == "enable"
    assert _entry(body={"enabled": "yes"})["action"] == "update"


@pytest.mark.parametrize(
    ("overrides", "workspace"),
    [
        ({"actor_workspace": "ws_key", "answer": {"workspace_id": "ws_answer"}}, "ws_key"),
        (
            {"answer": {"workspace_id": "ws_answer"}, "body": {"workspace_id": "ws_body"}},
            "ws_answer",
        ),
        ({"body": {"workspace_id": "ws_body"}, "touched": ["ws_doc"]}, "ws_body"),
        ({"path_params": {"workspace_id": "ws_path"}, "touched": ["ws_doc"]}, "ws_path"),
        ({"touched": ["ws_doc"]}, "ws_doc"),  # an admin's DELETE: 204, no body
        ({}, None),  # provider apps: no workspace
    ],
)
def test_the_workspace_an_entry_is_attributed_to(
    overrides: dict[str, Any], workspace: str | None
) -> None:
    assert _entry(**overrides)["workspace_id"] == workspace


def test_a_create_s_id_is_its_answer_s() -> None:
    entry = _entry(
        method="POST",
        route="/api/outgoing-webhooks",
        path_params={},
        status=201,
        answer={"id": "owh_new", "workspace_id": "ws_1", "secret": "whsec_x"},
    )
    assert (entry["action"], entry["resource_id"], entry["workspace_id"]) == (
        "create",
        "owh_new",
        "ws_1",
    )
    assert "whsec_x" not in repr(entry)


async def _ttl(db: Database) -> Any:
    for index in await (await db[audit.COLLECTION].list_indexes()).to_list():
        if "expireAfterSeconds" in index:
            return index["key"], index["expireAfterSeconds"]
    return None


async def test_the_retention_follows_the_setting(db: Database, tmp_path: Path) -> None:
    year = Settings(data_dir=tmp_path)
    await ensure_indexes(db, audit.indexes(year))
    assert await _ttl(db) == ({"at": 1}, 365 * 86400)
    # Changed later: the index is changed in place (creating it again would be refused).
    month = Settings(data_dir=tmp_path, audit_retention_days=30)
    await ensure_indexes(db, audit.indexes(month))
    assert await _ttl(db) == ({"at": 1}, 30 * 86400)
    await ensure_indexes(db, audit.indexes(month))  # and again, unchanged


async def test_since_and_the_cursor_bound_the_same_walk(db: Database) -> None:
    """`paginate` keeps a lower bound on `_id` (the listing's `since`) with its cursor."""
    collection = db["walk"]
    ids = sorted(new_id("aud") for _ in range(6))
    await collection.insert_many([{"_id": i} for i in ids])
    query = {"_id": {"$gte": ids[2]}}
    first, cursor = await paginate(collection, query, limit=2, cursor=None)
    assert [d["_id"] for d in first] == [ids[5], ids[4]] and cursor
    rest, end = await paginate(collection, query, limit=5, cursor=cursor)
    assert [d["_id"] for d in rest] == [ids[3], ids[2]] and end is None


def test_a_request_notes_the_workspace_of_the_first_document_it_finds() -> None:
    assert tenancy.note({"workspace_id": "ws_unwatched"}) == {"workspace_id": "ws_unwatched"}
    touched, token = tenancy.watch()
    try:
        tenancy.note(None)
        tenancy.note({"_id": "x"})
        tenancy.note({"workspace_id": "ws_first"})
        tenancy.note({"workspace_id": "ws_second"})
        tenancy.require_visible("ws_third", "it")
    finally:
        tenancy.unwatch(token)
    assert touched == ["ws_first"]
    tenancy.note({"workspace_id": "ws_after"})
    assert touched == ["ws_first"]
