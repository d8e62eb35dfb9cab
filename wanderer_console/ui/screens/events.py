"""The events browser: recent events, what each one notified, and why the others notified nothing.

Opened with ``e`` (or ``n`` on a target of the delivery panel: that target's notifications). It
lists the engine's newest events (source, type, map, system, time and outcome) from
:meth:`ConsoleBackend.events <wanderer_console.console_api.ConsoleBackend.events>`; ``/`` searches
them, ``m``, ``y`` and ``o`` step through the maps, types and outcomes to filter by, ``x`` clears
the filters, ``]`` and ``[`` page to older and newer events. Enter opens
:class:`EventDetailScreen`: each notification (target, Discord's message id, when delivered,
attempts), each map's verdict in words (as ``wanderer-console kill ID`` says it), and the message
as it looks in Discord.

Everything comes through the backend, in process or attached alike; a refusal is a toast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Header, Input, Static

from wanderer_console.console_api import (
    EVENT_OUTCOMES,
    EventDetail,
    EventPage,
    EventQuery,
    EventRow,
    MapVerdict,
    MessageView,
    NotificationView,
)
from wanderer_console.ui.faults import clock_time
from wanderer_console.ui.model import ConsoleState
from wanderer_console.ui.printable import printable_view
from wanderer_console.ui.screens.detail import markdown_text
from wanderer_console.ui.screens.typed import OnWanderer
from wanderer_console.ui.widgets.colours import coloured, theme_colour
from wanderer_console.ui.widgets.keybar import KeyBar
from wanderer_console.ui.widgets.synced import FittedTable, NamedRow

__all__ = [
    "EventDetailScreen",
    "EventsScreen",
    "EventsTable",
    "SearchInput",
    "detail_text",
    "message_renderable",
]

PAGE = 100
"""Events asked for at a time."""
_OUTCOME_COLOURS = {
    "notified": "health-ok",
    "pending": "health-degraded",
    "failed": "health-down",
    "filtered": "text-muted",
}


class EventsTable(FittedTable):
    """One row per event; the notified target's route, or the outcome, in the last column."""

    DEFAULT_CSS = """
    EventsTable {
        height: 1fr;
    }
    """

    COLUMNS = ("Time", "Source", "Type", "Map", "System", "Outcome")
    NARROW = ("Time", "Type", "Map", "System", "Outcome")
    NARROW_BELOW = 100

    def show_events(self, events: Sequence[EventRow]) -> None:
        """Show ``events``, keyed by their row id."""
        rows: list[NamedRow] = []
        for event in events:
            outcome = coloured(self, event.outcome, _OUTCOME_COLOURS[event.outcome])
            targets = sorted({n.target_label or n.target for n in event.notifications})
            if targets:
                outcome.append(f" {', '.join(targets)}", style="")
            # Text, not str: a table reads a str as markup, and these come from the map
            # server (a system renamed ``[/]`` would raise and take the console down).
            cells = {
                "Time": clock_time(event.received_at),
                "Source": Text(event.source),
                "Type": Text(event.type),
                "Map": Text("all" if event.map == "*" else event.map),
                "System": Text(event.system),
                "Outcome": outcome,
            }
            rows.append((str(event.id), cells))
        self.show_named(rows)


