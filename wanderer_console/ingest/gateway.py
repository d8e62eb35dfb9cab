"""The Discord gateway connection: the bot's websocket for slash commands and voice states.

The protocol is :mod:`~wanderer_console.ingest.gateway_protocol` (sans-IO); this module moves
its frames over a ``websockets`` connection and keeps the time: the heartbeat (first after a
random part of the interval, then every interval, a missing ack closes the socket and the
session is resumed on a new one), reconnects with backoff, resumes at ``resume_gateway_url``
with the session id and sequence so no dispatch is lost (after a few resumes in a row that fail,
it locates the gateway and identifies afresh), identifies afresh after an invalid session, waits
for Discord's daily session starts when none is left, and stops for good, saying why, on a close
code that a retry cannot fix (4004: the token is wrong; 4014: intents not allowed). A 401 on
``GET /gateway/bot`` (the bot token rejected) stops it too, until
:meth:`DiscordGateway.set_token` brings another token (a reload): retrying the same token fails
the same way, and Discord bans an address that keeps sending it 401s.

Why not discord.py (or another bot library): it brings its own aiohttp client, event loop
policy and cache of every guild, member and message, and a command framework whose replies do
not go through the console's Discord client, rate limits and breaker. The console needs a
small part of the gateway (hello, identify, heartbeat, resume, a handful of dispatches), and
keeping it sans-IO like the killstream's Phoenix client lets the tests drive every path.

Dispatches are handed to ``on_dispatch`` (voice states are tracked here, in :attr:`voice`);
a handler runs as its own task, so a slow interaction never stalls the heartbeat or the reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from prometheus_client import Counter
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from wanderer_console.domain.tasks import cancel_and_wait
from wanderer_console.ingest.backoff import Backoff
from wanderer_console.ingest.gateway_protocol import (
    FATAL_CLOSE_CODES,
    CloseVerdict,
    Dispatch,
    GatewayError,
    GatewayLocation,
    GatewaySession,
    HeartbeatAck,
    HeartbeatNow,
    Hello,
    InvalidSession,
    ReconnectAsked,
    close_verdict,
    presence,
)
from wanderer_console.ingest.health import ConnectionHealth, ConnectionState
from wanderer_console.ingest.voice import VoiceStates
from wanderer_console.telemetry.metrics import Metrics

__all__ = [
    "GATEWAY_SOURCE",
    "GIVE_UP_RESUME_AFTER",
    "UNKNOWN_RESET_WAIT",
    "DiscordGateway",
    "GatewayLocateError",
    "GatewayMetrics",
    "GatewayTokenRejected",
]

log = logging.getLogger(__name__)

GATEWAY_SOURCE: Final = "discord:gateway"
"""The connection's name in the snapshot, the connection panel and the metrics."""
_RESUME_CLOSE: Final = 4900
"""Our own close code for a connection we leave to resume on another (not 1000/1001, which
would end the session)."""
_QUERY: Final = "?v=10&encoding=json"
UNKNOWN_RESET_WAIT: Final = 3_600.0
"""Seconds to wait, then ask ``GET /gateway/bot`` again, when it says no session start is left
but not when the window starts again (``reset_after`` missing or unreadable): never identify
then (Discord resets the token of a bot that identifies with none left). An hour: few enough
questions over Discord's day-long window, and soon enough once starts are back."""

GIVE_UP_RESUME_AFTER: Final = 3
"""Connections in a row that fail to resume (no ``RESUMED``) before the session is dropped and
the gateway located and identified afresh: a dead ``resume_gateway_url`` would otherwise keep
the bot offline for good."""


class GatewayLocateError(Exception):
    """The gateway's URL could not be found (``GET /gateway/bot`` failed)."""


class GatewayTokenRejected(GatewayLocateError):
    """``GET /gateway/bot`` answered 401: the bot token is wrong; only another token helps."""


class GatewayMetrics:
    """What the gateway counts (beside ``wc_reconnects{source="discord:gateway"}``)."""

    def __init__(self, metrics: Metrics) -> None:
        registry = metrics.registry
        self.dispatches = Counter(
            "wc_gateway_dispatches",
            "Discord gateway dispatches received",
            ["event"],
            registry=registry,
        )
        self.sessions = Counter(
            "wc_gateway_sessions",
            "Discord gateway sessions started (identify) or resumed",
            ["how"],
            registry=registry,
        )
        self.acks_missed = Counter(
            "wc_gateway_heartbeat_acks_missed",
            "Heartbeats Discord did not acknowledge in time (the socket is then replaced)",
            registry=registry,
        )
        self.closes = Counter(
            "wc_gateway_closes",
            "Gateway connections closed, by close code ('none': the connection died)",
            ["code"],
            registry=registry,
        )


