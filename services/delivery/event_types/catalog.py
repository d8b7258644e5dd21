"""The event type catalog as delivery applies it: each type's schema compiled once, per
replica, from a refreshing cache (no MongoDB read per event), and the verdict on an event.

Two implementations of JSON Schema 2020-12, each for what it does best: `jsonschema_rs`
(Rust, compiled, offline: it never fetches a reference) judges every event, in a
microsecond where `jsonschema` takes half a millisecond for a realistic message (which
halved the ingress of POST /api/events, bench/event_types.py); `jsonschema` checks a
schema at the door (`check_schema`, with the path to what is wrong) and explains an event
refused: the JSON path that fails and why. An event is refused only when both find it
invalid.

An event's `data` (what a subscriber receives as `data`) is what a schema describes. A
type is looked up as the event's workspace sees the catalog: its own type of that name,
else the global one. With `enforce`, an event whose `data` fails is refused, naming the
JSON path that fails; in strict mode (HOOKHUB_EVENT_TYPES_STRICT), so is an event of a type
the catalog does not hold. Before an event is refused, the cache is brought up to the
moment the event was published (`RefreshingCache.covering`): a type created or relaxed a
moment ago through another replica does not refuse it. That costs a refresh at most per
batch of refused events, and nothing for those accepted.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import jsonschema_rs
import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match
from jsonschema.validators import validator_for
from prometheus_client import CollectorRegistry, Counter
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from shared.kernel import jsonlimits
from shared.kernel.cache import RefreshingCache
from shared.kernel.envelopes import ChatEvent
from shared.kernel.errors import Invalid
from shared.kernel.ids import utcnow
from shared.kernel.mongo import Document

CatalogKey = tuple[str | None, str]  # (workspace id, None for a global type; name)
_REFERENCES = ("$ref", "$dynamicRef")


def where(json_path: str, root: str) -> str:
    """jsonschema's `$.a['b c'][0]` as `root.a['b c'][0]`."""
    return root + json_path[1:]


def checked(schema: Mapping[str, Any], examples: list[dict[str, Any]]) -> Draft202012Validator:
    """The validator of `schema`, or 422 naming what makes it no JSON Schema 2020-12 that
    hookhub can apply, or the first example that fails it."""
    for value, name in ((schema, "schema"), (examples, "examples")):
        found = jsonlimits.problem(value, name)  # what neither MongoDB nor orjson holds
        if found is not None:
            raise Invalid(found, code="invalid_schema" if name == "schema" else "invalid_example")
    declared = schema.get("$schema")
    if declared is not None and (
        not isinstance(declared, str)
        or validator_for(schema, default=None) is not Draft202012Validator
    ):
        raise Invalid(
            f"schema.$schema: {declared!r} is not JSON Schema 2020-12 "
            "(https://json-schema.org/draft/2020-12/schema, or leave it out)",
            code="invalid_schema",
        )
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise Invalid(
            f"{where(exc.json_path, 'schema')}: {exc.message}", code="invalid_schema"
        ) from None
    resolver = Registry().resolver_with_root(DRAFT202012.create_resource(dict(schema)))
    for path, reference in _references(schema, "schema"):
        if not reference.startswith("#"):
            raise Invalid(
                f"{path}: {reference!r} is outside the schema: references must be local "
                "(#/$defs/…), hookhub fetches nothing",
                code="invalid_schema",
            )
        try:
            resolver.lookup(reference)
        except Unresolvable:
            raise Invalid(f"{path}: {reference!r} points nowhere", code="invalid_schema") from None
    try:
        compiled(schema)
    except jsonschema_rs.ValidationError as exc:  # what only the Rust side cannot take
        raise Invalid(f"schema: {exc.message}", code="invalid_schema") from None
    validator = Draft202012Validator(schema)
    for number, example in enumerate(examples):
        problem = first_problem(validator, example)
        if problem is not None:
            raise Invalid(f"examples[{number}]: {problem}", code="invalid_example")
    return validator


