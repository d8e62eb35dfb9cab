"""The config pane: the engine's config file in an editor, secrets masked, applied only when valid.

The text comes from the engine (:meth:`ConsoleBackend.config_text
<wanderer_console.console_api.ConsoleBackend.config_text>`) with every secret replaced by a
``«secret-N»`` placeholder: secret values never cross to the console, so they are changed in the
file on the engine's host (a new key may be typed here with its real value; it is masked from
then on). ctrl+s sends the edited text back (``apply_config``) with the digest it was loaded at;
the engine validates it, puts its own values back for the placeholders, writes the file and
applies it, or changes nothing:

* problems are listed with their line and key, and the cursor jumps to the first one;
* a file changed since the pane loaded it is not overwritten: the pane says so, and a second
  ctrl+s overwrites it with this text;
* once applied, a toast says which keys wait for a restart;
* ctrl+s again before the engine answered (a slow link) sends nothing and says it is still saving.

Escape with unsaved edits asks: save (validated first; the pane stays open if the engine refuses
it), discard, or stay.

The pane follows the file: when the snapshot's config digest changes (another console, a toggle,
an editor on the engine's host), an unedited pane loads the new text and an edited one says "file
changed on disk". A pane that could not load the text (the engine was lost) loads it when the
link to the engine is live again.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Header, Static, TextArea

from wanderer_console.console_api import (
    ApplyResult,
    BackendError,
    ConfigProblem,
    ConfigState,
    ConfigText,
)
from wanderer_console.ui.model import ConsoleState
from wanderer_console.ui.screens.choice import Choice, ChoiceScreen
from wanderer_console.ui.widgets.colours import coloured
from wanderer_console.ui.widgets.keybar import KeyBar

__all__ = ["ConfigScreen", "applied_summary", "describe_problem", "reload_summary"]


def describe_problem(problem: ConfigProblem) -> str:
    """``line 7 · maps.alpha.url: message``; without a key (a reload's), the message alone."""
    if problem.key:
        return problem.describe()
    return f"line {problem.line}: {problem.message}" if problem.line else problem.message


def _restart(result: ApplyResult) -> str:
    return f"restart needed for {', '.join(result.restart_required)}"


def reload_summary(result: ApplyResult) -> str:
    """One line for a reload's toast: ``Reload applied; restart needed for console.data_dir``.

    A refusal names its first problem and how many more there are (fixed one at a time, the
    next reload would otherwise meet each of them as a surprise).
    """
    text = f"Reload {result.status}"
    if result.problems:
        more = len(result.problems) - 1
        tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        return f"{text}: {describe_problem(result.problems[0])}{tail}"
    if result.restart_required:
        return f"{text}; {_restart(result)}"
    if result.message and result.status not in ("applied", "unchanged"):
        return f"{text}: {result.message}"
    return text


def applied_summary(name: str, result: ApplyResult) -> str:
    """The toast after a save the engine took: ``Saved config.toml; restart needed for X``."""
    if result.status == "unchanged":
        return f"Nothing to save: {name} already holds this text."
    if result.restart_required:
        return f"Saved {name}; {_restart(result)}."
    return f"Saved {name}; applied."


class ConfigScreen(Screen[None]):
    """Edit the engine's config file: ctrl+s has the engine validate, save and apply it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Validate & save", id="config.save"),
        Binding("escape", "back", "Back", id="config.back"),
    ]

    def __init__(self, state: ConsoleState) -> None:
        super().__init__()
        self.state = state
        """Shared console state (the backend, the actor, the latest snapshot)."""
        self.loaded: ConfigText | None = None
        """The text as the engine last sent it (or as last saved here), with its digest."""
        self._force = False
        """A save was refused because the file changed: the next ctrl+s overwrites it."""
        self._disk_changed = False
        """The file changed on the engine's host while the pane had edits of its own."""
        self._followed: str | None = None
        """The snapshot digest the pane last reacted to (each change is handled once)."""
        self._fetching = False
        self._saving = False
        """A save is on its way to the engine (a second one would carry a stale digest)."""
        self.problems: list[ConfigProblem] = []
        """What the engine found wrong with the last save attempt."""

    @property
    def name_shown(self) -> str:
        """The file's name (``config.toml``), or ``config`` before it is known."""
        path = None if self.loaded is None else self.loaded.path
        return PurePath(path).name if path else "config"

    @property
    def editable(self) -> bool:
        """There is a file to save to."""
        return self.loaded is not None and self.loaded.path is not None

    def compose(self) -> ComposeResult:
        """Header, hint, editor, problems, footer."""
        yield Header()
        yield Static("Loading the config from the engine…", id="config-hint")
        editor = TextArea(id="config-text", show_line_numbers=True, soft_wrap=False)
        if "toml" in editor.available_languages:  # needs the optional tree-sitter extras
            editor.language = "toml"
        editor.read_only = True
        yield editor
        yield Static(id="config-problems")
        yield KeyBar()

    def on_mount(self) -> None:
        """Ask the engine for the text (masked)."""
        editor = self.query_one("#config-text", TextArea)
        editor.cursor_blink = not self.app.is_headless  # steady cursor in snapshots
        self._show_problems()
        editor.focus()
        self.run_worker(self.fetch(), name="console config text", group="config")

    # -- loading and following -------------------------------------------------------------------

    async def fetch(self, *, announce: bool = False) -> bool:
        """Load the engine's config text into the pane; False when the engine could not send it.

        ``announce``: toast that the file changed on disk (a reload the operator did not ask for).
        """
        self._fetching = True
        try:
            text = await self.state.backend.config_text()
        except BackendError as exc:
            self.query_one("#config-hint", Static).update(
                Content(f"Cannot load the config: {exc} · Escape, then c, tries again")
            )
            self.notify(f"Cannot load the config: {exc}", severity="error", timeout=10)
            return False
        finally:
            self._fetching = False
        if self.modified():  # the operator typed while the text was on its way: keep the edits
            if announce:
                self._disk_changed = True
                self._show_modified()
            return True
        self.show_text(text)
        if announce:
            self.notify(f"{self.name_shown} changed on disk; reloaded.")
        return True

    def show_text(self, text: ConfigText) -> None:
        """Show ``text`` as the unmodified state of the pane."""
        self.loaded = text
        self._force = False
        self._disk_changed = False
        editor = self.query_one("#config-text", TextArea)
        editor.read_only = text.path is None
        editor.border_title = "no config file" if text.path is None else self.name_shown
        self._replace_text(text.text)
        editor.border_subtitle = ""
        self._show_hint()
        self.refresh_bindings()

    def follow(self, config: ConfigState | None, *, relinked: bool = False) -> None:
        """React to the latest snapshot's config state (called for every frame).

        A new digest means the file changed on the engine's host: an unedited pane loads the new
        text, an edited one keeps its edits and says the file changed. ``relinked``: the link to
        the engine just became live again; a pane that could not load the text tries again.
        """
        if relinked and self.loaded is None and not self._fetching:
            self.run_worker(self.fetch(), name="console config text", group="config")
            return
        loaded = self.loaded
        if loaded is None or loaded.path is None or config is None or self._fetching:
            return
        digest = config.digest
        if digest is None or digest == loaded.digest or digest == self._followed:
            return
        self._followed = digest
        if not self.modified():
            self.run_worker(self.fetch(announce=True), name="console config text", group="config")
        else:
            self._disk_changed = True
            self._show_modified()

    # -- text ------------------------------------------------------------------------------------

    def _replace_text(self, text: str) -> None:
        editor = self.query_one("#config-text", TextArea)
        row, column = editor.cursor_location
        editor.load_text(text)
        lines = text.split("\n")
        row = min(row, len(lines) - 1)
        editor.move_cursor((row, min(column, len(lines[row]))))

    def modified(self) -> bool:
        """The editor holds edits not yet saved."""
        if self.loaded is None:
            return False
        return self.query_one("#config-text", TextArea).text != self.loaded.text

    def _show_hint(self) -> None:
        hint = self.query_one("#config-hint", Static)
        loaded = self.loaded
        if loaded is None or loaded.path is None:
            hint.update(
                "No config file: the engine runs without one (start it with --config to edit"
                " one here)."
            )
            return
        hint.update(
            f"Editing {self.name_shown} · {loaded.secrets} secret(s) shown as «secret-N»: their"
            " values are edited in the file on the engine's host (a new key may be typed with"
            " its real value) · saved only when valid, then applied by the engine"
        )

    def _show_problems(self, message: str | None = None) -> None:
        panel = self.query_one("#config-problems", Static)
        if message is not None:
            panel.update(coloured(self, message, "health-down", bold=True))
        elif self.problems:
            text = coloured(self, f"{len(self.problems)} problem(s), not saved:\n", "health-down")
            text.stylize("bold")
            text.append("\n".join(describe_problem(problem) for problem in self.problems))
            panel.update(text)
        else:
            panel.update("")
        panel.display = bool(message or self.problems)

    # -- saving ----------------------------------------------------------------------------------

    def action_save(self) -> None:
        """Have the engine validate, write and apply the text (in the background)."""
        if not self.editable:
            self.notify("No config file to save to.", severity="warning")
            return
        self.run_worker(self.save(), name="console config save", group="config")

    async def save(self) -> ApplyResult | None:
        """Send the editor's text to the engine; show what it did. ``None``: not reached.

        One save at a time: ctrl+s pressed again before the engine answered (a slow link) sent
        the text with the digest the first save was replacing, and the engine's "conflict" for
        it read as someone else's change on disk, arming an overwrite.
        """
        loaded = self.loaded
        if loaded is None or loaded.path is None:
            return None
        if self._saving:
            self.notify("Still saving: waiting for the engine's answer.", severity="warning")
            return None
        editor = self.query_one("#config-text", TextArea)
        text = editor.text
        self._saving = True
        try:
            result = await self.state.backend.apply_config(
                text, base_digest=loaded.digest, force=self._force, actor=self.state.actor
            )
        except BackendError as exc:
            self.problems = []
            self._show_problems(f"Not saved: {exc}")
            self.notify(f"Not saved: {exc}", severity="error", timeout=10)
            return None
        finally:
            self._saving = False
        if result.status in ("applied", "unchanged"):
            self._saved(text, result)
        elif result.status == "conflict":
            self.problems = []
            if self._force:  # even forced: the engine cannot take this text (it restarted)
                self._force = False
                self._show_problems(f"Not saved: {result.message or 'the file changed'}")
            else:
                self._force = True
                self._show_problems(
                    f"Not saved: {self.name_shown} changed on disk since it was opened here."
                    " Press ctrl+s again to overwrite it with this text, or escape and open the"
                    " pane again to start from the new file."
                )
        elif result.problems:
            self.problems = list(result.problems)
            self._show_problems()
            first = next((p.line for p in self.problems if p.line), None)
            if first is not None:
                editor.move_cursor((first - 1, 0), center=True)
                editor.focus()
                # The problems panel takes its rows only at the next layout: scrolled now, for
                # the taller editor, the line could end below the shorter one's last row (80×24).
                self.call_after_refresh(editor.scroll_cursor_visible, center=True)
            self.app.bell()  # the problems panel says what is wrong; a toast would cover it
        else:
            self.problems = []
            self._show_problems(f"Not saved: {result.message or result.status}")
        return result

    def _saved(self, text: str, result: ApplyResult) -> None:
        assert self.loaded is not None
        self.loaded = self.loaded.model_copy(update={"text": text, "digest": result.digest})
        self._force = False
        self._disk_changed = False
        self.problems = []
        self._show_problems()
        self._show_modified()
        self.notify(applied_summary(self.name_shown, result))
        if result.status == "applied":
            # What the file holds now, masked: a secret typed in with its real value is masked.
            self.run_worker(self.fetch(), name="console config text", group="config")

    # -- leaving ---------------------------------------------------------------------------------

    def action_back(self) -> None:
        """Back to the dashboard; with unsaved edits, ask first (save, discard or stay)."""
        if not self.modified():
            self.app.pop_screen()
            return
        choices = [Choice("s", "Save", "save"), Choice("d", "Discard", "discard")]
        choices.append(Choice("c", "Stay", "stay"))
        if not self.editable:
            choices = choices[1:]
        self.app.push_screen(
            ChoiceScreen(
                "Unsaved edits",
                f"{self.name_shown} has edits that are not saved. Save them (validated first),"
                " discard them, or stay?",
                choices,
            ),
            self._leave,
        )

    def _leave(self, answer: str | None) -> None:
        if answer == "discard":
            self.app.pop_screen()
        elif answer == "save":
            self.run_worker(self._save_and_leave(), name="console config save", group="config")

    async def _save_and_leave(self) -> None:
        result = await self.save()
        if result is not None and result.status in ("applied", "unchanged") and self.is_current:
            self.app.pop_screen()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Saving needs a file."""
        if action == "save":
            return self.editable
        return True

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        """Mark the pane modified (the problems stay until the next save attempt)."""
        event.stop()
        self._show_modified()

    def _show_modified(self) -> None:
        editor = self.query_one("#config-text", TextArea)
        subtitle = "modified" if self.modified() else ""
        if subtitle and self._disk_changed:
            subtitle += " · file changed on disk"
        editor.border_subtitle = subtitle
