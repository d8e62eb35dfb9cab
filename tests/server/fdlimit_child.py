"""A console with its HTTP surface, run in a child process under a low descriptor limit.

``python -m tests.server.fdlimit_child NOFILE HEADER_TIMEOUT BODY_TIMEOUT`` lowers the soft
``RLIMIT_NOFILE`` to NOFILE, starts the simulator and a runtime serving HTTP on a free loopback
port, prints one JSON line (``url``, ``key``: an ingest key for the map's tenant) and runs until
its standard input closes. The parent test floods it with slow connections from its own
process, so the flood's sockets count against the child's limit only on the server side.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import tempfile
from pathlib import Path

import orjson

from tests.support import connected
from wanderer_console.config.model import ServerSettings
from wanderer_console.launch import demo_settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator


async def main(nofile: int, header_timeout: float, body_timeout: float) -> None:
    """Serve until stdin closes."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))
    sim = Simulator(seed=5)
    await sim.start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = demo_settings(sim, data_dir=Path(tmp))
        limits = {"header_timeout_seconds": header_timeout, "body_timeout_seconds": body_timeout}
        # Only the settings this build has: a build without read deadlines still starts, so the
        # flood test fails against it for what it tests (health, delivery), not on a config key.
        known = {k: v for k, v in limits.items() if k in ServerSettings.model_fields}
        settings.server = ServerSettings(enabled=True, port=0, **known)
        runtime = Runtime(settings, data_dir=Path(tmp))
        await runtime.start()
        try:
            await connected(runtime)
            assert runtime.http is not None, runtime.http_error
            key = runtime.http.tenants.add(sim.map_slug)
            line = {"url": runtime.http.url, "key": key, "map": sim.map_slug}
            sys.stdout.write(orjson.dumps(line).decode() + "\n")
            sys.stdout.flush()
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, sys.stdin.read)
        finally:
            await runtime.stop()
            await sim.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])))
