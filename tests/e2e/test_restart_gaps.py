"""Restarts and reconnects lose nothing: start-up suppression mutes history only, and every
gap in the killstream is backfilled from its REST API (``since_hours``), each kill once.

The simulator's real sockets on loopback, a real :class:`Runtime` per run on one data
directory, the fake Discord at the end. REST polling while the socket is down is pushed out of
reach (``fallback_after_seconds``), so only the gap backfill can bring back what the socket
missed; the fake killstream preloads five kills per system, so every gap holds more than that.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support import connected, posted_kills, wait_for
from wanderer_console.config.model import Settings
from wanderer_console.launch import demo_settings
from wanderer_console.pipeline.startup import SEEN_CURSOR
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

PER_SYSTEM = 8
"""Kills per system during a gap: more than the five a rejoin's preload brings back."""


@pytest.fixture
def sim_options() -> dict[str, Any]:
    # A roomy webhook limit: the tests are about what is sent, not about Discord's pacing.
    return {"seed": 5, "killstream_rest": True, "discord_webhook_limit": 100}


def _settings(sim: Simulator, data_dir: Path, *, suppression: float = 30.0) -> Settings:
    """The demo settings with the default start-up suppression and no REST polling."""
    settings = demo_settings(sim, data_dir=data_dir)
    return settings.model_copy(
        update={
            "console": settings.console.model_copy(
                update={"startup_suppression_seconds": suppression}
            ),
            "killstream": settings.killstream.model_copy(update={"fallback_after_seconds": 3600.0}),
        }
    )


async def _start(settings: Settings, data_dir: Path) -> Runtime:
    runtime = Runtime(settings, data_dir=data_dir)
    await runtime.start()
    await connected(runtime)  # the map stream and both killstream sockets
    return runtime


def _tracked_kill(sim: Simulator, system_id: int, **kwargs: Any) -> dict[str, Any]:
    # No tracked pilot on it: one notification per kill (the system-kill route).
    return sim.generator.make_killmail(
        system_id=system_id, exclude_character_ids=sim.tracked_character_ids, **kwargs
    )


async def _push_gap(sim: Simulator, systems: list[int]) -> list[int]:
    """Kills in ``systems`` while the console cannot see the socket; their ids."""
    ids = []
    for _ in range(PER_SYSTEM):
        for system_id in systems:
            kill = _tracked_kill(sim, system_id)
            ids.append(kill["killmail_id"])
            assert await sim.killstream.push_kill(kill) == 0  # no socket got it
    return ids


async def test_kills_in_the_first_seconds_after_a_restart_are_notified_despite_startup_suppression(
    sim: Simulator, tmp_path: Path
) -> None:
    settings = _settings(sim, tmp_path)
    assert settings.console.startup_suppression_seconds == 30.0
    first = await _start(settings, tmp_path)
    await first.stop()

    # While it is down, an old kill joins the history: the rejoin's preload will bring it.
    system_id = sorted(sim.tracked_system_ids)[0]
    old = _tracked_kill(sim, system_id, kill_time=datetime.now(UTC) - timedelta(minutes=20))
    sim.killstream.seed_kills([old])

    second = await _start(settings, tmp_path)
    try:
        await wait_for(
            lambda: (
                second.metrics.value(
                    "wc_notifications_filtered_total", reason="startup_suppression"
                )
                >= 1
            )
        )
        fresh = []
        for i in range(20):
            kill = _tracked_kill(sim, sorted(sim.tracked_system_ids)[i % 5])
            fresh.append(kill["killmail_id"])
            await sim.killstream.push_kill(kill)
        assert second.engine.suppressed()  # still inside the 30 s window
        await wait_for(lambda: all(posted_kills(sim)[i] for i in fresh))
        await second.drain(timeout=3.0)
        await asyncio.sleep(0.3)
        assert second.engine.suppressed()
    finally:
        await second.stop()
    counts = posted_kills(sim)
    assert [counts[i] for i in fresh] == [1] * 20
    assert counts[old["killmail_id"]] == 0  # history stays muted


