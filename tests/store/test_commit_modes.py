"""Which changes wait for the WAL flush. A change that can be derived again (a dispatch mark, a run's process,
a published mark) commits asynchronously; every other commit is synchronous. The relaxed statements carry the
setting themselves (``set_config(..., true)``, which is ``SET LOCAL``) instead of a statement of its own, so
these check, in a transaction of the test's, that each one leaves its transaction set as intended."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from assay.core import Tenant
from assay.core.events import OutboxEvent
from assay.core.plan import Plan, PlannedBenchmark
from assay.store import Database, EvaluationRecord
from assay.store.evaluations import _RECORD_SPAWN, insert_events
from assay.store.outbox import _MARK_PUBLISHED
from tests.store.test_job_list_store import run

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def job(evaluation_id: str) -> EvaluationRecord:
    benchmark = PlannedBenchmark(index=0, provider_id="p", id="b")
    return EvaluationRecord(
        id=evaluation_id,
        tenant="team-a",
        owner="alice",
        name="modes",
        request={"name": "modes"},
        plan=Plan(benchmarks=[benchmark]),
        state="pending",
        message={"message": "pending", "message_code": "pending"},
        results={},
        cancelled=False,
        created_at=NOW,
        updated_at=NOW,
        started_at=None,
        completed_at=None,
    )


async def commit_mode(conn: AsyncConnection[Any]) -> str:
    row = await (await conn.execute("SHOW synchronous_commit")).fetchone()
    assert row is not None
    return str(row[0])


def test_only_the_relaxed_statements_turn_their_commit_asynchronous(database_url: str) -> None:
    async def scenario(database: Database) -> None:
        repo = database.scoped(Tenant("team-a")).evaluations
        await repo.create(job("job-modes"), idempotency_key=None, request_hash="h", events=())
        event = OutboxEvent(type="dev.assay.test.v1", source="/assay/t/test", data={})

        async with database.pool.connection() as conn:
            await insert_events(conn, [event])
            async with conn.transaction(force_rollback=True):
                assert await commit_mode(conn) == "on"  # the server's default, for everything else
                await (await repo._lock(conn, "job-modes")).fetchone()
                assert await commit_mode(conn) == "on"  # a durable change (a submission, a callback's event)
            async with conn.transaction(force_rollback=True):
                await (await repo._lock(conn, "job-modes", durable=False)).fetchone()
                assert await commit_mode(conn) == "off"
            async with conn.transaction(force_rollback=True):
                params = ["job-modes", "local:job-modes/0/1:0", NOW + timedelta(hours=1), 0, 1]
                await conn.execute(_RECORD_SPAWN, params)
                assert await commit_mode(conn) == "off"
            async with conn.transaction(force_rollback=True):
                cur = await conn.execute(_MARK_PUBLISHED, [[event.id]])
                assert cur.rowcount == 1
                assert await commit_mode(conn) == "off"

    run(database_url, scenario)


def test_the_lock_records_the_inbox_and_tells_a_redelivery(database_url: str) -> None:
    async def scenario(database: Database) -> None:
        repo = database.scoped(Tenant("team-a")).evaluations
        await repo.create(job("job-inbox"), idempotency_key=None, request_hash="h", events=())
        inbox = ("dispatch", "/bench/source", "event-1")
        seen = []
        for _ in range(2):
            async with repo.locked("job-inbox", inbox=inbox, durable=False) as unit:
                assert unit is not None
                seen.append(unit.duplicate)
        assert seen == [False, True]
        # A job of another tenant, or none at all: nothing is locked or returned.
        other = database.scoped(Tenant("team-b")).evaluations
        async with other.locked("job-inbox", inbox=("dispatch", "/bench/source", "event-2")) as unit:
            assert unit is None

    run(database_url, scenario)
