"""Peer comparison: the console against Prometheus Alertmanager on the same job (issue 24).

The job: an event arrives over HTTP (the console's ingest API, ``POST /api/v1/events``;
Alertmanager's ``POST /api/v2/alerts``) and one webhook call per event reaches a sink on
127.0.0.1 (:mod:`~wanderer_console.bench.peer_sink`). Both routers run as real processes: the
console as ``python -m wanderer_console --no-ui`` (ingest API on, one map whose Discord webhook is
the sink), Alertmanager (Debian's ``prometheus-alertmanager``, found on the ``PATH``) bound to
127.0.0.1 only, clustering off, storage in a temporary directory, every alert routed to one
webhook receiver at once (``group_by: ['...']``: one notification per alert; ``group_wait: 0s``,
``group_interval: 1s``; ``repeat_interval`` longer than a run, so a still-firing alert is never
notified twice by design; ``send_resolved: false``). Without Alertmanager the scenario reports that
it skipped, and why.

**No rate limit on either side.** The sink sends no ``X-RateLimit-*`` header and never answers
429 (Alertmanager has no rate limits), and the console is configured as in the other benchmarks
that measure its own work: ``discord.channel_messages_per_minute`` lifted and the Discord client's
token bucket off (``[http.discord] rate_per_second = 0``). Everything else is the console's own
default: claim before send, the durable outbox, dedup, the breaker and retry rules, packing up
to 10 notifications per message when they queue (so the sink counts calls and events apart).

**Loads**, each router in turn in alternating rounds (console then Alertmanager, then the other
way round), a fresh process each time, warmed up with a few events first:

- *paced* 50/s and 200/s, one event per request, open loop: latency from the start of the post
  to the sink's receipt (p50, p99), and each router's CPU seconds (``/proc``, every thread) per
  1,000 deliveries from the first post until the last delivery;
- *burst*: 5,000 events in requests of 50, all posted at once: time from the first post until
  all are delivered, and the median latency;
- *RSS*: idle (after the warm-up, settled) and peak (``VmHWM`` after the burst).

**Faults**, in rounds of their own (a fresh process for each):

- *503 burst*: the sink answers ``503`` to the first N requests while 500 events are posted at
  50/s: time until all 500 are delivered (from the first post), and from the last ``503`` until
  everything posted before it is delivered;
- *sink down*: events posted at 50/s; the sink stops listening (connections refused) for about
  10 s and comes back on the same port: from its return until everything posted while it was
  down is delivered, until the first delivery after it came back, and the median latency of the
  events posted after it came back.

Every round counts the events lost (posted and accepted, never delivered) and doubled (delivered
more than once); either fails the run. The poster, the sink and the fake map the console connects
to run in this process; with ``taskset`` and two CPUs or more, this process is pinned to one CPU
and the router under test to another. The figures are medians over the rounds, with the
console/Alertmanager ratio of each (below 1: the console is faster or smaller).

Run: ``wanderer-console bench --only peer`` (``--quick`` for fewer, shorter rounds), or
``python -m wanderer_console.bench.peer [--quick] [--json PATH]``. Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import orjson

from wanderer_console.bench.attach import proc_cpu_seconds
from wanderer_console.bench.latency import percentile
from wanderer_console.bench.peer_sink import AM_PATH, PeerSink, SinkServer, discord_webhook_path
from wanderer_console.bench.pinning import Pinning, choose_pinning
from wanderer_console.bench.startup import _clean_env
from wanderer_console.http.client import HttpClient, TransportError
from wanderer_console.sim.map_server import FakeMapServer
from wanderer_console.sim.server import AppServer

__all__ = [
    "ALERTMANAGER_NAMES",
    "BUDGET",
    "FULL",
    "QUICK",
    "PeerSizes",
    "Pinning",
    "choose_pinning",
    "find_alertmanager",
    "figures_of",
    "format_table",
    "main",
    "ratio",
    "run_peer",
    "summarise",
]

ALERTMANAGER_NAMES: Final = ("prometheus-alertmanager", "alertmanager")
"""Executable names looked up on the ``PATH`` (Debian's package, then upstream's)."""
CONSOLE: Final = "console"
ALERTMANAGER: Final = "alertmanager"
SIDES: Final = (CONSOLE, ALERTMANAGER)
MAP_SLUG: Final = "peer"
WEBHOOK_ID: Final = "1200000000000000001"
_MAP_KEY: Final = "peer-map-key"
_WARMUP_EVENTS: Final = 20


@dataclass(frozen=True)
class PeerSizes:
    """How much work the scenario does."""

    rounds: int = 5
    """Load rounds per router (alternating)."""
    fault_rounds: int = 3
    """Fault rounds per router (alternating)."""
    paced_seconds: float = 10.0
    rates: tuple[float, ...] = (50.0, 200.0)
    burst: int = 5000
    batch: int = 50
    """Events per request in the burst."""
    fault_events: int = 500
    fault_rate: float = 50.0
    fail_requests: int = 25
    """Requests the sink answers 503 in the 503 burst."""
    down_seconds: float = 10.0
    around_down_seconds: float = 5.0
    """Posting before the sink goes down and after it is back."""
    drain_timeout: float = 60.0
    """Seconds after the last post of a load within which every event must arrive."""
    fault_timeout: float = 300.0
    """The same for a fault."""


FULL = PeerSizes()
QUICK = PeerSizes(
    rounds=2, fault_rounds=1, paced_seconds=3.0, down_seconds=10.0, around_down_seconds=3.0
)

# -- the machine ----------------------------------------------------------------------------------


def find_alertmanager(path: str | None = None) -> str | None:
    """Alertmanager's executable on ``path`` (default: ``$PATH``), or ``None``."""
    for name in ALERTMANAGER_NAMES:
        found = shutil.which(name, path=path)
        if found:
            return found
    return None


