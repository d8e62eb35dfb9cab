"""What the detail view says about one thing on the dashboard: a connection, a delivery target, a
circuit breaker, a line of the activity log, or a fault badge.

Textual-free, so the wording is unit-tested. A :class:`Detail` holds everything an operator opens
it for: the full error (the panels clip it), where it happened (the URL, credentials masked), when
it started, how many times, the last few occurrences, and what to do: the troubleshooting
runbook's entry for that error (:mod:`wanderer_console.ui.runbook`, the same table as
``docs/operations/troubleshooting.md``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from wanderer_console.console_api import (
    BreakerView,
    ConfigState,
    ConnectionView,
    DeliveryView,
    Occurrence,
    TargetView,
)
from wanderer_console.ui.faults import (
    TargetHealth,
    clock_time,
    dead_only_for,
    plural,
    target_health,
)
from wanderer_console.ui.model import format_ago
from wanderer_console.ui.runbook import Advice, advice_for

__all__ = [
    "RECENT",
    "Detail",
    "activity_detail",
    "breaker_detail",
    "config_detail",
    "connection_detail",
    "discord_pause_detail",
    "log_message",
    "occurrences_text",
    "store_fault_detail",
    "target_detail",
]

RECENT = 5
"""How many occurrences a detail lists."""

_CONTEXT = re.compile(r" \([a-z_]+=.*\)$")
_LEVELS = frozenset({"debug", "info", "warning", "error", "critical"})
_UNCERTAIN_LINE = "re-sending notifications whose first send had no known outcome"
"""The engine's log line for an uncertain re-send: its runbook entry advises a recent one."""


@dataclass(frozen=True, slots=True)
class Detail:
    """One thing explained: facts, its error in full, its recent occurrences, what to do."""

    kind: str
    """``connection``, ``target``, ``breaker``, ``activity`` or ``fault``."""
    title: str
    facts: tuple[tuple[str, str], ...] = ()
    """``(label, value)`` pairs, in display order."""
    error: str | None = None
    """The whole error (or log line), never clipped."""
    occurrences: tuple[Occurrence, ...] = ()
    """The last few occurrences, oldest first."""
    advice: Advice | None = None
    """The runbook's entry for the error, ``None`` when there is nothing wrong (or unknown)."""
    healthy: bool = False
    """Nothing is wrong with it now (the view says so instead of advice)."""
    retry: str | None = None
    """A dead target's key: the view offers to retry it."""
    target: str | None = None
    """A delivery target's key: the view offers its notifications (the events browser)."""

    def text(self) -> str:
        """Everything the view shows, as plain text (tests and the clipboard read this)."""
        lines = [self.title]
        lines += [f"{label}: {value}" for label, value in self.facts]
        if self.error:
            lines.append(f"Error: {self.error}")
        lines += [f"{clock_time(o.at)} {o.text}" for o in self.occurrences]
        if self.advice is not None:
            lines += [self.advice.meaning, self.advice.action]
        return "\n".join(lines)


def _when(ts: float | None, now: float) -> str:
    """``09:12:03 UTC (4m ago)``; ``-`` when unknown."""
    if ts is None:
        return "-"
    return f"{clock_time(ts)} UTC ({format_ago(ts, now)} ago)"


def _owners(maps: Sequence[str]) -> str:
    """``alpha's``, ``alpha's and bravo's``, ``alpha's, bravo's and charlie's``."""
    names = [f"{name}'s" for name in maps]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def log_message(text: str) -> str:
    """A log line without its ``(key=value, ...)`` context: what repeats when it happens again."""
    return _CONTEXT.sub("", text)


