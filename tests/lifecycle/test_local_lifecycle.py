"""One evaluation the whole way on the local hub: submit, dispatch, a real eval-hub-sdk adapter as a
subprocess calling back over HTTP, aggregate, and the failure paths EvalHub 1.0.2 left hanging."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import FIXTURES, LiveServer, launch_headers
from tests.support.waiting import wait_for

ADAPTER = FIXTURES / "adapters" / "exact_match" / "adapter.py"
TERMINAL = {"completed", "failed", "cancelled", "partially_failed"}


def exact_match_provider(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "exact",
        "name": "Exact match (test adapter)",
        "runtime": {"local": {"command": f"{sys.executable} {ADAPTER}"}},
        "benchmarks": [
            {
                "id": "qa",
                "name": "Recorded QA",
                "category": "knowledge",
                "metrics": ["exact_match", "f1", "exact_match_stderr", "f1_stderr"],
                "primary_score": {"metric": "exact_match", "scale": {"min": 0, "max": 1}},
                "pass_criteria": {"threshold": 0.5},
            },
            {
                "id": "qa_f1",
                "name": "Recorded QA (F1)",
                "category": "knowledge",
                "metrics": ["exact_match", "f1"],
                "primary_score": {"metric": "f1", "scale": {"min": 0, "max": 1}},
                "pass_criteria": {"threshold": 0.9},
            },
        ],
    }
    body.update(overrides)
    return body


def job_body(*benchmarks: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "lifecycle",
        "model": {"url": "http://127.0.0.1:9/v1", "name": "recorded-model"},
        "benchmarks": list(benchmarks) or [{"id": "qa", "provider_id": "exact"}],
    }
    body.update(overrides)
    return body


@pytest.fixture()
def hub(live_hub: LiveServer) -> httpx.Client:
    client = live_hub.client(timeout=30)
    assert client.post("/api/v1/evaluations/providers", json=exact_match_provider()).status_code == 201
    return client


def finished(client: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    def terminal() -> dict[str, Any] | None:
        job = client.get(f"/api/v1/evaluations/jobs/{job_id}").json()
        return job if job["status"]["state"] in TERMINAL else None

    return dict(wait_for(terminal, timeout=timeout))


def submit(client: httpx.Client, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    response = client.post("/api/v1/evaluations/jobs", json=body, **kwargs)
    assert response.status_code == 202, response.text
    return dict(response.json())


def test_a_job_runs_to_completion_with_metrics_tests_and_composite(hub: httpx.Client) -> None:
    created = submit(
        hub, job_body({"id": "qa", "provider_id": "exact"}, {"id": "qa_f1", "provider_id": "exact"})
    )
    # Every benchmark has a pending entry from the start, so no client thinks the job is done early.
    assert [b["status"] for b in created["status"]["benchmarks"]] == ["pending", "pending"]
    assert created["status"]["state"] == "pending"

    job = finished(hub, created["resource"]["id"])
    assert job["status"]["state"] == "completed"
    assert job["status"]["message"]["message_code"] == "evaluation_job_completed"
    entries = job["status"]["benchmarks"]
    assert all(b["status"] == "completed" and b["progress"] == 1.0 for b in entries)
    assert all(b["started_at"] and b["completed_at"] for b in entries)  # stamped by the server
    assert job["status"]["started_at"] and job["status"]["completed_at"]

    qa, qa_f1 = job["results"]["benchmarks"]
    assert 0 < qa["metrics"]["exact_match"] < 1
    assert qa["metrics"]["f1"] >= qa["metrics"]["exact_match"]
    assert qa["test"]["evaluated"] is True
    assert qa["test"]["primary_score_metric"] == "exact_match"
    assert qa["test"]["pass"] is (qa["metrics"]["exact_match"] >= 0.5)
    assert qa["test"]["stderr"] == qa["metrics"]["exact_match_stderr"]
    assert (
        qa["test"]["confidence_interval"]["low"]
        < qa["metrics"]["exact_match"]
        < qa["test"]["confidence_interval"]["high"]
    )
    assert qa_f1["test"]["primary_score_metric"] == "f1"
    assert qa_f1["test"]["threshold"] == 0.9

    composite = job["results"]["test"]
    expected = (qa["metrics"]["exact_match"] + qa_f1["metrics"]["f1"]) / 2
    assert composite["score"] == pytest.approx(expected, rel=1e-12)
    assert composite["coverage"] == 1.0
    assert composite["pass"] is (expected >= 0.5)
    assert qa["fingerprint"].startswith("sha256:") and qa["fingerprint"] != qa_f1["fingerprint"]

    metrics = hub.get("/metrics").text
    assert 'assay_benchmarks_finished_total{code="",provider="exact",status="completed"} 2.0' in metrics
    assert 'assay_evaluations_finished_total{state="completed"} 1.0' in metrics
    assert 'assay_benchmark_queue_wait_seconds_count{provider="exact"} 2.0' in metrics
    assert 'assay_benchmark_duration_seconds_count{provider="exact",status="completed"} 2.0' in metrics


def test_logs_of_the_adapter_are_served(hub: httpx.Client) -> None:
    job = finished(hub, submit(hub, job_body())["resource"]["id"])
    whole = hub.get(f"/api/v1/evaluations/jobs/{job['resource']['id']}/logs")
    assert whole.status_code == 200
    assert whole.headers["content-type"].startswith("text/plain")
    assert f"=== pod={job['resource']['id']}-0 container=local benchmark_id=qa ===" in whole.text
    one = hub.get(
        f"/api/v1/evaluations/jobs/{job['resource']['id']}/benchmarks/0/logs", params={"timestamps": "true"}
    )
    assert one.status_code == 200 and one.text.startswith("20")
    assert hub.get(f"/api/v1/evaluations/jobs/{job['resource']['id']}/benchmarks/7/logs").status_code == 404
    bad = hub.get(f"/api/v1/evaluations/jobs/{job['resource']['id']}/logs", params={"tail_lines": "0"})
    assert bad.status_code == 400 and bad.json()["message_code"] == "query_parameter_value_invalid"


@pytest.mark.parametrize(
    ("fail", "code"),
    [
        ("silent_exit", "adapter_exit_nonzero"),
        ("exit0_no_results", "results_not_delivered"),
        ("exception", "evaluation_error"),
    ],
)
def test_an_adapter_that_fails_or_vanishes_fails_the_benchmark_with_a_reason(
    hub: httpx.Client, fail: str, code: str
) -> None:
    body = job_body({"id": "qa", "provider_id": "exact", "parameters": {"fail": fail}})
    job = finished(hub, submit(hub, body)["resource"]["id"])
    assert job["status"]["state"] == "failed"
    assert job["status"]["message"]["message_code"] == "evaluation_job_failed"
    entry = job["status"]["benchmarks"][0]
    assert entry["status"] == "failed"
    assert entry["error_message"]["message_code"] == code
    # A failed job still gets a composite: the failure counts, and coverage says how much ran.
    assert job["results"]["test"]["coverage"] == 0.0
    assert job["results"]["test"]["pass"] is False


def test_partial_failure_is_scored_with_coverage(hub: httpx.Client) -> None:
    body = job_body(
        {"id": "qa", "provider_id": "exact", "weight": 3},
        {"id": "qa_f1", "provider_id": "exact", "parameters": {"fail": "exception"}},
    )
    job = finished(hub, submit(hub, body)["resource"]["id"])
    assert job["status"]["state"] == "partially_failed"
    composite = job["results"]["test"]
    em = job["results"]["benchmarks"][0]["metrics"]["exact_match"]
    assert composite["score"] == pytest.approx(3 * em / 4)
    assert composite["coverage"] == pytest.approx(0.75)
    assert composite["benchmarks_not_scored"] == 1


def test_timeout_stops_the_adapter_and_fails_the_benchmark(hub: httpx.Client) -> None:
    body = job_body(
        {"id": "qa", "provider_id": "exact", "parameters": {"sleep_seconds": 60}, "timeout_seconds": 1}
    )
    job = finished(hub, submit(hub, body)["resource"]["id"], timeout=30)
    assert job["status"]["benchmarks"][0]["error_message"]["message_code"] == "benchmark_timeout"


def test_cancel_stops_running_benchmarks_and_a_finished_job_cannot_be_cancelled(
    hub: httpx.Client, live_hub: LiveServer
) -> None:
    body = job_body(
        {"id": "qa", "provider_id": "exact", "parameters": {"sleep_seconds": 60}},
        {"id": "qa_f1", "provider_id": "exact", "parameters": {"sleep_seconds": 60}},
    )
    job_id = submit(hub, body)["resource"]["id"]
    runner = live_hub.app.state.hub.lifecycle.runtime  # type: ignore[attr-defined]
    wait_for(lambda: runner.is_active(job_id, 0, 1) and runner.is_active(job_id, 1, 1))
    wait_for(lambda: hub.get(f"/api/v1/evaluations/jobs/{job_id}").json()["status"]["state"] == "running")

    assert hub.post(f"/api/v1/evaluations/jobs/{job_id}/cancel").status_code == 204
    job = hub.get(f"/api/v1/evaluations/jobs/{job_id}").json()
    assert job["status"]["state"] == "cancelled"
    assert job["status"]["message"]["message_code"] == "evaluation_job_cancelled"
    assert {b["status"] for b in job["status"]["benchmarks"]} == {"cancelled"}
    wait_for(lambda: not runner.is_active(job_id, 0, 1) and not runner.is_active(job_id, 1, 1), timeout=20)
    assert hub.delete(f"/api/v1/evaluations/jobs/{job_id}").status_code == 204  # idempotent

    done = finished(hub, submit(hub, job_body())["resource"]["id"])
    refused = hub.delete(f"/api/v1/evaluations/jobs/{done['resource']['id']}")
    assert refused.status_code == 409
    assert refused.json()["message_code"] == "job_can_not_be_updated"
    assert "completed" in refused.json()["message"]
    # The refused cancel touched nothing: the logs are still there.
    assert "=== pod=" in hub.get(f"/api/v1/evaluations/jobs/{done['resource']['id']}/logs").text
    assert (
        hub.delete(
            f"/api/v1/evaluations/jobs/{done['resource']['id']}", params={"hard_delete": "true"}
        ).status_code
        == 204
    )
    assert hub.get(f"/api/v1/evaluations/jobs/{done['resource']['id']}").status_code == 404


def test_retry_reruns_only_the_failed_benchmarks(hub: httpx.Client, tmp_path: Path) -> None:
    dataset = tmp_path / "late.jsonl"
    body = job_body(
        {"id": "qa", "provider_id": "exact"},
        {"id": "qa_f1", "provider_id": "exact", "parameters": {"dataset": str(dataset)}},
    )
    job = finished(hub, submit(hub, body)["resource"]["id"])
    job_id = job["resource"]["id"]
    assert job["status"]["state"] == "partially_failed"
    first_qa = job["results"]["benchmarks"][0]
    assert hub.post(f"/api/v1/evaluations/jobs/{job_id}/retry").status_code == 202  # nothing fixed yet

    job = finished(hub, job_id)
    assert job["status"]["benchmarks"][1]["attempt"] == 2
    dataset.write_text((FIXTURES / "adapters" / "exact_match" / "dataset.jsonl").read_text())
    retried = hub.post(f"/api/v1/evaluations/jobs/{job_id}/retry")
    assert retried.status_code == 202
    assert retried.json()["status"]["benchmarks"][0]["status"] == "completed"  # kept, not rerun

    job = finished(hub, job_id)
    assert job["status"]["state"] == "completed"
    assert job["status"]["benchmarks"][0]["attempt"] == 1
    assert job["status"]["benchmarks"][1]["attempt"] == 3
    assert job["results"]["benchmarks"][0] == first_qa
    assert job["results"]["test"]["coverage"] == 1.0
    again = hub.post(f"/api/v1/evaluations/jobs/{job_id}/retry")
    assert again.status_code == 409 and again.json()["message_code"] == "nothing_to_retry"


def test_idempotency_key_returns_the_same_job(hub: httpx.Client) -> None:
    headers = {"Idempotency-Key": "ci-run-42"}
    first = submit(hub, job_body(), headers=headers)
    second = hub.post("/api/v1/evaluations/jobs", json=job_body(), headers=headers)
    assert second.status_code == 202
    assert second.json()["resource"]["id"] == first["resource"]["id"]
    assert second.headers["idempotent-replayed"] == "true"
    other = hub.post("/api/v1/evaluations/jobs", json=job_body(name="different"), headers=headers)
    assert other.status_code == 409 and other.json()["message_code"] == "idempotency_key_reused"
    assert hub.get("/api/v1/evaluations/jobs").json()["total_count"] == 1


def test_late_and_foreign_events_are_acknowledged_or_refused_without_harm(
    hub: httpx.Client, live_hub: LiveServer
) -> None:
    job = finished(hub, submit(hub, job_body())["resource"]["id"])
    job_id = job["resource"]["id"]
    own = launch_headers(live_hub, job_id)  # the credential this job's launch had
    late = {"benchmark_status_event": {"provider_id": "exact", "id": "qa", "status": "running"}}
    assert hub.post(f"/api/v1/evaluations/jobs/{job_id}/events", json=late, headers=own).status_code == 204
    assert hub.get(f"/api/v1/evaluations/jobs/{job_id}").json() == job
    stray = {"benchmark_status_event": {"provider_id": "exact", "id": "nope", "status": "running"}}
    running = submit(hub, job_body({"id": "qa", "provider_id": "exact", "parameters": {"sleep_seconds": 30}}))
    running_id = running["resource"]["id"]
    answer = hub.post(
        f"/api/v1/evaluations/jobs/{running_id}/events",
        json=stray,
        headers=launch_headers(live_hub, running_id),
    )
    assert answer.status_code == 422 and answer.json()["message_code"] == "unknown_benchmark"
    nope = launch_headers(live_hub, "nope")
    assert hub.post("/api/v1/evaluations/jobs/nope/events", json=late, headers=nope).status_code == 404
    malformed = hub.post(
        f"/api/v1/evaluations/jobs/{job_id}/events",
        json={"benchmark_status_event": {"id": "qa"}},
        headers=own,
    )
    assert malformed.status_code == 400
    hub.delete(f"/api/v1/evaluations/jobs/{running_id}")


def test_list_filters_and_newest_first(hub: httpx.Client, make_client: Callable[..., Any]) -> None:
    a = submit(hub, job_body(name="a", tags=["nightly"]))
    b = submit(hub, job_body(name="b"))
    finished(hub, a["resource"]["id"])
    finished(hub, b["resource"]["id"])
    listed = hub.get("/api/v1/evaluations/jobs").json()
    assert [j["name"] for j in listed["items"]] == ["b", "a"]
    assert [
        j["name"] for j in hub.get("/api/v1/evaluations/jobs", params={"tags": "nightly"}).json()["items"]
    ] == ["a"]
    assert (
        hub.get("/api/v1/evaluations/jobs", params={"status": "completed|failed"}).json()["total_count"] == 2
    )
    assert hub.get("/api/v1/evaluations/jobs", params={"status": "running"}).json()["total_count"] == 0
    assert hub.get("/api/v1/evaluations/jobs", params={"sort": "x"}).status_code == 400
    other_tenant = hub.get("/api/v1/evaluations/jobs", headers={"X-Tenant": "team-b"}).json()
    assert other_tenant["total_count"] == 0


def test_reports_for_ci_name_what_failed_and_why(hub: httpx.Client) -> None:
    import xml.etree.ElementTree as ET

    body = job_body(
        {"id": "qa", "provider_id": "exact", "pass_criteria": {"threshold": 0.99}},
        {"id": "qa_f1", "provider_id": "exact", "parameters": {"fail": "exception"}},
    )
    job = finished(hub, submit(hub, body)["resource"]["id"])
    junit = hub.get(f"/api/v1/evaluations/jobs/{job['resource']['id']}/report")
    assert junit.status_code == 200 and junit.headers["content-type"].startswith("application/xml")
    suite = ET.fromstring(junit.text).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "2", "1")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    qa_failure = cases["qa[0]"].find("failure")
    assert qa_failure is not None and "exact_match =" in (qa_failure.get("message") or "")
    assert "needs >= 0.99" in (qa_failure.get("message") or "")
    error = cases["qa_f1[1]"].find("error")
    assert error is not None and (error.get("message") or "").startswith("evaluation_error")
    gate = cases["composite"].find("failure")
    assert gate is not None and "coverage 0.5" in (gate.get("message") or "")

    markdown = hub.get(
        f"/api/v1/evaluations/jobs/{job['resource']['id']}/report", params={"format": "markdown"}
    )
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.text.startswith("### ❌ Assay evaluation `lifecycle`: failed")
    assert "| ❌ | qa | exact |" in markdown.text and "| 💥 | qa_f1 | exact |" in markdown.text
    bad = hub.get(f"/api/v1/evaluations/jobs/{job['resource']['id']}/report", params={"format": "pdf"})
    assert bad.status_code == 400


def test_compare_two_runs_of_the_same_benchmark(hub: httpx.Client) -> None:
    baseline = finished(hub, submit(hub, job_body())["resource"]["id"])
    fewer = job_body({"id": "qa", "provider_id": "exact", "parameters": {"num_examples": 4}})
    current = finished(hub, submit(hub, fewer)["resource"]["id"])
    url = f"/api/v1/evaluations/jobs/{current['resource']['id']}/compare"
    answer = hub.get(url, params={"baseline": baseline["resource"]["id"], "max_drop": "0.01"})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    (row,) = result["benchmarks"]
    now = current["results"]["benchmarks"][0]["metrics"]["exact_match"]
    then = baseline["results"]["benchmarks"][0]["metrics"]["exact_match"]
    assert row["metric"] == "exact_match" and row["delta"] == pytest.approx(now - then)
    assert row["stderr"] > 0  # both runs report exact_match_stderr
    assert result["composite"]["compared"] is True
    assert hub.get(url).json()["message_code"] == "query_parameter_required"
    assert hub.get(url, params={"baseline": "nope"}).status_code == 404
    assert hub.get(url, params={"baseline": baseline["resource"]["id"], "sigma": "-1"}).status_code == 400


def test_an_eval_hub_sdk_adapter_runs_through_the_sidecar_unchanged(live_hub: LiveServer) -> None:
    """The third-party exact_match adapter (eval-hub-sdk, no Assay import) gets the sidecar as its callback
    URL and model URL (EvalHub's local-with-sidecar layout) and completes as if it talked to the hub."""
    client = live_hub.client(timeout=30)
    assert client.post("/api/v1/evaluations/providers", json=exact_match_provider()).status_code == 201
    job = finished(client, submit(client, job_body())["resource"]["id"])
    assert job["status"]["state"] == "completed"
    (result,) = job["results"]["benchmarks"]
    assert result["usage"]["requests"] == 0  # the adapter scores recorded answers: no model calls
    settings = live_hub.settings  # type: ignore[attr-defined]
    spec_path = (
        settings.data_dir / "jobs" / job["resource"]["id"] / "0" / "exact" / "qa" / "meta" / "job.json"
    )
    spec = json.loads(spec_path.read_text())
    sidecar = (settings.data_dir / "sidecar" / "sidecar.port").read_text().strip()
    assert spec["callback_url"] == f"http://127.0.0.1:{sidecar}"
    assert spec["model"]["url"] == f"http://127.0.0.1:{sidecar}/model/{job['resource']['id']}/0/v1"
    info = json.loads((spec_path.parents[3] / "sidecar-job-info.json").read_text())
    assert info["model"] == {
        "url": "http://127.0.0.1:9",
        "name": "recorded-model",
        "http_timeout": info["model"]["http_timeout"],
    }


def test_the_exporter_is_asked_only_for_jobs_that_ask_for_exports(
    start_hub: Callable[..., LiveServer],
) -> None:
    """``evaluation.finished`` says whether the job asks for exports: one that asks for none is not read again
    once finished (every evaluation of a hub without exports paid a full read for nothing)."""
    asked: list[str] = []

    class RecordingExporter:  # the port assay.lifecycle.Exporter, recording instead of exporting
        async def export(self, ctx: Any, evaluation_id: str) -> None:
            asked.append(evaluation_id)

        async def retry_due(self, ctx: Any) -> dict[str, int]:
            return {}

    hub = start_hub(exporter=lambda settings: RecordingExporter())
    client = hub.client(timeout=30)
    assert client.post("/api/v1/evaluations/providers", json=exact_match_provider()).status_code == 201
    oci = {"coordinates": {"oci_host": "127.0.0.1:9", "oci_repository": "assay/exports-flag"}}
    plain = submit(client, job_body())["resource"]["id"]
    exported = submit(client, job_body(exports={"oci": oci}))["resource"]["id"]
    cancelled = submit(client, job_body(exports={"oci": oci}))["resource"]["id"]
    assert client.delete(f"/api/v1/evaluations/jobs/{cancelled}").status_code == 204
    assert {finished(client, job)["status"]["state"] for job in (plain, exported)} == {"completed"}
    wait_for(lambda: {exported, cancelled} <= set(asked), "both exports asked for")
    assert plain not in asked
