"""The kill feeds: killstream sockets, REST fallback and gap backfill, and zKillboard R2Z2.

Killstream sockets are opened per mode as soon as the tracking index has something for them to
follow (``systems``, ``characters``); the systems sockets bring the REST poller with them, which
covers their outages and backfills every gap after a join. R2Z2 runs when enabled. Every part
is a supervised task; each reports its own connection health.

**Sharding.** wanderer-kills takes at most 10,000 systems and 50,000 characters per socket
(PROTOCOLS.md §3.3; :class:`ShardLimits`), so a mode's ids are spread over as many sockets as
that takes (:class:`ShardPlan`, sans-IO): each id is owned by one socket; a new id goes to the
first socket with room, a new socket opens only when all are full. When ids leave and the rest
would fit in one socket fewer with room to spare (three quarters full), the last socket is
drained into the others and closed. An id that moves is *subscribed on its new socket before it
is unsubscribed on its old one*: the old socket keeps it (``held``) until the new one's server
confirms it (the join's or the subscribe's ``ok`` reply), so every kill reaches at least one of
them; while both follow it, the shared recent-id filter drops the second copy before parsing
(the event log's unique key stays the authority). Names: one socket per mode keeps the names
``killstream:systems`` / ``killstream:characters``; several are ``killstream:systems:1``,
``killstream:systems:2``, … (and ``sockets`` is keyed ``systems:1`` …).

**A server with lower limits.** The limits are configurable (``killstream.max_systems_per_socket``,
``max_characters_per_socket``). A join refused for being over the server's own limit teaches a
lower one (:func:`learned_limit`: the limit the refusal states, else half the refused join, never
under 1 % of the configured limit): every socket over it hands its extra ids to others or new
ones, with the same subscribe-before-unsubscribe rule, and the next join of the refused socket
fits. Subscribes past the server's limit crash the channel instead (no reason given): a socket
whose channel crashes twice while growing, never having followed all its ids in between, teaches
the size the server last took. Said once per lowering (a warning) and counted
(``wc_killstream_limit_lowered_total``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Final, Literal

from wanderer_console.config.model import Settings
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.http.client import HttpClient
from wanderer_console.ingest.fallback import BackfillPolicy, FallbackPoller
from wanderer_console.ingest.health import ConnectionState
from wanderer_console.ingest.items import Item
from wanderer_console.ingest.killstream import KillstreamSource, valid_ids
from wanderer_console.ingest.r2z2 import Checkpoints, R2z2Source, R2z2Timing
from wanderer_console.ingest.recent import RecentIds
from wanderer_console.store.base import Store
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["KillSources", "Shard", "ShardLimits", "ShardPlan", "learned_limit"]

log = logging.getLogger("wanderer_console.runtime")

Spawn = Callable[[str, Callable[[], Awaitable[None]]], None]
Mode = Literal["systems", "characters"]
MODES: Final[tuple[Mode, ...]] = ("systems", "characters")
LOW_WATER: Final = 0.75
"""A mode's sockets shrink by one when its ids fit in one fewer, each this full at most."""
FLOOR_SHARE: Final = 100
"""A limit learned from the server is never under the configured one over this (1 %: at most
a hundred sockets for a full configured socket's ids), however often joins are refused."""


def learned_limit(limit: int, refused: int, stated: int | None, floor: int) -> int | None:
    """The lower per-socket limit a join of ``refused`` ids refused as over the server's limit
    teaches, or ``None`` when it teaches nothing below ``limit`` (already learned, or at
    ``floor``).

    The limit the refusal states is taken as it is; without one, half the refused join. A join
    bigger than ``limit`` (a socket still holding ids it hands over) was over our own limit too:
    without a stated limit it says nothing new. A stated limit under ``floor`` teaches nothing
    either: sockets at the floor would be refused as well, only more of them.
    """
    if stated is not None and stated < floor:
        return None
    if stated is not None and stated < refused:
        candidate = stated
    elif refused <= limit:
        candidate = refused // 2
    else:
        return None
    candidate = max(candidate, floor)
    return candidate if candidate < limit else None


@dataclass(frozen=True, slots=True)
class ShardLimits:
    """Ids one killstream socket may follow (the server refuses a join over them)."""

    systems: int = 10_000
    characters: int = 50_000

    def of(self, mode: Mode) -> int:
        """The limit for ``mode``."""
        return self.systems if mode == "systems" else self.characters


