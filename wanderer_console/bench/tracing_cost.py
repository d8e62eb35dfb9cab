"""What tracing costs the pipeline's hot path: off (the default) and on at 10 % sampling.

The hot path measured is the pipeline's own work on kills, in this process: a kill item made
as a source makes it (with its source span while tracing is on), then the engine's dedup, rules
and rendering, and the batched write of the events and their outbox rows (256 a transaction, as
the pipeline worker takes them) into a real SQLite store. Killmails are parsed beforehand (that
cost has nothing to do with tracing) and every kill is in a tracked system, so each one is
decided, rendered and written with a notification.

Three modes run in every round, one after the other in a rotating order, each on fresh kills
(one pipeline batch, 256, per mode and round: short rounds, so the three are measured within a
few tens of milliseconds of each other on a VM whose speed drifts):

* ``baseline``: the hot path without the tracing seam: the helpers the pipeline calls
  (``tracing.span``, ``current_traceparent``, ``start_spans``, ``enabled``) are replaced by
  C-level callables returning the same constants, so no Python frame runs for them; what is
  left is the code that would run if the seam did not exist;
* ``off``: as shipped, tracing not configured (also what runs without the ``otel`` extra: the
  opentelemetry packages are imported only when tracing is enabled);
* ``on_10pct``: tracing configured with ``sampling_ratio = 0.1``: each kill's source span is
  started and one kill in ten (by trace id) is recorded with all its spans; the other nine go
  on untraced, as with tracing off. Spans are handed to a span processor whose exporter drops
  them (the export itself runs elsewhere: OTLP's batch processor
  sends from its own thread).

Each mode's figure is the median of its per-kill time over the rounds, and each ratio is the
median of the per-round ratios to that round's baseline, so a change in the machine's speed
between rounds cancels out. ``seam_ns_per_call`` times the seam's most frequent call (a
``with tracing.span(...)`` block, three per kill) off and stubbed, in isolation.

Run: ``python -m wanderer_console.bench.tracing_cost [--quick] [--json PATH]`` or
``wanderer-console bench --only tracing``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from wanderer_console.config.model import Settings
from wanderer_console.domain.killmail import Killmail
from wanderer_console.domain.tracking import TrackedSystem, TrackingIndex
from wanderer_console.ingest.items import Item, KillItem
from wanderer_console.pipeline.engine import Engine
from wanderer_console.store.backends import open_store
from wanderer_console.telemetry import tracing
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["MODES", "main", "run_tracing_bench"]

MODES = ("baseline", "off", "on_10pct")
_SYSTEM = 31000005
_BATCH = 256
_FIRST_ID = 900_000_000


class _Discard:
    """A span exporter that drops what it is given (the export is not the hot path's cost)."""

    def export(self, spans: object) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered."""
        return True


_NOOP = tracing.NOOP_SPAN
_STUBS: dict[str, Any] = {
    # Same answers as the seam gives while off, from C-level callables (no Python frame).
    "span": {"dedup": _NOOP, "rules": _NOOP, "enrich": _NOOP}.__getitem__,
    "current_traceparent": itertools.repeat(None).__next__,
    "enabled": itertools.repeat(False).__next__,
    # (name, parents) -> None: the name is a key mapped to None, so ``parents`` (the default)
    # is never answered.
    "start_spans": dict.fromkeys(("outbox.write", "discord.send")).get,
}


@contextlib.contextmanager
def _stubbed() -> Iterator[None]:
    """The seam's helpers replaced by constant-returning C callables (the baseline)."""
    saved = {name: getattr(tracing, name) for name in _STUBS}
    for name, stub in _STUBS.items():
        setattr(tracing, name, stub)
    try:
        yield
    finally:
        for name, original in saved.items():
            setattr(tracing, name, original)


def _settings() -> Settings:
    return Settings.model_validate(
        {
            "console": {"startup_suppression_seconds": 0},
            "maps": {
                "home": {
                    "url": "http://127.0.0.1:9",
                    "api_key": "k",
                    "discord": {"webhook_url": "https://discord.com/api/webhooks/1/bench"},
                }
            },
        }
    )


def _killmails(first: int, count: int) -> list[tuple[Killmail, str]]:
    now = datetime.now(UTC).isoformat()
    out = []
    for killmail_id in range(first, first + count):
        raw = {
            "killmail_id": killmail_id,
            "system_id": _SYSTEM,
            "kill_time": now,
            "victim": {
                "character_id": 2112000001,
                "corporation_id": 98000001,
                "ship_type_id": 587,
                "damage_taken": 1200,
                "character_name": "Victim",
                "corporation_name": "Corp",
                "ship_name": "Rifter",
            },
            "attackers": [
                {
                    "character_id": 2112000002,
                    "corporation_id": 98000002,
                    "ship_type_id": 11377,
                    "final_blow": True,
                    "character_name": "Attacker",
                    "corporation_name": "Other",
                    "ship_name": "Nemesis",
                }
            ],
            "zkb": {"totalValue": 12_000_000.0},
        }
        out.append((Killmail.from_wire(raw), orjson.dumps(raw).decode()))
    return out


async def _run_mode(engine: Engine, kills: list[tuple[Killmail, str]]) -> float:
    """Seconds for the hot path over ``kills``: items made as the killstream makes them, then
    decided and written in batches."""
    started = time.perf_counter()
    for start in range(0, len(kills), _BATCH):
        items: list[Item] = []
        for km, raw in kills[start : start + _BATCH]:
            trace = None
            if tracing.enabled():
                attributes: dict[str, str | int] = {
                    "killmail.id": km.killmail_id,
                    "source": "killstream",
                }
                trace = tracing.source_span("killstream.kill", attributes)
            items.append(KillItem(km, raw, "killstream", trace_parent=trace))
        await engine.process_batch(items)
    return time.perf_counter() - started


def _seam_ns(calls: int = 200_000) -> dict[str, float]:
    """Nanoseconds per ``with tracing.span(...)`` block: as shipped (off) and stubbed."""

    def timed() -> float:
        span = tracing.span
        started = time.perf_counter()
        for _ in range(calls):
            with span("dedup"):
                pass
        return (time.perf_counter() - started) / calls * 1e9

    off = min(timed() for _ in range(3))
    with _stubbed():
        stubbed = min(timed() for _ in range(3))
    return {"off": round(off, 1), "baseline": round(stubbed, 1)}


async def run_tracing_bench(kills: int = 256, rounds: int = 80) -> dict[str, Any]:
    """The hot path's per-kill time in each mode, and each mode's ratio to the baseline."""
    tracing.shutdown()
    otel = tracing.configure(enabled=True, sampling_ratio=0.1, span_exporter=_Discard())
    tracing.shutdown()
    modes = MODES if otel is None else MODES[:2]
    per_kill: dict[str, list[float]] = {mode: [] for mode in modes}
    ratios: dict[str, list[float]] = {mode: [] for mode in modes if mode != "baseline"}
    sampled = 0
    with tempfile.TemporaryDirectory(prefix="wc-bench-tracing-") as tmp:
        db = Path(tmp) / "console.db"
        store = open_store(db)
        try:
            index = TrackingIndex()
            index.replace("home", [TrackedSystem(_SYSTEM, "J100001")], [])
            engine = Engine(_settings(), store, index, Metrics())
            next_id = _FIRST_ID
            warm = _killmails(next_id, 1000)
            next_id += len(warm)
            await _run_mode(engine, warm)
            for round_number in range(rounds):
                order = modes[round_number % len(modes) :] + modes[: round_number % len(modes)]
                times: dict[str, float] = {}
                for mode in order:
                    batch = _killmails(next_id, kills)
                    next_id += kills
                    gc.collect()  # a collection the previous mode left due lands in neither
                    if mode == "baseline":
                        with _stubbed():
                            times[mode] = await _run_mode(engine, batch)
                    elif mode == "off":
                        times[mode] = await _run_mode(engine, batch)
                    else:
                        tracing.configure(
                            enabled=True, sampling_ratio=0.1, span_exporter=_Discard()
                        )
                        try:
                            times[mode] = await _run_mode(engine, batch)
                            sampled += _sampled_rows(db, batch)
                        finally:
                            tracing.shutdown()
                for mode, seconds in times.items():
                    per_kill[mode].append(seconds / kills * 1e6)
                for mode in ratios:
                    ratios[mode].append(times[mode] / times["baseline"])
        finally:
            store.close()
    result: dict[str, Any] = {
        "kills_per_round": kills,
        "rounds": rounds,
        "per_kill_us": {m: round(statistics.median(v), 2) for m, v in per_kill.items()},
        "to_baseline_ratio": {m: round(statistics.median(v), 4) for m, v in ratios.items()},
        # The spread of the per-round ratios: how far apart one round's modes can land.
        "to_baseline_quartiles": {
            m: [round(q, 4) for q in statistics.quantiles(v, n=4)[::2]]
            for m, v in ratios.items()
            if len(v) >= 2
        },
        "seam_ns_per_call": _seam_ns(),
    }
    if otel is not None:
        result["on_10pct_skipped"] = otel
    else:
        result["on_10pct_sampled_share"] = round(sampled / (kills * rounds), 4)
    return result


def _sampled_rows(db: Path, kills: list[tuple[Killmail, str]]) -> int:
    """Outbox rows of these kills whose stored trace context is sampled (bit 0 of the flags)."""
    first, last = kills[0][0].killmail_id, kills[-1][0].killmail_id
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT trace_parent FROM outbox WHERE trace_parent IS NOT NULL"
            " AND CAST(substr(dedup_key, 6, 9) AS INTEGER) BETWEEN ? AND ?",
            (first, last),
        ).fetchall()
    return sum(1 for (parent,) in rows if int(str(parent)[-2:], 16) & 1)


def main(argv: list[str] | None = None) -> int:
    """``python -m wanderer_console.bench.tracing_cost``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="256 kills x 24 rounds")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    kills, rounds = (256, 24) if args.quick else (256, 80)
    result = asyncio.run(run_tracing_bench(kills, rounds))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
