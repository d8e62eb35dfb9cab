"""What the console says about delivery faults and a lost engine, read from the snapshot.

Textual-free, so the wording is unit-tested. Three faults stop notifications from going out
without the engine failing, and each must be impossible to miss on the dashboard:

* the store cannot write (disk full, read-only, I/O error): the dispatcher sends nothing until a
  write succeeds, because it could not record what Discord answered;
* a Discord global pause (a global 429, or the invalid-answer budget): every target waits;
* a dead target (Discord answered 401/403/404): its notifications are *held*, not lost, until
  its configuration changes or an operator retries it (the palette offers that).

Whether a target is at fault now is judged once, by :func:`target_health`, for the Delivery
panel's State column and the target's detail view alike.

And one fault of the console's own: the link to an attached engine is down (the engine stopped
or restarts), so the figures on screen are the last ones it sent (:func:`link_text`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Final, Literal

from wanderer_console.console_api import (
    AlertsView,
    ConfigState,
    DeliveryView,
    LinkState,
    TargetView,
)

__all__ = [
    "UNCERTAIN_RECENT_SECONDS",
    "DeadTarget",
    "TargetHealth",
    "alert_text",
    "clock_time",
    "config_text",
    "dead_only_for",
    "dead_targets",
    "delivery_held",
    "global_pause_text",
    "plural",
    "link_text",
    "pause_origin",
    "pause_phrase",
    "rejected_config",
    "rejection_toast",
    "store_fault_text",
    "target_health",
]

UNCERTAIN_RECENT_SECONDS: Final = 3600.0
"""How long an uncertain re-send marks its target. Long enough to be seen at a glance now and
then and to check the channel for a double, the window of the monitoring page's alert on such
re-sends; not until the next confirmation, which comes seconds after the re-send itself."""

TargetHealth = Literal["dead", "failing", "uncertain", "ok"]
"""A delivery target now: Discord refused it for good; its notifications wait on Discord's
errors; a message was re-sent after an unknown outcome within the last hour; or nothing wrong."""


@dataclass(frozen=True, slots=True)
class DeadTarget:
    """A target Discord refused for good, with what it holds."""

    key: str
    """The target key (``webhook:<id>``, ``channel:<id>``), as ``retry_target`` takes it."""
    reason: str
    """What Discord answered (``404 Unknown Webhook``)."""
    held: int
    """Notifications waiting for it (the snapshot's ``pending``)."""
    uncertain: int
    """Notifications sent again after a send whose outcome was unknown."""
    label: str = ""
    """The map routes that post to it (``alpha/rally``), when the engine says."""
    only_for: tuple[str, ...] = ()
    """The maps it is dead for when other maps posting to it still deliver through it (a
    target is dead per map); empty when it is dead for every map posting there, or the engine
    does not say."""
    held_for: tuple[tuple[str, int], ...] = ()
    """Notifications held per map it is dead for, by map (``(("alpha", 3),)``): that map's
    own, where ``held`` also counts another map's still delivered; empty when the engine does
    not say."""

    @property
    def name(self) -> str:
        """``alpha/rally (webhook:1)``, or the key alone."""
        return f"{self.label} ({self.key})" if self.label else self.key

    @property
    def state(self) -> str:
        """``DEAD 404 Unknown Webhook``, or ``DEAD for alpha only, 404 Unknown Webhook`` while
        another map's notifications still go to it."""
        if self.only_for:
            return f"DEAD for {', '.join(self.only_for)} only, {self.reason}"
        return f"DEAD {self.reason}"

    def describe(self) -> str:
        """``alpha/rally (webhook:1): DEAD 404 Unknown Webhook — held: 9`` (and the uncertain
        count). Dead for some of its maps only, its ``pending`` counts the others' notifications
        too, which are being delivered: what it holds is said per map (``held: 3 (alpha)``), or,
        from an engine that does not count it, ``pending: 9``, not ``held``."""
        if self.only_for and self.held_for:
            count = "held: " + ", ".join(f"{held} ({name})" for name, held in self.held_for)
        elif self.only_for:
            count = f"pending: {self.held}"
        else:
            count = f"held: {self.held}"
        text = f"{self.name}: {self.state} — {count}"
        if self.uncertain > 0:
            text += f" · {self.uncertain} uncertain"
        return text


def dead_only_for(target: TargetView) -> tuple[str, ...]:
    """The maps ``target`` is dead for when another map posting to it still delivers through
    it; empty when it is dead for all of them (or alive, or the engine does not say)."""
    if not target.dead_for or not set(target.maps) - set(target.dead_for):
        return ()
    return target.dead_for


def _uncertain_recently(target: TargetView, now: float) -> bool:
    """A re-send after an unknown outcome within :data:`UNCERTAIN_RECENT_SECONDS` of ``now``.

    The count is since the engine started, so the count alone marked a target for the engine's
    whole life after one re-send. An engine that does not say when (an older one) is taken as
    recent: the console cannot tell an old re-send from a new one, and hiding a new one is the
    worse mistake.
    """
    if target.uncertain <= 0:
        return False
    at = target.last_uncertain_at
    return at is None or now - at < UNCERTAIN_RECENT_SECONDS


def target_health(target: TargetView, now: float) -> TargetHealth:
    """The one judgment of a target, shown by the Delivery panel and the target's detail.

    A fault is what holds notifications up now; what happened before is history. An error with
    nothing pending (a message Discord refused with a 400 and that failed for good, while the
    target delivers) is not a target failing: the detail shows it as its last error.
    """
    if target.disabled:
        return "dead"
    if target.last_error and target.pending:
        return "failing"
    if _uncertain_recently(target, now):
        return "uncertain"
    return "ok"


def plural(count: int, word: str) -> str:
    """``1 message``, ``3 messages``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def clock_time(ts: float) -> str:
    """``HH:MM:SS`` in UTC (EVE time), as the activity log shows times."""
    return time.strftime("%H:%M:%S", time.gmtime(ts))


def pause_origin(delivery: DeliveryView) -> str:
    """Who paused delivery, since when, and whether a restart keeps it (``by tui:alice@host
    since 2026-12-04 03:12:09 UTC, kept across restarts``), or that it is the cluster's (``...,
    on every engine``), as ``/ready`` says it; ``""`` when delivery runs or the engine does not
    say. A date, not a time of day: a pause may be days old, and an operator at night needs to
    know whether it is today's."""
    if not delivery.paused:
        return ""
    who = f"by {delivery.paused_by}" if delivery.paused_by else ""
    when = delivery.paused_since
    since = time.strftime("since %Y-%m-%d %H:%M:%S UTC", time.gmtime(when)) if when else ""
    kept = _pause_scope(delivery)
    return ", ".join(part for part in (" ".join(filter(None, (who, since))), kept) if part)


