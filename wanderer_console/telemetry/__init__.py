"""Telemetry: the Prometheus registry and structured logging."""

from wanderer_console.telemetry.logging import configure_logging, redact
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["Metrics", "configure_logging", "redact"]
