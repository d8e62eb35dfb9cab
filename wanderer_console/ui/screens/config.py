"""The config pane: the active config file in an editor, secrets masked, validated before saving.

Saving never applies anything itself. The text is validated with
:func:`~wanderer_console.config.loader.parse_settings_text` (problems are listed with line and key
and the cursor jumps to the first one), written atomically (temporary file + rename, the file's
mode kept), and then the engine's hot reloader takes it from there: called at once with source
``tui`` when the snapshot source exposes one (so the audit says who changed it), otherwise picked
up by its file watcher.

Secrets are shown as ``«secret-N»`` placeholders until revealed (ctrl+r). Saving a masked text
puts the real values back first and refuses when a placeholder was edited, so a secret can never
be overwritten by its mask or silently dropped (see :mod:`wanderer_console.ui.config_text`).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Header, Static, TextArea

from wanderer_console.config.loader import ConfigError, Problem, parse_settings_text
from wanderer_console.ui.config_text import (
    MaskError,
    atomic_write_text,
    mask_secrets,
    unmask_secrets,
)
from wanderer_console.ui.model import ConsoleState
from wanderer_console.ui.widgets.colours import coloured
from wanderer_console.ui.widgets.keybar import KeyBar

__all__ = ["ConfigScreen", "format_problem", "reload_config"]


def format_problem(problem: Problem) -> str:
    """``line 7 · maps.alpha.url: message`` (the file is the one being edited)."""
    where = f"line {problem.line}" if problem.line else "no line"
    return f"{where} · {problem.key}: {problem.message}"


def reload_config(state: ConsoleState) -> str:
    """Ask the engine's reloader (when reachable) to pick the file up now; returns a summary.

    Without a reloader the file is touched, so a watching engine in another process notices it.
    """
    reloader = getattr(state.source, "reloader", None)
    reload = getattr(reloader, "reload", None)
    if callable(reload):
        result = reload(source="tui")
        status = str(getattr(result, "status", "done"))
        restart = list(getattr(result, "restart_required", []) or [])
        problems = list(getattr(result, "problems", []) or [])
        if problems:
            return f"reload {status}: {problems[0]}"
        if restart:
            return f"reload {status}; restart needed for {', '.join(restart)}"
        return f"reload {status}"
    path = state.config_path
    if path is None:
        return "no config file to reload"
    Path(path).touch()
    return "config file touched; a watching engine reloads it"


DISK_CHECK_SECONDS = 1.0
"""How often the pane looks whether the file changed on disk."""


class ConfigScreen(Screen[None]):
    """Edit the config file: ctrl+s validates and saves, ctrl+r reveals or masks the secrets."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Validate & save", id="config.save"),
        Binding("ctrl+r", "reveal", "Reveal/mask secrets", id="config.reveal"),
        Binding("escape", "app.dashboard", "Back", id="config.back"),
    ]

    def __init__(self, state: ConsoleState) -> None:
        super().__init__()
        self.state = state
        """Shared console state (the config path and the snapshot source)."""
        self.revealed = False
        """Whether the editor shows the real secret values."""
        self._secrets: tuple[str, ...] = ()
        self._saved_text = ""
        """The file's text as last loaded or saved here (what the editor started from)."""
        self._overwrite: str | None = None
        """The on-disk text a refused save saw; saving again over that same text overwrites."""
        self._disk_changed = False
        """The file changed on disk while the pane had edits of its own."""
        self.problems: list[Problem] = []
        """What the last save attempt found wrong."""

    @property
    def path(self) -> Path | None:
        """The file being edited."""
        path = self.state.config_path
        return None if path is None else Path(path)

    def compose(self) -> ComposeResult:
        """Header, hint, editor, problems, footer."""
        yield Header()
        yield Static(id="config-hint")
        editor = TextArea(id="config-text", show_line_numbers=True, soft_wrap=False)
        if "toml" in editor.available_languages:  # needs the optional tree-sitter extras
            editor.language = "toml"
        editor.border_title = "no config file" if self.path is None else self.path.name
        yield editor
        yield Static(id="config-problems")
        yield KeyBar()

    def on_mount(self) -> None:
        """Load the file, masked."""
        editor = self.query_one("#config-text", TextArea)
        editor.cursor_blink = not self.app.is_headless  # steady cursor in snapshots
        path = self.path
        text = self._disk_text() or ""
        self._load(text)
        editor.read_only = path is None
        self._show_hint()
        self._show_problems()
        editor.focus()
        if path is not None:
            self.set_interval(DISK_CHECK_SECONDS, self.check_disk)

    def _disk_text(self) -> str | None:
        """The file's current text (``None`` without a file or when it cannot be read)."""
        path = self.path
        if path is None:
            return None
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def _load(self, text: str) -> None:
        """Show ``text`` (masked unless revealed) as the unmodified state of the pane."""
        if self.revealed:
            self._replace_text(text)
        else:
            masked = mask_secrets(text)
            self._secrets = masked.secrets
            self._replace_text(masked.text)
        self._mark_clean(text)

    def _mark_clean(self, text: str) -> None:
        """``text`` is what the file holds and what the pane shows: nothing to warn about."""
        self._saved_text = text
        self._overwrite = None
        self._disk_changed = False
        self.query_one("#config-text", TextArea).border_subtitle = ""

    def check_disk(self) -> None:
        """Follow changes made to the file by others (an editor, a toggle, the palette).

        Unedited, the pane shows the new text at once; with edits of its own, it keeps them and
        says the file changed, and a save then asks for confirmation instead of overwriting.
        """
        disk = self._disk_text()
        if disk is None or disk == self._saved_text:
            return
        if not self._modified():
            self._load(disk)
            self._show_hint()
            self.notify(f"{self.path.name if self.path else 'config'} changed on disk; reloaded.")
        else:
            self._disk_changed = True
            self._show_modified()

    # -- text ------------------------------------------------------------------------------------

    def real_text(self) -> str:
        """The editor's text with the real secrets; raises :class:`MaskError` if masks changed."""
        text = self.query_one("#config-text", TextArea).text
        return text if self.revealed else unmask_secrets(text, self._secrets)

    def _replace_text(self, text: str) -> None:
        editor = self.query_one("#config-text", TextArea)
        row, column = editor.cursor_location
        editor.load_text(text)
        lines = text.split("\n")
        row = min(row, len(lines) - 1)
        editor.move_cursor((row, min(column, len(lines[row]))))

    def _show_hint(self) -> None:
        if self.path is None:
            self.query_one("#config-hint", Static).update(
                "No config file: start the console with --config to edit one."
            )
            return
        count = len(self._secrets)
        secrets = "secrets REVEALED" if self.revealed else f"{count} secret(s) masked as «secret-N»"
        self.query_one("#config-hint", Static).update(
            f"Editing {self.path.name} · {secrets} · saved only when valid; the engine reloads it"
        )

    def _show_problems(self, message: str | None = None) -> None:
        panel = self.query_one("#config-problems", Static)
        if message is not None:
            panel.update(coloured(self, message, "health-down", bold=True))
        elif self.problems:
            text = coloured(self, f"{len(self.problems)} problem(s), not saved:\n", "health-down")
            text.stylize("bold")
            text.append("\n".join(format_problem(p) for p in self.problems))
            panel.update(text)
        else:
            panel.update("")
        panel.display = bool(message or self.problems)

    # -- actions ---------------------------------------------------------------------------------

    def action_reveal(self) -> None:
        """Show the real secret values, or mask them again (edits are kept either way)."""
        editor = self.query_one("#config-text", TextArea)
        if self.revealed:
            masked = mask_secrets(editor.text)
            self._secrets = masked.secrets
            self._replace_text(masked.text)
            self.revealed = False
        else:
            try:
                real = unmask_secrets(editor.text, self._secrets)
            except MaskError as exc:
                self.notify(str(exc), severity="error", timeout=8)
                return
            self._replace_text(real)
            self.revealed = True
        self._show_hint()

    def action_save(self) -> None:
        """Validate, then write atomically and let the hot reloader apply it."""
        path = self.path
        if path is None:
            self.notify("No config file to save to.", severity="warning")
            return
        try:
            text = self.real_text()
        except MaskError as exc:
            self.problems = []
            self._show_problems(f"Not saved: {exc}")
            return
        try:
            parse_settings_text(text, file=str(path))
        except ConfigError as exc:
            self.problems = list(exc.problems)
            self._show_problems()
            first = next((p.line for p in self.problems if p.line), None)
            if first is not None:
                editor = self.query_one("#config-text", TextArea)
                editor.move_cursor((first - 1, 0), center=True)
                editor.focus()
            self.app.bell()  # the problems panel says what is wrong; a toast would cover it
            return
        disk = self._disk_text()
        if disk is not None and disk != self._saved_text and disk != self._overwrite:
            # Someone else saved the file since the pane loaded it: do not silently undo that.
            self._overwrite = disk
            self.problems = []
            self._show_problems(
                f"Not saved: {path.name} changed on disk since it was opened here. Press ctrl+s"
                " again to overwrite it with this text, or escape and open the pane again to"
                " start from the new file."
            )
            return
        try:
            atomic_write_text(path, text)
        except OSError as exc:
            self.problems = []
            self._show_problems(f"Not saved: cannot write {path}: {exc.strerror or exc}")
            return
        self._mark_clean(text)
        self.problems = []
        self._show_problems()
        summary = reload_config(self.state)
        self.state.activity.add(
            self.state.clock.wall(), f"config saved from the console; {summary}"
        )
        self.notify(f"Saved {path.name}; {summary}.")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Saving and revealing need a file."""
        if action in ("save", "reveal"):
            return self.path is not None
        return True

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        """Mark the pane modified (the problems stay until the next save attempt)."""
        event.stop()
        self._show_modified()

    def _show_modified(self) -> None:
        editor = self.query_one("#config-text", TextArea)
        subtitle = "modified" if self._modified() else ""
        if subtitle and self._disk_changed:
            subtitle += " · file changed on disk"
        editor.border_subtitle = subtitle

    def _modified(self) -> bool:
        try:
            current = self.real_text()
        except MaskError:
            return True
        return current != self._saved_text
