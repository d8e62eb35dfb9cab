"""Running the engine: headless, under the TUI, or against the simulator (``demo``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import termios
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from wanderer_console import eventloop
from wanderer_console.command import EXIT_INVALID, EXIT_OK, one_line
from wanderer_console.config.loader import parse_settings_text
from wanderer_console.config.model import Settings
from wanderer_console.domain.tasks import cancel_and_wait
from wanderer_console.gcpolicy import (
    IdleCollector,
    SurvivorFreezer,
    freeze_startup_objects,
    raise_young_threshold,
)
from wanderer_console.runtime import Runtime
from wanderer_console.telemetry.logging import configure_logging, redact, redacted

__all__ = ["demo_settings", "run_console", "run_demo"]

log = logging.getLogger(__name__)


EXIT_HANGUP = 128 + signal.SIGHUP
"""Exit status after the terminal went away under the console (as a shell reports SIGHUP)."""

EXIT_SECOND_SIGNAL = 128
"""Plus the signal's number: the exit status after a second SIGINT (130) or SIGTERM (143) cut
the graceful stop short (as a shell reports a process that signal ended)."""


def _install_stop_signals(stop: asyncio.Event, hangup: asyncio.Event | None = None) -> None:
    """SIGINT, SIGTERM and SIGHUP (a dropped SSH session) all stop gracefully: sources first,
    in-flight Discord requests finish, the store closes, temporary demo data is removed.

    With ``hangup`` (the console UI is showing), SIGHUP sets that event instead: the terminal is
    gone, so the UI must not be shut down the usual way (see :func:`_run_tui`).

    A SIGINT or SIGTERM after any of them (Ctrl-C pressed twice, a supervisor losing patience)
    ends the process at once (:func:`_stop_now`) instead of waiting up to
    ``console.stop_grace_seconds`` for Discord. SIGHUP never does: a dropped session may deliver
    it twice (from the shell and from the kernel), and that must stay a graceful stop.
    """
    loop = asyncio.get_running_loop()
    stopping = False
    # Taken before the console UI changes the terminal, to give it back as it was.
    terminal = _terminal_modes() if hangup is not None else None

    def on_signal(sig: signal.Signals) -> None:
        nonlocal stopping
        if stopping and sig is not signal.SIGHUP:
            _stop_now(sig, terminal)
        if not stopping:
            log.info(
                f"{sig.name}: stopping gracefully (a second signal stops at once)",
                extra={"ctx": {"signal": sig.name}},
            )
        stopping = True
        (hangup if hangup is not None and sig is signal.SIGHUP else stop).set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, on_signal, sig)


_UI_UNDO: Final = (
    "\x1b[?1000l\x1b[?1003l\x1b[?1015l\x1b[?1006l\x1b[?1016l"  # mouse reports off
    "\x1b[?2004l\x1b[?2048l\x1b[?7h"  # bracketed paste and resize reports off, line wrap on
    "\x1b[<u\x1b[?1049l\x1b[?25h\x1b[?1004l"  # keyboard protocol, main screen, cursor, focus
)
"""What the console UI (Textual) writes to the terminal when it stops."""
_STDIN, _STDERR = 0, 2
"""The descriptors the console UI reads keys from (and sets modes on) and draws on."""


def _terminal_modes() -> list[Any] | None:
    """The terminal's modes on stdin, when it is a terminal (else ``None``)."""
    try:
        return termios.tcgetattr(_STDIN)
    except (termios.error, OSError):
        return None


def _give_terminal_back(modes: list[Any]) -> None:
    """Undo what the console UI did to the terminal (raw mode, alternate screen, mouse and
    focus reports, hidden cursor), as its own stop does; never raises, never waits.

    Written on a descriptor of its own, non-blocking: a terminal that takes no more output (a
    frozen session) must not hold up a stop the operator asked to be immediate, and the flag
    set on the shared one would stay on the shell's terminal."""
    with contextlib.suppress(OSError):
        path = f"/proc/self/fd/{_STDERR}"  # Textual draws on stderr
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY)
        try:
            os.write(fd, _UI_UNDO.encode())
        finally:
            os.close(fd)
    with contextlib.suppress(termios.error, OSError):
        termios.tcsetattr(_STDIN, termios.TCSANOW, modes)


