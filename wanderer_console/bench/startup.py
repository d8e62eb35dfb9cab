"""Start-up time: from launch to ready, headless and with the console UI, against the simulator.

Headless: the simulator runs in this process; ``python -m wanderer_console --no-ui`` runs as a
subprocess with a config file pointing at it, and the clock runs from spawning the process to
the JSON log lines ``wanderer console started`` (the runtime is up: ``ready_s``), ``killstream
joined`` and ``map stream connected`` (``connected_s``: the map's live stream is open, the
console is doing its job). The interpreter's start and every import are included, as an operator
sees them. Then SIGTERM, timed to the process's exit (``stop_s``).

With the UI: in this process, Textual's headless ``run_test`` of the real app over a real
:class:`Runtime`, from before the UI modules are imported to the first frame of the dashboard
(``dashboard_s``; the driver lives in :mod:`wanderer_console.ui.startup_probe` because this
package may not import Textual). When Textual was already imported by an earlier benchmark in the
same process the import cost is not included; the result says so.

Run: ``python -m wanderer_console.bench.startup [--json PATH]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from wanderer_console.launch import demo_config_text, demo_settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim.simulator import Simulator

__all__ = ["main", "run_startup_bench"]

MILESTONES = {
    "wanderer console started": "ready_s",
    "killstream joined": "killstream_joined_s",
    "map stream connected": "connected_s",
}
"""Log events (the ``event`` field of a JSON log line) and the figure each one stops."""


def _clean_env() -> dict[str, str]:
    """This environment without variables that would reconfigure the console under test."""
    legacy = ("MAP_", "DISCORD_", "WEBSOCKET_URL", "WANDERER_", "ESI_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(legacy)}
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def _headless(sim: Simulator, tmp: Path, timeout: float) -> dict[str, Any]:
    data_dir = tmp / "headless"
    data_dir.mkdir()
    config = tmp / "headless.toml"
    config.write_text(demo_config_text(sim, data_dir=data_dir))
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wanderer_console",
        "--no-ui",
        "--config",
        str(config),
        "--data-dir",
        str(data_dir),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_clean_env(),
    )
    assert proc.stdout is not None
    found: dict[str, float] = {}
    problems: list[str] = []
    deadline = started + timeout
    try:
        while len(found) < len(MILESTONES):
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                problems.append(f"not every milestone within {timeout} s")
                break
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), remaining)
            except TimeoutError:
                continue
            if not line:
                problems.append(f"process exited early (code {await proc.wait()})")
                break
            at = time.perf_counter() - started
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(entry, dict):
                continue
            figure = MILESTONES.get(str(entry.get("event")))
            if figure is not None and figure not in found:
                found[figure] = at
            if entry.get("level") in ("error", "critical"):
                problems.append(str(entry.get("event")))
    finally:
        stop_started = time.perf_counter()
        stop_s: float | None = None
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.communicate(), 15.0)
                stop_s = time.perf_counter() - stop_started
            except TimeoutError:
                proc.kill()
                await proc.wait()
                problems.append("did not stop within 15 s of SIGTERM")
    return {
        **{
            figure: round(found[figure], 3) if figure in found else None
            for figure in MILESTONES.values()
        },
        "stop_s": None if stop_s is None else round(stop_s, 3),
        "exit_code": proc.returncode,
        "problems": problems,
    }


async def _with_ui(sim: Simulator, tmp: Path, timeout: float) -> dict[str, Any]:
    data_dir = tmp / "tui"
    data_dir.mkdir()
    textual_loaded = "textual" in sys.modules
    started = time.perf_counter()
    from wanderer_console.ui.startup_probe import measure_tui_startup

    imported = time.perf_counter()
    runtime = Runtime(demo_settings(sim, data_dir=data_dir), data_dir=data_dir)
    try:
        figures = await measure_tui_startup(
            runtime, started=started, timeout=timeout, connected_sources=1
        )
    finally:
        await runtime.stop()
    return {
        "import_s": round(imported - started, 3),
        "import_included": not textual_loaded,
        **{k: None if v is None else round(v, 3) for k, v in figures.items()},
    }


async def run_startup_bench(
    *, headless: bool = True, tui: bool = True, timeout: float = 30.0, seed: int = 5
) -> dict[str, Any]:
    """Start-up figures, headless (subprocess) and with the UI (in process)."""
    result: dict[str, Any] = {"scenario": "startup"}
    with tempfile.TemporaryDirectory(prefix="wc-bench-start-") as tmp:
        async with Simulator(seed=seed) as sim:
            if headless:
                result["headless"] = await _headless(sim, Path(tmp), timeout)
            if tui:
                result["tui"] = await _with_ui(sim, Path(tmp), timeout)
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line entry: print the JSON result (and write it with ``--json``)."""
    parser = argparse.ArgumentParser(prog="python -m wanderer_console.bench.startup")
    parser.add_argument("--no-tui", action="store_true", help="headless only")
    parser.add_argument("--json", type=Path, metavar="PATH")
    args = parser.parse_args(argv)
    result = asyncio.run(run_startup_bench(tui=not args.no_tui))
    text = json.dumps(result, sort_keys=True)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    with contextlib.suppress(KeyError):
        if result["headless"]["problems"]:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
