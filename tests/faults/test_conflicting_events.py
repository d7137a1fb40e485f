"""Many jobs, conflicting status events fired at all of them at once: for every job the state is the one
its runs imply, each run finished exactly once (one ``benchmark.finished``, one count in the metrics), and
nothing a later event says reopens a finished run."""

from __future__ import annotations

import random
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg

from assay.core.states import BenchmarkRun, derive_state
from tests.conftest import LiveServer, launch_headers
from tests.support.waiting import wait_for

JOBS = 20
BENCHMARKS = ("first", "second")
# Per benchmark: one completed with a score, two failures, and four copies of the completed event.
COMPLETED_COPIES = 5
FAILURES = 2
TERMINAL = {"completed", "failed", "cancelled", "partially_failed"}


def idle_provider() -> dict[str, Any]:
    """A provider whose adapter never reports: only the events this test sends move its runs."""
    return {
        "id": "idle",
        "name": "Idle adapter",
        "runtime": {"local": {"command": "sleep 600"}},
        "benchmarks": [
            {
                "id": name,
                "name": name,
                "category": "knowledge",
                "metrics": ["accuracy"],
                "primary_score": {"metric": "accuracy", "scale": {"min": 0, "max": 1}},
                "pass_criteria": {"threshold": 0.5},
            }
            for name in BENCHMARKS
        ],
    }


def events_for(job_id: str) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for index, name in enumerate(BENCHMARKS):
        base = {"provider_id": "idle", "id": name, "benchmark_index": index}
        completed = {**base, "status": "completed", "metrics": {"accuracy": 0.75}}
        found += [(job_id, completed)] * COMPLETED_COPIES
        found += [
            (
                job_id,
                {**base, "status": "failed", "error_message": {"message": "boom", "message_code": "x"}},
            )
        ] * FAILURES
    return found


def test_conflicting_events_at_many_jobs_leave_state_a_function_of_runs(
    live_hub: LiveServer, database_url: str
) -> None:
    hub = live_hub.client(timeout=60)
    assert hub.post("/api/v1/evaluations/providers", json=idle_provider()).status_code == 201
    body = {
        "name": "conflicts",
        "model": {"url": "http://127.0.0.1:9/v1", "name": "m"},
        "benchmarks": [{"id": name, "provider_id": "idle"} for name in BENCHMARKS],
    }
    jobs = []
    for _ in range(JOBS):
        created = hub.post("/api/v1/evaluations/jobs", json=body)
        assert created.status_code == 202, created.text
        jobs.append(created.json()["resource"]["id"])
    events = [event for job_id in jobs for event in events_for(job_id)]
    random.Random(21).shuffle(events)

    def send(item: tuple[str, dict[str, Any]]) -> int:
        job_id, status = item
        # Each event carries the credential of the launch that runs both benchmarks of its job.
        credential = launch_headers(live_hub, job_id, runs=[(i, 1) for i in range(len(BENCHMARKS))])
        with live_hub.client(timeout=60) as client:
            answer = client.post(
                f"/api/v1/evaluations/jobs/{job_id}/events",
                json={"benchmark_status_event": status},
                headers=credential,
            )
        return answer.status_code

    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = Counter(pool.map(send, events))
    assert set(answers) <= {204}, answers  # applied, ignored or late: all acknowledged

    def documents() -> list[dict[str, Any]] | None:
        found = [hub.get(f"/api/v1/evaluations/jobs/{job_id}").json() for job_id in jobs]
        return found if all(job["status"]["state"] in TERMINAL for job in found) else None

    for job in wait_for(documents, timeout=60, interval=0.2):
        entries = job["status"]["benchmarks"]
        runs = [
            BenchmarkRun(index=i, provider_id="idle", benchmark_id=e["id"], status=e["status"])
            for i, e in enumerate(entries)
        ]
        state, _ = derive_state(runs)
        assert job["status"]["state"] == state, job["status"]
        for entry, result in zip(entries, job["results"]["benchmarks"], strict=True):
            # A run that completed keeps the score of its completed event; a failed one has none.
            assert (entry["status"] == "completed") == (result.get("metrics") == {"accuracy": 0.75}), job

    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT data->>'evaluation_id', (data->>'benchmark_index')::int, count(*) FROM outbox"
            " WHERE type = 'dev.assay.benchmark.finished.v1' GROUP BY 1, 2"
        ).fetchall()
    finished = {(job_id, index): count for job_id, index, count in rows}
    assert finished == {(job_id, i): 1 for job_id in jobs for i in range(len(BENCHMARKS))}

    text = hub.get("/metrics").text
    counted = sum(
        float(value)
        for value in re.findall(
            r'^assay_benchmarks_finished_total\{[^}]*provider="idle"[^}]*\} (\S+)$', text, re.M
        )
    )
    assert counted == JOBS * len(BENCHMARKS)
    print(f"\n{JOBS} jobs, {len(events)} events, answers {dict(answers)}, {int(counted)} runs finished once")
