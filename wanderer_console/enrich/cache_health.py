"""How healthy the name cache is: a score, what to change, the memory it holds; and the task that
keeps its critical entries (tracked pilots and systems) loaded.

:func:`cache_health` reads the cache's counters and :meth:`~.cache.CacheFacade.insights` (the
most-missed keys) and turns them into a 0-100 score and plain recommendations, for the console's
cache panel and ``/health``. Memory is estimated from a sample of entries per namespace (a deep
``sys.getsizeof`` of a few dozen entries times the entry count): walking all of a 50,000-entry
cache every second would cost more than the figure is worth.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from wanderer_console.enrich.cache import CacheFacade

__all__ = ["CacheHealth", "cache_health", "deep_size", "keep_fresh", "memory_bytes"]

_SAMPLE = 32
"""Entries sized per namespace for the memory estimate."""
_ENTRY_OVERHEAD = 200
"""Bytes per entry held by the cache around its value: the key tuple, the entry object and the
TTL cache's own links (measured with tracemalloc on cachetools 5: ~190 bytes)."""
_MIN_LOOKUPS = 50
"""Look-ups a namespace needs before its hit ratio counts in the score."""


def deep_size(value: Any, seen: set[int] | None = None) -> int:
    """Bytes held by ``value`` and what it contains (dicts, lists, tuples, sets; shared objects
    counted once)."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return 0
    seen.add(id(value))
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in value.items())
    elif isinstance(value, list | tuple | set | frozenset):
        size += sum(deep_size(item, seen) for item in value)
    return size


def memory_bytes(cache: CacheFacade) -> dict[str, int]:
    """Estimated bytes per namespace (``total`` too): the mean size of a sample of values times
    the entry count, plus the per-entry overhead."""
    out: dict[str, int] = {}
    for ns, (count, sample) in cache.entry_sample(_SAMPLE).items():
        if not count or not sample:
            out[ns] = 0
            continue
        average = sum(deep_size(value) for value in sample) / len(sample)
        out[ns] = int(count * (average + _ENTRY_OVERHEAD))
    out["total"] = sum(out.values())
    return out


def cache_health(cache: CacheFacade, stats: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score (0-100), recommendations and memory of ``cache``.

    The score starts at 100 and loses, per namespace with enough look-ups, what its hit ratio
    misses of 95 % (weighted by its share of look-ups, up to 50 points), up to 20 points for
    loader failures, up to 20 for evictions (the cache is too small), and 10 while pinned
    (critical) entries are missing.
    """
    stats = stats if stats is not None else cache.stats()
    insights = cache.insights(top=5)
    namespaces: dict[str, Any] = stats["namespaces"]
    lookups = {ns: v["hits"] + v["misses"] for ns, v in namespaces.items()}
    total = sum(lookups.values())
    recommendations: list[str] = []
    score = 100.0
    for ns, figures in namespaces.items():
        looked = lookups[ns]
        if looked < _MIN_LOOKUPS:
            continue
        ratio = figures["hit_ratio"]
        if ratio < 0.95:
            score -= 50.0 * (looked / total) * min(1.0, (0.95 - ratio) / 0.95) * 2
            if figures["evictions"] and figures["size"] >= figures["maxsize"]:
                recommendations.append(
                    f"{ns}: hit ratio {ratio:.0%} with {figures['evictions']} evictions at its"
                    f" {figures['maxsize']}-entry cap: raise [esi] cache_entries"
                )
            elif figures["expirations"] > figures["hits"] // 10:
                recommendations.append(
                    f"{ns}: hit ratio {ratio:.0%}, {figures['expirations']} entries expired before"
                    " their next use: lower [cache] refresh_ahead_seconds' gap or pin them"
                )
            else:
                recommendations.append(
                    f"{ns}: hit ratio {ratio:.0%}: first sightings dominate; warming at map load"
                    " ([cache] warm_on_load) covers the tracked ones"
                )
    errors = sum(v["load_errors"] for v in namespaces.values())
    loads = sum(v["loads"] for v in namespaces.values())
    if loads and errors:
        score -= min(20.0, 20.0 * errors / loads * 5)
        recommendations.append(
            f"ESI failed {errors} of {loads} loads: see the esi breaker and the ESI status"
        )
    evictions = sum(v["evictions"] for v in namespaces.values())
    if total and evictions:
        score -= min(20.0, 20.0 * evictions / total * 5)
    pinned = cache.pinned()
    wanted = cache.pinned_wanted()
    missing = sum(wanted.values()) - sum(pinned.values())
    if missing > 0:
        score -= 10.0
        recommendations.append(
            f"{missing} tracked entries are not loaded yet (warming, or ESI does not answer)"
        )
    missed = [m for m in insights["most_missed"] if m["misses"] >= 3]
    if missed:
        keys = ", ".join(f"{m['namespace']} {m['key']} ({m['misses']}×)" for m in missed)
        recommendations.append(f"most missed: {keys}: kept too briefly, or never warmed")
    return {
        "score": max(0, min(100, round(score))),
        "recommendations": recommendations,
        "memory_bytes": memory_bytes(cache),
        "pinned": pinned,
        "most_missed": insights["most_missed"],
    }


class CacheHealth:
    """:func:`cache_health` for the snapshot, computed at most every ``every`` seconds."""

    def __init__(self, cache: CacheFacade, *, every: float = 5.0) -> None:
        self._cache = cache
        self._every = every
        self._at = float("-inf")
        self._last: dict[str, Any] = {}

    def read(self, stats: dict[str, Any] | None = None) -> dict[str, Any]:
        """The latest health (recomputed when older than ``every``)."""
        now = time.monotonic()
        if now - self._at >= self._every:
            self._last = cache_health(self._cache, stats)
            self._at = now
        return self._last


async def keep_fresh(
    cache: CacheFacade,
    tracked: Callable[[], tuple[Iterable[int], Iterable[int]]],
    settings: Callable[[], Any],
) -> None:
    """Pin the tracked pilots and systems, and reload them before they expire (a supervised
    task). ``settings()`` is the running ``[cache]`` section (read at every round)."""
    while True:
        current = settings()
        if current.pin_tracked:
            characters, systems = tracked()
            cache.pin("name", characters)  # a pilot's name is what its notifications show
            cache.pin("system", systems)
            if cache.loader is not None:
                await cache.refresh_pinned(current.refresh_ahead_seconds)
        else:
            cache.pin("name", ())
            cache.pin("system", ())
        await asyncio.sleep(current.refresh_interval_seconds)
