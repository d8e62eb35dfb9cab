"""The ``[trends]`` section: how long the per-minute trends are kept in the store."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from wanderer_console.config.section import Live, Section

__all__ = ["TrendSettings"]


class TrendSettings(Section):
    """Per-minute throughput, latency and error counts (the trends screen, ``export metrics``)."""

    days: Annotated[float, Live("the trend recorder reads it at each hourly prune")] = Field(
        default=7.0, gt=0, le=366
    )
    """Minutes older than this are deleted (hourly): at most ``days * 1440`` rows per engine."""
