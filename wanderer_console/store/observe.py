"""What the console keeps about itself: its alert history and its per-minute trends.

An alert is one row from the moment it fires (``resolved_at`` empty) until it resolves; a row
still open at start is an alert that was firing when the engine stopped (the alert engine takes
it up again). A trend row is one minute of one instance's counters (events in, notifications
queued and delivered, failures, 429s, errors) and its delivery latency percentiles; the rows are
pruned after a bounded number of days, so the table stays at most ``days * 1440`` rows per
instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wanderer_console.store.base import DbConnection
from wanderer_console.store.writes import WriteGuard

__all__ = ["AlertRecord", "ObserveMixin", "TrendMinute"]


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One alert of the history."""

    rule: str
    subject: str
    """What the rule fired for (a source's name, a breaker, ``outbox``)."""
    fired_at: float
    resolved_at: float | None
    value: float
    """The measure when it fired."""
    threshold: float
    summary: str

    def message_key(self, word: str) -> str:
        """The outbox key of this firing's ``firing`` or ``resolved`` message on the operations
        webhook (one of each per firing)."""
        return f"alert:{self.rule}:{self.subject}:{self.fired_at:.3f}:{word}"


@dataclass(frozen=True, slots=True)
class TrendMinute:
    """One minute of one instance's activity (counts in that minute; latency in seconds)."""

    minute: int
    """Epoch seconds of the minute's start (a multiple of 60)."""
    instance: str
    events: int = 0
    queued: int = 0
    delivered: int = 0
    failures: int = 0
    rate_limited: int = 0
    errors: int = 0
    latency_p50: float | None = None
    latency_p95: float | None = None
    latency_p99: float | None = None


_ALERT_COLUMNS = "rule, subject, fired_at, resolved_at, value, threshold, summary"
_TREND_COLUMNS = (
    "minute, instance, events, queued, delivered, failures, rate_limited, errors,"
    " latency_p50, latency_p95, latency_p99"
)


def _alert(row: Sequence[object]) -> AlertRecord:
    rule, subject, fired, resolved, value, threshold, summary = row
    return AlertRecord(
        rule=str(rule),
        subject=str(subject),
        fired_at=float(fired),  # type: ignore[arg-type]
        resolved_at=None if resolved is None else float(resolved),  # type: ignore[arg-type]
        value=float(value),  # type: ignore[arg-type]
        threshold=float(threshold),  # type: ignore[arg-type]
        summary=str(summary),
    )


class ObserveMixin:
    """The alert history and trends half of a store (:class:`~.sql.SqlStore`)."""

    _conn: DbConnection
    _writes: WriteGuard

    # -- alerts ----------------------------------------------------------------------------------

    def alert_fired(self, record: AlertRecord) -> None:
        """Record an alert that fired (a repeat of the same firing is ignored)."""
        self._writes.statement(
            "alert fired",
            f"INSERT INTO alert_history ({_ALERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (rule, subject, fired_at) DO NOTHING",
            (
                record.rule,
                record.subject,
                record.fired_at,
                record.resolved_at,
                record.value,
                record.threshold,
                record.summary,
            ),
        )

    def alert_resolved(self, rule: str, subject: str, fired_at: float, resolved_at: float) -> None:
        """Close the alert that fired at ``fired_at``."""
        self._writes.statement(
            "alert resolved",
            "UPDATE alert_history SET resolved_at = ?"
            " WHERE rule = ? AND subject = ? AND fired_at = ? AND resolved_at IS NULL",
            (resolved_at, rule, subject, fired_at),
        )

    def open_alerts(self) -> list[AlertRecord]:
        """Alerts not resolved (firing when the engine last stopped, or now)."""
        rows = self._conn.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alert_history WHERE resolved_at IS NULL ORDER BY id"
        ).fetchall()
        return [_alert(row) for row in rows]

    def alert_history(self, limit: int = 100) -> list[AlertRecord]:
        """The last ``limit`` alerts, newest first."""
        rows = self._conn.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alert_history ORDER BY fired_at DESC, id DESC LIMIT ?",
            (max(1, limit),),
        ).fetchall()
        return [_alert(row) for row in rows]

    # -- trends ----------------------------------------------------------------------------------

    def save_trend(self, row: TrendMinute) -> None:
        """Write one minute (a second write of the same minute and instance replaces it)."""
        values = (
            row.minute,
            row.instance,
            row.events,
            row.queued,
            row.delivered,
            row.failures,
            row.rate_limited,
            row.errors,
            row.latency_p50,
            row.latency_p95,
            row.latency_p99,
        )
        self._writes.statement(
            "save trend",
            f"INSERT INTO trend_minutes ({_TREND_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (minute, instance) DO UPDATE SET events = excluded.events,"
            " queued = excluded.queued, delivered = excluded.delivered,"
            " failures = excluded.failures, rate_limited = excluded.rate_limited,"
            " errors = excluded.errors, latency_p50 = excluded.latency_p50,"
            " latency_p95 = excluded.latency_p95, latency_p99 = excluded.latency_p99",
            values,
        )

    def trends(self, since: float, until: float | None = None) -> list[TrendMinute]:
        """Every stored minute from ``since`` (to ``until``), oldest first."""
        end = float("inf") if until is None else until
        rows = self._conn.execute(
            f"SELECT {_TREND_COLUMNS} FROM trend_minutes WHERE minute >= ? AND minute <= ?"
            " ORDER BY minute, instance",
            (int(since), int(min(end, 2**62))),
        ).fetchall()
        return [
            TrendMinute(
                minute=int(m),
                instance=str(i),
                events=int(ev),
                queued=int(q),
                delivered=int(d),
                failures=int(f),
                rate_limited=int(r),
                errors=int(er),
                latency_p50=p50,
                latency_p95=p95,
                latency_p99=p99,
            )
            for m, i, ev, q, d, f, r, er, p50, p95, p99 in rows
        ]

    def prune_observations(self, *, trends_before: float, alerts_before: float) -> int:
        """Delete trend minutes and resolved alerts older than the given times; return how many."""
        pruned = self._writes.statement(
            "prune trends", "DELETE FROM trend_minutes WHERE minute < ?", (int(trends_before),)
        )
        pruned += self._writes.statement(
            "prune alerts",
            "DELETE FROM alert_history WHERE resolved_at IS NOT NULL AND resolved_at < ?",
            (alerts_before,),
        )
        return pruned

    # -- what alerts measure ---------------------------------------------------------------------

    def oldest_pending_at(self, *, exclude_tenant: str | None = None) -> float | None:
        """When the oldest pending notification (not of ``exclude_tenant``) was written
        (``None``: nothing pending)."""
        row = self._conn.execute(
            "SELECT MIN(created_at) FROM outbox WHERE status = 'pending' AND tenant_id != ?",
            (exclude_tenant or "",),
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def has_notification(self, tenant_id: str, dedup_key: str) -> bool:
        """Whether the outbox holds the notification ``dedup_key`` of ``tenant_id``: an alert
        taken up after a restart posts its resolved message only when its firing message went
        out (retention keeps the firing message of an alert still open, see
        :meth:`~.sql.SqlStore.prune`)."""
        row = self._conn.execute(
            "SELECT 1 FROM outbox WHERE tenant_id = ? AND dedup_key = ?", (tenant_id, dedup_key)
        ).fetchone()
        return row is not None
