"""The engine in this process as a :class:`~wanderer_console.console_api.ConsoleBackend`.

:class:`LocalBackend` is the one place the console's operations touch the runtime: the TUI run
in the engine's process uses it directly, and the control endpoint serves the very same object
to attached consoles. Every change goes the way an operator's edit of the file would: the engine
owns its config file, so a switch or an edit is validated, written atomically (comments kept),
then applied by the hot reloader, which records it in the audit trail under the operator's name.

Secrets never leave through here: the config text is masked (``«secret-N»``), and an edit that
comes back masked gets the engine's own values put back before it is validated.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from wanderer_console import __version__, views
from wanderer_console.config.alerts import RULES, AlertRule
from wanderer_console.config.edit import (
    MaskError,
    atomic_write_text,
    digest,
    mask_secrets,
    set_value,
    unmask_secrets,
)
from wanderer_console.config.loader import ConfigError, parse_settings_text
from wanderer_console.config.model import Settings
from wanderer_console.config.reload import ReloadResult, emptied
from wanderer_console.console_api import (
    ALERT_FIELDS,
    FLAG_NAMES,
    TREND_RANGES,
    AlertRecordView,
    ApplyResult,
    AuditRecord,
    BackendError,
    ConfigProblem,
    ConfigState,
    ConfigText,
    ConsoleSettingsView,
    EngineIdentity,
    EngineSnapshot,
    EventDetail,
    EventPage,
    EventQuery,
    FlagSet,
    Frame,
    LogLine,
    OperationResult,
    PrioritySystemView,
    TrendPoint,
    TrendsView,
)
from wanderer_console.control import events, explain, trackers
from wanderer_console.control.server import SecretScrub
from wanderer_console.delivery.targets import Revived
from wanderer_console.observe.trends import stored_buckets
from wanderer_console.pipeline.engine import Engine
from wanderer_console.pipeline.priority import PrioritySystems
from wanderer_console.telemetry.logging import redact

__all__ = ["LocalBackend", "LogRing", "LocalEngine"]

log = logging.getLogger(__name__)

REFRESH_SECONDS = 1.0
"""How often the console redraws (the frame interval it asks for)."""
_SERVED_TEXTS = 8
"""How many masked texts handed out are remembered (to put their secrets back on save)."""
_LOG_TEXT_LIMIT = 400
RECENT = 5
"""How many recent log lines about a target or a breaker a snapshot carries (the console's detail
view lists them)."""
_BREAKER_LINE = "http circuit breaker "


class LocalEngine(views.EngineParts, Protocol):
    """The runtime as this backend uses it (the :class:`~wanderer_console.runtime.Runtime`)."""

    data_dir: Path
    config_path: Path | None
    priority: PrioritySystems
    engine: Engine
    """The pipeline's engine (what each tracker matched)."""

    @property
    def settings(self) -> Settings:
        """The running configuration."""
        ...

    def apply_settings(self, settings: Settings) -> None:
        """Make ``settings`` the running configuration."""
        ...

    @property
    def hosted_map_keys(self) -> frozenset[str]:
        """The maps the map server configures (hosted mode)."""
        ...