def _stop_now(sig: signal.Signals, terminal: list[Any] | None = None) -> None:
    """End the process now, leaving exactly what a crash leaves, which every start handles.

    Nothing more is written: rows claimed for a send still in flight stay claimed, and the next
    start checks them as uncertain (a bot message is re-sent with its nonce, which Discord
    answers with the original); what was read but not yet written is read again from the stored
    cursors; the kernel releases the data directory's lock. Waiting here for anything (the
    store, Discord) is what the operator asked not to do. The exit status is the second
    signal's, as a shell reports a process that signal ended: not a clean stop's 0.

    One thing a crash leaves is not left: with the console UI showing, ``terminal`` (its modes
    from before the UI) is given back, or the operator's shell would stay in raw mode on a
    blank alternate screen.
    """
    if terminal is not None:
        _give_terminal_back(terminal)
    log.warning(
        f"second signal ({sig.name}): stopping now without waiting for Discord; sends still in"
        " flight are checked at the next start, as after a crash",
        extra={"ctx": {"signal": sig.name, "exit_status": EXIT_SECOND_SIGNAL + sig}},
    )
    logging.shutdown()  # flushes the log handlers
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    os._exit(EXIT_SECOND_SIGNAL + sig)


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
    activity panel and attached consoles read it), not to stdout. The start's lines are also
    held (:class:`_HeldLines`): a start that fails never shows that panel, so they are said on
    stderr as ``--no-ui`` would say them, readable, before the failure's reason. Once the
    console has gone, the engine still stops (the caller stops it): its warnings reach the shell
    as readable lines (:class:`_ReadableLines`), not as the JSON lines ``--no-ui`` writes for a
    log collector; after a failed start, every line it says, as the start's.
    """
    from wanderer_console.ui.app import run_app

    engine_log = logging.getLogger("wanderer_console")
    held = _HeldLines()
    engine_log.handlers[:] = [held]
    runtime.console.install_log_ring()
    after = _ReadableLines(logging.WARNING)
    try:
        try:
            await runtime.start()
        except BaseException:
            after = _ReadableLines(logging.NOTSET)
            held.say_on(after)
            raise
        finally:
            engine_log.removeHandler(held)
        return await run_app(runtime.console, stop)
    finally:
        stop.set()
        engine_log.handlers[:] = [*engine_log.handlers, after]


class _HeldLines(logging.Handler):
    """The engine's lines while its start runs under the console UI, kept to be said if the
    start fails (the log ring alone is read only by the console that never shows)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep ``record`` for :meth:`say_on`."""
        self.records.append(record)

    def say_on(self, handler: logging.Handler) -> None:
        """Hand every line held so far to ``handler``, in order."""
        for record in self.records:
            handler.handle(record)
        self.records.clear()


class _ReadableLines(logging.StreamHandler):  # type: ignore[type-arg]
    """The engine's lines on stderr once the console UI has gone (or never showed), one readable
    masked line each: ``wanderer-console: warning: message (key=value, ...)``.

    After the operator quit the console only warnings and errors are said (``level``): its info
    lines (``wanderer console stopped``) were for the activity panel, and printed after the quit
    a raw JSON log line was the last thing on the operator's shell. After a failed start, every
    line is, as ``--no-ui`` would say them."""

    def __init__(self, level: int) -> None:
        super().__init__(sys.stderr)
        self.setLevel(level)

    def format(self, record: logging.LogRecord) -> str:
        """``wanderer-console: LEVEL: message (context)``, on one line, its secrets masked."""
        text = f"wanderer-console: {record.levelname.lower()}: {record.getMessage()}"
        context = _context_of(record)
        if context:
            text += f" ({', '.join(f'{key}={value}' for key, value in context.items())})"
        return one_line(text)


def _context_of(record: logging.LogRecord) -> dict[str, str]:
    """A record's context (``extra={"ctx": ...}``) and its exception, as text, masked."""
    ctx = getattr(record, "ctx", None)
    out = {
        str(key): value if isinstance(value, str) else json.dumps(value, default=str)
        for key, value in (redacted(ctx) if isinstance(ctx, dict) else {}).items()
    }
    if record.exc_info and record.exc_info[1] is not None:
        error = record.exc_info[1]
        out["error"] = redact(f"{type(error).__name__}: {error}")
    return out


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
        # Maps, pilots and names loaded after start-up live long too; and a collection waits
        # for a moment the engine is idle instead of landing in a fan-out: see gcpolicy.
        freezer = asyncio.create_task(
            SurvivorFreezer(asyncio.get_running_loop()).run(), name="gc-freezer"
        )
        raise_young_threshold()  # what the collector gives back, should it ever stop
        collector = asyncio.create_task(
            IdleCollector(runtime.has_work_in_hand).run(), name="gc-idle"
        )
        try:
            if tui:

                async def nothing_more() -> None:
                    return None

                try:
                    return await _run_tui(runtime, stop, hangup, nothing_more)
                finally:
                    await runtime.stop()
            try:
                # Inside: a start that fails half way stops what it had begun (its workers, the
                # store, the lock) as any stop does, not by the loop's cancellation at exit.
                await runtime.start()
                freeze_startup_objects()
                await stop.wait()
            finally:
                await runtime.stop()
            return 0
        finally:
            await cancel_and_wait([collector, freezer])

    try:
        return eventloop.run(main(), settings.console.event_loop)
    except eventloop.EventLoopUnavailable as exc:
        print(f"wanderer-console: {exc}", file=sys.stderr)
        return EXIT_INVALID


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
{_gateway_lines(sim)}
[esi]
url = "{sim.esi_url}"

