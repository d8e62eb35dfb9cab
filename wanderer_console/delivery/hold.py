"""The operator's pause of delivery, kept across restarts.

An operator pauses delivery (the console's ``p``, the control API's ``POST /v1/pause``) to keep
what is queued from going out. Held only in the process, the pause ended with it: a restart
(systemd after a crash, a deploy, an OOM kill) resumed delivery by itself and posted the whole
backlog at once, the very thing the operator paused to prevent. So the pause is saved as it is
set and removed as it is released, and an engine that finds it at start starts paused and says
so. Where it is saved depends on who sends:

* **An engine alone** (SQLite, or any store not shared) saves it in its data directory
  (:data:`PAUSE_FILE`: who paused and when).
* **Several engines on one PostgreSQL database** each send the maps whose lease they hold, and a
  map whose engine stops is taken over by another: a pause of one engine would hold only its
  maps, and only until they moved. So the pause is the cluster's, in the shared database
  (:meth:`~wanderer_console.store.base.Store.pause_cluster`): every engine reads it at start,
  before its dispatcher runs, and again at every lease heartbeat (:meth:`DeliveryHold.follow`),
  before it acquires a lease; a resume on any engine lifts it for all. An engine sends only
  under a lease, and acquires leases only in the heartbeat that has just read the pause, so an
  engine started while the cluster is paused sends nothing; one that cannot reach the database
  keeps the state it last read (it cannot claim anything to send meanwhile). An engine already
  running between two heartbeats sends nothing either: every claim reads the pause in its own
  transaction and claims nothing under it, and the pause it found is followed at once
  (:meth:`DeliveryHold.follow`, from the dispatcher). A data-directory
  file found on a shared database is not applied (the shared state decides) and is reported at
  start.

A pause that cannot be saved (disk full, read-only file system, the database unreachable) still
holds in this process, and the operator is told so (on a shared database it is saved at the
first heartbeat that reaches the database); a release whose file cannot be removed still
resumes, and the operator is told the next start will be paused again; a release the database
refuses leaves every engine paused, and says so.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from wanderer_console.config.edit import atomic_write_text, sync_directory
from wanderer_console.delivery.dispatcher import Dispatcher
from wanderer_console.store.base import ClusterPause, SavedPause
from wanderer_console.store.writes import StoreWriteError

__all__ = [
    "PAUSE_FILE",
    "RESUME_HOW",
    "DeliveryHold",
    "HoldResult",
    "OperatorPause",
    "SharedPause",
    "read_saved_pause",
]

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
    """Who paused delivery and when; ``saved``: it survives a restart; ``cluster``: it is the
    shared database's, holding every engine on it."""

    actor: str
    since: float
    saved: bool
    cluster: bool = False


class PauseStore(Protocol):
    """The shared database's side of the cluster's pause (:class:`~.store.base.Store`)."""

    def pause_cluster(self, actor: str, instance_id: str) -> ClusterPause: ...

    def resume_cluster(self) -> bool: ...

    def cluster_pause(self) -> ClusterPause | None: ...


@dataclass(frozen=True)
class SharedPause:
    """Where the cluster's pause is kept: the shared store, and this engine's instance id."""

    store: PauseStore
    instance_id: str


@dataclass(frozen=True)
class HoldResult:
    """What a pause or a resume did: ``ok`` false when it holds only in this process."""

    ok: bool
    message: str


