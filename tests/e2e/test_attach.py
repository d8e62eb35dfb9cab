"""``attach`` end to end: a console steering a headless engine that runs in another process.

The engine is a real subprocess (``python -m wanderer_console --no-ui``) over the simulator; the
console is the real Textual app under Pilot, built over a :class:`RemoteBackend` that talks to the
engine through its control socket, as ``wanderer-console attach`` does. A second client watches
the same engine. Then the engine is killed and started again under the open console.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import end_process, serve_headless, wait_for
from tests.ui.fakes import first_frame, settle
from tests.ui.test_live_toggle import delivered_kill_ids, write_config
from wanderer_console.console_api import Frame
from wanderer_console.control.server import SOCKET_NAME
from wanderer_console.http.control_client import RemoteBackend
from wanderer_console.sim import Simulator
from wanderer_console.ui.app import build_app
from wanderer_console.ui.screens.toggles import TogglesScreen

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

PUSH_INTERVAL = 0.1
GRACE = 1.0
"""The acceptance bound: kills pushed this long after the flip must not be notified."""


@pytest.fixture
def sim_options() -> dict[str, Any]:
    return {"seed": 23, "discord_webhook_limit": 1000, "discord_webhook_window": 1.0}


async def test_an_attached_console_steers_the_engine_and_survives_its_restart(
    sim: Simulator, tmp_path: Path
) -> None:
    config, data = tmp_path / "config.toml", tmp_path / "data"
    write_config(sim, data, config)
    proc = await serve_headless(config, data)
    socket_path = data / SOCKET_NAME
    system_id = sorted(sim.tracked_system_ids)[0]
    pushed: list[tuple[float, int]] = []

    async def feed() -> None:
        while True:
            kill = sim.generator.make_killmail(system_id=system_id)
            pushed.append((time.monotonic(), kill["killmail_id"]))
            await sim.killstream.push_kill(kill)
            await asyncio.sleep(PUSH_INTERVAL)

    watcher = RemoteBackend(socket_path=socket_path)
    seen: list[Frame] = []

    async def watch() -> None:
        async for frame in watcher.frames(0.2):
            seen.append(frame)

    watching = asyncio.create_task(watch())
    feeder = asyncio.create_task(feed())
    console = RemoteBackend(socket_path=socket_path)
    try:
        await console.connect()
        app = build_app(console, actor="tui:tester@laptop")
        async with app.run_test(size=(120, 40)) as pilot:
            await first_frame(pilot)
            await wait_for(lambda: delivered_kill_ids(sim), 20, "kills flowing")

            # Flip the kill type off from the attached console.
            await pilot.press("t")
            await pilot.pause()
            assert isinstance(app.screen, TogglesScreen)
            await pilot.press("right", "enter")  # global/enabled → global/kill, flip
            flipped_at = time.monotonic()
            await settle(pilot)

            def watcher_sees_off() -> bool:
                return bool(seen) and seen[-1].snapshot.settings.notifications.kill is False

            await wait_for(watcher_sees_off, 2, "the other console seeing kill off")
            await asyncio.sleep(GRACE + 1.5)
            late = {kid for at, kid in pushed if at >= flipped_at + GRACE}
            assert len(late) >= 5
            assert not delivered_kill_ids(sim) & late, "kills notified after the flip"

            # The engine dies under the console: it says so, then comes back by itself.
            proc.kill()
            await proc.wait()
            await wait_for(lambda: app.state.link.state == "lost", 10, "the console showing lost")
            await pilot.pause()
            assert "ENGINE LOST" in str(app.sub_title)
            proc = await serve_headless(config, data)
            await wait_for(
                lambda: (
                    app.state.link.state == "live"
                    and app.state.identity is not None
                    and app.state.identity.pid == proc.pid
                ),
                15,
                "the console live again on the restarted engine",
            )
            await pilot.pause()
            assert "ENGINE LOST" not in str(app.sub_title)
            # The restarted engine kept the flip: it was saved to its config file.
            assert app.state.settings.notifications.kill is False
            await pilot.press("q")  # detach
        await console.aclose()

        # Detached: the engine still runs and delivers (kills again, switched on by the watcher).
        result = await watcher.set_flag(None, "kill", True, actor="test:watcher")
        assert result.ok, result.message
        back_on = time.monotonic()

        def delivered_after() -> bool:
            ids = {kid for at, kid in pushed if at >= back_on + 0.5}
            return bool(delivered_kill_ids(sim) & ids)

        await wait_for(delivered_after, 20, "deliveries after the console detached")
        assert proc.returncode is None
    finally:
        feeder.cancel()
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        await watcher.aclose()
        await end_process(proc)


async def test_an_engine_stopped_and_started_again_is_shown_as_a_new_engine(
    sim: Simulator, tmp_path: Path
) -> None:
    """SIGTERM (as systemd stops it), then a new engine on the same data directory: the console
    says the engine stopped (figures stale), comes back by itself on the new process and shows
    its state as the new engine's: uptime from the new start, the activity log saying the engine
    restarted, and delivery still paused (an operator's pause is saved and outlives the process;
    nothing says "delivery resumed")."""
    config, data = tmp_path / "config.toml", tmp_path / "data"
    write_config(sim, data, config)
    proc = await serve_headless(config, data)
    console = RemoteBackend(socket_path=data / SOCKET_NAME)
    try:
        await console.connect()
        app = build_app(console, actor="tui:tester@laptop")
        async with app.run_test(size=(120, 40)) as pilot:
            await first_frame(pilot)
            await pilot.press("p")
            await settle(pilot)
            await wait_for(
                lambda: app.state.latest is not None and app.state.latest.delivery.paused,
                10,
                "delivery paused",
            )
            old = app.state.identity
            assert old is not None
            assert old.pid == proc.pid

            proc.send_signal(signal.SIGTERM)
            await proc.wait()
            await wait_for(lambda: app.state.link.state == "lost", 10, "the console showing lost")
            await pilot.pause()
            assert "ENGINE LOST" in str(app.sub_title)

            proc = await serve_headless(config, data)
            await wait_for(
                lambda: (
                    app.state.link.state == "live"
                    and app.state.identity is not None
                    and app.state.identity.pid == proc.pid
                ),
                15,
                "the console live again on the restarted engine",
            )
            await pilot.pause()
            latest = app.state.latest
            assert latest is not None
            assert latest.delivery.paused is True  # the new engine's state: the pause kept
            new = app.state.identity
            assert new.started_at > old.started_at
            assert latest.uptime < time.time() - old.started_at
            texts = [text for _, text in app.state.activity.entries]
            (restarted,) = [text for text in texts if text.startswith("engine restarted")]
            assert f"pid {old.pid} → {new.pid}" in restarted
            after = texts[texts.index(restarted) :]
            assert "delivery resumed" not in after
            (kept,) = [text for text in after if text.startswith("delivery still paused")]
            # Who paused, since when, kept: the attached console reads it from the new engine.
            assert latest.delivery.paused_by == "tui:tester@laptop via socket"
            assert latest.delivery.pause_saved is True
            assert "(paused by tui:tester@laptop via socket since " in kept, kept
            assert kept.endswith(" UTC, kept across restarts)"), kept
            await pilot.press("q")
    finally:
        await console.aclose()
        await end_process(proc)
