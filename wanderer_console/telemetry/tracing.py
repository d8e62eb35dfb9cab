"""OpenTelemetry tracing of each event, from the source that read it to the Discord request.

A thin seam over the optional ``opentelemetry`` packages (``pip install
'wanderer-console[otel]'``): nothing here imports them until :func:`configure` is called with
tracing enabled, and while tracing is off every helper returns at once (``None``, or a shared
no-op context manager), so the hot path pays a function call and nothing else.

An event's trace context travels as a W3C ``traceparent`` string (only when its trace is sampled:
an unsampled event goes through untraced) on the item a source hands to
the pipeline (:func:`source_span`, or the ingest request's span, which honours the caller's own
``traceparent``), on the decided write (:func:`current_traceparent`), then on its outbox rows
(the ``trace_parent`` column), so the delivery spans (:func:`start_spans`) join the event's
trace however much later, and in whichever process, the notification goes out.

The spans of one event: the source's (``sse.event``, ``killstream.kill``, ``POST
/api/v1/events``, ...), ``event.process`` with ``dedup``, ``rules``, ``enrich`` (and an ``esi``
span per ESI request) inside, ``outbox.write``, then one ``discord.send`` per attempt (a 429 and
its retry are two).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

__all__ = [
    "NOOP_SPAN",
    "SpanHandle",
    "configure",
    "current_trace_id",
    "current_traceparent",
    "enabled",
    "event_span",
    "incoming",
    "shutdown",
    "shutdown_within",
    "source_span",
    "span",
    "start_spans",
]

log = logging.getLogger(__name__)

Attributes = Mapping[str, str | int | float | bool]

NOOP_SPAN: Final = contextlib.nullcontext()
"""What :func:`span` returns while tracing is off (reusable, free to enter)."""


class _State:
    __slots__ = ("propagator", "provider", "ratio", "trace", "tracer")

    def __init__(self) -> None:
        self.ratio = 1.0
        """Share of new traces recorded, drawn before any span is made (:func:`sample`)."""
        self.tracer: Any = None
        self.provider: Any = None
        self.propagator: Any = None
        self.trace: Any = None  # the opentelemetry.trace module


_state = _State()


def enabled() -> bool:
    """True while tracing is configured and on."""
    return _state.tracer is not None


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def configure(
    *,
    enabled: bool,
    sampling_ratio: float = 0.1,
    exporter: str = "otlp",
    service_name: str = "wanderer-console",
    span_exporter: Any = None,
) -> str | None:
    """Set tracing up (or off); returns why it stays off, or ``None`` when it is on.

    ``span_exporter`` replaces the configured exporter (tests pass the SDK's in-memory one; its
    spans are exported synchronously). The provider is the console's own, never the global
    one, so a host application's tracing is left alone. ``OTEL_SDK_DISABLED=true`` keeps it
    off; ``OTEL_TRACES_SAMPLER`` replaces ``sampling_ratio``; ``OTEL_SERVICE_NAME`` and
    ``OTEL_RESOURCE_ATTRIBUTES`` are read by the SDK's resource.
    """
    shutdown()
    if not enabled:
        return "disabled in [tracing]"
    if _truthy("OTEL_SDK_DISABLED"):
        return "OTEL_SDK_DISABLED is set"
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError as exc:
        return (
            f"the opentelemetry packages are not installed ({exc.name}):"
            " pip install 'wanderer-console[otel]'"
        )
    processor: Any = None
    if span_exporter is not None:
        processor = SimpleSpanProcessor(span_exporter)
    elif exporter == "console":
        processor = BatchSpanProcessor(ConsoleSpanExporter())
    elif exporter == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            return (
                "exporter = 'otlp' needs the OTLP exporter:"
                " pip install 'wanderer-console[otlp]' (or set exporter = 'console' or 'none')"
            )
        processor = BatchSpanProcessor(OTLPSpanExporter())
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    resource = Resource.create(attributes)
    if os.environ.get("OTEL_TRACES_SAMPLER"):
        provider = TracerProvider(resource=resource)  # the SDK reads the sampler from the env
        _state.ratio = 1.0
    else:
        # A new trace is drawn by :func:`sample` before any span is made (an event left out
        # costs a random number, not a span); a trace with a parent follows the parent's flag.
        provider = TracerProvider(resource=resource, sampler=ParentBased(ALWAYS_ON))
        _state.ratio = sampling_ratio
    if processor is not None:
        provider.add_span_processor(processor)
    _state.provider = provider
    _state.trace = trace
    _state.propagator = TraceContextTextMapPropagator()
    _state.tracer = provider.get_tracer("wanderer_console")
    return None


_TRACEPARENT: Final = re.compile(
    r"^[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$"
)


def incoming(header: str | None) -> str | None:
    """A caller's ``traceparent`` header if it is well formed (W3C: version, a non-zero trace
    id and parent id, flags), else ``None``: a malformed one starts a trace drawn as any other,
    so a client cannot force its requests to be recorded by sending garbage."""
    if header is None:
        return None
    value = header.strip().lower()
    return value if _TRACEPARENT.match(value) else None


def sample() -> bool:
    """Draw whether a new trace (an event or request without a parent) is recorded."""
    return _state.ratio >= 1.0 or random.random() < _state.ratio


def _detach() -> Any:
    """Turn tracing off; return the provider that was on (``None`` if none was)."""
    provider = _state.provider
    _state.tracer = _state.provider = _state.propagator = _state.trace = None
    return provider


def shutdown() -> None:
    """Flush what was recorded and turn tracing off (a no-op while it is off). Blocks until
    the exporter is done (up to 30 s with a collector down or slow): not on the engine's loop,
    where :func:`shutdown_within` is used."""
    provider = _detach()
    if provider is not None:
        provider.shutdown()


async def shutdown_within(seconds: float) -> bool:
    """Turn tracing off and flush what was recorded, waiting at most ``seconds``; False (and a
    warning) when the flush did not end by then.

    The flush runs in a thread of its own: the SDK's exporter posts with a blocking client and
    retries for up to 10 s per batch, and its shutdown waits up to 30 s for the exporting
    thread, so a collector down or slow would hold the loop (the console, the rest of a stop)
    that long. Past ``seconds`` the spans still waiting are left behind (the thread is a daemon:
    it never keeps the process alive)."""
    provider = _detach()
    if provider is None:
        return True
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def flush() -> None:
        try:
            provider.shutdown()
        except Exception:  # the SDK's own fault: the spans are lost either way
            log.exception("tracing: flush at stop failed")
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(done.set)

    threading.Thread(target=flush, name="wc-tracing-flush", daemon=True).start()
    try:
        async with asyncio.timeout(seconds):
            await done.wait()
    except TimeoutError:
        log.warning(
            "tracing: spans not exported at stop (the collector is down or slow); left behind",
            extra={"ctx": {"waited_seconds": seconds}},
        )
        return False
    return True


def _context(traceparent: str | None) -> Any:
    """The OpenTelemetry context a ``traceparent`` names (``None``: the current one)."""
    if traceparent is None:
        return None
    return _state.propagator.extract({"traceparent": traceparent})


def _traceparent_of(span_: Any) -> str:
    carrier: dict[str, str] = {}
    _state.propagator.inject(carrier, context=_state.trace.set_span_in_context(span_))
    return carrier.get("traceparent", "")


def source_span(name: str, attributes: Attributes | None = None) -> str | None:
    """Record that a source read an event now; return the ``traceparent`` the event carries on.

    The span starts a new trace (drawn by :func:`sample`) unless a recorded span is current
    (an HTTP request's), whose child it then is. ``None`` while tracing is off, and for an
    event whose trace is not sampled: nothing of it would be recorded, so it goes on untraced
    and costs what it costs with tracing off (its log lines carry no trace id).
    """
    tracer = _state.tracer
    if tracer is None:
        return None
    if not _state.trace.get_current_span().is_recording() and not sample():
        return None
    started = tracer.start_span(name, attributes=attributes)
    try:
        if not started.get_span_context().trace_flags.sampled:
            return None
        return _traceparent_of(started) or None
    finally:
        started.end()


def span(name: str, attributes: Attributes | None = None) -> contextlib.AbstractContextManager[Any]:
    """A child span of the current one for the block; a shared no-op while tracing is off and
    outside a recorded span (an untraced event never starts a trace of its own here)."""
    tracer = _state.tracer
    if tracer is None or not _state.trace.get_current_span().is_recording():
        return NOOP_SPAN
    return tracer.start_as_current_span(name, attributes=attributes)  # type: ignore[no-any-return]


@contextlib.contextmanager
def event_span(
    name: str, traceparent: str | None, attributes: Attributes | None = None, *, kind: str = ""
) -> Iterator[Any]:
    """A span made current for the block, child of ``traceparent`` (an event's, or a caller's
    header; a new trace when it is ``None`` or malformed). ``kind="server"`` marks a request
    served. Use only while :func:`enabled`."""
    tracer = _state.tracer
    span_kind = _state.trace.SpanKind.SERVER if kind == "server" else _state.trace.SpanKind.INTERNAL
    with tracer.start_as_current_span(
        name, context=_context(traceparent), attributes=attributes, kind=span_kind
    ) as current:
        yield current


def current_traceparent() -> str | None:
    """The ``traceparent`` of the current span (``None`` off tracing or outside any span)."""
    if _state.tracer is None:
        return None
    current = _state.trace.get_current_span()
    if not current.get_span_context().is_valid:
        return None
    return _traceparent_of(current) or None


def current_trace_id() -> str | None:
    """The current trace id as 32 hex digits, for log lines (``None`` when there is none)."""
    if _state.tracer is None:
        return None
    context = _state.trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


class SpanHandle:
    """Spans started together for several events (one Discord request carries up to ten
    notifications): each is a child of its own event's context; they end together."""

    __slots__ = ("_spans", "traceparents")

    def __init__(self, spans: list[Any], traceparents: list[str | None]) -> None:
        self._spans = spans
        self.traceparents = traceparents
        """Per input, the new span's ``traceparent`` (``None`` where the input had none)."""

    def set(self, key: str, value: str | int | float | bool) -> None:
        """Set an attribute on every span."""
        for item in self._spans:
            item.set_attribute(key, value)

    def error(self, description: str) -> None:
        """Mark every span failed."""
        status = _state.trace.Status(_state.trace.StatusCode.ERROR, description)
        for item in self._spans:
            item.set_status(status)

    def end(self) -> None:
        """End every span."""
        for item in self._spans:
            item.end()


def start_spans(
    name: str, parents: Sequence[str | None], attributes: Attributes | None = None
) -> SpanHandle | None:
    """Start one span per distinct ``traceparent`` in ``parents`` (each a child of it);
    ``None`` while tracing is off or when no parent has a trace context."""
    tracer = _state.tracer
    if tracer is None or not any(parents):
        return None
    started: dict[str, tuple[Any, str]] = {}
    out: list[str | None] = []
    for parent in parents:
        if parent is None:
            out.append(None)
            continue
        if parent not in started:
            child = tracer.start_span(name, context=_context(parent), attributes=attributes)
            started[parent] = (child, _traceparent_of(child))
        out.append(started[parent][1])
    return SpanHandle([child for child, _ in started.values()], out)
