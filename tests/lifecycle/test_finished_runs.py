"""A run's process exit after the adapter reported: the local runtime knows, without reading the run, that an
attempt whose terminal status this process committed needs nothing more; an exit without that knowledge is still
read and judged (a process that exits without reporting fails its run)."""

from __future__ import annotations

from assay.api.jobs import BenchmarkStatusEvent
from assay.core import Tenant
from assay.core.events import OutboxEvent
from assay.lifecycle import handlers
from assay.lifecycle.ports import FinishedRuns
from assay.lifecycle.progress import record_event, runtime_exited
from assay.store import Database
from tests.lifecycle.test_dispatch_claims import QueueingRuntime, accepted, context
from tests.store.test_guarded_change import job
from tests.store.test_job_list_store import run


def test_finished_runs_are_taken_once_and_bounded() -> None:
    finished = FinishedRuns(limit=2)
    finished.add("a", 0, 1)
    assert finished.take("a", 0, 1) and not finished.take("a", 0, 1)
    assert not finished.take("a", 0, 2)  # another attempt is another run
    for index in range(3):
        finished.add("b", index, 1)
    assert [finished.take("b", index, 1) for index in range(3)] == [
        False,
        True,
        True,
    ]  # the oldest went first


def test_an_exit_after_a_committed_result_changes_nothing_and_one_without_fails_the_run(
    database_url: str,
) -> None:
    async def scenario(database: Database) -> None:
        repo = database.scoped(Tenant("team-a")).evaluations
        ctx = context(database, QueueingRuntime(), published := list[OutboxEvent]())
        for evaluation_id in ("job-reported", "job-silent"):
            await repo.create(job(evaluation_id), idempotency_key=None, request_hash="h", events=())
            await handlers.dispatch(ctx, accepted(evaluation_id, f"ev-{evaluation_id}"))
        status = {"provider_id": "p", "id": "b", "benchmark_index": 0}
        await record_event(ctx, "job-reported", "team-a", BenchmarkStatusEvent(**status, status="running"))
        assert ("job-reported", 0, 1) not in ctx.finished_runs  # running is not terminal
        completed = BenchmarkStatusEvent(**status, status="completed", metrics={"score": 1.0})
        await record_event(ctx, "job-reported", "team-a", completed)
        assert ("job-reported", 0, 1) in ctx.finished_runs
        reported = await repo.get("job-reported")
        assert reported.runs[0].run.status == "completed"
        await runtime_exited(ctx, "job-reported", 0, 1, "exited", 0)
        assert (await repo.get("job-reported")).version == reported.version  # nothing written
        assert ("job-reported", 0, 1) not in ctx.finished_runs  # taken by the exit

        await runtime_exited(ctx, "job-silent", 0, 1, "exited", 0)
        silent = (await repo.get("job-silent")).runs[0].run
        assert silent.status == "failed" and silent.error_message is not None
        assert silent.error_message["message_code"] == "results_not_delivered"
        assert [event.data["status"] for event in published if "status" in event.data] == [
            "completed",
            "failed",
        ]

    run(database_url, scenario)
