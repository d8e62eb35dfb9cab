"""The console's view of a target two maps post to, dead for one of them, over the control socket.

A target is dead per (map, target): the webhook two maps share may be dead for one map and
deliver for the other. The engine's view of a target is keyed by the target alone, and it took
the target as dead (``disabled_since``) when any map's mark was, so an attached console showed
a shared webhook dead for both maps while one of them still delivered through it. The view now
says which maps post there (``maps``) and for which the target is dead (``dead_for``).

Its ``pending`` counts the key's rows of every map: for a target dead for one map only, the dead
map's held notifications and the other map's on their way, mixed. The view now counts what each
dead mark holds (``held_for``), the dead map's rows only.

A real engine on the simulator with a second map (``other``) following the same fake map and
posting to the demo map's primary webhook; a console attached through the control socket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support import connected, map_on_primary_webhook, wait_for
from wanderer_console.config.loader import load_settings
from wanderer_console.console_api import TargetView
from wanderer_console.domain.notification import Notification, NotificationType
from wanderer_console.http.control_client import RemoteBackend
from wanderer_console.launch import demo_config_text
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

OTHER = "other"


@pytest.fixture
async def engine(sim: Simulator, tmp_path: Path) -> AsyncIterator[Runtime]:
    """The demo map plus ``other`` on the demo's primary webhook, every source connected."""
    path = tmp_path / "config.toml"
    path.write_text(
        demo_config_text(sim, data_dir=tmp_path) + map_on_primary_webhook(sim, OTHER),
        encoding="utf-8",
    )
    runtime = Runtime(load_settings(path, environ={}).settings, config_path=path)
    await runtime.start()
    try:
        await connected(runtime, sources=4)
        yield runtime
    finally:
        await runtime.stop()


def _shared_key(engine: Runtime) -> str:
    """The webhook both maps post to."""
    (key,) = {key for tenant, key in engine.dispatcher._targets() if tenant == OTHER}
    return key


async def _mark_dead(engine: Runtime, key: str, since: dict[str, float]) -> None:
    """Mark ``key`` dead for each map of ``since`` (from then) as a 404 would (with the
    credential the engine holds, so it is not revived as changed), and wait for the dispatcher
    to read the marks."""
    for tenant, at in since.items():
        resolved = engine.dispatcher._targets()[(tenant, key)]
        engine.store.set_dead_target(
            tenant, key, reason="404 Unknown Webhook", fingerprint=resolved.fingerprint, now=at
        )
    engine.dispatcher.wake()
    await wait_for(
        lambda: len(engine.dispatcher.dead_targets) == len(since), 10, "the dead marks read"
    )


async def _target(remote: RemoteBackend, key: str) -> TargetView:
    return (await remote.snapshot()).delivery.targets[key]


def _enqueue(engine: Runtime, tenant: str, key: str, count: int) -> None:
    """``count`` notifications of ``tenant`` to ``key`` (delivery paused: they stay pending)."""
    target = engine.dispatcher._targets()[(tenant, key)].target
    engine.store.enqueue(
        [
            Notification(tenant, NotificationType.KILL, f"{tenant}:{i}", target, {"content": "x"})
            for i in range(count)
        ]
    )


async def _counted(engine: Runtime, remote: RemoteBackend, key: str, pending: int) -> TargetView:
    """The target, read through the socket once the engine's count of its outbox says
    ``pending`` (the dispatcher counts at most once a second; nothing is sent meanwhile)."""
    await wait_for(
        lambda: engine.dispatcher.snapshot()["targets"][key]["pending"] == pending,
        10,
        f"{pending} pending for {key} counted",
    )
    return await _target(remote, key)


async def test_a_shared_webhook_dead_for_one_map_says_which_and_which_still_posts(
    engine: Runtime, remote: RemoteBackend, sim: Simulator
) -> None:
    demo, key = sim.map_slug, _shared_key(engine)
    await _mark_dead(engine, key, {demo: 2_000.0})

    target = await _target(remote, key)
    assert target.disabled == "404 Unknown Webhook"
    assert target.dead_for == (demo,)
    assert target.maps == (demo, OTHER)
    assert target.disabled_since == 2_000.0


async def test_a_shared_webhook_dead_for_both_maps_names_both_and_the_first_mark(
    engine: Runtime, remote: RemoteBackend, sim: Simulator
) -> None:
    demo, key = sim.map_slug, _shared_key(engine)
    await _mark_dead(engine, key, {demo: 2_000.0, OTHER: 1_000.0})

    target = await _target(remote, key)
    assert target.dead_for == (demo, OTHER)
    assert target.maps == (demo, OTHER)
    assert target.disabled_since == 1_000.0  # dead since its first map's refusal


async def test_a_shared_webhook_dead_for_one_map_counts_what_it_holds_for_that_map_only(
    engine: Runtime, remote: RemoteBackend, sim: Simulator
) -> None:
    demo, key = sim.map_slug, _shared_key(engine)
    await _mark_dead(engine, key, {demo: 2_000.0})
    assert (await remote.set_paused(True, actor="tui:test")).ok  # the other map's rows wait
    _enqueue(engine, demo, key, 3)
    _enqueue(engine, OTHER, key, 2)

    target = await _counted(engine, remote, key, pending=5)  # both maps' rows
    assert target.dead_for == (demo,)
    assert target.held_for == {demo: 3}  # not the other map's two


async def test_a_shared_webhook_dead_for_both_maps_counts_what_it_holds_for_each(
    engine: Runtime, remote: RemoteBackend, sim: Simulator
) -> None:
    demo, key = sim.map_slug, _shared_key(engine)
    await _mark_dead(engine, key, {demo: 2_000.0, OTHER: 1_000.0})
    _enqueue(engine, demo, key, 3)
    _enqueue(engine, OTHER, key, 2)

    target = await _counted(engine, remote, key, pending=5)
    assert target.held_for == {demo: 3, OTHER: 2}
