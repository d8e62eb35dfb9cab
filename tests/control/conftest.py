"""An engine with a config file, started on the simulator, for the control endpoint's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import connected
from wanderer_console.control.server import SOCKET_NAME
from wanderer_console.http.control_client import RemoteBackend
from wanderer_console.launch import demo_settings, write_demo_config
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator

MAP_KEY = "map-key-7f3a9c2e51d04b8a"
BOT_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.bot-token-secret-value-0123456789"


@pytest.fixture
def sim_options() -> dict[str, Any]:
    """Distinctive secrets, so a leak is found by a plain search of the traffic."""
    return {"seed": 5, "map_api_key": MAP_KEY, "bot_token": BOT_TOKEN}


def secrets_of(sim: Simulator) -> list[str]:
    """Every secret value the demo config holds: keys, bot token, webhook URLs and tokens."""
    values = [MAP_KEY, BOT_TOKEN]
    for name in ("primary", "system-kills", "character-kills", "rally"):
        url = sim.webhook_url(name)
        values += [url, url.rsplit("/", 1)[1]]
    return values


@pytest.fixture
def config_file(sim: Simulator, tmp_path: Path) -> Path:
    """The demo config, written into the data directory (as ``demo`` does)."""
    return write_demo_config(sim, data_dir=tmp_path)


@pytest.fixture
async def engine(sim: Simulator, tmp_path: Path, config_file: Path) -> AsyncIterator[Runtime]:
    """A started engine watching ``config_file``, every source connected."""
    runtime = Runtime(
        demo_settings(sim, data_dir=tmp_path), data_dir=tmp_path, config_path=config_file
    )
    await runtime.start()
    try:
        await connected(runtime)
        yield runtime
    finally:
        await runtime.stop()


@pytest.fixture
async def remote(engine: Runtime) -> AsyncIterator[RemoteBackend]:
    """A console attached to ``engine`` through its control socket (connected)."""
    backend = RemoteBackend(socket_path=engine.data_dir / SOCKET_NAME)
    await backend.connect()
    try:
        yield backend
    finally:
        await backend.aclose()


def text_of(path: Path) -> str:
    """The file's text (a plain function: reading a small local file does not need a thread)."""
    return path.read_text(encoding="utf-8")


def append_to(path: Path, text: str) -> None:
    """Add ``text`` at the end of the file, as an editor on the host would."""
    path.write_text(text_of(path) + text, encoding="utf-8")