class DeliveryHold:
    """The dispatcher's ``paused`` flag, saved in the data directory or, with ``shared``, in
    the database several engines share (see the module)."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        data_dir: Path,
        clock: Callable[[], float] = time.time,
        *,
        shared: SharedPause | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        self.path = data_dir / PAUSE_FILE
        self._clock = clock
        self._shared = shared
        self.pause: OperatorPause | None = None
        """The operator's pause while delivery is paused (None: not paused, or paused by a
        caller that set the dispatcher's flag itself)."""
        self.restored = False
        """The pause was found saved at start."""
        self._notes: list[tuple[str, dict[str, object]]] = []
        """Warnings found at start, logged by :meth:`announce` once the logs are read."""
        self._announced = False

    def restore(self) -> OperatorPause | None:
        """Pause the dispatcher when a pause was saved; called before it runs, so a restart
        sends nothing the operator held. A file that cannot be read still pauses: it exists
        only because an operator paused."""
        if self._shared is not None:
            return self._restore_shared(self._shared)
        saved = read_saved_pause(self.path.parent)
        if saved is None:
            return None
        self._restored(saved.actor, saved.since)
        return self.pause

    def _restored(self, actor: str, since: float) -> None:
        self.pause = OperatorPause(actor, since, saved=True)
        self.restored = True
        self._dispatcher.paused = True

    def _restore_shared(self, shared: SharedPause) -> OperatorPause | None:
        """The cluster's pause, read before the dispatcher runs. A database that cannot be read
        now holds this engine until its first heartbeat reads the pause (it could not claim
        anything to send before then anyway). A file of the data directory is not applied:
        the shared state decides."""
        if self.path.exists():
            self._notes.append(
                (
                    "a pause saved in the data directory is not applied on a shared database:"
                    " the cluster's pause, kept in the database, decides; delete the file",
                    {"path": str(self.path)},
                )
            )
        try:
            found = shared.store.cluster_pause()
        except Exception as exc:  # the database went away since it was opened
            self._notes.append(
                (
                    "the cluster's pause could not be read at start: delivery is held here"
                    " until a heartbeat reaches the database and reads it",
                    {"error": str(exc)},
                )
            )
            self.pause = OperatorPause(
                f"unknown (the cluster's pause could not be read: {exc})", 0.0, True, True
            )
            self._dispatcher.paused = True
            return self.pause
        if found is not None:
            self.pause = _cluster(found)
            self.restored = True
            self._dispatcher.paused = True
        return self.pause

    def announce(self) -> None:
        """Say loudly, once the engine's logs are read, that it started paused (once: a start
        that failed after saying it may be announced again)."""
        for message, ctx in self._notes:
            log.warning(message, extra={"ctx": ctx})
        self._notes.clear()
        if self._announced:
            return
        self._announced = True
        pause = self.pause
        if not self.restored or pause is None:
            return
        log.warning(
            "delivery paused on every engine of this database by an operator: nothing is sent"
            " until resumed"
            if pause.cluster
            else "delivery paused by an operator before this start: nothing is sent until resumed",
            extra={
                "ctx": {
                    "paused_by": pause.actor,
                    "paused_at": f"{utc(pause.since)} UTC" if pause.since else "unknown",
                    "resume": RESUME_HOW,
                    "saved_in": "the shared database" if pause.cluster else str(self.path),
                }
            },
        )

    def follow(self, found: ClusterPause | None) -> None:
        """After every lease heartbeat on a shared database (before any lease is acquired),
        and when a claim found the cluster paused: hold or resume as the cluster's pause, just
        read, says. A pause made here that the
        database refused is saved now instead; a pause not the cluster's (a caller set the
        dispatcher's flag itself) is left alone."""
        shared = self._shared
        if shared is None:
            return
        current = self.pause if self._dispatcher.paused else None
        if current is not None and not current.saved:
            self._save_shared(shared, current)
            return
        if found is None:
            if current is not None and current.cluster:
                self._resumed_elsewhere(current)
            return
        pause = _cluster(found)
        if current != pause:
            log.warning(
                "delivery paused on every engine of this database by an operator: nothing is"
                " sent until resumed",
                extra={"ctx": _pause_ctx(found)},
            )
        self.pause = pause
        self._dispatcher.paused = True

    def _save_shared(self, shared: SharedPause, current: OperatorPause) -> None:
        """A pause the database refused when it was sent: saved now, as the cluster's."""
        try:
            found = shared.store.pause_cluster(current.actor, shared.instance_id)
        except StoreWriteError:
            return
        log.warning(
            "delivery paused on every engine of this database: the pause sent while the"
            " database could not be written is saved now",
            extra={"ctx": _pause_ctx(found)},
        )
        self.pause = _cluster(found)

    def _resumed_elsewhere(self, current: OperatorPause) -> None:
        self._lift()
        log.info(
            "delivery resumed on every engine of this database: the cluster's pause was lifted",
            extra={"ctx": {"paused_by": current.actor}},
        )

    def hold(self, actor: str) -> HoldResult:
        """Pause delivery now and save the pause. An engine already paused keeps who paused it
        first and when; a pause not saved yet is tried again."""
        if self._shared is not None:
            return self._hold_shared(self._shared, actor)
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

    def _hold_shared(self, shared: SharedPause, actor: str) -> HoldResult:
        """Pause every engine: the pause is written to the shared database (the others follow
        when it announces it, else at their next heartbeat or claim); refused, it holds this
        engine until it can be written."""
        self._dispatcher.paused = True
        try:
            found = shared.store.pause_cluster(actor, shared.instance_id)
        except StoreWriteError as exc:
            if self.pause is not None and self.pause.cluster:
                return HoldResult(
                    False,
                    f"Delivery stays paused on every engine ({_by(self.pause)}, as last read);"
                    f" the shared database could not be written ({exc.cause}).",
                )
            if self.pause is None:
                self.pause = OperatorPause(actor, self._clock(), saved=False)
            log.warning(
                "delivery paused on this engine only: the cluster's pause could not be saved"
                " in the database; the other engines keep sending until it is",
                extra={"ctx": {"error": str(exc.cause)}},
            )
            return HoldResult(
                False,
                "Delivery paused on this engine only: the pause could not be saved in the"
                f" shared database ({exc.cause}), so the other engines keep sending. It is"
                " saved for every engine as soon as this engine reaches the database again.",
            )
        self.pause = pause = _cluster(found)
        return HoldResult(
            True,
            f"Delivery paused on every engine of this database until resumed ({_by(pause)}).",
        )

    def _release_shared(self, shared: SharedPause) -> HoldResult:
        """Resume every engine: the pause is deleted from the shared database (the others
        follow when it announces it, else at their next heartbeat); refused, every engine
        stays paused, this one too. A pause the database never took (held here only) is lifted
        here all the same: kept, the next heartbeat that reached the database would save it for
        every engine, against the operator's resume."""
        current = self.pause if self._dispatcher.paused else None
        try:
            shared.store.resume_cluster()
        except StoreWriteError as exc:
            if current is not None and not current.saved:
                return self._resume_unsaved(exc)
            log.warning(
                "delivery stays paused: the cluster's pause could not be lifted in the database",
                extra={"ctx": {"error": str(exc.cause)}},
            )
            return HoldResult(
                False,
                "Delivery stays paused on every engine: the pause could not be lifted in the"
                f" shared database ({exc.cause}). Resume again once the database answers.",
            )
        self._lift()
        return HoldResult(True, "Delivery resumed on every engine of this database.")

    def _resume_unsaved(self, refused: StoreWriteError) -> HoldResult:
        """Lift a pause that held this engine only; a pause of the cluster set meanwhile by
        another engine holds this one again at its next heartbeat that reads it."""
        self._lift()
        log.info(
            "delivery resumed on this engine: its pause never reached the shared database",
            extra={"ctx": {"error": str(refused.cause)}},
        )
        return HoldResult(
            True,
            "Delivery resumed on this engine: its pause had not reached the shared database,"
            f" which still cannot be written ({refused.cause}); the other engines were not"
            " paused.",
        )

    def _lift(self) -> None:
        """Delivery runs again here, with no pause held, and the dispatcher looks at once."""
        self._dispatcher.paused = False
        self.pause = None
        self.restored = False
        self._dispatcher.wake()

    def release(self) -> HoldResult:
        """Resume delivery and remove the saved pause."""
        if self._shared is not None:
            return self._release_shared(self._shared)
        self._lift()
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
        sync_directory(self.path.parent)

    def _clear(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            return
        sync_directory(self.path.parent)


def read_saved_pause(data_dir: Path) -> SavedPause | None:
    """The pause saved in ``data_dir``, as an engine alone restores it at start and as ``db
    migrate-to`` carries it into the shared database: a file that cannot be read is a pause
    all the same (who and when unknown), and a time no clock can show is unknown (0). Read as
    bytes: bytes no UTF-8 reads are a damaged file too, not an error that stops the start."""
    path = data_dir / PAUSE_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        why = f"could not be read: {exc}"
        return SavedPause(f"unknown (the saved pause {why})", 0.0, why)
    try:
        data = json.loads(raw)
        actor, since = str(data["paused_by"]), float(data["paused_at"])
    except (ValueError, TypeError, KeyError) as exc:
        why = f"is damaged: {exc!r}"
        return SavedPause(f"unknown (the saved pause {why})", 0.0, why)
    return SavedPause(actor, since if _showable(since) else 0.0)


def _showable(stamp: float) -> bool:
    """True when ``stamp`` is a time the messages can show: a damaged file's may be one no
    clock can (``1e30``, ``NaN``), and showing it would stop the engine's start."""
    try:
        utc(stamp)
    except (OverflowError, ValueError, OSError):
        return False
    return True


def _cluster(found: ClusterPause) -> OperatorPause:
    """The cluster's pause as this engine holds it (saved: it is in the database)."""
    since = found.since if _showable(found.since) else 0.0
    return OperatorPause(found.actor, since, saved=True, cluster=True)


def _pause_ctx(found: ClusterPause) -> dict[str, object]:
    """The log fields of the cluster's pause: who, when, the engine it was sent to."""
    since = f"{utc(found.since)} UTC" if _showable(found.since) else "unknown"
    return {"paused_by": found.actor, "paused_at": since, "paused_on": found.instance}


def _by(pause: OperatorPause) -> str:
    """``paused by X since T UTC``; a pause restored from a damaged file has no time (0)."""
    since = f"since {utc(pause.since)} UTC" if pause.since else "since an unknown time"
    return f"paused by {pause.actor} {since}"
