"""What the enrichment cache reports: counters per namespace, latency samples, most-missed keys.

The counters feed the runtime snapshot (the console's cache panel) and, when a registry is given,
are mirrored into Prometheus (``wc_cache_*``). The most-missed keys say what to warm or keep
longer (:meth:`CacheTelemetry.insights`).
"""

from __future__ import annotations

import time
from collections import Counter as TallyCounter
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["CacheTelemetry", "NamespaceStats"]

_LATENCY_SAMPLES = 4096
_MISSED_KEYS_CAP = 20_000


@dataclass(slots=True)
class NamespaceStats:
    """One namespace's counters and its latest latency samples (seconds)."""

    hits: int = 0
    misses: int = 0
    loads: int = 0
    load_errors: int = 0
    coalesced: int = 0
    evictions: int = 0
    expirations: int = 0
    invalidations: int = 0
    hit_latency: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCY_SAMPLES))
    miss_latency: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCY_SAMPLES))

    @property
    def hit_ratio(self) -> float:
        """Hits over look-ups (0 before the first)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


def _percentile(samples: Iterable[float], q: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


class _Prometheus:
    def __init__(self, registry: CollectorRegistry) -> None:
        label = ["namespace"]
        self.hits = Counter("wc_cache_hits", "Enrichment cache hits", label, registry=registry)
        self.misses = Counter(
            "wc_cache_misses", "Enrichment cache misses", label, registry=registry
        )
        self.evictions = Counter(
            "wc_cache_evictions", "Entries evicted for size", label, registry=registry
        )
        self.expirations = Counter(
            "wc_cache_expirations", "Entries dropped at their TTL", label, registry=registry
        )
        self.load_errors = Counter(
            "wc_cache_load_errors", "Loader (ESI) failures on a miss", label, registry=registry
        )
        self.size = Gauge("wc_cache_size", "Entries per namespace", label, registry=registry)
        self.latency = Histogram(
            "wc_cache_latency_seconds",
            "Cache operation latency (hits and loads)",
            ["namespace", "result"],
            buckets=(1e-6, 5e-6, 2e-5, 1e-4, 1e-3, 0.01, 0.05, 0.25, 1.0, 5.0),
            registry=registry,
        )


class CacheTelemetry:
    """Counts what the cache does, per namespace; mirrors it into ``registry`` when given."""

    def __init__(
        self, namespaces: Iterable[str], registry: CollectorRegistry | None = None
    ) -> None:
        self.namespaces: dict[str, NamespaceStats] = {ns: NamespaceStats() for ns in namespaces}
        self._prom = _Prometheus(registry) if registry is not None else None
        self._missed: TallyCounter[tuple[str, int]] = TallyCounter()

    def size_from(self, ns: str, read: Callable[[], int]) -> None:
        """``wc_cache_size{namespace}`` reads ``read()`` when scraped."""
        if self._prom is not None:
            self._prom.size.labels(namespace=ns).set_function(read)

    def hit(self, ns: str, started: float) -> None:
        """A look-up answered from the cache (``started``: its ``perf_counter``)."""
        elapsed = time.perf_counter() - started
        stats = self.namespaces[ns]
        stats.hits += 1
        stats.hit_latency.append(elapsed)
        if self._prom is not None:
            self._prom.hits.labels(namespace=ns).inc()
            self._prom.latency.labels(namespace=ns, result="hit").observe(elapsed)

    def peeked(self, ns: str, count: int) -> None:
        """``count`` look-ups answered by a synchronous peek (no latency is kept for them)."""
        self.namespaces[ns].hits += count
        if self._prom is not None:
            self._prom.hits.labels(namespace=ns).inc(count)

    def miss(self, ns: str, entity_id: int) -> None:
        """A look-up the cache could not answer (the key is remembered for insights)."""
        self.namespaces[ns].misses += 1
        missed = self._missed
        missed[(ns, entity_id)] += 1
        if len(missed) > _MISSED_KEYS_CAP:
            # Keep the most-missed half; the tail is noise for insights.
            self._missed = TallyCounter(dict(missed.most_common(_MISSED_KEYS_CAP // 2)))
        if self._prom is not None:
            self._prom.misses.labels(namespace=ns).inc()

    def load_started(self, ns: str) -> None:
        """The loader (ESI) was called for this namespace."""
        self.namespaces[ns].loads += 1

    def load_failed(self, ns: str) -> None:
        """The loader gave no usable answer."""
        self.namespaces[ns].load_errors += 1
        if self._prom is not None:
            self._prom.load_errors.labels(namespace=ns).inc()

    def load_finished(self, ns: str, started: float) -> None:
        """A load ended, answered or not (``started``: its ``perf_counter``)."""
        elapsed = time.perf_counter() - started
        self.namespaces[ns].miss_latency.append(elapsed)
        if self._prom is not None:
            self._prom.latency.labels(namespace=ns, result="miss").observe(elapsed)

    def coalesced(self, ns: str) -> None:
        """A miss joined a load already in flight for the same key."""
        self.namespaces[ns].coalesced += 1

    def evicted(self, ns: str) -> None:
        """An entry was dropped to make room."""
        self.namespaces[ns].evictions += 1
        if self._prom is not None:
            self._prom.evictions.labels(namespace=ns).inc()

    def expired(self, ns: str, count: int) -> None:
        """``count`` entries were dropped at their TTL."""
        self.namespaces[ns].expirations += count
        if self._prom is not None:
            self._prom.expirations.labels(namespace=ns).inc(count)

    def invalidated(self, ns: str, count: int) -> None:
        """``count`` entries were dropped by a version bump."""
        self.namespaces[ns].invalidations += count

    def report(self, sizes: Mapping[str, tuple[int, int]]) -> dict[str, Any]:
        """Per namespace and in total; ``sizes`` maps a namespace to ``(size, maxsize)``."""
        namespaces: dict[str, Any] = {}
        hits = misses = 0
        for ns, st in self.namespaces.items():
            hits += st.hits
            misses += st.misses
            size, maxsize = sizes[ns]
            namespaces[ns] = {
                "hits": st.hits,
                "misses": st.misses,
                "hit_ratio": round(st.hit_ratio, 4),
                "loads": st.loads,
                "load_errors": st.load_errors,
                "coalesced": st.coalesced,
                "evictions": st.evictions,
                "expirations": st.expirations,
                "invalidations": st.invalidations,
                "size": size,
                "maxsize": maxsize,
                "latency_us": {
                    "hit_p50": round(_percentile(st.hit_latency, 0.5) * 1e6, 2),
                    "hit_p99": round(_percentile(st.hit_latency, 0.99) * 1e6, 2),
                    "load_p50": round(_percentile(st.miss_latency, 0.5) * 1e6, 2),
                    "load_p99": round(_percentile(st.miss_latency, 0.99) * 1e6, 2),
                },
            }
        return {
            "namespaces": namespaces,
            "hits": hits,
            "misses": misses,
            "hit_ratio": round(hits / (hits + misses), 4) if hits + misses else 0.0,
        }

    def insights(self, top: int = 10) -> dict[str, Any]:
        """Hit ratio per namespace and the most-missed keys (what to warm or cache longer)."""
        return {
            "hit_ratio": {ns: round(st.hit_ratio, 4) for ns, st in self.namespaces.items()},
            "most_missed": [
                {"namespace": ns, "key": key, "misses": count}
                for (ns, key), count in self._missed.most_common(top)
            ],
        }
