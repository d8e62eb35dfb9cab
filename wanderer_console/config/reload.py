"""Hot reload: watch the config file, validate, classify, apply atomically, audit.

A change is first validated as a whole (an invalid file is rejected with file, line and key, and
the running configuration stays). Each changed key is then classified by the declaration of its
field on the settings model (:func:`wanderer_console.config.live.applies`): a *live* key (switches,
filters, Discord targets, pacing, theme, log level, ...) takes effect at once, because the whole
new :class:`~wanderer_console.config.model.Settings` becomes the running one and every component
reads it at use (or is re-applied by the runtime); a *restart-required* key (data dir, server
bind, a map's URL or key, killstream sockets, HTTP clients, ...) is flagged, with the reason, in
the log and the runtime snapshot and applies at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from watchfiles import awatch

from wanderer_console.config.audit import ConfigAudit, diff_settings
from wanderer_console.config.live import applies, entries_changed
from wanderer_console.config.loader import (
    ConfigError,
    Problem,
    file_values,
    overridden_keys,
    parse_settings_text,
    secret_warnings,
)
from wanderer_console.config.model import Settings
from wanderer_console.config.section import Restart
from wanderer_console.store.base import StoreLocation
from wanderer_console.telemetry.metrics import Metrics

__all__ = [
    "ConfigReloader",
    "Reloadable",
    "ReloadResult",
    "edits_overridden",
    "emptied",
    "gone",
    "keep_map_switches",
    "keep_removed_maps",
    "needs_restart",
    "restart_reasons",
    "watch_points",
]

log = logging.getLogger(__name__)

_WAKE_MS = 1000
"""The watcher wakes at least this often without a change (to say it is watching, and to check
where the path's links lead: a link re-pointed where no event reaches is still noticed)."""
_MAX_LINKS = 40
"""Links followed at most while resolving the path (a loop of links ends there, as in the OS)."""


@dataclass(frozen=True, slots=True)
class WatchPoints:
    """Where a change can alter what the config path reads: the path itself, every symlink its
    resolution passes through, and the file it ends at (each named within its resolved
    directory, as the watcher reports it), and those paths' directories."""

    paths: frozenset[Path]
    directories: tuple[Path, ...]

    def concerns(self, _change: object, changed: str) -> bool:
        """The watcher's filter: a change of one of :attr:`paths` (the database, logs or
        anything else in those directories is not the configuration)."""
        return Path(changed) in self.paths


def watch_points(path: Path) -> WatchPoints:
    """The :class:`WatchPoints` of ``path`` now.

    A plain file is watched in its directory, as before. ``config.toml -> ..data/config.toml``
    with ``..data -> ..2026_12_04_…`` (a Kubernetes ConfigMap mount) adds ``..data``: an update
    writes a new timestamped directory and renames a new ``..data`` link over the old one,
    which changes nothing named ``config.toml``. A link into another directory (a checkout)
    adds the target's directory, where an editor saves it.
    """
    absolute = Path(os.path.abspath(path))
    links: list[Path] = []
    current = Path(absolute.anchor)
    pending = list(absolute.parts[1:])
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            current = current.parent
            continue
        step = current / part
        target = _link_target(step) if len(links) < _MAX_LINKS else None
        if target is not None:
            links.append(step)
            if target.is_absolute():
                current = Path(target.anchor)
            pending = list(target.parts[1:] if target.is_absolute() else target.parts) + pending
            continue
        current = step
    paths = {absolute, *links, current}
    directories = []
    for directory in dict.fromkeys(p.parent for p in (absolute, *links, current)):
        # A directory that is gone (removed with the file, a volume not mounted yet) is watched
        # from its nearest existing ancestor, where its coming back is a change: once it is
        # there, it is watched itself and the file created in it is read.
        while not _is_dir(directory) and directory.parent != directory:
            paths.add(directory)
            directory = directory.parent
        directories.append(directory)
    return WatchPoints(frozenset(paths), tuple(dict.fromkeys(directories)))


def _link_target(path: Path) -> Path | None:
    """Where the link ``path`` points, or ``None`` when it is no link or cannot be looked at
    (gone, or in a directory the engine may not search: ``chmod 000`` on it). Looking never
    raises: the watcher calls this at every wake, and an error here ended it."""
    try:
        return Path(os.readlink(path))
    except OSError:  # not a link (EINVAL), gone, or not searchable (EACCES)
        return None


def _is_dir(path: Path) -> bool:
    """Whether ``path`` is a directory the engine can see (an error looking counts as no)."""
    try:
        return path.is_dir()
    except OSError:
        return False


def restart_reasons(old: Settings, new: Settings, keys: list[str]) -> dict[str, str]:
    """Of ``keys`` (changed from ``old`` to ``new``), those that need a restart, with why."""
    added_or_removed = entries_changed(old, new)
    reasons = {}
    for key in keys:
        marker = applies(key, entries_changed=added_or_removed)
        if isinstance(marker, Restart):
            reasons[key] = marker.why
    return reasons


def needs_restart(key: str, old_maps: set[str], new_maps: set[str]) -> bool:
    """True when ``key`` cannot change in a running engine (a map added or removed counts)."""
    added_or_removed = {f"maps.{name}" for name in old_maps ^ new_maps}
    return isinstance(applies(key, entries_changed=added_or_removed), Restart)


def edits_overridden(before: str | None, after: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The keys an edit (``before`` to ``after``) changed in the file that an environment
    variable overrides, each with the variable: the edit changes nothing the engine runs on,
    and without a word the operator would take the reload for having applied it."""
    old, new = file_values(before), file_values(after)
    return {
        ".".join(loc): variable
        for loc, variable in overridden_keys(after, environ).items()
        if old.get(loc) != new.get(loc)
    }


def keep_removed_maps(old: Settings, new: Settings) -> Settings:
    """``new`` with the maps it drops from ``old`` still in it, as they run.

    Removing a map needs a restart (its feed was started at start and keeps streaming): the
    running settings keep it until then, or its events would still arrive and every one of them
    go unnotified (the rules find no map), while the reload says the change waits for a restart.
    The same holds for a save cut short that lost a map's table.
    """
    gone = {key: map_settings for key, map_settings in old.maps.items() if key not in new.maps}
    if not gone:
        return new
    return new.model_copy(update={"maps": {**new.maps, **gone}})


def keep_map_switches(old: Settings, new: Settings) -> Settings:
    """``new`` with each map's ``enabled`` as it runs in ``old``.

    ``maps.<key>.enabled`` needs a restart (the map's feed is started, or not, at start), and
    the reload says so: the running settings keep the switch until then. Applied at once, a map
    switched off would have kept streaming while the pipeline refused every one of its events
    (never notified, even if the switch was put back before the restart); one switched on would
    have had no feed. On a shared database the map leases follow the file instead (a map
    disabled is released at the next heartbeat), and this is not used.
    """
    changed = {
        key: map_settings.model_copy(update={"enabled": old.maps[key].enabled})
        for key, map_settings in new.maps.items()
        if key in old.maps and old.maps[key].enabled != map_settings.enabled
    }
    if not changed:
        return new
    return new.model_copy(update={"maps": {**new.maps, **changed}})


def _holds_settings(text: str) -> bool:
    """Whether a config text sets anything (a text that is not TOML counts: validation says
    what is wrong with it)."""
    try:
        return bool(tomllib.loads(text))
    except tomllib.TOMLDecodeError:
        return True


def emptied(path: Path, running: str | None, new: str) -> Problem | None:
    """The problem when ``new`` would replace ``running``, a file that holds settings, with one
    that holds none (empty, or only comments): an editor caught between truncating and writing,
    a half-copied file. Applied, it would drop every map and switch everything to its default
    (dry run off); the running configuration is kept instead. ``None`` otherwise."""
    if running is None or _holds_settings(new) or not _holds_settings(running):
        return None
    return Problem(
        str(path),
        None,
        "(file)",
        "the file holds no settings (empty, or caught while an editor was writing it): the"
        " running configuration is kept; save the whole file again (to run on the environment"
        " alone, restart the engine)",
    )


_GONE = "configuration file is gone; the running configuration is kept until it is back"
"""The line said when the watched file cannot be found (once, until it is back)."""


def gone(path: Path) -> Problem:
    """The problem when ``path`` is not there to read: deleted (an operator, a deploy tool
    between two steps), moved, its directory removed, or a link on the way leading nowhere.
    The running configuration is kept; the watch goes on and reads the file when it is back
    (an edit made to it then is applied, the running version put back clears this)."""
    return Problem(
        str(path),
        None,
        "(file)",
        "the file is gone (deleted, moved, its directory removed, or a link to it leads"
        " nowhere): the running configuration is kept and the file is read again when it is"
        " back; an engine started now would not find it",
    )


@dataclass(slots=True)
class ReloadResult:
    """What one reload attempt did."""

    status: str
    """``applied``, ``rejected`` or ``unchanged``."""
    hot: list[str] = field(default_factory=list)
    """Changed keys applied live."""
    restart_required: list[str] = field(default_factory=list)
    """Changed keys that take effect at the next start."""
    problems: list[str] = field(default_factory=list)
    audit_id: int | None = None
    reasons: dict[str, str] = field(default_factory=dict)
    """Why each of :attr:`restart_required` needs the restart (from the model's declarations)."""
    overridden: dict[str, str] = field(default_factory=dict)
    """Keys this edit changed in the file that an environment variable overrides (so the edit
    has no effect), each with the variable's name."""


class Reloadable(Protocol):
    """What a reload changes: the running settings, applied live where they can be."""

    @property
    def settings(self) -> Settings:
        """The running configuration."""

    @property
    def database(self) -> StoreLocation:
        """The store's database, where the audit of changes lives."""

    def apply_settings(self, settings: Settings) -> None:
        """Make ``settings`` the running configuration."""


class ConfigReloader:
    """Watches one config file for a runtime; also usable one-shot through :meth:`reload`."""

    def __init__(
        self,
        runtime: Reloadable,
        path: Path,
        *,
        audit: ConfigAudit | None = None,
        debounce_ms: int = 200,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self._runtime = runtime
        self._metrics = metrics
        """Counts the outcomes (``wc_config_reloads_total``) and holds ``wc_config_rejected``:
        a broken file left on disk is seen before a restart fails on it."""
        self.path = path
        self.audit = audit or ConfigAudit(runtime.database)
        self._debounce_ms = debounce_ms
        self._clock = clock
        self._text: str | None = None
        self.last: ReloadResult | None = None
        self._started = runtime.settings.model_copy(deep=True)
        self.pending_restart: list[str] = []
        """Restart-needing keys whose value differs from the one the engine started with."""
        self.last_error: list[str] = []
        self._refused: tuple[str | None, list[str]] | None = None
        """The text (``None``: unreadable) and problems of the standing rejection: the same
        file read again (the watcher and a manual reload both see an edit) is that rejection,
        not another one counted, logged and kept in the history."""
        self._baselined = False
        self.watching = asyncio.Event()
        """Set once :meth:`run` watches the file (a change made before that is read then)."""

    def baseline(self) -> None:
        """Remember the file as running; audit it as the first version if it is new to us."""
        try:
            self._text = self.path.read_text(encoding="utf-8")
        except OSError:
            self._text = None
            return
        latest = self.audit.latest_applied()
        if latest is None or not latest.matches(self._text):
            self._record("startup", self._text, {"status": "applied", "changes": []})

    async def run(self) -> None:
        """Watch the file until cancelled: editors that replace the file, and a path reached
        through symlinks (:func:`watch_points`: a link re-pointed, the file it leads to edited,
        a Kubernetes ConfigMap's ``..data`` swapped), are handled."""
        if not self._baselined:
            # Once: a watcher restarted after a failure reads the file at its first batch below
            # (an edit made meanwhile is applied, never taken for the running version).
            self.baseline()
            self._baselined = True
        while True:
            points = watch_points(self.path)
            watch = awatch(
                *points.directories,
                watch_filter=points.concerns,
                debounce=self._debounce_ms,
                step=50,
                recursive=False,
                rust_timeout=_WAKE_MS,
                yield_on_timeout=True,
            )
            try:
                async with contextlib.aclosing(watch) as batches:
                    first = True
                    async for changes in batches:
                        self.watching.set()
                        if changes or first or self._unreadable():
                            # The first batch comes once the watch is in place: what changed
                            # while it was set up (or moved) is read then, never missed. A file
                            # that could not be read is read again at each wake: its directory's
                            # mode put back is no change of the file the watch reports.
                            self.reload(source="file")
                            first = False
                        if watch_points(self.path) != points:
                            # A link leads elsewhere, a directory is gone or back: watch where
                            # the path leads now.
                            break
            except FileNotFoundError:
                if watch_points(self.path) == points:
                    raise
                # A directory went away as the watch was set up (an update removing the
                # version it replaced): watch where the links lead now.

    def _unreadable(self) -> bool:
        """Whether the standing rejection is of a file that could not be read at all."""
        return self._refused is not None and self._refused[0] is None

    def reload(self, *, source: str = "file") -> ReloadResult:
        """Read, validate and apply the file once; never raises for a bad file."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return self._rejected(source, None, [str(gone(self.path))], message=_GONE)
        except (OSError, UnicodeDecodeError) as exc:
            return self._rejected(source, None, [f"{self.path}: cannot read: {exc}"])
        if self._refused is not None and self._refused[0] == text and self.last is not None:
            return self.last  # the rejected edit, read again
        if text == self._text:
            self._refused = None
            if self.last_error:
                # A rejected edit undone (or the file put back as it was): the file is what runs
                # again, so the rejection no longer stands.
                self.last_error = []
                self.last = ReloadResult("unchanged")
                if self._metrics is not None:
                    self._metrics.config_rejected.set(0)
                log.info(
                    "configuration file is back to the running version; the rejected change is"
                    " gone",
                    extra={"ctx": {"source": source}},
                )
            return ReloadResult("unchanged")
        empty = emptied(self.path, self._text, text)
        if empty is not None:
            return self._rejected(source, text, [str(empty)])
        try:
            new, _legacy = parse_settings_text(text, file=str(self.path))
        except ConfigError as exc:
            return self._rejected(source, text, [str(p) for p in exc.problems])
        # What the file configured (a runtime in hosted mode adds maps pulled from the map
        # server, which no file edit adds or removes: they are left out of the comparison).
        old = getattr(self._runtime, "file_settings", self._runtime.settings)
        changes = diff_settings(old, new)
        reasons = restart_reasons(old, new, [c.key for c in changes])
        hot = [c.key for c in changes if c.key not in reasons]
        restart = list(reasons)
        try:
            running = (
                new
                if self._maps_follow_the_file()
                else keep_map_switches(old, keep_removed_maps(old, new))
            )
            self._apply(old, running)
        except Exception as exc:
            self._apply(new, old)  # roll back every reference we may have swapped
            return self._rejected(source, text, [f"applying failed, rolled back: {exc!r}"])
        overridden = edits_overridden(self._text, text, os.environ)
        self._text = text
        self.last_error = []
        self._refused = None
        if self._metrics is not None:
            self._metrics.config_reloads.labels(outcome="applied").inc()
            self._metrics.config_rejected.set(0)
        since_start = diff_settings(self._started, new)
        self.pending_restart = sorted(
            restart_reasons(self._started, new, [c.key for c in since_start])
        )
        diff = {
            "status": "applied",
            "changes": [c.as_json() for c in changes],
            "hot": hot,
            "restart_required": restart,
        }
        audit_id = self._record(source, text, diff)
        self.last = ReloadResult("applied", hot, restart, [], audit_id, reasons, overridden)
        log.info(
            "configuration reloaded",
            extra={"ctx": {"source": source, "hot": hot, "restart_required": restart}},
        )
        if restart:
            log.warning(
                "configuration changes need a restart to take effect",
                extra={"ctx": {"keys": restart, "reasons": reasons}},
            )
        if overridden:
            log.warning(
                "configuration edit has no effect: the environment overrides these keys; unset"
                " the variable, or change it there",
                extra={"ctx": {"keys": overridden}},
            )
        # The checks made at start, made again: an edit can add a secret to a file others can
        # read (or paste a token into the wrong field).
        for warning in secret_warnings(new, text, self.path):
            log.warning("config secret hygiene", extra={"ctx": {"warning": str(warning)}})
        return self.last

    def _maps_follow_the_file(self) -> bool:
        """Whether a map removed from the file stops at once: on a shared database the map
        leases release it at the next heartbeat (its feed stopped, no engine sending for it);
        an engine alone keeps it until the restart (:func:`keep_removed_maps`)."""
        cluster = getattr(self._runtime, "cluster", None)
        return bool(getattr(cluster, "active", False))

    def _apply(self, old: Settings, new: Settings) -> None:
        """Swap the running settings (one reference every component reads, so it is atomic);
        the runtime re-applies what its parts derived from them (pacing, log level, ...)."""
        self._runtime.apply_settings(new)

    def _rejected(
        self,
        source: str,
        text: str | None,
        problems: list[str],
        *,
        message: str = "configuration change rejected; the running configuration is kept",
    ) -> ReloadResult:
        """Keep the running configuration; count, record and log the rejection (once: the
        same file read again returns it) with ``message``."""
        if self._refused == (text, problems) and self.last is not None:
            return self.last  # the file still unreadable, for the same reason
        self._refused = (text, problems)
        self.last_error = problems
        if self._metrics is not None:
            self._metrics.config_reloads.labels(outcome="rejected").inc()
            self._metrics.config_rejected.set(1)
        diff = {"status": "rejected", "problems": problems, "changes": []}
        audit_id = self._record(source, text or "", diff)
        self.last = ReloadResult("rejected", problems=problems, audit_id=audit_id)
        log.error(message, extra={"ctx": {"source": source, "problems": problems}})
        return self.last

    def _record(self, source: str, text: str, diff: dict[str, Any]) -> int | None:
        """Add the version to the config history; its id, or ``None`` when the database refused
        the write (disk full, locked, read-only): that is logged, and never hides or undoes what
        the reload did."""
        try:
            return self.audit.record(source, self.path, text, diff, now=self._clock())
        except Exception as exc:  # sqlite3's or psycopg's errors
            log.warning(
                "configuration change not recorded in the history: the database refused the write",
                extra={"ctx": {"source": source, "status": diff.get("status"), "error": str(exc)}},
            )
            return None

    def snapshot(self) -> dict[str, Any]:
        """State for the runtime snapshot and the UI."""
        last = self.last
        return {
            "path": str(self.path),
            "last_status": None if last is None else last.status,
            "last_hot": [] if last is None else last.hot,
            "restart_required": list(self.pending_restart),
            "errors": list(self.last_error),
        }

    def close(self) -> None:
        """Close the audit connection."""
        self.audit.close()
