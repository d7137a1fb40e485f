"""The CloudEvent catalogue of Assay: every event type the functions exchange, and how one is built.

Types are reverse-DNS and versioned (``dev.assay.<noun>.<verb>.v1``); ``source`` names the tenant and
the component (``/assay/<tenant>/<component>``); ``subject`` the evaluation or benchmark; the
extensions ``partitionkey`` and ``correlationid`` carry the evaluation id (Kafka brokers order by
partition key), ``causationid`` the event that caused this one. See ``docs/events.md``.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

EVALUATION_ACCEPTED = "dev.assay.evaluation.accepted.v1"
"""submit -> dispatch: a job was committed; launch its pending benchmarks."""
EVALUATION_RETRIED = "dev.assay.evaluation.retried.v1"
"""submit -> dispatch: failed benchmarks were reset for another attempt; launch them."""
EVALUATION_CANCELLED = "dev.assay.evaluation.cancelled.v1"
"""submit -> dispatch: the user cancelled; stop whatever still runs."""
BENCHMARK_FINISHED = "dev.assay.benchmark.finished.v1"
"""callback/runtime/sweep -> aggregate (and dispatch, to reap the runtime): a run became terminal."""
EVALUATION_FINISHED = "dev.assay.evaluation.finished.v1"
"""aggregate -> aggregate (exports: MLflow, OCI), notifiers: the job reached a terminal state and is scored."""
SWEEP_REQUESTED = "dev.assay.sweep.requested.v1"
"""timer (PingSource) -> sweep: republish, reconcile, fail what is stale."""

CATALOGUE: dict[str, tuple[str, ...]] = {
    EVALUATION_ACCEPTED: ("dispatch",),
    EVALUATION_RETRIED: ("dispatch",),
    EVALUATION_CANCELLED: ("dispatch",),
    BENCHMARK_FINISHED: ("aggregate", "dispatch"),
    EVALUATION_FINISHED: ("aggregate",),  # exports (MLflow, OCI) run once the job is terminal
    SWEEP_REQUESTED: ("sweep",),
}
"""Which function consumes each type: the local broker's subscriptions, and the Knative Triggers."""

KUBERNETES_RESOURCE_EVENTS = (
    "dev.knative.apiserver.resource.add",
    "dev.knative.apiserver.resource.update",
    "dev.knative.apiserver.resource.delete",
    "dev.knative.apiserver.ref.add",
    "dev.knative.apiserver.ref.update",
    "dev.knative.apiserver.ref.delete",
)
"""ApiServerSource (Jobs, Pods and Kueue Workloads of Assay) -> sweep: the watcher looks at once. The
``resource.*`` types in the source's ``Resource`` mode (as deployed), ``ref.*`` in ``Reference`` mode."""

MODEL_VERSION_CREATED = "dev.assay.registry.model_version.created.v1"
"""a model registry (through a Knative Trigger) -> callback at ``POST /api/v1/events``: a new version."""
MODEL_VERSION_UPDATED = "dev.assay.registry.model_version.updated.v1"
"""a model registry -> callback at ``POST /api/v1/events``: a version's aliases, tags or stage changed."""
REGISTRY_EVENTS = (MODEL_VERSION_CREATED, MODEL_VERSION_UPDATED)
"""External CloudEvents the submit function ingests over HTTP (evaluation policies decide what they start)."""


trace_context: ContextVar[tuple[str, str | None] | None] = ContextVar("assay_trace_context", default=None)
"""``(traceparent, tracestate)`` of the span running now, set by :mod:`assay.telemetry.tracing` only while
tracing is on; every event built meanwhile carries it (the CloudEvents distributed-tracing extension)."""


def _traceparent() -> str | None:
    current = trace_context.get()
    return current[0] if current is not None else None


def _tracestate() -> str | None:
    current = trace_context.get()
    return current[1] if current is not None else None


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """A CloudEvent waiting in the outbox, written in the same transaction as the change it announces."""

    type: str
    source: str
    data: dict[str, Any]
    subject: str | None = None
    partition_key: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    traceparent: str | None = field(default_factory=_traceparent)
    tracestate: str | None = field(default_factory=_tracestate)

    def attributes(self) -> dict[str, str]:
        """CloudEvent context attributes (extensions lowercase, as the spec requires)."""
        attrs = {"id": self.id, "type": self.type, "source": self.source, "specversion": "1.0"}
        optional = {
            "subject": self.subject,
            "partitionkey": self.partition_key,
            "correlationid": self.correlation_id,
            "causationid": self.causation_id,
            "traceparent": self.traceparent,
            "tracestate": self.tracestate,
        }
        attrs.update({k: v for k, v in optional.items() if v is not None})
        attrs["datacontenttype"] = "application/json"
        return attrs


def source_of(tenant: str, component: str) -> str:
    return f"/assay/{tenant}/{component}"


def evaluation_event(
    kind: str,
    tenant: str,
    component: str,
    evaluation_id: str,
    data: dict[str, Any] | None = None,
    *,
    index: int | None = None,
    causation_id: str | None = None,
) -> OutboxEvent:
    """An event about evaluation ``evaluation_id`` (or one of its benchmarks when ``index`` is given)."""
    subject = f"evaluations/{evaluation_id}" + (f"/benchmarks/{index}" if index is not None else "")
    payload = {"evaluation_id": evaluation_id, "tenant": tenant, **(data or {})}
    if index is not None:
        payload["benchmark_index"] = index
    return OutboxEvent(
        type=kind,
        source=source_of(tenant, component),
        data=payload,
        subject=subject,
        partition_key=evaluation_id,
        correlation_id=evaluation_id,
        causation_id=causation_id,
    )


__all__ = [
    "BENCHMARK_FINISHED",
    "CATALOGUE",
    "EVALUATION_ACCEPTED",
    "EVALUATION_CANCELLED",
    "EVALUATION_FINISHED",
    "EVALUATION_RETRIED",
    "KUBERNETES_RESOURCE_EVENTS",
    "MODEL_VERSION_CREATED",
    "MODEL_VERSION_UPDATED",
    "REGISTRY_EVENTS",
    "SWEEP_REQUESTED",
    "OutboxEvent",
    "evaluation_event",
    "source_of",
    "trace_context",
]