class SearchInput(Input):
    """The search: Escape or Enter goes back to the list (the search stays)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "leave", "Leave search", id="events.leave_search"),
    ]

    def action_leave(self) -> None:
        """Back to the events."""
        self.screen.query_one(EventsTable).focus()

    async def action_submit(self) -> None:
        """Enter: search now, then back to the events."""
        screen = self.screen
        if isinstance(screen, EventsScreen):
            screen.search(self.value)
        self.action_leave()


class EventsScreen(OnWanderer, Screen[None]):
    """Recent events and their outcome, searched and filtered."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="events.back"),
        Binding("slash", "search", "Search", id="events.search"),
        Binding("m", "cycle('map')", "Map", id="events.map"),
        Binding("y", "cycle('type')", "Type", id="events.type"),
        Binding("o", "cycle('outcome')", "Outcome", id="events.outcome"),
        Binding("x", "clear", "Clear", id="events.clear"),
        Binding("r", "reload", "Refresh", id="events.refresh"),
        Binding("right_square_bracket", "page(1)", "Older", id="events.older"),
        Binding("left_square_bracket", "page(-1)", "Newer", id="events.newer"),
    ]

    def __init__(
        self, state: ConsoleState, *, target: str | None = None, page_size: int = PAGE
    ) -> None:
        super().__init__()
        self.state = state
        self.query_now = EventQuery(target=target, limit=page_size)
        """What the list shows (the filters and search in force)."""
        self.page: EventPage | None = None
        """The last page the engine sent."""

    def compose(self) -> ComposeResult:
        """Header, search, filters line, the events, key bar."""
        yield Header()
        yield SearchInput(placeholder="/ search events…", id="events-search", compact=True)
        yield Static("", id="events-filters", markup=False)
        yield EventsTable(id="events-table")
        yield KeyBar()

    def on_mount(self) -> None:
        """Ask for the first page."""
        self.title = "Events"
        self.query_one(EventsTable).focus()
        self._show_filters()
        self.action_reload()

    # -- filters ---------------------------------------------------------------------------------

    def _show_filters(self, note: str = "") -> None:
        query = self.query_now
        parts = [  # the keys too: the key bar is clipped on a small terminal
            f"m map: {query.map or 'all'}",
            f"y type: {query.type or 'all'}",
            f"o outcome: {query.outcome or 'all'}",
        ]
        if query.target:
            parts.append(f"target: {query.target}")
        if query.search:
            parts.append(f"search: {query.search!r}")
        page = self.page
        if page is not None:
            first = query.offset + 1
            last = query.offset + len(page.events)
            more = " ] older" if page.more else ""
            newer = " [ newer" if query.offset else ""
            span = f"{first}-{last}" if page.events else "none"
            parts.append(f"{span} of the last {page.window:,} events{newer}{more}")
        if note:
            parts.append(note)
        self.query_one("#events-filters", Static).update(" · ".join(parts))

    def _choices(self, field: str) -> list[str | None]:
        page = self.page
        if field == "outcome":
            return [None, *EVENT_OUTCOMES]
        values = () if page is None else (page.maps if field == "map" else page.types)
        return [None, *values]

    def action_cycle(self, field: str) -> None:
        """Filter by the next map, type or outcome (then all again)."""
        choices = self._choices(field)
        current = getattr(self.query_now, field)
        position = choices.index(current) if current in choices else 0
        self.set_query(**{field: choices[(position + 1) % len(choices)]})

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Older events while there are more; newer ones once paged back."""
        if action == "page":
            if parameters and parameters[0] == 1:
                return self.page is not None and self.page.more
            return self.query_now.offset > 0
        return True

    def action_page(self, step: int) -> None:
        """The next page of older (``1``) or newer (``-1``) events."""
        query = self.query_now
        self.set_query(offset=max(0, query.offset + step * query.limit))

    def action_clear(self) -> None:
        """Drop every filter and the search."""
        self.query_one(SearchInput).value = ""
        self.set_query(map=None, type=None, outcome=None, target=None, search="")

    def action_search(self) -> None:
        """Focus the search."""
        self.query_one(SearchInput).focus()

    def search(self, text: str) -> None:
        """Show the events matching ``text``."""
        self.set_query(search=text.strip()[:200])

    def set_query(self, **changes: object) -> None:
        """Change the filters (back to the newest page, unless paging) and ask for the page."""
        changes.setdefault("offset", 0)
        self.query_now = self.query_now.model_copy(update=changes)
        self._show_filters("loading…")
        self.action_reload()

    def action_back(self) -> None:
        """Back to where the browser was opened from."""
        self.app.pop_screen()

    def action_reload(self) -> None:
        """Ask the engine for the page again."""
        self.wanderer.operate(self.load(), "events")

    async def load(self) -> EventPage | None:
        """Fetch and show the page :attr:`query_now` asks for."""
        query = self.query_now
        page = await self.wanderer.call(
            "Could not read the events", self.state.backend.events(query)
        )
        if query != self.query_now or not self.is_attached:
            return page
        if page is None:  # the toast said why; the rows are still those of the last page
            self._show_filters("not loaded: the rows shown are the last page's (r: try again)")
            return None
        page = self.page = printable_view(page)
        self.refresh_bindings()
        self.query_one(EventsTable).show_events(page.events)
        self._show_filters("" if page.events else "no event matches")
        return page

    # -- detail ----------------------------------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on an event: its detail."""
        event.stop()
        key = event.row_key.value
        if key is not None:
            self.wanderer.operate(self.open_detail(int(key)), "event detail")

    async def open_detail(self, row_id: int) -> EventDetail | None:
        """Fetch event ``row_id`` in full and show it."""
        detail = await self.wanderer.call("Could not read the event", self._fetch(row_id))
        if detail is None:
            return None  # the engine did not answer: the toast said why
        if detail == "gone":
            self.app.notify("That event is gone (pruned).", severity="warning")
            return None
        await self.app.push_screen(EventDetailScreen(detail))
        return detail

    async def _fetch(self, row_id: int) -> EventDetail | Literal["gone"]:
        """Event ``row_id`` in full, ``"gone"`` when the engine no longer has it."""
        detail = await self.state.backend.event_detail(row_id)
        return "gone" if detail is None else printable_view(detail)


