"""OpenTelemetry traces across the chain of one evaluation: submit, outbox publish, CloudEvent delivery,
dispatch, launch, the sidecar, callbacks, aggregate, export (docs/events.md, "Traces").

Off unless configured with the standard OpenTelemetry variables (``OTEL_TRACES_EXPORTER``,
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, read through
:class:`~assay.settings.Settings`); then :func:`configure` builds an SDK tracer provider with a batching
OTLP exporter (``http/protobuf`` unless ``OTEL_EXPORTER_OTLP_PROTOCOL`` says ``grpc``) once per process.
The SDK reads the rest of its variables (headers, certificates, timeouts, ``OTEL_BSP_*``,
``OTEL_RESOURCE_ATTRIBUTES``) itself.

While off, nothing of OpenTelemetry is imported and every helper here costs one global read: :func:`span`
hands back one shared no-op context manager, :func:`traced` awaits its argument, :func:`carrier_env` is
empty. While on, every span also sets :data:`assay.core.events.trace_context`, so the outbox events written
under it carry its ``traceparent``/``tracestate`` (the CloudEvents distributed-tracing extension) and the
function that receives them continues the same trace.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from assay.core.events import trace_context
from assay.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

log = logging.getLogger(__name__)

T = TypeVar("T")
Kind = Literal["internal", "server", "client", "producer", "consumer"]
Attributes = Mapping[str, str | int | float | bool]
Parent = tuple[str | None, str | None] | Mapping[str, str]
"""Whose child a span is: ``(traceparent, tracestate)``, or the headers of an HTTP request that may carry them."""

TRACE_FILE = "trace-context"
"""Beside a local launch's ``hub-token``: its ``traceparent`` and ``tracestate`` lines, for the local sidecar."""

_tracer: Tracer | None = None
_provider: TracerProvider | None = None
_NOOP: AbstractContextManager[None] = contextlib.nullcontext()


def enabled() -> bool:
    return _tracer is not None


def exporters_of(settings: Settings) -> list[str]:
    """The span exporters the OpenTelemetry variables ask for; empty: tracing stays off."""
    if settings.otel_sdk_disabled:
        return []
    names = [n.strip().lower() for n in (settings.otel_traces_exporter or "").split(",") if n.strip()]
    if not names and settings.otel_exporter_otlp_endpoint:
        names = ["otlp"]  # an endpoint alone means OTLP, the specification's default exporter
    return [n for n in names if n != "none"]


def configure(settings: Settings, service: str) -> bool:
    """Turn tracing on for this process when the settings ask for it (once; later calls keep the first
    provider). ``service`` is ``service.name`` unless ``OTEL_SERVICE_NAME`` names it. True when on."""
    if _tracer is not None:
        return True
    names = exporters_of(settings)
    if not names:
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

    attributes = {} if settings.otel_service_name else {"service.name": service}
    provider = TracerProvider(resource=Resource.create(attributes))
    for name in names:
        exporter: SpanExporter
        if name == "otlp":
            protocol = (settings.otel_exporter_otlp_protocol or "http/protobuf").lower()
            if protocol == "grpc":
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                    OTLPSpanExporter as GrpcExporter,
                )

                exporter = GrpcExporter()
            else:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                exporter = OTLPSpanExporter()
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporter = ConsoleSpanExporter()
        else:
            log.warning("OTEL_TRACES_EXPORTER names %r, which Assay does not know; it is ignored", name)
            continue
        provider.add_span_processor(BatchSpanProcessor(exporter))
    install(provider)
    log.info("tracing on: spans go to %s", ", ".join(names), extra={"service": service})
    return True


def install(provider: TracerProvider) -> None:
    """Trace with ``provider`` from now on (:func:`configure` does this; tests install one of their own)."""
    global _tracer, _provider
    _provider = provider
    _tracer = provider.get_tracer("assay")


def uninstall() -> None:
    """Tracing off again (tests): the provider is left to its owner to shut down."""
    global _tracer, _provider
    _tracer = _provider = None


def shutdown() -> None:
    """Export what is left, stop the exporters and turn tracing off (a process that ends; tests)."""
    provider = _provider
    uninstall()
    if provider is not None:
        provider.shutdown()


def flush(timeout_seconds: float = 5.0) -> None:
    """Export what the batching processors still hold (a bench before it reads its collector)."""
    if _provider is not None:
        _provider.force_flush(int(timeout_seconds * 1000))


def span(
    name: str,
    attributes: Attributes | Callable[[], Attributes] | None = None,
    *,
    parent: Parent | None = None,
    kind: Kind = "internal",
) -> AbstractContextManager[None]:
    """A span around a block: a child of ``parent`` when given (an HTTP request's headers without a traceparent
    start a new trace), else of the running span; without either, no span: work outside an evaluation's trace
    (the sweep, an untraced launch) leaves no stray roots. ``attributes`` may be a function, called only while
    tracing is on. Off: a shared no-op."""
    if _tracer is None or (parent is None and trace_context.get() is None):
        return _NOOP
    return _span(_tracer, name, attributes() if callable(attributes) else attributes, parent, kind)


