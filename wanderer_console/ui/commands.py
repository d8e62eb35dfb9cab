"""The console's command-palette provider: notification toggles, delivery, config and themes.

Textual's system commands (quit, keys, screenshot, ...) stay as they are; this provider adds the
console's own commands, built fresh on every search so their wording follows the live state
("turn it off" / "Resume delivery"):

* per-type toggles: the global ``enabled``/``kill``/``system``/``character``/``rally`` switches;
* per-map toggles: the same switches of each configured map;
* pause or resume delivery;
* retry each dead target of the latest snapshot;
* open the config pane, reload the config (when the engine has a config file);
* switch to each console theme.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from wanderer_console.ui.faults import dead_targets, plural
from wanderer_console.ui.flags import all_flags, flag_value

if TYPE_CHECKING:
    from wanderer_console.ui.app import WandererApp

__all__ = ["ConsoleCommand", "ConsoleCommands", "console_commands"]


@dataclass(frozen=True, slots=True)
class ConsoleCommand:
    """One palette entry."""

    title: str
    """What the palette shows and matches against."""
    help: str
    """The line under the title."""
    callback: Callable[[], object]
    """What choosing it does."""


def console_commands(app: WandererApp) -> list[ConsoleCommand]:
    """Every console command for the app's current state, in display order."""
    state = app.state
    settings = state.settings
    commands: list[ConsoleCommand] = []
    for ref in all_flags(settings):
        on = flag_value(settings, ref)
        commands.append(
            ConsoleCommand(
                f"Toggle {ref.label} notifications",
                f"Currently {'on' if on else 'off'}; turn it {'off' if on else 'on'}",
                partial(app.flip_flag, ref),
            )
        )
    latest = state.latest
    paused = latest is not None and latest.delivery.paused
    commands.append(
        ConsoleCommand(
            "Resume delivery" if paused else "Pause delivery",
            "Hold or release Discord deliveries (the outbox keeps everything)",
            app.action_pause,
        )
    )
    if latest is not None:
        for dead in dead_targets(latest.delivery):
            # Dead for some of its maps only: its pending count includes the others' rows, so
            # only the engine's count of those maps' held rows says how many go.
            if dead.only_for and dead.held_for:
                held = plural(sum(count for _map, count in dead.held_for), "held notification")
                send = f"revive it for {', '.join(dead.only_for)} and send its {held}"
            elif dead.only_for:
                send = f"revive it for {', '.join(dead.only_for)} and send what it held"
            else:
                send = f"revive it and send its {dead.held} held notifications"
            commands.append(
                ConsoleCommand(
                    f"Retry dead target {dead.name}",
                    f"{dead.state}; {send}",
                    partial(app.retry_dead_target, dead.key),
                )
            )
    commands.append(
        ConsoleCommand(
            "Open config editor",
            "Edit the engine's config file (validated before saving)",
            app.action_config,
        )
    )
    config = state.config
    if config is not None and config.path is not None:
        commands.append(
            ConsoleCommand(
                "Reload config",
                "Have the engine re-read its config file now",
                app.action_reload_config,
            )
        )
    for name in app.console_themes:
        current = " (current)" if name == app.theme else ""
        commands.append(
            ConsoleCommand(
                f"Switch theme to {name}",
                f"Console colours{current}; saved as console.theme",
                partial(app.switch_theme, name),
            )
        )
    return commands


class ConsoleCommands(Provider):
    """Offers :func:`console_commands` in the command palette."""

    def _commands(self) -> list[ConsoleCommand]:
        from wanderer_console.ui.app import WandererApp

        app = self.app
        return console_commands(app) if isinstance(app, WandererApp) else []

    async def discover(self) -> Hits:
        """Everything, when the palette opens with an empty query."""
        for command in self._commands():
            yield DiscoveryHit(command.title, command.callback, help=command.help)

    async def search(self, query: str) -> Hits:
        """Commands whose title fuzzily matches ``query``."""
        matcher = self.matcher(query)
        for command in self._commands():
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(command.title),
                    command.callback,
                    text=command.title,
                    help=command.help,
                )
