"""The statements every evaluation runs are prepared on a connection at their first execution, not their sixth
(psycopg's default threshold): a fresh hub's connections, and a function's that live for a few events, stop
planning them again and again. What the database holds is the proof: ``pg_prepared_statements`` of the pool's one
connection after each statement ran once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from assay.core import Tenant
from assay.store import Database, EvaluationQuery
from tests.store.test_guarded_change import add_step, job
from tests.store.test_job_list_store import run


def test_an_evaluations_statements_are_prepared_at_their_first_execution(database_url: str) -> None:
    async def scenario(database: Database) -> None:
        repo = database.scoped(Tenant("team-a")).evaluations
        await repo.create(job("job-prepared"), idempotency_key=None, request_hash="h", events=())
        assert await database.evaluations.change("job-prepared", add_step) is not None  # the guarded write
        assert await repo.changed_since("job-prepared", 0) is not None  # the poll's statement
        assert await repo.get("job-prepared") is not None  # the read of a job with its runs
        deadline = datetime.now(UTC) + timedelta(hours=1)
        assert await database.evaluations.record_spawn("job-prepared", 0, 1, "local:x:0", deadline)
        async with database.pool.connection() as conn:  # the pool's only connection: where they all ran
            cursor = await conn.execute("SELECT statement FROM pg_prepared_statements")
            prepared = [row[0] for row in await cursor.fetchall()]
        for start in (
            "WITH job AS (INSERT INTO evaluations",  # the create
            "WITH job AS (UPDATE evaluations SET",  # the guarded write
            "SELECT j.* FROM (SELECT id, version FROM evaluations",  # the poll
            "SELECT e.*, coalesce(",  # a job with its runs
            "WITH job AS (SELECT id, set_config('synchronous_commit'",  # a run's spawn record
        ):
            assert any(statement.startswith(start) for statement in prepared), (start, prepared)

    run(database_url, scenario, max_size=1)


def test_the_pools_statements_are_planned_once_and_a_job_list_for_its_values(database_url: str) -> None:
    """PostgreSQL's default plans a prepared statement's first five executions for their values before it settles
    on the generic plan; the pool's connections take the generic plan at once (Database.open), except a page of the
    job list, whose best plan depends on its filter's values."""

    async def scenario(database: Database) -> None:
        repo = database.scoped(Tenant("team-a")).evaluations
        await repo.create(job("job-planned"), idempotency_key=None, request_hash="h", events=())
        for _ in range(7):
            assert await repo.changed_since("job-planned", -1) is not None  # the poll's statement
            await repo.list(EvaluationQuery(limit=5, tags=(("nightly",),)))
        async with database.pool.connection() as conn:  # the pool's only connection: where they all ran
            cursor = await conn.execute(
                "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
            )
            plans = {row[0]: (row[1], row[2]) for row in await cursor.fetchall()}
        poll = [
            n
            for s, n in plans.items()
            if s.startswith("SELECT j.* FROM (SELECT id, version FROM evaluations")
        ]
        # Seven executions, one generic plan used each time, nothing planned anew.
        assert poll == [(7, 0)], plans
        # psycopg prepares the list's page at its sixth execution; both since were planned for their values.
        page = [
            n
            for s, n in plans.items()
            if s.startswith("WITH page AS (SELECT id, created_at FROM evaluations")
        ]
        assert page == [(0, 2)], plans

    run(database_url, scenario, max_size=1)