def _pause_scope(delivery: DeliveryView) -> str:
    """Where the pause holds and for how long. The cluster's is kept in the shared database
    (a restart keeps it too): that it holds every engine, so a resume here resumes them all,
    is what the operator needs, in as few words as the Delivery panel's width allows."""
    if delivery.pause_cluster:
        return "on every engine"
    return {
        True: "kept across restarts",
        False: "not saved: ends at the next restart",
        None: "",
    }[delivery.pause_saved]


def pause_phrase(delivery: DeliveryView) -> str:
    """``paused by tui:alice@host since 2026-12-04 03:12:09 UTC, kept across restarts``: what
    the activity log and the Delivery panel's note say of an operator's pause (``paused, kept
    across restarts`` when the engine cannot say who or when); ``""`` while delivery runs."""
    if not delivery.paused:
        return ""
    origin = pause_origin(delivery)
    if not origin:
        return "paused"
    return f"paused {origin}" if origin.startswith(("by ", "since ")) else f"paused, {origin}"


def store_fault_text(delivery: DeliveryView) -> str | None:
    """The store-fault badge, or ``None`` while the store writes."""
    fault = delivery.store_fault
    if fault is None:
        return None
    text = f"STORE CANNOT WRITE: {fault.reason or 'unknown error'} — delivery paused"
    text += f" since {clock_time(fault.since)}"
    # Most important first: a narrow terminal clips the end of the line.
    if delivery.unrecorded_outcomes > 0:
        text += f" · {plural(delivery.unrecorded_outcomes, 'Discord answer')} unrecorded"
    if fault.failures > 0:
        text += f" · {plural(fault.failures, 'failed write')}"
    return text