[killstream]
websocket_url = "{sim.killstream_url}"
rest_url = "{rest_url}"   # REST fallback, used only while the socket is down
recent_kills = {"true" if sim.killstream_rest is not None else "false"}   # needs the REST API

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


def _gateway_lines(sim: Any) -> str:
    """The bot's gateway settings, when the simulator runs a fake gateway."""
    if getattr(sim, "gateway", None) is None:
        return ""
    from wanderer_console.sim.simulator import SIM_APPLICATION_ID, SIM_GUILD_ID

    return f"""\
application_id = "{SIM_APPLICATION_ID}"   # connects the bot's gateway: /notifier commands
guild_id = "{SIM_GUILD_ID}"
command_role_id = "{SIM_GUILD_ID}"        # the guild's @everyone role: anyone may pause
voice_mentions = true                     # priority systems and rallies ping who is in voice
fallback_to_here = true                   # ... and @here when nobody is
"""


def demo_settings(sim: Any, *, data_dir: Path, dry_run: bool = False) -> Settings:
    """Settings that point one map at a running :class:`~wanderer_console.sim.Simulator`."""
    settings, _ = parse_settings_text(
        demo_config_text(sim, data_dir=data_dir, dry_run=dry_run), file="<demo>", environ={}
    )
    return settings


DEMO_CONFIG: Final = "demo-config.toml"
"""The demo's configuration, in its data directory (the console's config pane edits it)."""


def write_demo_config(sim: Any, *, data_dir: Path, dry_run: bool = False) -> Path:
    """Write the demo config into ``data_dir`` (owner-only) and return its path."""
    path = data_dir / DEMO_CONFIG
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
    return eventloop.run(_demo(duration, rate, seed, data_dir, tui, dry_run))


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
    kept = data_dir is not None
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wc-demo-")))
        sim = Simulator(seed=seed, killstream_rest=True, gateway=True)
        await sim.start()
        try:
            # The data directory's lock first (DataDirInUseError names the holder), the file
            # after: on a directory a running demo holds, demo-config.toml is that engine's
            # config, and this simulator's addresses in it would be hot-reloaded there.
            runtime = Runtime(
                demo_settings(sim, data_dir=data_dir, dry_run=dry_run),
                data_dir=data_dir,
                config_path=data_dir / DEMO_CONFIG,
            )
        except BaseException:
            await sim.stop()
            raise
        try:
            write_demo_config(sim, data_dir=data_dir, dry_run=dry_run)
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
            commands = asyncio.create_task(_slash_commands(sim))
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
            summary = integer_counts(
                {
                    "summary": "demo",
                    "duration": duration,
                    "scenario": scenario_summary(stats, sim.discord),
                    **runtime.summary(),
                    "discord": discord_summary(sim.discord),
                    "slash_commands": await commands,
                }
            )
            summary["verdict"] = _verdict(runtime, summary, kept=kept, dry_run=dry_run)
        finally:
            await runtime.stop()
            await sim.stop()
    if duration is None:
        return EXIT_OK
    print(summary["verdict"], file=sys.stderr, flush=True)
    print(json.dumps(summary, sort_keys=True), flush=True)
    return demo_exit_status(summary["verdict"])


async def _slash_commands(sim: Any) -> list[dict[str, str | None]]:
    """A slash command round trip over the fake gateway: a tracked system made a priority one
    (its kills then ping who is in voice), then the list; each with the console's answer."""
    gateway = sim.gateway
    if gateway is None or not sim.tracked_system_ids:
        return []
    name = sim.generator.systems[sorted(sim.tracked_system_ids)[0]].name
    asked = [
        ("system add-priority", [{"type": 2, "name": "system", "options": [
            {"type": 1, "name": "add-priority", "options": [
                {"type": 3, "name": "system", "value": name}]}]}]),
        ("priority list", [{"type": 2, "name": "priority", "options": [
            {"type": 1, "name": "list", "options": []}]}]),
    ]  # fmt: skip
    out: list[dict[str, str | None]] = []
    for command, options in asked:
        interaction = await gateway.inject_interaction(options)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(interaction.answered.wait(), 5.0)
        out.append({"command": f"/notifier {command}", "answer": interaction.final_text()})
    return out


