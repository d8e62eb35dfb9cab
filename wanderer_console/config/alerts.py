"""The ``[alerts]`` section: the conditions the console watches in itself and raises as alerts.

Each rule is a threshold and a duration: the rule fires once its measure has been past the
threshold for ``for_seconds`` without a break, and resolves as soon as it is back. The alert
engine (:mod:`wanderer_console.observe.alerts`) reads this section at every evaluation, so every
field applies live (the console's alerts screen edits them through the config file).

    [alerts.outbox_depth]
    threshold = 500        # pending notifications
    for_seconds = 120
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import Field

from wanderer_console.config.discord_values import WebhookUrl
from wanderer_console.config.section import Live, Section

__all__ = ["RULES", "AlertRule", "AlertSettings", "RuleInfo"]

_READ: Final = Live("the alert engine reads it at every evaluation")


class AlertRule(Section):
    """One rule: fire when the measure is past ``threshold`` for ``for_seconds``."""

    enabled: Annotated[bool, _READ] = True
    """Evaluate this rule."""
    threshold: Annotated[float, _READ] = Field(default=0.0, ge=0)
    """The limit, in the rule's unit (see ``RULES`` and the example config)."""
    for_seconds: Annotated[float, _READ] = Field(default=0.0, ge=0, le=86_400)
    """How long the measure must stay past the threshold before the alert fires."""


class RuleInfo:
    """What one rule measures: its unit, which side of the threshold is bad, a summary."""

    __slots__ = ("above", "summary", "unit")

    def __init__(self, summary: str, unit: str, *, above: bool = True) -> None:
        self.summary = summary
        self.unit = unit
        self.above = above
        """True: the measure is bad above the threshold; False: below it (a floor)."""


RULES: Final[dict[str, RuleInfo]] = {
    "source_disconnected": RuleInfo("a source has been disconnected", "seconds"),
    "map_silent": RuleInfo("no map event while the map stream is connected", "seconds"),
    "outbox_depth": RuleInfo("notifications waiting in the outbox", "notifications"),
    "outbox_oldest": RuleInfo("age of the oldest pending notification", "seconds"),
    "delivery_failures": RuleInfo("failed Discord deliveries", "per minute"),
    "rate_limited": RuleInfo("Discord 429 answers", "per minute"),
    "breaker_open": RuleInfo("a circuit breaker has been open", "seconds"),
    "queue_saturation": RuleInfo("pipeline queue fill", "fraction of its bound"),
    "cache_hit_ratio": RuleInfo("name cache hit ratio", "ratio", above=False),
    "disk_space": RuleInfo("free space in the data directory", "MiB", above=False),
}
"""Every rule by name (the ``rule`` label of ``wc_alert_firing``), in display order."""


def _rule(threshold: float, for_seconds: float) -> Any:
    return Field(default_factory=lambda: AlertRule(threshold=threshold, for_seconds=for_seconds))


class AlertSettings(Section):
    """Alerts the console raises about itself (banner, history, metric, operations Discord)."""

    enabled: Annotated[bool, _READ] = True
    """Evaluate the rules (off: nothing fires; alerts firing resolve)."""
    interval_seconds: Annotated[float, Live("the evaluation loop reads it before each wait")] = (
        Field(default=15.0, ge=0.05, le=3600)
    )
    """How often the rules are evaluated."""
    rate_window_seconds: Annotated[float, _READ] = Field(default=300.0, ge=1, le=86_400)
    """The window rates (failures, 429s per minute) and the cache hit ratio are measured over."""
    cache_min_lookups: Annotated[int, _READ] = Field(default=100, ge=1)
    """The cache hit ratio rule waits for this many look-ups in the window."""
    discord_webhook_url: Annotated[WebhookUrl, _READ] = None
    """An operations webhook: each alert that fires (and, later, resolves) is posted there, through
    the outbox like every notification (blank: no messages)."""
    discord_min_interval_seconds: Annotated[float, _READ] = Field(default=600.0, ge=0)
    """One rule posts at most one firing message this often (a flapping rule is not repeated;
    its resolved message follows only a firing message that was posted)."""
    source_disconnected: AlertRule = _rule(120.0, 0.0)
    """Seconds a source (map stream, killstream socket, R2Z2, the bot's Discord gateway) has not
    been connected."""
    map_silent: AlertRule = _rule(1800.0, 0.0)
    """Seconds without a map event while the map's stream is connected."""
    outbox_depth: AlertRule = _rule(1000.0, 300.0)
    """Notifications pending in the outbox."""
    outbox_oldest: AlertRule = _rule(900.0, 60.0)
    """Age in seconds of the oldest pending notification."""
    delivery_failures: AlertRule = _rule(10.0, 120.0)
    """Failed delivery attempts per minute (over ``rate_window_seconds``)."""
    rate_limited: AlertRule = _rule(5.0, 120.0)
    """Discord 429 answers per minute (over ``rate_window_seconds``)."""
    breaker_open: AlertRule = _rule(300.0, 0.0)
    """Seconds a circuit breaker has been open."""
    queue_saturation: AlertRule = _rule(0.9, 60.0)
    """Pipeline queue depth as a fraction of its bound (sources are paused at 1.0)."""
    cache_hit_ratio: AlertRule = _rule(0.8, 600.0)
    """A floor: the name cache's hit ratio over ``rate_window_seconds``."""
    disk_space: AlertRule = _rule(1024.0, 0.0)
    """A floor: free MiB on the data directory's file system."""

    def rule(self, name: str) -> AlertRule:
        """The rule called ``name`` (one of :data:`RULES`)."""
        if name not in RULES:
            raise KeyError(name)
        rule: AlertRule = getattr(self, name)
        return rule
