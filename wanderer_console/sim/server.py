"""Serve an ASGI app with uvicorn inside the *current* asyncio loop, on 127.0.0.1.

uvicorn normally installs signal handlers and owns the loop; :class:`AppServer` disables the
signal handling so several fake servers can run side by side in one test or one console process,
binds port 0 (a free port) and stops cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Generator

import uvicorn
from starlette.types import ASGIApp

__all__ = ["AppServer"]


class _NoSignalServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """No-op: the embedding program owns signals."""
        yield


class AppServer:
    """Runs ``app`` on ``host:port`` (port 0 = any free port) as a task of the running loop.

    ``on_stop`` callbacks run before uvicorn is told to exit; use them to end long-lived streaming
    responses (uvicorn waits for in-flight responses during shutdown).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_stop: Callable[[], None] | None = None,
        graceful_timeout: float = 2.0,
        startup_timeout: float = 10.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=max(1, round(graceful_timeout)),
        )
        self._host = host
        self._server = _NoSignalServer(self._config)
        self._task: asyncio.Task[None] | None = None
        self._on_stop = on_stop
        self._port: int | None = None
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout

    @property
    def port(self) -> int:
        """The bound TCP port (only after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("server not started")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self._host}:{self.port}"

    @property
    def running(self) -> bool:
        """True between a successful :meth:`start` and :meth:`stop`."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start serving and wait (at most ``startup_timeout`` s) until the socket is bound."""
        if self._task is not None:
            raise RuntimeError("server already started")
        self._task = asyncio.create_task(self._server.serve(), name="sim-uvicorn")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._startup_timeout
        while not self._server.started:
            if self._task.done():
                exc = self._task.exception() if not self._task.cancelled() else None
                raise RuntimeError(f"uvicorn failed to start: {exc!r}")
            if loop.time() > deadline:
                await self.stop()
                raise TimeoutError("uvicorn did not start in time")
            await asyncio.sleep(0.01)
        sockets = self._server.servers[0].sockets
        self._port = int(sockets[0].getsockname()[1])

    async def __aenter__(self) -> AppServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Run ``on_stop``, ask uvicorn to exit and wait; force-cancel after ``stop_timeout``."""
        task = self._task
        if task is None:
            return
        if self._on_stop is not None:
            self._on_stop()
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), self._stop_timeout)
        except TimeoutError:
            self._server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        except (Exception, SystemExit):
            # Startup errors end up here as SystemExit from uvicorn; nothing left to clean.
            pass
