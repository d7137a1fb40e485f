"""Traces through the sidecar: every event it forwards to the hub carries the launch's W3C trace context
(``traceparent``/``tracestate`` headers), so the hub's callback spans join the evaluation's trace.

Where the context comes from: local mode, ``<jobs_root>/<job>/<index>/trace-context`` (written by the local
hub beside ``hub-token`` while its tracing is on); pod mode, the sidecar container's ``TRACEPARENT`` /
``TRACESTATE`` (OpenTelemetry's environment carrier, set by the Kubernetes runtime). An adapter that sends its
own ``traceparent`` keeps it.

When the sidecar's own environment configures OpenTelemetry (``OTEL_TRACES_EXPORTER`` or an
``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``, ``OTEL_SDK_DISABLED`` not true) and the SDK is installed, each
forwarded event is also a span of the sidecar's (``service.name`` ``assay-sidecar``), and the hub's span is its
child. Otherwise nothing of OpenTelemetry is imported.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["TRACE_FILE", "SidecarTracing", "read_trace_file"]

logger = logging.getLogger(__name__)

TRACE_FILE = "trace-context"


def read_trace_file(folder: Path) -> dict[str, str]:
    """The ``traceparent`` (and ``tracestate``) headers in ``folder/trace-context``; empty when absent."""
    try:
        lines = (folder / TRACE_FILE).read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    headers = {"traceparent": lines[0].strip()} if lines and lines[0].strip() else {}
    if headers and len(lines) > 1 and lines[1].strip():
        headers["tracestate"] = lines[1].strip()
    return headers


def _wanted(env: Mapping[str, str]) -> list[str]:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if not names and (
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    ):
        names = ["otlp"]
    return [n for n in names if n in ("otlp", "console")]


class SidecarTracing:
    def __init__(self, env: Mapping[str, str]) -> None:
        pod = {"traceparent": env.get("TRACEPARENT", ""), "tracestate": env.get("TRACESTATE", "")}
        self.pod_context = {k: v for k, v in pod.items() if v}
        self._tracer: Any = None
        self._provider: Any = None
        self._propagator: Any = None
        self._client: Any = None
        names = _wanted(env)
        if names:
            self._start(names, env)

    def _start(self, names: list[str], env: Mapping[str, str]) -> None:
        """OpenTelemetry is optional here (the sidecar image has none of it): without it, headers only."""
        grpc = (
            env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
        ).lower() == "grpc"
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
            from opentelemetry.trace import SpanKind
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

            if grpc:
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
            else:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
                    OTLPSpanExporter,
                )
        except ImportError as exc:
            logger.warning("OpenTelemetry is configured but not installed (%s): no sidecar spans", exc)
            return
        provider = TracerProvider(resource=Resource.create({"service.name": "assay-sidecar"}))
        for name in names:
            exporter = ConsoleSpanExporter() if name == "console" else OTLPSpanExporter()
            provider.add_span_processor(BatchSpanProcessor(exporter))
        self._provider = provider
        self._tracer = provider.get_tracer("assay.sidecar")
        self._propagator = TraceContextTextMapPropagator()
        self._client = SpanKind.CLIENT

    @contextlib.contextmanager
    def forwarding(
        self, launch: Mapping[str, str], attributes: Mapping[str, Any]
    ) -> Iterator[dict[str, str]]:
        """Around forwarding one event: yields the trace headers to send (``launch``'s context, or the
        sidecar's span in it when the sidecar traces)."""
        if self._tracer is None or not launch.get("traceparent"):
            yield dict(launch)
            return
        context = self._propagator.extract(dict(launch))
        with self._tracer.start_as_current_span(
            "sidecar event", context=context, kind=self._client, attributes=attributes
        ):
            headers: dict[str, str] = {}
            self._propagator.inject(headers)
            yield headers

    def close(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()
