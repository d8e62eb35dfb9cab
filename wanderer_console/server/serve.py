"""Serve an ASGI app with uvicorn inside the engine's own event loop.

The embedding program (headless runner or TUI) owns SIGINT/SIGTERM, so uvicorn's signal capture is
disabled, as in :mod:`wanderer_console.sim.server`. A bind failure is reported as
:class:`ServerStartError` instead of uvicorn's ``SystemExit``. Given a
:class:`~wanderer_console.server.guard.ConnectionGuard`, connections get read deadlines and a cap
(see that module), under uvicorn's ``httptools`` parser where it is installed (about a third of
the h11 protocol's CPU per request), else under h11.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from typing import Any, Final

import uvicorn
from starlette.types import ASGIApp

from wanderer_console.server.guard import HTTPTOOLS, MAX_HEADER_BYTES, ConnectionGuard, Parser

__all__ = [
    "GRACE_SECONDS",
    "MAX_HEADER_BYTES",
    "EmbeddedServer",
    "ServerStartError",
    "default_parser",
]

GRACE_SECONDS: Final = 2
"""How long a stopping server lets its requests in flight finish before it cancels them (the
client of a cancelled one gets a bare ``500``)."""


def default_parser() -> Parser:
    """``httptools`` when it is installed, else ``h11``."""
    return "httptools" if HTTPTOOLS else "h11"


class ServerStartError(RuntimeError):
    """uvicorn could not start (typically: the port is taken)."""


class _NotTheBindError(logging.Filter):
    """Leaves out of uvicorn's server log (``uvicorn.error``, which the console's JSON log
    takes in: telemetry/logging.LIBRARY_LOGGERS) the bind's ``OSError`` (``[Errno 98] error
    while attempting to bind on address ...``): :meth:`EmbeddedServer.start` raises it as
    :class:`ServerStartError`, and its caller logs it with what it means."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for the bind's ``OSError``."""
        return not isinstance(record.msg, OSError)


_uvicorn_log = logging.getLogger("uvicorn.error")
if not any(isinstance(kept, _NotTheBindError) for kept in _uvicorn_log.filters):
    _uvicorn_log.addFilter(_NotTheBindError())


class _NoSignalServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """No-op: the embedding program owns signals."""
        yield


class EmbeddedServer:
    """Runs ``app`` on ``host:port`` as a task of the running loop (port 0 = any free port).

    With ``sock`` (a bound socket, a Unix one for instance) it serves on that instead.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str,
        port: int,
        startup_timeout: float = 10.0,
        guard: ConnectionGuard | None = None,
        keep_alive_timeout: int = 5,
        sock: socket.socket | None = None,
        parser: Parser | None = None,
    ):
        # Unguarded (the control endpoint): h11, whose cap on an unfinished head
        # (``h11_max_incomplete_event_size``) is the only limit such a server has; uvicorn's
        # "auto" would pick httptools, which has none.
        limits: dict[str, Any] = {"http": "h11"}
        if guard is not None:
            # The deadlines and the cap live in the guarded protocol (httptools or h11). The
            # backlog is also asyncio's accept batch, so it bounds how many sockets open at
            # once before the guard sees them.
            # No WebSocket either: an upgraded connection would leave the guard's books.
            protocol = guard.protocol_class(parser or default_parser())
            limits = {"http": protocol, "backlog": guard.backlog, "ws": "none"}
        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            log_config=None,
            timeout_graceful_shutdown=GRACE_SECONDS,
            timeout_keep_alive=keep_alive_timeout,
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
            **limits,
        )
        self.host = host
        self._sock = sock
        self._server = _NoSignalServer(self._config)
        self._task: asyncio.Task[None] | None = None
        self._startup_timeout = startup_timeout
        self.port: int | None = None

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` once started."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Start serving; return once the socket is bound."""
        sockets = None if self._sock is None else [self._sock]
        self._task = asyncio.create_task(self._serve(sockets), name="http-server")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._startup_timeout
        while not self._server.started:
            if self._task.done():
                try:
                    self._task.result()
                except ServerStartError:
                    raise
                except BaseException as exc:  # uvicorn exits with SystemExit on bind errors
                    raise ServerStartError(
                        f"cannot serve on {self.host}:{self._config.port}: {exc!r}"
                    ) from None
                raise ServerStartError(f"cannot serve on {self.host}:{self._config.port}")
            if loop.time() > deadline:
                await self.stop()
                raise ServerStartError("HTTP server did not start in time")
            await asyncio.sleep(0.01)
        name = self._server.servers[0].sockets[0].getsockname()
        self.port = int(name[1]) if isinstance(name, tuple) else None

    async def _serve(self, sockets: list[socket.socket] | None) -> None:
        """uvicorn's ``serve``, its ``SystemExit`` (a port already taken) turned into an error.

        A task that raises ``SystemExit`` does not keep it for :meth:`start` to read: asyncio
        re-raises it out of the event loop, which ended the whole engine with a traceback and
        exit status 3 (the status of a data directory in use).
        """
        try:
            await self._server.serve(sockets=sockets)
        except SystemExit as exc:
            why = exc.__context__ or f"uvicorn exited {exc.code}"  # the bind's OSError
            raise ServerStartError(
                f"cannot serve on {self.host}:{self._config.port}: {why}"
            ) from None

    async def stop(self) -> None:
        """Ask uvicorn to exit and wait (force-cancel after 5 s)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), 5.0)
        except TimeoutError:
            self._server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        except (Exception, SystemExit):
            pass
