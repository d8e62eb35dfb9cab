"""The same screens whether the console runs beside its engine or is attached to it.

Each scenario of the snapshot tests is rendered twice from the same seeded engine: once over the
engine itself (in-process, as ``wanderer-console`` runs the console), once through the real control
endpoint on a Unix socket and a :class:`RemoteBackend` (as ``wanderer-console attach`` does). The
two screenshots must be identical; the snapshot tests pin the in-process one to its stored SVG.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.ui.conftest import (
    ACTOR,
    CONFIG_TEXT,
    HEALTHY,
    NOW,
    PAUSED_SINCE,
    PAUSER,
    degraded_snapshot,
    delivery_fault_snapshot,
    paused_engine,
    seeded_history,
)
from tests.ui.fakes import SeededBackend, first_frame, settle
from tests.ui.test_snapshots import IDENTITY, SIZE, _save_invalid, _settle
from wanderer_console.console_api import ConsoleBackend
from wanderer_console.control.server import (
    SOCKET_NAME,
    ControlMetrics,
    FrameHub,
    bind_private_socket,
    build_control_app,
)
from wanderer_console.http.control_client import RemoteBackend
from wanderer_console.server.serve import EmbeddedServer
from wanderer_console.telemetry.metrics import Metrics
from wanderer_console.ui.app import build_app
from wanderer_console.ui.clock import FrozenClock

Steps = Callable[[Pilot[Any]], Awaitable[None]]


async def _toggles(pilot: Pilot[Any]) -> None:
    await first_frame(pilot)
    await pilot.press("t")
    await pilot.pause()


async def _help(pilot: Pilot[Any]) -> None:
    await first_frame(pilot)
    await pilot.press("question_mark")
    await pilot.pause()


async def _events(pilot: Pilot[Any]) -> None:
    await first_frame(pilot)
    await pilot.press("e")
    await settle(pilot)
    await pilot.press("down", "enter")
    await settle(pilot)


SCENARIOS: dict[str, tuple[Callable[[], SeededBackend], Steps]] = {
    "healthy": (lambda: SeededBackend(HEALTHY, identity=IDENTITY), _settle),
    "degraded": (lambda: SeededBackend(degraded_snapshot(), identity=IDENTITY), _settle),
    "faults": (lambda: SeededBackend(delivery_fault_snapshot(), identity=IDENTITY), _settle),
    "paused": (lambda: paused_engine(identity=IDENTITY), _settle),
    "toggles": (lambda: SeededBackend(HEALTHY, identity=IDENTITY), _toggles),
    "help": (lambda: SeededBackend(HEALTHY, identity=IDENTITY), _help),
    "events": (lambda: SeededBackend(HEALTHY, identity=IDENTITY), _events),
    "config": (
        lambda: SeededBackend(HEALTHY, identity=IDENTITY, config_text=CONFIG_TEXT),
        _save_invalid,
    ),
}


class Served:
    """A seeded engine behind the real control endpoint, on a socket in ``directory``."""

    def __init__(self, engine: SeededBackend, directory: Path) -> None:
        metrics = ControlMetrics(Metrics())
        self.hub = FrameHub(engine, lambda text: text, metrics, lambda: 16)
        app = build_control_app(engine, self.hub, metrics, lambda text: text, transport="socket")
        self.path = directory / SOCKET_NAME
        self.server = EmbeddedServer(app, host="", port=0, sock=bind_private_socket(self.path))

    async def __aenter__(self) -> RemoteBackend:
        await self.server.start()
        self.backend = RemoteBackend(socket_path=self.path)
        return self.backend

    async def __aexit__(self, *exc: object) -> None:
        await self.backend.aclose()
        await self.hub.close()
        await self.server.stop()


async def _screen(backend: ConsoleBackend, steps: Steps, expect: str | None = None) -> str:
    app = build_app(
        backend,
        clock=FrozenClock(NOW),
        theme="wanderer-dark",
        history=seeded_history(),
        actor=ACTOR,
    )
    async with app.run_test(size=SIZE) as pilot:
        await steps(pilot)
        return await _steady(pilot, expect)


async def _steady(pilot: Pilot[Any], expect: str | None) -> str:
    """The screen once two looks 50 ms apart agree, or, given ``expect`` (the local console's
    screen), once it shows that (at most 10 s): an attached console's frames come over a socket
    and may still be on their way, or being laid out, when the steps end; on a loaded runner a
    frame late by more than 50 ms made two stale looks agree."""
    shot = pilot.app.export_screenshot()
    for _ in range(200):
        if expect is not None and shot == expect:
            return shot
        await pilot.pause(0.05)
        again = pilot.app.export_screenshot()
        if expect is None and again == shot:
            return again
        shot = again
    return shot


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_an_attached_console_shows_the_same_screen(scenario: str, tmp_path: Path) -> None:
    make, steps = SCENARIOS[scenario]
    local = await _screen(make(), steps)
    async with Served(make(), tmp_path) as remote:
        attached = await _screen(remote, steps, expect=local)
    assert attached == local


async def test_an_attached_console_says_who_paused_and_since_when(tmp_path: Path) -> None:
    """Over the control socket, the pause's who, since and kept reach the attached console: it
    is the one an operator opens at night on a paused engine."""
    async with Served(paused_engine(identity=IDENTITY), tmp_path) as remote:
        frame = await remote.snapshot()
        shot = await _screen(remote, _settle)
    delivery = frame.delivery
    assert (delivery.paused_by, delivery.paused_since, delivery.pause_saved) == (
        PAUSER,
        PAUSED_SINCE,
        True,
    )
    assert f"Paused by {PAUSER}" in html.unescape(shot).replace("\xa0", " ")
