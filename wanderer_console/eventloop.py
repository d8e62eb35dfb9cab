"""The event loop the console runs on: uvloop where it is installed, else asyncio's own.

Why uvloop: the engine is one event loop, and a kill that notifies hundreds of maps is hundreds
of webhook requests sent one after another on it, so the loop's own cost per request (scheduling
tasks and callbacks, the socket's transport) is part of how long the last map waits. uvloop
(libuv, compiled) runs the same asyncio programs for less of that: at 1,000 maps the fan-out
scenario measured 0.136-0.144 ms between two deliveries against 0.161-0.165 on asyncio's loop
(``python -m wanderer_console.bench.fanout``, alternating runs). Nothing of the console's code
depends on the loop's kind; only its speed changes.

``console.event_loop`` chooses: ``auto`` (the default) takes uvloop when it can be imported
(it is a dependency on Linux and macOS; Windows has none) and asyncio's loop otherwise;
``asyncio`` keeps the standard loop (a fallback should uvloop misbehave on some host);
``uvloop`` insists, and says how to install it when it is missing.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Coroutine
from typing import Any, Final, Literal, TypeVar

__all__ = ["LOOPS", "EventLoopUnavailable", "loop_factory", "loop_name", "run"]

T = TypeVar("T")

LoopChoice = Literal["auto", "asyncio", "uvloop"]
LOOPS: Final[tuple[LoopChoice, ...]] = ("auto", "asyncio", "uvloop")


class EventLoopUnavailable(RuntimeError):
    """The loop the configuration asks for cannot be had here (the message says what to do)."""


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop``, or None when uvloop cannot be imported."""
    try:
        module = importlib.import_module("uvloop")
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = module.new_event_loop
    return factory


def loop_factory(choice: LoopChoice) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What makes the loop ``choice`` names (``None``: asyncio's default)."""
    if choice == "asyncio":
        return None
    factory = _uvloop_factory()
    if factory is None and choice == "uvloop":
        raise EventLoopUnavailable(
            "console.event_loop is 'uvloop' but uvloop is not installed here: install it"
            " (pip install uvloop; Linux and macOS only), or set console.event_loop to 'auto'"
            " or 'asyncio'"
        )
    return factory


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: which kind ``loop`` is (for the start's log line)."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def run(main: Coroutine[Any, Any, T], choice: LoopChoice = "auto") -> T:
    """``asyncio.run(main)`` on the loop ``choice`` names (see the module's docstring)."""
    try:
        factory = loop_factory(choice)
    except EventLoopUnavailable:
        main.close()  # never awaited: no "coroutine was never awaited" warning on top
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
