"""The console's own Prometheus registry and the counters every layer updates.

One :class:`Metrics` per runtime (tests build their own), never the global default registry, so
two engines in one process never mix their figures.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["DELIVERY_BUCKETS", "Metrics"]

DELIVERY_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
)
"""``wc_delivery_seconds``' bounds, up to an hour: a notification held through a Discord
outage, an open breaker or a restart waits minutes, and past the last bound every percentile
(the trends, ``histogram_quantile``) reads that bound."""


class Metrics:
    """Counters and gauges for ingestion, pipeline and delivery."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events_received = Counter(
            "wc_events_received", "Events accepted from a source", ["source"], registry=r
        )
        self.events_duplicate = Counter(
            "wc_events_duplicate", "Events dropped as already seen", ["source"], registry=r
        )
        self.events_invalid = Counter(
            "wc_events_invalid",
            "Frames or events rejected as malformed",
            ["source", "reason"],
            registry=r,
        )
        self.events_unknown = Counter(
            "wc_events_unknown_type",
            "Events of a type this build does not know",
            ["source"],
            registry=r,
        )
        self.notifications_queued = Counter(
            "wc_notifications_queued", "Notifications written to the outbox", ["type"], registry=r
        )
        self.notifications_delivered = Counter(
            "wc_notifications_delivered",
            "Notifications confirmed by Discord",
            ["type"],
            registry=r,
        )
        self.notifications_filtered = Counter(
            "wc_notifications_filtered",
            "Candidate notifications a rule stopped",
            ["reason"],
            registry=r,
        )
        self.delivery_failures = Counter(
            "wc_delivery_failures", "Failed delivery attempts", ["reason"], registry=r
        )
        self.errors = Counter(
            "wc_errors", "Errors by component (each also logged)", ["component"], registry=r
        )
        self.reconnects = Counter("wc_reconnects", "Source reconnections", ["source"], registry=r)
        self.stream_oversize = Counter(
            "wc_stream_oversize",
            "Stream lines, events or frames over their size limit (skipped, or the socket reset)",
            ["source", "reason"],
            registry=r,
        )
        self.killstream_limit_lowered = Counter(
            "wc_killstream_limit_lowered",
            "Per-socket killstream limits lowered after the server refused a join over its own",
            ["mode"],
            registry=r,
        )
        self.map_stream_gaps = Counter(
            "wc_map_stream_gaps",
            "Map stream resumes past the server's event buffer (events in the gap may be lost)",
            ["source", "reason"],
            registry=r,
        )
        self.targets_disabled = Counter(
            "wc_targets_disabled",
            "Discord targets disabled after 401/403/404 (operator action needed)",
            registry=r,
        )
        # The HTTP surface's defences; every label takes one of a fixed set of values.
        self.server_refusals = Counter(
            "wc_server_refusals",
            "HTTP requests the server refused (ingest API, webhooks, unknown routes)",
            ["endpoint", "reason"],
            registry=r,
        )
        self.server_disconnects = Counter(
            "wc_server_client_disconnects",
            "HTTP clients that went away before their request was read",
            ["endpoint"],
            registry=r,
        )
        self.server_connections_closed = Counter(
            "wc_server_connections_closed",
            "HTTP connections the server closed or refused (timeouts, connection caps)",
            ["reason"],
            registry=r,
        )
        self.server_connections = Gauge(
            "wc_server_connections", "Open HTTP connections to the console's server", registry=r
        )
        self.outbox_pending = Gauge(
            "wc_outbox_pending", "Notifications waiting for delivery", registry=r
        )
        self.delivery_uncertain = Counter(
            "wc_delivery_uncertain",
            "Notifications sent again after a send whose outcome was unknown (a timeout or a "
            "crash mid-request); resend=unprotected may have posted twice, resend=nonce cannot",
            ["target_kind", "resend"],
            registry=r,
        )
        self.targets_dead = Gauge(
            "wc_targets_dead",
            "Discord targets held after 401/403/404 (their notifications wait)",
            registry=r,
        )
        self.store_write_errors = Counter(
            "wc_store_write_errors",
            "Store writes that failed (disk full, I/O error, read-only, locked)",
            ["operation"],
            registry=r,
        )
        self.store_writable = Gauge(
            "wc_store_writable", "1 while the store's last write succeeded, else 0", registry=r
        )
        self.store_writable.set(1)
        self.config_reloads = Counter(
            "wc_config_reloads",
            "Edits of the config file read by the engine, by outcome (applied, rejected)",
            ["outcome"],
            registry=r,
        )
        self.config_rejected = Gauge(
            "wc_config_rejected",
            "1 while the config file holds an edit the engine rejected (it runs on the last"
            " good version; a restart would fail on the file), else 0",
            registry=r,
        )
        self.delivery_paused = Gauge(
            "wc_delivery_paused_seconds",
            "Seconds until delivery resumes from a global Discord pause (0: not paused)",
            registry=r,
        )
        self.delivery_seconds = Histogram(
            "wc_delivery_seconds",
            "Time from outbox write to Discord confirmation",
            buckets=DELIVERY_BUCKETS,
            registry=r,
        )

    def value(self, name: str, **labels: str) -> float:
        """Current value of one sample (0 when it has never been set)."""
        sample = self.registry.get_sample_value(name, labels)
        return 0.0 if sample is None else sample

    @staticmethod
    def split(metric: Counter, label: str) -> dict[str, float]:
        """One counter's totals keyed by a label's value (collects that metric only)."""
        out: dict[str, float] = {}
        for family in metric.collect():
            for sample in family.samples:
                if sample.name.endswith("_total") and label in sample.labels:
                    key = sample.labels[label]
                    out[key] = out.get(key, 0.0) + sample.value
        return out

    def total(self, name: str) -> float:
        """Sum of every sample of a metric across its labels."""
        return sum(
            sample.value
            for family in self.registry.collect()
            for sample in family.samples
            if sample.name == name
        )

    def exposition(self) -> bytes:
        """Prometheus text exposition of this registry."""
        return generate_latest(self.registry)
