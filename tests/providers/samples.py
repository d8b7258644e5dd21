"""A provider's documented payloads (`shared/providers/<name>/samples/*.json`, their
sources in the folder's README.md), loaded fresh for each use so a test may change one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PROVIDERS = Path(__file__).parents[2] / "shared" / "providers"


def load(provider: str, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (PROVIDERS / provider / "samples" / f"{name}.json").read_text()
    )
    return loaded
