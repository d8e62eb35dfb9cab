"""Fixtures every test folder shares: the simulator, a runtime started on it, a store.

The ``store`` and the ``runtime`` run once per backend: ``backend`` is ``sqlite`` (a file in
``tmp_path``) or ``postgresql`` (a fresh schema on the server ``WANDERER_CONSOLE_TEST_PG`` names,
see :mod:`tests.store.pgtest`; skipped without it, a failure when
``WANDERER_CONSOLE_REQUIRE_PG`` is set). ``store_location`` is where that backend's store lives.

Async tests run on the event loop the engine ships with (``console.event_loop = "auto"``: uvloop
where it imports); ``WANDERER_CONSOLE_TEST_LOOP=asyncio`` runs them on asyncio's own loop, the
configurable fallback, instead (:func:`pytest_asyncio_loop_factories`).

A module or folder changes what it gets by overriding a fixture of the same name: ``sim_options``
(the :class:`Simulator`'s keyword arguments) or ``runtime_settings`` (the settings the
``runtime`` fixture starts with). The bounded waits (``wait_for``, ``connected``) and the
subprocess helpers stay in :mod:`tests.support`, which plain modules and child processes can
import.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from pydantic import SecretStr

from tests.store.pgtest import fresh_schema, pg_required
from tests.support import connected
from wanderer_console.config.model import Settings
from wanderer_console.eventloop import LOOPS, loop_factory
from wanderer_console.launch import demo_settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.store.backends import open_store
from wanderer_console.store.base import DatabaseUrl, Store, StoreLocation

NETGUARD = Path(__file__).parent / "_netguard"
"""``sitecustomize`` for every process the tests start: it notes any host asked for that is not
this machine (``tests/_netguard/sitecustomize.py``)."""


def _netguard_log() -> Path:
    """This process's note of foreign hosts (one per process: the test that ran meanwhile is
    the one that asked), the hook installed here and, through ``PYTHONPATH``, in every process
    a test starts."""
    folder = Path(tempfile.mkdtemp(prefix="wc-netguard-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    log = folder / "foreign-hosts"
    log.touch()
    guard: Any = sys.modules.get("sitecustomize")
    if getattr(guard, "LOG_VARIABLE", None) is None:  # not started by a test: install it here
        spec = importlib.util.spec_from_file_location("_wc_netguard", NETGUARD / "sitecustomize.py")
        assert spec is not None
        assert spec.loader is not None
        guard = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(guard)
    os.environ[guard.LOG_VARIABLE] = str(log)  # read at each look-up: this process's file
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(NETGUARD) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(NETGUARD), *paths])
    return log


NETLOG = _netguard_log()


@pytest.fixture(autouse=True)
def _loopback_only() -> Iterator[None]:
    """Fail the test that asked for a host other than this machine (its own process or one it
    started): the tests speak to fakes on 127.0.0.1 alone (see ``NETGUARD``)."""
    start = NETLOG.stat().st_size
    yield
    with NETLOG.open(encoding="utf-8") as notes:
        notes.seek(start)
        found = notes.read()
    if found:
        pytest.fail(
            "the test asked for hosts that are not this machine (point the setting at the"
            f" simulator):\n{found[:3000]}",
            pytrace=False,
        )


BACKENDS = ("sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql))
"""Every store backend, for ``pytest.mark.parametrize`` or a fixture's ``params``."""


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The store backend a test runs on (each test that asks runs on both)."""
    return str(request.param)


@pytest.fixture
def store_location(backend: str, tmp_path: Path) -> Iterator[StoreLocation]:
    """Where ``backend``'s store lives: a file in ``tmp_path``, or a fresh PostgreSQL schema."""
    if backend == "sqlite":
        yield tmp_path / "db.sqlite"
        return
    with fresh_schema() as url:
        yield url


TEST_LOOP: Final = "WANDERER_CONSOLE_TEST_LOOP"
"""The environment variable naming the event loop async tests run on (``auto``, the default,
``uvloop`` or ``asyncio``: :data:`wanderer_console.eventloop.LOOPS`)."""


def chosen_loop() -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The name and factory of the loop :data:`TEST_LOOP` asks for (the shipped default: the
    engine's ``auto``, uvloop where it imports)."""
    asked = os.environ.get(TEST_LOOP, "auto")
    chosen = next((loop for loop in LOOPS if loop == asked), None)
    if chosen is None:
        raise pytest.UsageError(f"{TEST_LOOP}={asked!r}: use one of {', '.join(LOOPS)}")
    factory = loop_factory(chosen)
    if factory is None:
        return "asyncio", asyncio.new_event_loop
    return "uvloop", factory


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every async test on :func:`chosen_loop`'s loop (pytest-asyncio's hook; a folder's own
    conftest may answer first, as ``tests/http`` does for the modules it runs on both)."""
    name, factory = chosen_loop()
    return {name: factory}


PG_FOLDERS = ("store", "pipeline", "bench", "cluster")
"""Test folders whose tests run on both backends (``cluster``: several engines on one database,
whose lease statements run on both). Elsewhere a test that starts a runtime runs on
SQLite only: the engine above the store is the same code on both, and running every end-to-end
test twice would double the suite's time for no new coverage of the store."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the PostgreSQL variants of the ``backend`` fixture only under :data:`PG_FOLDERS`."""
    root = Path(__file__).parent
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = None if callspec is None else callspec.params.get("backend")
        folder = (
            Path(str(item.path)).relative_to(root).parts[0]
            if root in Path(str(item.path)).parents
            else ""
        )
        if backend == "postgresql" and folder not in PG_FOLDERS:
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Under ``WANDERER_CONSOLE_REQUIRE_PG`` a skipped PostgreSQL test is a failure."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and pg_required() and item.get_closest_marker("postgresql") is not None:
        report.outcome = "failed"
        report.longrepr = f"PostgreSQL test skipped while it is required: {report.longrepr}"


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
async def runtime(
    runtime_settings: Settings, tmp_path: Path, store_location: StoreLocation
) -> AsyncIterator[Runtime]:
    """A runtime on ``runtime_settings`` (data in ``tmp_path``), every source connected; its
    store on each backend (``[store] url`` set to a fresh schema for PostgreSQL)."""
    if isinstance(store_location, DatabaseUrl):
        runtime_settings.store.url = SecretStr(store_location.secret())
    engine = Runtime(runtime_settings, data_dir=tmp_path)
    await engine.start()
    try:
        await connected(engine)
        yield engine
    finally:
        await engine.stop()


@pytest.fixture
def store(store_location: StoreLocation) -> Iterator[Store]:
    """A fresh store on each backend, closed after the test."""
    db = open_store(store_location)
    try:
        yield db
    finally:
        db.close()
