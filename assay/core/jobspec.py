"""The ``job.json`` an adapter reads (docs/compatibility.md), built from a job's request and frozen plan."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from assay.core.plan import PlannedBenchmark


def job_spec(
    evaluation_id: str,
    request: Mapping[str, Any],
    planned: PlannedBenchmark,
    *,
    callback_url: str,
    model_url: str | None = None,
    group: Sequence[PlannedBenchmark] = (),
) -> dict[str, Any]:
    """What eval-hub-sdk's ``JobSpec`` expects: ``parameters`` always an object (``{}`` when empty),
    ``num_examples`` lifted out of it, ``primary_score`` as resolved at submission, ``tags`` a list.

    ``group`` (Assay) names further benchmarks that the same process runs, for providers with
    ``runtime.group_benchmarks``; eval-hub-sdk ignores the key, Assay's adapter SDK reads it."""
    model = dict(request.get("model", {}))
    model.pop("parameters", None)
    if model_url is not None:
        model["url"] = model_url
    spec: dict[str, Any] = {
        "id": evaluation_id,
        "provider_id": planned.provider_id,
        "benchmark_id": planned.id,
        "benchmark_index": planned.index,
        "model": model,
        "parameters": dict(planned.parameters),
        "callback_url": callback_url,
        "tags": [],
    }
    spec.update(_benchmark_fields(planned))
    if group:
        spec["group"] = [
            {"benchmark_id": member.id, "benchmark_index": member.index, **_benchmark_fields(member)}
            for member in group
        ]
    experiment = request.get("experiment")
    if isinstance(experiment, Mapping):
        spec["experiment_name"] = experiment.get("name")
        spec["tags"] = [
            {"key": str(t.get("key")), "value": str(t.get("value", ""))} for t in experiment.get("tags", [])
        ]
    exports = request.get("exports")
    if isinstance(exports, Mapping) and isinstance(exports.get("oci"), Mapping):
        spec["exports"] = {"oci": {"coordinates": exports["oci"]["coordinates"]}}
    if planned.test_data_ref is not None:
        spec["test_data_ref"] = planned.test_data_ref
    return spec


def _benchmark_fields(planned: PlannedBenchmark) -> dict[str, Any]:
    fields: dict[str, Any] = {"parameters": dict(planned.parameters)}
    if planned.num_examples is not None:
        fields["num_examples"] = planned.num_examples
    if planned.score.metric is not None:
        fields["primary_score"] = {
            "metric": planned.score.metric,
            "lower_is_better": planned.score.lower_is_better,
        }
    return fields


__all__ = ["job_spec"]
