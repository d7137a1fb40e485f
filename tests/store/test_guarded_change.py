"""``EvaluationRepository.change``: a change computed from a read and written in one statement only if the job is
still at the version read. These check that no concurrent change is lost, that a change computed from an
outdated read is computed again (and, past its tries, under the row lock), that what it counts is counted once,
and that the inbox still tells a redelivery."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from typing import Any

import psycopg

from assay.core import Tenant
from assay.core.events import OutboxEvent
from assay.core.states import BenchmarkRun
from assay.store import Database, EvaluationRecord, LockedEvaluation
from assay.store.evaluations import _OPTIMISTIC_TRIES, RunRow
from tests.store import test_commit_modes
from tests.store.test_job_list_store import run


def job(evaluation_id: str) -> EvaluationRecord:
    """A pending job of team-a with one pending run."""
    return replace(test_commit_modes.job(evaluation_id), runs=(RunRow(BenchmarkRun(0, "p", "b")),))


def bump_elsewhere(database_url: str, evaluation_id: str) -> None:
    """Another writer's committed change of the job (its version moves), from another connection, while a change
    is being computed. A thread: ``apply`` is synchronous, and the other writer must not wait on it."""

    def write() -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE evaluations SET name = name || '+', version = version + 1 WHERE id = %s",
                [evaluation_id],
            )

    thread = threading.Thread(target=write)
    thread.start()
    thread.join()


def steps(unit: LockedEvaluation) -> int:
    return unit.runs()[0].completed_steps or 0


def add_step(unit: LockedEvaluation) -> int:
    """One more completed step of run 0, from the value read."""
    done = steps(unit) + 1
    unit.put(replace(unit.runs()[0], completed_steps=done))
    return done


def test_concurrent_changes_are_all_applied(database_url: str) -> None:
    async def scenario(database: Database) -> None:
        repo = database.scoped(Tenant("team-a")).evaluations
        await repo.create(job("job-many"), idempotency_key=None, request_hash="h", events=())
        # Twenty writers at once, each adding one to what it read: a change written over another's is a lost step.
        await asyncio.gather(*(repo.change("job-many", add_step, durable=False) for _ in range(20)))
        record = await repo.get("job-many")
        assert record.runs[0].run.completed_steps == 20
        assert record.version == 20

    run(database_url, scenario)


def test_a_change_from_an_outdated_read_is_computed_again(database_url: str) -> None:
    async def scenario(database: Database) -> None:
        repo = database.scoped(Tenant("team-a")).evaluations
        await repo.create(job("job-again"), idempotency_key=None, request_hash="h", events=())
        calls: list[int] = []
        counted: list[str] = []

        def apply(unit: LockedEvaluation) -> int:
            calls.append(unit.record.version)
            if len(calls) == 1:
                bump_elsewhere(database_url, "job-again")  # committed after this read, before this write
            unit.on_commit(lambda: counted.append("finished"))
            unit.emit(OutboxEvent(type="dev.assay.test.v1", source="/assay/t/test", data={"n": len(calls)}))
            return add_step(unit)

        changed = await repo.change("job-again", apply)
        assert changed is not None
        assert calls == [0, 1] and changed[1] == 1
        assert counted == ["finished"]  # once: the first computation was never committed
        record = await repo.get("job-again")
        assert record.name == "modes+" and record.runs[0].run.completed_steps == 1 and record.version == 2
        async with database.pool.connection() as conn:
            rows = await (await conn.execute("SELECT data FROM outbox ORDER BY seq")).fetchall()
        assert [row[0] for row in rows] == [{"n": 2}]  # only the committed computation's event

    run(database_url, scenario)


def test_past_its_tries_a_change_waits_for_the_row_lock(database_url: str) -> None:
    async def scenario(database: Database) -> None:
        repo = database.scoped(Tenant("team-a")).evaluations
        await repo.create(job("job-locked"), idempotency_key=None, request_hash="h", events=())
        calls = 0

        def apply(unit: LockedEvaluation) -> int:
            nonlocal calls
            calls += 1
            if calls <= _OPTIMISTIC_TRIES:
                bump_elsewhere(database_url, "job-locked")  # outdated every time it reads without the lock
            return add_step(unit)

        changed = await repo.change("job-locked", apply)
        assert changed is not None and changed[1] == 1
        assert calls == _OPTIMISTIC_TRIES + 1
        record = await repo.get("job-locked")
        assert record.runs[0].run.completed_steps == 1
        assert record.version == _OPTIMISTIC_TRIES + 1

    run(database_url, scenario)


def test_the_inbox_tells_a_redelivery_and_scope_hides_other_tenants(database_url: str) -> None:
    async def scenario(database: Database) -> None:
        repo = database.scoped(Tenant("team-a")).evaluations
        await repo.create(job("job-inbox"), idempotency_key=None, request_hash="h", events=())
        inbox = ("aggregate", "/bench/source", "event-1")
        calls: list[Any] = []

        def apply(unit: LockedEvaluation) -> None:
            calls.append(unit.record.version)  # changes nothing: the inbox row is still written

        first = await repo.change("job-inbox", apply, inbox=inbox, durable=False)
        second = await repo.change("job-inbox", apply, inbox=inbox, durable=False)
        assert first is not None and not first[0].duplicate
        assert second is not None and second[0].duplicate and second[1] is None
        assert calls == [0]
        assert (await repo.get("job-inbox")).version == 0  # a change of nothing writes no job row
        other = database.scoped(Tenant("team-b")).evaluations
        assert await other.change("job-inbox", apply, inbox=("aggregate", "/bench/source", "event-2")) is None
        assert calls == [0]

    run(database_url, scenario)
