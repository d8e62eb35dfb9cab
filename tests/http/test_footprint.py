"""The HTTP layer's share of the engine's idle memory: modules it leaves unimported, and one
certificate bundle parsed for every client."""

from __future__ import annotations

import ssl
import subprocess
import sys

import pytest

from wanderer_console.http.client import HttpClient
from wanderer_console.http.factory import build_client
from wanderer_console.http.middleware import network_transport
from wanderer_console.http.settings import settings_for
from wanderer_console.telemetry.metrics import Metrics


@pytest.mark.slow
def test_the_headless_engine_does_not_load_httpx_command_line_client() -> None:
    # httpx imports its CLI (rich, pygments) on every import unless told it is absent: about
    # 3.5 MB of the engine's idle RSS (bench peer). Textual is the TUI's alone.
    code = (
        "import sys, wanderer_console.cli, wanderer_console.launch, wanderer_console.runtime;"
        "import httpx;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'rich', 'pygments', 'textual'}));"
        "print(callable(httpx.main), sys.modules.get('httpx._main'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.splitlines() == ["[]", "True None"]


async def test_every_client_verifies_with_one_context(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each httpx client (and aiohttp connector) used to parse certifi's bundle into a context
    # of its own: about 1 MB each. Built now, six clients and a Discord transport parse it at
    # most once (not at all when an earlier test already made the shared context).
    loads: list[object] = []
    original = ssl.SSLContext.load_verify_locations

    def counting(self: ssl.SSLContext, *args: object, **kwargs: object) -> None:
        loads.append(args or kwargs)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counting)
    metrics = Metrics()
    services = ("map", "esi", "janice", "killstream", "zkillboard")
    clients = [build_client(s, settings_for(s), metrics=metrics) for s in services]
    clients.append(HttpClient("plain"))
    discord = network_transport(settings_for("discord"))
    try:
        assert len(loads) <= 1
    finally:
        for client in clients:
            await client.aclose()
        await discord.aclose()
