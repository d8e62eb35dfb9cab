"""Which event loop the console runs on: uvloop headless (when installed), asyncio's own under
the TUI.

uvloop (libuv under asyncio's API) makes the loop's own work cheaper: socket reads, callbacks,
timers. On the ingest path that was about 5 % more killmails a second (``bench/ingest.py``,
same run, same machine). Textual is developed and tested on asyncio's loop, so the console UI
stays there unless the operator asks otherwise; ``--loop asyncio`` puts a headless run back on
it too (a platform without uvloop falls back by itself).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, Final, Literal, TypeVar, get_args

__all__ = [
    "LOOP_CHOICES",
    "LoopChoice",
    "LoopUnavailable",
    "add_loop_option",
    "loop_factory",
    "resolve",
    "run",
    "running_loop_name",
]

T = TypeVar("T")

LoopChoice = Literal["auto", "uvloop", "asyncio"]
LOOP_CHOICES: Final[tuple[str, ...]] = get_args(LoopChoice)


class LoopUnavailable(RuntimeError):
    """The loop asked for cannot run here (uvloop is not installed)."""


def _uvloop_installed() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def resolve(choice: LoopChoice = "auto", *, tui: bool = False) -> Literal["uvloop", "asyncio"]:
    """The loop a run will use: ``auto`` is uvloop headless when installed, else asyncio.

    Raises :class:`LoopUnavailable` when ``uvloop`` is asked for and not installed.
    """
    if choice == "asyncio":
        return "asyncio"
    if choice == "uvloop":
        if not _uvloop_installed():
            raise LoopUnavailable(
                "uvloop is not installed (pip install uvloop); use --loop asyncio or auto"
            )
        return "uvloop"
    return "uvloop" if not tui and _uvloop_installed() else "asyncio"


def loop_factory(
    choice: LoopChoice = "auto", *, tui: bool = False
) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """A factory for :class:`asyncio.Runner` (``None``: asyncio's default loop)."""
    if resolve(choice, tui=tui) == "asyncio":
        return None
    import uvloop

    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], *, loop: LoopChoice = "auto", tui: bool = False) -> T:
    """:func:`asyncio.run` on the chosen loop."""
    try:
        factory = loop_factory(loop, tui=tui)
    except LoopUnavailable:
        main.close()  # never started: no "coroutine was never awaited" warning
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def running_loop_name() -> str:
    """``uvloop`` or ``asyncio``: the loop this code runs on (for the start-up log line)."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"


def add_loop_option(parser: argparse.ArgumentParser, *, subcommand: bool = False) -> None:
    """Add ``--loop``; on a sub-command it only overrides the main parser's when given."""
    parser.add_argument(
        "--loop",
        choices=LOOP_CHOICES,
        default=argparse.SUPPRESS if subcommand else "auto",
        help="event loop: auto (default: uvloop headless when installed, asyncio under the "
        "TUI), uvloop, or asyncio",
    )
