"""Our DefaultCallbacks sends the bodies eval-hub-sdk 1.0.6's does, plus only the documented additions."""

from __future__ import annotations

import copy
import inspect
from datetime import UTC, datetime
from typing import Any

import pytest
from evalhub.adapter import DefaultCallbacks as EvalHubCallbacks
from evalhub.adapter import JobResults as EvalHubResults
from evalhub.adapter import JobStatusUpdate as EvalHubUpdate
from evalhub.adapter.models.cards import EvalCardMetadata
from evalhub.models.api import PrimaryScore as EvalHubPrimaryScore

import adapters.sdk
from adapters.sdk import AdapterSettings, DefaultCallbacks, JobResults, JobSpec, JobStatusUpdate
from tests.support.recorders import EventRecorder

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:evalhub")

SPEC: dict[str, Any] = {
    "id": "job-1",
    "provider_id": "demo",
    "benchmark_id": "bench_a",
    "benchmark_index": 2,
    "model": {"url": "http://127.0.0.1:9/v1", "name": "m"},
    "parameters": {},
    "callback_url": "",
    "primary_score": {"metric": "accuracy"},
}
# The status fields eval-hub-sdk never puts on the wire and Assay does.
PROGRESS_FIELDS = ("progress", "current_step", "total_steps", "completed_steps")

STATUS_UPDATES: list[dict[str, Any]] = [
    {"status": "running", "phase": "initializing"},
    {"status": "running", "phase": "loading_data", "progress": 0.1},
    {
        "status": "running",
        "phase": "running_evaluation",
        "progress": 0.5,
        "current_step": "scoring 10 examples",
        "total_steps": 4,
        "completed_steps": 2,
    },
    {"status": "running", "warning_message": {"message": "slow model", "message_code": "slow_model"}},
    {"status": "failed", "error_message": {"message": "boom", "message_code": "evaluation_error"}},
    {
        "status": "failed",
        "error_message": {
            "message": "mlflow down",
            "message_code": "mlflow_save_failed",
            "message_origin": "sdk",
        },
    },
    {"status": "cancelled"},
]

COMPLETED_AT = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
RESULTS: list[dict[str, Any]] = [
    {
        # overall_score resolved from primary_score; additional_info from the hook; cards; artifacts.
        "id": "job-1",
        "benchmark_id": "bench_a",
        "benchmark_index": 2,
        "model_name": "m",
        "results": [
            {
                "metric_name": "accuracy",
                "metric_value": 0.75,
                "confidence_interval": [0.6, 0.9],
                "num_samples": 40,
            },
            {"metric_name": "label", "metric_value": "good", "metric_type": "str"},
            {"metric_name": "passed", "metric_value": True},
            {"metric_name": "count", "metric_value": 40},
        ],
        "num_examples_evaluated": 40,
        "duration_seconds": 1.5,
        "completed_at": COMPLETED_AT,
        "metrics_schema": [{"name": "accuracy", "type": "numeric"}, {"name": "label", "type": "categorical"}],
        "oci_artifact": {"digest": "sha256:abc", "reference": "quay.io/org/repo:tag@sha256:abc"},
        "mlflow_run_id": "run-7",
        "evaluation_metadata": {"artifacts": {"samples": "s3://bucket/samples.jsonl"}},
    },
    {
        # Explicit overall_score and additional_info win; no schema, no artifacts but the env card.
        "id": "job-1",
        "benchmark_id": "bench_a",
        "benchmark_index": 2,
        "model_name": "m",
        "results": [{"metric_name": "accuracy", "metric_value": 0.5}],
        "overall_score": 0.25,
        "num_examples_evaluated": 4,
        "duration_seconds": 0.1,
        "completed_at": COMPLETED_AT,
        "additional_info": {"zero_shot": 0.5},
    },
]


def additional_info(results: Any) -> dict[str, Any]:
    return {"dataset": "qa.jsonl", "n": results.num_examples_evaluated}


def evalhub_callbacks(url: str) -> Any:
    return EvalHubCallbacks(
        job_id=SPEC["id"],
        benchmark_id=SPEC["benchmark_id"],
        provider_id=SPEC["provider_id"],
        benchmark_index=SPEC["benchmark_index"],
        sidecar_url=url,
        primary_score=EvalHubPrimaryScore(metric="accuracy"),
        generate_additional_info_fn=additional_info,
    )