@dataclass(eq=False, slots=True)
class Shard:
    """One socket's share of a mode's ids."""

    ids: set[int] = field(default_factory=set)
    """Ids this socket owns."""
    held: set[int] = field(default_factory=set)
    """Ids moved to another socket, still followed here until that one confirms them."""
    draining: bool = False
    """Being emptied into the others, to be closed."""
    touched: set[int] = field(default_factory=set)
    """Ids whose place in :meth:`desired` may have changed since the socket last took them
    (:meth:`take_touched`): every change of :attr:`ids` and :attr:`held` goes through the
    methods below, which note it. The socket then compares only those with what it follows:
    comparing every id (20,000 pilots at 1,000 maps) held the event loop 2-3 ms at each change
    of tracking."""

    def desired(self) -> set[int]:
        """What the socket should follow now."""
        return self.ids | self.held if self.held else self.ids

    def take_touched(self) -> set[int]:
        """The ids noted since the last call (and forget them)."""
        touched, self.touched = self.touched, set()
        return touched

    def own(self, ids: Iterable[int]) -> None:
        ids = list(ids)
        self.ids.update(ids)
        self.touched.update(ids)

    def disown(self, ids: Iterable[int]) -> None:
        ids = list(ids)
        self.ids.difference_update(ids)
        self.touched.update(ids)

    def hold(self, ids: Iterable[int]) -> None:
        ids = list(ids)
        self.held.update(ids)
        self.touched.update(ids)

    def unhold(self, ids: Iterable[int]) -> None:
        ids = list(ids)
        self.held.difference_update(ids)
        self.touched.update(ids)

    @property
    def load(self) -> int:
        """Ids the socket follows (owned and held): what its server counts."""
        return len(self.ids) + len(self.held)