async def test_kills_during_downtime_are_backfilled_after_restart(
    sim: Simulator, tmp_path: Path
) -> None:
    settings = _settings(sim, tmp_path)
    systems = sorted(sim.tracked_system_ids)[:2]
    first = await _start(settings, tmp_path)
    try:
        live = [_tracked_kill(sim, systems[0]) for _ in range(3)]
        for kill in live:
            await sim.killstream.push_kill(kill)
        await wait_for(lambda: all(posted_kills(sim)[k["killmail_id"]] for k in live))
        # The watermark: the console saw the stream whole up to here.
        await wait_for(lambda: first.store.get_cursor(SEEN_CURSOR) is not None)
    finally:
        await first.stop()

    gap = await _push_gap(sim, systems)
    untracked = sim.generator.make_killmail(
        system_id=next(s for s in sorted(sim.generator.systems) if s not in sim.tracked_system_ids),
        exclude_character_ids=sim.tracked_character_ids,
    )
    await sim.killstream.push_kill(untracked)

    started = time.monotonic()
    second = await _start(settings, tmp_path)
    try:
        await wait_for(lambda: all(posted_kills(sim)[i] for i in gap), timeout=30)
        assert time.monotonic() - started < 30, "delivered inside the suppression window"
        assert second.kills.fallback is not None
        await wait_for(
            lambda: second.kills.fallback is not None and not second.kills.fallback.gap_pending
        )
        await second.drain(timeout=3.0)
        await asyncio.sleep(0.5)
        backfilled = second.metrics.value("wc_events_received_total", source="backfill")
    finally:
        await second.stop()
    counts = posted_kills(sim)
    assert [counts[i] for i in gap] == [1] * len(gap)  # every one, exactly once
    assert [counts[k["killmail_id"]] for k in live] == [1, 1, 1]  # not notified again
    assert counts[untracked["killmail_id"]] == 0
    # The preload brought five per system; the REST backfill the rest.
    assert backfilled >= (PER_SYSTEM - 5) * len(systems)


async def test_kills_during_a_reconnect_gap_are_backfilled(sim: Simulator, tmp_path: Path) -> None:
    settings = _settings(sim, tmp_path, suppression=0.0)
    systems = sorted(sim.tracked_system_ids)[1:3]
    runtime = await _start(settings, tmp_path)
    try:
        before = _tracked_kill(sim, systems[0])
        await sim.killstream.push_kill(before)
        await wait_for(lambda: posted_kills(sim)[before["killmail_id"]])
        assert runtime.kills.fallback is not None
        joins = runtime.kills.sockets["systems"].joins

        # The server goes away for a while; kills happen meanwhile.
        sim.killstream.refuse_connections = True
        await sim.killstream.drop_connections()
        await wait_for(lambda: sim.killstream.active_connections == 0)
        gap = await _push_gap(sim, systems)
        await asyncio.sleep(0.5)
        sim.killstream.refuse_connections = False

        await wait_for(lambda: runtime.kills.sockets["systems"].joins > joins)
        await wait_for(lambda: all(posted_kills(sim)[i] for i in gap), timeout=30)
        await wait_for(
            lambda: runtime.kills.fallback is not None and not runtime.kills.fallback.gap_pending
        )
        await runtime.drain(timeout=3.0)
        await asyncio.sleep(0.5)
        assert runtime.kills.fallback.counters["gaps_filled"] >= 1
        assert (
            not runtime.kills.fallback.active
        )  # the REST polling never started: the backfill did it
    finally:
        await runtime.stop()
    counts = posted_kills(sim)
    assert [counts[i] for i in gap] == [1] * len(gap)
    assert counts[before["killmail_id"]] == 1


def _systems_notified(sim: Simulator, name: str) -> int:
    """ "New System Tracked" messages the fake Discord accepted for system ``name``."""
    return sum(
        1
        for message in sim.discord.received
        for embed in message.body.get("embeds") or []
        if embed.get("title") == f"New System Tracked: {name}"
    )


async def test_a_system_added_while_down_is_notified_when_the_map_never_sent_an_event(
    sim: Simulator, tmp_path: Path
) -> None:
    """A map whose stream never carried an event has no event id to resume from: the first run
    keeps its ``connected`` frame's point instead, so the next run's stream backfills the gap
    (the REST reload at start only loads state, it notifies nothing)."""
    settings = _settings(sim, tmp_path)
    first = await _start(settings, tmp_path)
    try:
        assert sim.map.events == []  # the stream carried nothing: no event id to resume from
    finally:
        await first.stop()

    missed = sim.generator.new_system(wormhole=True)
    sim.map.add_system(missed.system_id, name=missed.name)  # nobody is listening

    second = await _start(settings, tmp_path)
    try:
        assert second.engine.suppressed()  # news, not history: suppression lets it through
        await wait_for(lambda: _systems_notified(sim, missed.name), timeout=15)
        await second.drain(timeout=3.0)
    finally:
        await second.stop()
    assert missed.system_id in sim.map.tracked_system_ids
    assert _systems_notified(sim, missed.name) == 1
    assert sim.map.connect_log[-1]["last_event_id"] is not None