def connection_detail(conn: ConnectionView, now: float) -> Detail:
    """A source's health: where it connects, its state, its errors and what to do about them."""
    error = conn.last_error
    recent = conn.recent_errors[-RECENT:]
    if error is None and conn.state != "connected" and recent:
        error = recent[-1].text
    facts = [
        ("Kind", conn.kind),
        ("State", f"{conn.state} since {_when(conn.since, now)}"),
        ("URL", conn.url or "-"),
        ("Last event", _when(conn.last_event_at, now)),
        ("Events", f"{conn.events} ({conn.events_per_minute:g}/min)"),
        (
            "Reconnects",
            f"{conn.reconnects} since start, {conn.reconnects_last_hour} in the last hour",
        ),
        ("Errors", f"{conn.errors} since start, {conn.errors_last_hour} in the last hour"),
    ]
    if conn.error_since is not None:
        facts.append(("Failing since", _when(conn.error_since, now)))
    if conn.heartbeat_rtt_ms is not None:
        rtt = f"{conn.heartbeat_rtt_ms:.0f} ms"
        # The engine keeps the last heartbeat's RTT across a lost socket: not a live figure.
        live = conn.state == "connected"
        facts.append(("Heartbeat", rtt if live else f"- (not connected; the last was {rtt})"))
    facts.append(("Quality", f"{conn.quality}/100"))
    healthy = conn.state == "connected" and error is None
    subject = conn.kind if conn.kind in ("map_sse", "killstream", "fallback", "r2z2") else "log"
    return Detail(
        kind="connection",
        title=f"Connection {conn.name}",
        facts=tuple(facts),
        error=error,
        occurrences=tuple(recent),
        advice=None if healthy else advice_for(error, subject),
        healthy=healthy,
    )


def target_detail(key: str, target: TargetView, now: float) -> Detail:
    """A delivery target: which routes post there, its queue, why it fails and what to do.

    Healthy or not as the Delivery panel says (:func:`~wanderer_console.ui.faults.target_health`):
    an error nothing waits on, or an uncertain re-send over an hour old, is shown as a fact, with
    no advice, rather than as a fault.
    """
    health = target_health(target, now)
    state = "DEAD (its notifications are held, not lost)" if target.disabled else "delivering"
    only_for = dead_only_for(target)
    if target.disabled and only_for:  # a webhook another map still delivers through
        dead, live = ", ".join(only_for), sorted(set(target.maps) - set(only_for))
        state = (
            f"DEAD for {dead} only ({_owners(only_for)} notifications are held, not lost;"
            f" {_owners(live)} still go)"
        )
    if target.disabled and target.disabled_since is not None:
        state += f" since {_when(target.disabled_since, now)}"
    facts = [
        ("Routes", target.label or "-"),
        ("Address", target.url or key),
        ("State", state),
        *_queue_facts(target, only_for),
        ("Sent", f"{target.sent} in {plural(target.messages, 'message')}"),
        ("Sent last minute", str(target.sent_last_minute)),
        ("Rate limited", f"{plural(target.rate_limited, 'time')} since start (429)"),
    ]
    if target.last_error and health not in ("dead", "failing"):
        facts.append(("Last error", f"{target.last_error} (nothing waits on it)"))
    if target.uncertain:
        facts.append(("Uncertain", _uncertain_fact(target, now)))
    error = _fault(target, health)
    return Detail(
        kind="target",
        title=f"Target {target.label or key}" + (f" ({key})" if target.label else ""),
        facts=tuple(facts),
        error=error,
        occurrences=target.recent[-RECENT:],
        advice=_target_advice(health, error),
        healthy=health == "ok",
        retry=key if target.disabled else None,
        target=key,
    )


def _queue_facts(target: TargetView, only_for: Sequence[str]) -> list[tuple[str, str]]:
    """``Pending`` and, for a dead target whose engine counts it, ``Held``: how many wait for
    the fix, per map it is dead for. Dead for some of its maps only, the pending count holds
    another map's notifications too, still being delivered: it says how many of it are held."""
    pending = f"{target.pending} (waiting to be sent)"
    if not (target.disabled and target.held_for):
        return [("Pending", pending)]
    if only_for:
        pending = f"{target.pending} (waiting to be sent, the {sum(target.held_for.values())}"
        pending += " held among them)"
    held = ", ".join(f"{count} for {name}" for name, count in sorted(target.held_for.items()))
    return [("Pending", pending), ("Held", f"{held} (sent once the target is fixed or retried)")]


def _fault(target: TargetView, health: TargetHealth) -> str | None:
    """The error that is the target's fault now: why it is dead, or what its waiting
    notifications get from Discord; ``None`` otherwise (a past error is a fact, not this)."""
    if health == "dead":
        return target.disabled
    return target.last_error if health == "failing" else None


def _target_advice(health: TargetHealth, error: str | None) -> Advice | None:
    """The runbook's entry for the target's fault now; ``None`` when it has none."""
    if health == "ok":
        return None
    if health == "uncertain":
        return advice_for(_UNCERTAIN_LINE, "target")
    return advice_for(error, "target")


