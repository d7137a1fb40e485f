"""The unmodified eval-hub-sdk client and `evalhub eval run --wait` drive a real evaluation on Assay:
the adapter is written with eval-hub-sdk's FrameworkAdapter and runs under the local runtime."""

from __future__ import annotations

from pathlib import Path

from evalhub import (  # type: ignore[import-untyped]
    BenchmarkConfig,
    JobSubmissionRequest,
    ModelConfig,
    SyncEvalHubClient,
)

from tests.conftest import ADMIN_TOKEN, LiveServer
from tests.evalhub_clients.test_evalhub_sdk import _evalhub
from tests.lifecycle.test_local_lifecycle import exact_match_provider
from tests.support.waiting import wait_for


def _with_provider(live_hub: LiveServer) -> None:
    with live_hub.client() as http:
        created = http.post("/api/v1/evaluations/providers", json=exact_match_provider())
    assert created.status_code == 201, created.text


def test_sdk_submits_waits_and_reads_results(live_hub: LiveServer) -> None:
    _with_provider(live_hub)
    sdk = SyncEvalHubClient(base_url=live_hub.url, auth_token=ADMIN_TOKEN)
    request = JobSubmissionRequest(
        name="sdk-run",
        model=ModelConfig(url="http://127.0.0.1:9/v1", name="recorded-model"),
        benchmarks=[
            BenchmarkConfig(id="qa", provider_id="exact", parameters={"num_examples": 10}),
            BenchmarkConfig(id="qa_f1", provider_id="exact"),
        ],
    )
    job = sdk.jobs.submit(request)
    assert job.status.state.value == "pending"
    assert len(job.status.benchmarks) == 2

    done = sdk.jobs.wait_for_completion(job.resource.id, timeout=60, poll_interval=0.2)
    # The SDK returns once every benchmark is terminal; aggregate settles the job's own state a hop
    # later, so the state it reports may still be "running" for a moment (docs/lifecycle.md).
    assert done.effective_state.value == "completed"
    wait_for(lambda: sdk.jobs.get(job.resource.id).status.state.value == "completed", timeout=10)
    assert [b.status.value for b in done.status.benchmarks] == ["completed", "completed"]
    first = done.results.benchmarks[0]
    assert set(first.metrics) >= {"exact_match", "f1", "exact_match_stderr"}
    # The raw document carries Assay's tests and composite (the SDK model ignores them).
    raw = live_hub.client().get(f"/api/v1/evaluations/jobs/{job.resource.id}").json()
    assert raw["results"]["test"]["evaluated"] is True
    assert raw["results"]["benchmarks"][0]["test"]["primary_score_metric"] == "exact_match"
    assert raw["plan"]["benchmarks"][0]["num_examples"] == 10

    listed = sdk.jobs.list()
    assert [j.resource.id for j in listed] == [job.resource.id]
    logs = sdk.jobs.get_logs(job.resource.id)
    assert "benchmark_id=qa" in str(logs)


def test_cli_eval_run_wait_returns_when_the_job_finishes(live_hub: LiveServer, tmp_path: Path) -> None:
    _with_provider(live_hub)
    base = ["eval", "run", "--name", "cli-run", "--model-url", "http://127.0.0.1:9/v1", "--model-name", "m"]
    base += ["--provider", "exact", "-b", "qa", "--wait", "--poll-interval", "0.2", "--timeout", "60"]
    ran = _evalhub(live_hub, tmp_path, *base, "--format", "json")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    jobs = live_hub.client().get("/api/v1/evaluations/jobs").json()["items"]
    assert [j["status"]["state"] for j in jobs] == ["completed"]
    assert jobs[0]["results"]["benchmarks"][0]["metrics"]["exact_match"] > 0

    failing = _evalhub(live_hub, tmp_path, *base, "-p", "fail=exception")
    assert failing.returncode == 1, failing.stdout + failing.stderr  # the CLI exits 1 on a failed job
    states = [j["status"]["state"] for j in live_hub.client().get("/api/v1/evaluations/jobs").json()["items"]]
    assert states == ["failed", "completed"]