def _references(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _REFERENCES and isinstance(value, str):
                yield f"{path}.{key}", value
            else:
                yield from _references(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _references(value, f"{path}[{index}]")


def compiled(schema: Mapping[str, Any]) -> jsonschema_rs.Validator:
    return jsonschema_rs.Draft202012Validator(dict(schema), offline=True)


def first_problem(validator: Draft202012Validator, data: Any) -> str | None:
    """`data.<path>: <what fails>` for the most relevant error of `data`, None if valid."""
    try:
        error = best_match(validator.iter_errors(data))
    except Unresolvable as exc:  # refused at creation: only a schema stored otherwise
        return f"data: the schema cannot be applied ({exc})"
    except RecursionError:  # a `$ref` that leads back to itself, met on this data's way
        return "data: the schema's references loop without end"
    if error is None:
        return None
    return f"{where(error.json_path, 'data')}: {error.message}"


@dataclass(frozen=True)
class EventTypeSnapshot:
    """A catalog entry, its schema compiled, held in memory on every replica."""

    id: str
    name: str
    workspace_id: str | None
    description: str
    schema: dict[str, Any]
    examples: list[dict[str, Any]]
    deprecated: bool
    enforce: bool
    judge: jsonschema_rs.Validator = field(repr=False, compare=False)
    explainer: Draft202012Validator = field(repr=False, compare=False)

    def problem(self, data: Any) -> str | None:
        """Why `data` fails the schema (`data.<path>: …`), None if it passes."""
        if self.judge.is_valid(data):
            return None
        return first_problem(self.explainer, data)


def snapshot(doc: Document) -> EventTypeSnapshot:
    schema = orjson.loads(doc["schema_json"])
    return EventTypeSnapshot(
        id=str(doc["_id"]),
        name=doc["name"],
        workspace_id=doc.get("workspace_id"),
        description=doc.get("description", ""),
        schema=schema,
        examples=orjson.loads(doc["examples_json"]),
        deprecated=bool(doc.get("deprecated")),
        enforce=bool(doc.get("enforce")),
        judge=compiled(schema),
        explainer=Draft202012Validator(schema),
    )


def key_of(doc: Document) -> CatalogKey:
    return doc.get("workspace_id"), doc["name"]


@dataclass(frozen=True)
class Refusal:
    reason: Literal["schema", "unknown_type"]
    message: str


class Catalog:
    """The verdicts on events: accepted (None) or a `Refusal`."""

    def __init__(
        self,
        cache: RefreshingCache[CatalogKey, EventTypeSnapshot],
        *,
        strict: bool,
        registry: CollectorRegistry,
    ) -> None:
        self.cache = cache
        self.strict = strict
        self._refused = Counter(
            "hookhub_delivery_events_refused",
            "Chat events refused by the event type catalog: at the API (422) or from Kafka "
            "(dead-lettered), by reason (schema, unknown_type)",
            ["source", "reason"],
            registry=registry,
        )

    def entry(self, workspace_id: str, name: str) -> EventTypeSnapshot | None:
        """The type as `workspace_id` sees it: its own, else the global one."""
        return self.cache.get((workspace_id, name)) or self.cache.get((None, name))

    def globals(self) -> list[EventTypeSnapshot]:
        return sorted(
            (entry for entry in self.cache.values() if entry.workspace_id is None),
            key=lambda entry: entry.name,
        )

    def verdict(self, workspace_id: str, event_type: str, data: Any) -> Refusal | None:
        entry = self.entry(workspace_id, event_type)
        if entry is None:
            if not self.strict:
                return None
            return Refusal(
                "unknown_type",
                f"type: event type {event_type!r} is not in the catalog, and "
                "HOOKHUB_EVENT_TYPES_STRICT refuses the types it does not hold",
            )
        if not entry.enforce:
            return None
        problem = entry.problem(data)
        if problem is None:
            return None
        whose = "the global" if entry.workspace_id is None else "the workspace's own"
        return Refusal("schema", f"{problem} ({whose} schema of event type {event_type})")

    async def refusal(
        self,
        workspace_id: str,
        event_type: str,
        data: Any,
        *,
        published_at: datetime,
        source: Literal["api", "kafka"],
    ) -> Refusal | None:
        """The verdict, once the cache holds every change written before `published_at`
        if it would refuse (see the module's doc); counted when it does."""
        found = self.verdict(workspace_id, event_type, data)
        if found is not None:
            await self.cache.covering(min(published_at, utcnow()))
            found = self.verdict(workspace_id, event_type, data)
        if found is not None:
            self._refused.labels(source, found.reason).inc()
        return found

    async def refused_record(self, record: Any, event: ChatEvent) -> str | None:
        """For the `hookhub.chat.events` consumer (shared.kernel.consumers.Refuse): the reason an
        event read from Kafka is dead-lettered, or None."""
        stamp = getattr(record, "timestamp", None)
        published = (
            datetime.fromtimestamp(stamp / 1000, UTC)
            if isinstance(stamp, int) and stamp > 0
            else utcnow()
        )
        found = await self.refusal(
            event.workspace_id, event.type, event.data, published_at=published, source="kafka"
        )
        return None if found is None else found.message
