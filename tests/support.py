"""Helpers shared by the tests that run real servers: bounded waits on a condition, the engine
as a real process."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from wanderer_console.control.server import SOCKET_NAME
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.store.lock import lock_holder

__all__ = [
    "json_refusal",
    "connected",
    "end_process",
    "fill_disk",
    "free_port",
    "headless_config",
    "read_http_request",
    "read_only_preexec",
    "serve_headless",
    "small_disk",
    "start_headless",
    "wait_for",
]

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2


def free_port() -> int:
    """A TCP port on 127.0.0.1 free now (the kernel's pick), for a server a test starts later."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def map_on_primary_webhook(sim: Simulator, slug: str) -> str:
    """Config TOML for one more map, ``slug``, on the simulator's map and posting to the demo's
    primary webhook (two maps sharing one Discord target); append it to the demo's config."""
    return f"""
[maps.{slug}]
url = "{sim.map_url}"
slug = "{sim.map_slug}"
api_key = "{sim.map_api_key}"
[maps.{slug}.discord]
webhook_url = "{sim.webhook_url("primary")}"
"""


async def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 20.0,
    what: str = "condition",
    *,
    interval: float = 0.01,
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        result = predicate()
        if result:
            return result
        await asyncio.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout} s")


async def connected(runtime: Runtime, sources: int = 3, timeout: float = 10.0) -> None:
    """Wait until at least ``sources`` connections exist and every one reports connected."""

    def ready() -> bool:
        states = [c["state"] for c in runtime.snapshot()["connections"]]
        return len(states) >= sources and all(s == "connected" for s in states)

    await wait_for(ready, timeout)


def headless_config(sim: Simulator, path: Path) -> Path:
    """Write a minimal config for a ``--no-ui`` subprocess: one map, every kill to one webhook."""
    path.write_text(
        f"""
[console]
startup_suppression_seconds = 0
[esi]
url = "{sim.esi_url}"
[killstream]
websocket_url = "{sim.killstream_url}"
[maps.home]
url = "{sim.map_url}"
slug = "{sim.map_slug}"
api_key = "{sim.map_api_key}"
[maps.home.discord]
webhook_url = "{sim.webhook_url("primary")}"
"""
    )
    return path


async def start_headless(
    config: Path,
    data: Path,
    *,
    preexec: Callable[[], None] | None = None,
    options: Sequence[str] = (),
    stdout: Any = asyncio.subprocess.DEVNULL,
) -> asyncio.subprocess.Process:
    """The engine as a real process (``python -m wanderer_console --no-ui``), stderr piped;
    ``preexec`` runs in the child before it starts (:func:`read_only_preexec`), ``options`` are
    more command-line options (``--dry-run``), ``stdout`` where its log lines go (an open
    file: the test reads them)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wanderer_console",
        "--no-ui",
        "--config",
        str(config),
        "--data-dir",
        str(data),
        *options,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=stdout,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=preexec,
    )


async def serve_headless(
    config: Path,
    data: Path,
    *,
    preexec: Callable[[], None] | None = None,
    options: Sequence[str] = (),
    stdout: Any = asyncio.subprocess.DEVNULL,
) -> asyncio.subprocess.Process:
    """:func:`start_headless`, once the engine holds ``data`` and serves its control socket."""
    proc = await start_headless(config, data, preexec=preexec, options=options, stdout=stdout)
    try:
        await wait_for(
            lambda: (
                (h := lock_holder(data)) is not None
                and h.pid == proc.pid
                and (data / SOCKET_NAME).exists()
            ),
            timeout=30,
            what="the engine to serve its control socket",
        )
    except BaseException:
        await end_process(proc)  # never leave an engine running behind a failed test
        raise
    return proc


async def end_process(proc: asyncio.subprocess.Process) -> None:
    """Stop the engine as systemd does (SIGTERM), killing it when it does not end in 30 s."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.communicate(), 30)
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


def _drop_dac_override() -> None:
    """In the child: root loses the right to ignore file modes, as a non-root user has none."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def read_only_preexec() -> Callable[[], None] | None:
    """What a child process needs for file modes to hold for it: nothing for a user, and for
    root the loss of the right to ignore them (the test is skipped when that cannot be done)."""
    if os.geteuid() != 0:
        return None
    probe = subprocess.run(
        [sys.executable, "-c", "pass"], preexec_fn=_drop_dac_override, check=False
    )
    if probe.returncode != 0:  # pragma: no cover - a container without CAP_SETPCAP
        pytest.skip("running as root and cannot drop CAP_DAC_OVERRIDE")
    return _drop_dac_override


@contextlib.contextmanager
def small_disk(directory: Path, size: str = "16m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``directory`` (created), unmounted afterwards: a real file
    system that fills up. Mounting needs root (CI runs as root); elsewhere the test is skipped
    with the reason."""
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def fill_disk(directory: Path, leave: int) -> Path:
    """Write a filler file in ``directory`` until only ``leave`` bytes remain free; removing
    it gives the room back."""
    filler = directory / "filler"
    stat = os.statvfs(directory)
    free = stat.f_bavail * stat.f_frsize
    with filler.open("wb") as handle:
        handle.write(b"\0" * max(0, free - leave))
    return filler


def kill_id(embed: Mapping[str, Any]) -> int | None:
    """The killmail id a kill notification's embed names in its footer (``Killmail ID: N``);
    ``None`` for any other embed."""
    footer = str((embed.get("footer") or {}).get("text", ""))
    if not footer.startswith("Killmail ID: "):
        return None
    return int(footer.removeprefix("Killmail ID: ").split()[0])


def posted_kills(sim: Simulator) -> Counter[int]:
    """Kill notifications the fake Discord accepted, per killmail id (repeats counted)."""
    out: Counter[int] = Counter()
    for message in sim.discord.received:
        for embed in message.body.get("embeds") or []:
            found = kill_id(embed)
            if found is not None:
                out[found] += 1
    return out


def json_refusal(out: str, err: str, command: str) -> dict[str, Any]:
    """The refusal of a command whose answer is JSON, checked to be in the one format: its line
    on stderr (the last: a config's problems may come before it), ``wanderer-console COMMAND:
    TEXT``, and on stdout one JSON object ``{"error": TEXT, "command": COMMAND, "exit_code":
    N, ...details}``, which is returned."""
    answer: dict[str, Any] = json.loads(out)
    assert answer["command"] == command, answer
    assert err.splitlines()[-1] == f"wanderer-console {command}: {answer['error']}", err
    assert isinstance(answer["exit_code"], int), answer
    assert answer["exit_code"] > 0, answer
    return answer


async def read_http_request(reader: asyncio.StreamReader) -> bytes:
    """One HTTP/1.1 request off ``reader`` (head and ``Content-Length`` body), for the raw
    asyncio servers that answer the HTTP clients' tests (raises ``IncompleteReadError`` at the
    connection's end)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + (await reader.readexactly(length) if length else b"")
