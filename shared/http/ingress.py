"""Webhook ingress routes: plain Starlette endpoints in front of the FastAPI routes.

Providers hit these at their own rate, so they skip what the management API needs and a
webhook does not: FastAPI's dependency solving and its included-router matching, which
together cost a third of the gateway's throughput (see docs/benchmarks.md). Errors still
go through the app's exception handlers, so they keep the SPEC §4 format; the OpenAPI
document describes them from the same declaration.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_PARAM = re.compile(r"{(\w+)}")
# Endpoint → path template, for the request metrics' `route` label (Starlette sets
# scope["endpoint"] for these routes, not scope["route"]).
ROUTE_TEMPLATES: dict[Any, str] = {}


@dataclass(frozen=True)
class IngressRoute:
    path: str
    endpoint: Callable[[Request], Awaitable[Response]]
    summary: str
    responses: Mapping[int, str]
    request_media_types: tuple[str, ...] = ("application/json",)
    headers: Mapping[str, str] = field(default_factory=dict)  # documented request headers


def install_ingress_routes(app: FastAPI, routes: Sequence[IngressRoute]) -> None:
    """Put `routes` first, in the given order (the first match wins), and document them."""
    for route in reversed(routes):
        ROUTE_TEMPLATES[route.endpoint] = route.path
        app.router.routes.insert(
            0, Route(route.path, route.endpoint, methods=["POST"], name=route.endpoint.__name__)
        )
    build_schema = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build_schema()
        for route in routes:
            schema.setdefault("paths", {}).setdefault(route.path, {})["post"] = _operation(route)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _operation(route: IngressRoute) -> dict[str, Any]:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(route.path)
    ] + [
        {
            "name": name,
            "in": "header",
            "required": False,
            "description": text,
            "schema": {"type": "string"},
        }
        for name, text in route.headers.items()
    ]
    return {
        "tags": ["webhook ingress"],
        "summary": route.summary,
        "operationId": route.endpoint.__name__,
        "parameters": parameters,
        "requestBody": {"content": {media: {} for media in route.request_media_types}},
        "responses": {str(code): {"description": text} for code, text in route.responses.items()},
    }