class LogRing(logging.Handler):
    """The engine's recent log lines, numbered, for any number of readers at their own pace."""

    def __init__(self, size: int = 500, clock: Callable[[], float] = time.time) -> None:
        super().__init__(logging.INFO)
        self._lines: deque[tuple[int, LogLine]] = deque(maxlen=size)
        self._next = 0
        self._clock = clock

    @property
    def cursor(self) -> int:
        """The number the next line will get."""
        return self._next

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record as one line: message and its context, credentials masked."""
        try:
            text = record.getMessage()
        except Exception:  # a bad format string must not break logging
            text = repr(record.msg)
        ctx = getattr(record, "ctx", None)
        if isinstance(ctx, dict) and ctx:
            text += " (" + ", ".join(f"{key}={value}" for key, value in ctx.items()) + ")"
        if len(text) > _LOG_TEXT_LIMIT:
            text = text[: _LOG_TEXT_LIMIT - 1] + "…"
        self.add(LogLine(at=record.created, level=record.levelname.lower(), text=redact(text)))

    def add(self, line: LogLine) -> None:
        """Append one line."""
        self._lines.append((self._next, line))
        self._next += 1

    def matching(self, needle: str, limit: int = RECENT) -> tuple[LogLine, ...]:
        """The last ``limit`` lines whose text contains ``needle``, oldest first."""
        found: list[LogLine] = []
        for _number, line in reversed(self._lines):
            if needle in line.text:
                found.append(line)
                if len(found) >= limit:
                    break
        return tuple(reversed(found))

    def since(self, cursor: int) -> tuple[tuple[LogLine, ...], int, int]:
        """Lines numbered ``cursor`` and later, the next cursor, and how many were already gone."""
        lines = tuple(line for number, line in self._lines if number >= cursor)
        oldest = self._lines[0][0] if self._lines else self._next
        missed = max(0, oldest - cursor)
        return lines, self._next, missed


class LocalBackend:
    """Serves the console's operations from the engine in this process."""

    def __init__(self, engine: LocalEngine, *, backlog: int = 50) -> None:
        self._engine = engine
        self.ring = LogRing()
        """The engine's recent log lines (installed on the ``wanderer_console`` logger)."""
        self._backlog = backlog
        self._served: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._scrub = SecretScrub(lambda: engine.settings)
        self._file_stamp: tuple[int, int] | None = None
        self._file_digest: str | None = None
        self.identity = EngineIdentity(
            host=socket.gethostname(),
            pid=os.getpid(),
            data_dir=str(engine.data_dir),
            version=__version__,
            started_at=engine.started_at,
            config_path=None if engine.config_path is None else str(engine.config_path),
        )

    # -- logging ---------------------------------------------------------------------------------

    def install_log_ring(self) -> None:
        """Start keeping the engine's log lines."""
        logger = logging.getLogger("wanderer_console")
        if self.ring not in logger.handlers:
            logger.addHandler(self.ring)

    def remove_log_ring(self) -> None:
        """Stop keeping them."""
        logging.getLogger("wanderer_console").removeHandler(self.ring)

    # -- frames ----------------------------------------------------------------------------------

    def snapshot_now(self) -> EngineSnapshot:
        """The engine now, as the console reads it."""
        data: dict[str, Any] = views.snapshot(self._engine)
        data["config"] = self._config_state(data.get("config"))
        settings = self._engine.settings
        data["settings"] = settings_view(settings)
        data["priority_systems"] = [
            PrioritySystemView(name=p.name, added_by=p.added_by, added_at=p.added_at)
            for p in self._engine.priority.rows
        ]
        self._explain(data, settings)
        views_of_trackers = trackers.tracker_views(settings, self._engine.engine.tracker_matches)
        if views_of_trackers:  # absent without trackers: an older console reads the rest
            data["trackers"] = views_of_trackers
        return EngineSnapshot.model_validate(data)

    def _explain(self, data: dict[str, Any], settings: Settings) -> None:
        """What the console's detail views show besides the figures: where each source and target
        points (masked), which map routes a target serves, and the recent log lines about each
        target and breaker."""
        for connection in data.get("connections", ()):
            if connection.get("url") is None:
                connection["url"] = explain.source_url(settings, connection["name"])
        names = explain.target_names(settings)
        maps = explain.target_maps(settings)
        targets = data.get("delivery", {}).get("targets", {})
        # A target is dead per map: a webhook two maps share may be dead for one of them and
        # deliver for the other, so the view names the maps it is dead for, and is dead since
        # the first of their refusals.
        dead_for: dict[str, list[tuple[str, float]]] = {}
        for (tenant, key), dead in sorted(self._engine.dispatcher.dead_targets.items()):
            dead_for.setdefault(key, []).append((tenant, dead.since))
        for key, marks in dead_for.items():
            if key in targets:
                targets[key]["dead_for"] = tuple(tenant for tenant, _since in marks)
                targets[key]["disabled_since"] = min(since for _tenant, since in marks)
        for key, target in targets.items():
            label, where = names.get(key, ("", None))
            target["label"] = label
            target["url"] = where
            target["maps"] = maps.get(key, ())
            target["recent"] = [_occurrence(line) for line in self.ring.matching(f"target={key}")]
        for name, breaker in data.get("breakers", {}).items():
            host = name.partition(":")[2]
            lines = [
                line
                for line in self.ring.matching(f"host={host},", limit=4 * RECENT)
                if line.text.startswith(_BREAKER_LINE)
            ][-RECENT:]
            breaker["recent"] = [_occurrence(line) for line in lines]
            if lines:
                breaker["reason"] = _ctx_value(lines[-1].text, "reason")

    @property
    def log_cursor(self) -> int:
        """The number the next log line will get."""
        return self.ring.cursor

    def backlog_cursor(self) -> int:
        """Where a new reader starts: the last ``backlog`` lines are shown to it."""
        return max(0, self.ring.cursor - self._backlog)

    def frame(self, cursor: int) -> tuple[Frame, int]:
        """A frame with the log lines from ``cursor``, and the cursor after them."""
        lines, after, missed = self.ring.since(cursor)
        frame = Frame(
            snapshot=self.snapshot_now(), logs=lines, dropped=missed, identity=self.identity
        )
        return frame, after

    async def frames(self, interval: float) -> AsyncIterator[Frame]:
        """A frame now, then one every ``interval`` seconds."""
        cursor = self.backlog_cursor()
        while True:
            frame, cursor = self.frame(cursor)
            yield frame
            await asyncio.sleep(interval)

    async def snapshot(self) -> EngineSnapshot:
        """The engine now."""
        return self.snapshot_now()

    def _config_state(self, reloader_state: Any) -> ConfigState | None:
        path = self._engine.config_path
        if path is None:
            return None
        state = dict(reloader_state or {"path": str(path)})
        state["digest"] = self._disk_digest(path)
        return ConfigState.model_validate(state)

    def _disk_digest(self, path: Path) -> str | None:
        """The file's digest, re-read only when its size or modification time changed."""
        try:
            info = path.stat()
        except OSError:
            self._file_stamp = self._file_digest = None
            return None
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp != self._file_stamp:
            try:
                self._file_digest = digest(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                return None
            self._file_stamp = stamp
        return self._file_digest

    # -- operations ------------------------------------------------------------------------------

    async def set_paused(self, paused: bool, *, actor: str) -> OperationResult:
        """Hold or release deliveries (the outbox keeps everything); a pause is saved, so it
        holds across a restart until an operator resumes."""
        hold = self._engine.hold
        done = hold.hold(actor) if paused else hold.release()
        _operator(actor, f"delivery {'paused' if paused else 'resumed'}")
        return OperationResult(ok=done.ok, message=done.message)

    async def set_flag(
        self, tenant: str | None, flag: str, value: bool, *, actor: str
    ) -> OperationResult:
        """Switch one notification type, globally or for one map; saved to the config file."""
        settings = self._engine.settings
        if flag not in FLAG_NAMES:
            return OperationResult(
                ok=False, message=f"unknown flag {flag!r}: one of {', '.join(FLAG_NAMES)}"
            )
        if tenant is not None and tenant not in settings.maps:
            known = ", ".join(sorted(settings.maps)) or "none"
            return OperationResult(ok=False, message=f"no map {tenant!r} (maps: {known})")
        if tenant is not None and tenant in self._engine.hosted_map_keys:
            # Its switches are the map server's features: a [maps.<key>] written for it would
            # not load (no url), and one kept in memory is undone by the next refresh.
            return OperationResult(
                ok=False,
                message=f"map {tenant} is a hosted map: its notification types are its features"
                " on the map server (switch them there; the next refresh applies them), or turn"
                f" {flag} off for every map with the global switch",
            )
        scope = "global" if tenant is None else f"map {tenant}"
        label = f"{scope} {flag} notifications {'on' if value else 'off'}"
        path = (
            ("notifications", flag) if tenant is None else ("maps", tenant, "notifications", flag)
        )
        return self._set_key(path, value, label, actor)

    async def set_theme(self, name: str, *, actor: str) -> OperationResult:
        """Save ``console.theme``."""
        return self._set_key(("console", "theme"), name, f"theme {name}", actor)

    async def set_alert_rule(
        self, rule: str, field: str, value: float | bool, *, actor: str
    ) -> OperationResult:
        """Change one field of an ``[alerts]`` rule; saved to the config file, applied at the
        alert engine's next evaluation."""
        if rule not in RULES:
            return OperationResult(
                ok=False, message=f"unknown alert rule {rule!r}: one of {', '.join(RULES)}"
            )
        if field not in ALERT_FIELDS:
            return OperationResult(
                ok=False, message=f"unknown rule field {field!r}: one of {', '.join(ALERT_FIELDS)}"
            )
        current = self._engine.settings.alerts.rule(rule)
        try:
            checked = AlertRule.model_validate({**current.model_dump(), field: value})
        except ValidationError as exc:
            problem = exc.errors()[0]
            return OperationResult(
                ok=False, message=f"alerts.{rule}.{field}: {problem['msg']} (got {value!r})"
            )
        new = getattr(checked, field)
        label = f"alert {rule} {field} = {new}"
        return self._set_key(("alerts", rule, field), new, label, actor)

    async def alert_history(self, limit: int = 100) -> tuple[AlertRecordView, ...]:
        """The alert history, newest first."""
        records = self._engine.store.alert_history(max(1, min(limit, 1000)))
        return tuple(
            AlertRecordView(
                rule=r.rule,
                subject=r.subject,
                fired_at=r.fired_at,
                resolved_at=r.resolved_at,
                value=r.value,
                threshold=r.threshold,
                summary=r.summary,
            )
            for r in records
        )

    async def trends(self, range_name: str) -> TrendsView:
        """The stored trends over ``range_name`` (``1h``, ``24h``, ``7d``), bucketed."""
        if range_name not in TREND_RANGES:
            raise BackendError(
                f"unknown trends range {range_name!r}: one of {', '.join(TREND_RANGES)}"
            )
        seconds, step = TREND_RANGES[range_name]
        now = time.time()
        buckets = stored_buckets(self._engine.store, now, seconds, step)
        return TrendsView(
            range=range_name,
            step=step,
            points=tuple(TrendPoint.model_validate(b.as_dict()) for b in buckets),
        )

    def _set_key(
        self,
        toml_path: tuple[str | int, ...],
        value: Any,
        label: str,
        actor: str,
        locate: Callable[[str], tuple[str | int, ...] | str | None] | None = None,
    ) -> OperationResult:
        """Set one key: through the config file when there is one, else in memory only.

        ``locate`` finds the key in the file's text as it is now (an entry of a list of tables
        is found by name, not by its place in the running settings, which an edit not reloaded
        yet may have moved): its path, ``None`` to keep ``toml_path``, or why it cannot (the
        operation is then refused)."""
        reloader = self._engine.reloader
        file = self._engine.config_path
        if reloader is not None and file is not None:
            try:
                text = file.read_text(encoding="utf-8")
                found = None if locate is None else locate(text)
                if isinstance(found, str):
                    return OperationResult(ok=False, message=f"{label}: {found}")
                toml_path = toml_path if found is None else found
                new_text = set_value(text, toml_path, value)
                parse_settings_text(new_text, file=str(file))
                try:
                    atomic_write_text(file, new_text)
                except OSError as exc:  # as deployed, the engine may read its file, not write it
                    raise OSError(f"cannot write {file}: {exc.strerror or exc}") from exc
            except (OSError, UnicodeDecodeError, ValueError, ConfigError) as exc:
                why = _first_problem(exc)
                self._apply_in_memory(toml_path, value)
                _operator(actor, f"{label} (applied, not saved: {why})")
                return OperationResult(
                    ok=True, message=f"{label}: applied, but not saved to {file.name}: {why}"
                )
            result = reloader.reload(source=actor)
            if result.status == "rejected":
                return OperationResult(ok=False, message=f"{label}: {result.problems[0]}")
            _operator(actor, label)
            return OperationResult(ok=True, message=f"{label} (saved to {file.name})")
        self._apply_in_memory(toml_path, value)
        _operator(actor, f"{label} (not saved: no config file)")
        return OperationResult(ok=True, message=f"{label} (not saved: no config file)")

    def _apply_in_memory(self, toml_path: tuple[str | int, ...], value: Any) -> None:
        settings = self._engine.settings.model_copy(deep=True)
        node: Any = settings
        for key in toml_path[:-1]:
            # an int is an entry of a list of sections (a map's trackers)
            node = (
                node[key] if isinstance(node, dict) or isinstance(key, int) else getattr(node, key)
            )
        setattr(node, str(toml_path[-1]), value)
        self._engine.apply_settings(settings)

    async def config_text(self) -> ConfigText:
        """The config file, secrets as ``«secret-N»``."""
        path = self._engine.config_path
        if path is None:
            return ConfigText(path=None, text="", digest=None)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return ConfigText(path=str(path), text=f"# cannot read {path}: {exc}\n", digest=None)
        masked = mask_secrets(text)
        key = digest(text)
        self._served[key] = masked.secrets
        self._served.move_to_end(key)
        while len(self._served) > _SERVED_TEXTS:
            self._served.popitem(last=False)
        return ConfigText(path=str(path), text=masked.text, digest=key, secrets=len(masked.secrets))

    async def apply_config(
        self, text: str, *, base_digest: str | None, force: bool = False, actor: str
    ) -> ApplyResult:
        """Validate, write and apply an edited (masked) config text; nothing changes on error."""
        reloader = self._engine.reloader
        path = self._engine.config_path
        if reloader is None or path is None:
            return ApplyResult(
                status="unavailable",
                message="this engine runs without a config file: start it with --config FILE"
                " to edit the configuration from the console",
            )
        try:
            current = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return ApplyResult(status="unavailable", message=f"cannot read {path}: {exc}")
        now = digest(current)
        secrets = self._served.get(base_digest or "")
        if secrets is None:
            if base_digest != now:
                return ApplyResult(
                    status="conflict",
                    message=f"{path.name} changed since it was opened here (or the engine"
                    " restarted): open it again to start from the current file",
                    digest=now,
                )
            secrets = mask_secrets(current).secrets
        try:
            real = unmask_secrets(text, secrets)
        except MaskError as exc:
            return ApplyResult(
                status="rejected",
                message="not saved",
                problems=(ConfigProblem(line=None, key="secrets", message=str(exc)),),
            )
        if base_digest != now and not force:
            return ApplyResult(
                status="conflict",
                message=f"{path.name} changed on disk since it was opened here: save again to"
                " overwrite it with this text, or open it again to start from the new file",
                digest=now,
            )
        try:
            empty = emptied(path, current, real)
            if empty is not None:
                raise ConfigError([empty])
            parse_settings_text(real, file=str(path))
        except ConfigError as exc:
            problems = tuple(
                ConfigProblem(line=p.line, key=p.key, message=p.message) for p in exc.problems
            )
            return ApplyResult(status="rejected", message="not saved", problems=problems)
        if real == current:
            return ApplyResult(status="unchanged", message="no changes", digest=now)
        try:
            atomic_write_text(path, real)
        except OSError as exc:
            return ApplyResult(
                status="rejected",
                message=f"not saved: cannot write {path}: {exc.strerror or exc}",
            )
        return _applied(reloader.reload(source=actor), digest(real))

    async def reload_config(self, *, actor: str) -> ApplyResult:
        """Re-read the config file now."""
        reloader = self._engine.reloader
        if reloader is None:
            return ApplyResult(status="unavailable", message="no config file to reload")
        return _applied(reloader.reload(source=actor), self._disk_digest(reloader.path))

    async def config_history(self, limit: int = 50) -> tuple[AuditRecord, ...]:
        """The audit trail, newest last."""
        reloader = self._engine.reloader
        if reloader is None:
            return ()
        return tuple(
            AuditRecord(
                id=entry.id,
                at=entry.at,
                source=entry.source,
                status=str(entry.diff.get("status", "applied")),
                changes=tuple(str(c.get("key")) for c in entry.diff.get("changes") or ()),
            )
            for entry in reloader.audit.history(max(1, min(limit, 1000)))
        )

    async def retry_target(self, key: str, *, actor: str) -> OperationResult:
        """Revive a dead target; its held notifications go and its failed ones are queued
        again. A key with nothing to retry is refused, as ``outbox retry`` refuses it."""
        try:
            revived = self._engine.dispatcher.revive(key)
        except Exception as exc:  # the store cannot write: say so, keep going
            return OperationResult(ok=False, message=f"could not retry {key}: {exc}")
        if revived.nothing:
            return OperationResult(
                ok=False,
                message=f"nothing to retry for {key}: it is not a dead target and has no failed"
                " notification (`outbox list` names them)",
                count=0,
            )
        _operator(actor, f"retried target {key}: {revived.held} held, {revived.requeued} re-queued")
        return OperationResult(
            ok=True,
            message=f"Retrying {key}: {_retried(revived)}.",
            count=revived.held + revived.requeued,
        )

    async def events(self, query: EventQuery) -> EventPage:
        """Recent events matching ``query`` (bounded reads of the store, see
        :mod:`~wanderer_console.control.events`), every secret the engine holds masked."""
        page = events.event_page(self._engine, query)
        return EventPage.model_validate_json(self._scrub(page.model_dump_json()))

    async def event_detail(self, event: int) -> EventDetail | None:
        """One event in full: its notifications, or why it notified nothing (secrets masked:
        an event's payload is what a source sent, and may hold anything)."""
        pipeline = getattr(self._engine, "engine", None)
        info = getattr(pipeline, "system_info", None)
        detail = events.event_detail(self._engine, event, info=info)
        if detail is None:
            return None
        return EventDetail.model_validate_json(self._scrub(detail.model_dump_json()))

    async def set_tracker(
        self, tenant: str, name: str, enabled: bool, *, actor: str
    ) -> OperationResult:
        """Switch one kill tracker of a map (``default``: its own filters); saved to the file."""
        path = trackers.tracker_switch(self._engine.settings, tenant, name)
        if isinstance(path, str):
            return OperationResult(ok=False, message=path)
        label = f"map {tenant} tracker {name} {'on' if enabled else 'off'}"
        file = self._engine.config_path
        where = "the config file" if file is None else file.name

        def locate(text: str) -> tuple[str | int, ...] | str | None:
            return trackers.tracker_switch_in_text(text, tenant, name, where)

        return self._set_key(path, enabled, label, actor, locate)

    async def refresh_hosted(self, *, actor: str) -> OperationResult:
        """Pull the hosted maps' configuration now (:class:`~..ingest.hosted.HostedMaps`)."""
        hosted = self._engine.hosted
        if hosted is None:
            return OperationResult(
                ok=False,
                message="not in hosted mode: set hosted.api_key (PLUGIN_NOTIFIER_API_KEY)",
            )
        result = await hosted.refresh("console")
        _operator(actor, f"refreshed the hosted maps: {'ok' if result.ok else result.error}")
        if not result.ok:
            return OperationResult(ok=False, message=f"Hosted maps kept: {result.error}")
        diff = result.diff
        changes = (
            "nothing changed"
            if diff is None or diff.empty
            else "; ".join(
                f"{name} {', '.join(keys)}" for name, keys in diff.as_json().items() if keys
            )
        )
        return OperationResult(
            ok=True,
            message=f"Hosted maps refreshed ({len(result.maps)}): {changes}.",
            count=len(result.maps),
        )

    async def add_priority_system(self, name: str, *, actor: str) -> OperationResult:
        """Make ``name`` a priority system (the store keeps it and who added it)."""
        return self._priority(name, actor, add=True)

    async def remove_priority_system(self, name: str, *, actor: str) -> OperationResult:
        """Make ``name`` an ordinary system again."""
        return self._priority(name, actor, add=False)

    def _priority(self, name: str, actor: str, *, add: bool) -> OperationResult:
        name = name.strip()
        if not name or len(name) > 100 or not name.isprintable():
            return OperationResult(
                ok=False, message="a system name is 1 to 100 printable characters"
            )
        priority = self._engine.priority
        try:
            changed = priority.add(name, actor=actor) if add else priority.remove(name, actor=actor)
        except Exception as exc:  # the store cannot write: say so, keep going
            return OperationResult(ok=False, message=f"could not save {name}: {exc}")
        if not changed:
            word = "already a" if add else "not a"
            return OperationResult(ok=True, message=f"{name} is {word} priority system.", count=0)
        _operator(actor, f"priority system {'added' if add else 'removed'}: {name}")
        what = "is now a priority system" if add else "is no longer a priority system"
        return OperationResult(ok=True, message=f"{name} {what}.", count=1)

    async def aclose(self) -> None:
        """Nothing to let go of in-process."""


def settings_view(settings: Settings) -> ConsoleSettingsView:
    """What the console shows and switches of ``settings`` (no secrets)."""
    return ConsoleSettingsView(
        theme=settings.console.theme,
        keymap=dict(settings.keymap),
        refresh_seconds=REFRESH_SECONDS,
        notifications=FlagSet.model_validate(settings.notifications.model_dump()),
        maps={
            key: FlagSet.model_validate(map_settings.notifications.model_dump())
            for key, map_settings in settings.maps.items()
        },
        map_names={key: m.name for key, m in settings.maps.items() if m.name},
        dry_run=settings.console.dry_run,
    )


def _applied(result: ReloadResult, after: str | None) -> ApplyResult:
    status = result.status if result.status in ("applied", "rejected", "unchanged") else "applied"
    problems = tuple(ConfigProblem(line=None, key="", message=p) for p in result.problems)
    message = {"applied": "applied", "unchanged": "no changes", "rejected": "rejected"}[status]
    if result.restart_required:
        message += f"; restart needed for {', '.join(result.restart_required)}"
    return ApplyResult(
        status=status,
        message=message,
        problems=problems,
        hot=tuple(result.hot),
        restart_required=tuple(result.restart_required),
        digest=after,
    )


def _occurrence(line: LogLine) -> dict[str, Any]:
    return {"at": line.at, "text": f"{line.level}: {line.text}"}


def _ctx_value(text: str, key: str) -> str | None:
    """The value of ``key`` in a log line's ``(key=value, ...)`` context (the last key's value
    runs to the closing parenthesis, so a reason with commas is kept whole)."""
    marker = f"{key}="
    start = text.rfind(marker)
    if start < 0:
        return None
    value = text[start + len(marker) :]
    return value[:-1] if value.endswith(")") else value


def _first_problem(exc: Exception) -> str:
    if isinstance(exc, ConfigError) and exc.problems:
        return str(exc.problems[0])
    return str(exc)


def _retried(revived: Revived) -> str:
    """What a retry sends: a dead target's held notifications go, failed ones are re-queued."""
    parts = []
    if revived.held:
        verb = "goes" if revived.held == 1 else "go"
        parts.append(f"{_notifications(revived.held, 'held')} {verb} out now")
    if revived.requeued:
        parts.append(f"{_notifications(revived.requeued, 'failed')} re-queued")
    return " and ".join(parts) or "target revived; no notification was waiting for it"


def _notifications(count: int, kind: str) -> str:
    return f"{count} {kind} notification{'' if count == 1 else 's'}"


def _operator(actor: str, what: str) -> None:
    log.info("operator: %s", what, extra={"ctx": {"actor": actor}})
