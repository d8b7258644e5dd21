"""The networks without a stand-in in every world, beside it for a module: fixtures the
modules that click and type in every network share (imported by them as fixtures)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.sync import googlechat_world, matrix_world, mattermost_world, teams_world
from tests.sync.conftest import World


@pytest.fixture(scope="module")
async def teams(world: World) -> AsyncIterator[teams_world.Teams]:
    async with contextlib.AsyncExitStack() as stack:
        yield await teams_world.connect(world, stack)


@pytest.fixture(scope="module")
async def gchat(world: World) -> AsyncIterator[googlechat_world.GoogleChat]:
    async with contextlib.AsyncExitStack() as stack:
        yield await googlechat_world.connect(world, stack, audience=googlechat_world.PROJECT)


@pytest.fixture(scope="module")
async def mattermost(world: World) -> AsyncIterator[mattermost_world.Mattermost]:
    async with mattermost_world.served(world) as running:
        yield running


@pytest.fixture(scope="module")
async def matrix(world: World) -> AsyncIterator[matrix_world.Matrix]:
    async with matrix_world.connected(world) as made:
        yield made
