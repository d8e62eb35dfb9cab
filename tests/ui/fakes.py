"""An engine in memory for the console tests: :class:`SeededBackend` implements ``ConsoleBackend``.

It serves a seeded snapshot (one of the fixture dicts of :mod:`tests.ui.conftest`, validated as
an :class:`EngineSnapshot`, so a fixture cannot hold a key the contract lacks), keeps a config text
in memory (masked on the way out, validated with
:func:`~wanderer_console.config.loader.parse_settings_text` on the way in, as the engine does) and
records every operation for the tests to assert on. Tests change what it serves (``data``,
``settings``, ``link``) and call :meth:`SeededBackend.tick` to have the next frame sent now.

Helpers wait for what the console does with it: :func:`first_frame`, :func:`next_frame`,
:func:`settle` (operations run in workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import html
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from textual.pilot import Pilot

from wanderer_console.config.edit import MaskError, digest, mask_secrets, unmask_secrets
from wanderer_console.config.loader import ConfigError, parse_settings_text
from wanderer_console.console_api import (
    FLAG_NAMES,
    AlertRecordView,
    ApplyResult,
    AuditRecord,
    BackendError,
    ConfigProblem,
    ConfigState,
    ConfigText,
    ConsoleSettingsView,
    EmbedFieldView,
    EmbedView,
    EngineIdentity,
    EngineSnapshot,
    EventDetail,
    EventPage,
    EventQuery,
    EventRow,
    FlagSet,
    Frame,
    LinkState,
    LogLine,
    MapVerdict,
    MessageView,
    NotificationView,
    OperationResult,
    TrendsView,
)
from wanderer_console.ui.app import OPERATIONS, WandererApp

__all__ = [
    "Operation",
    "SeededBackend",
    "first_frame",
    "next_frame",
    "record_toasts",
    "screen_lines",
    "seeded_events",
    "seeded_settings",
    "settle",
]

WAIT_SECONDS = 10.0
"""How long the helpers wait for the console before failing the test."""


def seeded_settings() -> ConsoleSettingsView:
    """Two maps (Alpha, Bravo), every flag on, the dark theme."""
    return ConsoleSettingsView(
        theme="wanderer-dark",
        maps={"alpha": FlagSet(), "bravo": FlagSet()},
        map_names={"alpha": "Alpha", "bravo": "Bravo"},
    )


def seeded_events() -> tuple[EventPage, dict[int, EventDetail]]:
    """Four events of map alpha: a kill delivered, a kill filtered, a system added and a pilot
    whose notification waits; the kills' details."""
    now = 1_700_000_000.0
    sent = NotificationView(
        id=7,
        map="alpha",
        route="system_kill",
        target="webhook:1200000002538501129",
        target_label="alpha/primary",
        status="sent",
        attempts=1,
        created_at=now - 62,
        sent_at=now - 61,
        message_id="1310000000000000001",
    )
    waiting = sent.model_copy(
        update={
            "id": 9,
            "route": "character",
            "status": "pending",
            "sent_at": None,
            "message_id": None,
            "attempts": 2,
            "last_error": "HTTP 429 (rate limited)",
        }
    )
    delivered = EventRow(
        id=41,
        event_id="kill:128000001",
        source="killstream",
        type="killmail",
        map="*",
        system="J120450",
        received_at=now - 62,
        outcome="notified",
        notifications=(sent,),
        summary="Aria Voss lost (Stratios) · 310.0M ISK · 4 attacker(s)",
    )
    filtered = EventRow(
        id=40,
        event_id="kill:128000000",
        source="killstream",
        type="killmail",
        map="*",
        system="Jita",
        received_at=now - 95,
        outcome="filtered",
        summary="character 2119000001 lost (type 587) · 9.1M ISK · 1 attacker(s)",
    )
    system = EventRow(
        id=39,
        event_id="01JD0000000000000000000001",
        source="sse:alpha",
        type="add_system",
        map="alpha",
        system="J120450",
        received_at=now - 300,
        outcome="notified",
        summary="system J120450 added to the map",
        notifications=(sent.model_copy(update={"id": 5, "route": "system"}),),
    )
    pilot = EventRow(
        id=38,
        event_id="01JD0000000000000000000000",
        source="sse:alpha",
        type="character_added",
        map="alpha",
        received_at=now - 400,
        outcome="pending",
        summary="character added: Kael Morrow",
        notifications=(waiting,),
    )
    page = EventPage(
        query=EventQuery(),
        events=(delivered, filtered, system, pilot),
        window=5000,
        maps=("alpha",),
        types=("add_system", "character_added", "killmail"),
    )
    embed = EmbedView(
        title="Stratios destroyed in J120450",
        description="[Aria Voss](https://zkillboard.com/character/1/) lost a Stratios",
        color=0xD9534F,
        fields=(EmbedFieldView(name="Value", value="310.0M ISK", inline=True),),
        footer="Killmail ID: 128000001 · Demo Map",
    )
    details = {
        41: EventDetail(
            event=delivered,
            verdicts=(
                MapVerdict(
                    map="alpha",
                    notify=True,
                    route="system_kill",
                    target=sent.target,
                    explanation="delivered, message 1310000000000000001 (1 attempt)",
                ),
            ),
            verdict_note="what happened: each notification the event was queued as",
            message=MessageView(embeds=(embed,)),
            message_note="as delivered to alpha/primary (webhook:1200000002538501129)",
            payload='{"killmail_id": 128000001}',
        ),
        40: EventDetail(
            event=filtered,
            verdicts=(
                MapVerdict(
                    map="alpha",
                    notify=False,
                    reason="untracked",
                    explanation="no map tracks the system or any character on the kill",
                ),
            ),
            verdict_note="notified nothing; the rules and tracking now say why (as"
            " `wanderer-console kill 128000000` explains it)",
            message=MessageView(
                embeds=(embed.model_copy(update={"title": "Rifter destroyed in Jita"}),)
            ),
            message_note="as it would look",
            payload='{"killmail_id": 128000000}',
        ),
    }
    return page, details


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation the console performed: its name, arguments and who asked."""

    name: str
    args: tuple[Any, ...]
    actor: str | None = None


class SeededBackend:
    """A :class:`~wanderer_console.console_api.ConsoleBackend` over seeded data, in memory."""

    def __init__(
        self,
        snapshot: Mapping[str, Any],
        *,
        settings: ConsoleSettingsView | None = None,
        config_text: str | None = None,
        config_path: str = "/etc/wanderer-console/config.toml",
        identity: EngineIdentity | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.data: dict[str, Any] = copy.deepcopy(dict(snapshot))
        """The snapshot served (without ``settings``, ``config`` and the pause: kept below)."""
        self.settings = settings or seeded_settings()
        """The console settings served; operations change them, tests may replace them."""
        self.paused = False
        """Delivery paused (``set_paused``)."""
        self.pause: tuple[str, float | None, bool | None] | None = None
        """Who paused, since when and whether a restart keeps it (``set_paused`` sets it from
        the actor and ``clock``; a test may seed it with ``paused``)."""
        self.pause_cluster = False
        """The pause is the shared database's (every engine holds), as a real engine says."""
        self.clock = clock
        """The engine's wall clock (when a pause began)."""
        self.path: str | None = None if config_text is None else config_path
        """The config file's path on the "engine's host", ``None`` without a file."""
        self.text = config_text or ""
        """The config file's real text (secrets unmasked)."""
        self.link = LinkState()
        """The link state frames carry (set it to ``lost`` to play an engine going away)."""
        self._identity = identity
        self.operations: list[Operation] = []
        """Every operation asked for, in order."""
        self.log_lines: list[LogLine] = []
        """Every engine log line, numbered by position (frames carry the ones a reader lacks)."""
        self.refuse: dict[str, BackendError] = {}
        """Operation name → the error it raises instead of running."""
        self.requeue = 3
        """What ``retry_target`` re-queues."""
        self.restart_required: tuple[str, ...] = ()
        """Keys an applied config edit reports as waiting for a restart."""
        self.reload_result = ApplyResult(status="unchanged", message="no changes")
        """What ``reload_config`` answers."""
        self.intervals: list[float] = []
        """The interval of every ``frames`` call, in order."""
        self.frames_sent = 0
        self.closed = False
        self.event_page, self.event_details = seeded_events()
        """What ``events`` and ``event_detail`` answer."""
        self._served: dict[str, tuple[str, ...]] = {}
        self._wake = asyncio.Event()

    # -- what it serves --------------------------------------------------------------------------

    @property
    def identity(self) -> EngineIdentity | None:
        """The engine's identity (``None``: a seeded engine that does not say)."""
        return self._identity

    def config_state(self) -> ConfigState | None:
        """The config file's state as a snapshot carries it."""
        if self.path is None:
            config = self.data.get("config")
            return None if config is None else ConfigState.model_validate(config)
        return ConfigState(path=self.path, digest=digest(self.text), last_status="applied")

    def snapshot_now(self) -> EngineSnapshot:
        """The seeded snapshot with the backend's own settings, pause and config state."""
        data = copy.deepcopy(self.data)
        by, since, saved = self.pause if self.paused and self.pause else (None, None, None)
        data["delivery"] = {
            **data.get("delivery", {}),
            "paused": self.paused,
            "paused_by": by,
            "paused_since": since,
            "pause_saved": saved,
            "pause_cluster": self.pause_cluster if self.paused and self.pause else None,
        }
        data["settings"] = self.settings
        data["config"] = self.config_state()
        return EngineSnapshot.model_validate(data)

    def tick(self) -> None:
        """Send the next frame now rather than at the end of the interval."""
        self._wake.set()

    def log(self, text: str, level: str = "info") -> None:
        """An engine log line (the next frame carries it)."""
        self.log_lines.append(LogLine(at=time.time(), level=level, text=text))

    # What the control endpoint needs besides the protocol (``ServedBackend``), so this engine
    # can also be served over the real socket to an attached console.

    @property
    def log_cursor(self) -> int:
        """The number the next log line will get."""
        return len(self.log_lines)

    def backlog_cursor(self) -> int:
        """Where a new reader's log lines start (every line: there are few)."""
        return 0

    def frame(self, cursor: int) -> tuple[Frame, int]:
        """A frame with the log lines from ``cursor``, and the cursor after them."""
        self.frames_sent += 1
        frame = Frame(
            snapshot=self.snapshot_now(),
            logs=tuple(self.log_lines[cursor:]),
            link=self.link,
            identity=self._identity,
        )
        return frame, len(self.log_lines)

    async def frames(self, interval: float) -> AsyncIterator[Frame]:
        """A frame now, then one every ``interval`` seconds or at each :meth:`tick`."""
        self.intervals.append(interval)
        cursor = self.backlog_cursor()
        while True:
            self._wake.clear()
            frame, cursor = self.frame(cursor)
            yield frame
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)

    async def snapshot(self) -> EngineSnapshot:
        """The engine now."""
        self._check("snapshot")
        return self.snapshot_now()

    # -- operations ------------------------------------------------------------------------------

    def _record(self, name: str, *args: Any, actor: str | None = None) -> None:
        self._check(name)
        self.operations.append(Operation(name, args, actor))

    def _check(self, name: str) -> None:
        error = self.refuse.get(name)
        if error is not None:
            raise error

    def _saved(self) -> str:
        return "not saved: no config file" if self.path is None else "saved"

    async def set_paused(self, paused: bool, *, actor: str) -> OperationResult:
        """Hold or release deliveries."""
        self._record("set_paused", paused, actor=actor)
        if paused and not self.paused:  # as the engine: who paused first, and when
            self.pause = (actor, self.clock(), True)
        self.paused = paused
        word = "paused" if paused else "resumed"
        self.log(f"operator: delivery {word}")
        return OperationResult(ok=True, message=f"Delivery {word}.")

    async def set_flag(
        self, tenant: str | None, flag: str, value: bool, *, actor: str
    ) -> OperationResult:
        """Switch one notification type, globally or for one map."""
        self._record("set_flag", tenant, flag, value, actor=actor)
        if flag not in FLAG_NAMES:
            return OperationResult(ok=False, message=f"unknown flag {flag!r}")
        if tenant is not None and tenant not in self.settings.maps:
            return OperationResult(ok=False, message=f"no map {tenant!r}")
        if tenant is None:
            flags = self.settings.notifications.model_copy(update={flag: value})
            self.settings = self.settings.model_copy(update={"notifications": flags})
        else:
            maps = dict(self.settings.maps)
            maps[tenant] = maps[tenant].model_copy(update={flag: value})
            self.settings = self.settings.model_copy(update={"maps": maps})
        scope = "global" if tenant is None else f"map {tenant}"
        label = f"{scope} {flag} notifications {'on' if value else 'off'}"
        self.log(f"operator: {label}")
        return OperationResult(ok=True, message=f"{label} ({self._saved()})")

    async def set_tracker(
        self, tenant: str, name: str, enabled: bool, *, actor: str
    ) -> OperationResult:
        """Switch one kill tracker of a map (the served snapshot's ``trackers``)."""
        self._record("set_tracker", tenant, name, enabled, actor=actor)
        for tracker in self.data.get("trackers", []):
            if tracker["tenant"] == tenant and tracker["name"] == name:
                tracker["enabled"] = enabled
                label = f"map {tenant} tracker {name} {'on' if enabled else 'off'}"
                self.log(f"operator: {label}")
                return OperationResult(ok=True, message=f"{label} ({self._saved()})")
        return OperationResult(ok=False, message=f"map {tenant} has no tracker {name!r}")

    async def set_theme(self, name: str, *, actor: str) -> OperationResult:
        """Save ``console.theme``."""
        self._record("set_theme", name, actor=actor)
        self.settings = self.settings.model_copy(update={"theme": name})
        return OperationResult(ok=True, message=f"theme {name} ({self._saved()})")

    async def set_alert_rule(
        self, rule: str, field: str, value: float | bool, *, actor: str
    ) -> OperationResult:
        """Change one field of an alert rule (recorded; the snapshot is the test's to set)."""
        self._record("set_alert_rule", rule, field, value, actor=actor)
        return OperationResult(ok=True, message=f"alert {rule} {field} = {value} ({self._saved()})")

    async def alert_history(self, limit: int = 100) -> tuple[AlertRecordView, ...]:
        """No alerts have fired in the fake."""
        self._record("alert_history", limit)
        return ()

    async def trends(self, range_name: str) -> TrendsView:
        """No trends are stored in the fake."""
        self._record("trends", range_name)
        return TrendsView(range=range_name, step=60)

    async def config_text(self) -> ConfigText:
        """The config text, secrets as ``«secret-N»``."""
        self._record("config_text")
        if self.path is None:
            return ConfigText(path=None, text="", digest=None)
        masked = mask_secrets(self.text)
        key = digest(self.text)
        self._served[key] = masked.secrets
        return ConfigText(path=self.path, text=masked.text, digest=key, secrets=len(masked.secrets))

    async def apply_config(
        self, text: str, *, base_digest: str | None, force: bool = False, actor: str
    ) -> ApplyResult:
        """Validate an edited (masked) text and keep it; nothing changes on error."""
        self._record("apply_config", text, base_digest, force, actor=actor)
        if self.path is None:
            return ApplyResult(status="unavailable", message="no config file")
        now = digest(self.text)
        secrets = self._served.get(base_digest or "", mask_secrets(self.text).secrets)
        try:
            real = unmask_secrets(text, secrets)
        except MaskError as exc:
            problem = ConfigProblem(line=None, key="secrets", message=str(exc))
            return ApplyResult(status="rejected", message="not saved", problems=(problem,))
        if base_digest != now and not force:
            return ApplyResult(status="conflict", message="changed on disk", digest=now)
        try:
            parse_settings_text(real, file=PurePath(self.path).name, environ={})
        except ConfigError as exc:
            problems = tuple(
                ConfigProblem(line=p.line, key=p.key, message=p.message) for p in exc.problems
            )
            return ApplyResult(status="rejected", message="not saved", problems=problems)
        if real == self.text:
            return ApplyResult(status="unchanged", message="no changes", digest=now)
        self.text = real
        return ApplyResult(
            status="applied",
            message="applied",
            restart_required=self.restart_required,
            digest=digest(real),
        )

    def edit_file(self, text: str) -> None:
        """Change the config file "on the engine's host" (an editor there, another console)."""
        self.text = text

    async def reload_config(self, *, actor: str) -> ApplyResult:
        """Answer :attr:`reload_result`."""
        self._record("reload_config", actor=actor)
        return self.reload_result

    async def config_history(self, limit: int = 50) -> tuple[AuditRecord, ...]:
        """No audit trail in memory."""
        return ()

    async def retry_target(self, key: str, *, actor: str) -> OperationResult:
        """Revive a dead target: it is no longer disabled in the next snapshot."""
        self._record("retry_target", key, actor=actor)
        target = self.data.get("delivery", {}).get("targets", {}).get(key)
        if target is not None:
            target["disabled"] = None
        plural = "" if self.requeue == 1 else "s"
        return OperationResult(
            ok=True,
            message=f"Retrying {key}: {self.requeue} failed notification{plural} re-queued.",
            count=self.requeue,
        )

    async def refresh_hosted(self, *, actor: str) -> OperationResult:
        """Pull the hosted maps: answers as an engine not in hosted mode does."""
        self._record("refresh_hosted", actor=actor)
        return OperationResult(ok=False, message="not in hosted mode")

    async def events(self, query: EventQuery) -> EventPage:
        """The seeded page of events (:func:`seeded_events`), whatever the query: the filters
        themselves are tested against a real engine."""
        self._record("events", query.model_dump_json(exclude_defaults=True))
        self._check("events")
        return self.event_page.model_copy(update={"query": query})

    async def event_detail(self, event: int) -> EventDetail | None:
        """A seeded event in full, ``None`` for any other."""
        self._record("event_detail", event)
        self._check("event_detail")
        return self.event_details.get(event)

    async def aclose(self) -> None:
        """Let go (nothing to close in memory)."""
        self.closed = True


