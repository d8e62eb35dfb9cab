"""The operator's pause of delivery, kept across restarts.

An operator pauses delivery (the console's ``p``, the control API's ``POST /v1/pause``) to keep
what is queued from going out. Held only in the process, the pause ended with it: a restart
(systemd after a crash, a deploy, an OOM kill) resumed delivery by itself and posted the whole
backlog at once, the very thing the operator paused to prevent. So the pause is saved in the
data directory (:data:`PAUSE_FILE`: who paused and when) as it is set and removed as it is
released, and an engine that finds it at start starts paused and says so.

It belongs to one engine, as the pause always did: several engines sharing a PostgreSQL database
each keep their own. The data directory is what an engine keeps across restarts (its lock names
one engine), while its cluster instance id is new at every start, so a row in the shared
database would have nothing to be found by after a restart.

A pause that cannot be saved (disk full, read-only file system) still holds in this process,
and the operator is told it ends at the next restart; a release whose file cannot be removed
still resumes, and the operator is told the next start will be paused again.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from wanderer_console.config.edit import atomic_write_text
from wanderer_console.delivery.dispatcher import Dispatcher

__all__ = ["PAUSE_FILE", "RESUME_HOW", "DeliveryHold", "HoldResult", "OperatorPause"]

log = logging.getLogger(__name__)

PAUSE_FILE: Final = "delivery-paused.json"
"""The saved pause, in the data directory (present only while delivery is paused)."""

RESUME_HOW: Final = (
    "press p in the console (wanderer-console attach) or POST /v1/pause"
    ' {"paused": false} on the control socket'
)
"""How an operator releases the pause, for the messages that say delivery is held."""


def utc(stamp: float) -> str:
    """A wall-clock time as the operator reads it (UTC, to the second)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stamp))


@dataclass(frozen=True)
class OperatorPause:
    """Who paused delivery and when; ``saved``: it survives a restart."""

    actor: str
    since: float
    saved: bool


@dataclass(frozen=True)
class HoldResult:
    """What a pause or a resume did: ``ok`` false when it holds only in this process."""

    ok: bool
    message: str


class DeliveryHold:
    """The dispatcher's ``paused`` flag, saved in the data directory (see the module)."""

    def __init__(
        self, dispatcher: Dispatcher, data_dir: Path, clock: Callable[[], float] = time.time
    ) -> None:
        self._dispatcher = dispatcher
        self.path = data_dir / PAUSE_FILE
        self._clock = clock
        self.pause: OperatorPause | None = None
        """The operator's pause while delivery is paused (None: not paused, or paused by a
        caller that set the dispatcher's flag itself)."""
        self.restored = False
        """The pause was found saved at start."""

    def restore(self) -> OperatorPause | None:
        """Pause the dispatcher when a pause was saved; called before it runs, so a restart
        sends nothing the operator held. A file that cannot be read still pauses: it exists
        only because an operator paused."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._restored(f"unknown (the saved pause could not be read: {exc})", 0.0)
            return self.pause
        try:
            data = json.loads(text)
            actor, since = str(data["paused_by"]), float(data["paused_at"])
        except (ValueError, TypeError, KeyError) as exc:
            actor, since = f"unknown (the saved pause is damaged: {exc!r})", 0.0
        self._restored(actor, since if _showable(since) else 0.0)
        return self.pause

    def _restored(self, actor: str, since: float) -> None:
        self.pause = OperatorPause(actor, since, saved=True)
        self.restored = True
        self._dispatcher.paused = True

    def announce(self) -> None:
        """Say loudly, once the engine's logs are read, that it started paused."""
        pause = self.pause
        if not self.restored or pause is None:
            return
        log.warning(
            "delivery paused by an operator before this start: nothing is sent until resumed",
            extra={
                "ctx": {
                    "paused_by": pause.actor,
                    "paused_at": f"{utc(pause.since)} UTC" if pause.since else "unknown",
                    "resume": RESUME_HOW,
                    "saved_in": str(self.path),
                }
            },
        )

    def hold(self, actor: str) -> HoldResult:
        """Pause delivery now and save the pause. An engine already paused keeps who paused it
        first and when; a pause not saved yet is tried again."""
        current = self.pause if self._dispatcher.paused else None
        self._dispatcher.paused = True
        if current is None:
            current = OperatorPause(actor, self._clock(), saved=False)
        if not current.saved:
            try:
                self._save(current)
            except OSError as exc:
                self.pause = current
                return self._unsaved(exc)
            current = OperatorPause(current.actor, current.since, saved=True)
        self.pause = current
        return HoldResult(True, f"Delivery paused until resumed, across restarts ({_by(current)}).")

    def _unsaved(self, exc: OSError) -> HoldResult:
        log.warning(
            "delivery paused, but the pause could not be saved: it holds until the next restart",
            extra={"ctx": {"path": str(self.path), "error": f"{type(exc).__name__}: {exc}"}},
        )
        return HoldResult(
            False,
            f"Delivery paused in this process only: the pause could not be saved ({exc});"
            " it ends at the next restart. Free space or fix the data directory, then send"
            ' the pause again (POST /v1/pause {"paused": true}) to save it.',
        )

    def release(self) -> HoldResult:
        """Resume delivery and remove the saved pause."""
        self._dispatcher.paused = False
        self.pause = None
        self.restored = False
        self._dispatcher.wake()
        try:
            self._clear()
        except OSError as exc:
            log.warning(
                "delivery resumed, but the saved pause could not be removed: the next start"
                " will be paused",
                extra={"ctx": {"path": str(self.path), "error": f"{type(exc).__name__}: {exc}"}},
            )
            return HoldResult(
                False,
                f"Delivery resumed, but the saved pause could not be removed ({exc}): the next"
                f" start will be paused again unless {self.path} is deleted.",
            )
        return HoldResult(True, "Delivery resumed.")

    def _save(self, pause: OperatorPause) -> None:
        """Write the pause where a crash right after cannot lose it (file and directory)."""
        text = json.dumps({"paused_by": pause.actor, "paused_at": pause.since}) + "\n"
        atomic_write_text(self.path, text)
        self._sync_directory()

    def _clear(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            return
        self._sync_directory()

    def _sync_directory(self) -> None:
        fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _showable(stamp: float) -> bool:
    """True when ``stamp`` is a time the messages can show: a damaged file's may be one no
    clock can (``1e30``, ``NaN``), and showing it would stop the engine's start."""
    try:
        utc(stamp)
    except (OverflowError, ValueError, OSError):
        return False
    return True


def _by(pause: OperatorPause) -> str:
    """``paused by X since T UTC``; a pause restored from a damaged file has no time (0)."""
    since = f"since {utc(pause.since)} UTC" if pause.since else "since an unknown time"
    return f"paused by {pause.actor} {since}"
