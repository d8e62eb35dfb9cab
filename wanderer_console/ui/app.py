"""The operator console: :class:`WandererApp`, its one factory, and the launcher helper.

Tests and the CLI build the app the same way, through :func:`build_app`, with any object that has
a ``snapshot()`` method: the :class:`~wanderer_console.runtime.Runtime`, or a seeded fake.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import Screen

from wanderer_console.config.model import Settings
from wanderer_console.gcpolicy import freeze_startup_objects
from wanderer_console.ui.clock import Clock, SystemClock
from wanderer_console.ui.commands import ConsoleCommands
from wanderer_console.ui.flags import FlagRef, flags_for, set_flag, write_flag, write_value
from wanderer_console.ui.model import (
    ActivityLog,
    ConsoleState,
    LogRecordBuffer,
    SnapshotSource,
    ThroughputHistory,
    dispatcher_of,
    retrier_of,
)
from wanderer_console.ui.screens.config import ConfigScreen, reload_config
from wanderer_console.ui.screens.dashboard import DashboardScreen
from wanderer_console.ui.screens.help import HelpScreen
from wanderer_console.ui.screens.toggles import TogglesScreen
from wanderer_console.ui.themes import DOMAIN_VARIABLES, load_themes, select_theme

__all__ = ["SnapshotSource", "WandererApp", "binding_ids", "build_app", "run_tui"]

log = logging.getLogger(__name__)


GC_FREEZE_AFTER_SECONDS = 1.0
"""After mounting, when the start-up objects are frozen for the collector (see gcpolicy)."""
TOGGLES = "toggles"
"""Name of the installed (kept) toggles screen."""
SETTINGS_SYNC_SECONDS = 1.0
"""How often the app checks the live settings for a new theme or keymap (after a hot reload)."""


class WandererApp(App[int]):
    """Dashboard, toggles, config pane and help over a snapshot source."""

    CSS_PATH = "styles/app.tcss"
    TITLE = "Wanderer Console"
    COMMANDS = App.COMMANDS | {ConsoleCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("d", "dashboard", "Dashboard", id="app.dashboard"),
        Binding("t", "toggles", "Toggles", id="app.toggles"),
        Binding("c", "config", "Config", id="app.config"),
        Binding("p", "pause", "Pause/resume", id="app.pause"),
        Binding("question_mark", "help", "Help", id="app.help"),
    ]

    def __init__(
        self, state: ConsoleState, *, theme: str | None = None, settle_gc: bool = False
    ) -> None:
        super().__init__()
        self.state = state
        """Shared console state."""
        self.settle_gc = settle_gc
        """Freeze the start-up objects for the garbage collector once mounted (real runs; see
        :mod:`wanderer_console.gcpolicy`). Tests leave it off: they start many apps in one
        process, and a frozen app's reference cycles would never be collected."""
        themes = load_themes()
        for candidate in themes.values():
            self.register_theme(candidate)
        self.console_themes: list[str] = sorted(themes)
        """The themes loaded from ``themes/*.toml`` (the palette offers these)."""
        self.theme = select_theme(themes, theme).name
        self._applied_theme: str = state.settings.console.theme
        self._applied_keymap: dict[str, str] = dict(state.settings.keymap)
        self.set_keymap(self._applied_keymap)

    # -- setup -----------------------------------------------------------------------------------

    def get_theme_variable_defaults(self) -> dict[str, str]:
        """Domain colours, so CSS using ``$health-ok`` works under any theme."""
        return dict(DOMAIN_VARIABLES)

    def get_default_screen(self) -> Screen[Any]:
        """The dashboard."""
        return DashboardScreen(self.state)

    def on_mount(self) -> None:
        """Warn about keymap entries that name no binding; follow settings changes."""
        # Built once and kept while hidden: a switch then shows a ready screen instead of
        # composing and mounting one (most of a switch's cost in the latency benchmark).
        self.install_screen(TogglesScreen(self.state), name=TOGGLES)
        self._check_keymap(self._applied_keymap)
        self.set_interval(SETTINGS_SYNC_SECONDS, self.sync_settings)
        if self.settle_gc:
            # Once the first screen is up, what exists will live as long as the process.
            self.set_timer(GC_FREEZE_AFTER_SECONDS, freeze_startup_objects)

    def _check_keymap(self, keymap: dict[str, str]) -> None:
        unknown = sorted(set(keymap) - binding_ids())
        if unknown:
            self.notify(
                f"[keymap] names no binding: {', '.join(unknown)} (see ? for the ids)",
                severity="warning",
                timeout=10,
            )

    def sync_settings(self) -> None:
        """Pick up a hot-reloaded settings object, then its theme and keymap if they changed.

        Only a *change* of ``console.theme`` switches the theme, so a theme picked from Textual's
        own theme command is not undone a second later.
        """
        live = getattr(self.state.source, "settings", None)
        if isinstance(live, Settings) and live is not self.state.settings:
            self.state.settings = live
            for screen in self.screen_stack:
                if isinstance(screen, TogglesScreen):
                    screen.refresh_flags()
        settings = self.state.settings
        if settings.console.theme != self._applied_theme:
            self._applied_theme = settings.console.theme
            if settings.console.theme in self.console_themes:
                self.theme = settings.console.theme
            else:
                self.notify(f"Unknown theme {settings.console.theme!r}", severity="warning")
        if settings.keymap != self._applied_keymap:
            self._applied_keymap = dict(settings.keymap)
            self.set_keymap(self._applied_keymap)
            self._check_keymap(self._applied_keymap)

    # -- actions ---------------------------------------------------------------------------------

    def action_dashboard(self) -> None:
        """Back to the dashboard."""
        while len(self.screen_stack) > 1:
            self.pop_screen()

    def action_toggles(self) -> None:
        """Show the notification switches."""
        if isinstance(self.screen, TogglesScreen):
            return
        self.action_dashboard()
        self.push_screen(TOGGLES)

    def action_config(self) -> None:
        """Show the config pane."""
        if isinstance(self.screen, ConfigScreen):
            return
        self.action_dashboard()
        self.push_screen(ConfigScreen(self.state))

    def action_reload_config(self) -> None:
        """Have the engine re-read the config file now."""
        summary = reload_config(self.state)
        self.state.activity.add(self.state.clock.wall(), f"operator asked for a reload: {summary}")
        self.notify(summary[:1].upper() + summary[1:])

    def switch_theme(self, name: str) -> None:
        """Switch to theme ``name`` now and save it as ``console.theme`` when there is a file."""
        if name not in self.console_themes:
            self.notify(f"Unknown theme {name!r}", severity="error")
            return
        self.theme = name
        self.state.settings.console.theme = name
        self._applied_theme = name
        path = self.state.config_path
        if path is None:
            return
        try:
            write_value(Path(path), ("console", "theme"), name)
        except (OSError, ValueError) as exc:
            self.notify(f"Theme applied, but not saved to {path}: {exc}", severity="error")

    def action_help(self) -> None:
        """Show the key bindings."""
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(
            HelpScreen(
                [
                    ("Everywhere", self.BINDINGS),
                    ("Toggles screen", TogglesScreen.BINDINGS),
                    ("Config pane", ConfigScreen.BINDINGS),
                    ("Help", HelpScreen.BINDINGS),
                ]
            )
        )

    def action_pause(self) -> None:
        """Pause or resume delivery, when the source has a dispatcher."""
        dispatcher = dispatcher_of(self.state.source)
        if dispatcher is None:
            self.notify("This source has no dispatcher to pause.", severity="warning")
            return
        dispatcher.paused = not dispatcher.paused
        word = "paused" if dispatcher.paused else "resumed"
        self.state.activity.add(self.state.clock.wall(), f"operator {word} delivery")
        self.notify(f"Delivery {word}.")

    def retry_dead_target(self, target_key: str) -> int | None:
        """Revive a dead target (the palette offers one entry per dead target); toast the count.

        Returns how many failed notifications were re-queued, or ``None`` when nothing was done.
        """
        retrier = retrier_of(self.state.source)
        if retrier is None:
            self.notify("This source has no dispatcher to retry a target.", severity="warning")
            return None
        try:
            requeued = retrier.retry_target(target_key)
        except Exception as exc:  # e.g. the store cannot write: say so, keep the console up
            self.notify(f"Could not retry {target_key}: {exc}", severity="error", timeout=10)
            return None
        plural = "" if requeued == 1 else "s"
        self.state.activity.add(
            self.state.clock.wall(),
            f"operator retried dead target {target_key}: {requeued} re-queued",
        )
        self.notify(
            f"Retrying {target_key}: {requeued} notification{plural} re-queued;"
            " its held ones go out now."
        )
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen):
                screen.poll()  # show the revived target now, not at the next tick
        return requeued

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide pause/resume for sources without a dispatcher."""
        if action == "pause":
            return dispatcher_of(self.state.source) is not None
        return True

    def toggle_flag(self, ref: FlagRef) -> bool:
        """Flip one flag live, save it when there is a config file; returns the new value."""
        settings = self.state.settings
        value = not bool(getattr(flags_for(settings, ref.tenant), ref.flag))
        set_flag(settings, ref, value)
        word = "on" if value else "off"
        self.state.activity.add(self.state.clock.wall(), f"{ref.label} notifications {word}")
        path = self.state.config_path
        if path is not None:
            try:
                write_flag(Path(path), ref, value)
            except (OSError, ValueError) as exc:
                self.notify(f"Applied, but not saved to {path}: {exc}", severity="error")
            else:
                self.notify(f"{ref.label} notifications {word} (saved)")
        else:
            self.notify(f"{ref.label} notifications {word} (not saved: no config file)")
        for screen in self.screen_stack:
            if isinstance(screen, TogglesScreen):
                screen.refresh_flags()
        return value


def binding_ids() -> set[str]:
    """Every binding id a ``[keymap]`` entry may name."""
    ids: set[str] = set()
    for owner in (WandererApp, DashboardScreen, TogglesScreen, ConfigScreen, HelpScreen):
        for binding in owner.BINDINGS:
            if isinstance(binding, Binding) and binding.id:
                ids.add(binding.id)
    return ids


def build_app(
    source: SnapshotSource,
    *,
    settings: Settings,
    config_path: Path | None,
    clock: Clock | None = None,
    theme: str | None = None,
    history: ThroughputHistory | None = None,
    log_buffer: LogRecordBuffer | None = None,
    settle_gc: bool = False,
) -> WandererApp:
    """The one way to make the console, for the CLI and for tests alike.

    ``theme`` defaults to ``settings.console.theme``; ``history`` may be pre-seeded (tests);
    ``settle_gc`` is for a process that runs this one app (the CLI and the benchmark).
    """
    state = ConsoleState(
        source=source,
        settings=settings,
        config_path=config_path,
        clock=clock or SystemClock(),
        history=history or ThroughputHistory(),
        activity=ActivityLog(),
        log_buffer=log_buffer,
    )
    return WandererApp(state, theme=theme or settings.console.theme, settle_gc=settle_gc)


async def run_tui(runtime: Any, stop: asyncio.Event, *, config_path: Path | None = None) -> int:
    """Start ``runtime`` and run the console in the current event loop until quit or ``stop``.

    Engine logs go to the activity panel instead of the terminal while the UI owns it. The caller
    stops the runtime afterwards.
    """
    engine_log = logging.getLogger("wanderer_console")
    saved_handlers = engine_log.handlers[:]
    buffer = LogRecordBuffer()
    engine_log.handlers[:] = [buffer]
    app = build_app(
        runtime,
        settings=runtime.settings,
        config_path=config_path,
        theme=runtime.settings.console.theme,
        log_buffer=buffer,
        settle_gc=True,
    )

    async def exit_on_stop() -> None:
        await stop.wait()
        app.exit(0)

    watcher = asyncio.create_task(exit_on_stop())
    try:
        await runtime.start()
        await app.run_async()
    finally:
        stop.set()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        engine_log.handlers[:] = saved_handlers
    return app.return_code or 0
