"""Map leases: which instance works which map when several share one PostgreSQL database.

Every instance registers itself and heartbeats every third of ``[cluster] lease_seconds``
(:meth:`MapLeases.tick`): one transaction renews its registry row and the leases it still holds
(:meth:`~wanderer_console.store.leases.LeaseMixin.heartbeat`), with the database's clock as the
only clock (its first heartbeat only registers it: engines started together see each other a
second later, before the maps are shared out). Then it balances:

* **Fair share.** An instance works at most ``ceil(maps / live instances)`` maps. Below its share
  it acquires free leases (never held, released, or expired), in an order of its own (a hash of
  its id and the map, so instances starting together reach for different maps); above it (an
  instance joined) it releases its surplus, gracefully.
* **Acquiring** a map (:class:`LeaseHooks`.start): its notifications left in flight by an
  instance that died or lost the lease are recovered as uncertain (the same rules as after a
  crash: bot messages again under their nonce, webhook messages once after the uncertainty
  window; a bot message the other instance sent first is not trusted to its nonce, whose age is
  that instance's clock), its feed starts (REST load, then the SSE stream from the stored
  cursor), the killstream subscription grows by its systems, and the kills published since the
  previous holder's last heartbeat are backfilled over REST.
* **Losing** a lease (expired or taken: the heartbeat did not renew it) stops the map's feed and
  its sending at once; **releasing** one (surplus, graceful stop) first lets its requests in
  flight finish, then gives the lease up so another instance takes it at its next look.
* **Fencing.** The dispatcher asks :meth:`MapLeases.fence` before each claim: a lease held and
  certainly unexpired by the local monotonic clock (renewed at ``t``: good until
  ``t + lease_seconds - margin``, and a stalled process's clock runs on while it is stopped). The
  claim statement checks the lease again in the database; after the send, an answer other than
  "sent" is recorded only while the lease is still held (:meth:`MapLeases.holds`), else the new
  owner settles it as uncertain.

**The cluster's pause.** Every heartbeat also reads the operator's pause of delivery kept in the
database (:class:`~wanderer_console.store.base.ClusterPause`) and hands it to the runtime
(:meth:`MapLeases.follow_pause`) before it balances: no lease is acquired, and so nothing sent,
by an instance that has not read it. Between heartbeats the claims keep it: each reads the pause
in its own transaction and claims nothing under it (the dispatcher then holds this instance).
On PostgreSQL a pause or a resume written by any instance is announced, and every instance
heartbeats when told (:meth:`MapLeases.watch_pause`): it follows it at once, a resume too.

An instance that dies or stalls loses its maps ``lease_seconds`` after its last heartbeat; the
others look again exactly when a foreign lease on one of their maps is due to expire, so the
takeover follows within a fraction of a second.

**The maps shared** are read at every balance (:meth:`MapLeases.maps`): the maps enabled in the
running settings that the runtime says may be worked (hosted maps follow the map server). A map
added is contended for at the next balance like any other; a map held here that is no longer in
the set is released (as a surplus one), its pending notifications failed first under its lease
(:meth:`LeaseHooks.retire`: no instance would ever send them). Instances refresh the hosted
configuration each on its own timer, so for a while they may disagree on the set: each acquires
only maps it knows (the store's acquisition is one conditional statement, so two never hold one
map), and the shares settle once they agree. The runtime changes the maps inside
:meth:`MapLeases.changing`, which holds the heartbeat off meanwhile and balances right after.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from wanderer_console.config.model import Settings
from wanderer_console.config.routing import OPS_TENANT, ops_target
from wanderer_console.store.base import (
    ClusterPause,
    ClusterState,
    InstanceInfo,
    LeaseFence,
    LeaseGrant,
    Store,
)
from wanderer_console.store.writes import StoreWriteError

__all__ = ["LeaseHooks", "MapLeases", "instance_info", "resource_of"]

log = logging.getLogger(__name__)

MAP_PREFIX: Final = "map:"
_EXPIRY_SLACK: Final = 0.05
"""Seconds after a foreign lease's expiry an instance looks again (to take it over)."""
_RETRY: Final = 1.0
"""Seconds between heartbeats while the database cannot be written."""


def resource_of(tenant: str) -> str:
    """The lease resource of a map."""
    return f"{MAP_PREFIX}{tenant}"


