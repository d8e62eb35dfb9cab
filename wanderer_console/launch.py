"""Running the engine: headless, under the TUI, or against the simulator (``demo``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from wanderer_console.config.loader import parse_settings_text
from wanderer_console.config.model import Settings
from wanderer_console.gcpolicy import freeze_startup_objects
from wanderer_console.runtime import Runtime
from wanderer_console.telemetry.logging import configure_logging

__all__ = ["demo_settings", "run_console", "run_demo"]

log = logging.getLogger(__name__)


EXIT_HANGUP = 128 + signal.SIGHUP
"""Exit status after the terminal went away under the console (as a shell reports SIGHUP)."""


def _install_stop_signals(stop: asyncio.Event, hangup: asyncio.Event | None = None) -> None:
    """SIGINT, SIGTERM and SIGHUP (a dropped SSH session) all stop gracefully: sources first,
    in-flight Discord requests finish, the store closes, temporary demo data is removed.

    With ``hangup`` (the console UI is showing), SIGHUP sets that event instead: the terminal is
    gone, so the UI must not be shut down the usual way (see :func:`_run_tui`).
    """
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, (hangup or stop).set)


async def _run_tui(
    runtime: Runtime,
    stop: asyncio.Event,
    hangup: asyncio.Event,
    on_hangup: Callable[[], Awaitable[None]],
) -> int:
    """Start ``runtime`` and run the operator console until it quits, ``stop`` or ``hangup``.

    Textual is imported only then, never at module level, so ``--no-ui`` never loads it. The
    caller stops the runtime. On a hangup the terminal is already gone: Textual's output thread
    dies on the first failed write and its shutdown then waits for that thread forever. So the
    engine is stopped gracefully and cleaned up by ``on_hangup``, and the process ends without
    handing control back to Textual.
    """
    tui = asyncio.create_task(_console_on(runtime, stop))
    hung = asyncio.create_task(hangup.wait())
    await asyncio.wait({tui, hung}, return_when=asyncio.FIRST_COMPLETED)
    if tui.done():
        hung.cancel()
        return tui.result()
    log.warning("terminal hung up (SIGHUP); stopping the engine")
    await runtime.stop()
    await on_hangup()
    logging.shutdown()
    os._exit(EXIT_HANGUP)


async def _console_on(runtime: Runtime, stop: asyncio.Event) -> int:
    """Start ``runtime`` and run the console on its :class:`LocalBackend` until quit or ``stop``.

    While the console owns the terminal, engine log lines go only to the engine's log ring (the
    activity panel and attached consoles read it), not to stdout.
    """
    from wanderer_console.ui.app import run_app

    engine_log = logging.getLogger("wanderer_console")
    saved_handlers = engine_log.handlers[:]
    engine_log.handlers[:] = []
    runtime.console.install_log_ring()
    try:
        await runtime.start()
        return await run_app(runtime.console, stop)
    finally:
        stop.set()
        engine_log.handlers[:] = [*saved_handlers, *engine_log.handlers]


def run_console(
    settings: Settings,
    *,
    data_dir: Path | None,
    tui: bool,
    log_level: str = "INFO",
    config_path: Path | None = None,
) -> int:
    """Run the engine until SIGINT/SIGTERM (or until the operator quits the console)."""
    configure_logging(log_level)

    async def main() -> int:
        stop, hangup = asyncio.Event(), asyncio.Event()
        _install_stop_signals(stop, hangup if tui else None)
        runtime = Runtime(settings, data_dir=data_dir, config_path=config_path)
        if tui:

            async def nothing_more() -> None:
                return None

            try:
                return await _run_tui(runtime, stop, hangup, nothing_more)
            finally:
                await runtime.stop()
        await runtime.start()
        freeze_startup_objects()
        try:
            await stop.wait()
        finally:
            await runtime.stop()
        return 0

    return asyncio.run(main())


def demo_config_text(sim: Any, *, data_dir: Path, dry_run: bool = False) -> str:
    """A commented TOML config that points one map at a running simulator.

    The demo writes it into its data directory, so the console's toggles, config pane and hot
    reload work on it exactly as on an operator's file.
    """
    rest_url = (
        sim.killstream_rest_url
        if sim.killstream_rest is not None
        else sim.killstream_url.replace("ws://", "http://")
    )
    return f"""\
# Wanderer Console demo: every service below is the built-in simulator on loopback.
[console]
data_dir = "{data_dir}"
dry_run = {"true" if dry_run else "false"}
startup_suppression_seconds = 0   # the simulator starts fresh: nothing to mute

