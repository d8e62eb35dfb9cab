"""The key bar: the active screen's bindings on one line, drawn as a single piece of text.

Textual's ``Footer`` builds one widget per key and rebuilds them all whenever a screen becomes
active; in this console that cost about 65 ms of every screen switch (the benchmark in
``bench/ui_latency.py`` found it). This bar shows the same bindings (those with ``show=True``,
keys as the app displays them, disabled ones dimmed) as one line of text, so a switch costs a
single re-render. Clicking a key is not offered: the console is driven from the keyboard.

The app's keys (quit, the screens) come first, in the same place on every screen, when the bar
holds every key; when it cannot (80 columns), the screen's own keys come first: the app's keys
filled the bar and cut the events browser's filters or the trends' ranges off.
"""

from __future__ import annotations

from textual import events
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Static

__all__ = ["KeyBar"]


class KeyBar(Static):
    """One line of ``key description`` pairs for the bindings the screen offers now."""

    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        width: 1fr;
        background: $footer-background;
        color: $footer-foreground;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def on_mount(self) -> None:
        """Follow the screen's bindings (they change with focus and ``check_action``)."""
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self.show_bindings()

    def on_resize(self, _event: events.Resize) -> None:
        """A new width may hold every key, or no longer."""
        self.show_bindings()

    def on_unmount(self) -> None:
        """Stop following the screen."""
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[object]) -> None:
        if screen is self.screen:
            self.show_bindings()

    _shown: tuple[tuple[str, str, bool], ...] | None = None
    """The entries on the bar now (a redraw is skipped when they do not change)."""

    def entries(self) -> tuple[tuple[str, str, bool], ...]:
        """``(key, description, enabled)`` for the screen's active bindings, one per action."""
        app_first = self._entries(app_first=True)
        width = self.size.width or self.app.size.width
        if self.describe(app_first).cell_length <= width:
            return app_first
        return self._entries(app_first=False)

    def _entries(self, *, app_first: bool) -> tuple[tuple[str, str, bool], ...]:
        """The entries with the app's own keys first (``app_first``) or last (the palette
        always last, as Textual's footer has it)."""
        app = self.app
        active = self.screen.active_bindings
        shown = [
            (b, on)
            for _order, (_node, b, on, _tip) in sorted(
                enumerate(active.values()),
                key=lambda item: ((item[1][0] is app) is not app_first, item[0]),
            )
            if b.show
        ]
        palette = active.get(app.COMMAND_PALETTE_BINDING) if app.ENABLE_COMMAND_PALETTE else None
        if palette is not None:
            shown.append((palette.binding, palette.enabled))
        out: list[tuple[str, str, bool]] = []
        seen: set[str] = set()
        for binding, enabled in shown:
            if binding.action not in seen:
                seen.add(binding.action)
                out.append((app.get_key_display(binding), binding.description, enabled))
        return tuple(out)

    def describe(self, entries: tuple[tuple[str, str, bool], ...] | None = None) -> Content:
        """The bar's text for ``entries`` (default: the screen's active bindings now)."""
        parts: list[Content] = []
        for key, description, enabled in self.entries() if entries is None else entries:
            label = Content.styled(f" {key} ", "$footer-key-foreground bold")
            entry = Content.assemble(label, f"{description} ")
            parts.append(entry if enabled else entry.stylize("dim"))
        return Content(" ").join(parts)

    def show_bindings(self) -> None:
        """Redraw the bar when its entries changed (one line: no layout change).

        A kept screen shown again announces its bindings anew; redrawing the same bar would
        cost the key press a second frame.
        """
        entries = self.entries()
        if entries == self._shown:
            return
        self._shown = entries
        self.update(self.describe(entries), layout=False)
