"""Telemetry: the Prometheus registry and structured logging.

:class:`Metrics` is the console's own registry (one per runtime, never the global default) with
every counter and gauge the layers update; ``/metrics`` exposes it. :func:`configure_logging`
installs the one-JSON-object-per-line format with :func:`redact` as the last defence against a
leaked secret. :mod:`~.context` binds correlation ids (``bind_request_id`` per HTTP request,
``bind_event`` while the pipeline handles an event) that every log line then carries.
"""

from wanderer_console.telemetry.logging import configure_logging, redact
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["Metrics", "configure_logging", "redact"]