def global_pause_text(delivery: DeliveryView, now: float) -> str | None:
    """The Discord-pause badge, with the seconds left, or ``None`` when no pause is active."""
    until = delivery.global_pause_until
    if until is None or until <= now:
        return None
    seconds = math.ceil(until - now)
    return f"DISCORD PAUSE until {clock_time(until)} ({seconds}s) — all delivery waits"


def delivery_held(delivery: DeliveryView, now: float) -> bool:
    """Whether a store fault or a Discord pause holds every delivery right now."""
    return store_fault_text(delivery) is not None or global_pause_text(delivery, now) is not None


def dead_targets(delivery: DeliveryView) -> list[DeadTarget]:
    """The dead targets of the snapshot's ``delivery`` section, by key."""
    return [
        DeadTarget(
            key,
            target.disabled,
            target.pending,
            target.uncertain,
            target.label,
            dead_only_for(target),
            tuple(sorted(target.held_for.items())),
        )
        for key, target in sorted(delivery.targets.items())
        if target.disabled
    ]


def link_text(link: LinkState, live_at: float | None) -> str | None:
    """The engine-link badge, or ``None`` while the link is live.

    ``live_at`` is when the last live frame came: the figures on screen are from then.
    """
    if link.state == "live":
        return None
    detail = link.detail or "no answer"
    if link.state == "refused":
        text = f"ENGINE REFUSED THIS CONSOLE: {detail}"
    elif link.state == "lost":
        text = f"ENGINE LOST: {detail} — reconnecting…"
    else:
        text = f"CONNECTING TO ENGINE: {detail}…"
    if live_at is not None:
        text += f" · figures below are stale, from {clock_time(live_at)}"
    return text


def rejected_config(
    config: ConfigState | None, dismissed: tuple[str, ...] = ()
) -> ConfigState | None:
    """``config`` when its last change was rejected and the operator has not dismissed these very
    problems (a new rejection shows again); else ``None``."""
    if config is None or config.last_status != "rejected" or not config.errors:
        return None
    return None if config.errors == dismissed else config


def rejection_toast(config: ConfigState) -> str:
    """The toast when the engine rejects a config change: where, why, and that nothing changed."""
    more = f" (+{len(config.errors) - 1} more)" if len(config.errors) > 1 else ""
    return (
        f"Config change rejected: {config.errors[0]}{more}. The running configuration is kept;"
        " fix the file (c opens it, a click on the badge explains it, x dismisses it)."
    )


def config_text(config: ConfigState | None, dismissed: tuple[str, ...] = ()) -> str | None:
    """The config badge: a rejected change (the running configuration is kept) unless dismissed,
    or changes that wait for a restart; ``None`` when the file is running as written."""
    if config is None:
        return None
    rejected = rejected_config(config, dismissed)
    if rejected is not None:
        more = f" (+{len(rejected.errors) - 1} more)" if len(rejected.errors) > 1 else ""
        return (
            f"CONFIG CHANGE REJECTED: {rejected.errors[0]}{more} — the running configuration is"
            " kept; fix the file (c opens it, click: details, x: dismiss)"
        )
    if config.restart_required:
        keys = ", ".join(config.restart_required)
        return f"RESTART NEEDED for {keys}: saved, applies at the next start of the engine"
    return None


def alert_text(alerts: AlertsView | None, now: float) -> str | None:
    """The alert banner: the oldest alert firing (rule, subject, what it measures, for how long)
    and how many more; ``None`` while none fires."""
    if alerts is None or not alerts.firing:
        return None
    first = alerts.firing[0]
    since = _age(max(0.0, now - first.fired_at))
    more = f" (+{len(alerts.firing) - 1} more)" if len(alerts.firing) > 1 else ""
    return (
        f"ALERT {first.rule} [{first.subject}]: {first.summary}, for {since}{more}"
        " — a: alerts and thresholds"
    )


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
