"""What an evaluation becomes in MLflow, as data: one parent run for the job and one child run per benchmark,
with their parameters, metrics and tags. Pure: :meth:`Exports._mlflow` turns it into tracker calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from assay import __version__
from assay.core.states import BenchmarkRun
from assay.store import EvaluationRecord

_RUN_STATUS = {"completed": "FINISHED", "cancelled": "KILLED"}  # anything else: FAILED


def number(value: object) -> float | None:
    """A metric value MLflow can log (booleans as 0/1), or None."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


@dataclass(frozen=True, slots=True)
class ChildRun:
    index: int
    name: str
    params: dict[str, Any]
    metrics: dict[str, float]
    tags: dict[str, str]
    status: str
    adapter_run_id: str | None
    """The run the adapter logged to itself (linked from the child by a tag), if any."""


@dataclass(frozen=True, slots=True)
class RunLayout:
    experiment_name: str
    experiment_tags: dict[str, str]
    artifact_location: str | None
    identity: dict[str, str]
    parent_params: dict[str, Any]
    parent_metrics: dict[str, float]
    parent_tags: dict[str, str]
    parent_status: str
    children: list[ChildRun]


def run_layout(record: EvaluationRecord) -> RunLayout:
    """The MLflow runs of a finished evaluation (``record.request`` names an experiment)."""
    experiment = record.request["experiment"]
    experiment_tags = {str(t["key"]): str(t.get("value", "")) for t in experiment.get("tags", [])}
    experiment_tags.update(
        {"context": "eval-hub", "assay.tenant": record.tenant, "assay.experiment": experiment["name"]}
    )
    model = record.request.get("model", {})
    plan = record.plan
    identity = {"assay.evaluation_id": record.id}
    common_tags = {
        **identity,
        "context": "eval-hub",
        "evaluation_job_id": record.id,
        "evaluation_job_name": record.name,
        "assay.tenant": record.tenant,
        "assay.version": __version__,
        "model.name": str(model.get("name", "")),
        "model.url": str(model.get("url", "")),
    }
    if plan.collection_id:
        common_tags["collection.id"] = plan.collection_id
        common_tags["collection.version"] = plan.collection_updated_at or ""
    test = record.results.get("test") or {}
    parent_metrics: dict[str, float] = {}
    for key in ("score", "coverage", "stderr", "pass"):
        value = number(test.get(key))
        if value is not None:
            parent_metrics[f"composite_{key}"] = value
    children = [_child_run(record, row.run, common_tags) for row in record.runs]
    for child in children:
        # On the parent too, under names that are the same for every job of these benchmarks: the
        # experiment's run table compares evaluations benchmark by benchmark.
        if "test.normalised_score" in child.metrics:
            parent_metrics[f"score/{_label(record, child.index)}"] = child.metrics["test.normalised_score"]
    parent_params: dict[str, Any] = {
        "benchmarks": len(plan.benchmarks),
        "composite_threshold": plan.composite_threshold,
        "model_name": model.get("name", ""),
    }
    if plan.collection_id:
        parent_params["collection_id"] = plan.collection_id
    return RunLayout(
        # Scoped per tenant: two tenants naming the same experiment never share it.
        experiment_name=f"{record.tenant}/{experiment['name']}",
        experiment_tags=experiment_tags,
        artifact_location=experiment.get("artifact_location"),
        identity=identity,
        parent_params=parent_params,
        parent_metrics=parent_metrics,
        parent_tags={**common_tags, "state": record.state},
        parent_status=_RUN_STATUS.get(record.state, "FAILED"),
        children=children,
    )


def _child_run(record: EvaluationRecord, run: BenchmarkRun, common_tags: dict[str, str]) -> ChildRun:
    planned = record.plan.benchmarks[run.index]
    metrics = {
        name: value
        for name, raw in (run.result.get("metrics") or {}).items()
        if (value := number(raw)) is not None
    }
    run_test = run.result.get("test") or {}
    for key in ("primary_score", "normalised_score", "stderr", "pass"):
        value = number(run_test.get(key))
        if value is not None:
            metrics[f"test.{key}"] = value
    params: dict[str, Any] = {
        "benchmark": run.benchmark_id,
        "provider": run.provider_id,
        "benchmark_index": run.index,
        "fingerprint": planned.fingerprint,
        "weight": planned.weight,
    }
    if planned.num_examples is not None:
        params["num_examples"] = planned.num_examples
    if planned.score.metric:
        params["primary_metric"] = planned.score.metric
    params.update({f"parameters.{k}": v for k, v in planned.parameters.items()})
    adapter_run = run.result.get("adapter_mlflow_run_id") or run.result.get("mlflow_run_id")
    return ChildRun(
        index=run.index,
        name=f"{run.provider_id}/{run.benchmark_id}",
        params=params,
        metrics=metrics,
        tags={
            **common_tags,
            "status": run.status,
            "provider": run.provider_id,
            "benchmark": run.benchmark_id,
        },
        status=_RUN_STATUS.get(run.status, "FAILED"),
        adapter_run_id=str(adapter_run) if adapter_run else None,
    )


def _label(record: EvaluationRecord, index: int) -> str:
    """``provider/benchmark``, with ``/index`` when the job runs that benchmark more than once."""
    planned = record.plan.benchmarks[index]
    twins = sum(b.provider_id == planned.provider_id and b.id == planned.id for b in record.plan.benchmarks)
    return f"{planned.provider_id}/{planned.id}" + (f"/{index}" if twins > 1 else "")
