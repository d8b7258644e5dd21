"""Derived delivery ids, body decoding and secret lookup that every provider module shares."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
import simdjson

from shared.kernel.jsonlimits import has_surrogate, lone_surrogate, nested_too_deep, too_deep
from shared.providers.base import InboundRequest, MalformedWebhook, SignatureInvalid

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
# Real provider forms carry a dozen fields; the cap stops a verified but hostile body from
# costing more than it should.
_MAX_FORM_FIELDS = 1000


def derived_delivery_id(body: bytes) -> str:
    """An id for a provider that sends none: a redelivery repeats the exact bytes."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def media_type(request: InboundRequest) -> str:
    return (request.header("content-type") or "").split(";", 1)[0].strip().lower()


def is_form(request: InboundRequest) -> bool:
    return media_type(request) == FORM_MEDIA_TYPE


def decode_json(text: str | bytes, what: str = "body") -> Any:
    """Strict JSON: UTF-8 only, no NaN/Infinity, no lone surrogate, at most `MAX_DEPTH`
    deep (what every consumer can decode: shared.kernel.jsonlimits), and never an error other
    than Malformed."""
    try:
        # orjson is strict too (UTF-8, no NaN, no lone surrogate) and several times faster
        # on a 7 KB payload; what else it refuses (integers beyond 64 bits, nesting past
        # 1024) is decided by the standard library below, so both paths accept the same
        # bodies.
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        try:
            decoded = text.decode("utf-8") if isinstance(text, bytes) else text
            value = json.loads(decoded, parse_constant=_refuse_constant)
        # ValueError covers invalid UTF-8, invalid JSON and over-long integers.
        except ValueError as exc:
            raise MalformedWebhook(f"{what} is not valid UTF-8 JSON") from exc
        # What a body nested far past the limit raises (orjson stops at 1024 levels, the
        # standard library at its recursion limit): it is too deep, whatever else it is.
        except RecursionError as exc:
            raise MalformedWebhook(nested_too_deep(what)) from exc
        # The standard library takes `"\ud800"`, which no consumer could write again: an
        # envelope holding it would be acknowledged, then dead-lettered as undecodable.
        if has_surrogate(value):
            raise MalformedWebhook(lone_surrogate(what)) from None
    _refuse_too_deep(text.encode() if isinstance(text, str) else text, what)
    return value


def _refuse_too_deep(body: bytes, what: str) -> None:
    if too_deep(body):
        raise MalformedWebhook(nested_too_deep(what))


def decode_json_object(text: str | bytes, what: str = "body") -> dict[str, Any]:
    value = decode_json(text, what)
    if not isinstance(value, dict):
        raise MalformedWebhook(f"{what} is not a JSON object")
    return value


@dataclass(frozen=True)
class JsonBody:
    """A request body that is a JSON object, checked but not decoded.

    The envelope carries these bytes as the provider sent them; `decode()` gives the object
    to whatever needs to look inside (an app-level request, for its account).
    """

    raw: bytes

    def decode(self) -> dict[str, Any]:
        return decode_json_object(self.raw)


_UTF8_BOM = b"\xef\xbb\xbf"


def check_json_object(body: bytes) -> JsonBody:
    """`body` as a `JsonBody`, once known to be a JSON object: refused (`MalformedWebhook`)
    exactly when `decode_json_object` refuses it, without building the object in Python.

    simdjson checks a 7 KB GitHub payload in under 2 µs, where decoding it takes some 8 µs
    and makes some 200 objects for the collector to track. What simdjson refuses (integers
    beyond 64 bits, lone surrogates, `1e400`: all accepted by the standard library), and a
    UTF-8 BOM (which simdjson skips and JSON forbids), `decode_json_object` decides.
    """
    return parse_json_object(body)[0]


def parse_json_object(body: bytes) -> tuple[JsonBody, simdjson.Object | None]:
    """`check_json_object`, and the simdjson document it checked when simdjson could (None
    otherwise), to read a few fields from without parsing again. The document lives as
    long as a reference to it does (it holds its parser)."""
    if not body.startswith(_UTF8_BOM):
        try:
            # A parser per call: one cannot parse again while a proxy of its last document
            # lives, and making one costs less than 0.1 µs.
            document = simdjson.Parser().parse(body)
        except (ValueError, RuntimeError):  # invalid for simdjson: decided below
            document = None
        if isinstance(document, simdjson.Object):
            _refuse_too_deep(body, "body")
            return JsonBody(body), document
    decode_json_object(body)
    return JsonBody(body), None


def decode_form(body: bytes) -> dict[str, str | list[str]]:
    """Form fields; a field given once is a str, a repeated one a list of str."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=_MAX_FORM_FIELDS,
        )
    except ValueError as exc:
        raise MalformedWebhook("body is not a UTF-8 form") from exc
    fields: dict[str, str | list[str]] = {}
    for key, value in pairs:
        existing = fields.get(key)
        if existing is None:
            fields[key] = value
        elif isinstance(existing, list):
            existing.append(value)
        else:
            fields[key] = [existing, value]
    return fields


def required_secret(secrets: Mapping[str, str], name: str) -> str:
    secret = secrets.get(name)
    if not secret:
        raise SignatureInvalid(f"cannot verify: the integration setting {name!r} is not set")
    return secret


def field_at(value: Any, *path: str) -> Any:
    """`value[path[0]][path[1]]...`, or None as soon as a step is not a JSON object."""
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def str_field(value: Any, *path: str) -> str | None:
    found = field_at(value, *path)
    return found if isinstance(found, str) and found else None


def id_field(value: Any, *path: str) -> str | None:
    """Like `str_field`, but integer ids (never booleans) are accepted as their str."""
    found = field_at(value, *path)
    if type(found) is int:
        return str(found)
    return found if isinstance(found, str) and found else None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
