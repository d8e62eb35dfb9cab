"""Attach-time probe: ``wanderer-console attach`` up to the first live frame, headless.

Run by :mod:`wanderer_console.bench.attach` as a fresh process, which times it from before the
spawn to this probe's report (so the interpreter's start and every import count); the probe
reports its own steps too, in seconds from its start (after the interpreter and this module,
which imports only the standard library at load):

``cli_import_s``
    the CLI imported (what ``wanderer-console attach`` loads before running the command);
``connected_s``
    the command's own path: its arguments parsed (``attach --socket PATH``), its backend made
    (:func:`~wanderer_console.attach.backend_for`) and the handshake done
    (:func:`~wanderer_console.attach.connect_backend`);
``first_frame_s`` (``--no-ui``)
    the first live frame received from the engine, and the probe stops there;
``ui_import_s``
    the console's modules imported (Textual only once there is an engine, as the command does);
``frame_shown_s``
    the dashboard took in the first live frame (every panel updated from it: the app's
    ``frame_shown`` hook, which the dashboard calls after rendering each frame);
``drawn_s``
    the first frame Textual composed for the dashboard after that: what the operator sees.

The app is built as :func:`~wanderer_console.ui.app.run_app` builds it (the first snapshot gives
the theme) and runs under Textual's ``run_test`` (headless: a frame is composed, only the write
to a terminal is skipped), because a benchmark has no terminal. This package may not import
Textual: the probe reaches it only through ``wanderer_console.ui``.

Prints one JSON line: ``{"ok": true, ...steps}`` or ``{"ok": false, "error": ...}`` (exit 1).

Run: ``python -m wanderer_console.bench.attach_probe --socket PATH [--no-ui]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wanderer_console.http.control_client import RemoteBackend

__all__ = ["main", "probe_attach"]

POLL_SECONDS = 0.002
"""How often the probe looks whether the dashboard has drawn the first live frame."""
FIRST_SNAPSHOT_SECONDS = 3.0
"""As ``run_app``: how long the first snapshot (for the theme) is waited for."""


async def probe_attach(
    socket: Path,
    *,
    ui: bool = True,
    started: float | None = None,
    size: tuple[int, int] = (120, 40),
    timeout: float = 30.0,
    report: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Attach to the engine on ``socket``; seconds from ``started`` to each step (see above).

    ``report`` is called with the steps as soon as the last one is reached, before the console
    and the connection are closed (their teardown is not part of attaching).
    """
    t0 = time.perf_counter() if started is None else started
    steps: dict[str, Any] = {}
    last = "drawn_s" if ui else "first_frame_s"

    def mark(step: str, at: float | None = None) -> None:
        steps[step] = round((time.perf_counter() if at is None else at) - t0, 4)
        if step == last and report is not None:
            report(dict(steps))

    from wanderer_console import attach, cli

    mark("cli_import_s")
    args = cli.build_parser().parse_args(["attach", "--socket", str(socket)])
    backend = attach.backend_for(args)
    try:
        await attach.connect_backend(backend)
        mark("connected_s")
        # As the command does: the console's own log lines must not reach the terminal.
        logging.getLogger().addHandler(logging.NullHandler())
        logging.getLogger("wanderer_console").propagate = False
        if ui:
            await _first_drawn(backend, mark, size, timeout)
        else:
            stream = backend.frames(1.0)
            try:
                async with asyncio.timeout(timeout):
                    async for frame in stream:
                        if frame.link.state == "live":
                            break
            finally:
                close = getattr(stream, "aclose", None)  # an async generator's
                if close is not None:
                    await close()
            mark("first_frame_s")
    finally:
        await backend.aclose()
    return steps


async def _first_drawn(
    backend: RemoteBackend,
    mark: Callable[[str, float | None], None],
    size: tuple[int, int],
    timeout: float,
) -> None:
    from wanderer_console.console_api import BackendError
    from wanderer_console.ui.app import build_app
    from wanderer_console.ui.latency import FrameProbe
    from wanderer_console.ui.model import FrameChange
    from wanderer_console.ui.screens.dashboard import DashboardScreen

    mark("ui_import_s", None)
    theme: str | None = None
    try:  # as run_app: the first snapshot brings the theme
        first = await asyncio.wait_for(backend.snapshot(), FIRST_SNAPSHOT_SECONDS)
    except (BackendError, TimeoutError):
        pass  # run_app starts anyway (the first frame brings the theme); so does the probe
    else:
        theme = first.settings.theme
    app = build_app(backend, theme=theme, settle_gc=True)
    drawn = FrameProbe(app)
    shown: list[float] = []
    frame_shown = app.frame_shown

    def recording(change: FrameChange) -> None:
        frame_shown(change)
        if not shown and app.state.live:
            shown.append(time.perf_counter())
            mark("frame_shown_s", shown[0])

    app.frame_shown = recording  # type: ignore[method-assign]
    async with app.run_test(size=size):
        deadline = time.perf_counter() + timeout
        while True:
            screen = app.screen
            if shown and isinstance(screen, DashboardScreen):
                after = [at for at, on in drawn.frames if on is screen and at >= shown[0]]
                if after:
                    mark("drawn_s", after[0])  # when it was composed, not when seen here
                    return
            if time.perf_counter() > deadline:
                raise TimeoutError(f"no live frame drawn within {timeout:g} s")
            await asyncio.sleep(POLL_SECONDS)


def main(argv: list[str] | None = None) -> int:
    """Command line entry: one JSON line on stdout."""
    started = time.perf_counter()
    parser = argparse.ArgumentParser(prog="python -m wanderer_console.bench.attach_probe")
    parser.add_argument("--socket", type=Path, required=True, metavar="PATH")
    parser.add_argument("--no-ui", action="store_true", help="stop at the first frame received")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS")
    args = parser.parse_args(argv)
    reported: list[bool] = []

    def report(steps: dict[str, Any]) -> None:
        print(json.dumps({"ok": True, "ui": not args.no_ui, **steps}), flush=True)
        reported.append(True)

    try:
        asyncio.run(
            probe_attach(
                args.socket,
                ui=not args.no_ui,
                started=started,
                timeout=args.timeout,
                report=report,
            )
        )
    except Exception as exc:
        if reported:  # attached and reported: a failing teardown is not the figure's business
            print(f"attach probe: teardown: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 0
        print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
