"""``Database.evaluations`` remembers each job as its last guarded change left it and computes the next change from
that instead of reading the job (``RecentJobs``). These check, against the real database, that a change computed
from memory is written only if the job is still what memory says (another writer's change, a redelivered event and
a change of nothing are each done again from a read), that memory agrees with a fresh read after every kind of
change, and that where a run's process runs (a write that does not move the job's version) is not lost."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from assay.core import Tenant
from assay.store import Database, LockedEvaluation
from assay.store.evaluations import EvaluationRepository, RecentJobs
from tests.store.test_guarded_change import add_step, bump_elsewhere, job
from tests.store.test_job_list_store import run


async def create(database: Database, evaluation_id: str) -> EvaluationRepository:
    await database.scoped(Tenant("team-a")).evaluations.create(
        job(evaluation_id), idempotency_key=None, request_hash="h", events=()
    )
    return database.evaluations


def test_a_change_from_memory_still_sees_another_writers_change(database_url: str) -> None:
    async def scenario(database: Database) -> None:
        repo = await create(database, "job-mem")
        seen: list[tuple[int, str]] = []

        def apply(unit: LockedEvaluation) -> int:
            seen.append((unit.record.version, unit.record.name))
            return add_step(unit)

        assert (await repo.change("job-mem", apply)) is not None  # from memory of its creation
        assert (await repo.change("job-mem", apply)) is not None  # from memory of that change
        assert seen == [(0, "modes"), (1, "modes")]
        bump_elsewhere(database_url, "job-mem")  # version 3 elsewhere: memory still says 2
        changed = await repo.change("job-mem", apply)
        assert changed is not None and changed[1] == 3
        assert seen[2:] == [(2, "modes"), (3, "modes+")]  # memory's computation lost; done again from a read
        record = await repo.get("job-mem")
        assert record.runs[0].run.completed_steps == 3 and record.name == "modes+" and record.version == 4

    run(database_url, scenario)


def test_a_redelivered_event_is_not_applied_from_memory(database_url: str) -> None:
    async def scenario(database: Database) -> None:
        repo = await create(database, "job-redelivered")
        inbox = ("aggregate", "/test/source", "event-1")
        first = await repo.change("job-redelivered", add_step, inbox=inbox, durable=False)
        again = await repo.change("job-redelivered", add_step, inbox=inbox, durable=False)
        assert first is not None and not first[0].duplicate
        assert again is not None and again[0].duplicate and again[1] is None
        assert (await repo.get("job-redelivered")).runs[0].run.completed_steps == 1
        other = await repo.change("job-redelivered", add_step, inbox=(*inbox[:2], "event-2"), durable=False)
        assert other is not None and not other[0].duplicate  # a new event is applied, from memory
        assert (await repo.get("job-redelivered")).runs[0].run.completed_steps == 2

    run(database_url, scenario)


def test_a_change_of_nothing_computed_from_memory_is_checked_by_a_read(database_url: str) -> None:
    async def scenario(database: Database) -> None:
        repo = await create(database, "job-noop")
        await repo.change("job-noop", add_step)  # remembered at version 1, name "modes"
        bump_elsewhere(database_url, "job-noop")

        def step_if_renamed(unit: LockedEvaluation) -> bool:
            if unit.record.name != "modes+":
                return False  # what memory says: nothing to do
            add_step(unit)
            return True

        changed = await repo.change("job-noop", step_if_renamed)
        assert changed is not None and changed[1] is True
        assert (await repo.get("job-noop")).runs[0].run.completed_steps == 2

    run(database_url, scenario)


def test_memory_agrees_with_a_read_and_keeps_where_a_run_runs(database_url: str) -> None:
    async def scenario(database: Database) -> None:
        repo = await create(database, "job-spawn")

        def dispatch(unit: LockedEvaluation) -> None:
            unit.put_row(replace(unit.rows()[0], dispatched_attempt=1))

        def running(unit: LockedEvaluation) -> None:
            unit.put(replace(unit.runs()[0], status="running", phase="running_evaluation"))
            unit.set(state="running", started_at=datetime(2026, 12, 6, tzinfo=UTC))

        await repo.change("job-spawn", dispatch, durable=False)
        deadline = datetime(2026, 12, 6, 1, tzinfo=UTC) + timedelta(microseconds=123)
        assert await repo.record_spawn("job-spawn", 0, 1, "local:hub/123", deadline)
        await repo.change("job-spawn", running)
        assert repo._recent is not None
        remembered = repo._recent.get("job-spawn")
        fresh = await repo.get("job-spawn")
        assert remembered == fresh  # every column, the database's updated_at and version included
        assert fresh.runs[0].runtime_ref == "local:hub/123" and fresh.runs[0].deadline_at == deadline
        assert fresh.state == "running" and fresh.runs[0].run.status == "running"

    run(database_url, scenario)


def test_a_created_job_is_remembered_and_only_the_repository_of_all_tenants_reads_memory(
    database_url: str,
) -> None:
    async def scenario(database: Database) -> None:
        repo = await create(database, "job-created")
        assert database.recent_jobs.get("job-created") == await repo.get("job-created")
        # A tenant's repository never takes a job from memory: another tenant's is not found, as with a read.
        other = database.scoped(Tenant("team-b")).evaluations
        assert await other.change("job-created", add_step) is None
        mine = database.scoped(Tenant("team-a")).evaluations
        changed = await mine.change("job-created", add_step)
        assert changed is not None and changed[1] == 1
        assert await mine.delete("job-created")
        assert database.recent_jobs.get("job-created") is None  # a hard delete leaves nothing in memory
        assert await repo.change("job-created", add_step) is None

    run(database_url, scenario)


def test_recent_jobs_are_bounded_oldest_out() -> None:
    recent = RecentJobs(limit=2)
    for name in ("a", "b", "c"):
        recent.put(job(name))
    assert [recent.get(name) is not None for name in ("a", "b", "c")] == [False, True, True]
    recent.forget("b")
    assert recent.get("b") is None
