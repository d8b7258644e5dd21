"""Every operation of every service's OpenAPI document, and of the edge's aggregate, lists
the errors it can answer, each with the error body's schema (SPEC §4). Built from the
services' apps without starting them; schemathesis (tests/e2e) checks that what the API
really answers is among what is listed."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.cli import SERVICES
from services.edge import create_edge_app, owner_of
from shared.kernel.errors import Unauthorized
from shared.kernel.http.errors import error_response, response_for
from tests.support import RunningService, serve, service_app

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
# Answered by every management route: a body not JSON, the token, validation, a bug, and
# MongoDB or Kafka away.
MANAGEMENT = {"400", "401", "422", "500", "503"}


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def error_codes(operation: dict[str, Any]) -> set[str]:
    return {code for code in operation["responses"] if code >= "400"}


def assert_errors_documented(document: dict[str, Any]) -> int:
    """Checks every operation; returns how many are authenticated."""
    authenticated = 0
    for method, path, operation in operations(document):
        where = (method, path, sorted(error_codes(operation)))
        assert {"500", "503"} <= error_codes(operation), where
        if operation.get("security"):
            authenticated += 1
            assert error_codes(operation) >= MANAGEMENT, where
        else:  # the webhook ingress checks a signature, not the token; the callback neither
            assert "401" not in error_codes(operation) or path.startswith("/api/webhooks/{"), where
            assert {"400", "422"} & error_codes(operation), where
        for code in error_codes(operation):
            assert operation["responses"][code]["content"]["application/json"]["schema"] == (
                ERROR_REF
            ), (*where, code)
    return authenticated


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_lists_its_errors_with_the_error_schema(service: str) -> None:
    document = service_app(service).openapi()
    assert len(operations(document)) >= 3
    assert assert_errors_documented(document) >= 2


@pytest.mark.parametrize("service", SERVICES)
def test_every_json_body_lists_415_and_form_bodies_do_not(service: str) -> None:
    for method, path, operation in operations(service_app(service).openapi()):
        media = set(operation.get("requestBody", {}).get("content", {}))
        json_only = media == {"application/json"}
        assert ("415" in operation["responses"]) == json_only, (method, path, media)


def test_the_error_schema_describes_the_bodies_the_api_sends() -> None:
    document = service_app("gateway").openapi()
    validator = jsonschema.Draft202012Validator({**ERROR_REF, "components": document["components"]})
    bodies = [
        error_response(422, "invalid", "no", details=[{"loc": ["body", "x"], "message": "m"}]),
        response_for(Unauthorized("missing bearer token", code="missing_token")),
        response_for(RuntimeError("a bug")),
    ]
    for body in bodies:
        validator.validate(orjson.loads(bytes(body.body)))
    assert not validator.is_valid({"detail": "FastAPI's own 422 body, which we never send"})


@pytest.fixture(scope="module")
async def edge() -> AsyncIterator[RunningService]:
    """The edge over upstreams that serve the real services' OpenAPI documents."""

    def document_of(service: str) -> Route:
        async def endpoint(_: Request) -> JSONResponse:
            return JSONResponse(service_app(service).openapi())

        return Route("/openapi.json", endpoint)

    upstreams = {}
    async with contextlib.AsyncExitStack() as stack:
        for service in SERVICES:
            app = Starlette(routes=[document_of(service)])
            running = await stack.enter_async_context(serve(app, probe="/openapi.json"))
            upstreams[service] = running.base_url
        yield await stack.enter_async_context(serve(create_edge_app(upstreams), probe="/healthz"))


async def test_the_edge_s_document_lists_every_service_s_errors_and_its_own(
    edge: RunningService,
) -> None:
    document = (await edge.client.get("/openapi.json")).json()
    services = {owner_of(path) for _, path, _ in operations(document)}
    assert services == set(SERVICES)
    assert assert_errors_documented(document) >= 30
    for method, path, operation in operations(document):
        assert "504" in error_codes(operation), (method, path)
    assert document["components"]["schemas"]["ErrorResponse"]["required"] == ["error"]