# -- waiting for the console ---------------------------------------------------------------------


async def _until(pilot: Pilot[Any], done: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {WAIT_SECONDS} s")
        await asyncio.sleep(0.01)
    await pilot.pause()


def _app(pilot: Pilot[Any]) -> WandererApp:
    app = pilot.app
    assert isinstance(app, WandererApp)
    return app


async def first_frame(pilot: Pilot[Any]) -> None:
    """Wait until the console has rendered its first frame."""
    app = _app(pilot)
    await _until(pilot, lambda: app.state.frames >= 1, "the first frame")


async def next_frame(pilot: Pilot[Any], backend: SeededBackend | None = None) -> None:
    """Have ``backend`` send a frame now (when given) and wait until the console rendered it."""
    app = _app(pilot)
    seen = app.state.frames
    if backend is not None:
        backend.tick()
    await _until(pilot, lambda: app.state.frames > seen, "a new frame")


async def settle(pilot: Pilot[Any]) -> None:
    """Wait until every operation the console started (and the config pane's loads) finished."""
    app = _app(pilot)
    await pilot.pause()
    for _ in range(3):  # an operation may start another (a save loads the text again)
        running = [w for w in app.workers if w.group in (OPERATIONS, "config") and w.is_running]
        if not running:
            break
        await app.workers.wait_for_complete(running)
        await pilot.pause()


def record_toasts(app: WandererApp) -> list[tuple[str, str]]:
    """``(message, severity)`` of every toast the app shows from now on."""
    toasts: list[tuple[str, str]] = []
    original = app.notify

    def recording(message: str, **kwargs: Any) -> None:
        toasts.append((message, str(kwargs.get("severity", "information"))))
        original(message, **kwargs)

    app.notify = recording  # type: ignore[method-assign]
    return toasts


_SVG_TEXT = re.compile(
    r'<text class="[^"]*" x="([0-9.]+)" y="[0-9.]+" textLength="[0-9.]+"'
    r' clip-path="url\(#[^)]*-line-(\d+)\)">([^<]*)</text>'
)
_CELL = 12.2
"""The width of one terminal cell in Textual's SVG export."""


def screen_lines(app: WandererApp) -> list[str]:
    """What the terminal shows now, one string per line (read from the app's screenshot, so it
    is what an operator sees: clipped, covered by modals, with toasts on top)."""
    rows: dict[int, list[str]] = {}
    for x, line, text in _SVG_TEXT.findall(app.export_screenshot()):
        row = rows.setdefault(int(line), [])
        column = round(float(x) / _CELL)
        chars = html.unescape(text).replace("\xa0", " ")
        if len(row) < column:
            row.extend(" " * (column - len(row)))
        row[column : column + len(chars)] = list(chars)
    return ["".join(rows.get(n, [])).rstrip() for n in range(max(rows, default=-1) + 1)]
