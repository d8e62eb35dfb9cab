"""Fixtures: the shared runtime (tests/conftest.py) serving its HTTP surface on a free loopback
port, a client for it and an ingest key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from wanderer_console.config.model import ServerSettings, Settings
from wanderer_console.launch import demo_settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator

WEBHOOK_SECRET = "c2VjcmV0LWZyb20tcm90YXRl"


def server_settings(sim: Simulator, data_dir: Path) -> Settings:
    """The demo settings with the HTTP surface on a free port and a webhook secret."""
    settings = demo_settings(sim, data_dir=data_dir)
    settings.server = ServerSettings(enabled=True, port=0)
    settings.maps[sim.map_slug].webhook_secret = SecretStr(WEBHOOK_SECRET)
    return settings


@pytest.fixture
def runtime_settings(sim: Simulator, tmp_path: Path) -> Settings:
    """The shared ``runtime`` fixture starts on :func:`server_settings` here."""
    return server_settings(sim, tmp_path)


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    assert runtime.http is not None, runtime.http_error
    async with httpx.AsyncClient(base_url=runtime.http.url, timeout=10.0) as http:
        yield http


@pytest.fixture
def ingest_key(runtime: Runtime, sim: Simulator) -> str:
    """An ingest key for the simulator's map tenant."""
    assert runtime.http is not None
    return runtime.http.tenants.add(sim.map_slug)