def our_callbacks(url: str) -> DefaultCallbacks:
    spec = JobSpec.model_validate({**SPEC, "callback_url": url})
    return DefaultCallbacks(
        spec, settings=AdapterSettings.from_env({}), generate_additional_info_fn=additional_info
    )


def split(recorder: EventRecorder, count: int) -> tuple[list[Any], list[Any]]:
    bodies = recorder.delivered
    assert len(bodies) == 2 * count, bodies
    return bodies[:count], bodies[count:]


def test_status_bodies_match_eval_hub_sdk_plus_progress(recorder: EventRecorder) -> None:
    theirs = evalhub_callbacks(recorder.url)
    for update in STATUS_UPDATES:
        theirs.report_status(EvalHubUpdate.model_validate(update))
    ours = our_callbacks(recorder.url)
    for update in STATUS_UPDATES:
        ours.report_status(JobStatusUpdate.model_validate(update))

    evalhub_bodies, our_bodies = split(recorder, len(STATUS_UPDATES))
    for update, expected, got in zip(STATUS_UPDATES, evalhub_bodies, our_bodies, strict=True):
        additions = {k: update[k] for k in PROGRESS_FIELDS if k in update}
        assert got == {"benchmark_status_event": {**expected["benchmark_status_event"], **additions}}
    # Same URL and path for both, the fixed events template.
    paths = {r.path for r in recorder.requests}
    assert paths == {"/api/v1/evaluations/jobs/job-1/events"}
    # The comparison is not vacuous: the progress fields really are ours alone.
    assert "progress" not in evalhub_bodies[2]["benchmark_status_event"]
    assert our_bodies[2]["benchmark_status_event"]["completed_steps"] == 2


@pytest.mark.parametrize("case", range(len(RESULTS)))
def test_results_bodies_match_eval_hub_sdk(recorder: EventRecorder, case: int) -> None:
    data = RESULTS[case]
    card = EvalCardMetadata(languages=["en"], languages_count=1, developer_footnotes="test card")
    theirs = evalhub_callbacks(recorder.url)
    theirs.report_results(EvalHubResults.model_validate({**copy.deepcopy(data), "eval_card": card}))
    ours = our_callbacks(recorder.url)
    sent = JobResults.model_validate({**copy.deepcopy(data), "eval_card": card})
    ours.report_results(sent)

    [expected], [got] = split(recorder, 1)
    assert got == expected
    event = got["benchmark_status_event"]
    assert event["status"] == "completed"
    assert event["overall_score"] == data.get("overall_score", 0.75)
    assert sent.overall_score == event["overall_score"]  # resolved and written back, as eval-hub-sdk does
    assert "python_version" in event["artifacts"]["evalhub.env_card"]
    assert event["artifacts"]["evalhub.eval_card"]["languages"] == ["en"]


def test_stderr_travels_as_its_own_metric(recorder: EventRecorder) -> None:
    data: dict[str, Any] = {
        **copy.deepcopy(RESULTS[0]),
        "results": [
            {"metric_name": "accuracy", "metric_value": 0.75, "stderr": 0.05},
            # An explicit <metric>_stderr metric wins over the field.
            {"metric_name": "f1", "metric_value": 0.5, "stderr": 0.2},
            {"metric_name": "f1_stderr", "metric_value": 0.1},
        ],
        "metrics_schema": [{"name": "accuracy", "type": "numeric"}],
    }
    theirs = evalhub_callbacks(recorder.url)
    theirs.report_results(EvalHubResults.model_validate(copy.deepcopy(data)))  # ignores the unknown stderr
    our_callbacks(recorder.url).report_results(JobResults.model_validate(data))

    [expected], [got] = split(recorder, 1)
    want = copy.deepcopy(expected["benchmark_status_event"])
    want["metrics"]["accuracy_stderr"] = 0.05
    want["metrics_schema"].append({"name": "accuracy_stderr", "type": "numeric"})
    assert got["benchmark_status_event"] == want
    assert got["benchmark_status_event"]["metrics"]["f1_stderr"] == 0.1


def test_public_surface_is_exact() -> None:
    # Submodules (adapters.sdk.oci once imported) are reachable as attributes but are not the surface.
    exported = {
        name
        for name, value in vars(adapters.sdk).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert exported == set(adapters.sdk.__all__)
