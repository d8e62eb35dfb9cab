"""Fixtures every test folder shares: the simulator, a runtime started on it, a store.

A module or folder changes what it gets by overriding a fixture of the same name: ``sim_options``
(the :class:`Simulator`'s keyword arguments) or ``runtime_settings`` (the settings the
``runtime`` fixture starts with). The bounded waits (``wait_for``, ``connected``) and the
subprocess helpers stay in :mod:`tests.support`, which plain modules and child processes can
import.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import connected
from wanderer_console.config.model import Settings
from wanderer_console.launch import demo_settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.store.sqlite import SqliteStore


@pytest.fixture
def sim_options() -> dict[str, Any]:
    """Keyword arguments for the ``sim`` fixture's :class:`Simulator`; override to change them."""
    return {"seed": 5}


@pytest.fixture
async def sim(sim_options: dict[str, Any]) -> AsyncIterator[Simulator]:
    """A started simulator on free loopback ports, stopped after the test."""
    simulator = Simulator(**sim_options)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture
def runtime_settings(sim: Simulator, tmp_path: Path) -> Settings:
    """The ``runtime`` fixture's settings: the demo's, against ``sim``, data in ``tmp_path``."""
    return demo_settings(sim, data_dir=tmp_path)


@pytest.fixture
async def runtime(runtime_settings: Settings, tmp_path: Path) -> AsyncIterator[Runtime]:
    """A runtime on ``runtime_settings`` (data in ``tmp_path``), every source connected."""
    engine = Runtime(runtime_settings, data_dir=tmp_path)
    await engine.start()
    try:
        await connected(engine)
        yield engine
    finally:
        await engine.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    """A fresh SQLite store in ``tmp_path``, closed after the test."""
    db = SqliteStore(tmp_path / "db.sqlite")
    try:
        yield db
    finally:
        db.close()
