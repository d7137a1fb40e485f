"""Dispatch for a runtime that queues its launches (the local one): the due runs are claimed with one guarded
write, then launched. These check, against the real database, that concurrent dispatches of one job (the broker's
redelivery, the sweep's) launch each run once, that a redelivered event launches nothing, and that a launch that
fails leaves its run failed and never recorded as launched."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cloudevents.http import CloudEvent

from assay.core import Tenant
from assay.core.events import EVALUATION_ACCEPTED, OutboxEvent
from assay.core.plan import PlannedBenchmark
from assay.lifecycle import handlers
from assay.lifecycle.ports import Lifecycle
from assay.runtimes.observation import LaunchRefused
from assay.settings import Settings
from assay.store import Database, EvaluationRecord, migrate
from tests.store.test_guarded_change import job
from tests.store.test_job_list_store import run


class QueueingRuntime:
    """The runtime port as the local runtime fills it for a dispatch: ``launch`` queues (here: records), after a
    pause that lets concurrent dispatches interleave; ``refuse`` makes it refuse instead."""

    name = "recording"
    watches = False
    queues_launches = True

    def __init__(self, refuse: bool = False) -> None:
        self.launched: list[tuple[str, int, int]] = []
        self._refuse = refuse

    async def launch(
        self, evaluation: EvaluationRecord, runs: Sequence[tuple[PlannedBenchmark, int]]
    ) -> None:
        await asyncio.sleep(0.01)
        if self._refuse:
            raise LaunchRefused("The queue 'q' does not exist", "queue_missing", "QueueMissing")
        self.launched.extend((evaluation.id, planned.index, attempt) for planned, attempt in runs)


def context(database: Database, runtime: QueueingRuntime, published: list[OutboxEvent]) -> Lifecycle:
    async def publish(events: Sequence[OutboxEvent]) -> None:
        published.extend(events)

    async def deliver(event: OutboxEvent) -> None:
        raise AssertionError("dispatch delivers nothing itself")

    settings = Settings(data_dir=Path("/nonexistent"))
    return Lifecycle(settings=settings, database=database, runtime=runtime, publish=publish, deliver=deliver)  # type: ignore[arg-type]


def accepted(evaluation_id: str, event_id: str) -> CloudEvent:
    data: dict[str, Any] = {"evaluation_id": evaluation_id, "tenant": "team-a"}
    return CloudEvent({"type": EVALUATION_ACCEPTED, "source": "/assay/team-a/submit", "id": event_id}, data)


def test_concurrent_dispatches_of_one_job_launch_each_run_once(database_url: str) -> None:
    async def scenario() -> None:
        await migrate(database_url)
        # Ten connections open before the dispatches start: they read the job at once rather than in turn.
        database = await Database.open(database_url, min_size=10)
        await database.pool.wait()
        try:
            await dispatch_ten_times(database)
        finally:
            await database.close()

    asyncio.run(scenario())


async def dispatch_ten_times(database: Database) -> None:
    repo = database.scoped(Tenant("team-a")).evaluations
    await repo.create(job("job-claims"), idempotency_key=None, request_hash="h", events=())
    runtime, published = QueueingRuntime(), []
    ctx = context(database, runtime, published)
    # Ten deliveries at once, each its own event (a redelivery with a new id, the sweep's redispatch).
    await asyncio.gather(*(handlers.dispatch(ctx, accepted("job-claims", f"ev-{n}")) for n in range(10)))
    assert runtime.launched == [("job-claims", 0, 1)]
    record = await repo.get("job-claims")
    assert record.runs[0].dispatched_attempt == 1 and record.runs[0].run.status == "pending"
    async with database.pool.connection() as conn:
        seen = await (await conn.execute("SELECT count(*) FROM inbox WHERE handler = 'dispatch'")).fetchone()
    assert seen == (10,)  # every delivery was applied once, nine of them finding nothing due
    # The same event again: the inbox knows it, nothing is launched.
    await handlers.dispatch(ctx, accepted("job-claims", "ev-0"))
    assert runtime.launched == [("job-claims", 0, 1)] and published == []


def test_a_refused_launch_fails_its_run_never_recorded_as_launched(database_url: str) -> None:
    async def scenario(database: Database) -> None:
        repo = database.scoped(Tenant("team-a")).evaluations
        await repo.create(job("job-refused"), idempotency_key=None, request_hash="h", events=())
        published: list[OutboxEvent] = []
        ctx = context(database, QueueingRuntime(refuse=True), published)
        await handlers.dispatch(ctx, accepted("job-refused", "ev-refused"))
        row = (await repo.get("job-refused")).runs[0]
        assert row.run.status == "failed" and row.run.error_message is not None
        assert row.run.error_message["message_code"] == "queue_missing"
        # The sweep tells a run that failed at its launch from a leftover launch by this (handlers._gave_up).
        assert row.dispatched_attempt == 0
        assert [(event.type, event.data["status"]) for event in published] == [
            ("dev.assay.benchmark.finished.v1", "failed")
        ]

    run(database_url, scenario)
