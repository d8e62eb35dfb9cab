"""The event loop choice: uvloop headless by default, asyncio under the TUI, clear refusals."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from wanderer_console import eventloop
from wanderer_console.cli import build_parser
from wanderer_console.eventloop import LoopUnavailable, resolve, run, running_loop_name

pytestmark = pytest.mark.timeout(60)


async def _loop_name() -> str:
    await asyncio.sleep(0)
    return running_loop_name()


def test_auto_is_uvloop_headless_and_asyncio_under_the_tui() -> None:
    assert resolve("auto") == "uvloop"
    assert resolve("auto", tui=True) == "asyncio"
    assert resolve("uvloop", tui=True) == "uvloop"  # asked for explicitly
    assert resolve("asyncio") == "asyncio"


def test_run_really_runs_on_the_loop_chosen() -> None:
    assert run(_loop_name()) == "uvloop"
    assert run(_loop_name(), loop="asyncio") == "asyncio"
    assert run(_loop_name(), tui=True) == "asyncio"


def test_without_uvloop_auto_falls_back_and_an_explicit_ask_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(eventloop, "_uvloop_installed", lambda: False)
    assert resolve("auto") == "asyncio"
    assert run(_loop_name()) == "asyncio"
    coro = _loop_name()
    with pytest.raises(LoopUnavailable, match="uvloop is not installed"):
        run(coro, loop="uvloop")
    assert coro.cr_frame is None  # closed, not left for a "never awaited" warning


def test_the_cli_takes_loop_before_or_after_demo() -> None:
    parser = build_parser()
    assert parser.parse_args([]).loop == "auto"
    assert parser.parse_args(["--loop", "asyncio", "demo"]).loop == "asyncio"
    assert parser.parse_args(["demo", "--loop", "uvloop"]).loop == "uvloop"
    with pytest.raises(SystemExit):
        parser.parse_args(["--loop", "tokio"])


async def _demo(tmp_path: Path, *extra: str) -> tuple[int, list[dict[str, object]], str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wanderer_console",
        *extra,
        "demo",
        "--no-ui",
        "--duration",
        "2",
        "--data-dir",
        str(tmp_path),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ),
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=45)
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    assert proc.returncode is not None
    return proc.returncode, lines, err.decode()


@pytest.mark.parametrize(
    ("flags", "expected"), [((), "uvloop"), (("--loop", "asyncio"), "asyncio")]
)
async def test_headless_demo_says_which_loop_it_runs_on(
    tmp_path: Path, flags: tuple[str, ...], expected: str
) -> None:
    code, lines, err = await _demo(tmp_path, *flags)
    assert code == 0, err
    started = [line for line in lines if line.get("event") == "wanderer console started"]
    assert [line["event_loop"] for line in started] == [expected]
