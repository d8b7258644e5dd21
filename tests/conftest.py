"""Session-wide fixtures: one real broker and database server for the whole run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra import Infra, provide_infra


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    with provide_infra() as provided:
        yield provided


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
