"""The operator console: :class:`WandererApp`, its one factory, and :func:`run_app`.

The console talks to its engine only through a
:class:`~wanderer_console.console_api.ConsoleBackend`: the engine in this process
(:class:`~wanderer_console.control.local.LocalBackend`), one attached over its control endpoint, or
a test fake. Tests and the CLI build the app the same way, through :func:`build_app`.

What the console shows comes from the backend's frames (the dashboard follows them); what it does
is an operation on the backend (pause, a flag, the theme, a config edit, a reload, a retry), run
in a worker so a slow or lost engine never freezes the keyboard. A refusal or a lost engine is an
error toast; the console stays up.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import socket
from collections.abc import Awaitable, Coroutine
from typing import Any, ClassVar, TypeVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.worker import Worker

from wanderer_console.console_api import (
    ApplyResult,
    BackendError,
    ConsoleBackend,
    Frame,
    OperationResult,
    TrackerView,
)
from wanderer_console.domain.tasks import cancel_and_wait
from wanderer_console.gcpolicy import freeze_startup_objects
from wanderer_console.ui.clock import Clock, SystemClock
from wanderer_console.ui.commands import ConsoleCommands
from wanderer_console.ui.faults import rejected_config, rejection_toast
from wanderer_console.ui.flags import FlagRef, flag_value
from wanderer_console.ui.keynames import key_problem
from wanderer_console.ui.model import (
    ActivityLog,
    ConsoleState,
    FrameChange,
    ThroughputHistory,
    engine_label,
)
from wanderer_console.ui.printable import printable
from wanderer_console.ui.screens.alerts import AlertsScreen
from wanderer_console.ui.screens.choice import Choice, ChoiceScreen
from wanderer_console.ui.screens.config import ConfigScreen, reload_summary
from wanderer_console.ui.screens.dashboard import DashboardScreen, FilterInput
from wanderer_console.ui.screens.detail import DetailScreen
from wanderer_console.ui.screens.events import EventDetailScreen, EventsScreen, SearchInput
from wanderer_console.ui.screens.help import HelpScreen
from wanderer_console.ui.screens.priority import PriorityScreen
from wanderer_console.ui.screens.toggles import TogglesScreen
from wanderer_console.ui.screens.trackers import TrackersScreen
from wanderer_console.ui.screens.trends import TrendsScreen
from wanderer_console.ui.themes import DOMAIN_VARIABLES, load_themes, select_theme
from wanderer_console.ui.widgets.delivery import DeliveryTable

__all__ = [
    "OPERATIONS",
    "WandererApp",
    "binding_ids",
    "build_app",
    "default_actor",
    "default_keys",
    "keymap_clashes",
    "pending_notifications",
    "run_app",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

GC_FREEZE_AFTER_SECONDS = 1.0
"""After mounting, when the start-up objects are frozen for the collector (see gcpolicy)."""
TOGGLES = "toggles"
"""Name of the installed (kept) toggles screen."""
OPERATIONS = "operations"
"""The worker group operations on the backend run in (tests wait for it)."""
FIRST_SNAPSHOT_SECONDS = 3.0
"""How long :func:`run_app` waits for a first snapshot (for the theme) before starting anyway."""


class WandererApp(App[int]):
    """Dashboard, toggles, config pane and help over a :class:`ConsoleBackend`."""

    CSS_PATH = "styles/app.tcss"
    TITLE = "Wanderer Console"
    COMMANDS = App.COMMANDS | {ConsoleCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("d", "dashboard", "Dashboard", id="app.dashboard"),
        Binding("t", "toggles", "Toggles", id="app.toggles"),
        Binding("c", "config", "Config", id="app.config"),
        Binding("a", "alerts", "Alerts", show=False, id="app.alerts"),
        Binding("g", "trends", "Trends", show=False, id="app.trends"),
        Binding("p", "pause", "Pause/resume", id="app.pause"),
        Binding("e", "events", "Events", show=False, id="app.events"),
        Binding("s", "priority", "Priority systems", show=False, id="app.priority"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("k", "trackers", "Trackers", id="app.trackers", show=False),
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
        self._theme_given = theme is not None
        self.theme = select_theme(themes, theme).name
        self._applied_theme: str | None = None
        """``console.theme`` as last applied from a snapshot (``None`` before the first)."""
        self._applied_keymap: dict[str, str] = {}
        """``[keymap]`` as the last snapshot gave it (a change is applied)."""
        self._keymap: dict[str, str] = {}
        """The keymap in force: the entries whose keys are all keys (an entry naming no key
        keeps what its binding had: its default, or the keys an earlier keymap gave it)."""
        self._lost_announced = False
        self._announced_rejection: tuple[str, ...] = ()
        self._quit_question: ChoiceScreen | None = None
        self.toggles = TogglesScreen(state)
        """The toggles screen, built once and kept while hidden."""
        self.started = asyncio.Event()
        """Set once the first screen is built and drawn (Textual's ``Ready``): exiting before
        that tore the dashboard down while it was being built (``NoMatches``, exit code 1)."""

    # -- setup -----------------------------------------------------------------------------------

    def get_theme_variable_defaults(self) -> dict[str, str]:
        """Domain colours, so CSS using ``$health-ok`` works under any theme."""
        return dict(DOMAIN_VARIABLES)

    def get_default_screen(self) -> Screen[Any]:
        """The dashboard (it follows the backend's frames)."""
        return DashboardScreen(self.state)

    def on_ready(self) -> None:
        """The first screen is up: a stop may end the app now (:func:`run_app`)."""
        self.started.set()

    def on_mount(self) -> None:
        """Install the kept toggles screen; freeze start-up objects when asked."""
        # Built once and kept while hidden: a switch then shows a ready screen instead of
        # composing and mounting one (most of a switch's cost in the latency benchmark).
        self.install_screen(self.toggles, name=TOGGLES)
        if self.settle_gc:
            # Once the first screen is up, what exists will live as long as the process.
            self.set_timer(GC_FREEZE_AFTER_SECONDS, freeze_startup_objects)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Show a toast, always as plain text (``markup`` is ignored).

        Toasts carry what the operator typed and what the engine said (a value, a system or map
        name, an error message, a ``[section]``). Read as Textual markup, a bracketed word
        vanished (``[keymap] names no binding`` lost its first word) and ``[/]`` raised
        ``MarkupError`` while the toast was drawn, ending the console. Screens call this too
        (``Widget.notify`` passes ``markup=True`` on), so it is decided here, once.
        """
        message, title = printable(message), printable(title)  # no escape reaches the terminal
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def _apply_keymap(self, keymap: dict[str, str]) -> None:
        """Apply ``keymap`` but the entries whose keys are not keys (each said in a toast,
        with what is valid): those keep what they run on now."""
        kept = self._keymap
        applied: dict[str, str] = {}
        for binding_id, keys in sorted(keymap.items()):
            problem = key_problem(keys)
            if problem is None:
                applied[binding_id] = keys
                continue
            now = kept.get(binding_id) or default_keys(binding_id)
            if binding_id in kept:
                applied[binding_id] = kept[binding_id]
            self.notify(
                f"[keymap] {binding_id} = {keys!r}: {problem}."
                + (f" {binding_id} keeps {now}" if now else ""),
                severity="warning",
                timeout=10,
            )
        self._keymap = applied
        self.set_keymap(applied)
        self._check_keymap(keymap, applied)

    def _check_keymap(self, keymap: dict[str, str], applied: dict[str, str]) -> None:
        unknown = sorted(set(keymap) - binding_ids())
        if unknown:
            self.notify(
                f"[keymap] names no binding: {', '.join(unknown)} (see ? for the ids)",
                severity="warning",
                timeout=10,
            )
        for key, taker, lost in keymap_clashes(applied):
            self.notify(
                f"[keymap] gives {key} to {taker}: {key} no longer runs {lost}"
                " (move one of them, see ? for the ids)",
                severity="warning",
                timeout=10,
            )

    # -- frames ----------------------------------------------------------------------------------

    def frame_shown(self, change: FrameChange) -> None:
        """After the dashboard rendered a frame: settings, title, link, the other screens."""
        if change.settings_changed:
            self.sync_settings()
        self._show_engine()
        if change.link_changed:
            self._announce_link()
        self._announce_rejection()
        self.toggles.refresh_flags()
        self._follow_quit_question()
        for screen in self.screen_stack:
            if isinstance(screen, ConfigScreen):
                screen.follow(self.state.config, relinked=change.link_changed and self.state.live)
            elif isinstance(screen, DetailScreen):
                screen.refresh_detail()
            elif isinstance(screen, AlertsScreen):
                screen.refresh_rules()
            elif isinstance(screen, PriorityScreen):
                screen.refresh_list()
            elif isinstance(screen, TrackersScreen):
                screen.refresh_trackers()

    def _announce_rejection(self) -> None:
        """A config change the engine rejected (from any console, or the file edited on its host)
        raises a toast once; the badge stays until it is fixed or dismissed."""
        config = rejected_config(self.state.config)
        errors = () if config is None else config.errors
        if errors == self._announced_rejection:
            return
        self._announced_rejection = errors
        if config is not None:
            self.notify(rejection_toast(config), severity="error", timeout=15)

    def sync_settings(self) -> None:
        """Apply the snapshot's theme and keymap when they changed.

        Only a *change* of ``console.theme`` switches the theme, so a theme picked from Textual's
        own theme command is not undone at the next frame. The first snapshot's theme is applied
        unless the app was built with a theme of its own.
        """
        settings = self.state.settings
        if self._applied_theme is None:
            self._applied_theme = settings.theme
            if not self._theme_given:
                self._use_theme(settings.theme)
        elif settings.theme != self._applied_theme:
            self._applied_theme = settings.theme
            self._use_theme(settings.theme)
        if settings.keymap != self._applied_keymap:
            self._applied_keymap = dict(settings.keymap)
            self._apply_keymap(self._applied_keymap)

    def _use_theme(self, name: str) -> None:
        if name in self.console_themes:
            if self.theme != name:
                self.theme = name
        else:
            self.notify(f"Unknown theme {name!r}", severity="warning")

    def _show_engine(self) -> None:
        """The title bar of every screen says which engine this is, and when it is lost."""
        state = self.state
        label = engine_label(state.identity, state.latest) if state.identity is not None else ""
        if not state.live:
            label = " · ".join(
                part for part in (f"ENGINE {state.link.state.upper()}", label) if part
            )
        if label != self.sub_title:
            self.sub_title = label

    def _announce_link(self) -> None:
        link = self.state.link
        if link.state == "live":
            if self._lost_announced:
                self._lost_announced = False
                self.notify("Engine back: the figures are live again.")
            return
        if self.state.live_at is None:
            return  # never had a live frame: the badge says it is connecting
        self._lost_announced = True
        detail = link.detail or "no answer"
        if link.state == "refused":  # not retried: the detail says what to do
            self.notify(f"Engine refused this console: {detail}", severity="error", timeout=30)
            return
        self.notify(
            f"Engine {link.state}: {detail} — reconnecting…; the dashboard shows the last figures",
            severity="error" if link.state == "lost" else "warning",
            timeout=10,
        )

    def _dashboard(self) -> DashboardScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen):
                return screen
        return None

    async def refresh_now(self) -> None:
        """Show the engine as it is now (after an operation), not at the next frame."""
        try:
            snapshot = await self.state.backend.snapshot()
        except BackendError:
            return  # the next frame will say what is going on
        dashboard = self._dashboard()
        if dashboard is not None and dashboard.is_mounted:
            dashboard.show_frame(
                Frame(snapshot=snapshot, link=self.state.link, identity=self.state.identity)
            )

    # -- operations ------------------------------------------------------------------------------

    def operate(self, job: Coroutine[Any, Any, object], name: str) -> Worker[object]:
        """Run ``job`` (an operation on the backend) in the background."""
        return self.run_worker(job, name=f"console {name}", group=OPERATIONS)

    async def call(self, failure: str, call: Awaitable[T]) -> T | None:
        """Await one backend call; a refusal or a lost engine is an error toast, never a crash.

        ``failure`` starts the toast (``Could not retry webhook:1``); ``None`` when it failed.
        """
        try:
            return await call
        except BackendError as exc:
            self.notify(f"{failure}: {exc}", severity="error", timeout=10)
        except Exception as exc:  # an engine bug must not take the console down
            log.exception("%s", failure)
            self.notify(f"{failure}: {type(exc).__name__}: {exc}", severity="error", timeout=10)
        return None

    def _toast(self, result: OperationResult) -> None:
        self.notify(result.message, severity="information" if result.ok else "warning")

    def action_pause(self) -> None:
        """Pause or resume delivery."""
        self.operate(self.toggle_pause(), "pause")

    async def toggle_pause(self) -> OperationResult | None:
        """Pause delivery when it runs, resume it when paused (as the latest snapshot says)."""
        latest = self.state.latest
        paused = not (latest is not None and latest.delivery.paused)
        word = "pause" if paused else "resume"
        result = await self.call(
            f"Could not {word} delivery",
            self.state.backend.set_paused(paused, actor=self.state.actor),
        )
        if result is not None:
            self._toast(result)
            await self.refresh_now()
        return result

    def flip_flag(self, ref: FlagRef) -> None:
        """Flip one notification switch (the toggles screen and the palette)."""
        self.operate(self.toggle_flag(ref), f"flag {ref.label}")

    async def toggle_flag(self, ref: FlagRef) -> OperationResult | None:
        """Have the engine flip ``ref`` (applied at once, saved to its config file)."""
        value = not flag_value(self.state.settings, ref)
        result = await self.call(
            f"Could not switch {ref.label} notifications",
            self.state.backend.set_flag(ref.tenant, ref.flag, value, actor=self.state.actor),
        )
        if result is not None:
            self._toast(result)
            await self.refresh_now()
        return result

    def set_alert_rule(self, rule: str, field: str, value: float | bool) -> None:
        """Change one field of an alert rule (the alerts screen)."""
        self.operate(self.save_alert_rule(rule, field, value), f"alert {rule}")

    async def save_alert_rule(
        self, rule: str, field: str, value: float | bool
    ) -> OperationResult | None:
        """Have the engine change ``alerts.<rule>.<field>`` (applied live, saved to its file)."""
        result = await self.call(
            f"Could not change alert {rule}",
            self.state.backend.set_alert_rule(rule, field, value, actor=self.state.actor),
        )
        if result is not None:
            self._toast(result)
            await self.refresh_now()
        return result

    def change_priority(self, name: str, *, add: bool) -> None:
        """Add or remove a priority system (the priority screen)."""
        self.operate(self.priority_change(name, add=add), f"priority {name}")

    async def priority_change(self, name: str, *, add: bool) -> OperationResult | None:
        """Have the engine add or remove ``name``; toast what it did."""
        backend = self.state.backend
        operation = (
            backend.add_priority_system(name, actor=self.state.actor)
            if add
            else backend.remove_priority_system(name, actor=self.state.actor)
        )
        result = await self.call(f"Could not change priority system {name}", operation)
        if result is not None:
            self._toast(result)
            await self.refresh_now()
        return result

    def flip_tracker(self, tracker: TrackerView) -> None:
        """Switch one kill tracker on or off (the trackers screen)."""
        self.operate(self.toggle_tracker(tracker), f"tracker {tracker.tenant}/{tracker.name}")

    async def toggle_tracker(self, tracker: TrackerView) -> OperationResult | None:
        """Have the engine switch ``tracker`` (applied at once, saved to its config file)."""
        result = await self.call(
            f"Could not switch tracker {tracker.tenant}/{tracker.name}",
            self.state.backend.set_tracker(
                tracker.tenant, tracker.name, not tracker.enabled, actor=self.state.actor
            ),
        )
        if result is not None:
            self._toast(result)
            await self.refresh_now()
        return result

    def switch_theme(self, name: str) -> None:
        """Switch to theme ``name`` now; the engine saves it as ``console.theme``."""
        if name not in self.console_themes:
            self.notify(f"Unknown theme {name!r}", severity="error")
            return
        self.theme = name
        self._applied_theme = name
        self.operate(self.save_theme(name), "theme")

    async def save_theme(self, name: str) -> OperationResult | None:
        """Have the engine save ``name`` as ``console.theme``."""
        result = await self.call(
            "Theme applied, but not saved",
            self.state.backend.set_theme(name, actor=self.state.actor),
        )
        if result is not None and not result.ok:
            self.notify(f"Theme applied, but not saved: {result.message}", severity="warning")
        return result

    def retry_dead_target(self, target_key: str) -> None:
        """Revive a dead target (the palette offers one entry per dead target)."""
        self.operate(self.retry_target(target_key), f"retry {target_key}")

    async def retry_target(self, target_key: str) -> OperationResult | None:
        """Have the engine revive ``target_key``; toast what it re-queued."""
        result = await self.call(
            f"Could not retry {target_key}",
            self.state.backend.retry_target(target_key, actor=self.state.actor),
        )
        if result is not None:
            self._toast(result)
            await self.refresh_now()  # show the revived target now, not at the next frame
        return result

    def action_reload_config(self) -> None:
        """Have the engine re-read its config file now."""
        self.operate(self.reload_config(), "reload")

    async def reload_config(self) -> ApplyResult | None:
        """Ask the engine to reload; toast what it did."""
        result = await self.call(
            "Could not reload the config", self.state.backend.reload_config(actor=self.state.actor)
        )
        if result is not None:
            ok = result.status in ("applied", "unchanged")
            self.notify(reload_summary(result), severity="information" if ok else "warning")
        return result

    # -- quitting --------------------------------------------------------------------------------

    @property
    def attached(self) -> bool:
        """The engine runs in another process: quitting this console stops nothing."""
        identity = self.state.identity or self.state.backend.identity
        return self.state.attached or (identity is not None and identity.pid != os.getpid())

    async def action_quit(self) -> None:
        """Quit; unsaved config edits, or an engine in this process with notifications
        pending, ask first.

        Quitting stops the engine in this process: its pending notifications stay in the outbox
        and are delivered at its next start. An attached console never asks about them (the
        engine keeps running and delivering). Edits in the config pane not yet saved would be
        lost (ctrl+q reaches the app from inside the editor, as the palette's quit does).
        """
        pending = 0 if self.attached else pending_notifications(self.state)
        unsaved = self._unsaved()
        if pending <= 0 and unsaved is None:
            self.exit(0)
            return
        if any(isinstance(screen, ChoiceScreen) for screen in self.screen_stack):
            return
        title = (
            "Quit with notifications pending?"
            if unsaved is None
            else "Quit with unsaved config edits?"
        )

        def answered(answer: str | None) -> None:
            self._quit_question = None
            if answer == "quit":
                self.exit(0)

        self._quit_question = ChoiceScreen(
            title,
            self._quit_message(pending, unsaved),
            [Choice("q", "Quit", "quit"), Choice("s", "Stay", "stay")],
        )
        self.push_screen(self._quit_question, answered)

    def _unsaved(self) -> ConfigScreen | None:
        return next(
            (s for s in self.screen_stack if isinstance(s, ConfigScreen) and s.modified()), None
        )

    def _quit_message(self, pending: int, unsaved: ConfigScreen | None) -> str:
        """What the quit question says: edits that would be lost, notifications left waiting."""
        parts: list[str] = []
        if unsaved is not None:
            parts.append(
                f"{unsaved.name_shown} has edits that are not saved: quitting throws them away."
            )
        if pending > 0:
            what, they = (
                ("notification is", "it stays")
                if pending == 1
                else ("notifications are", "they stay")
            )
            parts.append(
                f"{pending:,} {what} pending. Quitting stops the engine: {they} in the outbox and"
                " will be delivered at the next start, not lost."
            )
        elif unsaved is None:
            parts.append("No notification is pending now.")
        return "\n\n".join([*parts, "Quit now?"])

    def _follow_quit_question(self) -> None:
        """The quit question open over the dashboard gives the pending figure of the frame the
        panels show now: the engine keeps delivering while it waits for an answer."""
        question = self._quit_question
        if question is None or question not in self.screen_stack:
            return
        pending = 0 if self.attached else pending_notifications(self.state)
        question.show_message(self._quit_message(pending, self._unsaved()))

    # -- navigation ------------------------------------------------------------------------------

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

    def action_priority(self) -> None:
        """Show the priority systems."""
        if isinstance(self.screen, PriorityScreen):
            return
        self.action_dashboard()
        self.push_screen(PriorityScreen(self.state))

    def action_trackers(self) -> None:
        """Show each map's kill trackers."""
        if isinstance(self.screen, TrackersScreen):
            return
        self.action_dashboard()
        self.push_screen(TrackersScreen(self.state))

    def action_config(self) -> None:
        """Show the config pane."""
        if isinstance(self.screen, ConfigScreen):
            return
        self.action_dashboard()
        self.push_screen(ConfigScreen(self.state))

    def action_events(self) -> None:
        """Show the events browser."""
        if not isinstance(self.screen, EventsScreen):
            self.open_events()

    def open_events(self, *, target: str | None = None) -> None:
        """Open the events browser (on ``target``'s notifications when given)."""
        self.push_screen(EventsScreen(self.state, target=target))

    def action_trends(self) -> None:
        """Show the stored trends (1 h, 24 h, 7 d)."""
        if isinstance(self.screen, TrendsScreen):
            return
        self.action_dashboard()
        self.push_screen(TrendsScreen(self.state))

    def action_alerts(self) -> None:
        """Show the alert rules, what fires and the alert history."""
        if isinstance(self.screen, AlertsScreen):
            return
        self.action_dashboard()
        self.push_screen(AlertsScreen(self.state))

    def action_help(self) -> None:
        """Show the key bindings."""
        if isinstance(self.screen, HelpScreen):
            return
        # The tab keys work only in the small-terminal layout: listed apart, saying so (a
        # [keymap] may still name them), rather than among the keys that work now.
        tab_keys = [
            b for b in DashboardScreen.BINDINGS if isinstance(b, Binding) and b.action[:4] == "tab("
        ]
        dashboard_keys = [b for b in DashboardScreen.BINDINGS if b not in tab_keys]
        dashboard = next((s for s in self.screen_stack if isinstance(s, DashboardScreen)), None)
        tabs_title = "Dashboard tabs (below 100 columns or 30 rows"
        if dashboard is not None and not dashboard.tabbed:
            tabs_title += "; not at this size: every panel is on screen)"
        else:
            tabs_title += ")"
        self.push_screen(
            HelpScreen(
                [
                    ("Everywhere", self.BINDINGS),
                    ("Dashboard", dashboard_keys),
                    (tabs_title, tab_keys),
                    ("Activity filter", FilterInput.BINDINGS),
                    ("Detail view (Enter or a click on a row or a badge)", DetailScreen.BINDINGS),
                    ("Toggles screen", TogglesScreen.BINDINGS),
                    ("Events browser", EventsScreen.BINDINGS),
                    ("Event search", SearchInput.BINDINGS),
                    ("Event detail", EventDetailScreen.BINDINGS),
                    ("Trackers screen", TrackersScreen.BINDINGS),
                    ("Delivery table (dashboard)", DeliveryTable.BINDINGS),
                    ("Priority systems screen", PriorityScreen.BINDINGS),
                    ("Alerts screen", AlertsScreen.BINDINGS),
                    ("Trends screen", TrendsScreen.BINDINGS),
                    ("Config pane", ConfigScreen.BINDINGS),
                    ("Help", HelpScreen.BINDINGS),
                ],
                keymap=self._keymap,
            )
        )


def _binding_owners() -> tuple[type[Any], ...]:
    """Every class whose ``BINDINGS`` a ``[keymap]`` entry may move."""
    return (
        WandererApp,
        DashboardScreen,
        FilterInput,
        DetailScreen,
        TogglesScreen,
        TrackersScreen,
        ConfigScreen,
        HelpScreen,
        EventsScreen,
        SearchInput,
        EventDetailScreen,
        DeliveryTable,
        PriorityScreen,
        AlertsScreen,
        TrendsScreen,
    )


def _bindings_of(owner: type[Any]) -> list[Binding]:
    return [b for b in owner.BINDINGS if isinstance(b, Binding) and b.id]


def default_keys(binding_id: str) -> str:
    """The keys ``binding_id`` has without a ``[keymap]`` (``""`` for no such binding)."""
    for owner in _binding_owners():
        for binding in _bindings_of(owner):
            if binding.id == binding_id:
                return binding.key
    return ""


def binding_ids() -> set[str]:
    """Every binding id a ``[keymap]`` entry may name."""
    return {
        binding.id for owner in _binding_owners() for binding in _bindings_of(owner) if binding.id
    }


def keymap_clashes(keymap: dict[str, str]) -> list[tuple[str, str, str]]:
    """``(key, id that took it, id that lost it)`` for each key a ``[keymap]`` entry gives a
    binding while another binding of the same screen (or of the app) still has it.

    Textual lets the keymap win without a word: ``app.toggles = "q"`` silently took q from
    quit. Both moved onto one key is said once.
    """

    def keys(binding: Binding) -> set[str]:
        moved = keymap.get(binding.id or "")
        wanted = moved.split(",") if moved else binding.key.split(",")
        return {key.strip() for key in wanted if key.strip()}

    clashes: list[tuple[str, str, str]] = []
    for owner in _binding_owners():
        bindings = _bindings_of(owner)
        for taker in bindings:
            if taker.id is None or taker.id not in keymap:
                continue
            for lost in bindings:
                if lost is taker or lost.id is None:
                    continue
                for key in sorted(keys(taker) & keys(lost)):
                    if (key, lost.id, taker.id) not in clashes:
                        clashes.append((key, taker.id, lost.id))
    return clashes


def pending_notifications(state: ConsoleState) -> int:
    """Notifications waiting to be delivered (pending or being sent) as of the latest snapshot.

    The delivery panel's figure, its targets' Pending summed: the engine counts its outbox
    (``counters.outbox``) at another moment than it reads the targets' queues (cached for a few
    seconds), so the question said 79 beside a panel showing 81. The outbox count is the answer
    only when the targets show nothing waiting (their queues not read since rows were added).
    """
    latest = state.latest
    if latest is None:
        return 0
    shown = sum(target.pending for target in latest.delivery.targets.values())
    if shown > 0:
        return shown
    outbox = latest.counters.outbox
    return outbox.get("pending", 0) + outbox.get("sending", 0)


def default_actor() -> str:
    """``tui:<user>@<host>``: who operates this console, for the engine's audit trail."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name (a container's unnamed uid)
        user = f"uid{os.getuid()}"
    return f"tui:{user}@{socket.gethostname()}"


def build_app(
    backend: ConsoleBackend,
    *,
    clock: Clock | None = None,
    theme: str | None = None,
    history: ThroughputHistory | None = None,
    settle_gc: bool = False,
    actor: str | None = None,
    attached: bool = False,
) -> WandererApp:
    """The one way to make the console, for the CLI and for tests alike.

    ``theme`` defaults to the first snapshot's ``console.theme``; ``history`` may be pre-seeded
    (tests); ``settle_gc`` is for a process that runs this one app (the CLI and the benchmark);
    ``actor`` defaults to :func:`default_actor`; ``attached``: the engine runs elsewhere, so
    quitting never asks (also known from an engine identity with another process id).
    """
    state = ConsoleState(
        backend=backend,
        actor=actor or default_actor(),
        clock=clock or SystemClock(),
        history=history or ThroughputHistory(),
        activity=ActivityLog(),
        attached=attached,
    )
    return WandererApp(state, theme=theme, settle_gc=settle_gc)


async def run_app(backend: ConsoleBackend, stop: asyncio.Event, *, settle_gc: bool = True) -> int:
    """Run the console over ``backend`` in the current event loop until it quits or ``stop``.

    Starts nothing else: the caller starts and stops the engine (or attaches to one) and decides
    where logs go. ``stop`` is set when the console ends, so the caller learns of a quit.
    """
    theme: str | None = None
    try:
        first = await asyncio.wait_for(backend.snapshot(), FIRST_SNAPSHOT_SECONDS)
    except (BackendError, TimeoutError):
        pass  # the first frame brings the theme, or the badge says the engine is not there
    else:
        theme = first.settings.theme
    app = build_app(backend, theme=theme, settle_gc=settle_gc)

    async def exit_on_stop() -> None:
        await stop.wait()
        # A stop (SIGTERM) during the start waits for the first screen to be built: exited
        # midway, its half-built widgets raised on the way out.
        await app.started.wait()
        app.exit(0)

    watcher = asyncio.create_task(exit_on_stop())
    try:
        await app.run_async()
    finally:
        stop.set()
        await cancel_and_wait([watcher])
    return app.return_code or 0