class EventDetailScreen(ModalScreen[None]):
    """One event in full: facts, notifications, verdicts, the message, the payload."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close", id="event.close"),
    ]

    def __init__(self, detail: EventDetail) -> None:
        super().__init__()
        self.detail = detail

    def compose(self) -> ComposeResult:
        """One scrollable body."""
        with VerticalScroll(id="detail-body"):
            yield Static(id="detail-text")

    def on_mount(self) -> None:
        """Draw it."""
        body = self.query_one("#detail-body", VerticalScroll)
        event = self.detail.event
        body.border_title = Content(f"{event.type} {event.event_id}")  # as sent, not markup
        body.border_subtitle = "Escape"
        self.query_one("#detail-text", Static).update(self.render_detail())

    def _heading(self, title: str) -> Text:
        return Text(f"\n{title}", style=f"bold {theme_colour(self, 'primary')}".strip())

    def render_detail(self) -> RenderableType:
        """The detail as rich renderables."""
        detail = self.detail
        event = detail.event
        parts: list[RenderableType] = []
        facts = Table.grid(padding=(0, 2))
        facts.add_column(style="bold", no_wrap=True)
        facts.add_column(overflow="fold")
        for label, value in _facts(event):
            facts.add_row(label, Text(value))  # as sent: a table reads a str as markup
        parts.append(facts)
        if event.notifications:
            parts.append(self._heading("Notifications"))
            for note in event.notifications:
                parts.append(Text(_notification_line(note), overflow="fold"))
        if detail.verdicts:
            parts.append(self._heading("Why"))
            if detail.verdict_note:
                parts.append(Text(detail.verdict_note, style="dim", overflow="fold"))
            for verdict in detail.verdicts:
                parts.append(Text(_verdict_line(verdict), overflow="fold"))
        if detail.message is not None:
            parts.append(self._heading(f"Message ({detail.message_note})"))
            parts.append(message_renderable(detail.message, self))
        if detail.payload:
            parts.append(self._heading("As received"))
            parts.append(Text(detail.payload, style="dim", overflow="fold"))
        return Group(*parts)


def _facts(event: EventRow) -> list[tuple[str, str]]:
    return [
        ("Received", f"{clock_time(event.received_at)} UTC"),
        ("Source", event.source),
        ("Map", "every map (a kill)" if event.map == "*" else event.map),
        ("System", event.system or "—"),
        ("Outcome", event.outcome),
        ("About", event.summary or "—"),
    ]


def _notification_line(note: NotificationView) -> str:
    where = f"{note.target_label} ({note.target})" if note.target_label else note.target
    line = f"{note.map}/{note.route} → {where}: {note.status}, {note.attempts} attempt(s)"
    if note.sent_at is not None:
        line += f", delivered {clock_time(note.sent_at)} UTC"
    if note.message_id:
        line += f", message id {note.message_id}"
    if note.last_error:
        line += f"; last error: {note.last_error}"
    return line


def _verdict_line(verdict: MapVerdict) -> str:
    if verdict.notify:
        route = f" via {verdict.route}" if verdict.route else ""
        text = f"{verdict.map}: notified{route}"
        return f"{text} ({verdict.explanation})" if verdict.explanation else text
    reason = f" [{verdict.reason}]" if verdict.reason else ""
    return f"{verdict.map}: not notified{reason}: {verdict.explanation}"


def message_renderable(message: MessageView, widget: Screen[None] | None = None) -> RenderableType:
    """A Discord message as the terminal shows it: its text, then each embed in a panel edged in
    the embed's colour (links shown by their text, as Discord does)."""
    parts: list[RenderableType] = []
    if message.content:
        parts.append(markdown_text(message.content))
    for embed in message.embeds:
        lines: list[RenderableType] = []
        if embed.author:
            lines.append(Text(embed.author, style="dim"))
        if embed.description:
            lines.append(markdown_text(embed.description))
        for field in embed.fields:
            line = Text(f"{field.name}: ", style="bold")
            line.append_text(markdown_text(field.value))
            lines.append(line)
        if embed.footer:
            lines.append(Text(embed.footer, style="dim"))
        colour = f"#{embed.color:06x}" if embed.color is not None else "white"
        parts.append(
            Panel(
                Group(*lines),
                title=markdown_text(embed.title) if embed.title else None,
                title_align="left",
                border_style=colour,
            )
        )
    return Group(*parts)


def detail_text(detail: EventDetail) -> str:
    """Everything the detail shows, as plain text (tests read this)."""
    lines = [f"{label}: {value}" for label, value in _facts(detail.event)]
    lines += [_notification_line(note) for note in detail.event.notifications]
    lines += [detail.verdict_note, *(_verdict_line(v) for v in detail.verdicts)]
    if detail.message is not None:
        lines.append(f"Message ({detail.message_note})")
        lines.append(detail.message.content)
        for embed in detail.message.embeds:
            lines += [embed.title, embed.description, embed.footer]
            lines += [f"{f.name}: {f.value}" for f in embed.fields]
    return "\n".join(line for line in lines if line)
