"""PATCH bodies: a field left out is left alone; `null` only where it clears the field.

With plain `field: T | None = None` an explicit `null` passed validation and was stored,
and every later read of the resource failed on it (a 500 for the whole list). Here `null`
is refused with 422 unless the field is in `clearable`, and the OpenAPI schema says so.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator


def _schema_without_null(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    clearable: frozenset[str] = getattr(cls, "clearable", frozenset())
    for name, prop in schema.get("properties", {}).items():
        if name in clearable or "anyOf" not in prop:
            continue
        kept = [branch for branch in prop["anyOf"] if branch.get("type") != "null"]
        del prop["anyOf"]
        prop.pop("default", None)
        if len(kept) == 1:
            prop.update(kept[0])
        else:
            prop["anyOf"] = kept


class Patch(BaseModel):
    """Base of the PATCH bodies. Fields are `T | None = None` so that they may be left out;
    `clearable` names those where `null` means "clear it"."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_schema_without_null)

    clearable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _refuse_null(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = sorted(
                name
                for name, value in data.items()
                if value is None and name in cls.model_fields and name not in cls.clearable
            )
            if nulls:
                raise ValueError(
                    f"{', '.join(nulls)} cannot be null: leave a field out to keep its value"
                )
        return data
