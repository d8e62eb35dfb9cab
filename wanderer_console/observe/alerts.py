"""Alerts the console raises about itself, from the rules of ``[alerts]``.

Every ``alerts.interval_seconds`` the :class:`AlertEngine` takes the rules' measures
(:mod:`~.measure`) and, per rule and subject, keeps a small state machine: *ok* → *pending* (the
measure is past the threshold) → *firing* (it stayed past it for ``for_seconds``) → *ok* again as
soon as it is back. A firing alert:

* is listed by :meth:`AlertEngine.firing` (the console's banner, ``/health``);
* is a row of the alert history in the store, closed when it resolves (an alert still open at
  start was firing when the engine stopped: it is taken up again, and resolves, with its
  message, if its condition is gone);
* sets ``wc_alert_firing{rule}`` to 1 (and ``wc_alert_value{rule}`` holds the worst measure, for
  the Prometheus rules in ``docs/alerts.rules.yml``; absent while the rule has no measure);
* keeps its state while its measure cannot be taken (:attr:`Measurer.unmeasured`: the data
  directory's free space unreadable): an unknown measure never resolves an alert; the firing
  alert's detail and the view's ``last_error`` say why, until the measure works again;
* when ``alerts.discord_webhook_url`` is set, posts a message there, and a resolved message when
  it clears. Both go through the outbox like every notification (same retries, same
  exactly-once claim; the dedup key names the firing, so a repeat write is refused by the
  store). A rule posts at most one firing message per ``discord_min_interval_seconds``.

Every setting is read at each evaluation, so a threshold changed in the console applies at the
next one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from wanderer_console import __version__
from wanderer_console.config.alerts import RULES, AlertSettings
from wanderer_console.config.live import LiveSettings
from wanderer_console.config.routing import OPS_TENANT, ops_target
from wanderer_console.domain.clock import iso_utc
from wanderer_console.domain.discord_limits import build_message
from wanderer_console.domain.notification import Notification, NotificationType
from wanderer_console.observe.measure import Measure, Measurer
from wanderer_console.store.base import Store
from wanderer_console.store.observe import AlertRecord
from wanderer_console.store.writes import StoreWriteError

__all__ = ["AlertEngine", "Firing"]

log = logging.getLogger(__name__)

_FIRING_COLOUR = 0xE74C3C
_RESOLVED_COLOUR = 0x2ECC71


@dataclass(slots=True)
class Firing:
    """An alert firing now."""

    record: AlertRecord
    value: float
    """Its latest measure."""
    detail: str = ""
    posted: bool = False
    """Its firing message went to the outbox (its resolved message will follow)."""

    def view(self) -> dict[str, Any]:
        """JSON-safe, for the snapshot and ``/health``."""
        r = self.record
        return {
            "rule": r.rule,
            "subject": r.subject,
            "fired_at": r.fired_at,
            "value": self.value,
            "threshold": r.threshold,
            "summary": r.summary,
            "detail": self.detail,
        }


class AlertEngine:
    """Evaluates the ``[alerts]`` rules (see the module docstring)."""

    def __init__(
        self,
        live: LiveSettings,
        measurer: Measurer,
        store: Store,
        registry: CollectorRegistry,
        *,
        on_queued: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._live = live
        self._measurer = measurer
        self._store = store
        self._on_queued = on_queued
        self._clock = clock
        self._pending: dict[tuple[str, str], float] = {}
        self._firing: dict[tuple[str, str], Firing] = {}
        self._last_posted: dict[str, float] = {}
        self.evaluations = 0
        """Evaluations done (tests wait on it)."""
        self.last_error: str | None = None
        """Why the last evaluation failed, or which rules it could not measure, if any."""
        self._gauge = Gauge(
            "wc_alert_firing",
            "1 while an alert of this rule fires (the console's own [alerts] rules)",
            ["rule"],
            registry=registry,
        )
        self._value = Gauge(
            "wc_alert_value",
            "The worst current measure of each alert rule, in the rule's unit",
            ["rule"],
            registry=registry,
        )
        for rule in RULES:
            self._gauge.labels(rule=rule).set(0)

    @property
    def settings(self) -> AlertSettings:
        """The running ``[alerts]`` section."""
        return self._live.current.alerts

    # -- reading -----------------------------------------------------------------------------------

    def firing(self) -> list[dict[str, Any]]:
        """The alerts firing now, oldest first (JSON-safe: rule, subject, fired_at, value, ...)."""
        alerts = sorted(self._firing.values(), key=lambda f: f.record.fired_at)
        return [alert.view() for alert in alerts]

    def view(self) -> dict[str, Any]:
        """The snapshot's ``alerts``: what fires, and every rule's settings."""
        settings = self.settings
        return {
            "enabled": settings.enabled,
            "firing": self.firing(),
            "rules": {
                name: {
                    **settings.rule(name).model_dump(),
                    "unit": info.unit,
                    "above": info.above,
                    "summary": info.summary,
                }
                for name, info in RULES.items()
            },
            "ops_webhook": settings.discord_webhook_url is not None,
            "last_error": self.last_error,
        }

    # -- running -------------------------------------------------------------------------------

    def restore(self) -> int:
        """Take up the alerts that were firing when the engine last stopped; return how many."""
        for record in self._store.open_alerts():
            key = (record.rule, record.subject)
            # Its resolved message follows only a firing message that went out (none when the
            # rule had posted within discord_min_interval_seconds, or without a webhook).
            posted = self._store.has_notification(OPS_TENANT, record.message_key("firing"))
            self._firing[key] = Firing(record, record.value, posted=posted)
            self._gauge.labels(rule=record.rule).set(1)
        return len(self._firing)

    async def run(self) -> None:
        """Evaluate every ``alerts.interval_seconds`` (a supervised task)."""
        while True:
            try:
                self.evaluate()
            except StoreWriteError as exc:  # the store's own fault is reported by the store
                self.last_error = str(exc)
            await asyncio.sleep(self.settings.interval_seconds)

    def evaluate(self, now: float | None = None) -> None:
        """Measure every rule and move each alert along (fire, resolve)."""
        now = self._clock() if now is None else now
        settings = self.settings
        measures = self._measurer.measure(now, settings.rate_window_seconds)
        unmeasured = self._measurer.unmeasured
        for rule, info in RULES.items():
            if rule not in measures:
                self._unknown(rule, unmeasured.get(rule, "not measured"))
                continue
            config = settings.rule(rule)
            found = measures[rule]
            if rule == "cache_hit_ratio" and (
                self._measurer.lookups_in_window < settings.cache_min_lookups
            ):
                found = []  # too few look-ups to judge
            active = settings.enabled and config.enabled
            breached: dict[str, Measure] = {}
            for measure in found:
                past = (
                    measure.value > config.threshold
                    if info.above
                    else (measure.value < config.threshold)
                )
                if active and past:
                    breached[measure.subject] = measure
            self._worst(rule, info.above, found)
            self._step(rule, breached, config.threshold, config.for_seconds, now)
        self.evaluations += 1
        self.last_error = "; ".join(unmeasured.values()) or None

    def _unknown(self, rule: str, why: str) -> None:
        """A rule not measured now: its alerts stay pending or firing (their detail says why),
        its ``wc_alert_value`` keeps the last measure, as a Prometheus rule on it should."""
        for (name, _subject), firing in self._firing.items():
            if name == rule:
                firing.detail = why

    def _worst(self, rule: str, above: bool, found: list[Measure]) -> None:
        """Set ``wc_alert_value{rule}``; a rule with no measure now (its source not connected,
        too few look-ups in the window) has no sample, not the last one it had."""
        if found:
            values = [m.value for m in found]
            self._value.labels(rule=rule).set(max(values) if above else min(values))
        else:
            self._value.remove(rule)

    def _step(
        self,
        rule: str,
        breached: dict[str, Measure],
        threshold: float,
        for_seconds: float,
        now: float,
    ) -> None:
        for key in [k for k in self._pending if k[0] == rule and k[1] not in breached]:
            del self._pending[key]
        for key in [k for k in self._firing if k[0] == rule and k[1] not in breached]:
            self._resolve(self._firing.pop(key), now)
        for subject, measure in breached.items():
            key = (rule, subject)
            firing = self._firing.get(key)
            if firing is not None:
                firing.value, firing.detail = measure.value, measure.detail
                continue
            since = self._pending.setdefault(key, now)
            if now - since >= for_seconds:
                del self._pending[key]
                self._fire(rule, measure, threshold, now)
        self._gauge.labels(rule=rule).set(1 if any(k[0] == rule for k in self._firing) else 0)

    def _fire(self, rule: str, measure: Measure, threshold: float, now: float) -> None:
        info = RULES[rule]
        summary = f"{info.summary}: {_figure(measure.value)} {info.unit}" + (
            f" ({'over' if info.above else 'under'} {_figure(threshold)})"
        )
        record = AlertRecord(
            rule=rule,
            subject=measure.subject,
            fired_at=now,
            resolved_at=None,
            value=measure.value,
            threshold=threshold,
            summary=summary,
        )
        firing = Firing(record, measure.value, measure.detail)
        self._firing[(rule, measure.subject)] = firing
        log.warning(
            "alert firing: %s",
            summary,
            extra={"ctx": {"rule": rule, "subject": measure.subject, "detail": measure.detail}},
        )
        self._write(lambda: self._store.alert_fired(record))
        settings = self.settings
        last = self._last_posted.get(rule)
        due = last is None or now - last >= settings.discord_min_interval_seconds
        if due and self._post(firing, resolved=False, now=now):
            firing.posted = True
            self._last_posted[rule] = now

    def _resolve(self, firing: Firing, now: float) -> None:
        r = firing.record
        log.info(
            "alert resolved: %s",
            RULES[r.rule].summary,
            extra={
                "ctx": {
                    "rule": r.rule,
                    "subject": r.subject,
                    "fired_for": round(now - r.fired_at, 1),
                }
            },
        )
        self._write(lambda: self._store.alert_resolved(r.rule, r.subject, r.fired_at, now))
        if firing.posted:
            self._post(firing, resolved=True, now=now)

    def _write(self, write: Callable[[], None]) -> bool:
        """Run one store write unless the store cannot write now (a full disk): the alert still
        shows (banner, metric), and no write of ours makes the store look writable again while
        delivery's own writes fail."""
        if self._store.write_fault is not None:
            return False
        try:
            write()
        except StoreWriteError:  # the store reports its own fault
            return False
        return True

    def _post(self, firing: Firing, *, resolved: bool, now: float) -> bool:
        """Write the message for the operations webhook to the outbox; False without one (or
        while the store cannot write)."""
        settings = self._live.current
        target = ops_target(settings)
        if target is None:
            return False
        r = firing.record
        word = "resolved" if resolved else "firing"
        fields = [
            {"name": "Subject", "value": r.subject, "inline": True},
            {
                "name": "Threshold",
                "value": f"{_figure(r.threshold)} {RULES[r.rule].unit}",
                "inline": True,
            },
            {"name": "Fired", "value": iso_utc(r.fired_at) or "", "inline": True},
        ]
        if resolved:
            fields.append({"name": "Resolved", "value": iso_utc(now) or "", "inline": True})
        embed = {
            "title": f"[{word.upper()}] {r.rule}",
            "description": r.summary
            + (f" — {firing.detail}" if firing.detail and not resolved else ""),
            "color": _RESOLVED_COLOUR if resolved else _FIRING_COLOUR,
            "fields": fields,
            "timestamp": iso_utc(now),
            "footer": {"text": f"wanderer-console {__version__}"},
        }
        notification = Notification(
            tenant=OPS_TENANT,
            type=NotificationType.ALERT,
            dedup_key=r.message_key(word),
            target=target,
            body=build_message([embed], username=settings.discord.username),
        )
        if not self._write(lambda: self._store.enqueue([notification], now=now)):
            return False
        self._on_queued()
        return True


def _figure(value: float) -> str:
    """A measure as the banner shows it (``12``, ``0.85``, ``1,024``)."""
    if value == int(value) and abs(value) >= 1:
        return f"{int(value):,}"
    return f"{value:.3g}"
