"""Child process of the SSE memory test: one map source, its memory measured around a fault.

``python -m tests.ingest_faults.sse_memory_child URL SLUG KEY DB`` connects, takes a baseline
and prints ``ready``; it then reads the id of an event from stdin, waits until that event
reaches the sink and prints one JSON line: peak and current RSS growth, the oversize count,
the ids received and the connection's health. Alone in its process, the figures are the
client's own (the server, in the test's process, is not in them).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import sys
from pathlib import Path

from tests.ingest_faults.conftest import map_settings
from tests.support import wait_for
from wanderer_console.http.client import HttpClient
from wanderer_console.ingest.health import ConnectionState
from wanderer_console.ingest.items import Item, MapEventItem
from wanderer_console.ingest.map_sse import MapSseSource
from wanderer_console.store.sqlite import SqliteStore
from wanderer_console.telemetry.metrics import Metrics


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def main(url: str, slug: str, key: str, db: str) -> None:
    """Run the source until the event named on stdin arrives; print the figures."""
    settings = map_settings(url, tenant=slug, api_key=key)
    metrics = Metrics()
    store = SqliteStore(Path(db))
    http = HttpClient("map", timeout=10.0)
    ids: list[str] = []

    async def sink(item: Item) -> None:
        if isinstance(item, MapEventItem):
            ids.append(item.envelope.id)

    source = MapSseSource(slug, settings.maps[slug], http, store, sink, metrics)
    task = asyncio.create_task(source.run())
    await wait_for(lambda: source.health.state is ConnectionState.CONNECTED, 10)
    gc.collect()
    base_peak, base_rss = _peak(), _rss()
    print("ready", flush=True)
    target = (await asyncio.to_thread(sys.stdin.readline)).strip()
    await wait_for(lambda: target in ids, 60)
    result = {
        "peak_growth": _peak() - base_peak,
        "rss_growth": _rss() - base_rss,
        "oversize": metrics.value("wc_stream_oversize_total", source=f"sse:{slug}", reason="line"),
        "ids": ids,
        "state": source.health.state.value,
        "reconnects": source.health.reconnects,
        "last_error": source.health.last_error,
    }
    print(json.dumps(result), flush=True)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await http.aclose()
    store.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