def _version(binary: str) -> str:
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    words = (out.stdout or out.stderr).split()
    return words[2] if len(words) > 2 and words[1] == "version" else "unknown"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _proc_status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


# -- the routers ----------------------------------------------------------------------------------


class Router:
    """A router process under test and the poster's client for it."""

    name: str = ""

    def __init__(
        self, proc: asyncio.subprocess.Process, client: HttpClient, log: Path, port: int
    ) -> None:
        self.proc = proc
        self.client = client
        self.log = log
        self.port = port

    async def post(self, ids: Sequence[str]) -> int:
        """Post ``ids`` as events in one request; how many the router accepted."""
        raise NotImplementedError

    def cpu_seconds(self) -> float:
        """CPU seconds (user + system, every thread) the process has used."""
        return proc_cpu_seconds(self.proc.pid)

    def rss_mb(self) -> float:
        """Resident memory now."""
        return _proc_status_kb(self.proc.pid, "VmRSS") / 1024

    def peak_rss_mb(self) -> float:
        """The most resident memory so far (``VmHWM``)."""
        return _proc_status_kb(self.proc.pid, "VmHWM") / 1024

    def log_tail(self, chars: int = 1500) -> str:
        """The end of the process's output, for an error message."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s."""
        await self.client.aclose()
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 15.0)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


class ConsoleRouter(Router):
    """``wanderer-console --no-ui`` with its ingest API."""

    name = CONSOLE

    async def post(self, ids: Sequence[str]) -> int:
        """One event, or ``{"events": [...]}`` for several; counts ``accepted``."""
        events = [{"event_id": event_id, "title": event_id} for event_id in ids]
        body: Any = events[0] if len(events) == 1 else {"events": events}
        response = await self.client.post("/api/v1/events", json=body)
        if not response.ok:
            return 0
        return int(response.json().get("accepted", 0))


class AlertmanagerRouter(Router):
    """Alertmanager with its v2 API."""

    name = ALERTMANAGER

    async def post(self, ids: Sequence[str]) -> int:
        """The events as alerts (label ``event_id``) in one request."""
        alerts = [
            {
                "labels": {"alertname": "peer", "event_id": event_id},
                "annotations": {"title": event_id},
            }
            for event_id in ids
        ]
        response = await self.client.post("/api/v2/alerts", json=alerts)
        return len(ids) if response.ok else 0


def console_config_text(*, port: int, map_url: str, sink_url: str) -> str:
    """The console's configuration: ingest API on ``port``, one map whose webhook is the sink,
    no kill feeds, Discord's pacing lifted (the sink has no limits)."""
    return f"""\
[console]
startup_suppression_seconds = 0

[discord]
channel_messages_per_minute = 1000000   # the sink has no limits (Alertmanager has none)

[http.discord]
rate_per_second = 0

[esi]
enabled = false

[killstream]
enabled = false

[server]
enabled = true
host = "127.0.0.1"
port = {port}
keep_alive_seconds = 75

[maps.{MAP_SLUG}]
url = "{map_url}"
api_key = "{_MAP_KEY}"

[maps.{MAP_SLUG}.discord]
webhook_url = "{sink_url}{discord_webhook_path(WEBHOOK_ID)}"
"""


def alertmanager_config_text(sink_url: str) -> str:
    """Every alert to one webhook receiver at once, one notification per alert."""
    return f"""\
route:
  receiver: sink
  group_by: ['...']
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 4h
receivers:
  - name: sink
    webhook_configs:
      - url: "{sink_url}{AM_PATH}"
        send_resolved: false
"""


