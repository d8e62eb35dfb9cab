"""The engine's event loop: uvloop where installed, asyncio's loop on request or without it."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from wanderer_console import eventloop
from wanderer_console.config.model import Settings


async def _which() -> str:
    return eventloop.loop_name(asyncio.get_running_loop())


def test_auto_runs_on_uvloop_where_installed() -> None:
    assert eventloop.run(_which()) == "uvloop"
    assert eventloop.run(_which(), "uvloop") == "uvloop"


def test_asyncio_keeps_the_standard_loop() -> None:
    assert eventloop.loop_factory("asyncio") is None
    assert eventloop.run(_which(), "asyncio") == "asyncio"


def test_without_uvloop_auto_falls_back_and_uvloop_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop: ImportError
    assert eventloop.run(_which(), "auto") == "asyncio"
    main = _which()
    with pytest.raises(eventloop.EventLoopUnavailable) as refused:
        eventloop.run(main, "uvloop")
    assert "pip install uvloop" in str(refused.value)
    assert "console.event_loop" in str(refused.value)
    assert main.cr_frame is None  # closed, not left to warn that it was never awaited


def test_the_setting_defaults_to_auto_and_takes_only_the_known_loops() -> None:
    assert Settings().console.event_loop == "auto"
    assert Settings.model_validate({"console": {"event_loop": "asyncio"}}).console.event_loop == (
        "asyncio"
    )
    with pytest.raises(ValueError, match="event_loop"):
        Settings.model_validate({"console": {"event_loop": "trio"}})


async def test_async_tests_run_on_the_loop_the_engine_ships_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The suite's own loop (``tests/conftest.py``): uvloop, as ``auto`` chooses, unless
    ``WANDERER_CONSOLE_TEST_LOOP`` asks for asyncio's."""
    from tests.conftest import TEST_LOOP, chosen_loop

    fallback = os.environ.get(TEST_LOOP) == "asyncio" or eventloop.loop_factory("auto") is None
    expected = "asyncio" if fallback else "uvloop"
    assert eventloop.loop_name(asyncio.get_running_loop()) == expected
    assert chosen_loop()[0] == expected
    monkeypatch.setenv(TEST_LOOP, "trio")
    with pytest.raises(pytest.UsageError, match="WANDERER_CONSOLE_TEST_LOOP='trio'"):
        chosen_loop()
