"""The evaluation job resource as the API returns it: ``GET /jobs/{id}``, list items, and the answers of
submit and retry. The request is echoed (every :class:`~assay.api.jobs.JobRequest` field), then ``status``
(state, a pending entry per benchmark from the start), ``results`` (per-benchmark results and tests, the
composite ``test``, export outputs) and Assay's frozen ``plan``.

These models describe the wire: tests validate real documents against them, and ``/openapi.json`` shows
them. Objects the adapters or the user fill (``metrics``, ``parameters``, ``custom``...) stay open.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from assay.api.common import MetricScale, PassCriteria
from assay.api.jobs import (
    CollectionRef,
    Experiment,
    Exports,
    HardwareConfig,
    JobBenchmark,
    MessageInfo,
    MetricSchemaEntry,
    ModelRef,
    QueueRef,
)

_Closed = ConfigDict(extra="forbid")


class JobResourceMeta(BaseModel):
    model_config = _Closed

    id: str
    tenant: str | None = None
    owner: str | None = None
    created_at: str = Field(description="RFC 3339, UTC (`Z`).")
    updated_at: str | None = None
    mlflow_experiment_id: str | None = None


class BenchmarkRunStatus(BaseModel):
    """One benchmark's run, at its current attempt."""

    model_config = _Closed

    provider_id: str
    id: str
    benchmark_index: int
    status: Literal["pending", "running", "completed", "failed", "cancelled"]
    phase: str | None = None
    progress: float | None = None
    current_step: str | None = None
    total_steps: int | None = None
    completed_steps: int | None = None
    attempt: int = Field(description="1, then one more for each retry of this benchmark.")
    error_message: MessageInfo | None = None
    warning_message: MessageInfo | None = None
    started_at: str | None = None
    completed_at: str | None = None


class JobStatus(BaseModel):
    model_config = _Closed

    state: Literal["pending", "running", "completed", "failed", "cancelled", "partially_failed"]
    message: MessageInfo | None = None
    benchmarks: list[BenchmarkRunStatus] = Field(default_factory=list)
    progress: float = Field(description="Mean progress over the benchmarks, a finished one counting as 1.")
    started_at: str | None = None
    completed_at: str | None = None
    retries: list[dict[str, Any]] | None = Field(None, description="One entry per retry of the job.")


class Interval(BaseModel):
    model_config = _Closed

    level: float
    low: float
    high: float


class BenchmarkTest(BaseModel):
    """How one benchmark was judged against its threshold (``evaluated: false`` says why not)."""

    model_config = _Closed

    evaluated: bool
    pass_: bool = Field(alias="pass")
    reason: str | None = Field(
        None, description="Why the test was not evaluated: no_primary_score, metric_missing, no_threshold..."
    )
    error: str | None = None
    primary_score_metric: str | None = None
    lower_is_better: bool | None = None
    primary_score: float | None = None
    stderr: float | None = None
    confidence_interval: Interval | None = None
    normalised_score: float | None = None
    scale: MetricScale | None = None
    threshold: float | None = None


class CompositeTest(BaseModel):
    """The job's weighted, normalised composite score and its verdict (docs/lifecycle.md, "Scoring")."""

    model_config = _Closed

    evaluated: bool
    pass_: bool | None = Field(
        alias="pass",
        description="The composite's verdict; with `evaluated: false` the per-benchmark tests decide it "
        "(`decided_by: benchmarks`), and null means nothing could be judged at all.",
    )
    reason: str | None = None
    decided_by: Literal["benchmarks"] | None = None
    score: float | None = None
    threshold: float
    coverage: float | None = Field(None, description="The share of the benchmarks' weight really scored.")
    stderr: float | None = None
    benchmarks_counted: int | None = None
    benchmarks_not_scored: int | None = None
    unscored: list[int] | None = Field(
        None, description="Indexes of weighted benchmarks left out of the score: their metric has no scale."
    )


class BenchmarkResult(BaseModel):
    """A finished benchmark's results as its adapter reported them, plus the hub's test."""

    model_config = ConfigDict(extra="allow")

    id: str
    provider_id: str
    benchmark_index: int
    metrics: dict[str, Any] | None = None
    metrics_schema: list[MetricSchemaEntry] | None = None
    additional_info: dict[str, Any] | None = None
    artifacts: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    mlflow_run_id: str | None = None
    logs_path: str | None = None
    overall_score: float | None = None
    job_meta: dict[str, Any] | None = None
    test: BenchmarkTest | None = None
    fingerprint: str


class JobResults(BaseModel):
    """Per-benchmark results, the composite test, and what the exports produced (MLflow, OCI)."""

    model_config = ConfigDict(extra="allow")

    benchmarks: list[BenchmarkResult] | None = None
    test: CompositeTest | None = None
    mlflow_experiment_id: str | None = None
    mlflow_experiment_url: str | None = None
    oci: dict[str, Any] | None = None


class PlannedScore(BaseModel):
    model_config = _Closed

    metric: str | None = None
    lower_is_better: bool = False
    scale: MetricScale | None = None


class PlannedBenchmarkDocument(BaseModel):
    model_config = _Closed

    benchmark_index: int
    provider_id: str
    id: str
    weight: float
    num_examples: int | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    test_data_ref: dict[str, Any] | None = None
    primary_score: PlannedScore | None = None
    pass_criteria: PassCriteria | None = None
    timeout_seconds: float | None = None
    fingerprint: str


class PlanThreshold(BaseModel):
    model_config = _Closed

    threshold: float
    source: Literal["job", "collection", "default"]


class JobPlan(BaseModel):
    """What the job runs, frozen at submission: editing the catalogue afterwards changes nothing."""

    model_config = _Closed

    benchmarks: list[PlannedBenchmarkDocument]
    pass_criteria: PlanThreshold


class JobCollectionRef(CollectionRef):
    collection_updated_at: str | None = None


class Job(BaseModel):
    """An evaluation job."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    resource: JobResourceMeta
    name: str
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    model: ModelRef
    benchmarks: list[JobBenchmark] | None = None
    collection: JobCollectionRef | None = None
    pass_criteria: PassCriteria | None = None
    experiment: Experiment | None = None
    custom: dict[str, Any] = Field(default_factory=dict)
    exports: Exports | None = None
    hardware_config: HardwareConfig | None = None
    queue: QueueRef | None = None
    status: JobStatus
    results: JobResults
    plan: JobPlan
    warnings: list[dict[str, str]] | None = Field(
        None, description="On submit only: what was accepted but deserves attention."
    )


class JobPage(BaseModel):
    model_config = _Closed

    first: dict[str, str]
    next: dict[str, str] | None = None
    limit: int
    total_count: int
    items: list[Job] = Field(default_factory=list)


__all__ = [
    "BenchmarkResult",
    "BenchmarkRunStatus",
    "BenchmarkTest",
    "CompositeTest",
    "Job",
    "JobPage",
    "JobPlan",
    "JobResults",
    "JobStatus",
]