class ShardPlan:
    """Which socket follows which id, for one mode (no I/O: the manager acts on it)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a socket must follow at least one id")
        self.limit = limit
        self.shards: list[Shard] = []
        self.owner: dict[int, Shard] = {}
        self.moves = 0
        """Ids moved between sockets so far (consolidation)."""

    def sync(self, wanted: AbstractSet[int]) -> None:
        """Bring the plan in line with ``wanted``: drop the ids gone, place the new ones, and
        start draining the last socket if the rest would fit in one fewer."""
        self._change(self.owner.keys() - wanted, wanted - self.owner.keys())

    def apply(self, changed: Iterable[int], wanted: Callable[[int], bool]) -> None:
        """Like :meth:`sync`, looking only at ``changed`` ids (``wanted(id)``: still tracked?):
        the cost of a map loading is the ids it brought, not every id tracked."""
        owner = self.owner
        gone, added = set(), set()
        for i in changed:
            if wanted(i):
                if i not in owner:
                    added.add(i)
            elif i in owner:
                gone.add(i)
        self._change(gone, added)

    def _change(self, gone: AbstractSet[int], added: AbstractSet[int]) -> None:
        owner = self.owner
        for i in gone:
            owner.pop(i).disown((i,))
        if gone:
            for shard in self.shards:
                if shard.held & gone:
                    shard.unhold(shard.held & gone)
        if added:
            self._place(sorted(added))
        self.consolidate()

    def _place(self, ids: list[int]) -> None:
        """Fill the open sockets in order (a draining one only when no other has room), then
        open new ones."""
        limit = self.limit
        order = [s for s in self.shards if not s.draining] + [s for s in self.shards if s.draining]
        position = 0
        for shard in order:
            room = limit - shard.load
            if room <= 0 or position >= len(ids):
                continue
            take = ids[position : position + room]
            position += len(take)
            shard.own(take)
            shard.draining = False
            for i in take:
                self.owner[i] = shard
        while position < len(ids):
            shard = Shard()
            take = ids[position : position + limit]
            position += len(take)
            shard.own(take)
            for i in take:
                self.owner[i] = shard
            self.shards.append(shard)

    def consolidate(self) -> bool:
        """Start (or go on) draining the last socket when the rest would fit in one fewer;
        True when ids moved."""
        if len(self.shards) < 2 or any(s.held for s in self.shards):
            return False  # one socket, or a move still waits for its confirmation
        last = self.shards[-1]
        if not last.draining:
            if len(self.owner) > (len(self.shards) - 1) * self.limit * LOW_WATER:
                return False
            last.draining = True
        moving = sorted(last.ids)
        moved = bool(moving)
        for shard in self.shards[:-1]:
            room = self.limit - shard.load
            if room <= 0 or not moving:
                continue
            take, moving = moving[:room], moving[room:]
            shard.own(take)
            last.disown(take)
            last.hold(take)
            for i in take:
                self.owner[i] = shard
            self.moves += len(take)
        return moved

    def lower(self, limit: int, confirmed: Callable[[Shard], set[int]]) -> None:
        """Take a lower ``limit``: each socket over it keeps its lowest ids and hands the rest
        to sockets with room or new ones. A moved id its server has confirmed is held there
        until its new socket confirms it (:meth:`release`); one it has not (a refused join) is
        followed by nothing meanwhile, so it is not held (that would keep the join over the
        limit)."""
        self.limit = limit
        moving: list[int] = []
        for shard in self.shards:
            if shard.load <= limit:
                continue
            followed = confirmed(shard)
            shard.unhold(shard.held - followed)
            excess = shard.load - limit
            if excess <= 0:
                continue
            take = sorted(shard.ids)[max(0, len(shard.ids) - excess) :]
            shard.disown(take)
            shard.hold(i for i in take if i in followed)
            moving.extend(take)
        for i in moving:
            del self.owner[i]
        self.moves += len(moving)
        self._place(sorted(moving))

    def release(self, confirmed: Callable[[Shard], set[int]]) -> list[Shard]:
        """Let each socket drop the ids it holds that their new socket has confirmed; return
        the sockets whose subscription shrank."""
        changed = []
        for shard in self.shards:
            if not shard.held:
                continue
            done = {
                i
                for i in shard.held
                if (new := self.owner.get(i)) is not None and i in confirmed(new)
            }
            if done:
                shard.unhold(done)
                changed.append(shard)
        return changed

    def closable(self) -> list[Shard]:
        """Drained sockets that follow nothing any more (removed from the plan)."""
        done = [s for s in self.shards if s.draining and not s.ids and not s.held]
        if done:
            self.shards = [s for s in self.shards if s not in done]
        return done


class KillSources:
    """Starts the kill feeds the settings and the tracking index call for."""

    def __init__(
        self,
        settings: Callable[[], Settings],
        index: TrackingIndex,
        store: Store,
        sink: Callable[[Item], Awaitable[None]],
        metrics: Metrics,
        *,
        client: Callable[[str], HttpClient],
        spawn: Spawn,
        resume_from: float | None,
        mark_seen: Callable[[float], None],
        checkpoints: Checkpoints | None = None,
    ) -> None:
        self._settings = settings
        self._index = index
        self._store = store
        self._sink = sink
        self._metrics = metrics
        self._client = client
        self._spawn = spawn
        self.resume_from = resume_from
        """The previous run's killstream watermark (the first gap backfill starts there)."""
        self._mark_seen = mark_seen
        self._checkpoints = checkpoints
        """The queue's checkpoints: R2Z2 saves a sequence once everything queued up to it is
        written."""
        self.started = False
        """Set by the runtime once its tasks run: sockets open only from then on."""
        self.recent = RecentIds()
        """Killmail ids the sockets saw lately: repeats are dropped before parsing (a kill seen
        on two sockets while its system moves between them is handed on once)."""
        ks = settings().killstream
        self.limits = ShardLimits(ks.max_systems_per_socket, ks.max_characters_per_socket)
        """Ids per socket as configured (tests shrink them before the start); a mode's plan
        may learn a lower limit from the server."""
        self.plans: dict[Mode, ShardPlan] = {}
        """Each mode's sharding (made at the first need, with :attr:`limits`)."""
        self._sources: dict[int, KillstreamSource] = {}  # id(shard) -> its socket
        self._opened: dict[Mode, int] = dict.fromkeys(MODES, 0)
        self._joined = False  # a systems socket has joined at least once
        self._retired_rejoins = 0  # rejoins of systems sockets since closed
        self._reshard_gaps = 0  # systems limits lowered: refused joins' systems went unfollowed
        self.sockets: dict[str, KillstreamSource] = {}
        """Every open killstream socket by name (``systems``, or ``systems:1`` … when sharded)."""
        self.fallback: FallbackPoller | None = None
        """REST polling for the tracked systems while a systems socket is down."""
        self.r2z2: R2z2Source | None = None
        """The zKillboard R2Z2 poller, while ``[r2z2] enabled``."""
        self.r2z2_timing = R2z2Timing()
        """The R2Z2 poller's waits; tests shrink them before the start."""

    def tracking_changed(self) -> None:
        """The index changed: re-plan the shards, resubscribe, open and close sockets."""
        self.ensure()

    def ensure(self) -> None:
        """Bring the sockets (and the fallback poller) in line with the index."""
        ks = self._settings().killstream
        if not ks.enabled or not self.started:
            return
        index = self._index
        tracked: dict[Mode, Callable[[int], bool]] = {
            "systems": index.tracks_system,
            "characters": index.tracks_character,
        }
        for mode in MODES:
            plan = self.plans.get(mode)
            changed = index.take_changed(mode)
            touched = True
            if plan is None or changed is None:
                # The first time (or after too many changes to keep): compare everything.
                if plan is None:
                    plan = self.plans[mode] = ShardPlan(self.limits.of(mode))
                plan.sync(valid_ids(mode, index.tracked_ids(mode)))
            elif changed:
                plan.apply(valid_ids(mode, changed), tracked[mode])
            else:
                # Nothing new for this mode's sockets, unless a closed one lets another drain.
                touched = plan.consolidate()
            for shard in plan.shards:
                source = self._sources.get(id(shard))
                if source is None:
                    self._open(mode, shard)
                elif touched:
                    source.refresh()
        if self._settle():
            # A socket closed (emptied by the change): the rest may now fit in one fewer.
            self.ensure()
            return
        if self._system_sockets() and self.fallback is None:
            self._start_fallback()

    def _open(self, mode: Mode, shard: Shard) -> None:
        ks = self._settings().killstream
        self._opened[mode] += 1
        count = self._opened[mode]
        task = f"killstream:{mode}" if count == 1 else f"killstream:{mode}:{count}"
        source = KillstreamSource(
            mode,
            ks.websocket_url,
            shard.desired,
            self._sink,
            self._metrics,
            client_identifier=ks.client_identifier,
            heartbeat_seconds=ks.heartbeat_seconds,
            recent=self.recent,
            max_frame_bytes=ks.max_frame_bytes,
            on_confirmed=self._confirmed,
            on_over_limit=functools.partial(self._over_limit, mode),
            touched=shard.take_touched,
        )
        self._sources[id(shard)] = source
        self._spawn(task, source.run)

    def _confirmed(self) -> None:
        """A socket's server confirmed ids (or lost them): release what moved, close what
        drained (and, if one closed, see whether another should drain)."""
        if self._settle():
            self.ensure()

    def _over_limit(self, mode: Mode, refused: int, stated: int | None) -> bool:
        """A join of ``refused`` ids was refused as over the server's limit: learn the lower
        limit and re-plan. True when the sockets are planned to fit (now or already)."""
        plan = self.plans.get(mode)
        if plan is None:
            return False
        was = plan.limit
        floor = max(1, self.limits.of(mode) // FLOOR_SHARE)
        limit = learned_limit(was, refused, stated, floor)
        if limit is None:
            # Already learned (another socket's refusal came first), or a holding socket's
            # join: the plan fits unless we are at the floor and still refused.
            return refused > was or (stated is not None and was <= stated)
        plan.lower(limit, self._confirmed_ids)
        if mode == "systems":
            self._reshard_gaps += 1
        self._metrics.killstream_limit_lowered.labels(mode=mode).inc()
        log.warning(
            "killstream server's limit is lower; resharding",
            extra={
                "ctx": {
                    "mode": mode,
                    "limit": limit,
                    "was": was,
                    "refused_ids": refused,
                    "stated": stated,
                    "sockets": len(plan.shards),
                }
            },
        )
        for shard in plan.shards:
            source = self._sources.get(id(shard))
            if source is None:
                self._open(mode, shard)
            else:
                source.refresh()
        self._settle()
        return True

    def _settle(self) -> bool:
        """Release confirmed moves, close drained sockets; True when one closed."""
        closed = False
        for mode, plan in self.plans.items():
            for shard in plan.release(self._confirmed_ids):
                source = self._sources.get(id(shard))
                if source is not None:
                    source.refresh()
            for shard in plan.closable():
                source = self._sources.pop(id(shard), None)
                if source is None:
                    continue
                closed = True
                if mode == "systems":
                    self._joined = self._joined or source.joins > 0
                    self._retired_rejoins += max(0, source.joins - 1)
                source.stop()
                log.info(
                    "killstream socket closed: its ids moved to the others",
                    extra={"ctx": {"name": source.health.name, "moves": plan.moves}},
                )
        self._name()
        return closed

    def _confirmed_ids(self, shard: Shard) -> set[int]:
        source = self._sources.get(id(shard))
        return set() if source is None else source.confirmed

    def _name(self) -> None:
        """Key and name every socket by its mode and place (``systems`` alone, ``systems:1`` …)."""
        sockets: dict[str, KillstreamSource] = {}
        for mode, plan in self.plans.items():
            shards = [s for s in plan.shards if id(s) in self._sources]
            for position, shard in enumerate(shards, 1):
                key = mode if len(shards) == 1 else f"{mode}:{position}"
                source = self._sources[id(shard)]
                source.health.name = f"killstream:{key}"
                sockets[key] = source
        self.sockets = sockets

    def _system_sockets(self) -> list[KillstreamSource]:
        plan = self.plans.get("systems")
        if plan is None:
            return []
        return [self._sources[id(s)] for s in plan.shards if id(s) in self._sources]

    def _start_fallback(self) -> None:
        settings = self._settings()
        ks = settings.killstream
        self.fallback = FallbackPoller(
            self._client("killstream"),
            ks.rest_url,
            self._index.all_system_ids,
            self._socket_up,
            self._sink,
            self._metrics,
            after=ks.fallback_after_seconds,
            interval=ks.fallback_interval_seconds,
            # Every new join may follow a gap: backfill it, from the previous run's watermark at
            # the first join (restarts lose nothing).
            joins=self._joins,
            resume_from=self.resume_from,
            mark_seen=self._mark_seen,
            policy=BackfillPolicy(
                overlap=ks.backfill_overlap_seconds,
                max_age=settings.console.max_killmail_age_seconds,
                limit=ks.backfill_limit_per_system,
                timeout=ks.backfill_timeout_seconds,
            ),
        )
        self._spawn("killstream:fallback", self.fallback.run)

    def _socket_up(self) -> bool:
        """Every systems socket is connected (the poller covers any one that is not)."""
        return all(s.health.state is ConnectionState.CONNECTED for s in self._system_sockets())

    def _joins(self) -> int:
        """Joins that may follow a gap: the first join of the run (the restart's gap), then
        every rejoin of any systems socket, and every lowering of the systems limit (the refused
        join's systems were followed by no socket). A new socket's first join is no gap otherwise:
        its ids are newly tracked, or moved there while their old socket still followed them."""
        sources = self._system_sockets()
        self._joined = self._joined or any(s.joins for s in sources)
        rejoins = self._retired_rejoins + sum(max(0, s.joins - 1) for s in sources)
        return rejoins + self._reshard_gaps + (1 if self._joined else 0)

    # -- a map taken over from another instance (several instances on one database) ----------

    def following(self, systems: Iterable[int]) -> bool:
        """True when every one of ``systems`` is followed by a systems socket whose server has
        confirmed it (a kill in it from now on reaches this engine)."""
        plan = self.plans.get("systems")
        wanted = valid_ids("systems", systems)
        if plan is None:
            return not wanted
        for system in wanted:
            shard = plan.owner.get(system)
            if shard is None or system not in self._confirmed_ids(shard):
                return False
        return True

    def forget_recent(self) -> None:
        """Forget which kills were read lately (the sockets' filter and the REST poller's), so
        a kill read before for other maps reaches the pipeline again for a map taken over."""
        self.recent.clear()
        if self.fallback is not None:
            self.fallback.forget()

    async def backfill(self, systems: Iterable[int], since: float) -> list[int] | None:
        """Ask the REST API for the kills in ``systems`` since ``since`` (a wall time: the
        previous owner's last heartbeat), as after a gap; return the systems not reached, or
        ``None`` when there is no REST poller (the killstream is off)."""
        if self.fallback is None:
            return None
        return await self.fallback.backfill(since, sorted(systems))

    def start_r2z2(self, http: HttpClient) -> None:
        """Start the R2Z2 poller when enabled (``http``: a plain client, no retry layer)."""
        r2 = self._settings().r2z2
        if not r2.enabled or self.r2z2 is not None:
            return
        self.r2z2 = R2z2Source(
            http,
            self._store,
            self._index,
            self._sink,
            self._metrics,
            url=r2.url,
            user_agent=r2.user_agent,
            max_age_hours=r2.max_age_hours,
            timing=self.r2z2_timing,
            checkpoints=self._checkpoints,
        )
        self._spawn("r2z2", self.r2z2.run)
