"""The wanderer-kills WebSocket (PROTOCOLS.md §3): join, heartbeat, rejoin, subscriptions.

A socket that subscribes to systems only sees characters *within* those systems, so following
characters everywhere takes a second socket: each :class:`KillstreamSource` follows one kind of
id (``systems`` or ``characters``). The server takes at most 10,000 systems and 50,000 characters
per socket, so :mod:`~wanderer_console.ingest.kill_sources` shards a larger subscription over
several sources, each following the ids its ``desired()`` names.

A source tells which ids the server has *confirmed* (:attr:`KillstreamSource.confirmed`: the
join's ids once the join is accepted, plus each subscribe's once its reply is ``ok``) and calls
``on_confirmed`` whenever that set grows or is lost: an id moving to another socket is released
by its old one only once the new one confirms it, so no kill falls between the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Literal

import orjson
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosedError,
    ConnectionClosedOK,
    PayloadTooBig,
    WebSocketException,
)

from wanderer_console.domain.eve import is_character_id
from wanderer_console.domain.killmail import Killmail
from wanderer_console.domain.tasks import cancel_and_wait
from wanderer_console.ingest.backoff import Backoff
from wanderer_console.ingest.health import ConnectionHealth, ConnectionState
from wanderer_console.ingest.items import Item, KillItem
from wanderer_console.ingest.phoenix import (
    ChannelClosed,
    ChannelErrored,
    ChannelState,
    FrameError,
    Inbound,
    PhoenixChannel,
    Push,
    Reply,
)
from wanderer_console.ingest.recent import RecentIds
from wanderer_console.telemetry import tracing
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["KillstreamSource", "PhoenixBackoff", "over_limit", "valid_ids"]

log = logging.getLogger(__name__)

TOPIC = "killmails:lobby"
_CHUNK = 5_000  # ids per subscribe frame: ~55 KiB, well under the 128 KiB frame limit
_JOIN_MAX = 10_000
"""Ids one join carries: at most 11 bytes each (a 10-digit character id and its comma), ~110 KiB,
under the server's 128 KiB frame limit; a systems socket (10,000 at most, 9 bytes each) always
joins with all of its systems in one frame, so no system waits for a subscribe after a rejoin."""
_MAX_QUEUE = 256
"""Frames the socket may hold unread (under 1 MiB of killmails) before it stops reading."""
_YIELD_EVERY = 32
"""Frames read back to back before the reader lets the rest of the console run (more made
bigger batches but let a burst wait longer: end-to-end latency at 1,000/s suffered)."""
Mode = Literal["systems", "characters"]
OverLimit = Callable[[int, int | None], bool]
"""Told a join of ``n`` ids was refused for being over the server's limit (``stated`` when the
refusal names it; after subscribes that crashed the channel, the size the server last took);
True when the subscription is re-planned to fit."""
_MAX_STATED = re.compile(r"\(max:\s*(\d+)\)")
JOIN_TIMEOUT = 10.0
"""Seconds a join may wait for its reply (phoenix.js waits as long) before the socket is closed
and opened again, with backoff: a join never answered would otherwise follow nothing, forever.
The wait goes on while the join's kills keep coming or the pipeline holds the reader (the reply
may be unread behind them)."""
DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024
"""A killmail is tens of KiB and a preload a few of them: 4 MiB is far above any real frame."""


class PhoenixBackoff(Backoff):
    """Fast first retries like phoenix.js (0.1, 0.2, 0.5, 1 s, then 1.5 s for ~10 s), then doubling.

    A server that restarts within about ten seconds is rejoined within two seconds of coming
    back (no wait is longer than 1.5 s until then); a long outage still backs off, up to ``cap``.
    Each delay is drawn from 80–100 % of its step so many clients do not reconnect in step.
    """

    STEPS: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5)

    def __init__(self, cap: float = 30.0, steps: tuple[float, ...] | None = None) -> None:
        super().__init__(base=1.0, cap=cap)
        self.steps = steps if steps is not None else self.STEPS

    def next_delay(self) -> float:
        """The next wait: the fixed steps first, then exponential growth up to the cap."""
        n = self.attempt
        self.attempt += 1
        if n < len(self.steps):
            bound = self.steps[n]
        else:
            last = self.steps[-1] if self.steps else 1.0
            bound = min(self.cap, last * float(2 ** min(n - len(self.steps) + 1, 32)))
        return bound * (0.8 + 0.2 * self._rng.random())


def over_limit(mode: Mode, response: object) -> tuple[bool, int | None]:
    """Whether a join refusal's ``response`` says the join had more ids of ``mode`` than the
    server takes per socket, and the limit when it names one.

    wanderer-kills answers ``{"reason": "[validation:too_many_systems] Too many systems: 12
    (max: 10)"}`` (``too_many_characters`` likewise, PROTOCOLS.md §3.3); the ``(max: N)`` part is
    read when present, never required.
    """
    reason = response.get("reason") if isinstance(response, dict) else None
    noun = "systems" if mode == "systems" else "characters"
    if not isinstance(reason, str) or f"[validation:too_many_{noun}]" not in reason:
        return False, None
    stated = _MAX_STATED.search(reason)
    return True, int(stated.group(1)) if stated else None


def valid_ids(mode: Mode, ids: Iterable[int]) -> set[int]:
    """The ids of ``ids`` the server accepts for ``mode`` (others would fail the whole join)."""
    if mode == "systems":
        return {i for i in ids if 1 <= i <= 50_000_000}
    return {i for i in ids if is_character_id(i)}


class KillstreamSource:
    """One Phoenix socket following either systems or characters (all, or one shard's)."""

    def __init__(
        self,
        mode: Mode,
        url: str,
        desired: Callable[[], set[int]],
        sink: Callable[[Item], Awaitable[None]],
        metrics: Metrics,
        *,
        client_identifier: str = "wanderer-console",
        heartbeat_seconds: float = 30.0,
        backoff: Backoff | None = None,
        recent: RecentIds | None = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        name: str | None = None,
        on_confirmed: Callable[[], None] | None = None,
        resubscribe: Backoff | None = None,
        on_over_limit: OverLimit | None = None,
        touched: Callable[[], set[int]] | None = None,
    ) -> None:
        self.mode = mode
        self._max_frame = max_frame_bytes
        self._oversize_in_a_row = 0
        self._oversize_note: str | None = None
        self._recent = recent if recent is not None else RecentIds()
        self.source = "killstream"
        self.health = ConnectionHealth(name or f"killstream:{mode}", "killstream")
        self._url = f"{url}/socket/websocket?vsn=2.0.0&client_identifier={client_identifier}"
        self._desired = desired
        self._touched = touched
        """The ids whose place in ``desired`` changed since the last call (``None``: not
        known, every id is compared at each refresh)."""
        self._recheck: set[int] = set()
        """Ids this socket stopped following on its own (a refused subscribe): compared again."""
        self._compare_all = True
        """The next refresh compares every id (after a join, which may not carry them all)."""
        self._sink = sink
        self._metrics = metrics
        self._heartbeat = heartbeat_seconds
        self._backoff = backoff or PhoenixBackoff(cap=30.0)
        self._channel = PhoenixChannel(TOPIC)
        self._ws: ClientConnection | None = None
        self._subscribed: set[int] = set()
        self._join_ids: set[int] = set()
        self.confirmed: set[int] = set()
        """Ids the server has accepted on the current join (empty while not joined)."""
        self._pending: dict[str, list[int]] = {}
        """Subscribe pushes awaiting their reply: ref -> ids."""
        self._on_confirmed = on_confirmed
        self._on_over_limit = on_over_limit
        self._growth_crashed = False
        """The channel crashed while a subscribe grew it, and the socket has not followed all
        it should since: a second such crash is taken as the server's limit (see
        :meth:`_crashed_growing`)."""
        self._stop = asyncio.Event()
        self._refresh = asyncio.Event()
        self._heartbeat_sent = 0.0
        self._joined_at: float | None = None
        """When the current join was accepted (``None`` while not joined)."""
        self._rejoin: asyncio.Task[None] | None = None
        """The rejoin waiting out its backoff after the channel ended."""
        self.join_timeout = JOIN_TIMEOUT
        """Seconds the current join may wait for its reply (tests shrink it)."""
        self._join_watch: asyncio.Task[None] | None = None
        """Gives the current join up when its reply does not come in time."""
        self._resubscribe = resubscribe or Backoff(1.0, 60.0)
        """The wait before a refused subscribe is sent again (doubling while refused)."""
        self._resubscribe_at: asyncio.TimerHandle | None = None
        """The one resend waiting (a refresh sends every refused chunk at once)."""
        self._duplicates = metrics.events_duplicate.labels(source=self.source)
        self._frames = 0
        self._updates = 0
        """Kill updates read (the join's deadline waits while they keep coming)."""
        self._sinking = False
        self.joins = 0
        """Channel joins the server accepted: each new one may follow a gap in the stream
        (the REST backfill watches this count)."""

    def refresh(self) -> None:
        """Tracking changed: bring the subscription in line at the next chance."""
        self._refresh.set()

    def stop(self) -> None:
        """Close the socket and end :meth:`run` (a shard no longer needed)."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop.is_set()

    async def run(self) -> None:
        """Connect, join, read; reconnect with backoff. Returns when stopped or cancelled."""
        while not self._stop.is_set():
            least = 0.0
            try:
                await self._session()
                self._oversize_in_a_row = 0
            except (OSError, WebSocketException, TimeoutError) as exc:
                least = self._lost(exc)
            self._channel.reset()
            self._ws = None
            self._joined_at = None
            self._unconfirm()
            if self._stop.is_set():
                break
            self.health.reconnects += 1
            self._metrics.reconnects.labels(source=self.health.name).inc()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), max(least, self._backoff.next_delay()))
        self.health.set_state(ConnectionState.STOPPED)

    def _unconfirm(self) -> None:
        """The join is gone: nothing is confirmed any more (the manager is told)."""
        self._pending.clear()
        if self.confirmed:
            self.confirmed = set()
            if self._on_confirmed is not None:
                self._on_confirmed()

    def _confirm(self, ids: Iterable[int]) -> None:
        self.confirmed.update(ids)
        if self._growth_crashed and self.confirmed >= valid_ids(self.mode, self._desired()):
            self._growth_crashed = False
        if self._on_confirmed is not None:
            self._on_confirmed()

    def _lost(self, exc: Exception) -> float:
        """Record why the socket went; return the least wait before the next connect."""
        cause = exc.__cause__
        if not (isinstance(exc, ConnectionClosedError) and isinstance(cause, PayloadTooBig)):
            self._oversize_in_a_row = 0
            self.health.set_state(ConnectionState.RECONNECTING, f"socket lost: {exc}")
            log.warning("killstream lost", extra={"ctx": {"mode": self.mode, "error": str(exc)}})
            return 0.0
        # websockets refuses a frame over ``max_size`` by its header (or while inflating it) and
        # closes with 1009: one frame cannot be skipped on a live socket. The rejoin's preload
        # brings the recent kills back; the frame itself is gone, so it is said loudly.
        self._oversize_in_a_row += 1
        size = getattr(cause, "size", None)  # None when only inflating showed it too big
        what = f"a frame of {size} bytes" if size is not None else "a frame"
        self._oversize_note = (
            f"{what} over the {self._max_frame}-byte limit (max_frame_bytes) was dropped"
            " and the socket reset"
        )
        self._metrics.stream_oversize.labels(source=self.health.name, reason="frame").inc()
        self.health.set_state(ConnectionState.RECONNECTING, self._oversize_note)
        log.warning(
            "killstream frame over the size limit; reconnecting",
            extra={"ctx": {"mode": self.mode, "size": size, "limit": self._max_frame}},
        )
        # A frame the server sends on every join (a preload) would bring us back after the
        # backoff's short first steps: from the second in a row, wait at least 1, 2, 4 … s.
        if self._oversize_in_a_row < 2:
            return 0.0
        return min(self._backoff.cap, 2.0 ** (self._oversize_in_a_row - 2))

    async def _session(self) -> None:
        self.health.set_state(
            ConnectionState.CONNECTING
            if self.health.reconnects == 0
            else ConnectionState.RECONNECTING
        )
        async with connect(
            self._url,
            open_timeout=10,
            close_timeout=2,
            # Over this, websockets closes with 1009 without reading the frame into memory.
            max_size=self._max_frame,
            # Room for a burst (websockets' default is 16 frames): reading goes on while the
            # pipeline writes a batch, instead of pausing the socket.
            max_queue=_MAX_QUEUE,
        ) as ws:
            self._ws = ws
            await self._join(ws)
            tasks = [
                asyncio.create_task(self._heartbeats(ws)),
                asyncio.create_task(self._subscriptions(ws)),
                asyncio.create_task(self._closer(ws)),
            ]
            try:
                while True:
                    # The frame's bytes as received: the JSON parser reads bytes, so decoding
                    # them to a str first (what ``async for`` does) would only copy them.
                    message = self._decode(await ws.recv(decode=False))
                    # Kills straight to their handler: one coroutine a frame, not two.
                    if isinstance(message, Push):
                        if message.event == "killmail_update":
                            await self._on_kills(message.payload)
                    elif message is not None:
                        await self._on_control(ws, message)
                    self._frames += 1
                    if self._frames % _YIELD_EVERY == 0:
                        # Buffered frames are read without suspending: let the console breathe.
                        await asyncio.sleep(0)
            except ConnectionClosedOK:
                return  # a clean close: reconnect as after any other loss
            finally:
                for extra in (self._rejoin, self._join_watch):
                    if extra is not None:
                        tasks.append(extra)
                self._rejoin = self._join_watch = None
                await cancel_and_wait(tasks)

    async def _closer(self, ws: ClientConnection) -> None:
        await self._stop.wait()
        await ws.close(code=1000, reason="subscription moved to other sockets")

    async def _join(self, ws: ClientConnection) -> None:
        ids = valid_ids(self.mode, self._desired())
        key = "systems" if self.mode == "systems" else "character_ids"
        # The join carries the state, a socket following characters no systems. At most
        # _JOIN_MAX ids: the server closes the socket on a frame over 128 KiB, which 50,000
        # character ids (a socket's limit) are four times over. The rest is subscribed in
        # chunks once the join is accepted (its reply starts the subscription loop).
        if len(ids) > _JOIN_MAX:
            ids = set(sorted(ids)[:_JOIN_MAX])
        self._join_ids, self._subscribed = ids, set(ids)
        self._compare_all = True  # the rest of a join cut at _JOIN_MAX, and what came meanwhile
        self._unconfirm()
        await ws.send(self._channel.join({key: sorted(ids)}))
        if self._join_watch is not None:
            self._join_watch.cancel()
        self._join_watch = asyncio.create_task(self._join_deadline(ws, self._channel.join_ref))

    async def _join_deadline(self, ws: ClientConnection, join_ref: str | None) -> None:
        """Give the join ``join_ref`` up when no reply came in time: close the socket (its
        channel may be stuck on the server) and open it again after the backoff's wait."""
        channel = self._channel
        while True:
            updates = self._updates
            await asyncio.sleep(self.join_timeout)
            if channel.join_ref != join_ref or channel.state is not ChannelState.JOINING:
                return
            if not self._sinking and self._updates == updates:
                break
            # Kills of this join keep coming (a preload sent before the reply), or the pipeline
            # holds the reader: the reply may wait unread behind them. No silent server.
        log.warning(
            "killstream join not answered; reconnecting",
            extra={
                "ctx": {
                    "name": self.health.name,
                    "mode": self.mode,
                    "waited_seconds": self.join_timeout,
                }
            },
        )
        self.health.set_state(
            ConnectionState.RECONNECTING,
            f"no reply to the join within {self.join_timeout:g} s; reconnecting",
        )
        await ws.close(code=1000, reason="join not answered")

    async def _heartbeats(self, ws: ClientConnection) -> None:
        while True:
            _ref, frame = self._channel.heartbeat()
            self._heartbeat_sent = time.perf_counter()
            await ws.send(frame)
            await asyncio.sleep(self._heartbeat)
            if self._channel.heartbeat_pending and self._sinking:
                # We stopped reading ourselves (the pipeline is full): not a dead server.
                continue
            if self._channel.heartbeat_pending:
                self.health.set_state(ConnectionState.DEGRADED, "heartbeat reply missed")
                log.warning("killstream heartbeat missed", extra={"ctx": {"mode": self.mode}})
                await ws.close(code=1001, reason="heartbeat timeout")
                return

    async def _subscriptions(self, ws: ClientConnection) -> None:
        while True:
            await self._refresh.wait()
            self._refresh.clear()
            if self._channel.state is not ChannelState.JOINED:
                continue
            added, removed = self._changes()
            if not added and not removed:
                continue
            noun = "systems" if self.mode == "systems" else "characters"
            key = "systems" if self.mode == "systems" else "character_ids"
            # Removed ones first: a socket kept under its limits never goes over them between
            # two pushes (an id moving here from another socket is subscribed here before it is
            # unsubscribed there; that order is the manager's).
            # In place: a new set of every id (50,000 at a full socket) for a change of a few
            # held the event loop a millisecond or more at each change of tracking.
            self._subscribed.difference_update(removed)
            self._subscribed.update(added)
            self.confirmed.difference_update(removed)
            for event, ids in ((f"unsubscribe_{noun}", removed), (f"subscribe_{noun}", added)):
                for start in range(0, len(ids), _CHUNK):
                    if self._channel.state is not ChannelState.JOINED:
                        # The channel ended while a write waited (a slow link): the rest is
                        # not sent; the rejoin starts the subscription over from the desired
                        # ids, and its reply brings this loop back for what the join left out.
                        break
                    chunk = ids[start : start + _CHUNK]
                    ref, frame = self._channel.push(event, {key: chunk})
                    if event.startswith("subscribe"):
                        self._pending[ref] = chunk
                    await ws.send(frame)

    def _changes(self) -> tuple[list[int], list[int]]:
        """Ids to subscribe and to unsubscribe, sorted, to follow what is desired now.

        Only the ids noted as touched since the last refresh are compared (a change of a few
        ids costs a few ids); every id after a join, or when the owner notes nothing. Set
        differences first, validity and order only for what changed."""
        wanted = self._desired()
        touched = None if self._touched is None else self._touched()
        recheck, self._recheck = self._recheck, set()
        subscribed = self._subscribed
        if touched is None or self._compare_all:
            self._compare_all = False
            added, removed = wanted - subscribed, subscribed - wanted
        else:
            touched |= recheck
            added = {i for i in touched if i in wanted and i not in subscribed}
            removed = {i for i in touched if i not in wanted and i in subscribed}
        return sorted(valid_ids(self.mode, added)), sorted(removed)

    def _decode(self, frame: str | bytes) -> Inbound | None:
        """The frame's message; ``None`` for another join's or a bad frame (counted, logged)."""
        try:
            return self._channel.receive(frame)
        except FrameError as exc:
            self._metrics.events_invalid.labels(source=self.source, reason="frame").inc()
            log.warning("bad killstream frame skipped", extra={"ctx": {"error": str(exc)}})
            return None

    async def _on_control(self, ws: ClientConnection, message: Inbound) -> None:
        """A reply (join, heartbeat) or the channel ending; pushes go to :meth:`_on_kills`."""
        if isinstance(message, Reply):
            if message.is_heartbeat:
                self.health.heartbeat_rtt_ms = (time.perf_counter() - self._heartbeat_sent) * 1000
                joined_at = self._joined_at
                if joined_at is not None and self._heartbeat_sent > joined_at:
                    # The join has lasted a heartbeat: the next failure starts the waits over.
                    self._backoff.reset()
            elif message.ref is not None and message.ref in self._pending:
                ids = self._pending.pop(message.ref)
                if message.status == "ok":
                    self._resubscribe.reset()
                    # Not those unsubscribed again while this reply was on its way.
                    self._confirm([i for i in ids if i in self._subscribed])
                else:
                    # Refused: ask again after a wait (a refresh sends what is not subscribed),
                    # not only at the next change of tracking, which may be hours away. One
                    # resend covers every refused chunk: one timer per refusal resent them all
                    # once per chunk, doubling the asks each round.
                    self._subscribed.difference_update(ids)
                    self._recheck.update(ids)
                    if self._resubscribe_at is not None:
                        return
                    delay = self._resubscribe.next_delay()
                    log.warning(
                        "killstream subscribe refused; asking again",
                        extra={
                            "ctx": {
                                "mode": self.mode,
                                "response": message.response,
                                "ids": len(ids),
                                "in_seconds": round(delay, 1),
                            }
                        },
                    )
                    loop = asyncio.get_running_loop()
                    self._resubscribe_at = loop.call_later(delay, self._ask_again)
            elif message.is_join:
                if message.status == "ok":
                    # Not the backoff's reset yet: a server that drops every join at once
                    # must not be tried again at the first step forever (see heartbeats).
                    self._joined_at = time.perf_counter()
                    self.joins += 1
                    self.health.set_state(ConnectionState.CONNECTED)
                    self._confirm(self._join_ids)
                    if self._oversize_note is not None:
                        # Connected clears the last error; a dropped frame should stay seen.
                        self.health.last_error, self._oversize_note = self._oversize_note, None
                    log.info(
                        "killstream joined",
                        extra={"ctx": {"mode": self.mode, "ids": len(self._subscribed)}},
                    )
                    self.refresh()
                else:
                    await self._refused(ws, message.response)
        elif isinstance(message, ChannelErrored | ChannelClosed):
            # The channel that had the ids is gone; rejoin after the backoff's wait, as after a
            # lost socket (a channel that crashes after every join is not rejoined in a loop).
            self._joined_at = None
            growing = isinstance(message, ChannelErrored) and bool(self._pending)
            took, asked = len(self.confirmed), len(self._subscribed)
            self._unconfirm()
            if growing:
                self._crashed_growing(took, asked)
            delay = self._backoff.next_delay()
            log.warning(
                "killstream channel ended; rejoining",
                extra={
                    "ctx": {
                        "mode": self.mode,
                        "why": type(message).__name__,
                        "in_seconds": round(delay, 3),
                    }
                },
            )
            self.health.reconnects += 1
            # Not connected meanwhile: the REST poller and the watermark treat it as a gap.
            self.health.set_state(
                ConnectionState.RECONNECTING, f"channel ended ({type(message).__name__}); rejoining"
            )
            if self._rejoin is not None:
                self._rejoin.cancel()
            self._rejoin = asyncio.create_task(self._rejoin_after(ws, delay))

    async def _refused(self, ws: ClientConnection, response: object) -> None:
        """The join was refused: reconnect with backoff. Over the server's per-socket limit,
        the manager re-plans the sockets first (then the next join fits); any other refusal
        (or one the manager cannot fit) is a warning and the state ``failed``."""
        over, stated = over_limit(self.mode, response)
        refused = len(self._join_ids)
        if over and self._on_over_limit is not None and self._on_over_limit(refused, stated):
            self.health.set_state(
                ConnectionState.RECONNECTING,
                f"join refused over the server's limit ({response}); resharded, reconnecting",
            )
        else:
            log.warning(
                "killstream join refused; reconnecting",
                extra={
                    "ctx": {
                        "name": self.health.name,
                        "mode": self.mode,
                        "ids": refused,
                        "response": response,
                    }
                },
            )
            self.health.set_state(ConnectionState.FAILED, f"join refused: {response}")
        await ws.close(code=1000, reason="join refused")

    def _crashed_growing(self, took: int, asked: int) -> None:
        """The channel crashed while subscribes took it from ``took`` ids towards ``asked``.

        A server over its per-socket limit crashes the channel on a subscribe (no reason is
        given, PROTOCOLS.md §3.4); a join carries at most 10,000 ids, so a characters socket
        between the server's limit and ours is accepted, then crashes on every rejoin's
        subscribes. One crash may be anything (a deploy); a second before the socket ever
        followed all its ids is taken as a limit of ``took``, the size the server last took.
        """
        if not self._growth_crashed:
            self._growth_crashed = True
            return
        if self._on_over_limit is not None and took < asked and self._on_over_limit(asked, took):
            self._growth_crashed = False

    def _ask_again(self) -> None:
        """The wait after a refused subscribe is over: send what is still not subscribed."""
        self._resubscribe_at = None
        self.refresh()

    async def _rejoin_after(self, ws: ClientConnection, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._join(ws)

    async def _on_kills(self, payload: dict[str, object]) -> None:
        self._updates += 1
        killmails = payload.get("killmails")
        if not isinstance(killmails, list):
            self._metrics.events_invalid.labels(source=self.source, reason="payload").inc()
            log.warning(
                "bad killstream frame skipped",
                extra={
                    "ctx": {
                        "error": "killmail_update without a list of killmails"
                        f" (killmails is {type(killmails).__name__})"
                    }
                },
            )
            return
        self._sinking = True  # handing kills to the pipeline: a full queue may hold us here
        try:
            for raw in killmails:
                kill_id = raw.get("killmail_id") if isinstance(raw, dict) else None
                if isinstance(kill_id, int) and kill_id in self._recent:
                    # A repeat (real-time updates come twice; preloads repeat on every rejoin).
                    self._duplicates.inc()
                    continue
                try:
                    if not isinstance(raw, dict):
                        raise ValueError("killmail is not an object")
                    km = Killmail.from_wire(raw)
                except (ValidationError, ValueError) as exc:
                    self._metrics.events_invalid.labels(source=self.source, reason="killmail").inc()
                    log.warning(
                        "malformed killmail skipped", extra={"ctx": {"error": str(exc)[:300]}}
                    )
                    continue
                self._recent.seen(km.killmail_id)
                self.health.saw_event()
                trace = None
                if tracing.enabled():
                    attributes: dict[str, str | int] = {
                        "killmail.id": km.killmail_id,
                        "source": self.source,
                    }
                    trace = tracing.source_span("killstream.kill", attributes)
                raw_text = orjson.dumps(raw).decode()
                await self._sink(KillItem(km, raw_text, self.source, trace_parent=trace))
        finally:
            self._sinking = False
