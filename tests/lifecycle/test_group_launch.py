"""Providers whose adapter takes a group (lm-eval style) run all of a job's benchmarks of that provider in one
process, and each benchmark is still tracked, scored, logged and retried as itself."""

from __future__ import annotations

import json
import sys
from typing import Any

import httpx
import pytest

from tests.conftest import FIXTURES, REPO, LiveServer
from tests.lifecycle.test_local_lifecycle import finished, submit

ADAPTER = FIXTURES / "adapters" / "grouped" / "adapter.py"


def grouped_provider() -> dict[str, Any]:
    benchmark = {
        "category": "test",
        "metrics": ["score"],
        "primary_score": {"metric": "score", "scale": {"min": 0, "max": 1}},
        "pass_criteria": {"threshold": 0.5},
    }
    return {
        "id": "grouped",
        "name": "Grouped (test adapter)",
        "runtime": {
            "local": {
                "command": f"{sys.executable} {ADAPTER}",
                "env": [{"name": "PYTHONPATH", "value": str(REPO)}],
            },
            "group_benchmarks": True,
        },
        "benchmarks": [{"id": f"g{i}", "name": f"G{i}", **benchmark} for i in range(3)],
    }


@pytest.fixture()
def hub(live_hub: LiveServer) -> httpx.Client:
    client = live_hub.client(timeout=30)
    created = client.post("/api/v1/evaluations/providers", json=grouped_provider())
    assert created.status_code == 201, created.text
    return client


def test_a_group_is_one_process_with_per_benchmark_results(hub: httpx.Client) -> None:
    job = submit(
        hub,
        {
            "name": "group",
            "model": {"url": "http://127.0.0.1:9/v1", "name": "m"},
            "benchmarks": [
                {"id": "g0", "provider_id": "grouped", "parameters": {"score": 0.9}},
                {"id": "g1", "provider_id": "grouped", "parameters": {"score": 0.2}},
                {"id": "g2", "provider_id": "grouped", "parameters": {"score": 0.7}},
            ],
        },
    )
    done = finished(hub, job["resource"]["id"])
    assert done["status"]["state"] == "completed", json.dumps(done)
    scores = {b["id"]: b["metrics"]["score"] for b in done["results"]["benchmarks"]}
    assert scores == {"g0": 0.9, "g1": 0.2, "g2": 0.7}
    assert {b["id"]: b["test"]["pass"] for b in done["results"]["benchmarks"]} == {
        "g0": True,
        "g1": False,
        "g2": True,
    }
    logs = [
        hub.get(f"/api/v1/evaluations/jobs/{job['resource']['id']}/benchmarks/{i}/logs").text
        for i in range(3)
    ]
    pids = {line.split("pid ")[1].split()[0] for log in logs for line in log.splitlines() if "pid " in line}
    assert len(pids) == 1, logs  # one process ran all three
    assert "runs [0, 1, 2]" in logs[2]
    # Through the local sidecar: events to it, model calls to /model/<job>/<lead index>/<original path>.
    hub_url = str(hub.base_url).rstrip("/")
    line = next(line for line in logs[0].splitlines() if "callbacks to" in line)
    sidecar = line.split("callbacks to ")[1].split(",")[0]
    assert sidecar.startswith("http://127.0.0.1:") and sidecar != hub_url
    assert line.endswith(f"model at {sidecar}/model/{job['resource']['id']}/0/v1")


def test_one_failing_member_fails_alone_and_retry_reruns_only_it(hub: httpx.Client) -> None:
    job = submit(
        hub,
        {
            "name": "group-retry",
            "model": {"url": "http://127.0.0.1:9/v1", "name": "m"},
            "benchmarks": [
                {"id": "g0", "provider_id": "grouped", "parameters": {"score": 0.9}},
                {"id": "g1", "provider_id": "grouped", "parameters": {"fail": True}},
            ],
        },
    )
    job_id = job["resource"]["id"]
    done = finished(hub, job_id)
    by_id = {b["id"]: b for b in done["status"]["benchmarks"]}
    # The adapter raised on g1 after g0's result was already sent: g0 keeps it, g1 fails with the reason.
    assert by_id["g0"]["status"] == "completed"
    assert by_id["g1"]["status"] == "failed"
    assert "asked to fail" in by_id["g1"]["error_message"]["message"]
    assert done["status"]["state"] == "partially_failed"
