"""From a kill's verdicts to its messages: one per map and target, whichever trackers matched.

A map's default tracker (its ``[filters]`` and kill routes) and its named trackers
(``[[maps.<key>.trackers]]``, :mod:`wanderer_console.config.trackers`) may match the same kill
and post to the same target: that target gets **one** message, with every matching tracker's
pings and names. Each message's outbox key is unique per (event, target), which is what the
outbox's ``UNIQUE(tenant_id, dedup_key)`` turns into exactly-once: the default tracker keeps
the key it always had (``kill:<id>:<route>``, so a kill queued before an upgrade is not sent
again after it), and a target only named trackers reached is keyed by the target
(``kill:<id>:tracker:<target key>``).

:class:`TrackerMatches` counts what each tracker matched, for the console's trackers screen.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from wanderer_console.config.model import Settings
from wanderer_console.config.routing import resolve_target, tracker_target
from wanderer_console.config.trackers import DEFAULT_TRACKER, TrackerSettings
from wanderer_console.domain.discord_limits import escape_markdown
from wanderer_console.domain.notification import Target
from wanderer_console.pipeline.rules import KillDecision, KillJudgement, Role

__all__ = ["HOUR", "KillMessage", "TrackerMatches", "plan_kill_messages"]

HOUR: Final = 3600.0


@dataclass(slots=True)
class KillMessage:
    """One message a kill makes for one map and target, and the trackers behind it."""

    tenant: str
    target: Target
    dedup_key: str
    role: Role
    decision: KillDecision | None = None
    """The default tracker's decision, when it is one of the trackers behind the message."""
    trackers: list[TrackerSettings] = field(default_factory=list)
    """The named trackers behind it, in the map's order."""

    @property
    def tracker_names(self) -> list[str]:
        """``default`` (when the default tracker is behind it), then the named trackers."""
        names = [DEFAULT_TRACKER] if self.decision is not None else []
        return names + [t.name for t in self.trackers]

    @property
    def mention_here(self) -> bool:
        """The default decision's ``@here``, or a tracker's ``ping = "here"``."""
        own = self.decision is not None and self.decision.mention_here
        return own or any(t.ping == "here" for t in self.trackers)

    @property
    def mention_everyone(self) -> bool:
        """A tracker pings ``@everyone``."""
        return any(t.ping == "everyone" for t in self.trackers)

    @property
    def role_mentions(self) -> list[str]:
        """Every tracker's roles, each once, in order."""
        return list(dict.fromkeys(role for t in self.trackers for role in t.ping_role_ids))

    @property
    def color(self) -> int | None:
        """The first tracker colour set (``None``: the kill's own colour)."""
        return next((t.color for t in self.trackers if t.color is not None), None)

    @property
    def content(self) -> str | None:
        """``Tracker **caps**`` (or ``Trackers **caps**, **intel**``) for the named trackers
        that show their name; ``None`` when none does (the default tracker's message is as
        before trackers existed)."""
        names = [f"**{escape_markdown(t.name)}**" for t in self.trackers if t.show_name]
        if not names:
            return None
        return f"Tracker{'s' if len(names) > 1 else ''} {', '.join(names)}"


def plan_kill_messages(
    killmail_id: int,
    judgement: KillJudgement,
    settings: Settings,
    on_no_target: Callable[[], None] = lambda: None,
) -> list[KillMessage]:
    """The messages a kill makes: per map, one per distinct target of its matching trackers.

    ``on_no_target`` is called for each matching tracker with nowhere to post.
    """
    plans: dict[tuple[str, str], KillMessage] = {}
    for decision in judgement.decisions:
        target = resolve_target(settings, decision.tenant, decision.route)
        if target is None:
            on_no_target()
            continue
        key = (decision.tenant, target.key)
        # One default decision per map: its target's message is keyed as it always was.
        plans[key] = KillMessage(
            decision.tenant,
            target,
            f"kill:{killmail_id}:{decision.route}",
            decision.role,
            decision=decision,
        )
    for verdict in judgement.trackers:
        if verdict.reason is not None:
            continue
        map_settings = settings.maps[verdict.tenant]
        tracker = next((t for t in map_settings.trackers if t.name == verdict.tracker), None)
        if tracker is None:
            continue
        target = tracker_target(settings, verdict.tenant, tracker)
        if target is None:
            on_no_target()
            continue
        key = (verdict.tenant, target.key)
        message = plans.get(key)
        if message is None:
            message = plans[key] = KillMessage(
                verdict.tenant,
                target,
                f"kill:{killmail_id}:tracker:{target.key}",
                verdict.role,
            )
        message.trackers.append(tracker)
    return list(plans.values())


class TrackerMatches:
    """What each tracker matched lately (the trackers screen's "last hour"), and in all."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._times: dict[tuple[str, str], deque[float]] = {}
        self._totals: dict[tuple[str, str], int] = {}
        self._last: dict[tuple[str, str], float] = {}

    def record(self, tenant: str, trackers: Iterable[str]) -> None:
        """One kill matched these trackers of ``tenant`` now."""
        now = self._clock()
        for name in trackers:
            key = (tenant, name)
            times = self._times.setdefault(key, deque())
            times.append(now)
            self._prune(times, now)
            self._totals[key] = self._totals.get(key, 0) + 1
            self._last[key] = now

    @staticmethod
    def _prune(times: deque[float], now: float) -> None:
        while times and times[0] <= now - HOUR:
            times.popleft()

    def last_hour(self, tenant: str, tracker: str) -> int:
        """Matches in the last hour."""
        times = self._times.get((tenant, tracker))
        if not times:
            return 0
        self._prune(times, self._clock())
        return len(times)

    def total(self, tenant: str, tracker: str) -> int:
        """Matches since the engine started."""
        return self._totals.get((tenant, tracker), 0)

    def last_at(self, tenant: str, tracker: str) -> float | None:
        """When it last matched (``None``: not since the engine started)."""
        return self._last.get((tenant, tracker))