def _uncertain_fact(target: TargetView, now: float) -> str:
    """``2 re-sent after an unknown outcome since start, the last at 09:12:03 UTC (4m ago)``."""
    text = f"{target.uncertain} re-sent after an unknown outcome since start"
    if target.last_uncertain_at is not None:
        text += f", the last at {_when(target.last_uncertain_at, now)}"
    return text


def breaker_detail(name: str, breaker: BreakerView, now: float) -> Detail:
    """A circuit breaker: its state, failures, why it opened, when it probes, what to do."""
    service, _, host = name.partition(":")
    facts = [
        ("Service", service),
        ("Host", host or "-"),
        ("State", breaker.state.replace("_", "-")),
        ("Failures", f"{breaker.failures} in the current window"),
    ]
    if breaker.opened_at is not None:
        facts.append(("Opened", _when(breaker.opened_at, now)))
    if breaker.next_probe_at is not None and breaker.state != "closed":
        wait = breaker.next_probe_at - now
        when = "now" if wait <= 0 else f"in {format_ago(now, breaker.next_probe_at)}"
        facts.append(("Next probe", f"{clock_time(breaker.next_probe_at)} UTC ({when})"))
    healthy = breaker.state == "closed" and breaker.failures == 0
    error = breaker.reason if breaker.state != "closed" or breaker.failures else None
    return Detail(
        kind="breaker",
        title=f"Circuit breaker {name}",
        facts=tuple(facts),
        error=error,
        occurrences=breaker.recent[-RECENT:],
        advice=None if healthy else advice_for(error or name, "breaker"),
        healthy=healthy,
    )


def activity_detail(at: float, text: str, entries: Iterable[tuple[float, str]]) -> Detail:
    """One activity line in full, how often the same message came, and the runbook's advice."""
    message = log_message(text)
    same = [(when, line) for when, line in entries if log_message(line) == message]
    shown = [Occurrence(at=when, text=line) for when, line in same[-RECENT:]]
    facts = [("When", f"{clock_time(at)} UTC"), ("Seen", plural(max(1, len(same)), "time"))]
    if same:
        facts.append(("First seen", f"{clock_time(same[0][0])} UTC (of the lines kept)"))
    body = text.split(": ", 1)[1] if text.split(": ", 1)[0] in _LEVELS else text
    return Detail(
        kind="activity",
        title="Activity",
        facts=tuple(facts),
        error=text,
        occurrences=tuple(shown),
        advice=advice_for(body, "log"),
    )


def config_detail(config: ConfigState) -> Detail:
    """A config change the engine rejected: every problem, located, and what to do."""
    problems = config.errors
    facts = [("File", config.path or "-"), ("Status", config.last_status or "-")]
    if config.restart_required:
        facts.append(("Waiting for a restart", ", ".join(config.restart_required)))
    return Detail(
        kind="fault",
        title="Config change rejected" if problems else "Config",
        facts=tuple(facts),
        error="\n".join(problems) if problems else None,
        advice=advice_for(problems[0], "config") if problems else None,
        healthy=not problems,
    )


def store_fault_detail(delivery: DeliveryView, now: float) -> Detail | None:
    """The store cannot write: since when, how many writes failed, what to do."""
    fault = delivery.store_fault
    if fault is None:
        return None
    return Detail(
        kind="fault",
        title="Store cannot write: delivery paused",
        facts=(
            ("Since", _when(fault.since, now)),
            ("Failed writes", str(fault.failures)),
            ("Discord answers not yet recorded", str(delivery.unrecorded_outcomes)),
        ),
        error=fault.reason,
        advice=advice_for("store cannot write", "log"),
    )


def discord_pause_detail(delivery: DeliveryView, now: float) -> Detail | None:
    """Discord paused all delivery: until when and what to do."""
    until = delivery.global_pause_until
    if until is None or until <= now:
        return None
    return Detail(
        kind="fault",
        title="Discord pause: all delivery waits",
        facts=(
            ("Until", f"{clock_time(until)} UTC (in {format_ago(now, until)})"),
            ("Invalid answers, last 10 min", str(delivery.invalid_answers_10m)),
        ),
        error="a global 429 from Discord, or the 401/403/429 budget was spent",
        advice=advice_for("all delivery paused", "log"),
    )


def occurrences_text(occurrences: Sequence[Occurrence]) -> list[str]:
    """``HH:MM:SS text`` per occurrence (the view's list)."""
    return [f"{clock_time(o.at)} {o.text}" for o in occurrences]
