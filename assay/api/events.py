"""The ``data`` of each CloudEvent type Assay emits (docs/events.md). The types and their consumers are in
``assay.core.events``; these models are the wire contract, checked by the snapshot tests in
tests/contract so that a change to an event is a visible diff. Receivers ignore members they do not know
(``extra="allow"``): adding a member is compatible, removing or retyping one is not."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from assay.api.job_resource import CompositeTest


class EvaluationEventData(BaseModel):
    """What every event about an evaluation carries."""

    model_config = ConfigDict(extra="allow")

    evaluation_id: str
    tenant: str


class EvaluationAcceptedData(EvaluationEventData):
    """``dev.assay.evaluation.accepted.v1``: a job was committed (or the sweep re-dispatches it)."""

    redispatch: bool | None = Field(None, description="Set by the sweep when it dispatches a job again.")


class EvaluationRetriedData(EvaluationEventData):
    """``dev.assay.evaluation.retried.v1``: these benchmarks were reset for another attempt."""

    indices: list[int]


class EvaluationCancelledData(EvaluationEventData):
    """``dev.assay.evaluation.cancelled.v1``: the user cancelled (``purge``: and deleted) the job."""

    purge: bool


class BenchmarkFinishedData(EvaluationEventData):
    """``dev.assay.benchmark.finished.v1``: a benchmark's run became terminal."""

    benchmark_index: int
    attempt: int
    status: Literal["completed", "failed", "cancelled"]


class EvaluationFinishedData(EvaluationEventData):
    """``dev.assay.evaluation.finished.v1``: the job reached a terminal state (a cancel carries no test)."""

    state: Literal["completed", "failed", "cancelled", "partially_failed"]
    test: CompositeTest | None = None
    exports: bool | None = Field(
        default=None,
        description="Whether the job asks for exports (an OCI artifact, an MLflow experiment); when false, "
        "the exporter does not read the job. Absent (older events): the exporter reads the job to know.",
    )


class SweepRequestedData(BaseModel):
    """``dev.assay.sweep.requested.v1``: a timer's tick (a PingSource's ``data`` is free-form)."""

    model_config = ConfigDict(extra="allow")


__all__ = [
    "BenchmarkFinishedData",
    "EvaluationAcceptedData",
    "EvaluationCancelledData",
    "EvaluationEventData",
    "EvaluationFinishedData",
    "EvaluationRetriedData",
    "SweepRequestedData",
]