def integer_counts(value: Any) -> Any:
    """``value`` with every whole-number float as an int (counters come out of Prometheus as
    floats: ``65.0`` notifications reads as a measurement, not a count)."""
    if isinstance(value, dict):
        return {key: integer_counts(item) for key, item in value.items()}
    if isinstance(value, list):
        return [integer_counts(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _verdict(runtime: Runtime, summary: dict[str, Any], *, kept: bool, dry_run: bool) -> str:
    """The demo's verdict, from what the engine's store says of each kill Discord did not get."""
    from wanderer_console.pipeline.diagnose import StoredEvents

    scenario = summary.get("scenario") or {}
    store = StoredEvents(runtime.store.path)
    missing = {
        kill: MissingKill(
            received=store.killmail(kill) is not None,
            rows=tuple(row["status"] for row in store.notifications(kill)),
        )
        for kill in scenario.get("kills_missing", [])
    }
    return demo_verdict(summary, missing, kept=kept, dry_run=dry_run)


@dataclass(frozen=True, slots=True)
class MissingKill:
    """What became of an expected kill Discord did not receive."""

    received: bool
    """The engine stored it (it was read from the killstream)."""
    rows: tuple[str, ...]
    """The states of its outbox rows (none: no notification was queued)."""


_PROBLEM: Final = "demo verdict: PROBLEM — "
"""How a verdict naming a problem starts (:func:`demo_exit_status` reads it)."""


def demo_exit_status(verdict: str) -> int:
    """1 when the verdict names a problem, else 0: the demo is a smoke test (``make demo``, a
    script after an install), and a lost kill or a duplicate must fail it."""
    return EXIT_INVALID if verdict.startswith(_PROBLEM) else EXIT_OK


def demo_verdict(
    summary: dict[str, Any],
    missing: dict[int, MissingKill],
    *,
    kept: bool,
    dry_run: bool = False,
) -> str:
    """One line: did the demo deliver what it should, and what became of what it did not.

    A kill whose notification is still pending is waiting its turn at Discord's rate limits, not
    lost; one the simulator sent but the engine had not read when the demo stopped is unread,
    not lost by the engine. A kill the engine read but queued nothing for, a notification that
    failed for good, a duplicate, an untracked kill notified or an error is a problem. ``kept``:
    the data directory outlives the demo (``--data-dir``), so what waits is delivered at the next
    start. ``dry_run``: a notification is marked sent once rendered and logged, and Discord
    gets nothing, so a kill whose rows are all sent was rendered as asked, not lost.
    """
    scenario = summary.get("scenario") or {}
    expected = int(scenario.get("kills_expected", 0))
    waiting = [k for k, m in missing.items() if any(s in ("pending", "sending") for s in m.rows)]
    rendered = [
        k for k, m in missing.items() if dry_run and m.rows and all(s == "sent" for s in m.rows)
    ]
    failed = [k for k, m in missing.items() if m.rows and k not in waiting and k not in rendered]
    dropped = [k for k, m in missing.items() if m.received and not m.rows]
    unread = [k for k, m in missing.items() if not m.received and not m.rows]
    duplicates = int((summary.get("discord") or {}).get("duplicate_deliveries", 0))
    untracked = scenario.get("untracked_kills_notified", [])
    errors = int(summary.get("errors", 0))
    parts = [f"{expected - len(missing)} of {expected} expected kills delivered"]
    if waiting:
        later = (
            "delivered at the next start"
            if kept
            else "the demo's temporary data directory goes with it; --data-dir keeps it"
        )
        parts.append(f"{len(waiting)} pending (rate limited), not lost: in the outbox ({later})")
    if rendered:
        parts.append(f"{len(rendered)} rendered and logged, not sent (--dry-run)")
    if unread:
        parts.append(f"{len(unread)} still unread from the killstream when the demo stopped")
    problems: list[str] = []
    if dropped:
        problems.append(f"{len(dropped)} kill(s) read but never queued: {dropped[:5]}")
    if failed:
        problems.append(f"{len(failed)} kill(s) failed for good: {failed[:5]}")
    if duplicates:
        problems.append(f"{duplicates} duplicate deliveries")
    if untracked:
        problems.append(f"{len(untracked)} untracked kill(s) notified: {untracked[:5]}")
    if errors:
        problems.append(f"{errors} error(s)")
    if problems:
        return f"{_PROBLEM}{'; '.join(parts + problems)}"
    return f"demo verdict: OK — {'; '.join(parts)}; no duplicates, no errors"


async def _wait_connected(runtime: Runtime, *, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        states = [c["state"] for c in runtime.snapshot()["connections"]]
        if states and all(state == "connected" for state in states) and len(states) >= 2:
            return
        await asyncio.sleep(0.05)
    log.warning("demo: not every source connected in time; continuing")