class DiscordGateway:
    """One gateway session (unsharded): connect, identify or resume, heartbeat, dispatch."""

    def __init__(
        self,
        token: str,
        locate: Callable[[], Awaitable[str | GatewayLocation]],
        metrics: Metrics,
        *,
        on_dispatch: Callable[[Dispatch], Awaitable[None]] | None = None,
        presence_text: str = "Wanderer maps",
        backoff: Backoff | None = None,
        open_timeout: float = 10.0,
        gateway_metrics: GatewayMetrics | None = None,
    ) -> None:
        self.health = ConnectionHealth(GATEWAY_SOURCE, "gateway")
        self.session = GatewaySession(token, presence=presence(presence_text))
        self.voice = VoiceStates()
        """Who is in voice, per guild (from ``GUILD_CREATE`` and ``VOICE_STATE_UPDATE``)."""
        self.fatal: str | None = None
        """Why the gateway stopped for good (a close code no retry can fix), else ``None``."""
        self.ready = asyncio.Event()
        """Set while a session is live (``READY`` or ``RESUMED`` seen on this connection)."""
        self.identifies = 0
        self.resumes = 0
        self._locate = locate
        self._metrics = metrics
        self.gauges = gateway_metrics or GatewayMetrics(metrics)
        self._on_dispatch = on_dispatch
        self._backoff = backoff or Backoff(base=1.0, cap=60.0)
        self._open_timeout = open_timeout
        self._ws: ClientConnection | None = None
        self._stop = asyncio.Event()
        self._new_token = asyncio.Event()
        self._token = token
        self._handlers: set[asyncio.Task[None]] = set()
        self._heartbeat_sent = 0.0
        self._closing_for_resume = False
        self._resumes_failed = 0
        """Connections in a row that tried to resume and never saw ``RESUMED``."""
        self._live = False
        """``READY`` or ``RESUMED`` seen on the current connection."""
        self.unknown_reset_wait = UNKNOWN_RESET_WAIT
        """The wait when no session start is left and Discord did not say for how long."""

    # -- control -----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Close the connection and end :meth:`run`."""
        self._stop.set()

    def set_token(self, token: str) -> None:
        """Identify with ``token`` from the next connection on; a gateway stopped because
        Discord rejected the old one starts again. The same token changes nothing."""
        if token == self._token:
            return
        self._token = token
        self.session.change_token(token)
        self._new_token.set()

    async def set_presence(self, text: str) -> bool:
        """Show ``text`` as the bot's activity ("Watching …"); True when sent now (it is also
        sent with the next identify)."""
        ws = self._ws
        if ws is None or not self.ready.is_set():
            self.session.presence = presence(text)
            return False
        try:
            await ws.send(self.session.presence_update(text))
        except (ConnectionClosed, OSError):
            return False
        return True

    async def send_raw(self, frame: str) -> None:
        """Send a frame on the live connection (the tests' hooks)."""
        if self._ws is None:
            raise RuntimeError("the gateway is not connected")
        await self._ws.send(frame)

    # -- running -----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect and keep the session; returns when stopped, cancelled or refused for good."""
        try:
            while not self._stop.is_set():
                code: int | None = None
                resuming = self.session.can_resume
                self._live = False
                try:
                    url = self.session.resume_url if self.session.can_resume else None
                    url = url or await self._locate_url()
                    if self._stop.is_set():
                        break  # stopped while waiting for a session start
                    code = await self._connection(url)
                except (OSError, WebSocketException, TimeoutError) as exc:
                    self.health.set_state(ConnectionState.RECONNECTING, f"gateway lost: {exc}")
                    log.warning("discord gateway lost", extra={"ctx": {"error": str(exc)}})
                except GatewayTokenRejected as exc:
                    await self._await_new_token(str(exc))
                    continue
                except GatewayLocateError as exc:
                    self.health.set_state(ConnectionState.RECONNECTING, str(exc))
                    log.warning("discord gateway not located", extra={"ctx": {"error": str(exc)}})
                finally:
                    self._ws = None
                    self.ready.clear()
                    self.session.connection_lost()
                if self._stop.is_set():
                    break
                verdict = close_verdict(code)
                if verdict is CloseVerdict.FATAL:
                    self._give_up(code)
                    return
                if verdict is CloseVerdict.IDENTIFY:
                    self.session.forget()
                self._count_resume(resuming and not self._live)
                self.health.reconnects += 1
                self._metrics.reconnects.labels(source=GATEWAY_SOURCE).inc()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self._backoff.next_delay())
            self.health.set_state(ConnectionState.STOPPED)
        finally:
            await cancel_and_wait(list(self._handlers))

    def _count_resume(self, failed: bool) -> None:
        """Count a connection that could not resume; after :data:`GIVE_UP_RESUME_AFTER` in a
        row, drop the session so the next connection locates the gateway and identifies."""
        self._resumes_failed = self._resumes_failed + 1 if failed else 0
        if self._resumes_failed >= GIVE_UP_RESUME_AFTER and self.session.can_resume:
            log.warning(
                "discord gateway could not resume: identifying afresh",
                extra={"ctx": {"attempts": self._resumes_failed}},
            )
            self.session.forget()
            self._resumes_failed = 0

    async def _locate_url(self) -> str:
        """Ask where the gateway is; with no session start left (an identify now would get the
        token reset by Discord), first wait until the window starts again (``reset_after``, or
        :attr:`unknown_reset_wait` when Discord did not say), saying so, and ask again."""
        while True:
            where = await self._locate()
            if isinstance(where, str):
                return where
            if where.remaining != 0 or self.session.can_resume or self._stop.is_set():
                return where.url
            if where.reset_after > 0:
                wait = where.reset_after
                why = (
                    f"Discord's daily session starts are used up: identifying again in {wait:.0f} s"
                )
            else:
                wait = self.unknown_reset_wait
                why = (
                    "Discord's daily session starts are used up and it did not say when they"
                    f" start again: asking again in {wait:.0f} s (an identify now would get the"
                    " bot token reset)"
                )
            self.health.set_state(ConnectionState.RECONNECTING, why)
            log.warning(
                "discord gateway waits for a session start",
                extra={
                    "ctx": {
                        "reset_after_s": round(where.reset_after, 3) or None,
                        "wait_s": round(wait, 3),
                        "why": why,
                        "action": "nothing: the bot identifies once Discord has a session start"
                        " for it; if this repeats, look for what makes it reconnect or another"
                        " process using the same bot token",
                    }
                },
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), wait)
            if self._stop.is_set():
                return where.url  # run() sees the stop and connects nowhere

    async def _await_new_token(self, why: str) -> None:
        """The token was rejected: say so once, loudly, and ask nothing more of Discord until
        :meth:`set_token` brings another one (or the gateway is stopped)."""
        self._new_token.clear()
        self.fatal = why
        self.voice.clear()  # no moves are seen any more: ping nobody who has since left
        self.health.set_state(ConnectionState.FAILED, why)
        log.error(
            "discord gateway stopped: %s",
            why,
            extra={"ctx": {"action": "set discord.bot_token and reload the configuration"}},
        )
        stop = asyncio.create_task(self._stop.wait())
        token = asyncio.create_task(self._new_token.wait())
        try:
            await asyncio.wait((stop, token), return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait([stop, token])
        if self._new_token.is_set():
            self.fatal = None
            self._backoff.reset()
            self.health.set_state(ConnectionState.CONNECTING, "new bot token: connecting")
            log.info("discord gateway: new bot token, connecting")

    def _give_up(self, code: int | None) -> None:
        """A close code no retry can fix: say so once, loudly, and stay stopped."""
        why = FATAL_CLOSE_CODES.get(code or 0, f"close code {code}")
        self.fatal = f"Discord closed the gateway with {code}: {why}; not reconnecting"
        self.voice.clear()  # no moves are seen any more: ping nobody who has since left
        self.health.set_state(ConnectionState.FAILED, self.fatal)
        log.error(
            "discord gateway refused for good: %s",
            why,
            extra={"ctx": {"code": code, "action": "fix the setting and restart the engine"}},
        )

    async def _connection(self, base: str) -> int | None:
        """One websocket: returns the close code the server sent (``None``: none)."""
        self.health.set_state(
            ConnectionState.CONNECTING
            if self.health.reconnects == 0
            else ConnectionState.RECONNECTING
        )
        url = base.rstrip("/") + "/" + _QUERY
        self.health.url = base
        self._closing_for_resume = False
        tasks: list[asyncio.Task[None]] = []
        try:
            async with connect(url, open_timeout=self._open_timeout, close_timeout=2) as ws:
                self._ws = ws
                tasks.append(asyncio.create_task(self._closer(ws)))
                try:
                    while True:
                        text = await ws.recv()
                        await self._handle(ws, text, tasks)
                except ConnectionClosed as exc:
                    code = exc.rcvd.code if exc.rcvd is not None else None
                    self.gauges.closes.labels(code=str(code) if code else "none").inc()
                    if self._closing_for_resume:
                        return None  # we closed it to resume elsewhere
                    if code is not None and code not in (1000, 1001):
                        detail = exc.rcvd.reason if exc.rcvd is not None else ""
                        note = f"gateway closed {code}" + (f": {detail}" if detail else "")
                        self.health.set_state(ConnectionState.RECONNECTING, note)
                        log.warning("discord gateway closed", extra={"ctx": {"code": code}})
                    return code
        finally:
            await cancel_and_wait(tasks)

    async def _handle(
        self, ws: ClientConnection, text: str | bytes, tasks: list[asyncio.Task[None]]
    ) -> None:
        try:
            event = self.session.receive(text)
        except GatewayError as exc:
            self.health.record_error()
            self._metrics.events_invalid.labels(source=GATEWAY_SOURCE, reason="frame").inc()
            log.warning("bad gateway payload skipped", extra={"ctx": {"error": str(exc)}})
            return
        if isinstance(event, Dispatch):
            self._dispatch(event)
        elif isinstance(event, HeartbeatAck):
            self.health.heartbeat_rtt_ms = (time.perf_counter() - self._heartbeat_sent) * 1000
        elif isinstance(event, Hello):
            how = "resume" if event.resuming else "identify"
            self.gauges.sessions.labels(how=how).inc()
            if event.resuming:
                self.resumes += 1
            else:
                self.identifies += 1
                self.voice.clear()
            await ws.send(event.identify)
            tasks.append(
                asyncio.create_task(self._heartbeats(ws, event.interval, event.first_delay))
            )
        elif isinstance(event, HeartbeatNow):
            await self._beat(ws)
        elif isinstance(event, ReconnectAsked):
            log.info("discord gateway asked for a reconnect")
            await self._close_to_resume(ws, "reconnect asked")
        elif isinstance(event, InvalidSession):
            self.ready.clear()
            if event.resumable:
                await ws.send(self.session.resume())
                self.resumes += 1
                self.gauges.sessions.labels(how="resume").inc()
            else:
                # Identified afresh on a new socket, not this one: the way there asks Discord
                # whether a session start is left and waits when none is (an identify without
                # one gets the bot's token reset).
                log.info("discord gateway session invalid: identifying afresh")
                self.health.set_state(ConnectionState.RECONNECTING, "session invalidated")
                await asyncio.sleep(self.session.identify_wait())
                await self._close_to_resume(ws, "session invalidated")

    def _dispatch(self, event: Dispatch) -> None:
        self.gauges.dispatches.labels(event=event.name).inc()
        self.health.saw_event()
        if event.name in ("READY", "RESUMED"):
            self._live = True
            self._backoff.reset()
            self.ready.set()
            self.health.set_state(ConnectionState.CONNECTED)
            log.info(
                "discord gateway %s",
                "session resumed" if event.name == "RESUMED" else "ready",
                extra={"ctx": {"user": self.session.user.get("username")}},
            )
        self.voice.apply(event.name, event.data)
        if self._on_dispatch is not None:
            task = asyncio.create_task(self._run_handler(event))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)

    async def _run_handler(self, event: Dispatch) -> None:
        try:
            assert self._on_dispatch is not None
            await self._on_dispatch(event)
        except Exception:
            self._metrics.errors.labels(component="gateway").inc()
            log.exception("gateway dispatch handler failed", extra={"ctx": {"event": event.name}})

    async def _beat(self, ws: ClientConnection) -> None:
        self._heartbeat_sent = time.perf_counter()
        await ws.send(self.session.heartbeat())

    async def _heartbeats(self, ws: ClientConnection, interval: float, first: float) -> None:
        await asyncio.sleep(first)
        while True:
            if not self.session.heartbeat_acked:
                self.gauges.acks_missed.inc()
                self.health.set_state(ConnectionState.DEGRADED, "heartbeat ack missed")
                log.warning("discord gateway heartbeat not acknowledged; resuming")
                await self._close_to_resume(ws, "heartbeat ack missed")
                return
            await self._beat(ws)
            await asyncio.sleep(interval)

    async def _close_to_resume(self, ws: ClientConnection, reason: str) -> None:
        self._closing_for_resume = True
        await ws.close(code=_RESUME_CLOSE, reason=reason)

    async def _closer(self, ws: ClientConnection) -> None:
        await self._stop.wait()
        await ws.close(code=1000, reason="engine stopping")
