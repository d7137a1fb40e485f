"""An OpenTelemetry collector stand-in: OTLP/HTTP with protobuf bodies (``POST /v1/traces``) on loopback, keeping
every span it receives, for the tracing tests and ``bench/trace_one.py``."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.support.servers import serving_http


@dataclass(frozen=True, slots=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, object] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


class Collector:
    """The spans received so far (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []
        self.url = ""

    def add(self, body: bytes) -> None:
        from google.protobuf.json_format import MessageToDict
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        found = []
        for resource_spans in request.resource_spans:
            service = next(
                (a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"),
                "",
            )
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {
                        a.key: next(iter(MessageToDict(a.value).values()), None) for a in span.attributes
                    }
                    found.append(
                        ReceivedSpan(
                            service=service,
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            kind=span.kind,
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            attributes=attributes,
                        )
                    )
        with self._lock:
            self._spans.extend(found)

    def spans(self, trace_id: str | None = None) -> list[ReceivedSpan]:
        with self._lock:
            return [s for s in self._spans if trace_id is None or s.trace_id == trace_id]


def _handler(collector: Collector) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            collector.add(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def otlp_collector() -> Iterator[Collector]:
    """A receiver of OTLP/HTTP protobuf on loopback; ``collector.url`` is its base URL (for
    ``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
    collector = Collector()
    with serving_http(_handler(collector)) as url:
        collector.url = url
        yield collector


def tree(spans: list[ReceivedSpan]) -> str:
    """The spans of one trace as an indented tree, children by start time, each with its duration and the time
    it started after the trace's first span."""
    if not spans:
        return "(no spans)"
    ids = {s.span_id for s in spans}
    children: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        children.setdefault(span.parent_id if span.parent_id in ids else "", []).append(span)
    origin = min(s.start_ns for s in spans)
    lines: list[str] = []

    def walk(parent: str, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.start_ns):
            label = f"{'  ' * depth}{span.name}"
            lines.append(
                f"{label:<48} {span.service:<15} +{(span.start_ns - origin) / 1e6:8.1f} ms"
                f" {span.seconds * 1000:9.1f} ms"
            )
            walk(span.span_id, depth + 1)

    walk("", 0)
    return "\n".join(lines)