async def traced(
    name: str,
    awaitable: Awaitable[T],
    attributes: Attributes | Callable[[], Attributes] | None = None,
    *,
    parent: Parent | None = None,
    kind: Kind = "internal",
) -> T:
    """``await awaitable`` inside :func:`span` (a one-line hook where a ``with`` block would re-indent);
    ``attributes`` may be a function, called only while tracing is on. Like :func:`span`, it makes no span
    outside a trace: no ``parent`` and no running span, or a ``parent`` pair without a traceparent."""
    if _tracer is None:
        return await awaitable
    if (parent is None and trace_context.get() is None) or (isinstance(parent, tuple) and not parent[0]):
        return await awaitable
    if callable(attributes):
        attributes = attributes()
    with _span(_tracer, name, attributes, parent, kind):
        return await awaitable


def detached() -> contextvars.Context | None:
    """The context for a task that must not continue the trace of the code creating it (``create_task``'s
    ``context``): a fresh one while tracing is on; None (a copy, as usual) while it is off."""
    return None if _tracer is None else contextvars.Context()


def consuming(function: str, event: Any) -> AbstractContextManager[None]:
    """The span of ``function`` handling a CloudEvent, continuing the trace its ``traceparent`` names; a
    no-op for events that carry none (a PingSource tick) and while tracing is off."""
    if _tracer is None:
        return _NOOP
    traceparent = event.get("traceparent")
    if not isinstance(traceparent, str):
        return _NOOP
    tracestate = event.get("tracestate")
    data = event.data if isinstance(event.data, dict) else {}
    attributes: dict[str, str | int | float | bool] = {
        "cloudevents.event_id": str(event["id"]),
        "cloudevents.event_type": str(event["type"]),
        "cloudevents.event_source": str(event["source"]),
    }
    if isinstance(data.get("evaluation_id"), str):
        attributes["assay.evaluation.id"] = data["evaluation_id"]
    short = str(event["type"]).removeprefix("dev.assay.").removesuffix(".v1")
    return _span(
        _tracer,
        f"{function} {short}",
        attributes,
        (traceparent, tracestate if isinstance(tracestate, str) else None),
        "consumer",
    )


def annotate(key: str, value: str | int | float | bool) -> None:
    """Add an attribute to the running span (an id known only once the work is done)."""
    if _tracer is not None:
        from opentelemetry import trace

        trace.get_current_span().set_attribute(key, value)


def current() -> tuple[str, str | None] | None:
    """``(traceparent, tracestate)`` of the running span; None when there is none or tracing is off."""
    return trace_context.get()


def carrier_env() -> dict[str, str]:
    """``TRACEPARENT`` (and ``TRACESTATE``) of the running span, for a process that should join its trace
    (OpenTelemetry's environment-variable carrier); empty while tracing is off."""
    found = trace_context.get()
    if found is None:
        return {}
    env = {"TRACEPARENT": found[0]}
    if found[1]:
        env["TRACESTATE"] = found[1]
    return env


def write_carrier(*folders: Path) -> None:
    """The running span's context in ``<folder>/trace-context`` (the local sidecar stamps a launch's callbacks
    with it); nothing while tracing is off."""
    found = trace_context.get()
    if found is None:
        return
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / TRACE_FILE).write_text(f"{found[0]}\n{found[1] or ''}\n", encoding="utf-8")


@contextlib.contextmanager
def _span(
    tracer: Tracer,
    name: str,
    attributes: Attributes | None,
    parent: Parent | None,
    kind: Kind,
) -> Iterator[None]:
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    propagator = TraceContextTextMapPropagator()
    context = None
    if isinstance(parent, tuple):
        if parent[0]:
            incoming = {"traceparent": parent[0]}
            if parent[1]:
                incoming["tracestate"] = parent[1]
            context = propagator.extract(incoming)
    elif parent is not None and parent.get("traceparent"):
        context = propagator.extract(parent)
    with tracer.start_as_current_span(
        name, context=context, kind=SpanKind[kind.upper()], attributes=attributes
    ):
        outgoing: dict[str, str] = {}
        propagator.inject(outgoing)
        traceparent = outgoing.get("traceparent")
        token = trace_context.set((traceparent, outgoing.get("tracestate")) if traceparent else None)
        try:
            yield
        finally:
            trace_context.reset(token)


__all__ = [
    "TRACE_FILE",
    "annotate",
    "carrier_env",
    "configure",
    "consuming",
    "current",
    "detached",
    "enabled",
    "exporters_of",
    "flush",
    "install",
    "shutdown",
    "span",
    "traced",
    "uninstall",
    "write_carrier",
]