def instance_info(version: str) -> InstanceInfo:
    """This process's registry identity: host, PID and a random suffix (a PID is reused)."""
    host = socket.gethostname()
    pid = os.getpid()
    return InstanceInfo(f"{host}:{pid}:{secrets.token_hex(3)}", host, pid, version, time.time())


class LeaseHooks(Protocol):
    """What the runtime does when this instance gains, loses or keeps a map."""

    def start(self, tenant: str, grant: LeaseGrant, fence: LeaseFence) -> None:
        """The map's lease was acquired: recover its orphaned claims, start its feed."""

    async def stop(self, tenant: str) -> None:
        """Stop the map's feed and let its sends in flight finish (bounded)."""

    def kept(self, fences: dict[str, LeaseFence]) -> None:
        """After every heartbeat, the maps still held (recover orphans, tidy the index)."""

    def retire(self, tenant: str, fence: LeaseFence) -> None:
        """The map is no longer configured and its feed has stopped; its lease, still held
        under ``fence``, is about to be given back: settle what it left pending, which no
        instance would send."""


@dataclass(slots=True)
class _Held:
    fence: LeaseFence
    deadline: float
    """Monotonic time until which the lease is certainly this instance's."""
    since: float
    """Wall time it was acquired."""


class MapLeases:
    """This instance's map leases (see the module docstring). Inactive on SQLite."""

    def __init__(
        self,
        settings: Callable[[], Settings],
        store: Store,
        *,
        instance: InstanceInfo,
        active: bool,
        clock: Callable[[], float] = time.monotonic,
        settle: float = 1.0,
        eligible: Callable[[str], bool] | None = None,
    ) -> None:
        self._settings = settings
        self._eligible = eligible
        """Which of the enabled maps may be worked now (``None``: all of them; the runtime: not
        a file map added or enabled since start, which takes a restart as on an engine alone)."""
        self._store = store
        self.instance = instance
        self.active = active
        """True on PostgreSQL: maps are leased; else this instance works every map."""
        self._clock = clock
        self._settle = settle
        """Seconds between the first heartbeat and the first acquisition, so engines started
        together see each other before sharing the maps out (fewer hand-overs)."""
        self._hooks: LeaseHooks | None = None
        self._pause_follower: Callable[[ClusterPause | None], None] | None = None
        self._lock = asyncio.Lock()
        """Held by a heartbeat and by a change of the maps (:meth:`changing`): one at a time."""
        self._wake = asyncio.Event()
        self._held: dict[str, _Held] = {}
        self.leaving: set[str] = set()
        """Maps being released: nothing new is sent for them meanwhile."""
        self.state: ClusterState | None = None
        """The registry and leases as the last heartbeat read them."""
        self._state_at = 0.0
        self._frozen = False
        self.last_error: str | None = None
        """Why the last heartbeat failed (``None`` while they succeed)."""
        self.acquired = 0
        """Leases acquired since start."""
        self.taken_over = 0
        """Of those, leases another instance held before (it died, stalled or left)."""
        self.lost = 0
        """Leases lost (expired or taken while this instance held them)."""
        self._ops_waiting = False
        """The operations messages have no map to go under (said once, see :meth:`_ops_wait`)."""

    def bind(self, hooks: LeaseHooks) -> None:
        """Say what to do when a map is gained, lost or kept (the runtime)."""
        self._hooks = hooks

    def follow_pause(self, follower: Callable[[ClusterPause | None], None]) -> None:
        """Hand the cluster's pause, as every heartbeat reads it, to ``follower`` (the
        runtime's delivery hold), before that heartbeat's balance acquires any lease."""
        self._pause_follower = follower

    # -- settings ----------------------------------------------------------------------------------

    @property
    def lease_seconds(self) -> float:
        """A lease's life without renewal (``[cluster] lease_seconds``, read at every heartbeat)."""
        return float(self._settings().cluster.lease_seconds)

    @property
    def heartbeat_seconds(self) -> float:
        """Seconds between heartbeats: a third of the lease."""
        return self.lease_seconds / 3.0

    @property
    def margin(self) -> float:
        """Seconds before its expiry a lease stops being trusted locally."""
        return min(1.0, self.lease_seconds * 0.1)

    def maps(self) -> list[str]:
        """The maps to share out now: those enabled in the running settings (read at every
        call) that the runtime lets be worked (see ``eligible``)."""
        eligible = self._eligible
        return sorted(
            key
            for key, entry in self._settings().maps.items()
            if entry.enabled and (eligible is None or eligible(key))
        )

    # -- what the dispatcher asks ------------------------------------------------------------------

    @property
    def instance_id(self) -> str:
        """This instance's id in the registry (and on the rows it claims)."""
        return self.instance.instance_id

    def owned(self) -> list[str]:
        """Maps whose lease this instance holds (possibly being released)."""
        return sorted(self._held)

    def tenants(self) -> set[str]:
        """Maps whose notifications this instance sends now (and the operations messages,
        while it holds the first map's lease: see :meth:`carried`)."""
        now = self._clock()
        held = {
            tenant
            for tenant, held in self._held.items()
            if held.deadline > now and tenant not in self.leaving
        }
        lead = self._ops_carrier()
        if lead is not None and lead in held:
            held.add(OPS_TENANT)
        return held

    def _ops_carrier(self) -> str | None:
        """The map whose lease carries the operations messages (tenant ``_ops``: the alerts'
        firing and resolved messages, written by every instance): the first map to share out.
        They belong to no map, so no lease of their own; one instance sends them, under this
        map's lease (claims fenced by it, orphans recovered by its next holder)."""
        maps = self.maps()
        return maps[0] if maps else None

    def _ops_wait(self) -> None:
        """Say once (not at every heartbeat) that the operations messages wait because no map
        is shared out to carry them (hosted, before the map server lists one; every map of the
        file disabled), and once when a map carries them again. Without an operations webhook
        there is nothing to wait."""
        carrier = self._ops_carrier()
        waiting = carrier is None and ops_target(self._settings()) is not None
        if waiting and not self._ops_waiting:
            log.warning(
                "operations alert messages wait: no map is shared out on this database, and"
                " they go out under the first map's lease; enable a map in the configuration"
                " (or add one on the map server when hosted)",
                extra={"ctx": {"instance": self.instance_id}},
            )
        elif self._ops_waiting and carrier is not None:
            log.info(
                "operations alert messages go out again, under the first map's lease",
                extra={"ctx": {"map": carrier, "instance": self.instance_id}},
            )
        self._ops_waiting = waiting

    def carried(self, tenant: str) -> list[str]:
        """The tenants whose rows are sent under ``tenant``'s lease: the map, and the
        operations messages when it is their carrier (a hand-over waits for both)."""
        return [tenant, OPS_TENANT] if tenant == self._ops_carrier() else [tenant]

    def fence(self, tenant: str) -> LeaseFence | None:
        """The lease to claim ``tenant``'s rows under, or ``None``: do not send for it now."""
        if tenant == OPS_TENANT:
            lead = self._ops_carrier()
            return None if lead is None else self.fence(lead)
        held = self._held.get(tenant)
        if held is None or tenant in self.leaving or held.deadline <= self._clock():
            return None
        return held.fence

    def holds(self, fence: LeaseFence) -> bool:
        """True while ``fence`` is still this instance's lease (certainly unexpired)."""
        tenant = fence.resource.removeprefix(MAP_PREFIX)
        held = self._held.get(tenant)
        return held is not None and held.fence == fence and held.deadline > self._clock()

    # -- the loop ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Heartbeat and balance until cancelled (sooner when woken: :meth:`wake`; a wake
        during a heartbeat brings the next one at once, since it may have come after that
        heartbeat's read)."""
        while True:
            self._wake.clear()
            delay = await self.tick()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    def wake(self) -> None:
        """Make the running loop heartbeat and balance now (the maps changed)."""
        self._wake.set()

    async def watch_pause(self, changes: AsyncIterator[None]) -> None:
        """Heartbeat, and so follow the cluster's pause, whenever ``changes`` says it may have
        changed (:func:`~wanderer_console.store.postgres.pause_changes`): a pause or a resume
        sent to another engine holds or releases this one at once, not a heartbeat later."""
        async for _ in changes:
            self.wake()

    @contextlib.asynccontextmanager
    async def changing(self) -> AsyncIterator[None]:
        """While the runtime changes the maps (a hosted refresh applied): no heartbeat or
        balance runs, so no lease is acquired or released for a map half-changed. On leaving,
        the maps held here that are no longer to be shared are released (their feed stopped,
        their lease given back, as a surplus one) and the loop is woken to balance at once."""
        async with self._lock:
            yield
            if self.active and not self._frozen:
                maps = set(self.maps())
                for tenant in [t for t in self._held if t not in maps]:
                    await self._release(tenant, retired=True)
        self.wake()

    def freeze(self) -> None:
        """Stop acquiring and releasing (the engine is stopping); heartbeats go on."""
        self._frozen = True

    async def tick(self) -> float:
        """One heartbeat and balance; return the seconds until the next."""
        async with self._lock:
            return await self._tick()

    async def _tick(self) -> float:
        started = self._clock()
        ttl = self.lease_seconds
        try:
            state = self._store.heartbeat(self.instance, ttl)
        except StoreWriteError as exc:
            if self.last_error is None:
                log.warning(
                    "lease heartbeat failed; maps are not sent for once their leases run out",
                    extra={"ctx": {"error": str(exc.cause)}},
                )
            self.last_error = str(exc.cause)
            return _RETRY
        if self.last_error is not None:
            log.info("lease heartbeat works again", extra={"ctx": {"instance": self.instance_id}})
        self.last_error = None
        self.state, self._state_at = state, started
        if self._pause_follower is not None:  # before a lease is acquired: nothing is sent first
            self._pause_follower(state.pause)
        renewed = {lease.resource: lease for lease in state.held}
        for tenant, held in list(self._held.items()):
            lease = renewed.pop(held.fence.resource, None)
            if lease is None or lease.token != held.fence.token:
                await self._lose(tenant)
            else:
                held.deadline = started + ttl - self.margin
        for stray in renewed.values():  # held in the database, unknown here: give it back
            self._give_back(LeaseFence(stray.resource, self.instance_id, stray.token))
        if self._settle > 0:  # first heartbeat: registered; share the maps out at the next
            settle, self._settle = self._settle, 0.0
            return min(settle, self.heartbeat_seconds)
        if not self._frozen and await self._balance(state, ttl):
            with contextlib.suppress(Exception):  # the views show the leases as they are now
                self.state, self._state_at = self._store.cluster_state(), self._clock()
        self._ops_wait()
        if self._hooks is not None:
            fences = {tenant: held.fence for tenant, held in self._held.items()}
            lead = self._ops_carrier()
            if lead in fences:
                fences[OPS_TENANT] = fences[lead]
            self._hooks.kept(fences)
        return self._next_delay(state, started)

    async def _balance(self, state: ClusterState, ttl: float) -> bool:
        """Release the surplus, acquire up to the share; True when a lease changed hands."""
        before = set(self._held)
        maps = self.maps()  # now: a map added since the last balance is contended for
        live = max(1, len(state.instances))
        share = math.ceil(len(maps) / live) if maps else 0
        known = set(maps)
        gone = [tenant for tenant in self._held if tenant not in known]  # removed or disabled
        kept = sorted((t for t in self._held if t in known), key=self._rank, reverse=True)
        for tenant in gone:
            await self._release(tenant, retired=True)
        for tenant in kept[: max(0, len(kept) - share)]:  # least preferred first
            await self._release(tenant)
        leases = {lease.resource: lease for lease in state.leases}
        for tenant in sorted(maps, key=self._rank):
            if len(self._held) >= share:
                break
            if tenant in self._held:
                continue
            lease = leases.get(resource_of(tenant))
            if lease is not None and lease.owner is not None and lease.expires_at > state.now:
                continue  # another instance's (or ours, given back this very tick)
            if not self._acquire(tenant, ttl):
                break
        return set(self._held) != before

    def _acquire(self, tenant: str, ttl: float) -> bool:
        """Try the map's lease; False when the database cannot be written."""
        asked = self._clock()
        try:
            grant = self._store.acquire_lease(resource_of(tenant), self.instance_id, ttl)
        except StoreWriteError:
            return False
        if grant is None:
            return True  # taken by another instance meanwhile
        fence = LeaseFence(grant.lease.resource, self.instance_id, grant.lease.token)
        self._held[tenant] = _Held(fence, asked + ttl - self.margin, time.time())
        self.acquired += 1
        previous = grant.previous
        from_other = previous is not None and previous.owner not in (None, self.instance_id)
        self.taken_over += 1 if from_other else 0
        log.info(
            "map lease acquired; starting the map",
            extra={
                "ctx": {
                    "tenant": tenant,
                    "token": fence.token,
                    "previous_owner": None if previous is None else previous.owner,
                    "instance": self.instance_id,
                }
            },
        )
        if self._hooks is not None:
            self._hooks.start(tenant, grant, fence)
        return True

    async def _lose(self, tenant: str) -> None:
        self._held.pop(tenant, None)  # first: nothing more is sent for it
        self.lost += 1
        log.warning(
            "map lease lost (expired or taken over); stopping the map here",
            extra={"ctx": {"tenant": tenant, "instance": self.instance_id}},
        )
        if self._hooks is not None:
            await self._hooks.stop(tenant)

    async def _release(self, tenant: str, *, retired: bool = False) -> None:
        """Hand the map over: nothing new is sent for it, its feed stops and its sends in flight
        finish, then its lease is given back. ``retired``: the map is no longer configured
        here, and what it left pending is settled first (:meth:`LeaseHooks.retire`)."""
        self.leaving.add(tenant)
        try:
            if self._hooks is not None:
                await self._hooks.stop(tenant)
        finally:
            self.leaving.discard(tenant)
        held = self._held.pop(tenant, None)
        if held is not None:
            if retired and self._hooks is not None:
                self._hooks.retire(tenant, held.fence)
            self._give_back(held.fence)
        log.info(
            "map lease released: no longer configured here"
            if retired
            else "map lease released for another instance",
            extra={"ctx": {"tenant": tenant, "instance": self.instance_id}},
        )

    def _give_back(self, fence: LeaseFence) -> None:
        with contextlib.suppress(StoreWriteError):  # else it expires by itself
            self._store.release_lease(fence)

    def _rank(self, tenant: str) -> bytes:
        """This instance's preference for a map (a hash: instances prefer different maps)."""
        return hashlib.blake2b(f"{self.instance_id}|{tenant}".encode(), digest_size=8).digest()

    def _next_delay(self, state: ClusterState, started: float) -> float:
        """A heartbeat from now, or sooner: just after a foreign lease on one of our maps is due
        to expire (its holder may be dead: the takeover should not wait a heartbeat more)."""
        delay = self.heartbeat_seconds
        ours = {resource_of(tenant) for tenant in self.maps()}
        for lease in state.leases:
            if (
                lease.resource in ours
                and lease.owner not in (None, self.instance_id)
                and lease.expires_at > state.now
            ):
                delay = min(delay, lease.expires_at - state.now + _EXPIRY_SLACK)
        return max(_EXPIRY_SLACK, delay - (self._clock() - started))

    def leave(self) -> None:
        """A graceful stop: give every lease up and leave the registry (never raises)."""
        if not self.active:
            return
        self._frozen = True
        try:
            released = self._store.leave_cluster(self.instance_id)
        except Exception as exc:  # the store may be gone: the leases expire by themselves
            log.warning("leases not released at stop", extra={"ctx": {"error": str(exc)}})
            return
        finally:
            self._held.clear()
        log.info(
            "left the cluster; maps released",
            extra={"ctx": {"instance": self.instance_id, "leases": released}},
        )

    # -- views -------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any] | None:
        """Which maps this instance owns and which instances are alive (``None`` when alone)."""
        if not self.active:
            return None
        state = self.state
        now = None if state is None else state.now + (self._clock() - self._state_at)
        owners: dict[str, list[str]] = {}
        unowned = []
        if state is not None and now is not None:
            for lease in state.leases:
                tenant = lease.resource.removeprefix(MAP_PREFIX)
                if lease.owner is not None and lease.expires_at > now:
                    owners.setdefault(lease.owner, []).append(tenant)
            held = {tenant for names in owners.values() for tenant in names}
            unowned = [tenant for tenant in self.maps() if tenant not in held]
        instances = [
            {
                "instance_id": row.instance_id,
                "host": row.host,
                "pid": row.pid,
                "version": row.version,
                "started_at": row.started_at,
                "heartbeat_age": None
                if now is None
                else round(max(0.0, now - row.heartbeat_at), 3),
                "this": row.instance_id == self.instance_id,
                "maps": sorted(owners.get(row.instance_id, [])),
            }
            for row in ([] if state is None else state.instances)
        ]
        return {
            "instance_id": self.instance_id,
            "lease_seconds": self.lease_seconds,
            "maps": self.owned(),
            "leaving": sorted(self.leaving),
            "unowned": unowned,
            "instances": instances,
            "acquired": self.acquired,
            "taken_over": self.taken_over,
            "lost": self.lost,
            "last_error": self.last_error,
        }