async def _wait_answering(router: Router, path: str, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while True:
        if router.proc.returncode is not None:
            raise RuntimeError(
                f"{router.name} exited ({router.proc.returncode}): {router.log_tail()}"
            )
        try:  # listening yet? (before that, every request would log a failure)
            _reader, writer = await asyncio.open_connection("127.0.0.1", router.port)
        except OSError:
            pass
        else:
            writer.close()
            with contextlib.suppress(TransportError):
                if (await router.client.get(path, timeout=2.0)).ok:
                    return
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{router.name} not answering within {timeout:g} s")
        await asyncio.sleep(0.05)


@dataclass
class Rig:
    """What every router run shares: the sink, the fake map, a directory, pinning."""

    tmp: Path
    sink: PeerSink
    sink_server: SinkServer
    map_url: str
    pinning: Pinning
    alertmanager: str | None
    runs: int = 0
    console_python: str = sys.executable
    """The interpreter that runs the console (another virtual environment, to compare)."""
    console_env: Mapping[str, str] = field(default_factory=dict)
    """Variables added to the console's environment (``PYTHONPATH``, to compare a checkout)."""

    def _dir(self, name: str) -> Path:
        self.runs += 1
        path = self.tmp / f"{name}-{self.runs}"
        path.mkdir()
        return path

    async def start(self, side: str, timeout: float = 30.0) -> Router:
        """A fresh router process of ``side``, answering."""
        if side == CONSOLE:
            return await self._console(timeout)
        return await self._alertmanager(timeout)

    async def _console(self, timeout: float) -> Router:
        work = self._dir(CONSOLE)
        data = work / "data"
        port = _free_port()
        config = work / "console.toml"
        config.write_text(
            console_config_text(port=port, map_url=self.map_url, sink_url=self.sink_server.url)
        )
        config.chmod(0o600)
        base = [self.console_python, "-m", "wanderer_console"]
        env = {**_clean_env(), **self.console_env}
        paths = ["--config", str(config), "--data-dir", str(data)]
        added = await asyncio.create_subprocess_exec(
            *base,
            "tenant",
            "add",
            MAP_SLUG,
            *paths,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await added.communicate()
        if added.returncode != 0:
            raise RuntimeError(f"tenant add failed: {err.decode(errors='replace')}")
        key = json.loads(out)["key"]
        log = work / "console.log"
        with log.open("wb") as sink:
            proc = await asyncio.create_subprocess_exec(
                *self.pinning.prefix(),
                *base,
                "--no-ui",
                *paths,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=sink,
                stderr=sink,
                env=env,
            )
        client = HttpClient(
            "peer-poster",
            base_url=f"http://127.0.0.1:{port}",
            headers={"authorization": f"Bearer {key}"},
            timeout=60.0,
        )
        router = ConsoleRouter(proc, client, log, port)
        await _guarded_start(router, "/health", timeout)
        return router

    async def _alertmanager(self, timeout: float) -> Router:
        assert self.alertmanager is not None
        work = self._dir(ALERTMANAGER)
        config = work / "alertmanager.yml"
        config.write_text(alertmanager_config_text(self.sink_server.url))
        port = _free_port()
        log = work / "alertmanager.log"
        with log.open("wb") as sink:
            proc = await asyncio.create_subprocess_exec(
                *self.pinning.prefix(),
                self.alertmanager,
                f"--config.file={config}",
                f"--storage.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=warn",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=sink,
                stderr=sink,
            )
        client = HttpClient("peer-poster", base_url=f"http://127.0.0.1:{port}", timeout=60.0)
        router = AlertmanagerRouter(proc, client, log, port)
        await _guarded_start(router, "/-/ready", timeout)
        return router


async def _guarded_start(router: Router, path: str, timeout: float) -> None:
    try:
        await _wait_answering(router, path, timeout)
    except BaseException:
        await router.stop()
        raise


# -- posting and measuring ------------------------------------------------------------------------


@dataclass
class Tally:
    """What one router run posted, and when."""

    posted: dict[str, float] = field(default_factory=dict)
    """Accepted events and the start of their post (``perf_counter``)."""
    refused: int = 0
    """Events the router did not accept (an error status or no answer, twice)."""


async def _post(router: Router, ids: Sequence[str], tally: Tally) -> None:
    at = time.perf_counter()
    for attempt in (1, 2):  # an event id makes a repeat harmless on both routers
        try:
            accepted = await router.post(ids)
        except TransportError:
            if attempt == 2:
                tally.refused += len(ids)
            continue
        tally.refused += len(ids) - accepted
        if accepted:
            for event_id in ids:
                tally.posted[event_id] = at
        return


async def _paced(
    router: Router, chunks: Sequence[Sequence[str]], rate: float, tally: Tally
) -> float:
    """Post one chunk per ``1 / rate`` seconds, open loop; the seconds it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = []
    for index, chunk in enumerate(chunks):
        delay = start + index / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_post(router, chunk, tally)))
    await asyncio.gather(*tasks)
    return loop.time() - start


async def _drained(sink: PeerSink, ids: Sequence[str], timeout: float) -> bool:
    """Wait until every one of ``ids`` has arrived (at most ``timeout`` s)."""
    pending = [event_id for event_id in ids if event_id not in sink.arrivals]
    deadline = time.perf_counter() + timeout
    while pending:
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(0.01)
        pending = [event_id for event_id in pending if event_id not in sink.arrivals]
    return True


def _latencies_ms(sink: PeerSink, tally: Tally, ids: Sequence[str]) -> list[float]:
    return [
        (sink.arrivals[i] - tally.posted[i]) * 1000
        for i in ids
        if i in sink.arrivals and i in tally.posted
    ]


def _round3(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _ids(tag: str, count: int) -> list[str]:
    return [f"{tag}-{index}" for index in range(count)]


async def _warm_up(router: Router, rig: Rig, tally: Tally, tag: str, timeout: float) -> None:
    ids = _ids(f"{tag}-warm", _WARMUP_EVENTS)
    await _paced(router, [[i] for i in ids], 50.0, tally)
    if not await _drained(rig.sink, ids, timeout):
        raise RuntimeError(f"{router.name}: the warm-up was not delivered: {router.log_tail()}")


async def _load(
    router: Router,
    rig: Rig,
    tally: Tally,
    ids: list[str],
    chunks: Sequence[Sequence[str]],
    rate: float | None,
    timeout: float,
) -> dict[str, Any]:
    """Post (paced at ``rate``, or all at once), wait for delivery; what it cost and took."""
    calls0 = rig.sink.calls
    cpu0, own0, start = router.cpu_seconds(), time.process_time(), time.perf_counter()
    if rate is None:
        await asyncio.gather(*(_post(router, chunk, tally) for chunk in chunks))
    else:
        await _paced(router, chunks, rate, tally)
    posting = time.perf_counter() - start
    posted = [i for i in ids if i in tally.posted]
    await _drained(rig.sink, posted, timeout)
    end = time.perf_counter()
    cpu = router.cpu_seconds() - cpu0
    own = time.process_time() - own0
    arrived = [rig.sink.arrivals[i] for i in posted if i in rig.sink.arrivals]
    latencies = _latencies_ms(rig.sink, tally, posted)
    return {
        "events": len(ids),
        "posted": len(posted),
        "delivered": len(arrived),
        "calls": rig.sink.calls - calls0,
        "post_s": round(posting, 3),
        "all_delivered_s": _round3(max(arrived) - start) if arrived else None,
        "p50_ms": _round3(percentile(latencies, 0.5)),
        "p99_ms": _round3(percentile(latencies, 0.99)),
        "cpu_s": round(cpu, 3),
        "cpu_per_1000_s": round(cpu / len(arrived) * 1000, 3) if arrived else None,
        "bench_cpu_share": round(own / max(end - start, 1e-9), 3),
    }


def _settle(rig: Rig, router: Router, tally: Tally) -> dict[str, int]:
    ids = set(tally.posted)
    return {
        "lost": rig.sink.missing(ids),
        "doubled": rig.sink.doubled(ids),
        "refused_posts": tally.refused,
    }


async def measure_loads(rig: Rig, side: str, sizes: PeerSizes, tag: str) -> dict[str, Any]:
    """One load round of ``side``: warm-up, idle RSS, paced loads, burst, peak RSS."""
    router = await rig.start(side)
    tally = Tally()
    try:
        await _warm_up(router, rig, tally, tag, sizes.drain_timeout)
        await asyncio.sleep(1.0)
        idle_rss = router.rss_mb()
        paced = {}
        for rate in sizes.rates:
            ids = _ids(f"{tag}-at{rate:g}", round(rate * sizes.paced_seconds))
            paced[f"{rate:g}"] = {
                "rate": rate,
                **await _load(
                    router, rig, tally, ids, [[i] for i in ids], rate, sizes.drain_timeout
                ),
            }
            await asyncio.sleep(1.0)
        ids = _ids(f"{tag}-burst", sizes.burst)
        chunks = [ids[i : i + sizes.batch] for i in range(0, len(ids), sizes.batch)]
        burst = await _load(router, rig, tally, ids, chunks, None, sizes.drain_timeout)
        peak_rss = router.peak_rss_mb()
        await asyncio.sleep(1.0)  # a late repeat would still be counted
        return {
            "side": side,
            "rss_idle_mb": round(idle_rss, 1),
            "rss_peak_mb": round(peak_rss, 1),
            "paced": paced,
            "burst": burst,
            **_settle(rig, router, tally),
        }
    finally:
        await router.stop()


async def measure_503(rig: Rig, side: str, sizes: PeerSizes, tag: str) -> dict[str, Any]:
    """The sink answers 503 to the first requests while events are posted at a pace."""
    router = await rig.start(side)
    tally = Tally()
    try:
        await _warm_up(router, rig, tally, tag, sizes.drain_timeout)
        refused0 = rig.sink.refused
        rig.sink.fail_next(sizes.fail_requests)
        ids = _ids(f"{tag}-503", sizes.fault_events)
        start = time.perf_counter()
        await _paced(router, [[i] for i in ids], sizes.fault_rate, tally)
        posted = [i for i in ids if i in tally.posted]
        await _drained(rig.sink, posted, sizes.fault_timeout)
        arrived = [rig.sink.arrivals[i] for i in posted if i in rig.sink.arrivals]
        last_503 = rig.sink.last_refused_at
        before = [i for i in posted if last_503 is not None and tally.posted[i] <= last_503]
        before_arrived = [rig.sink.arrivals[i] for i in before if i in rig.sink.arrivals]
        complete = len(arrived) == len(posted)
        after_last = None
        if last_503 is not None and len(before_arrived) == len(before):
            after_last = max([*before_arrived, last_503]) - last_503
        await asyncio.sleep(1.0)
        return {
            "side": side,
            "events": len(ids),
            "delivered": len(arrived),
            "refused_calls": rig.sink.refused - refused0,
            "last_503_s": _round3(None if last_503 is None else last_503 - start),
            "all_delivered_s": _round3(max(arrived) - start) if complete and arrived else None,
            "after_last_503_s": _round3(after_last),
            "posted_before_last_503": len(before),
            **_settle(rig, router, tally),
        }
    finally:
        rig.sink.clear_faults()
        await router.stop()


async def measure_down(rig: Rig, side: str, sizes: PeerSizes, tag: str) -> dict[str, Any]:
    """The sink stops listening for a while as events keep coming at a pace."""
    router = await rig.start(side)
    tally = Tally()
    marks: dict[str, float] = {}
    try:
        await _warm_up(router, rig, tally, tag, sizes.drain_timeout)
        total = sizes.down_seconds + 2 * sizes.around_down_seconds
        ids = _ids(f"{tag}-down", round(sizes.fault_rate * total))

        async def outage() -> None:
            await asyncio.sleep(sizes.around_down_seconds)
            marks["down"] = time.perf_counter()
            await rig.sink_server.down()
            await asyncio.sleep(max(0.0, marks["down"] + sizes.down_seconds - time.perf_counter()))
            await rig.sink_server.up()
            marks["up"] = time.perf_counter()

        try:
            await asyncio.gather(
                _paced(router, [[i] for i in ids], sizes.fault_rate, tally), outage()
            )
        finally:
            await rig.sink_server.up()
        posted = [i for i in ids if i in tally.posted]
        await _drained(rig.sink, posted, sizes.fault_timeout)
        down_at, up_at = marks["down"], marks["up"]
        while_down = [i for i in posted if down_at <= tally.posted[i] < up_at]
        after = [i for i in posted if tally.posted[i] >= up_at]
        arrivals = rig.sink.arrivals
        down_arrived = [arrivals[i] for i in while_down if i in arrivals]
        after_return = [arrivals[i] for i in posted if i in arrivals and arrivals[i] >= up_at]
        drained = len(down_arrived) == len(while_down)
        latencies = _latencies_ms(rig.sink, tally, after)
        await asyncio.sleep(1.0)
        return {
            "side": side,
            "events": len(ids),
            "down_s": round(up_at - down_at, 3),
            "posted_while_down": len(while_down),
            "drain_after_return_s": _round3(max(down_arrived) - up_at)
            if drained and down_arrived
            else None,
            "first_delivery_after_return_s": _round3(min(after_return) - up_at)
            if after_return
            else None,
            "after_return_p50_ms": _round3(percentile(latencies, 0.5)) if latencies else None,
            **_settle(rig, router, tally),
        }
    finally:
        await router.stop()


# -- figures --------------------------------------------------------------------------------------


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 4) if present else None


def _flat(run: Mapping[str, Any]) -> dict[str, float | None]:
    """One round's figures by name (the names the scenario reports)."""
    out: dict[str, float | None] = {}
    if "paced" in run:
        for rate, row in run["paced"].items():
            for key in ("p50_ms", "p99_ms", "cpu_per_1000_s", "calls"):
                out[f"at_{rate}_per_s.{key}"] = row.get(key)
        out["burst.all_delivered_s"] = run["burst"].get("all_delivered_s")
        out["burst.calls"] = run["burst"].get("calls")
        out["burst.p50_ms"] = run["burst"].get("p50_ms")
        out["rss_idle_mb"] = run.get("rss_idle_mb")
        out["rss_peak_mb"] = run.get("rss_peak_mb")
    if "refused_calls" in run:
        out["fault_503.all_delivered_s"] = run.get("all_delivered_s")
        out["fault_503.after_last_503_s"] = run.get("after_last_503_s")
    if "posted_while_down" in run:
        for key in (
            "drain_after_return_s",
            "first_delivery_after_return_s",
            "after_return_p50_ms",
        ):
            out[f"sink_down.{key}"] = run.get(key)
    return out


_UNITS: Final = ("_ms", "_s", "_mb")


def _unitless(name: str) -> str:
    for unit in _UNITS:
        if name.endswith(unit):
            return name.removesuffix(unit)
    return name


def ratio(console: float | None, alertmanager: float | None) -> float | None:
    """``console / alertmanager`` (None when either is missing or the divisor is 0)."""
    if console is None or alertmanager is None or alertmanager <= 0:
        return None
    return round(console / alertmanager, 3)


def summarise(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Medians per side of every figure over the rounds, and the console/AM ratios."""
    medians: dict[str, dict[str, float | None]] = {}
    for side in SIDES:
        values: dict[str, list[float | None]] = {}
        for run in runs:
            if run.get("side") == side:
                for name, value in _flat(run).items():
                    values.setdefault(name, []).append(value)
        if values:
            medians[side] = {name: _median(v) for name, v in sorted(values.items())}
    ratios: dict[str, float | None] = {}
    if CONSOLE in medians and ALERTMANAGER in medians:
        for name, value in medians[CONSOLE].items():
            ratios[_unitless(name)] = ratio(value, medians[ALERTMANAGER].get(name))
    console = [run for run in runs if run.get("side") == CONSOLE]
    peer = [run for run in runs if run.get("side") == ALERTMANAGER]
    return {
        "medians": medians,
        "console_over_am": ratios,
        # The console's: any of them fails the run. Alertmanager's are reported beside them
        # (its own behaviour, e.g. an alert notified twice, is not the console's failure).
        "lost": sum(int(run.get("lost", 0)) for run in console),
        "doubled": sum(int(run.get("doubled", 0)) for run in console),
        "refused_posts": sum(int(run.get("refused_posts", 0)) for run in console),
        "alertmanager_lost": sum(int(run.get("lost", 0)) for run in peer),
        "alertmanager_doubled": sum(int(run.get("doubled", 0)) for run in peer),
    }


def figures_of(summary: Mapping[str, Any]) -> dict[str, float]:
    """The flat figures (``console.*``, ``alertmanager.*``, ``console_over_am.*``)."""
    out: dict[str, float] = {}
    for side, values in (summary.get("medians") or {}).items():
        for name, value in values.items():
            if value is not None:
                out[f"{side}.{name}"] = value
    for name, value in (summary.get("console_over_am") or {}).items():
        if value is not None:
            out[f"console_over_am.{name}"] = value
    return out


BUDGET: Final[tuple[tuple[str, Literal["higher", "lower"], float], ...]] = (
    ("console_over_am.at_50_per_s.p50", "lower", 1.0),
    ("console_over_am.at_50_per_s.p99", "lower", 1.5),
    ("console_over_am.at_200_per_s.p50", "lower", 1.0),
    ("console_over_am.at_200_per_s.p99", "lower", 1.5),
    ("console_over_am.at_50_per_s.cpu_per_1000", "lower", 2.0),
    ("console_over_am.at_200_per_s.cpu_per_1000", "lower", 2.0),
    ("console_over_am.burst.all_delivered", "lower", 1.0),
    ("console_over_am.fault_503.all_delivered", "lower", 2.0),
    ("console.sink_down.first_delivery_after_return_s", "lower", 2.0),
    ("console_over_am.rss_peak", "lower", 1.0),
    ("console_over_am.rss_idle", "lower", 1.5),
)
"""Issue 24's budget: figure (``peer.`` prefixed in the suite), which way is better, limit.
Nothing lost or doubled is a failure of its own (the suite's ``problems_of``)."""


IMPORT_LAYERS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("the interpreter", ()),
    (
        "+ the required packages a headless console loads",
        ("pydantic_settings", "httpx", "httpx_sse", "websockets", "watchfiles", "cachetools"),
    ),
    (
        "+ the HTTP server and the metrics",
        ("uvicorn", "starlette.applications", "prometheus_client", "orjson"),
    ),
    ("+ httptools (the Discord post's answers, the server's requests)", ("httptools",)),
    ("+ the engine's own code", ("wanderer_console.runtime", "wanderer_console.cli")),
)
"""What a headless console's process is made of before it runs: each layer imported on top of
the ones above it (Textual and plotext are the console's, never loaded by ``--no-ui``)."""

_RSS_PROBE: Final = (
    "import sys\n"
    "for line in open('/proc/self/status'):\n"
    "    if line.startswith('VmRSS:'):\n"
    "        print(int(line.split()[1]) / 1024)\n"
)


def import_floor(python: str = sys.executable) -> list[dict[str, Any]]:
    """The RSS of a fresh ``python`` after importing each of :data:`IMPORT_LAYERS` and those
    above it (one process per layer): the memory no engine setting can give back."""
    modules: list[str] = []
    rows: list[dict[str, Any]] = []
    for label, layer in IMPORT_LAYERS:
        modules += layer
        code = "".join(f"import {name}\n" for name in modules) + _RSS_PROBE
        done = subprocess.run(
            [python, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            env=_clean_env(),
        )
        rows.append({"layer": label, "modules": list(layer), "rss_mb": float(done.stdout)})
    return rows


def floor_lines(result: Mapping[str, Any]) -> list[str]:
    """The import floor under the table, against Alertmanager's idle RSS and the budget."""
    rows = result.get("import_floor") or []
    if not rows:
        return []
    idle = ((result.get("summary") or {}).get("medians") or {}).get(ALERTMANAGER) or {}
    am = idle.get("rss_idle_mb")
    lines = ["idle memory before any work (a fresh interpreter importing, layer on layer):"]
    for row in rows:
        versus = f" ({row['rss_mb'] / am:.2f}× Alertmanager idle)" if am else ""
        lines.append(f"  {row['rss_mb']:6.1f} MB {row['layer']}{versus}")
    if am:
        lines.append(f"  budget: idle ≤ 1.5 × {am:.1f} MB = {1.5 * am:.1f} MB")
    return lines


def budget_of(figures: Mapping[str, float]) -> list[dict[str, Any]]:
    """Each budget line measured, judged as the suite judges its own (``peer.`` figures)."""
    out: list[dict[str, Any]] = []
    for name, better, limit in BUDGET:
        value = figures.get(name)
        if value is None:
            continue
        met = value >= limit if better == "higher" else value <= limit
        rule = f"{'>=' if better == 'higher' else '<='} {limit:g}"
        out.append({"figure": f"peer.{name}", "rule": rule, "value": value, "met": met})
    return out


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if unit == "ms" and value >= 1000:
        return f"{value / 1000:.2f} s"
    if unit in ("s", "ms"):
        return f"{value:.3g} {unit}" if value < 10 else f"{value:.0f} {unit}"
    if unit == "MB":
        return f"{value:.0f} MB"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _x(value: float | None) -> str:
    return "—" if value is None else f"{value:.2g}×" if value < 10 else f"{value:.0f}×"


_ROWS: Final[tuple[tuple[str, tuple[str, ...], tuple[str, ...], str], ...]] = (
    (
        "paced 50/s: p50 / p99 latency",
        ("at_50_per_s.p50_ms", "at_50_per_s.p99_ms"),
        ("ms", "ms"),
        " / ",
    ),
    (
        "paced 200/s: p50 / p99 latency",
        ("at_200_per_s.p50_ms", "at_200_per_s.p99_ms"),
        ("ms", "ms"),
        " / ",
    ),
    (
        "CPU seconds per 1,000 deliveries (paced 50/s; 200/s)",
        ("at_50_per_s.cpu_per_1000_s", "at_200_per_s.cpu_per_1000_s"),
        ("", ""),
        "; ",
    ),
    (
        "burst of 5,000 (batches of 50): time until all delivered; p50",
        ("burst.all_delivered_s", "burst.p50_ms"),
        ("s", "ms"),
        "; ",
    ),
    (
        "sink answers 503 to the first requests: time until all delivered; from the last 503"
        " until everything posted before it is delivered",
        ("fault_503.all_delivered_s", "fault_503.after_last_503_s"),
        ("s", "s"),
        "; ",
    ),
    (
        "sink down: from its return until everything posted while down is delivered; until"
        " the first delivery; p50 of events posted after it came back",
        (
            "sink_down.drain_after_return_s",
            "sink_down.first_delivery_after_return_s",
            "sink_down.after_return_p50_ms",
        ),
        ("s", "s", "ms"),
        "; ",
    ),
    ("RSS idle; peak in the burst", ("rss_idle_mb", "rss_peak_mb"), ("MB", "MB"), "; "),
    (
        "webhook calls for the events (paced 50/s; 200/s; burst)",
        ("at_50_per_s.calls", "at_200_per_s.calls", "burst.calls"),
        ("", "", ""),
        "; ",
    ),
)


def table_rows(result: Mapping[str, Any]) -> list[list[str]]:
    """The issue's table: figure, console, Alertmanager, console/AM (one list per row)."""
    summary = result.get("summary") or {}
    medians = summary.get("medians") or {}
    ratios = summary.get("console_over_am") or {}
    rows = []
    for label, names, units, sep in _ROWS:
        cells = []
        for side in SIDES:
            values = medians.get(side) or {}
            cells.append(
                sep.join(_fmt(values.get(n), u) for n, u in zip(names, units, strict=True))
            )
        cells.append(sep.join(_x(ratios.get(_unitless(n))) for n in names))
        rows.append([label, *cells])
    return rows


def format_table(result: Mapping[str, Any]) -> str:
    """The table as Markdown, then the budget lines and the losses."""
    sizes = result.get("sizes") or {}
    head = (
        f"| figure (median of {sizes.get('rounds')} rounds; faults {sizes.get('fault_rounds')})"
        f" | console | Alertmanager {result.get('alertmanager_version', '')} | console / AM |"
    )
    lines = [head, "|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(result)]
    pinning = result.get("pinning") or {}
    if pinning.get("router_cpu") is not None:
        lines.append(
            f"poster and sink on CPU {pinning['bench_cpu']}, the router under test on CPU"
            f" {pinning['router_cpu']} (taskset)"
        )
    elif pinning:
        lines.append(f"not pinned: {pinning.get('why_not')}")
    lines += floor_lines(result)
    for line in result.get("budget") or []:
        verdict = "met" if line["met"] else "NOT MET"
        lines.append(f"budget {line['figure']} {line['rule']}: {verdict} ({line['value']:g})")
    summary = result.get("summary") or {}
    lines.append(
        f"console: lost {summary.get('lost', 0)}, doubled {summary.get('doubled', 0)},"
        f" refused posts {summary.get('refused_posts', 0)}; Alertmanager: lost"
        f" {summary.get('alertmanager_lost', 0)}, doubled {summary.get('alertmanager_doubled', 0)}"
    )
    return "\n".join(lines)


# -- the scenario ---------------------------------------------------------------------------------


def _has_proc() -> bool:
    return Path("/proc/self/stat").exists()


def skipped(reason: str) -> dict[str, Any]:
    """The result of a run that could not compare."""
    return {"scenario": "peer", "skipped": reason}


@asynccontextmanager
async def _rig(alertmanager: str | None, pinning: Pinning) -> AsyncIterator[Rig]:
    sink = PeerSink()
    fake_map = FakeMapServer(MAP_SLUG, _MAP_KEY, "5b6f9c3e-2f4b-4c47-9f53-9d5a3c1e8a01")
    with tempfile.TemporaryDirectory(prefix="wc-bench-peer-") as tmp:
        async with SinkServer(sink) as server, AppServer(fake_map.app, on_stop=fake_map.close) as m:
            yield Rig(Path(tmp), sink, server, m.url, pinning, alertmanager)


async def run_peer(
    sizes: PeerSizes = FULL,
    *,
    alertmanager: str | None = None,
    sides: Sequence[str] = SIDES,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every load and fault through each of ``sides`` in alternating rounds; the medians,
    ratios and budget. ``alertmanager``: its executable (default: looked up on the ``PATH``)."""
    alertmanager = alertmanager or find_alertmanager()
    if ALERTMANAGER in sides and alertmanager is None:
        reason = (
            "prometheus-alertmanager is not on the PATH (Debian: apt-get install"
            " prometheus-alertmanager); nothing to compare with"
        )
        if progress is not None:
            progress(f"peer: skipped: {reason}")
        return skipped(reason)
    if not _has_proc():
        return skipped("no /proc: CPU and memory are read from it")
    say = progress or (lambda _text: None)
    pinning = choose_pinning()
    started = time.perf_counter()
    runs: list[dict[str, Any]] = []

    def order(index: int) -> list[str]:
        return list(sides) if index % 2 == 0 else list(reversed(sides))

    with pinning.bench():
        async with _rig(alertmanager, pinning) as rig:
            for index in range(sizes.rounds):
                for side in order(index):
                    say(f"peer: round {index + 1}/{sizes.rounds} loads, {side}")
                    runs.append(await measure_loads(rig, side, sizes, f"r{index}-{side}"))
            for index in range(sizes.fault_rounds):
                for side in order(index):
                    say(f"peer: fault round {index + 1}/{sizes.fault_rounds}, {side}")
                    runs.append(await measure_503(rig, side, sizes, f"f{index}-{side}"))
                    runs.append(await measure_down(rig, side, sizes, f"d{index}-{side}"))
    summary = summarise(runs)
    figures = figures_of(summary)
    result: dict[str, Any] = {
        "scenario": "peer",
        "alertmanager": alertmanager,
        "alertmanager_version": _version(alertmanager) if alertmanager else None,
        "pinning": asdict(pinning),
        "sizes": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(sizes).items()},
        "seconds": round(time.perf_counter() - started, 1),
        "summary": summary,
        "figures": figures,
        "budget": budget_of(figures) if ALERTMANAGER in sides else [],
        "lost": summary["lost"],
        "doubled": summary["doubled"],
        "refused_posts": summary["refused_posts"],
        "runs": runs,
        "import_floor": import_floor(),
    }
    print(format_table(result), file=sys.stderr, flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line entry: print the JSON result (and write it with ``--json``)."""
    parser = argparse.ArgumentParser(prog="python -m wanderer_console.bench.peer")
    parser.add_argument("--quick", action="store_true", help="2 load rounds, 1 fault round")
    parser.add_argument("--json", type=Path, metavar="PATH")
    args = parser.parse_args(argv)

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    result = asyncio.run(run_peer(QUICK if args.quick else FULL, progress=progress))
    text = orjson.dumps(result, option=orjson.OPT_SORT_KEYS).decode()
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 1 if result.get("lost") or result.get("doubled") or result.get("refused_posts") else 0


if __name__ == "__main__":
    sys.exit(main())