[notifications]
enabled = true
kill = true
system = true
character = true
rally = true

[discord]
api_url = "{sim.discord_api_url}"
bot_token = "{sim.bot_token}"

[esi]
url = "{sim.esi_url}"

[killstream]
websocket_url = "{sim.killstream_url}"
rest_url = "{rest_url}"   # REST fallback, used only while the socket is down

[maps.{sim.map_slug}]
url = "{sim.map_url}"
api_key = "{sim.map_api_key}"
name = "Demo Map"

[maps.{sim.map_slug}.discord]
webhook_url = "{sim.webhook_url("primary")}"
system_kill_webhook_url = "{sim.webhook_url("system-kills")}"
character_kill_webhook_url = "{sim.webhook_url("character-kills")}"
system_channel_id = "100000000000000001"   # new systems go through the bot transport
rally_webhook_url = "{sim.webhook_url("rally")}"
rally_group_ids = ["200000000000000002"]
"""


def demo_settings(sim: Any, *, data_dir: Path, dry_run: bool = False) -> Settings:
    """Settings that point one map at a running :class:`~wanderer_console.sim.Simulator`."""
    settings, _ = parse_settings_text(
        demo_config_text(sim, data_dir=data_dir, dry_run=dry_run), file="<demo>", environ={}
    )
    return settings


def write_demo_config(sim: Any, *, data_dir: Path, dry_run: bool = False) -> Path:
    """Write the demo config into ``data_dir`` (owner-only) and return its path."""
    path = data_dir / "demo-config.toml"
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(demo_config_text(sim, data_dir=data_dir, dry_run=dry_run), encoding="utf-8")
    path.chmod(0o600)
    return path


def run_demo(
    *,
    duration: float | None,
    rate: float,
    seed: int,
    data_dir: Path | None,
    tui: bool,
    dry_run: bool = False,
    log_level: str = "INFO",
) -> int:
    """Start the simulator and the console against it; print a JSON summary with ``duration``."""
    configure_logging(log_level)
    return asyncio.run(_demo(duration, rate, seed, data_dir, tui, dry_run))


async def _demo(
    duration: float | None,
    rate: float,
    seed: int,
    data_dir: Path | None,
    tui: bool,
    dry_run: bool,
) -> int:
    from wanderer_console.sim import Simulator, discord_summary, scenario_summary

    stop, hangup = asyncio.Event(), asyncio.Event()
    _install_stop_signals(stop, hangup if tui else None)
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wc-demo-")))
        sim = Simulator(seed=seed, killstream_rest=True)
        await sim.start()
        config_path = write_demo_config(sim, data_dir=data_dir, dry_run=dry_run)
        runtime = Runtime(
            demo_settings(sim, data_dir=data_dir, dry_run=dry_run),
            data_dir=data_dir,
            config_path=config_path,
        )
        try:
            if tui:
                feed = asyncio.create_task(sim.run_scenario(10**9, rate=rate, stop=stop))

                async def clean_up() -> None:
                    feed.cancel()
                    await sim.stop()
                    stack.close()  # the temporary data directory

                try:
                    return await _run_tui(runtime, stop, hangup, clean_up)
                finally:
                    stop.set()
                    feed.cancel()
            await runtime.start()
            await _wait_connected(runtime, timeout=10.0)
            scenario_time = None if duration is None else max(1.0, duration - 2.0)
            scenario = asyncio.create_task(
                sim.run_scenario(scenario_time or 10**9, rate=rate, stop=stop)
            )
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({scenario, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stop.set()
            stats = await scenario if scenario.done() else None
            scenario.cancel()
            stopper.cancel()
            await runtime.drain(timeout=max(2.0, (duration or 0) * 0.1))
            summary = {
                "summary": "demo",
                "duration": duration,
                "scenario": scenario_summary(stats, sim.discord),
                **runtime.summary(),
                "discord": discord_summary(sim.discord),
            }
        finally:
            await runtime.stop()
            await sim.stop()
    if duration is not None:
        print(json.dumps(summary, sort_keys=True), flush=True)
    return 0


async def _wait_connected(runtime: Runtime, *, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        states = [c["state"] for c in runtime.snapshot()["connections"]]
        if states and all(state == "connected" for state in states) and len(states) >= 2:
            return
        await asyncio.sleep(0.05)
    log.warning("demo: not every source connected in time; continuing")
