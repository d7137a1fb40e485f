"""A run's process exit after the adapter reported: the local runtime knows, without reading the run, that an
attempt the remembered job shows terminal needs nothing more (``RecentJobs.finished``); an exit without that
knowledge is still read and judged (a process that exits without reporting fails its run)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from assay.api.jobs import BenchmarkStatusEvent
from assay.core import Tenant
from assay.core.events import OutboxEvent
from assay.core.states import BenchmarkRun
from assay.lifecycle import handlers
from assay.lifecycle.progress import record_event, runtime_exited
from assay.store import Database
from assay.store.evaluations import RecentJobs, RunRow
from tests.lifecycle.test_dispatch_claims import QueueingRuntime, accepted, context
from tests.store.test_guarded_change import job
from tests.store.test_job_list_store import run


def test_memory_knows_an_attempt_terminal_only_for_that_attempt() -> None:
    recent = RecentJobs()
    record = job("a")
    recent.put(record)
    assert not recent.finished("a", 0, 1)  # pending
    recent.put(replace(record, runs=(RunRow(BenchmarkRun(0, "p", "b", status="completed")),)))
    assert recent.finished("a", 0, 1) and not recent.finished("a", 0, 2) and not recent.finished("b", 0, 1)


def test_an_exit_after_a_committed_result_reads_nothing_and_one_without_fails_the_run(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(database: Database) -> None:
        repo = database.scoped(Tenant("team-a")).evaluations
        ctx = context(database, QueueingRuntime(), published := list[OutboxEvent]())
        for evaluation_id in ("job-reported", "job-silent"):
            await repo.create(job(evaluation_id), idempotency_key=None, request_hash="h", events=())
            await handlers.dispatch(ctx, accepted(evaluation_id, f"ev-{evaluation_id}"))
        status = {"provider_id": "p", "id": "b", "benchmark_index": 0}
        await record_event(ctx, "job-reported", "team-a", BenchmarkStatusEvent(**status, status="running"))
        assert not database.recent_jobs.finished("job-reported", 0, 1)  # running is not terminal
        completed = BenchmarkStatusEvent(**status, status="completed", metrics={"score": 1.0})
        await record_event(ctx, "job-reported", "team-a", completed)
        assert database.recent_jobs.finished("job-reported", 0, 1)
        reported = await repo.get("job-reported")
        assert reported.runs[0].run.status == "completed"

        reads: list[Any] = []
        read_status = database.evaluations.run_status

        async def counted(*args: Any) -> Any:
            reads.append(args)
            return await read_status(*args)

        monkeypatch.setattr(database.evaluations, "run_status", counted)
        await runtime_exited(ctx, "job-reported", 0, 1, "exited", 0)
        assert reads == []  # known from memory
        assert (await repo.get("job-reported")).version == reported.version  # nothing written

        await runtime_exited(ctx, "job-silent", 0, 1, "exited", 0)
        assert reads == [("job-silent", 0)]  # not known: read, and judged
        silent = (await repo.get("job-silent")).runs[0].run
        assert silent.status == "failed" and silent.error_message is not None
        assert silent.error_message["message_code"] == "results_not_delivered"
        assert [event.data["status"] for event in published if "status" in event.data] == [
            "completed",
            "failed",
        ]

    run(database_url, scenario)
